#!/usr/bin/env bash
# Start, stop and restart a throw-away private RabbitMQ node (Debian's rabbitmq-server
# 3.10) on loopback, and run rabbitmqctl against it.
#
# Usage:
#   scripts/rabbitmq.sh start   [--name NAME]           prints rabbit://guest:guest@127.0.0.1:PORT/
#                                                       once the node accepts AMQP connections
#   scripts/rabbitmq.sh stop    [--name NAME] [--clean] SIGTERM (SIGKILL after 15 s) to the node,
#                                                       then its epmd; --clean also removes the
#                                                       instance's scratch dir (otherwise kept
#                                                       for its logs)
#   scripts/rabbitmq.sh restart [--name NAME]           kill -9 the node, then start the SAME
#                                                       node: same node name, same ports, same
#                                                       mnesia dir (durable queues and their
#                                                       persistent messages survive); prints the URL
#   scripts/rabbitmq.sh status  [--name NAME]           prints the URL; exit 1 if not running
#   scripts/rabbitmq.sh dir     [--name NAME]           prints the instance's scratch dir
#   scripts/rabbitmq.sh tls-url [--name NAME]           prints the node's TLS URL:
#                                                       rabbit+ssl://guest:guest@localhost:PORT/?ssl_ca_file=DIR/tls/ca.pem
#                                                       &ssl_cert_file=DIR/tls/client.pem&ssl_key_file=DIR/tls/client.key
#                                                       (every node also listens with TLS, on
#                                                       its own port, with a certificate for
#                                                       `localhost` signed by a CA made at start,
#                                                       and asks clients for a certificate of it)
#   scripts/rabbitmq.sh ctl     [--name NAME] ARGS...   rabbitmqctl -n NODE --erlang-cookie COOKIE
#                                                       ARGS (e.g. `ctl list_queues name messages`,
#                                                       `ctl close_all_connections test`); its
#                                                       stdout and exit status are passed on.
#                                                       Options after the first ARG (or after
#                                                       `--`) go to rabbitmqctl.
#
# stdout carries only the result (URL, dir, or rabbitmqctl's output); logs go to stderr.
# Benchmarks on a node: `messaging bench --url URL --raw` (against raw lapin) and
# scripts/bench-rpc-vs-oslo.sh URL (RPC round trips against oslo.messaging).
#
# Instances: every instance has a name (--name, or $RABBITMQ_INSTANCE, default "default")
# and a scratch dir $MESSAGING_SCRATCH_DIR/rabbit-NAME (MESSAGING_SCRATCH_DIR defaults to
# /tmp/messaging-scratch) holding:
#   mnesia/        RABBITMQ_MNESIA_BASE (queues, messages; fresh for every `start`)
#   log/           RABBITMQ_LOG_BASE (the node's own log, log/NODE.log)
#   node.out       rabbitmq-server's stdout+stderr (appended to across restarts)
#   epmd.out       the private epmd's output
#   plugins        the enabled-plugins file: `[].` (no plugins, not even management)
#   rabbitmq.conf  the node's config (RABBITMQ_CONFIG_FILE=DIR/rabbitmq)
#   node.name      the Erlang node name, rabbit-NAME-PORT@localhost ('.' in NAME becomes '_')
#   amqp.port  dist.port  epmd.port    the three ports of the node
#   node.pid       the rabbitmq-server wrapper shell   beam.pid  the Erlang VM (beam.smp)
#   epmd.pid       the private epmd
# `start` refuses to run if that instance is already running; a stale instance dir (dead
# node) is wiped. Distinct names run side by side (each on its own free ports).
#
# epmd: every instance runs its OWN epmd (`epmd -port EPMD_PORT`, started here, in the
# foreground of a background job so its pid is known) and the node and rabbitmqctl are
# pointed at it with ERL_EPMD_PORT. So the node never touches the shared epmd on 4369,
# instances do not depend on each other, and `stop` kills exactly that instance's epmd:
# after `stop` no beam.smp and no epmd of the instance remain. Consequence: to use
# rabbitmqctl by hand, go through `scripts/rabbitmq.sh ctl` (or export
# ERL_EPMD_PORT=$(cat DIR/epmd.port) yourself).
#
# The Erlang cookie is ~/.erlang.cookie (created here, mode 400, when missing; shared by
# all instances, as rabbitmqctl expects). Nodes are started with
#   RABBITMQ_NODENAME RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT RABBITMQ_DIST_PORT
#   RABBITMQ_MNESIA_BASE RABBITMQ_LOG_BASE RABBITMQ_ENABLED_PLUGINS_FILE RABBITMQ_CONFIG_FILE
#   ERL_EPMD_PORT, scheduler busy-waiting off (this machine is shared), distribution bound
#   to 127.0.0.1
# and /usr/lib/rabbitmq/bin/rabbitmq-server (installed by scripts/ensure-rabbitmq.sh
# when missing). The user guest:guest works from localhost (RabbitMQ's default).
#
# Readiness: `start` and `restart` poll until the AMQP port answers an AMQP 0-9-1
# protocol header with a connection.start frame (not just a TCP accept), up to
# RABBITMQ_START_TIMEOUT seconds (default 60); on failure they print the log tails and
# kill what they started.
#
# Environment:
#   MESSAGING_SCRATCH_DIR   scratch root (default /tmp/messaging-scratch)
#   MESSAGING_CACHE_DIR     passed on to scripts/ensure-rabbitmq.sh
#   RABBITMQ_INSTANCE       default instance name ("default")
#   RABBITMQ_PORT           fixed AMQP port instead of a free one (start only)
#   RABBITMQ_START_TIMEOUT  seconds to wait for AMQP (default 60)
#   RABBITMQ_STOP_TIMEOUT   seconds to wait after SIGTERM before SIGKILL (default 15)
#
# Measured here (2 shared cores): start 6-8 s until AMQP answers (two names started at
# once: 7-10 s); restart after kill -9 6-8 s (durable queues and persistent messages
# kept, transient queues gone); stop (SIGTERM to beam.smp, clean shutdown) ~1.9 s;
# `ctl` ~0.5 s per call (the CLI is an Erlang VM of its own). Killed processes can stay
# zombies (<defunct>) for a while in this sandbox: they are not running and hold no port.
set -euo pipefail

