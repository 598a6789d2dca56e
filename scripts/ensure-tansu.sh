#!/usr/bin/env bash
# Make sure the Tansu 0.6.0 Kafka-compatible broker binary is installed in the cache,
# building it with cargo if it is missing, and print its path on stdout.
#
# Usage: scripts/ensure-tansu.sh
#
#   stdout: absolute path of the tansu binary (the only thing printed on stdout)
#   stderr: progress logs and cargo's build output
#
# Environment:
#   MESSAGING_CACHE_DIR      cache root (default: $HOME/.cache/messaging-ci); the
#                            binary is $MESSAGING_CACHE_DIR/tansu-0.6.0/bin/tansu
#   TANSU_BUILD_WAIT_SECS    how long to wait for another cargo install into the same
#                            directory that this script did not start (default 3600)
#
# A cold build takes 15-20 minutes on 2 cores:
#   cargo install tansu --version 0.6.0 --locked --features dynostore,libsql \
#       --root <cache>/tansu-0.6.0 --target-dir <cache>/tansu-0.6.0-build
# (the default features have no storage engine; dynostore gives memory://, libsql gives
# sqlite://). The build directory is kept in the cache while building so that an
# interrupted build resumes where it stopped, and removed after a successful install.
# An interrupted install never leaves a binary behind (cargo copies it at the very
# end), so "binary missing" simply means "run cargo install again".
#
# Concurrency: installs through this script are serialised with flock; a cargo install
# into the same --root started some other way is detected (by its command line) and
# waited for instead of starting a second build.
set -euo pipefail

TANSU_VERSION=0.6.0
TANSU_FEATURES=dynostore,libsql

log() { printf '[ensure-tansu] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

cache_dir=${MESSAGING_CACHE_DIR:-$HOME/.cache/messaging-ci}
root="$cache_dir/tansu-$TANSU_VERSION"
bin="$root/bin/tansu"
target_dir="$cache_dir/tansu-$TANSU_VERSION-build"
wait_secs=${TANSU_BUILD_WAIT_SECS:-3600}

binary_ok() {
    [[ -x $bin ]] && "$bin" --help >/dev/null 2>&1
}

# PIDs of running "cargo install ... tansu ... --root <root>" processes (any owner).
other_installs() {
    local d cmd
    for d in /proc/[0-9]*; do
        [[ -r $d/cmdline ]] || continue
        cmd=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) || continue
        case $cmd in
            *cargo\ install\ *tansu*--root\ "$root"\ * | *cargo\ install\ *tansu*--root\ "$root")
                echo "${d#/proc/}" ;;
        esac
    done
}

wait_for_other_installs() {
    local pids start now
    pids=$(other_installs)
    [[ -z $pids ]] && return 0
    log "another cargo install into $root is running (pid $(echo $pids)); waiting for it (up to ${wait_secs}s)"
    start=$(date +%s)
    while [[ -n $(other_installs) ]]; do
        now=$(date +%s)
        (( now - start < wait_secs )) || die "gave up waiting for pid(s) $(echo $pids) after ${wait_secs}s"
        sleep 10
    done
    log "the other install finished after $(( $(date +%s) - start ))s"
}

if binary_ok; then
    echo "$bin"
    exit 0
fi

mkdir -p "$cache_dir"
exec 9>"$cache_dir/tansu-$TANSU_VERSION.lock"
log "waiting for lock $cache_dir/tansu-$TANSU_VERSION.lock"
flock 9

wait_for_other_installs
if binary_ok; then
    echo "$bin"
    exit 0
fi

cargo=$(command -v cargo || true)
if [[ -z $cargo && -x $HOME/.cargo/bin/cargo ]]; then
    cargo=$HOME/.cargo/bin/cargo
fi
[[ -n $cargo ]] || die "cargo not found (install a Rust toolchain)"

if [[ -e $bin ]]; then
    log "existing $bin does not run; reinstalling"
    rm -f "$bin"
fi

log "building tansu $TANSU_VERSION (features $TANSU_FEATURES) into $root; this takes 15-20 minutes cold"
start=$(date +%s)
"$cargo" install tansu --version "$TANSU_VERSION" --locked --features "$TANSU_FEATURES" \
    --root "$root" --target-dir "$target_dir" --force >&2 \
    || die "cargo install tansu $TANSU_VERSION failed (re-run to resume: the build dir $target_dir is kept)"
binary_ok || die "cargo install finished but $bin does not run"
log "built in $(( $(date +%s) - start ))s"
rm -rf "$target_dir"

echo "$bin"
