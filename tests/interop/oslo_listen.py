#!/usr/bin/env python3
"""Receive notifications with a real oslo.messaging notification listener (Kafka or rabbit).

Usage:
  oslo_listen.py --url kafka://127.0.0.1:PORT|rabbit://guest:guest@127.0.0.1:PORT/
                 --topic T --count N --timeout SECS
                 [--pool NAME] [--batch SIZE [--batch-timeout SECS]]
                 [--ready-file PATH [--warmup-priorities audit,debug,...]]
                 [--priorities audit,debug,...] [--workers 1] [--create-topics]
                 [--verbose]

Starts oslo_messaging.get_notification_listener (or, with --batch,
get_batch_notification_listener(batch_size=SIZE, batch_timeout=SECS)) on
get_notification_transport(cfg.CONF, url=--url), target Target(topic=T), executor
"threading", pool --pool (= the Kafka consumer group; without it oslo uses its
default group "oslo_messaging_consumer": use a unique pool per test). The endpoint
handles every priority in --priorities (default all 7: audit debug info warn error
critical sample), so oslo subscribes to T.<priority> for each of them.

Output (stdout), one JSON line per received notification, flushed at once:
  {"priority": "info", "publisher_id": "...", "event_type": "...", "payload": ...,
   "context": {...}, "metadata": {"message_id": "...", "timestamp": "..."}}
With --batch each line also has "batch": k (0-based number of the batch it came in).
"priority" is the lowercase name of the handler oslo called.

Stops when N notifications were printed (--count 0: run until the timeout) or when
--timeout seconds (counted from program start, including oslo's ~5 s start) have
passed, or on SIGTERM/SIGINT; then always listener.stop() + listener.wait() and
transport.cleanup(). More than N lines can appear if they were already being
dispatched when the N-th arrived.

Warm-up handshake (oslo's Kafka consumer uses auto.offset.reset=latest, so anything
sent before it has its partitions is never seen): notifications with event_type
"interop.warmup" are never printed nor counted. With --ready-file PATH, PATH is
written (atomically, content "ready\\n") once a warm-up has been received on every
priority in --warmup-priorities (default: all listened priorities) -- receiving on
each topic proves every partition has its starting offset. The sender keeps sending
warm-up rounds until PATH exists (oslo_notify.py --warmup-until PATH does this).

RabbitMQ (--url rabbit://...): the same options and output. No warm-up is needed: oslo
declares and consumes its queues in listener.start() (no pool: the shared queues
T.<priority>, which the notifier also declares, so earlier notifications wait there;
pool P: one queue named P bound to T.<priority> for each listened priority, which
receives only what is sent after the listener started). So with --ready-file the file
is written as soon as listener.start() returned (warm-ups, if a sender still sends
them, are ignored as on Kafka). The queues T.<priority> outlive the listener (not
durable, not auto-delete): use a topic of your own per test so that nothing left over
by an earlier test is received. "context" is the caller's context as oslo rebuilt it
from the _context_<k> fields (plus "client_timeout": null). --create-topics is ignored.

--workers: size of oslo's executor pool (oslo default 64). Default 1, so handlers run
one at a time and lines appear in the order oslo polled them.

Exit status: 0 when N were received (or --count 0); 1 on timeout before N;
2 on usage error. A summary goes to stderr.
"""

import argparse
import os
import signal
import sys
import threading
import time

import _interop_common as common

T_START = time.monotonic()


class Collector:
    def __init__(self, count, ready_file, warmup_priorities):
        self.count = count
        self.ready_file = ready_file
        self.warmup_needed = set(warmup_priorities)
        self.warmup_seen = set()
        self.ready_written = False
        self.received = 0
        self.first_at = None
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.batches = 0

    def handle(self, priority, ctxt, publisher_id, event_type, payload, metadata, batch=None):
        if event_type == common.WARMUP_EVENT_TYPE:
            self._warmup(priority)
            return
        line = {
            "priority": priority,
            "publisher_id": publisher_id,
            "event_type": event_type,
            "payload": payload,
            "context": ctxt,
            "metadata": {"message_id": metadata.get("message_id"),
                         "timestamp": metadata.get("timestamp")},
        }
        if batch is not None:
            line["batch"] = batch
        common.emit(line)
        with self.lock:
            self.received += 1
            if self.first_at is None:
                self.first_at = time.monotonic()
            if self.count and self.received >= self.count:
                self.done.set()

    def _warmup(self, priority):
        with self.lock:
            self.warmup_seen.add(priority)
            if (self.ready_file and not self.ready_written
                    and self.warmup_needed <= self.warmup_seen):
                tmp = "%s.tmp.%d" % (self.ready_file, os.getpid())
                with open(tmp, "w") as f:
                    f.write("ready\n")
                os.replace(tmp, self.ready_file)
                self.ready_written = True
                common.log("ready after %.2f s (warm-up seen on %s)",
                           time.monotonic() - T_START, ",".join(sorted(self.warmup_seen)))


