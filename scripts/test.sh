#!/usr/bin/env bash
# Runs the whole oee-stream test suite on a fresh machine.
#
# It installs what the tests need when it is missing (a Rust toolchain is assumed: see
# README.md), then runs every test of the workspace. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "checking for a C compiler and make (the binary builds jemalloc, its allocator)"
if ! command -v cc >/dev/null || ! command -v make >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc make
fi

step "checking for Mosquitto (the MQTT integration tests start their own brokers)"
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
    apt-get update && apt-get install -y mosquitto
fi

step "checking for Chromium (the dashboard test drives a real headless browser)"
if [ -z "${OEE_TEST_CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi

step "checking the committed protobuf code against proto/sparkplug_b.proto"
cargo run --quiet --locked -p xtask -- check-proto

# The sink tests need PostgreSQL 15: a running server on 127.0.0.1:5432 (user postgres, trust
# auth) and the server binaries (initdb, pg_ctl) for the throwaway cluster of the outage test.
# OEE_TEST_PG=postgres://USER@HOST:PORT points the tests at another server instead.
PG_BIN=/usr/lib/postgresql/15/bin
if [ ! -x "$PG_BIN/initdb" ]; then
    step "installing postgresql-15 (server binaries for the sink tests)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15
fi
if [ -z "${OEE_TEST_PG:-}" ]; then
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        step "starting the local PostgreSQL 15 cluster"
        pg_ctlcluster 15 main start || true
        for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    fi
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        echo "error: PostgreSQL is not reachable on 127.0.0.1:5432; the sink tests need it" >&2
        echo "       (start it, or set OEE_TEST_PG=postgres://USER@HOST:PORT)" >&2
        exit 1
    fi
fi

step "running the workspace tests"
cargo test --workspace --locked "$@"
