#!/usr/bin/env bash
# End-to-end check of the Python interop programs on a real RabbitMQ node, Python to
# Python: oslo_rpc_client.py -> two oslo_rpc_server.py (same topic), and oslo_notify.py
# -> oslo_listen.py (with a pool, then without one and sent before the listener
# started). Then checks every output line (embedded Python below).
#
# Usage: tests/interop/rabbit_check.sh
#
# Uses the node at $RABBITMQ_URL when set (e.g. under scripts/test-all.sh); otherwise
# starts its own with scripts/rabbitmq.sh (name rabbit-check-PID) and stops it at the end.
# Ends with "rabbit interop: N passed, N failed"; exit 0 when everything passed. The
# outputs (work dir) are removed on success, kept on failure or when KEEP_OUTPUT=1.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
log() { printf '[rabbit_check] %s\n' "$*" >&2; }
py=$("$repo/scripts/python-env.sh")
work=$(mktemp -d "${TMPDIR:-/tmp}/rabbit-check.XXXXXX")
instance=""
pids=()
failed=1

cleanup() {
    local rc=$? p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    [[ -z $instance ]] || "$repo/scripts/rabbitmq.sh" stop --name "$instance" --clean || true
    if [[ $rc == 0 && $failed == 0 && -z ${KEEP_OUTPUT:-} ]]; then
        rm -rf "$work"
    else
        log "kept for inspection: $work"
    fi
}
trap cleanup EXIT

if [[ -n ${RABBITMQ_URL:-} ]]; then
    url=$RABBITMQ_URL
else
    instance="rabbit-check-$$"
    url=$("$repo/scripts/rabbitmq.sh" start --name "$instance")
fi
log "node at $url"
suffix=$$-$RANDOM
topic="rc-rpc-$suffix"
ntopic="rc-notify-$suffix"
ntopic2="rc-notify2-$suffix"

wait_file() { # path timeout
    local deadline=$((SECONDS + $2))
    until [[ -f $1 ]]; do
        ((SECONDS < deadline)) || { log "ERROR: $1 did not appear within $2 s"; exit 1; }
        sleep 0.1
    done
}

cd "$here"
# --- RPC -------------------------------------------------------------------------
for s in s1 s2; do
    "$py" oslo_rpc_server.py --url "$url" --topic "$topic" --server "$s" \
        --ready-file "$work/ready-$s" >"$work/$s.jsonl" 2>"$work/$s.err" &
    pids+=($!)
done
wait_file "$work/ready-s1" 60
wait_file "$work/ready-s2" 60
cat >"$work/requests.json" <<EOF
[
 {"kind": "call", "topic": "$topic", "server": "s1", "method": "echo", "timeout": 10,
  "args": {"x": 1, "nested": {"a": [1, 2, {"b": null}], "s": "h\u00e9"}},
  "context": {"user": "u1", "request_id": "req-1"}},
 {"kind": "call", "topic": "$topic", "method": "add", "args": {"a": 2, "b": 40},
  "namespace": "ns1", "version": "1.2", "timeout": 10},
 {"kind": "call", "topic": "$topic", "method": "add", "args": {"a": 2, "b": 40},
  "namespace": "ns1", "version": "1.3", "timeout": 10},
 {"kind": "call", "topic": "$topic", "method": "fail", "args": {"message": "boom"}, "timeout": 10},
 {"kind": "call", "topic": "$topic", "method": "fail_custom",
  "args": {"message": "custom boom", "code": 42}, "timeout": 10},
 {"kind": "call", "topic": "$topic", "method": "nope", "args": {}, "timeout": 10},
 {"kind": "call", "topic": "$topic-nobody", "method": "echo", "args": {}, "timeout": 2},
 {"kind": "cast", "topic": "$topic", "server": "s2", "method": "record", "args": {"n": 1},
  "context": {"user": "u2"}},
 {"kind": "fanout", "topic": "$topic", "method": "record", "args": {"n": 2}},
 {"kind": "cast", "topic": "$topic", "method": "record", "args": {"n": 3}},
 {"kind": "call", "topic": "$topic", "server": "s1", "method": "sleep", "args": {"seconds": 2.5},
  "timeout": 10, "call_monitor_timeout": 2},
 {"kind": "sleep", "seconds": 1.0}
]
EOF
"$py" oslo_rpc_client.py --url "$url" --requests "$work/requests.json" \
    >"$work/replies.jsonl" 2>"$work/client.err"
for p in "${pids[@]}"; do kill -TERM "$p"; done
for p in "${pids[@]}"; do wait "$p"; done
pids=()
log "RPC done"

# --- notifications ---------------------------------------------------------------
cat >"$work/notifications.json" <<'EOF'
[
 {"priority": "info", "publisher_id": "compute.host1", "event_type": "instance.create.end",
  "payload": {"id": 1, "name": "vm\u00e9", "tags": ["a", "b"]},
  "context": {"user": "u1", "project_id": "p1", "request_id": "req-x"}},
 {"priority": "error", "event_type": "instance.fail", "payload": {"code": 500}, "context": {"user": "u2"}},
 {"priority": "warn", "event_type": "disk.low", "payload": 3.5},
 {"priority": "sample", "event_type": "metering", "payload": [1, 2, 3]}
]
EOF
# 1. listener with a pool, started first (its queue exists only once it runs)
"$py" oslo_listen.py --url "$url" --topic "$ntopic" --count 4 --timeout 60 --pool "pool-$suffix" \
    --ready-file "$work/listen-ready" >"$work/received.jsonl" 2>"$work/listen.err" &