log() { printf '[rabbitmq.sh] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
scratch_root=${MESSAGING_SCRATCH_DIR:-/tmp/messaging-scratch}
host=127.0.0.1
# proc_alive, free_port, port_open
# shellcheck source=broker-lib.sh
source "$script_dir/broker-lib.sh"
start_timeout=${RABBITMQ_START_TIMEOUT:-60}
stop_timeout=${RABBITMQ_STOP_TIMEOUT:-15}
rabbit_bin=/usr/lib/rabbitmq/bin

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
}

cmd=${1:-}
[[ -n $cmd ]] || usage
shift

name=${RABBITMQ_INSTANCE:-default}
clean=0
ctl_args=()
while (($#)); do
    case $1 in
        --name) [[ $# -ge 2 ]] || usage; name=$2; shift 2 ;;
        --name=*) name=${1#--name=}; shift ;;
        --clean) [[ $cmd != ctl ]] || { ctl_args=("$@"); break; }; clean=1; shift ;;
        -h|--help) [[ $cmd != ctl ]] || { ctl_args=("$@"); break; }; usage ;;
        --) shift; [[ $cmd == ctl ]] || die "unexpected --"; ctl_args=("$@"); break ;;
        *)
            [[ $cmd == ctl ]] || die "unexpected argument $1"
            ctl_args=("$@"); break ;;
    esac
done
[[ $name =~ ^[A-Za-z0-9._-]+$ ]] || die "bad instance name '$name'"

