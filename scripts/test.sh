#!/usr/bin/env bash
# Runs the whole oee-stream test suite on a fresh machine.
#
# It installs what the tests need when it is missing (a Rust toolchain is assumed: see
# README.md), then runs every test of the workspace. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "checking for Mosquitto (the MQTT integration tests start their own brokers)"
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
    apt-get update && apt-get install -y mosquitto
fi
# The package starts a system broker on 1883; the tests do not need it.
systemctl disable --now mosquitto >/dev/null 2>&1 || true

step "checking the committed protobuf code against proto/sparkplug_b.proto"
cargo run --quiet --locked -p xtask -- check-proto

step "running the workspace tests"
cargo test --workspace --locked "$@"
