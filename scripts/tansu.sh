#!/usr/bin/env bash
# Start, stop and restart a throw-away Tansu 0.6.0 broker (Kafka protocol) on loopback.
#
# Usage:
#   scripts/tansu.sh start   [--memory] [--authentication] [--name NAME]
#                                                       prints HOST:PORT (127.0.0.1:PORT)
#   scripts/tansu.sh stop    [--name NAME] [--clean]    SIGTERM (SIGKILL after 10 s); --clean
#                                                       also removes the instance's scratch dir
#                                                       (otherwise kept for its log)
#   scripts/tansu.sh restart [--name NAME] [--authentication|--no-authentication]
#                                                       kill -9, then start the SAME broker:
#                                                       same port, same storage (same sqlite
#                                                       file), same log; prints HOST:PORT.
#                                                       Authentication stays as it was unless
#                                                       a flag changes it (and is remembered)
#   scripts/tansu.sh status  [--name NAME]              prints HOST:PORT; exit 1 if not running
#   scripts/tansu.sh dir     [--name NAME]              prints the instance's scratch dir
#   scripts/tansu.sh create-topic TOPIC [--partitions N] [--name NAME]
#                                                       `tansu topic create` against the
#                                                       running instance (default 1 partition)
#   scripts/tansu.sh create-user USER PASSWORD [--mechanism scram256|scram512] [--name NAME]
#                                                       `tansu user create` against the running
#                                                       instance (default scram512)
#
# SASL SCRAM (SCRAM-SHA-256/512; sqlite storage only, Tansu 0.6.0 has no PLAIN): users are
# created through the broker, which must not require authentication yet, then the broker
# is restarted with --authentication on the same file:
#   addr=$(scripts/tansu.sh start --name sec)
#   scripts/tansu.sh create-user alice secret --mechanism scram512 --name sec
#   scripts/tansu.sh restart --authentication --name sec
# From then on every client must authenticate (`kafka://alice:secret@ADDR?sasl_mechanism=
# SCRAM-SHA-512`); a wrong password is refused (librdkafka: "SASL authentication error").
#
# TLS: `tansu broker` 0.6.0 lists --cert/--key but refuses them together (a clap
# conflict) and never uses a TLS acceptor (tansu-broker 0.6.0 src/broker.rs keeps it in
# an unused `_acceptor`): it always serves plain TCP, so this script offers no TLS.
#
# stdout carries only the result (address or dir); logs go to stderr.
#
# Instances: every instance has a name (--name, or $TANSU_INSTANCE, default "default") and
# a scratch dir $MESSAGING_SCRATCH_DIR/tansu-NAME (MESSAGING_SCRATCH_DIR defaults to
# /tmp/messaging-scratch) holding:
#   tansu.db       the sqlite storage (fresh for every `start`)
#   broker.log     the broker's stdout+stderr (appended to across restarts)
#   broker.pid     the broker's pid      broker.port  its port
#   broker.storage its --storage-engine URL
#   broker.auth    present when the broker runs with --authentication
# `start` refuses to run if that instance is already running; a stale instance dir (dead
# broker) is wiped. Use distinct names for brokers that run at the same time.
#
# Storage: sqlite (default, correctness tests; `--storage-engine sqlite://tansu.db`, a path
# relative to the broker's cwd = the scratch dir) or memory (`--memory` or
# TANSU_STORAGE=memory; `memory://tansu/`, for benchmarks only: it has a fetch bug
# with mid-batch offsets and loses everything on restart).
#
# Broker command line (checked against `tansu broker --help` of 0.6.0):
#   cd SCRATCH && tansu broker --listener-url tcp://127.0.0.1:PORT \
#       --advertised-listener-url tcp://127.0.0.1:PORT --storage-engine sqlite://tansu.db
# Tansu also reads CLUSTER_ID, LISTENER_URL, ADVERTISED_LISTENER_URL, STORAGE_ENGINE,
# SCHEMA_REGISTRY from the environment; the explicit flags above win over them.
# Tansu never auto-creates topics. Create them with the admin API (e.g.
# tests/interop/create_topics.py) or `tansu topic create NAME --broker tcp://HOST:PORT
# --partitions N` (the CLI's default is 3 partitions; `create-topic` here defaults to 1).
#
# Environment:
#   MESSAGING_SCRATCH_DIR  scratch root (default /tmp/messaging-scratch)
#   MESSAGING_CACHE_DIR    passed on to scripts/ensure-tansu.sh
#   TANSU_BIN              tansu binary to use (default: path from scripts/ensure-tansu.sh,
#                          which builds it when missing: 15-20 minutes cold)
#   TANSU_INSTANCE         default instance name ("default")
#   TANSU_STORAGE          sqlite (default) | memory
#   TANSU_PORT             fixed port instead of a free one picked at random
#   TANSU_START_TIMEOUT    seconds to wait for the port to accept connections (default 60)
#   RUST_LOG               passed to the broker (default here: warn); NO_COLOR defaults to 1
#
# Measured here: start (sqlite, fresh db) ~0.1-0.4 s until the port answers; restart after
# kill -9 ~0.2 s on the same port (no bind delay). Gotchas: a tansu that cannot bind its
# port panics in a worker thread instead of exiting at once, so `start` also checks that
# the listening socket belongs to the new pid (ss -ltnp); processes killed here can stay
# zombies for a while in some sandboxes, so liveness is read from /proc/PID/stat.
set -euo pipefail

