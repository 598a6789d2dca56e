#!/usr/bin/env bash
# Run every test: formatting and lints, the whole workspace (memory driver, Kafka on
# librdkafka's embedded mock cluster), the conformance suite and fault tests on a real
# Kafka-protocol broker (Tansu, installed and started here), and the interoperability
# tests against the real Python oslo.messaging and Ceilometer (installed here in a venv).
#
# Caches (reused by later runs): ${MESSAGING_CACHE_DIR:-$HOME/.cache/messaging-ci}
#   tansu-0.6.0/  the broker build (a cold build takes ~15 minutes on 2 cores)
#   venv-oslo/    the Python environment
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export MESSAGING_CACHE_DIR="${MESSAGING_CACHE_DIR:-$HOME/.cache/messaging-ci}"
mkdir -p "$MESSAGING_CACHE_DIR"

step() { printf '\n==> %s\n' "$*" >&2; }

step "installing the broker and the Python environment (cached after the first run)"
# Both are independent: build the broker while pip installs the Python side.
scripts/ensure-tansu.sh >"$MESSAGING_CACHE_DIR/ensure-tansu.out" 2>"$MESSAGING_CACHE_DIR/ensure-tansu.log" &
tansu_pid=$!
python_bin=$(scripts/python-env.sh)
if ! wait "$tansu_pid"; then
    tail -n 40 "$MESSAGING_CACHE_DIR/ensure-tansu.log" >&2
    echo "error: could not install the Tansu broker" >&2
    exit 1
fi

step "formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "starting a Tansu broker (sqlite storage)"
export TANSU_INSTANCE="ci-$$"
cleanup() { scripts/tansu.sh stop --name "$TANSU_INSTANCE" >/dev/null 2>&1 || true; }
trap cleanup EXIT
bootstrap=$(scripts/tansu.sh start --name "$TANSU_INSTANCE")
echo "broker at $bootstrap" >&2

export KAFKA_BOOTSTRAP_SERVERS="$bootstrap"
export MESSAGING_REQUIRE_BROKER=1
export MESSAGING_INTEROP_PYTHON="$python_bin"
export MESSAGING_TANSU_SCRIPT="$root/scripts/tansu.sh"

step "cargo test --workspace (every tier: memory, Kafka mock, Kafka on Tansu, oslo.messaging interop)"
cargo test --workspace --no-fail-fast -- --test-threads=2

step "the crates package (cargo package builds each published crate from its packaged files)"
cargo package --workspace --exclude integration-tests --exclude examples --quiet

step "the demo runs"
cargo run --quiet -p messaging-cli --bin messaging -- demo >/dev/null   # the test build, already compiled

echo "all tests passed" >&2