pids+=($!)
"$py" oslo_notify.py --url "$url" --topic "$ntopic" --input "$work/notifications.json" \
    --warmup-until "$work/listen-ready" >"$work/sent.jsonl" 2>"$work/notify.err"
wait "${pids[0]}"
pids=()
# 2. no pool: sent before any listener exists (the notifier declares T.<priority>)
"$py" oslo_notify.py --url "$url" --topic "$ntopic2" --input "$work/notifications.json" \
    >"$work/sent2.jsonl" 2>"$work/notify2.err"
"$py" oslo_listen.py --url "$url" --topic "$ntopic2" --count 4 --timeout 60 \
    >"$work/received2.jsonl" 2>"$work/listen2.err"
log "notifications done"

set +e
"$py" - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
passed = failed = 0

def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)

def lines(name):
    with open(os.path.join(work, name)) as f:
        return [json.loads(l) for l in f if l.strip()]

r = {l["i"]: l for l in lines("replies.jsonl")}
check(sorted(r) == list(range(12)), "one reply line per request: %s" % sorted(r))
res = r[0].get("result") or {}
check(res.get("args") == {"x": 1, "nested": {"a": [1, 2, {"b": None}], "s": "h\u00e9"}}, "echo args")
check(res.get("context_user") == "u1" and res.get("server") == "s1", "echo context/server")
check(res.get("nested") == {"list": [1, "two", {"three": 3.0}], "none": None, "bool": True}, "echo nested")
check(r[1].get("result") == 42, "add ns1 1.2")
e = r[2].get("error") or {}
check(e.get("class") == "RemoteError" and e.get("exc_type") == "UnsupportedVersion", "add 1.3: %s" % e.get("exc_type"))
e = r[3].get("error") or {}
check(e.get("class") == "ValueError" and e.get("value") == "boom", "fail: builtin ValueError rebuilt: %s" % e.get("class"))
e = r[4].get("error") or {}
check(e.get("class") == "RemoteError" and e.get("exc_type") == "InteropError"
      and e.get("value") == "custom boom", "fail_custom: %s" % e)
e = r[5].get("error") or {}
check(e.get("class") == "RemoteError" and e.get("exc_type") == "NoSuchMethod", "nope: %s" % e.get("exc_type"))
e = r[6].get("error") or {}
check(e.get("class") == "MessagingTimeout", "no server: %s" % e.get("class"))
check(1.9 <= r[6]["elapsed"] <= 4.0, "timeout took %.2f s (2 s asked)" % r[6]["elapsed"])
check(all(r[i].get("ok") is True for i in (7, 8, 9, 11)), "casts sent")
check(r[10].get("result") == 2.5, "sleep with call monitor")

rec = {s: [l for l in lines(s + ".jsonl") if l.get("method") == "record"] for s in ("s1", "s2")}
ns = {s: sorted(l["args"]["n"] for l in rec[s]) for s in rec}
check(1 in ns["s2"] and 1 not in ns["s1"], "cast to server s2 only: %s" % ns)
check(2 in ns["s1"] and 2 in ns["s2"], "fanout to both: %s" % ns)
check((3 in ns["s1"]) != (3 in ns["s2"]), "topic cast to exactly one: %s" % ns)
c = [l for l in rec["s2"] if l["args"]["n"] == 1]
check(bool(c) and c[0]["context"].get("user") == "u2", "cast context")
served = [l for s in ("s1", "s2") for l in lines(s + ".jsonl") if "served" in l]
check(any(l["served"] == "add" and l["endpoint"] == "ns1" for l in served), "served add on ns1")
sl = [l for l in served if l["served"] == "sleep"]
check(bool(sl) and sl[0]["context"].get("client_timeout") == 2, "client_timeout = call monitor")

inp = json.load(open(os.path.join(work, "notifications.json")))
for sent_name, recv_name in (("sent.jsonl", "received.jsonl"), ("sent2.jsonl", "received2.jsonl")):
    sent, got = lines(sent_name), lines(recv_name)
    check(len(sent) == 4 and all(s["delivered"] for s in sent), sent_name + " all delivered")
    check(all(s["exchange"] == "openstack" and s["envelope_version"] == "2.0" for s in sent), sent_name + " exchange/envelope")
    check([s["topic"].rsplit(".", 1)[1] for s in sent] == [n["priority"] for n in inp], sent_name + " routing keys")
    check(all("_context" not in s["message"] for s in sent), sent_name + " no _context object on rabbit")
    check(len(got) == 4, "%s: got %d" % (recv_name, len(got)))
    by_id = {g["metadata"]["message_id"]: g for g in got}
    for s, n in zip(sent, inp):
        g = by_id.get(s["message_id"])
        check(g is not None, "%s: %s received" % (recv_name, s["message_id"]))
        if g is None:
            continue
        check(g["event_type"] == n["event_type"] and g["payload"] == n["payload"]
              and g["priority"] == n["priority"], "%s: fields of %s" % (recv_name, n["event_type"]))
        check(g["context"].get("user") == (n.get("context") or {}).get("user"), "%s: context user" % recv_name)

print("rabbit interop: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
PY
rc=$?
set -e
[[ $rc == 0 ]] && failed=0
exit "$rc"
