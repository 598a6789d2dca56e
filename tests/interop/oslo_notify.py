#!/usr/bin/env python3
"""Send notifications through a real oslo.messaging Notifier (Kafka or rabbit driver).

Usage:
  oslo_notify.py --url kafka://127.0.0.1:PORT|rabbit://guest:guest@127.0.0.1:PORT/
                 --topic T --input FILE|-
                 [--driver messagingv2] [--context-mode request|raw|dict]
                 [--message-timeout-ms 10000] [--create-topics]
                 [--warmup-until PATH [--warmup-timeout 60] [--warmup-interval 0.5]
                  [--warmup-priorities audit,debug,...]]
                 [--verbose]

Input: a JSON list of notifications
  [{"priority": "info", "publisher_id": "...", "event_type": "...",
    "payload": ..., "context": {...}}, ...]
  priority: audit|debug|info|warn|warning|error|critical|sample (any case; required)
  event_type: required; publisher_id: default "interop.python"; payload: default {};
  context: default {}.

Each one is sent with oslo_messaging.Notifier(transport, driver=--driver, topics=[T])
.prepare(publisher_id=...).<priority>(context, event_type, payload), the transport
being oslo_messaging.get_notification_transport(cfg.CONF, url=--url).

Context (oslo.messaging 18 discards a plain dict context and sends "_context": {}):
  request (default) the dict is turned into oslo_context.RequestContext.from_dict(ctx);
                    oslo sends its redacted_copy().to_dict(), i.e. what an OpenStack
                    service sends (many keys; auth_token etc. removed).
  raw               the dict is sent exactly as given (wrapped in a dict subclass whose
                    redacted_copy() returns itself, so oslo's sanitizer keeps it).
  dict              a plain dict: oslo replaces it with {} (its real behaviour).

Output (stdout): after everything is flushed, one JSON line per input notification,
in input order:
  {"index": i, "topic": "T.info", "partition": 0, "offset": 42, "delivered": true,
   "error": null, "value": "<the exact record value, UTF-8>",
   "envelope_version": "2.0", "message": {<the decoded oslo.message object>},
   "message_id": "...", "timestamp": "YYYY-MM-DD HH:MM:SS[.ffffff]",
   "priority": "INFO", "publisher_id": "...", "event_type": "...",
   "payload": ..., "context": {<_context>}}
How the wire data is captured: confluent_kafka.Producer (looked up by oslo's Kafka
driver at producer creation) is replaced by a thin proxy that records the topic and
value of every produce() call oslo makes and attaches a delivery callback
(partition/offset/error). Nothing oslo does is changed except that
message.timeout.ms (default 300 s in librdkafka) is set to --message-timeout-ms, so a
missing topic fails in 10 s instead of hanging transport.cleanup() for 5 minutes.

Flushing: transport.cleanup() -> KafkaDriver.cleanup() -> producer.flush().

RabbitMQ (--url rabbit://...): the same program and output, except how the wire data is
captured and what the line says about where it went. kombu.messaging.Producer.publish
(which oslo's rabbit driver calls for every message) is wrapped: it records the
exchange, routing key and body of every publish, "value" being the body serialized as
kombu sends it (kombu.serialization.dumps(body, "json"); no compression is configured).
oslo publishes with publisher confirms, so a publish that returned is "delivered": true
(the broker confirmed it); one that raised is "delivered": false with "error". Line:
  {"index": i, "exchange": "openstack", "topic": "T.info" (the routing key),
   "partition": null, "offset": null, "delivered": true, "error": null, "value": "...",
   "envelope_version": "2.0", "message": {...}, "message_id": ..., "timestamp": ...,
   "priority": "INFO", "publisher_id": ..., "event_type": ..., "payload": ...,
   "context": {<the _context_<k> fields of the message, without the prefix>}}
oslo's notifier declares the queue T.<priority> itself (non-durable, bound to the
exchange), so no warm-up is needed: messages wait in that queue for a listener without
a pool. A listener WITH a pool consumes its own queue named after the pool, which only
exists once the listener started: wait for its --ready-file first (--warmup-until PATH
works here too; it simply stops as soon as PATH exists). --create-topics and
--message-timeout-ms are Kafka-only (ignored). Exchange: oslo's control_exchange
("openstack"); options of [oslo_messaging_rabbit] can go in the URL query.

Warm-up (for oslo_listen.py --ready-file): with --warmup-until PATH, before the input
is sent, rounds of "interop.warmup" notifications (one per warm-up priority, payload
{"seq": n}) are sent every --warmup-interval seconds until PATH exists; exit 2 if it
does not appear within --warmup-timeout. Warm-ups are not printed.

Exit status: 0 all delivered; 1 some notification not delivered (its line has
"delivered": false and "error"); 2 usage/input/warm-up error.
"""

