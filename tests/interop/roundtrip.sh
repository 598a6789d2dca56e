#!/usr/bin/env bash
# End-to-end check of the Python interop programs against a real Tansu broker:
# oslo.messaging Notifier (oslo_notify.py) -> Tansu (sqlite) -> oslo.messaging
# notification listener (oslo_listen.py), then check_roundtrip.py compares both sides.
#
# Usage: tests/interop/roundtrip.sh [COUNT]      (default 20 notifications, all 7 priorities)
#
# Runs two rounds on one broker: a plain listener and a batch listener (--batch 5
# --batch-timeout 2), each with its own topic and pool. Needs the tansu binary
# (scripts/ensure-tansu.sh builds it when missing: 15-20 minutes cold) and the venv
# (scripts/python-env.sh). Prints per-step timings to stderr and ends with the
# "N passed, N failed" line of the checks. Exit status 0 when everything passed.
# The outputs (work dir) and the broker's scratch dir are removed on success, kept on
# failure or when KEEP_OUTPUT=1.
set -euo pipefail

count=${1:-20}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
log() { printf '[roundtrip] %s\n' "$*" >&2; }

py=$("$repo/scripts/python-env.sh")
instance="interop-roundtrip-$$"
work=$(mktemp -d "${TMPDIR:-/tmp}/interop-roundtrip.XXXXXX")
listener_pid=""
cleanup() {
    local rc=$?
    if [[ -n $listener_pid ]] && kill -0 "$listener_pid" 2>/dev/null; then
        kill -TERM "$listener_pid" 2>/dev/null || true
        wait "$listener_pid" 2>/dev/null || true
    fi
    # Keep the broker's scratch dir (log, sqlite file) only when something failed.
    if [[ $rc == 0 && ${failed:-1} == 0 && -z ${KEEP_OUTPUT:-} ]]; then
        "$repo/scripts/tansu.sh" stop --name "$instance" --clean || true
        rm -rf "$work"
    else
        "$repo/scripts/tansu.sh" stop --name "$instance" || true
        log "kept for inspection: $work and $("$repo/scripts/tansu.sh" dir --name "$instance")"
    fi
}
trap cleanup EXIT

t0=$SECONDS
addr=$("$repo/scripts/tansu.sh" start --name "$instance")
url="kafka://$addr"
log "broker $addr up after $((SECONDS - t0))s; work dir $work"

# COUNT notifications cycling through the 7 priorities, with varied payloads/contexts.
"$py" - "$count" >"$work/input.json" <<'PY'
import json, sys
n = int(sys.argv[1])
prios = ["audit", "debug", "info", "warn", "error", "critical", "sample"]
payloads = [
    {"instance_id": "abc", "flavor": {"vcpus": 2, "ram": 512}},
    [1, 2.5, "three", None, True],
    "a plain string payload",
    42,
    None,
    {"unicode": "h\u00e9llo \u2713 \U0001F600", "nested": {"list": [{"a": 1}], "empty": {}}},
    {"samples": [{"counter_name": "cpu", "counter_volume": 1.5}]},
]
out = []
for i in range(n):
    out.append({
        "priority": prios[i % 7],
        "publisher_id": "compute.host%d" % (i % 3),
        "event_type": "interop.test.%d" % i,
        "payload": payloads[i % len(payloads)],
        "context": {"request_id": "req-%04d" % i, "user": "u%d" % i,
                    "project_id": "p1", "auth_token": "SECRET-%d" % i},
    })
json.dump(out, sys.stdout)
PY

failed=0
total_passed=0
total_failed=0
round() { # label topic extra-listener-args...
    local label=$1 topic=$2
    shift 2
    local ready="$work/$label.ready" t1
    t1=$SECONDS
    "$py" "$here/create_topics.py" --bootstrap "$addr" --topic "$topic" >&2
    "$py" "$here/oslo_listen.py" --url "$url" --topic "$topic" --count "$count" --timeout 120 \
        --pool "pool-$label-$$" --ready-file "$ready" "$@" >"$work/$label.listen.jsonl" &
    listener_pid=$!
    if ! "$py" "$here/oslo_notify.py" --url "$url" --topic "$topic" --input "$work/input.json" \
        --warmup-until "$ready" --warmup-timeout 60 >"$work/$label.notify.jsonl"; then
        log "$label: oslo_notify.py failed"
    fi
    if ! wait "$listener_pid"; then
        log "$label: oslo_listen.py did not receive everything"
    fi
    listener_pid=""
    log "$label: round trip of $count notifications took $((SECONDS - t1))s"
    echo "== $label"
    "$py" "$here/check_roundtrip.py" "$work/input.json" "$work/$label.notify.jsonl" \
        "$work/$label.listen.jsonl" | tee "$work/$label.check"
    local summary p f
    summary=$(tail -n 1 "$work/$label.check")
    if [[ $summary =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        p=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]}
    else
        p=0 f=1
    fi
    total_passed=$((total_passed + p))
    total_failed=$((total_failed + f))
    ((f == 0)) || failed=1
}

round plain "interop-plain-$$"
round batch "interop-batch-$$" --batch 5 --batch-timeout 2

echo "== total"
echo "interop: $total_passed passed, $total_failed failed"
exit "$failed"
