#!/usr/bin/env python3
"""Check an oslo_notify.py -> oslo_listen.py round trip.

Usage:
  check_roundtrip.py INPUT.json NOTIFY_OUTPUT.jsonl LISTEN_OUTPUT.jsonl

INPUT.json is what was given to oslo_notify.py --input; the two others are the stdout
of oslo_notify.py and oslo_listen.py. Checks:
  * every input notification was delivered (oslo_notify.py "delivered": true);
  * the record value has oslo's wire format: an object with exactly the keys
    "oslo.version" ("2.0") and "oslo.message" (a JSON string), the message has exactly
    message_id (UUID v4), publisher_id, event_type, priority (uppercase), payload,
    timestamp ("YYYY-MM-DD HH:MM:SS[.ffffff]"), _context; it is written with Python's
    ", " / ": " separators; topic is T.<lowercase priority>;
  * publisher_id, event_type and payload on the wire equal the input;
  * every sent message_id was received exactly once, nothing else was received, and
    the received priority/publisher_id/event_type/payload/context/metadata equal what
    was on the wire.
Prints one line per failed check and a closing "N passed, N failed" line.
Exit status 0 when nothing failed.
"""

import json
import re
import sys
import uuid

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{6})?$")
MSG_KEYS = {"message_id", "publisher_id", "event_type", "priority", "payload",
            "timestamp", "_context"}


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv):
    if len(argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        inputs = json.load(f)
    sent = read_jsonl(argv[2])
    received = read_jsonl(argv[3])
    passed = failed = 0

    def check(cond, what):
        nonlocal passed, failed
        if cond:
            passed += 1
        else:
            failed += 1
            print("FAIL: " + what)

    check(len(sent) == len(inputs), "notify printed %d lines for %d inputs" % (len(sent), len(inputs)))
    by_id = {}
    for line in sent:
        i = line.get("index")
        tag = "notification %s" % i
        if not line.get("delivered"):
            check(False, "%s not delivered: %s" % (tag, line.get("error")))
            continue
        inp = inputs[i]
        value = line["value"]
        outer = json.loads(value)
        check(set(outer) == {"oslo.version", "oslo.message"}, "%s envelope keys %s" % (tag, sorted(outer)))
        check(outer.get("oslo.version") == "2.0", "%s oslo.version %r" % (tag, outer.get("oslo.version")))
        check(isinstance(outer.get("oslo.message"), str), "%s oslo.message is not a string" % tag)
        msg = json.loads(outer["oslo.message"])
        check(set(msg) == MSG_KEYS, "%s message keys %s" % (tag, sorted(msg)))
        check(value == json.dumps(outer), "%s envelope not written with Python separators" % tag)
        check(outer["oslo.message"] == json.dumps(msg), "%s message not written with Python separators" % tag)
        try:
            u = uuid.UUID(msg["message_id"])
            check(u.version == 4 and str(u) == msg["message_id"], "%s message_id %r not a UUID4 string" % (tag, msg["message_id"]))
        except (ValueError, KeyError, TypeError):
            check(False, "%s message_id %r not a UUID" % (tag, msg.get("message_id")))
        check(isinstance(msg.get("timestamp"), str) and TS_RE.match(msg["timestamp"]) is not None,
              "%s timestamp %r" % (tag, msg.get("timestamp")))
        prio = inp["priority"].lower()
        prio = "warn" if prio == "warning" else prio
        check(msg.get("priority") == prio.upper(), "%s priority %r" % (tag, msg.get("priority")))
        check(line.get("topic", "").endswith("." + prio), "%s topic %r" % (tag, line.get("topic")))
        check(msg.get("publisher_id") == inp.get("publisher_id", "interop.python"), "%s publisher_id" % tag)
        check(msg.get("event_type") == inp["event_type"], "%s event_type" % tag)
        check(msg.get("payload") == inp.get("payload", {}), "%s payload %r" % (tag, msg.get("payload")))
        check(line.get("message_id") == msg["message_id"] and line.get("timestamp") == msg["timestamp"],
              "%s top-level message_id/timestamp differ from the wire" % tag)
        by_id[msg["message_id"]] = msg

    seen = {}
    for r in received:
        mid = (r.get("metadata") or {}).get("message_id")
        seen[mid] = seen.get(mid, 0) + 1
        msg = by_id.get(mid)
        if msg is None:
            check(False, "received unknown message_id %r (event_type %r)" % (mid, r.get("event_type")))
            continue
        tag = "received %s" % mid
        check(r["priority"] == msg["priority"].lower(), "%s priority %r" % (tag, r["priority"]))
        check(r["publisher_id"] == msg["publisher_id"], "%s publisher_id" % tag)
        check(r["event_type"] == msg["event_type"], "%s event_type" % tag)
        check(r["payload"] == msg["payload"], "%s payload" % tag)
        check(r["context"] == msg["_context"], "%s context %r != %r" % (tag, r["context"], msg["_context"]))
        check(r["metadata"] == {"message_id": mid, "timestamp": msg["timestamp"]}, "%s metadata" % tag)
    for mid in by_id:
        check(seen.get(mid, 0) == 1, "message_id %s received %d times" % (mid, seen.get(mid, 0)))

    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
