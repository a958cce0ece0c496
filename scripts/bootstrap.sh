#!/usr/bin/env bash
# Create .venv with Python 3.11 (or the newest python3 found) and install the pinned requirements:
#   scripts/bootstrap.sh          runtime only: requirements.txt (what `make run` needs)
#   scripts/bootstrap.sh --test   runtime + tests and lint: requirements.txt and requirements-test.txt
#   --browser (with either)       also headless Chromium and chromedriver from the Debian packages, for
#                                 tests/browser and `make screenshots`: apt-get installs them as root when missing
# Re-runs are cheap: each file's sha256 is stamped in .venv/.<file>.sha once it is installed, and pip
# runs only when a file it needs differs from its stamp (a new venv has no stamps, so it installs).
set -euo pipefail
cd "$(dirname "$0")/.."
files=(requirements.txt)
browser=false
for arg in "$@"; do
  case "$arg" in
    --test) files+=(requirements-test.txt) ;;
    --browser) browser=true ;;
    *) echo "usage: $0 [--test] [--browser]" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp() { echo ".venv/.$1.sha"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
stale=false
for f in "${files[@]}"; do
  [ "$(cat "$(stamp "$f")" 2>/dev/null)" = "$(sha "$f")" ] || stale=true
done
if $stale; then
  rm -f .venv/.requirements.sha  # the single stamp of the one-file layout
  .venv/bin/python -m pip install -q --upgrade pip
  # One resolve over all the files, so a runtime pin and a test pin can never disagree silently.
  args=(); for f in "${files[@]}"; do args+=(-r "$f"); done
  .venv/bin/python -m pip install -q "${args[@]}"
  for f in "${files[@]}"; do sha "$f" > "$(stamp "$f")"; done
fi

# The browser tests are part of the suite (CI runs them), so a browser that cannot be installed stops the run
# here, saying what to do; they are never skipped. Paths as in tests/browser/chromium.py.
chromium_ready() { [ -x "${CHROMIUM:-/usr/bin/chromium}" ] && [ -x "${CHROMEDRIVER:-/usr/bin/chromedriver}" ]; }
if $browser && ! chromium_ready; then
  packages=(chromium chromium-driver)
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then as_root=(sudo -n); fi
  fi
  if ! command -v apt-get >/dev/null || { [ "$(id -u)" -ne 0 ] && [ ${#as_root[@]} -eq 0 ]; }; then
    echo "error: the browser tests need Chromium and chromedriver (${CHROMIUM:-/usr/bin/chromium}," \
         "${CHROMEDRIVER:-/usr/bin/chromedriver}); install them as root: apt-get install -y ${packages[*]}" >&2
    exit 1
  fi
  echo "installing ${packages[*]} (apt-get) for the browser tests" >&2
  apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y)
  "${apt[@]}" install "${packages[@]}" || { "${apt[@]}" update && "${apt[@]}" install "${packages[@]}"; } || true
  if ! chromium_ready; then
    echo "error: apt-get did not install ${packages[*]} (Chromium at ${CHROMIUM:-/usr/bin/chromium}, chromedriver" \
         "at ${CHROMEDRIVER:-/usr/bin/chromedriver}); install them, then run again" >&2
    exit 1
  fi
fi