dir="$scratch_root/rabbit-$name"
f_node="$dir/node.name"
f_amqp="$dir/amqp.port"
f_dist="$dir/dist.port"
f_epmd="$dir/epmd.port"
f_tls="$dir/tls.port"
f_pid="$dir/node.pid"
f_beam="$dir/beam.pid"
f_epmd_pid="$dir/epmd.pid"
out_log="$dir/node.out"

cmdline() { { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null; }

# Live process $1 whose command line contains $2 (guards against recycled pids).
alive_with() { proc_alive "$1" && [[ $(cmdline "$1") == *"$2"* ]]; }

pid_from() { [[ -f $1 ]] && cat "$1"; }

# True if $1 is a live process of this instance: the node's command line holds neither
# the node name nor the dir, so its environment (inherited by the wrapper shell, beam.smp
# and its helpers) is checked instead.
is_ours() {
    local env
    proc_alive "$1" || return 1
    env=$( { tr '\0' '\n' <"/proc/$1/environ"; } 2>/dev/null) || return 1
    [[ $'\n'$env$'\n' == *$'\n'"RABBITMQ_MNESIA_BASE=$dir/mnesia"$'\n'* ]]
}

# The node's beam.smp (its pid is in beam.pid, written by the node itself).
beam_pid() {
    local pid
    pid=$(pid_from "$f_beam" || true)
    [[ -n $pid ]] && is_ours "$pid" && [[ $(cmdline "$pid") == *beam* ]] && echo "$pid"
}

epmd_pid() {
    local pid port
    pid=$(pid_from "$f_epmd_pid" || true)
    port=$(pid_from "$f_epmd" || true)
    [[ -n $pid && -n $port ]] && alive_with "$pid" "epmd -port $port" && echo "$pid"
}

# Every live process of this instance (wrapper shell, beam.smp, erl_child_setup,
# inet_gethost, the disk monitor shell), found by its environment.
instance_pids() {
    local d pid
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
        is_ours "$pid" && echo "$pid"
    done
    return 0
}

wait_gone() { # timeout_secs pid...
    local deadline=$((SECONDS + $1)) p left
    shift
    while :; do
        left=0
        for p in "$@"; do proc_alive "$p" && left=1; done
        ((left)) || return 0
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# True when the port answers the AMQP 0-9-1 protocol header with a method frame
# (type 1 on channel 0: connection.start).
amqp_ready() {
    local port=$1 first
    first=$(timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port || exit 1
        printf 'AMQP\x00\x00\x09\x01' >&3
        head -c 3 <&3 | od -An -tx1" 2>/dev/null | tr -d ' \n') || return 1
    [[ $first == 010000 ]]
}

ensure_cookie() {
    local cookie=$HOME/.erlang.cookie
    mkdir -p "$scratch_root"
    (
        exec 8>"$scratch_root/.erlang-cookie.lock"
        flock 8
        if [[ ! -s $cookie ]]; then
            (umask 077; python3 -c 'import random, string; print("".join(random.SystemRandom().choice(string.ascii_uppercase) for _ in range(20)), end="")' >"$cookie.tmp.$$")
            mv "$cookie.tmp.$$" "$cookie"
            log "created $cookie"
        fi
        chmod 400 "$cookie"
    )
}

show_logs() {
    local f
    for f in "$out_log" "$dir/log/$(cat "$f_node" 2>/dev/null).log" "$dir/epmd.out"; do
        [[ -s $f ]] || continue
        log "last lines of $f:"
        tail -n 25 "$f" >&2 || true
    done
}

url() { echo "rabbit://guest:guest@$host:$(cat "$f_amqp")/"; }

tls_url() {
    local t="$dir/tls"
    echo "rabbit+ssl://guest:guest@localhost:$(cat "$f_tls")/?ssl_ca_file=$t/ca.pem&ssl_cert_file=$t/client.pem&ssl_key_file=$t/client.key"
}

# A CA and a server certificate for `localhost` only (so a client that checks host names
# refuses it as 127.0.0.1), for the TLS listener.
make_certs() {
    local tls="$dir/tls"
    mkdir -p "$tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=messaging test CA" \
        -keyout "$tls/ca.key" -out "$tls/ca.pem" >/dev/null 2>&1 || die "openssl: cannot make the test CA"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$tls/server.key" -out "$tls/server.csr" >/dev/null 2>&1 || die "openssl: cannot make the server key"
    printf 'subjectAltName=DNS:localhost\n' >"$tls/san.ext"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
        -CAcreateserial -days 2 -extfile "$tls/san.ext" -out "$tls/server.pem" >/dev/null 2>&1 \
        || die "openssl: cannot sign the server certificate"
    # The client certificate the TLS listener asks for.
    openssl req -newkey rsa:2048 -nodes -subj "/CN=messaging test client" \
        -keyout "$tls/client.key" -out "$tls/client.csr" >/dev/null 2>&1 || die "openssl: cannot make the client key"
    openssl x509 -req -in "$tls/client.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
        -CAcreateserial -days 2 -out "$tls/client.pem" >/dev/null 2>&1 \
        || die "openssl: cannot sign the client certificate"
    chmod 644 "$tls"/*
}

# The TLS listener's part of rabbitmq.conf (rewritten for each port attempt).
write_tls_config() {
    sed -i '/^# TLS listener/,$d' "$dir/rabbitmq.conf"
    {
        echo "# TLS listener (scripts/rabbitmq.sh tls-url); clients must show a certificate of the CA."
        echo "listeners.ssl.default = $(cat "$f_tls")"
        echo "ssl_options.cacertfile = $dir/tls/ca.pem"
        echo "ssl_options.certfile = $dir/tls/server.pem"
        echo "ssl_options.keyfile = $dir/tls/server.key"
        echo "ssl_options.verify = verify_peer"
        echo "ssl_options.fail_if_no_peer_cert = true"
    } >>"$dir/rabbitmq.conf"
}

node_env() { # sets the environment for rabbitmq-server / rabbitmqctl
    export ERL_EPMD_PORT=$(cat "$f_epmd")
    export HOME
    # The Elixir CLI warns when the locale is not UTF-8.
    if ! locale 2>/dev/null | grep -qi 'utf-\?8'; then export LC_ALL=C.UTF-8; fi
}

kill_instance() { # signal: kill the node (beam, wrapper, helpers) with that signal
    local sig=$1 pids
    pids=$(instance_pids | sort -un | tr "\n" " ")
    [[ -n $pids ]] || return 0
    # shellcheck disable=SC2086
    kill "-$sig" $pids 2>/dev/null || true
    echo $pids
}

start_epmd() {
    local port pid deadline
    port=$(cat "$f_epmd")
    if pid=$(epmd_pid); then return 0; fi
    # -relaxed_command_check off (default): only local nodes may register.
    (cd "$dir" && exec epmd -port "$port" -address 127.0.0.1) </dev/null >>"$dir/epmd.out" 2>&1 &
    pid=$!
    disown "$pid" 2>/dev/null || true
    echo "$pid" >"$f_epmd_pid"
    deadline=$((SECONDS + 10))
    until epmd -port "$port" -names >/dev/null 2>&1; do
        proc_alive "$pid" || { show_logs; return 1; }
        ((SECONDS < deadline)) || { kill -9 "$pid" 2>/dev/null; show_logs; return 1; }
        sleep 0.05
    done
}

stop_epmd() {
    local pid
    pid=$(epmd_pid) || return 0
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone 5 "$pid" || { kill -KILL "$pid" 2>/dev/null || true; wait_gone 5 "$pid" || die "epmd pid $pid survived SIGKILL"; }
}

# Launch rabbitmq-server in the background and wait until AMQP answers.
# Returns 0 when up; 1 when it died early or a port was taken (logs printed); dies on timeout.
launch() {
    local server=$1 node amqp dist pid beam deadline t0=$SECONDS
    node=$(cat "$f_node"); amqp=$(cat "$f_amqp"); dist=$(cat "$f_dist")
    if port_open "$amqp" || port_open "$dist"; then
        log "port $amqp or $dist already accepts connections (another process owns it)"
        return 1
    fi
    start_epmd || { log "epmd did not start on port $(cat "$f_epmd")"; return 1; }
    printf '=== %s: starting %s on %s:%s (dist %s, epmd %s)\n' "$(date -u '+%F %T')" \
        "$node" "$host" "$amqp" "$dist" "$(cat "$f_epmd")" >>"$out_log"
    (
        cd "$dir"
        node_env
        export RABBITMQ_NODENAME=$node RABBITMQ_NODE_IP_ADDRESS=$host \
            RABBITMQ_NODE_PORT=$amqp RABBITMQ_DIST_PORT=$dist \
            RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log \
            RABBITMQ_ENABLED_PLUGINS_FILE=$dir/plugins RABBITMQ_CONFIG_FILE=$dir/rabbitmq \
            RABBITMQ_PID_FILE=$f_beam \
            RABBITMQ_SCHEDULER_BUSY_WAIT_THRESHOLD=none \
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
        unset RABBITMQ_ALLOW_INPUT NOTIFY_SOCKET
        exec "$server"
    ) </dev/null >>"$out_log" 2>&1 &
    pid=$!
    disown "$pid" 2>/dev/null || true # no "Killed" job report when we kill it
    echo "$pid" >"$f_pid"
    deadline=$((SECONDS + start_timeout))
    while ! amqp_ready "$amqp"; do
        if ! proc_alive "$pid"; then
            log "rabbitmq-server (pid $pid) exited before accepting AMQP connections"
            show_logs
            kill_instance KILL >/dev/null
            rm -f "$f_pid" "$f_beam"
            if grep -q 'eaddrinuse\|address already in use' "$out_log" "$dir/log/$node.log" 2>/dev/null; then
                return 1
            fi
            stop_epmd || true
            die "node $node failed to start (logs in $dir)"
        fi
        if ((SECONDS >= deadline)); then
            log "node $node did not accept AMQP connections on $host:$amqp within ${start_timeout}s"
            show_logs
            kill_instance KILL >/dev/null
            rm -f "$f_pid" "$f_beam"
            stop_epmd || true
            die "RabbitMQ start timed out (logs in $dir)"
        fi
        sleep 0.25
    done
    beam=$(beam_pid) || beam="?"
    log "node $node (beam.smp pid $beam) accepts AMQP on $host:$amqp after $((SECONDS - t0))s (dir $dir)"
}

running() { beam_pid >/dev/null; }

do_start() {
    local server attempt port
    if running; then
        die "instance '$name' is already running ($(url)); stop it first"
    fi
    server=$("$script_dir/ensure-rabbitmq.sh")
    # Leftovers of a dead instance (e.g. its epmd) go before the dir is wiped.
    if [[ -d $dir ]]; then
        kill_instance KILL >/dev/null || true
        stop_epmd || true
    fi
    rm -rf "$dir"
    mkdir -p "$dir/mnesia" "$dir/log"
    echo '[].' >"$dir/plugins"
    cat >"$dir/rabbitmq.conf" <<'EOF'
# Private test node made by scripts/rabbitmq.sh (guest may only log in from localhost).
loopback_users.guest = true
# Tests share the machine: do not block publishers because of low disk or memory.
disk_free_limit.absolute = 1MB
vm_memory_high_watermark.relative = 0.8
EOF
    make_certs
    ensure_cookie
    for attempt in 1 2 3; do
        port=${RABBITMQ_PORT:-$(free_port)}
        echo "$port" >"$f_amqp"
        free_port >"$f_dist"
        free_port >"$f_epmd"
        echo "rabbit-${name//./_}-$port@localhost" >"$f_node"
        free_port >"$f_tls"
        write_tls_config
        if launch "$server"; then
            url
            return 0
        fi
        stop_epmd || true
        [[ -z ${RABBITMQ_PORT:-} ]] || break
        log "retrying with other ports (attempt $((attempt + 1)))"
    done
    die "could not start RabbitMQ (logs in $dir)"
}

do_stop() {
    local pids
    if [[ ! -d $dir ]]; then
        log "instance '$name' is not running (no $dir)"
        return 0
    fi
    local beam
    pids=$(instance_pids | sort -un | tr "\n" " ")
    if [[ -n $pids ]]; then
        # SIGTERM to beam.smp: RabbitMQ shuts down cleanly (its helpers and the wrapper
        # shell exit with it). Without a beam (a half-dead instance), to everything.
        if beam=$(beam_pid); then
            kill -TERM "$beam" 2>/dev/null || true
        else
            # shellcheck disable=SC2086
            kill -TERM $pids 2>/dev/null || true
        fi
        # shellcheck disable=SC2086
        if ! wait_gone "$stop_timeout" $pids; then
            log "node ignored SIGTERM for ${stop_timeout}s; sending SIGKILL"
            kill_instance KILL >/dev/null
            # shellcheck disable=SC2086
            wait_gone 10 $pids || die "pids $pids survived SIGKILL"
        fi
        log "stopped instance '$name' (pids $pids)"
    else
        log "instance '$name' is not running"
    fi
    # Helpers that outlived the VM, if any.
    pids=$(kill_instance KILL) || true
    # shellcheck disable=SC2086
    [[ -z $pids ]] || wait_gone 10 $pids || true
    stop_epmd
    rm -f "$f_pid" "$f_beam" "$f_epmd_pid"
    ((clean == 0)) || rm -rf "$dir"
}

do_restart() {
    local server pids deadline
    [[ -f $f_node && -f $f_amqp && -f $f_dist && -f $f_epmd ]] \
        || die "instance '$name' was never started (no $f_node)"
    server=$("$script_dir/ensure-rabbitmq.sh")
    if pids=$(kill_instance KILL) && [[ -n $pids ]]; then
        # shellcheck disable=SC2086
        wait_gone 10 $pids || die "pids $pids survived SIGKILL"
        log "killed -9 pids $pids"
    fi
    rm -f "$f_pid" "$f_beam"
    printf '=== %s: kill -9 / restart\n' "$(date -u '+%F %T')" >>"$out_log"
    # The listening ports are free at once (SO_REUSEADDR); allow a few retries anyway.
    deadline=$((SECONDS + 15))
    until launch "$server"; do
        ((SECONDS < deadline)) || die "could not restart node on port $(cat "$f_amqp") (logs in $dir)"
        sleep 1
    done
    url
}

do_status() {
    running || { log "instance '$name' is not running"; return 1; }
    url
}

do_ctl() {
    ((${#ctl_args[@]})) || die "usage: rabbitmq.sh ctl [--name NAME] ARGS..."
    [[ -f $f_node && -f $f_epmd ]] || die "instance '$name' was never started (no $f_node)"
    running || log "warning: instance '$name' is not running"
    [[ -f $HOME/.erlang.cookie ]] || die "no $HOME/.erlang.cookie"
    node_env
    exec "$rabbit_bin/rabbitmqctl" -n "$(cat "$f_node")" \
        --erlang-cookie "$(cat "$HOME/.erlang.cookie")" "${ctl_args[@]}"
}

case $cmd in
    start) do_start ;;
    stop) do_stop ;;
    restart) do_restart ;;
    status) do_status ;;
    dir) echo "$dir" ;;
    tls-url)
        running || die "instance '$name' is not running"
        [[ -f $f_tls ]] || die "instance '$name' has no TLS listener (started by an older rabbitmq.sh): stop and start it"
        tls_url ;;
    ctl) do_ctl ;;
    -h|--help|help) usage ;;
    *) die "unknown command '$cmd' (start|stop|restart|status|dir|tls-url|ctl)" ;;
esac
