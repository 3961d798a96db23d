#!/usr/bin/env bash
# The newcomer's path as CI walks it: a second clone of this checkout in a temporary folder,
# `make run` there with a fresh virtual environment holding the runtime only (pip's wheel cache
# may be warm), then tests/smoke/newcomer.py drives it in Debian's Chromium inside a private
# network namespace (browsers offer no ICE candidate on loopback: voice_server/bench/netns.py).
# Needs the test environment (.venv with Playwright; Chromium) and root. Exit 1 names the step.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$(date +%s.%N)
work=$(mktemp -d /tmp/voice-smoke.XXXXXX)
shots=${SMOKE_SHOTS:-/tmp/voice-smoke-last}  # the walk's screenshots are kept here
finish() { mkdir -p "$shots"; cp "$work"/clone/smoke/*.png "$shots"/ 2>/dev/null || true; rm -rf "$work"; }
trap finish EXIT
git clone -q "$root" "$work/clone"
echo "newcomer smoke: installing the runtime only in a fresh clone ($work/clone)"
# `make run`'s own install step (runtime dependencies and the Korean model, nothing else)
if ! make -C "$work/clone" -s .venv/.stamp-runtime > "$work/install.log" 2>&1; then
  echo "newcomer smoke: step 'make run: install the runtime' failed:" >&2
  tail -30 "$work/install.log" >&2
  exit 1
fi
if grep -qi "SetuptoolsDeprecationWarning" "$work/install.log"; then
  echo "newcomer smoke: step 'make run: install the runtime' printed a SetuptoolsDeprecationWarning" >&2
  exit 1
fi
# make run itself (its server, transcriber and the browsers) inside a private network namespace
"$root/.venv/bin/python" -m voice_server.bench.netns \
  timeout 660 "$root/.venv/bin/python" "$root/tests/smoke/newcomer.py" \
  --clone "$work/clone" --port 8000 --timeout 600 --started "$started"
