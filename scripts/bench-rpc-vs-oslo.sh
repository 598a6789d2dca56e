#!/usr/bin/env bash
# RPC call round trips of `messaging bench --rpc` against oslo.messaging's RPC client
# and server, on the same RabbitMQ broker, in the same run (a same-run baseline).
#
# Usage: scripts/bench-rpc-vs-oslo.sh RABBIT_URL [CALLS] [IN_FLIGHT]
#   defaults: CALLS=2000, IN_FLIGHT=16
# Needs: a release build of the CLI (cargo build --release -p messaging-cli; the binary
# is $MESSAGING_BIN or $CARGO_TARGET_DIR/release/messaging) and the oslo venv
# (MESSAGING_OSLO_PYTHON, default: what scripts/python-env.sh prints).
#
# oslo side (tests/interop/oslo_rpc_bench.py): an oslo RPC server (threading executor,
# oslo's default pool of 64) in its own process, and an oslo client process with
# IN_FLIGHT threads sharing one RPCClient (oslo's call blocks: one call in flight per
# thread), calling add(a=1, b=2) CALLS times after one uncounted warm-up call.
# messaging side: `messaging bench --rpc --url RABBIT_URL --count CALLS --in-flight
# IN_FLIGHT`: an in-process demo server and IN_FLIGHT concurrent callers of add(1, 2)
# (client and server share one process, where oslo gets two).
# Prints both rates, p50/p99 latency and the ratio messaging/oslo.
set -euo pipefail

url=${1:?usage: $0 RABBIT_URL [CALLS] [IN_FLIGHT]}
calls=${2:-2000}
in_flight=${3:-16}
root=$(cd "$(dirname "$0")/.." && pwd)
python=${MESSAGING_OSLO_PYTHON:-$("$root/scripts/python-env.sh")}
messaging=${MESSAGING_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/messaging}
[ -x "$messaging" ] || { echo "no CLI binary at $messaging (cargo build --release -p messaging-cli)" >&2; exit 2; }
topic="bench-oslo-rpc-$(date +%s)-$$"
scratch=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$scratch"
}
trap cleanup EXIT

bench_py="$root/tests/interop/oslo_rpc_bench.py"
"$python" "$bench_py" server --url "$url" --topic "$topic" --ready-file "$scratch/ready" \
    2>"$scratch/server.log" &
server_pid=$!
for _ in $(seq 300); do
    [ -f "$scratch/ready" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$scratch/server.log" >&2; exit 1; }
    sleep 0.1
done
[ -f "$scratch/ready" ] || { echo "the oslo server did not start in 30 s" >&2; exit 1; }
oslo_json=$("$python" "$bench_py" client --url "$url" --topic "$topic" --calls "$calls" \
    --in-flight "$in_flight" 2>"$scratch/client.log") || { cat "$scratch/client.log" >&2; exit 1; }
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=

ours_json=$("$messaging" bench --rpc --url "$url" --count "$calls" --in-flight "$in_flight" --json | tail -n 1)

"$python" - "$oslo_json" "$ours_json" <<'PY'
import json, sys
oslo, ours = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name, r in (("oslo.messaging", oslo), ("messaging     ", ours)):
    print("%s: %8.0f calls/s  p50 %7.2f ms  p99 %7.2f ms  (%d calls, %d in flight)" % (
        name, r["calls_per_sec"], r["latency_p50_us"] / 1000, r["latency_p99_us"] / 1000,
        r["calls"], r["in_flight"]))
print("ratio messaging/oslo: %.1fx" % (ours["calls_per_sec"] / oslo["calls_per_sec"]))
PY