def make_endpoint(collector, priorities, batch):
    import oslo_messaging

    handled = oslo_messaging.NotificationResult.HANDLED
    attrs = {}
    for prio in priorities:
        if batch:
            def method(self, messages, _p=prio):
                with collector.lock:
                    k = collector.batches
                    collector.batches += 1
                for m in messages:
                    collector.handle(_p, m["ctxt"], m["publisher_id"], m["event_type"],
                                     m["payload"], m["metadata"], batch=k)
                return handled
        else:
            def method(self, ctxt, publisher_id, event_type, payload, metadata, _p=prio):
                collector.handle(_p, ctxt, publisher_id, event_type, payload, metadata)
                return handled
        attrs[prio] = method
    return type("InteropEndpoint", (object,), attrs)()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--timeout", type=float, required=True)
    ap.add_argument("--pool")
    ap.add_argument("--batch", type=int, metavar="SIZE")
    ap.add_argument("--batch-timeout", type=float, metavar="SECS")
    ap.add_argument("--ready-file")
    ap.add_argument("--priorities", default=",".join(common.PRIORITIES))
    ap.add_argument("--warmup-priorities")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--create-topics", action="store_true",
                    help="create T.<priority> for all 7 priorities first")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    common.setup_logging(args.verbose)

    prios = [p.strip().lower() for p in args.priorities.split(",") if p.strip()]
    bad = [p for p in prios if p not in common.PRIORITIES]
    if bad or not prios:
        common.log("ERROR: bad --priorities %s", args.priorities)
        return 2
    warm = ([p.strip().lower() for p in args.warmup_priorities.split(",") if p.strip()]
            if args.warmup_priorities else prios)
    if not set(warm) <= set(prios):
        common.log("ERROR: --warmup-priorities must be a subset of --priorities")
        return 2
    if args.batch_timeout is not None and not args.batch:
        common.log("ERROR: --batch-timeout needs --batch")
        return 2
    if args.ready_file and os.path.exists(args.ready_file):
        os.unlink(args.ready_file)

    import oslo_messaging

    rabbit = common.is_rabbit_url(args.url)
    if args.create_topics and rabbit:
        common.log("--create-topics ignored on RabbitMQ (oslo declares its queues)")
    elif args.create_topics:
        common.create_topics(common.bootstrap_from_url(args.url),
                             common.priority_topics(args.topic))

    collector = Collector(args.count, args.ready_file, warm)
    stop_signal = []

    def on_signal(signum, _frame):
        stop_signal.append(signum)
        collector.done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    conf = common.init_oslo_config()
    transport = oslo_messaging.get_notification_transport(conf, url=args.url)
    endpoint = make_endpoint(collector, prios, bool(args.batch))
    targets = [oslo_messaging.Target(topic=args.topic)]
    if args.batch:
        listener = oslo_messaging.get_batch_notification_listener(
            transport, targets, [endpoint], executor="threading", pool=args.pool,
            batch_size=args.batch, batch_timeout=args.batch_timeout)
    else:
        listener = oslo_messaging.get_notification_listener(
            transport, targets, [endpoint], executor="threading", pool=args.pool)

    started = False
    try:
        # Kafka: blocks ~5 s (oslo's KafkaListener polls, and discards, for 5 s when
        # created). Rabbit: declares and consumes the queues, ~0.05 s.
        listener.start(override_pool_size=args.workers)
        started = True
        common.log("listener started after %.2f s (pool=%s, topics=%s)",
                   time.monotonic() - T_START, args.pool,
                   ",".join(common.priority_topics(args.topic, prios)))
        if rabbit and args.ready_file:
            with collector.lock:
                common.write_ready_file(args.ready_file)
                collector.ready_written = True
            common.log("ready after %.2f s (rabbit: queues declared by start())",
                       time.monotonic() - T_START)
        # Short waits: a signal that the kernel delivers to one of oslo's threads only
        # runs its Python handler when the main thread next wakes up.
        deadline = T_START + args.timeout
        while not collector.done.is_set() and time.monotonic() < deadline:
            collector.done.wait(min(0.2, max(0.0, deadline - time.monotonic())))
    finally:
        if started:
            listener.stop()
            listener.wait()
        transport.cleanup()

    elapsed = time.monotonic() - T_START
    ok = (args.count == 0 or collector.received >= args.count)
    common.log("received %d/%d notifications in %.2f s%s%s",
               collector.received, args.count, elapsed,
               "" if collector.first_at is None
               else " (first at %.2f s)" % (collector.first_at - T_START),
               " (stopped by signal %d)" % stop_signal[0] if stop_signal else "")
    if args.ready_file and not collector.ready_written:
        common.log("warning: no complete warm-up round was received (ready file not written)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
