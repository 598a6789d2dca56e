#!/usr/bin/env bash
# Create (if needed) the Python virtualenv used by the oslo.messaging / Ceilometer
# interoperability tests, and print the path of its python interpreter on stdout.
#
# Usage: scripts/python-env.sh
#
#   stdout: absolute path of the venv's python (the only thing printed on stdout)
#   stderr: progress logs
#
# Environment:
#   MESSAGING_CACHE_DIR  cache root (default: $HOME/.cache/messaging-ci);
#                        the venv lives in $MESSAGING_CACHE_DIR/venv-oslo
#   PYTHON               interpreter used to create the venv (default: python3.11 when
#                        present, else python3)
#
# What gets installed:
#   scripts/requirements-interop.txt         oslo.messaging + confluent-kafka + the
#                                            OpenTelemetry SDK and their pinned
#                                            dependency closure (normal install)
#   scripts/requirements-interop-nodeps.txt  ceilometer, installed with --no-deps (only
#                                            ceilometer.publisher.utils is used)
#
# Idempotent: a stamp file inside the venv records a hash of both requirement files and
# the interpreter version; when it matches, the script only prints the path (no pip run).
# A venv whose interpreter no longer runs, or whose stamp differs, is rebuilt from
# scratch. Concurrent invocations are serialised with flock when it is available.
set -euo pipefail

log() { printf '[python-env] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
req="$script_dir/requirements-interop.txt"
req_nodeps="$script_dir/requirements-interop-nodeps.txt"
[[ -f $req ]] || die "missing $req"
[[ -f $req_nodeps ]] || die "missing $req_nodeps"

cache_dir=${MESSAGING_CACHE_DIR:-$HOME/.cache/messaging-ci}
venv="$cache_dir/venv-oslo"
venv_python="$venv/bin/python"
stamp="$venv/.interop-stamp"

if [[ -n ${PYTHON:-} ]]; then
    base_python=$PYTHON
elif command -v python3.11 >/dev/null 2>&1; then
    base_python=python3.11
elif command -v python3 >/dev/null 2>&1; then
    base_python=python3
else
    die "no python3 interpreter found (set PYTHON=...)"
fi

base_version=$("$base_python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])') \
    || die "cannot run $base_python"

want_stamp=$(
    {
        echo "stamp-format 1"
        echo "python $base_version"
        cat "$req" "$req_nodeps"
    } | sha256sum | cut -d' ' -f1
)

venv_ok() {
    [[ -x $venv_python ]] && [[ -f $stamp ]] && [[ $(cat "$stamp") == "$want_stamp" ]] \
        && "$venv_python" -c 'import sys' >/dev/null 2>&1
}

# Fast path: nothing to do.
if venv_ok; then
    echo "$venv_python"
    exit 0
fi

mkdir -p "$cache_dir"
lock="$cache_dir/venv-oslo.lock"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$lock"
    log "waiting for lock $lock"
    flock 9
    # Somebody else may have finished the job while we waited.
    if venv_ok; then
        echo "$venv_python"
        exit 0
    fi
fi

if [[ -d $venv ]]; then
    log "venv $venv is stale or broken; recreating it"
    rm -rf "$venv"
fi

log "creating venv $venv with $base_python ($base_version)"
"$base_python" -m venv "$venv" >&2 \
    || die "'$base_python -m venv' failed (on Debian: apt-get install python3-venv)"

pip_install() {
    "$venv_python" -m pip install --disable-pip-version-check --no-input --progress-bar off "$@" >&2
}

log "installing $req"
pip_install -r "$req" || die "pip install -r $req failed"
log "installing $req_nodeps (--no-deps)"
pip_install --no-deps -r "$req_nodeps" || die "pip install --no-deps -r $req_nodeps failed"

log "smoke test: importing the modules the interop programs use"
"$venv_python" - >&2 <<'PY' || die "smoke test failed: the venv cannot import what the interop programs need"
import confluent_kafka
import oslo_messaging
from oslo_messaging._drivers import impl_kafka  # noqa: F401  (the Kafka driver)
from ceilometer.publisher import utils
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: F401
assert utils.compute_signature({"a": 1}, "s")
v = confluent_kafka.version()
v = v[0] if isinstance(v, tuple) else v
print("ok: oslo.messaging, confluent-kafka %s (librdkafka %s), ceilometer.publisher.utils"
      % (v, confluent_kafka.libversion()[0]))
PY

printf '%s\n' "$want_stamp" >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"
log "venv ready"
echo "$venv_python"
