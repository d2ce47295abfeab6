#!/usr/bin/env bash
# Heap profile of `oee-stream run` under load: the service (release build, the demo
# configuration, a fresh PostgreSQL database) runs under heaptrack while `oee-stream simulate`
# publishes at RATE msg/s for DURATION_S seconds, on loopback. Writes OUT_DIR/heap.zst (open it
# with `heaptrack_print -f OUT_DIR/heap.zst` or heaptrack_gui) and the final /metrics. The shape
# of the issue-7 memory run by default: 100 nodes × 13 machines (BENCHMARKS.md, "Memory").
#
# Usage: scripts/heap-profile.sh [DURATION_S=300] [RATE=10000] [OUT_DIR=heap-<date>]
# Needs: heaptrack (apt-get install heaptrack), mosquitto, PostgreSQL on 127.0.0.1:5432 (user
# postgres, trust auth; or PGURL=…), psql, python3, curl.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-300}
RATE=${2:-10000}
OUT=${3:-heap-$(date -u +%Y%m%dT%H%M%SZ)}
NODES=${NODES:-100}
DEVICES=${DEVICES:-13}
# Built without jemalloc (the default allocator of the binary): heaptrack follows only the
# system allocator. A target directory of its own keeps target/release as it is.
BIN=target/heap/release/oee-stream

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
[ -x "$BIN" ] || CARGO_TARGET_DIR=target/heap cargo build --release --locked -p oee-stream \
    --bin oee-stream --no-default-features
# shellcheck source=scripts/loopback.sh
. scripts/loopback.sh
start_loopback "$OUT" oee_heap

# Set here, the service does not re-execute itself to set it (main.rs), which heaptrack would
# not follow.
MALLOC_ARENA_MAX=1 \
OEE_MQTT__URL="mqtt://127.0.0.1:$MQTT_PORT" \
OEE_MQTT__HOST_ID=oee-heap \
OEE_HTTP__LISTEN="127.0.0.1:$HTTP_PORT" \
OEE_DATABASE__URL="$PGURL/$DB" \
OEE_DATABASE__SPOOL__DIR="$OUT/spool" \
    heaptrack -o "$OUT/heap" "$BIN" run --config crates/oee-stream/src/demo/demo.yml \
    >"$OUT/heaptrack.log" 2>"$OUT/service.log" &
SERVICE=$!
pids+=("$SERVICE")
for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$HTTP_PORT/ready" >/dev/null && break
    sleep 0.2
done

"$BIN" simulate --broker "mqtt://127.0.0.1:$MQTT_PORT" --rate "$RATE" --nodes "$NODES" \
    --devices-per-node "$DEVICES" --for "${DURATION}s" 2>"$OUT/simulate.log"
curl -s "http://127.0.0.1:$HTTP_PORT/metrics" >"$OUT/metrics-final.txt"
# heaptrack's script does not pass SIGTERM on: stop the service itself (its child), then wait
# for heaptrack to finish writing.
APP=$(pgrep -P "$SERVICE" -x oee-stream || true)
kill -TERM "${APP:-$SERVICE}"
wait "$SERVICE" || true
grep -E '^oee_calculator_retained' "$OUT/metrics-final.txt"
heaptrack_print -f "$OUT/heap.zst" --print-peaks 0 --print-allocators 0 --print-temporary 0 \
    --print-leaks 0 | grep -E 'peak heap|calls to allocation'
echo "profile: $OUT/heap.zst (heaptrack_print -f $OUT/heap.zst --print-peaks 1)"
