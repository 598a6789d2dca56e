#!/usr/bin/env bash
# Run every cargo-fuzz target (fuzz/fuzz_targets/) for SECONDS each (default 60), one
# after another, and print per target the executions, the coverage reached and the
# findings (crashes, panics, disagreements, timeouts, out-of-memory). Exits 1 when a
# target found something (its input is under fuzz/artifacts/<target>/), 2 when the
# tools are missing: nightly Rust (`rustup toolchain install nightly`) and cargo-fuzz
# (installed here with `cargo install cargo-fuzz` when missing, unless
# MESSAGING_FUZZ_NO_INSTALL=1).
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (all targets when none is named)
#
# Environment:
#   MESSAGING_FUZZ_TARGET_DIR  cargo's target dir for the fuzz build (default fuzz/target;
#                              scripts/test-all.sh keeps it under $MESSAGING_CACHE_DIR)
#   MESSAGING_FUZZ_LOG_DIR     where each target's libFuzzer log goes (default: a temp dir)
#   MESSAGING_FUZZ_ARGS        extra libFuzzer flags (e.g. "-max_len=65536")
#
# No sanitizer (--sanitizer none): the workspace forbids unsafe code, and with
# AddressSanitizer the C libraries librdkafka links (zstd) are instrumented while its
# configure step is not, so driver-kafka does not build. Panics, overflows (debug
# assertions are on), stack overflows, timeouts and out-of-memory are still caught.
#
# Each target starts from its committed seeds (fuzz/corpus/<target>/seed-*) and adds
# what it finds to the same directory (ignored by git: only seeds are committed).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seconds=${1:-60}
[[ $# -gt 0 ]] && shift
if ! [[ $seconds =~ ^[0-9]+$ ]] || [[ $seconds -lt 1 ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...] (SECONDS a whole number >= 1)" >&2
    exit 2
fi

if ! command -v rustup >/dev/null 2>&1 || ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz: nightly Rust is missing (cargo-fuzz needs it): install it with 'rustup toolchain install nightly'" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    if [[ ${MESSAGING_FUZZ_NO_INSTALL:-0} == 1 ]]; then
        echo "fuzz: cargo-fuzz is missing: install it with 'cargo install cargo-fuzz'" >&2
        exit 2
    fi
    echo "fuzz: cargo-fuzz is missing: installing it (cargo install cargo-fuzz --locked)" >&2
    if ! cargo install cargo-fuzz --locked >&2; then
        echo "fuzz: could not install cargo-fuzz (see above)" >&2
        exit 2
    fi
fi

target_dir=${MESSAGING_FUZZ_TARGET_DIR:-$root/fuzz/target}
log_dir=${MESSAGING_FUZZ_LOG_DIR:-$(mktemp -d)}
mkdir -p "$log_dir"
cd fuzz
if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

echo "fuzz: building ${#targets[@]} targets (target dir $target_dir)" >&2
for t in "${targets[@]}"; do
    if ! cargo +nightly fuzz build --sanitizer none --target-dir "$target_dir" "$t" >"$log_dir/build-$t.log" 2>&1; then
        tail -n 40 "$log_dir/build-$t.log" >&2
        echo "fuzz: building $t failed" >&2
        exit 1
    fi
done

found=0
summary=()
for t in "${targets[@]}"; do
    echo "fuzz: $t for ${seconds}s (log $log_dir/$t.log)" >&2
    mkdir -p "corpus/$t"
    rc=0
    # shellcheck disable=SC2086 # MESSAGING_FUZZ_ARGS is a list of flags
    cargo +nightly fuzz run --sanitizer none --target-dir "$target_dir" "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        ${MESSAGING_FUZZ_ARGS:-} >"$log_dir/$t.log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log_dir/$t.log" | tail -n 1 || true)
    cov=$(grep -oE '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)[[:space:]]+cov: [0-9]+' "$log_dir/$t.log" |
        tail -n 1 | sed -E 's/.*cov: //' || true)
    corpus=$(find "corpus/$t" -type f | wc -l)
    if [[ $rc -eq 0 ]]; then
        line=$(printf '%-18s %12s execs  cov %6s  corpus %5s  findings: none' "$t" "${execs:-?}" "${cov:-?}" "$corpus")
    else
        found=1
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log_dir/$t.log" | tail -n 1)
        line=$(printf '%-18s %12s execs  cov %6s  corpus %5s  FINDING (exit %s): %s' "$t" "${execs:-?}" "${cov:-?}" "$corpus" "$rc" "${artifact:-see the log}")
        # The panic or sanitizer report, for the CI log.
        grep -m 8 -E "panicked at|^thread '|ERROR: (libFuzzer|AddressSanitizer)|SUMMARY:" "$log_dir/$t.log" >&2 || tail -n 30 "$log_dir/$t.log" >&2
    fi
    echo "$line" >&2
    summary+=("$line")
done

echo >&2
echo "fuzz: ${seconds}s per target, $(date -u +%Y-%m-%dT%H:%MZ)" >&2
printf '  %s\n' "${summary[@]}" >&2
if [[ $found -ne 0 ]]; then
    echo "fuzz: findings above; the inputs are under fuzz/artifacts/<target>/ (reproduce: cd fuzz && cargo +nightly fuzz run <target> <file>)" >&2
    exit 1
fi
