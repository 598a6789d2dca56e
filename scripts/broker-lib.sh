# Shell helpers the broker scripts (scripts/tansu.sh, scripts/rabbitmq.sh) share.
# Sourced, not run; expects $host (the loopback address the brokers listen on).

# True if process $1 exists and is not a zombie (kill -0 succeeds on zombies).
proc_alive() {
    local pid=$1 state
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/stat ]] || return 1
    state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

# A free TCP port on loopback (python3 when present, else a random one `ss` says is free).
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
        return
    fi
    local p i
    for i in $(seq 1 100); do
        p=$((20000 + RANDOM % 40000))
        if [[ -z $(ss -ltnH "sport = :$p" 2>/dev/null) ]]; then
            echo "$p"
            return
        fi
    done
    echo "could not find a free port" >&2
    return 1
}

# True if something accepts TCP connections on $host:$1.
port_open() {
    timeout 1 bash -c "exec 3<>/dev/tcp/$host/$1" 2>/dev/null
}
