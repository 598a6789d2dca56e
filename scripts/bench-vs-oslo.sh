#!/usr/bin/env bash
# Whole-process notify throughput of `messaging send` against oslo.messaging's
# notifier, on the same Kafka broker, in the same run (a same-run baseline).
#
# Usage: scripts/bench-vs-oslo.sh HOST:PORT [COUNT] [PAYLOAD_BYTES] [BATCH_SIZE]
#   defaults: COUNT=200000, PAYLOAD_BYTES=200, BATCH_SIZE=1000
# Needs: a release build of the CLI (cargo build --release -p messaging-cli) and
# the oslo venv (MESSAGING_OSLO_PYTHON, default ~/.cache/messaging-ci/venv-oslo/bin/python).
# Prints both rates and the ratio messaging/oslo.
# RPC round trips on RabbitMQ against oslo's RPC client and server:
# scripts/bench-rpc-vs-oslo.sh RABBIT_URL [CALLS] [IN_FLIGHT].
set -euo pipefail

broker=${1:?usage: $0 HOST:PORT [COUNT] [PAYLOAD_BYTES] [BATCH_SIZE]}
count=${2:-200000}
bytes=${3:-200}
batch=${4:-1000}
python=${MESSAGING_OSLO_PYTHON:-$HOME/.cache/messaging-ci/venv-oslo/bin/python}
root=$(cd "$(dirname "$0")/.." && pwd)
messaging=${MESSAGING_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/messaging}
run_id=$(date +%s)-$$
# A JSON object of about $bytes bytes: {"pad":"xxx..."}
pad=$(head -c $((bytes > 10 ? bytes - 10 : 1)) /dev/zero | tr '\0' x)
payload="{\"pad\":\"$pad\"}"

seconds() { # seconds a command takes, as a whole process
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}

oslo() {
    "$python" - "$broker" "bench-oslo-$run_id" "$count" "$payload" <<'PY'
import json, sys
from oslo_config import cfg
import oslo_messaging
broker, topic, count, payload = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
transport = oslo_messaging.get_notification_transport(cfg.CONF, url=f"kafka://{broker}")
notifier = oslo_messaging.Notifier(transport, driver="messagingv2", topics=[topic],
                                   publisher_id="bench.oslo")
for _ in range(count):
    notifier.info({}, "bench.event", payload)
transport.cleanup()  # flushes the producer
PY
}

ours() {
    "$messaging" send --url "kafka://$broker?create_topics=true" --topic "bench-rust-$run_id" \
        --event-type bench.event --payload "$payload" --count "$count" --batch-size "$batch"
}

# Tansu has no topic auto-creation: create oslo's topic first (not timed).
"$python" "$root/tests/interop/create_topics.py" --bootstrap "$broker" \
    --topic "bench-oslo-$run_id" --priorities info >/dev/null
oslo_s=$(seconds oslo)
ours_s=$(seconds ours)
echo "oslo.messaging: $(echo "$count / $oslo_s" | bc) notifications/s ($oslo_s s)"
echo "messaging:      $(echo "$count / $ours_s" | bc) notifications/s ($ours_s s, batch $batch)"
echo "ratio messaging/oslo: $(echo "scale=1; $oslo_s / $ours_s" | bc -l)x"
