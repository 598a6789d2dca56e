#!/usr/bin/env bash
# Make sure Debian's rabbitmq-server (RabbitMQ 3.10 + Erlang) is installed, installing it
# with apt-get when /usr/lib/rabbitmq/bin/rabbitmq-server is missing. Prints the path of
# that rabbitmq-server script on stdout.
#
# Usage: scripts/ensure-rabbitmq.sh
#
#   stdout: /usr/lib/rabbitmq/bin/rabbitmq-server (the only thing printed on stdout)
#   stderr: progress logs and apt-get's output
#
# Environment:
#   MESSAGING_CACHE_DIR     cache root (default: $HOME/.cache/messaging-ci); holds the lock
#                           file rabbitmq-install.lock
#   RABBITMQ_APT_LOCK_WAIT  seconds apt-get waits for the dpkg lock held by some other apt
#                           run (default 600)
#
# Needs root (apt-get). Idempotent: when the server script exists nothing is run. Runs of
# this script are serialised with flock (the second one finds the package installed once
# it gets the lock); an apt-get started some other way is waited for through apt's own
# lock timeout (DPkg::Lock::Timeout). `apt-get update` is run first only when apt does not
# know the package (empty lists in a fresh container), and once more if the install fails
# (stale lists).
#
# The package's maintainer scripts try to start the system-wide service; in these
# containers that is refused or fails, which is fine: a policy-rc.d that forbids every
# service start is put in place for the duration of the install (and removed afterwards,
# unless one was already there), and RUNLEVEL=1 is set for the same reason. The tests
# never use the system service: scripts/rabbitmq.sh runs private nodes.
#
# Measured here: ~25 s for the install (Erlang 25 comes with it).
set -euo pipefail

log() { printf '[ensure-rabbitmq] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

server=/usr/lib/rabbitmq/bin/rabbitmq-server
ctl=/usr/lib/rabbitmq/bin/rabbitmqctl
cache_dir=${MESSAGING_CACHE_DIR:-$HOME/.cache/messaging-ci}
lock_wait=${RABBITMQ_APT_LOCK_WAIT:-600}

installed() { [[ -x $server && -x $ctl ]]; }

if installed; then
    echo "$server"
    exit 0
fi

[[ $(id -u) -eq 0 ]] || die "rabbitmq-server is not installed and installing it needs root (apt-get)"
command -v apt-get >/dev/null 2>&1 || die "rabbitmq-server is not installed and there is no apt-get"

mkdir -p "$cache_dir"
exec 9>"$cache_dir/rabbitmq-install.lock"
log "waiting for lock $cache_dir/rabbitmq-install.lock"
flock 9
if installed; then
    echo "$server"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive RUNLEVEL=1
apt_opts=(-y -q -o "DPkg::Lock::Timeout=$lock_wait" -o Dpkg::Options::=--force-confdef
          -o Dpkg::Options::=--force-confold)

# Forbid service starts during the install (exit 101 = "action forbidden" for invoke-rc.d).
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
fi
cleanup() { ((own_policy == 0)) || rm -f "$policy"; }
trap cleanup EXIT

apt_update() {
    log "apt-get update"
    apt-get "${apt_opts[@]}" update >&2 || die "apt-get update failed"
}

if ! apt-cache show rabbitmq-server >/dev/null 2>&1; then
    apt_update
fi

start=$(date +%s)
log "apt-get install rabbitmq-server"
if ! apt-get "${apt_opts[@]}" install --no-install-recommends rabbitmq-server >&2; then
    if installed; then
        # The package is unpacked; only its postinst (service start) complained.
        log "apt-get reported an error, but $server is there (service start refused: expected)"
    else
        log "install failed; refreshing the package lists and trying once more"
        apt_update
        apt-get "${apt_opts[@]}" install --no-install-recommends rabbitmq-server >&2 || true
    fi
fi
installed || die "rabbitmq-server could not be installed ($server missing)"
log "installed in $(( $(date +%s) - start ))s: $(dpkg-query -W -f='${Package} ${Version}' rabbitmq-server 2>/dev/null || echo '?')"

# The package may have started (or tried to start) its own node; nothing here uses it.
echo "$server"
