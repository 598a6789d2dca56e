#!/usr/bin/env python3
"""A real oslo.messaging RPC server (any driver; written for rabbit://) for interop tests.

Usage:
  oslo_rpc_server.py --url rabbit://guest:guest@127.0.0.1:PORT/ --topic T --server S
                     [--exchange X] [--ready-file PATH] [--duration SECONDS]
                     [--workers 1] [--trace] [--verbose]

Starts oslo_messaging.get_rpc_server(get_rpc_transport(cfg.CONF, url=--url),
Target(topic=T, server=S, exchange=X), endpoints, executor="threading"), so it consumes
the queues T (topic), T.S (this server) and a T_fanout_<uuid> queue (fanout), all
bound to the control exchange X (default: oslo's control_exchange, "openstack").

Endpoints:
  default endpoint (no namespace, version 1.0):
    echo(ctxt, **kwargs)          -> {"args": kwargs, "context_user": ctxt["user"] or null,
                                      "server": S, "nested": {"list": [1, "two", {"three": 3.0}],
                                      "none": null, "bool": true}}
    fail(ctxt, message)           raises the builtin ValueError(message). NOTE: an oslo
                                  client rebuilds builtin exceptions: it gets a ValueError
                                  whose text is message + "\\n" + traceback, not a
                                  RemoteError (see the README).
    fail_custom(ctxt, message, code=None)
                                  raises _interop_common.InteropError(message, code=code)
                                  (module "_interop_common", kwargs {"code": code}): an oslo
                                  client gets RemoteError(exc_type="InteropError",
                                  value=message).
    record(ctxt, **kwargs)        for casts: prints {"method": "record", "args": kwargs,
                                  "context": ctxt, "server": S}; returns null.
    sleep(ctxt, seconds)          sleeps, returns seconds (for call timeouts and the call
                                  monitor: with call_monitor_timeout set, oslo's server
                                  sends heartbeats while it sleeps).
    _private(ctxt)                never callable (oslo refuses names starting with "_").
  endpoint target Target(namespace="ns1", version="1.2"):
    add(ctxt, a, b)               -> a + b
Anything else gives the caller NoSuchMethod / UnsupportedVersion (oslo's dispatcher).

Output (stdout), one JSON line per event, flushed at once:
  {"served": METHOD, "endpoint": "default"|"ns1", "args": {...}, "context": {...},
   "server": S}                   for every request dispatched to an endpoint method
                                  (before the method runs; also for record, fail, sleep)
  {"method": "record", "args": {...}, "context": {...}, "server": S}
                                  printed by record() itself
With --trace ([oslo_messaging_tracing] tracing_enabled = true, in-memory span
exporter: _interop_common.enable_tracing), each "served" line also has
  "span": {"trace_id", "span_id", "parent_span_id", "name", "kind", "attributes"}
                                  oslo's consumer span the method runs in
"context" is the dict the endpoint got: the caller's context keys plus oslo's
"client_timeout" (the request's _timeout: the caller's call_monitor_timeout, or null).

--ready-file PATH is written (atomically, "ready\\n") once server.start() returned:
the queues are declared and consumed from by then. Stops on SIGTERM/SIGINT or after
--duration seconds (default: run until signalled): server.stop(), server.wait(),
transport.cleanup(); exit 0. --workers: oslo's executor pool size (oslo's default is
64; 1 = requests handled one at a time, lines in arrival order).
"""

import argparse
import os
import signal
import sys
import threading
import time

import _interop_common as common


def _ctx_dict(ctxt):
    if ctxt is None:
        return None
    if hasattr(ctxt, "to_dict"):
        ctxt = ctxt.to_dict()
    return {str(k): v for k, v in dict(ctxt).items()}


def make_endpoints(server_name):
    import oslo_messaging

    def served(endpoint, method, ctxt, args):
        line = {"served": method, "endpoint": endpoint, "args": args,
                "context": _ctx_dict(ctxt), "server": server_name}
        span = common.current_span_dict()
        if span is not None:
            line["span"] = span
        common.emit(line)

    class DefaultEndpoint:
        # No namespace, version 1.0 (oslo's default for an endpoint without target).
        target = oslo_messaging.Target(version="1.0")

        def echo(self, ctxt, **kwargs):
            served("default", "echo", ctxt, kwargs)
            c = _ctx_dict(ctxt) or {}
            return {"args": kwargs, "context_user": c.get("user"), "server": server_name,
                    "nested": {"list": [1, "two", {"three": 3.0}], "none": None,
                               "bool": True}}

        def fail(self, ctxt, message):
            served("default", "fail", ctxt, {"message": message})
            raise ValueError(message)

        def fail_custom(self, ctxt, message, code=None):
            served("default", "fail_custom", ctxt, {"message": message, "code": code})
            raise common.InteropError(message, code=code)

        def record(self, ctxt, **kwargs):
            served("default", "record", ctxt, kwargs)
            common.emit({"method": "record", "args": kwargs, "context": _ctx_dict(ctxt),
                         "server": server_name})

        def sleep(self, ctxt, seconds):
            served("default", "sleep", ctxt, {"seconds": seconds})
            time.sleep(float(seconds))
            return seconds

        def _private(self, ctxt):
            raise AssertionError("oslo must never dispatch to a name starting with _")

    class Ns1Endpoint:
        target = oslo_messaging.Target(namespace="ns1", version="1.2")

        def add(self, ctxt, a, b):
            served("ns1", "add", ctxt, {"a": a, "b": b})
            return a + b

    return [DefaultEndpoint(), Ns1Endpoint()]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="rabbit://USER:PASS@HOST:PORT/[VHOST]")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--exchange", help="control exchange (default: oslo's 'openstack')")
    ap.add_argument("--ready-file")
    ap.add_argument("--duration", type=float, help="stop after SECONDS (default: on signal)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--trace", action="store_true", help="OpenTelemetry tracing on")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    common.setup_logging(args.verbose)
    if args.ready_file and os.path.exists(args.ready_file):
        os.unlink(args.ready_file)

    import oslo_messaging

    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    conf = common.init_oslo_config()
    if args.trace:
        common.enable_tracing(conf)
    transport = oslo_messaging.get_rpc_transport(conf, url=args.url)
    target = oslo_messaging.Target(topic=args.topic, server=args.server,
                                   exchange=args.exchange)
    server = oslo_messaging.get_rpc_server(transport, target, make_endpoints(args.server),
                                           executor="threading")
    t0 = time.monotonic()
    started = False
    try:
        server.start(override_pool_size=args.workers)
        started = True
        common.log("server %s on topic %s (exchange %s) started in %.2f s", args.server,
                   args.topic, args.exchange or conf.control_exchange, time.monotonic() - t0)
        if args.ready_file:
            common.write_ready_file(args.ready_file)
        # Short waits: a signal that the kernel delivers to one of oslo's threads only
        # runs its Python handler when the main thread next wakes up.
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            stop.wait(0.1)
    finally:
        t_stop = time.monotonic()
        if started:
            server.stop()
            t_stopped = time.monotonic()
            server.wait()
        t_waited = time.monotonic()
        transport.cleanup()
    common.log("server %s stopped: stop() %.2f s, wait() %.2f s, cleanup() %.2f s",
               args.server, (t_stopped - t_stop) if started else 0,
               (t_waited - t_stopped) if started else 0, time.monotonic() - t_waited)
    return 0


if __name__ == "__main__":
    sys.exit(main())
