# Shared by scripts/soak.sh and scripts/heap-profile.sh (source it; not a command): a private
# Mosquitto on a free loopback port and a database of its own on the local PostgreSQL, both
# removed on exit (the database is kept when KEEP_DB=1).
#
#   start_loopback OUT_DIR DB_PREFIX
#
# sets MQTT_PORT, HTTP_PORT (free for the service), DB, and `pids` (add the processes you start:
# they are killed on exit). Needs mosquitto, psql, python3; PGURL defaults to the local server.

PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

loopback_cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ "${KEEP_DB:-0}" != 1 ]; then
        psql -q "$PGURL/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
    fi
}

start_loopback() {
    local out=$1 prefix=$2
    MQTT_PORT=$(free_port)
    HTTP_PORT=$(free_port)
    DB=${prefix}_$$
    pids=()
    trap loopback_cleanup EXIT
    local mosquitto
    mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n' \
        "$MQTT_PORT" >"$out/mosquitto.conf"
    "$mosquitto" -c "$out/mosquitto.conf" 2>"$out/mosquitto.log" &
    pids+=($!)
    psql -q "$PGURL/postgres" -c "CREATE DATABASE $DB"
}
