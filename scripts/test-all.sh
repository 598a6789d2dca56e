#!/usr/bin/env bash
# Run every test: formatting and lints, the whole workspace (memory driver, Kafka on
# librdkafka's embedded mock cluster), the conformance suite and fault tests on a real
# Kafka-protocol broker (Tansu, installed and started here), the tests that need a real
# RabbitMQ node (Debian's rabbitmq-server, installed with apt-get and started here as a
# private node), and the interoperability tests against the real Python oslo.messaging
# (Kafka and rabbit drivers) and Ceilometer (installed here in a venv).
#
# A short smoke of every fuzz target (scripts/fuzz.sh, MESSAGING_FUZZ_SMOKE_SECONDS
# each, default 15) runs in the background alongside `cargo test`; a finding fails the
# run; without nightly Rust (or when cargo-fuzz cannot be installed) it says it is
# skipped and why.
#
# Caches (reused by later runs): ${MESSAGING_CACHE_DIR:-$HOME/.cache/messaging-ci}
#   tansu-0.6.0/  the broker build (a cold build takes ~15 minutes on 2 cores)
#   venv-oslo/    the Python environment
#   fuzz-target/  the fuzz targets' build (cargo-fuzz itself is in ~/.cargo/bin)
# RabbitMQ is a system package (apt-get install rabbitmq-server, ~15-25 s, needs root),
# installed once by scripts/ensure-rabbitmq.sh.
#
# Environment given to the tests: KAFKA_BOOTSTRAP_SERVERS, MESSAGING_TANSU_SCRIPT,
# TANSU_INSTANCE (the Tansu broker); RABBITMQ_URL (rabbit://guest:guest@127.0.0.1:PORT/),
# MESSAGING_RABBIT_SCRIPT, RABBITMQ_INSTANCE (the RabbitMQ node: `$MESSAGING_RABBIT_SCRIPT
# restart|ctl ...` act on it); MESSAGING_REQUIRE_BROKER=1, MESSAGING_INTEROP_PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export MESSAGING_CACHE_DIR="${MESSAGING_CACHE_DIR:-$HOME/.cache/messaging-ci}"
mkdir -p "$MESSAGING_CACHE_DIR"
# A test run builds once: incremental compilation's state (GBs under target/) buys
# nothing here and has filled a CI machine's disk.
export CARGO_INCREMENTAL=0

step() { printf '\n==> %s\n' "$*" >&2; }

# Free space, for the record: a full disk shows up as a rustc or linker crash.
df -h . "$MESSAGING_CACHE_DIR" 2>/dev/null | sed 's/^/disk: /' >&2 || true

step "installing the brokers and the Python environment (cached after the first run)"
# All three are independent: build Tansu and apt-get RabbitMQ while pip installs the
# Python side.
scripts/ensure-tansu.sh >"$MESSAGING_CACHE_DIR/ensure-tansu.out" 2>"$MESSAGING_CACHE_DIR/ensure-tansu.log" &
tansu_pid=$!
scripts/ensure-rabbitmq.sh >"$MESSAGING_CACHE_DIR/ensure-rabbitmq.out" 2>"$MESSAGING_CACHE_DIR/ensure-rabbitmq.log" &
rabbit_pid=$!
python_bin=$(scripts/python-env.sh)
if ! wait "$tansu_pid"; then
    tail -n 40 "$MESSAGING_CACHE_DIR/ensure-tansu.log" >&2
    echo "error: could not install the Tansu broker" >&2
    exit 1
fi
if ! wait "$rabbit_pid"; then
    tail -n 40 "$MESSAGING_CACHE_DIR/ensure-rabbitmq.log" >&2
    echo "error: could not install RabbitMQ (rabbitmq-server)" >&2
    exit 1
fi

