#!/usr/bin/env bash
# Runs the whole oee-stream test suite on a fresh machine.
#
# It installs what the tests need when it is missing (a Rust toolchain is assumed: see
# README.md), then runs every test of the workspace. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "checking the committed protobuf code against proto/sparkplug_b.proto"
cargo run --quiet --locked -p xtask -- check-proto

step "running the workspace tests"
cargo test --workspace --locked "$@"
