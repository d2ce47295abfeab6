#!/usr/bin/env bash
# How long the start-up rebuild of the OEE engine takes, and its peak RSS (BENCHMARKS.md,
# "Start-up rebuild"): a database of its own on the local PostgreSQL gets MACHINES × 3 OEE
# signals (counter.total, counter.good, state.running), one row a second each, for 4 hours
# (the default oee.rebuild_s of 2 h reads all of it: the range and, before it, the seeds);
# then `oee-stream run` starts on it with an unreachable broker, and the script reads the
# rebuild's log line and the process's peak RSS, stops it and drops the database.
#
# Usage: scripts/rebuild-bench.sh [MACHINES=100]   (needs psql and a release build)
set -euo pipefail
cd "$(dirname "$0")/.."

MACHINES=${1:-100}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
BIN=${BIN:-target/release/oee-stream}
DB=oee_rebuild_bench_$$
DIR=$(mktemp -d)
trap 'psql "$PGURL/postgres" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null; rm -rf "$DIR"' EXIT

psql "$PGURL/postgres" -qc "CREATE DATABASE $DB"
cat > "$DIR/oee.yml" <<YAML
mqtt:
  url: mqtt://127.0.0.1:1
database:
  url: $PGURL/$DB
  spool:
    dir: $DIR/spool
http:
  listen: 127.0.0.1:0
log:
  level: info
YAML
# A first start creates the schema (no data yet: nothing to rebuild).
"$BIN" run --config "$DIR/oee.yml" > /dev/null 2> "$DIR/first.log" &
P=$!
for _ in $(seq 1 120); do grep -q "oee-stream running" "$DIR/first.log" && break; sleep 0.5; done
kill -TERM $P; wait $P || true

echo "generating $((MACHINES * 3 * 14400)) telemetry rows"
psql "$PGURL/$DB" -q <<SQL
INSERT INTO telemetry (time, site_id, line_id, machine_id, signal_type, value, quality,
    sp_group, sp_edge_node, sp_device, sp_metric, is_historical, received_at, order_key, int_bits)
SELECT t, 'S1', 'L' || (m / 10), 'M' || m, st.sig,
       CASE st.sig WHEN 'state.running' THEN (CASE WHEN (s / 600) % 5 = 4 THEN 0 ELSE 1 END)
                   ELSE (s * 2 + (st.sig = 'counter.good')::int) % 65536 END,
       192, 'G', 'E' || (m / 10), 'D' || m, st.metric, false, t + interval '50 ms',
       (1::bigint << 24) | ((s % 256) << 16) | st.idx,
       CASE WHEN st.sig = 'state.running' THEN NULL ELSE 16 END
FROM generate_series(0, $MACHINES - 1) AS m,
     generate_series(0, 14399) AS s,
     (VALUES ('counter.total', 'Total', 0), ('counter.good', 'Good', 1),
             ('state.running', 'Running', 2)) AS st(sig, metric, idx),
     LATERAL (SELECT now() - interval '4 hours' + s * interval '1 s' AS t) AS tt;
ANALYZE telemetry;
SQL

"$BIN" run --config "$DIR/oee.yml" > /dev/null 2> "$DIR/run.log" &
P=$!
for _ in $(seq 1 600); do grep -q "oee-stream running" "$DIR/run.log" && break; sleep 0.5; done
grep VmHWM /proc/$P/status
kill -TERM $P; wait $P || true
grep -a "OEE state rebuilt" "$DIR/run.log" | sed 's/.*from=/from=/'
