"""Container health check of the web service: ``python scripts/healthcheck.py [PATH]`` exits 0 when
``http://127.0.0.1:$PORT/PATH`` (default ``healthz``) answers 200, else 1.

Standard library only and no Django start-up, so it is cheap every few seconds. The request names the first
of ``DJANGO_ALLOWED_HOSTS`` as its Host (a wildcard or ``.domain`` entry allows the bare domain), since a
production host list rarely includes 127.0.0.1.
"""

import os
import sys
import urllib.error
import urllib.request


def host() -> str:
    first = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost").split(",")[0].strip()
    return "localhost" if first in ("", "*") else first.lstrip(".")


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else "healthz"
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/{path.lstrip('/')}"
    request = urllib.request.Request(url, headers={"Host": host()})
    try:
        with urllib.request.urlopen(request, timeout=float(os.environ.get("HEALTHCHECK_TIMEOUT", "3"))) as response:
            ok = response.status == 200
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
