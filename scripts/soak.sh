#!/usr/bin/env bash
# Soak test: `oee-stream run` (release build, the demo configuration) writing to PostgreSQL,
# fed by `oee-stream simulate` at a steady rate for a long time, on loopback. Every SAMPLE_S
# seconds it records the service's RSS, queue depths, spool, processing latency and counts in
# OUT_DIR/samples.csv; at the end it stops the service with SIGTERM and compares what the
# simulator published, what the service received and what PostgreSQL holds. See
# docs/reliability.md ("Soak").
#
# Usage: scripts/soak.sh [DURATION_S=3600] [RATE=1000] [OUT_DIR=soak-<date>]
# Needs: mosquitto, PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth; or PGURL=…),
# psql, python3. It creates the database oee_soak_<pid> and drops it at the end unless
# KEEP_DB=1. Other OEE_* variables reach the service (e.g. OEE_OEE__REVISION_HORIZON_S=1800
# to see memory level off within a shorter run).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-3600}
RATE=${2:-1000}
OUT=${3:-soak-$(date -u +%Y%m%dT%H%M%SZ)}
SAMPLE_S=${SAMPLE_S:-60}
NODES=${NODES:-100}
DEVICES=${DEVICES:-10}
BIN=target/release/oee-stream

if [ -e "$OUT/spool" ]; then
    echo "$OUT/spool exists (an earlier run would be replayed into this one); use a new OUT_DIR" >&2
    exit 1
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
[ -x "$BIN" ] || cargo build --release --locked -p oee-stream --bin oee-stream
# shellcheck source=scripts/loopback.sh
. scripts/loopback.sh
start_loopback "$OUT" oee_soak

OEE_MQTT__URL="mqtt://127.0.0.1:$MQTT_PORT" \
OEE_MQTT__HOST_ID=oee-soak \
OEE_HTTP__LISTEN="127.0.0.1:$HTTP_PORT" \
OEE_DATABASE__URL="$PGURL/$DB" \
OEE_DATABASE__SPOOL__DIR="$OUT/spool" \
OEE_LOG__LEVEL=info \
    "$BIN" run --config crates/oee-stream/src/demo/demo.yml 2>"$OUT/service.log" &
SERVICE=$!
pids+=("$SERVICE")
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$HTTP_PORT/ready" >/dev/null && break
    sleep 0.2
done

"$BIN" simulate --broker "mqtt://127.0.0.1:$MQTT_PORT" --rate "$RATE" --nodes "$NODES" \
    --devices-per-node "$DEVICES" --for "${DURATION}s" 2>"$OUT/simulate.log" &
SIM=$!
pids+=("$SIM")

python3 - "$SERVICE" "$HTTP_PORT" "$SAMPLE_S" "$SIM" >"$OUT/samples.csv" <<'EOF'
import os, re, sys, time, urllib.request
pid, port, every, sim = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
DDATA = 'oee_stream_mqtt_messages_total{type="DDATA"}'
TELEMETRY = 'oee_stream_rows_written_total{table="telemetry"}'

def scrape():
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    m = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            try:
                m[k] = float(v)
            except ValueError:
                pass
    return m

def rss_kib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

def total(m, name):
    return sum(v for k, v in m.items() if k == name or k.startswith(name + "{"))

def buckets(m):
    out = {}
    for k, v in m.items():
        r = re.search(r'le="([^"]+)"', k)
        if k.startswith("stream_processor_pipeline_duration_seconds_bucket{") and 'stage="total"' in k and r:
            out[float(r.group(1))] = v
    return sorted(out.items())

def quantile(prev, cur, q):
    # Upper bound of the bucket holding the q-quantile of the observations between scrapes.
    d = [(le, c - dict(prev).get(le, 0.0)) for le, c in cur]
    n = d[-1][1] if d else 0
    for le, c in d:
        if n and c >= q * n:
            return le
    return float("nan")

print("elapsed_s,rss_kib,messages,ddata,telemetry_rows,records_out,sink_queue,shard_queue,"
      "spool_bytes,db_errors,p50_ms,p99_ms,windows_out,retained_inputs,retained_slices,"
      "retained_windows")
t0 = time.time()
prev = []
while True:
    m = scrape()
    cur = buckets(m)
    row = [
        f"{time.time() - t0:.0f}", str(rss_kib()),
        f"{total(m, 'oee_stream_mqtt_messages_total'):.0f}",
        f"{m.get(DDATA, 0):.0f}",
        f"{m.get(TELEMETRY, 0):.0f}",
        f"{m.get('oee_stream_records_out_total', 0):.0f}",
        f"{m.get('oee_stream_sink_queue_depth', 0):.0f}",
        f"{total(m, 'oee_stream_shard_queue_depth'):.0f}",
        f"{m.get('oee_stream_spool_bytes', 0):.0f}",
        f"{m.get('oee_stream_database_errors_total', 0):.0f}",
        f"{quantile(prev, cur, 0.5) * 1000:.3f}",
        f"{quantile(prev, cur, 0.99) * 1000:.3f}",
        f"{m.get('oee_calculator_window_results_total', 0):.0f}",
        f"{m.get('oee_calculator_retained_inputs', 0):.0f}",
        f"{m.get('oee_calculator_retained_slices', 0):.0f}",
        f"{m.get('oee_calculator_retained_windows', 0):.0f}",
    ]
    print(",".join(row), flush=True)
    prev = cur
    if not os.path.exists(f"/proc/{sim}") or open(f"/proc/{sim}/stat").read().split()[2] == "Z":
        break
    time.sleep(every)
EOF

wait "$SIM" || true
# Until the received count stops moving (the broker has delivered everything), then SIGTERM:
# the service finishes what it received and drains the sink to the database.
last=-1
for _ in $(seq 1 60); do
    curl -s "http://127.0.0.1:$HTTP_PORT/metrics" >"$OUT/metrics-final.txt"
    now=$(grep -E '^oee_stream_mqtt_messages_total' "$OUT/metrics-final.txt" | awk '{s+=$2} END {print s}')
    [ "$now" = "$last" ] && break
    last=$now
    sleep 1
done
kill -TERM "$SERVICE"
wait "$SERVICE" || true

{
    echo "duration_s=$DURATION rate=$RATE nodes=$NODES devices_per_node=$DEVICES"
    echo "simulator: $(tail -n 1 "$OUT/simulate.log")"
    grep -E '^oee_stream_mqtt_messages_total|^oee_stream_rows_written_total|^oee_stream_records_out_total|^oee_stream_database_errors_total|^oee_stream_batches_dead_lettered_total|^oee_calculator_inputs_too_late_total' \
        "$OUT/metrics-final.txt"
    echo "service at stop: $(grep -E ' stopped' "$OUT/service.log" | tail -n 1)"
    echo "telemetry rows in PostgreSQL: $(psql -tAq "$PGURL/$DB" -c 'SELECT count(*) FROM telemetry')"
    echo "receipt delay (received_at - time) p50/p99/max ms: $(psql -tAq "$PGURL/$DB" -c \
        "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY d)::numeric, 1) || ' / ' ||
                round(percentile_cont(0.99) WITHIN GROUP (ORDER BY d)::numeric, 1) || ' / ' || max(d)
         FROM (SELECT extract(epoch FROM received_at - time) * 1000 AS d FROM telemetry
               WHERE quality = 192 AND NOT is_historical) t")"
    echo "first and last samples:"
    head -n 2 "$OUT/samples.csv"
    tail -n 1 "$OUT/samples.csv"
} | tee "$OUT/summary.txt"