import argparse
import json
import os
import sys
import time

import _interop_common as common


class _State:
    current_index = None  # index of the notification being sent, None = warm-up
    records = []
    message_timeout_ms = 10000


def _install_kombu_capture():
    """Wrap kombu.messaging.Producer.publish so every message oslo publishes is recorded."""
    import kombu.messaging
    import kombu.serialization

    real_publish = kombu.messaging.Producer.publish
    if getattr(real_publish, "_interop_capture", False):
        return

    def publish(self, body, routing_key=None, *args, **kwargs):
        exchange = kwargs.get("exchange", self.exchange)
        rec = {"index": _State.current_index, "topic": routing_key,
               "exchange": getattr(exchange, "name", exchange), "value": None,
               "partition": None, "offset": None, "delivered": None, "error": None}
        try:
            _ctype, _enc, data = kombu.serialization.dumps(
                body, kwargs.get("serializer") or self.serializer or "json")
            rec["value"] = data
        except Exception as exc:  # recorded, the real publish decides what happens
            rec["error"] = "could not serialize for capture: %s" % exc
        try:
            result = real_publish(self, body, routing_key, *args, **kwargs)
        except Exception as exc:
            rec["delivered"] = False
            rec["error"] = "%s: %s" % (type(exc).__name__, exc)
            _State.records.append(rec)
            raise
        rec["delivered"] = True  # confirm_publish: returned = confirmed by the broker
        _State.records.append(rec)
        return result

    publish._interop_capture = True
    kombu.messaging.Producer.publish = publish


def _install_producer_capture():
    """Wrap confluent_kafka.Producer so every record oslo produces is recorded."""
    import confluent_kafka

    real_producer = confluent_kafka.Producer
    if getattr(real_producer, "_interop_capture", False):
        return

    class CapturingProducer:
        _interop_capture = True

        def __init__(self, conf, *args, **kwargs):
            conf = dict(conf)
            conf.setdefault("message.timeout.ms", _State.message_timeout_ms)
            self._inner = real_producer(conf, *args, **kwargs)

        def produce(self, topic, value=None, *args, **kwargs):
            rec = {"index": _State.current_index, "topic": topic, "value": value,
                   "partition": None, "offset": None, "delivered": None, "error": None}
            user_cb = kwargs.pop("on_delivery", None) or kwargs.pop("callback", None)

            def on_delivery(err, msg):
                if err is not None:
                    rec["delivered"] = False
                    rec["error"] = str(err)
                else:
                    rec["delivered"] = True
                    rec["partition"] = msg.partition()
                    rec["offset"] = msg.offset()
                if user_cb is not None:
                    user_cb(err, msg)

            kwargs["on_delivery"] = on_delivery
            result = self._inner.produce(topic, value, *args, **kwargs)
            # Only recorded once librdkafka accepted it (oslo retries on BufferError).
            _State.records.append(rec)
            return result

        def __len__(self):
            return len(self._inner)

        def __getattr__(self, name):
            return getattr(self._inner, name)

    confluent_kafka.Producer = CapturingProducer


class _RawContext(dict):
    """A dict context that oslo's sanitizer keeps as is (see --context-mode raw)."""

    def redacted_copy(self):
        return self

    def to_dict(self):
        return dict(self)


def _make_context(ctx, mode):
    if ctx is None:
        ctx = {}
    if not isinstance(ctx, dict):
        raise ValueError("context must be a JSON object")
    if mode == "dict":
        return dict(ctx)
    if mode == "raw":
        return _RawContext(ctx)
    from oslo_context import context as oslo_context
    return oslo_context.RequestContext.from_dict(ctx)


_METHODS = {"audit": "audit", "debug": "debug", "info": "info", "warn": "warn",
            "warning": "warning", "error": "error", "critical": "critical",
            "sample": "sample"}


def _load_input(path):
    data = common.load_json_objects(path, "input", "item")
    for i, n in enumerate(data):
        prio = str(n.get("priority", "")).lower()
        if prio not in _METHODS:
            raise ValueError("item %d: bad priority %r" % (i, n.get("priority")))
        if not isinstance(n.get("event_type"), str):
            raise ValueError("item %d: event_type (string) is required" % i)
    return data


def _wire_context(msg):
    """Kafka: the "_context" object; rabbit: the flat _context_<k> fields, unprefixed."""
    if "_context" in msg:
        return msg["_context"]
    flat = {k[len("_context_"):]: v for k, v in msg.items() if k.startswith("_context_")}
    return flat