log() { printf '[tansu.sh] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
scratch_root=${MESSAGING_SCRATCH_DIR:-/tmp/messaging-scratch}
host=127.0.0.1
# proc_alive, free_port, port_open
# shellcheck source=broker-lib.sh
source "$script_dir/broker-lib.sh"
start_timeout=${TANSU_START_TIMEOUT:-60}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
}

cmd=${1:-}
[[ -n $cmd ]] || usage
shift

name=${TANSU_INSTANCE:-default}
storage_kind=${TANSU_STORAGE:-sqlite}
topic=""
partitions=1
clean=0
auth=""          # "", on or off (start: off unless --authentication)
mechanism=scram512
args=()
while (($#)); do
    case $1 in
        --name) [[ $# -ge 2 ]] || usage; name=$2; shift 2 ;;
        --name=*) name=${1#--name=}; shift ;;
        --memory) storage_kind=memory; shift ;;
        --sqlite) storage_kind=sqlite; shift ;;
        --partitions) [[ $# -ge 2 ]] || usage; partitions=$2; shift 2 ;;
        --authentication) auth=on; shift ;;
        --no-authentication) auth=off; shift ;;
        --mechanism) [[ $# -ge 2 ]] || usage; mechanism=$2; shift 2 ;;
        --clean) clean=1; shift ;;
        -h|--help) usage ;;
        -*) die "unknown option $1" ;;
        *)
            if [[ $cmd == create-topic && -z $topic ]]; then
                topic=$1
            elif [[ $cmd == create-user && ${#args[@]} -lt 2 ]]; then
                args+=("$1")
            else
                die "unexpected argument $1"
            fi
            shift ;;
    esac
done
[[ $name =~ ^[A-Za-z0-9._-]+$ ]] || die "bad instance name '$name'"

dir="$scratch_root/tansu-$name"
pid_file="$dir/broker.pid"
port_file="$dir/broker.port"
storage_file="$dir/broker.storage"
log_file="$dir/broker.log"
auth_file="$dir/broker.auth"

# True if $1 is a live tansu process (guards against a recycled pid in a stale pid file).
is_tansu_alive() {
    proc_alive "$1" || return 1
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q 'tansu'
}

running_pid() {
    local pid
    [[ -f $pid_file ]] || return 1
    pid=$(cat "$pid_file")
    is_tansu_alive "$pid" || return 1
    echo "$pid"
}

wait_gone() { # pid timeout_secs
    local pid=$1 deadline=$((SECONDS + $2))
    while is_tansu_alive "$pid"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# True unless we can tell that the listener on $2 belongs to another process than $1.
owns_port() { # pid port
    local pid=$1 port=$2 owners
    if command -v ss >/dev/null 2>&1; then
        owners=$(ss -ltnpH "sport = :$port" 2>/dev/null || true)
        if [[ $owners == *pid=* ]]; then
            [[ $owners == *"pid=$pid,"* ]] || return 1
        fi
    fi
    proc_alive "$pid" && ! grep -q 'AddrInUse\|panicked' <(tail -n 50 "$log_file")
}

tansu_bin() {
    if [[ -n ${TANSU_BIN:-} ]]; then
        [[ -x $TANSU_BIN ]] || die "TANSU_BIN=$TANSU_BIN is not executable"
        echo "$TANSU_BIN"
    else
        "$script_dir/ensure-tansu.sh"
    fi
}

# Launch the broker in the background (cwd = instance dir) and wait for its port.
# Returns 0 when up; 1 when it died early (log tail printed); dies on timeout.
launch() { # bin port storage_url
    local bin=$1 port=$2 storage=$3 pid deadline auth_flags=()
    [[ ! -f $auth_file ]] || auth_flags=(--authentication)
    if port_open "$port"; then
        log "port $port already accepts connections (another process owns it)"
        return 1
    fi
    printf '=== %s: starting tansu on %s:%s storage %s %s\n' "$(date -u '+%F %T')" "$host" "$port" "$storage" "${auth_flags[*]}" >>"$log_file"
    (
        cd "$dir"
        export RUST_LOG=${RUST_LOG:-warn}
        export NO_COLOR=${NO_COLOR:-1} # plain log file (no ANSI colour codes)
        exec "$bin" broker \
            --listener-url "tcp://$host:$port" \
            --advertised-listener-url "tcp://$host:$port" \
            --storage-engine "$storage" \
            "${auth_flags[@]}"
    ) </dev/null >>"$log_file" 2>&1 &
    pid=$!
    echo "$pid" >"$pid_file"
    echo "$port" >"$port_file"
    echo "$storage" >"$storage_file"
    deadline=$((SECONDS + start_timeout))
    while ! port_open "$port"; do
        if ! proc_alive "$pid"; then
            log "tansu (pid $pid) exited before accepting connections; last log lines:"
            tail -n 30 "$log_file" >&2 || true
            rm -f "$pid_file"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            log "tansu (pid $pid) did not accept connections on $host:$port within ${start_timeout}s; last log lines:"
            tail -n 30 "$log_file" >&2 || true
            kill -9 "$pid" 2>/dev/null || true
            rm -f "$pid_file"
            die "broker start timed out (log: $log_file)"
        fi
        sleep 0.1
    done
    # The port answering is not enough: a tansu that fails to bind panics in a worker
    # thread and may linger while another process answers on that port.
    if ! owns_port "$pid" "$port"; then
        log "port $port answers, but not from tansu pid $pid; last log lines:"
        tail -n 30 "$log_file" >&2 || true
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$pid_file"
        return 1
    fi
    log "tansu pid $pid listening on $host:$port (storage $storage${auth_flags:+, authentication required}, dir $dir)"
}

storage_url() {
    case $1 in
        sqlite) echo "sqlite://tansu.db" ;;
        memory) echo "memory://tansu/" ;;
        *) die "unknown storage '$1' (sqlite|memory)" ;;
    esac
}

do_start() {
    local bin pid port storage attempt
    if pid=$(running_pid); then
        die "instance '$name' is already running (pid $pid, $host:$(cat "$port_file")); stop it first"
    fi
    storage=$(storage_url "$storage_kind")
    bin=$(tansu_bin)
    rm -rf "$dir"
    mkdir -p "$dir"
    if [[ $auth == on ]]; then
        [[ $storage_kind == sqlite ]] || die "--authentication needs sqlite storage (Tansu keeps SCRAM users there)"
        : >"$auth_file"
    fi
    for attempt in 1 2 3; do
        port=${TANSU_PORT:-$(free_port)}
        if launch "$bin" "$port" "$storage"; then
            echo "$host:$port"
            return 0
        fi
        [[ -z ${TANSU_PORT:-} ]] || break
        log "retrying with another port (attempt $((attempt + 1)))"
    done
    die "could not start tansu (log: $log_file)"
}

do_stop() {
    local pid
    if ! pid=$(running_pid); then
        log "instance '$name' is not running"
        rm -f "$pid_file"
        ((clean == 0)) || rm -rf "$dir"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 10; then
        log "pid $pid ignored SIGTERM for 10s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || die "pid $pid survived SIGKILL"
    fi
    rm -f "$pid_file"
    ((clean == 0)) || rm -rf "$dir"
    log "stopped instance '$name' (pid $pid)"
}

do_restart() {
    local pid port storage bin deadline
    [[ -f $port_file && -f $storage_file ]] || die "instance '$name' was never started (no $port_file)"
    port=$(cat "$port_file")
    storage=$(cat "$storage_file")
    bin=$(tansu_bin)
    if pid=$(running_pid); then
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || die "pid $pid survived SIGKILL"
        log "killed -9 pid $pid"
    fi
    case $auth in
        on)
            [[ $storage == sqlite* ]] || die "--authentication needs sqlite storage (Tansu keeps SCRAM users there)"
            : >"$auth_file" ;;
        off) rm -f "$auth_file" ;;
    esac
    printf '=== %s: kill -9 / restart\n' "$(date -u '+%F %T')" >>"$log_file"
    # The port should be free at once (tokio binds with SO_REUSEADDR); allow a few retries.
    deadline=$((SECONDS + 10))
    until launch "$bin" "$port" "$storage"; do
        ((SECONDS < deadline)) || die "could not restart tansu on port $port (log: $log_file)"
        sleep 0.5
    done
    echo "$host:$port"
}