step "formatting and lints"
cargo fmt --all -- --check
rustfmt --check --edition 2021 fuzz/fuzz_targets/*.rs   # the fuzz crate is a workspace of its own
cargo clippy --workspace --all-targets -- -D warnings

step "starting a Tansu broker (sqlite storage) and a RabbitMQ node"
export TANSU_INSTANCE="ci-$$"
export RABBITMQ_INSTANCE="ci-$$"
rabbit_start_pid=""
fuzz_pid=""
cleanup() {
    [[ -z $fuzz_pid ]] || kill -- "-$fuzz_pid" 2>/dev/null || true
    scripts/tansu.sh stop --name "$TANSU_INSTANCE" >/dev/null 2>&1 || true
    # A start still in progress (Tansu failed first) is let finish, so that stop finds the node.
    [[ -z $rabbit_start_pid ]] || wait "$rabbit_start_pid" 2>/dev/null || true
    scripts/rabbitmq.sh stop --name "$RABBITMQ_INSTANCE" >/dev/null 2>&1 || true
    rm -f "${rabbit_out:-}" "${rabbit_log:-}"
}
trap cleanup EXIT
# RabbitMQ takes ~6-12 s to accept connections: start it in the background meanwhile.
rabbit_out=$(mktemp)
rabbit_log=$(mktemp)
scripts/rabbitmq.sh start --name "$RABBITMQ_INSTANCE" >"$rabbit_out" 2>"$rabbit_log" &
rabbit_start_pid=$!
bootstrap=$(scripts/tansu.sh start --name "$TANSU_INSTANCE")
echo "broker at $bootstrap" >&2
if ! wait "$rabbit_start_pid"; then
    rabbit_start_pid=""
    cat "$rabbit_log" >&2
    echo "error: could not start the RabbitMQ node" >&2
    exit 1
fi
rabbit_start_pid=""
rabbit_url=$(cat "$rabbit_out")
echo "RabbitMQ at $rabbit_url" >&2

export KAFKA_BOOTSTRAP_SERVERS="$bootstrap"
export MESSAGING_REQUIRE_BROKER=1
export MESSAGING_INTEROP_PYTHON="$python_bin"
export MESSAGING_TANSU_SCRIPT="$root/scripts/tansu.sh"
export RABBITMQ_URL="$rabbit_url"
export MESSAGING_RABBIT_SCRIPT="$root/scripts/rabbitmq.sh"

fuzz_seconds=${MESSAGING_FUZZ_SMOKE_SECONDS:-15}
fuzz_log="$MESSAGING_CACHE_DIR/fuzz-smoke.log"
if rustup run nightly rustc --version >/dev/null 2>&1; then
    step "fuzz smoke in the background: every target for ${fuzz_seconds}s (log $fuzz_log)"
    # Its own process group (setsid does not fork here: a background job is no group
    # leader), so that cleanup's kill reaches cargo and the fuzzer too.
    MESSAGING_FUZZ_TARGET_DIR="$MESSAGING_CACHE_DIR/fuzz-target" \
        MESSAGING_FUZZ_LOG_DIR="$MESSAGING_CACHE_DIR/fuzz-logs" \
        setsid -w nice -n 10 scripts/fuzz.sh "$fuzz_seconds" >"$fuzz_log" 2>&1 &
    fuzz_pid=$!
else
    step "fuzz smoke SKIPPED: nightly Rust is not installed (rustup toolchain install nightly)"
fi

step "cargo test --workspace (every tier: memory, Kafka mock, Kafka on Tansu, RabbitMQ, oslo.messaging interop)"
test_rc=0
cargo test --workspace --no-fail-fast -- --test-threads=2 || test_rc=$?

if [[ -n $fuzz_pid ]]; then
    fuzz_rc=0
    wait "$fuzz_pid" || fuzz_rc=$?
    fuzz_pid=""
    case $fuzz_rc in
        0) step "fuzz smoke: no findings"; sed -n '/^fuzz: [0-9]*s per target/,$p' "$fuzz_log" >&2 ;;
        2) step "fuzz smoke SKIPPED: $(grep '^fuzz: ' "$fuzz_log" | tail -n 1 || true)" ;;
        *)
            cat "$fuzz_log" >&2
            echo "error: the fuzz smoke failed (a finding or a build failure, above)" >&2
            exit 1
            ;;
    esac
fi
df -h . 2>/dev/null | sed 's/^/disk after the tests: /' >&2 || true
[[ $test_rc -eq 0 ]] || exit "$test_rc"

step "the crates package (cargo package builds each published crate from its packaged files)"
# cargo verifies each packaged crate against the others as a local registry, and treats
# registry crates as never changing for a given version: it extracts them once under
# $CARGO_HOME/registry/src/-HASH/ and keeps their builds. On a machine that packaged an
# earlier state of the same version, it would verify against those stale copies. Remove
# the extracted copies of our crates and forget the builds made from them.
cargo_home=${CARGO_HOME:-$HOME/.cargo}
target_dir=${CARGO_TARGET_DIR:-target}
for crate in messaging-core driver-memory driver-kafka driver-rabbit messaging-telemetry messaging-cli; do
    rm -rf "$cargo_home"/registry/src/-*/"$crate"-[0-9]*
    for d in $(grep -l "registry/src/-" "$target_dir"/debug/deps/"${crate//-/_}"-*.d 2>/dev/null); do
        hash=${d##*-}
        hash=${hash%.d}
        rm -rf "$target_dir/debug/.fingerprint/$crate-$hash" "$target_dir"/debug/deps/*"${crate//-/_}-$hash".* "$d"
    done
done
cargo package --workspace --exclude integration-tests --exclude examples --quiet

step "the demo runs"
cargo run --quiet -p messaging-cli --bin messaging -- demo >/dev/null   # the test build, already compiled

echo "all tests passed" >&2
