#!/usr/bin/env bash
# Build the bundle first: VENV=.venv ../shared/device/make-bundle.sh; git archive OLD voice_server clients pyproject.toml | gzip > .devb/src-old.tgz; cp .devb/src.tgz .devb/src-new.tgz
# Interleaved old/new load-test pairs on the many-core machine: the server pinned to core 0, the
# generator on the others; prints cpu_us_per_copy and added latency p99 per run. PAIRS, SPEC, DUR.
set -u
OUTD=${OUT:-/tmp/devout}; mkdir -p "$OUTD"; exec > >(tee "$OUTD/pairs.txt") 2>&1
echo "arch=$(uname -m) cores=$(nproc) load=$(cat /proc/loadavg)"
B=/tmp/vsb; rm -rf $B; mkdir -p $B/old $B/new
for t in py sp; do tar xzf .devb/$t.tgz -C $B || exit 3; done
tar xzf .devb/src-old.tgz -C $B/old || exit 3; tar xzf .devb/src-new.tgz -C $B/new || exit 3
export PYTHONHOME=$B/py LD_LIBRARY_PATH=$B/py/lib
PY=$(ls $B/py/bin/python3.* | head -1); LAST=$(( $(nproc) - 1 ))
up() { $PY -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1" 2>/dev/null; }
spec=${SPEC:-30x20}; ch=${spec%x*}; per=${spec#*x}
run() {  # run VERSION INDEX
  local v=$1 i=$2 D; D=$(mktemp -d)
  export PYTHONPATH=$B/sp:$B/$v:$B/$v/clients/headset
  (cd $B/$v; $PY -c "import ssl, voice_server.cli") || { echo "import failed ($v)"; return; }
  cd $B/$v
  taskset -c 0 $PY -m voice_server.cli serve --data-dir $D --port 18$i$((RANDOM%9)) --media-port 41$i$((RANDOM%9))0 > $OUTD/s-$v-$i.log 2>&1 &
  local SP=$! PORT; PORT=$(sed -n 's/.*--port \([0-9]*\).*/\1/p' /proc/$SP/cmdline 2>/dev/null)
  PORT=$(tr '\0' ' ' < /proc/$SP/cmdline | sed -n 's/.*--port \([0-9]*\) .*/\1/p')
  for k in $(seq 100); do up http://127.0.0.1:$PORT/healthz && break; sleep 0.2; done
  taskset -c 1-$LAST timeout 240 $PY -m voice_server.cli loadtest --url http://127.0.0.1:$PORT --data-dir $D \
    --server-pid $SP --channels $ch --per-channel $per --talkers 2 --duration ${DUR:-20} --join-rate 200 --workers 2 \
    --json $OUTD/l-$v-$i.json > $OUTD/l-$v-$i.txt 2>&1
  $PY - "$OUTD/l-$v-$i.json" "$v" "$i" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1])); s = r.get("server", {})
print(f"{sys.argv[2]} {sys.argv[3]} cpu_us_per_copy={s.get('cpu_us_per_copy')} p99={s.get('added_latency_ms', {}).get('p99')} valid={r.get('valid')}")
PYEOF
  kill $SP; wait $SP 2>/dev/null; rm -rf $D; cd /
}
for i in $(seq ${PAIRS:-5}); do
  if [ $((i % 2)) = 1 ]; then run old $i; run new $i; else run new $i; run old $i; fi
done