do_status() {
    local pid
    pid=$(running_pid) || { log "instance '$name' is not running"; return 1; }
    echo "$host:$(cat "$port_file")"
}

do_create_topic() {
    local bin port
    [[ -n $topic ]] || die "usage: tansu.sh create-topic TOPIC [--partitions N]"
    running_pid >/dev/null || die "instance '$name' is not running"
    port=$(cat "$port_file")
    bin=$(tansu_bin)
    "$bin" topic create "$topic" --broker "tcp://$host:$port" --partitions "$partitions" >&2
}

do_create_user() {
    local bin port
    [[ ${#args[@]} -eq 2 ]] || die "usage: tansu.sh create-user USER PASSWORD [--mechanism scram256|scram512]"
    [[ $mechanism == scram256 || $mechanism == scram512 ]] || die "bad mechanism '$mechanism' (scram256|scram512)"
    running_pid >/dev/null || die "instance '$name' is not running"
    [[ ! -f $auth_file ]] || die "instance '$name' requires authentication: create users before \`restart --authentication\`"
    [[ $(cat "$storage_file") == sqlite* ]] || die "SCRAM users need sqlite storage"
    port=$(cat "$port_file")
    bin=$(tansu_bin)
    "$bin" user create "${args[0]}" "${args[1]}" --mechanism "$mechanism" --broker "tcp://$host:$port" >&2
    log "created user '${args[0]}' ($mechanism) on instance '$name'"
}

case $cmd in
    start) do_start ;;
    stop) do_stop ;;
    restart) do_restart ;;
    status) do_status ;;
    dir) echo "$dir" ;;
    create-topic) do_create_topic ;;
    create-user) do_create_user ;;
    -h|--help|help) usage ;;
    *) die "unknown command '$cmd' (start|stop|restart|status|dir|create-topic|create-user)" ;;
esac