def _decode(value):
    text = value.decode("utf-8") if isinstance(value, bytes) else value
    outer = json.loads(text)
    if isinstance(outer, dict) and "oslo.message" in outer:
        return text, outer.get("oslo.version"), json.loads(outer["oslo.message"])
    return text, None, outer


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True,
                    help="kafka://HOST:PORT[?oslo_kafka_opt=v] or rabbit://USER:PASS@HOST:PORT/")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--input", required=True, help="JSON file, or - for stdin")
    ap.add_argument("--driver", default="messagingv2", choices=["messagingv2", "messaging"])
    ap.add_argument("--context-mode", default="request", choices=["request", "raw", "dict"])
    ap.add_argument("--message-timeout-ms", type=int, default=10000)
    ap.add_argument("--create-topics", action="store_true",
                    help="create T.<priority> for all 7 priorities first")
    ap.add_argument("--warmup-until", metavar="PATH")
    ap.add_argument("--warmup-timeout", type=float, default=60.0)
    ap.add_argument("--warmup-interval", type=float, default=0.5)
    ap.add_argument("--warmup-priorities", default=",".join(common.PRIORITIES))
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    common.setup_logging(args.verbose)

    try:
        notifications = _load_input(args.input)
        contexts = [_make_context(n.get("context"), args.context_mode)
                    for n in notifications]
    except (OSError, ValueError) as exc:
        common.log("ERROR: bad input: %s", exc)
        return 2

    rabbit = common.is_rabbit_url(args.url)
    _State.message_timeout_ms = args.message_timeout_ms
    if rabbit:
        _install_kombu_capture()
    else:
        _install_producer_capture()

    import oslo_messaging

    if args.create_topics and rabbit:
        common.log("--create-topics ignored on RabbitMQ (the notifier declares its queues)")
    elif args.create_topics:
        common.create_topics(common.bootstrap_from_url(args.url),
                             common.priority_topics(args.topic))

    conf = common.init_oslo_config()
    transport = oslo_messaging.get_notification_transport(conf, url=args.url)
    status = 0
    try:
        notifier = oslo_messaging.Notifier(transport, publisher_id="interop.python",
                                           driver=args.driver, topics=[args.topic])

        if args.warmup_until:
            prios = [p.strip().lower() for p in args.warmup_priorities.split(",") if p.strip()]
            t0 = time.monotonic()
            seq = 0
            _State.current_index = None
            while not os.path.exists(args.warmup_until):
                if time.monotonic() - t0 > args.warmup_timeout:
                    common.log("ERROR: %s did not appear within %.1f s of warm-ups",
                               args.warmup_until, args.warmup_timeout)
                    return 2
                for p in prios:
                    getattr(notifier, _METHODS[p])({}, common.WARMUP_EVENT_TYPE, {"seq": seq})
                seq += 1
                time.sleep(args.warmup_interval)
            common.log("listener ready after %.2f s (%d warm-up rounds)",
                       time.monotonic() - t0, seq)

        t0 = time.monotonic()
        for i, (n, ctx) in enumerate(zip(notifications, contexts)):
            _State.current_index = i
            prepared = notifier.prepare(publisher_id=n.get("publisher_id", "interop.python"))
            getattr(prepared, _METHODS[n["priority"].lower()])(
                ctx, n["event_type"], n.get("payload", {}))
        _State.current_index = None
        t_sent = time.monotonic()
    finally:
        # Flushes oslo's producer (bounded by message.timeout.ms).
        transport.cleanup()
    t_flushed = time.monotonic()
    common.log("sent %d notifications in %.3f s, flushed in %.3f s",
               len(notifications), t_sent - t0, t_flushed - t_sent)

    by_index = {}
    for rec in _State.records:
        if rec["index"] is not None:
            by_index.setdefault(rec["index"], []).append(rec)

    for i in range(len(notifications)):
        recs = by_index.get(i, [])
        if not recs:
            common.emit({"index": i, "delivered": False,
                         "error": "oslo produced no record (it swallows send errors; see stderr)"})
            status = 1
            continue
        for rec in recs:
            text, version, msg = _decode(rec["value"])
            delivered = bool(rec["delivered"])
            if not delivered:
                status = 1
            line = {
                "index": i,
                "topic": rec["topic"],
                "partition": rec["partition"],
                "offset": rec["offset"],
                "delivered": delivered,
                "error": rec["error"] if rec["delivered"] is not None
                else "no delivery report after flush",
                "value": text,
                "envelope_version": version,
                "message": msg,
                "message_id": msg.get("message_id"),
                "timestamp": msg.get("timestamp"),
                "priority": msg.get("priority"),
                "publisher_id": msg.get("publisher_id"),
                "event_type": msg.get("event_type"),
                "payload": msg.get("payload"),
                "context": _wire_context(msg),
            }
            if rabbit:
                line = {"index": i, "exchange": rec.get("exchange"), **line}
            common.emit(line)
    return status


if __name__ == "__main__":
    sys.exit(main())
