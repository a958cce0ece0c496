#!/usr/bin/env bash
# Create .venv with Python 3.11 (or the newest python3 found) and install the pinned requirements:
#   scripts/bootstrap.sh          runtime only: requirements.txt (what `make run` needs)
#   scripts/bootstrap.sh --test   runtime + tests and lint: requirements.txt and requirements-test.txt
# Re-runs are cheap: each file's sha256 is stamped in .venv/.<file>.sha once it is installed, and pip
# runs only when a file it needs differs from its stamp (a new venv has no stamps, so it installs).
set -euo pipefail
cd "$(dirname "$0")/.."
files=(requirements.txt)
case "${1:-}" in
  --test) files+=(requirements-test.txt) ;;
  "") ;;
  *) echo "usage: $0 [--test]" >&2; exit 2 ;;
esac
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
