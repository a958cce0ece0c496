#!/usr/bin/env bash
# Known vulnerabilities in the runtime requirements (requirements.txt, what the image installs): pip-audit
# against PyPI's advisory data (-s pypi), in a tool venv of its own under $TMPDIR, like `make requirements`'
# pip-tools, so the audit never adds a package to the project's venv.
#
#   scripts/audit.sh [requirements file]          (default requirements.txt)
#   AUDIT_IGNORE="GHSA-xxxx PYSEC-yyyy" scripts/audit.sh   accepted risks, each with its reason in docs/operations.md
#
# Policy (docs/operations.md, "Dependencies"): exit 1 when a pinned package has a known vulnerability with a
# fixed version (`PIP_COMPILE_ARGS="-P name==fixed" make requirements` moves the pin); a vulnerability no
# release fixes yet is printed as a warning and does not fail; a network or tool error (PyPI unreachable,
# pip-audit not installable) is printed and does not fail either: the next run audits again.
set -uo pipefail
cd "$(dirname "$0")/.."
REQUIREMENTS=${1:-requirements.txt}
AUDIT_VENV=${AUDIT_VENV:-${TMPDIR:-/tmp}/csplatform-pip-audit}

warn_and_pass() { echo "WARNING: $1 (not failing: the audit runs again next time)" >&2; exit 0; }

report=$(mktemp); install_log=$(mktemp)
trap 'rm -f "$report" "$install_log"' EXIT
if ! test -x "$AUDIT_VENV/bin/pip-audit"; then
  { python3 -m venv "$AUDIT_VENV" && "$AUDIT_VENV/bin/pip" install -q pip-audit; } >"$install_log" 2>&1 \
    || { cat "$install_log" >&2; warn_and_pass "could not install pip-audit into $AUDIT_VENV"; }
fi

ignored=()
for id in ${AUDIT_IGNORE:-}; do ignored+=(--ignore-vuln "$id"); done
# requirements.txt pins every package (pip-compile): no resolution, so no pip install into a scratch venv.
# Exit status 1 means "found something" or "could not audit": the JSON report tells which.
"$AUDIT_VENV/bin/pip-audit" -r "$REQUIREMENTS" -s pypi --no-deps --disable-pip --progress-spinner off \
  --format json --output "$report" "${ignored[@]}"
status=$?
if ! test -s "$report"; then
  warn_and_pass "pip-audit could not audit $REQUIREMENTS (exit $status; network or PyPI error above)"
fi

"$AUDIT_VENV/bin/python" - "$report" "$REQUIREMENTS" <<'PY'
import json
import sys

report, requirements = json.load(open(sys.argv[1])), sys.argv[2]
audited = [d for d in report["dependencies"] if "skip_reason" not in d]
skipped = [d for d in report["dependencies"] if "skip_reason" in d]
fixable, unfixed = [], []
for dep in audited:
    for vuln in dep["vulns"]:
        (fixable if vuln["fix_versions"] else unfixed).append((dep, vuln))
print(f"pip-audit (PyPI advisories): {len(audited)} pinned packages of {requirements} audited, "
      f"{len(fixable) + len(unfixed)} known vulnerabilities ({len(fixable)} with a fixed version)")
for label, found in (("FIX AVAILABLE", fixable), ("no fix yet", unfixed)):
    for dep, vuln in found:
        aliases = ", ".join(vuln.get("aliases") or []) or "-"
        fixed = ", ".join(vuln["fix_versions"]) or "-"
        summary = " ".join((vuln.get("description") or "").split())[:160]
        print(f"  [{label}] {dep['name']} {dep['version']}: {vuln['id']} (aliases {aliases}); fixed in {fixed}\n"
              f"      {summary}")
for dep in skipped:
    print(f"  not audited: {dep['skip_reason']}")
if skipped:
    print(f"WARNING: {len(skipped)} of {len(report['dependencies'])} packages could not be audited (the advisory "
          "service did not answer for them): no news is not good news for those")
if unfixed:
    print("WARNING: vulnerabilities without a fixed release: read them; accept with AUDIT_IGNORE or replace the package")
if fixable:
    print('FAILED: move each pin to a fixed version: PIP_COMPILE_ARGS="-P name==version" make requirements')
    sys.exit(1)
PY
