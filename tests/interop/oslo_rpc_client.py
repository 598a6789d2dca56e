#!/usr/bin/env python3
"""A real oslo.messaging RPC client (any driver; written for rabbit://) for interop tests.

Usage:
  oslo_rpc_client.py --url rabbit://guest:guest@127.0.0.1:PORT/ --requests FILE|-
                     [--exchange X] [--trace] [--verbose]

FILE (or stdin with -) is a JSON list of requests, performed in order with ONE
transport (get_rpc_transport(cfg.CONF, url=--url)) and one client
(get_rpc_client(transport, Target(topic=...))), each through client.prepare(...):
  {"kind": "call" | "cast" | "fanout",       default "call"
   "topic": T,                               required
   "server": S,                              optional (call/cast to T.S)
   "method": M,                              required
   "args": {...},                            keyword arguments, default {}
   "namespace": "ns1", "version": "1.2",     optional
   "exchange": X,                            optional (default --exchange, else oslo's
                                             control_exchange "openstack")
   "timeout": SECONDS,                       calls: default 10 (oslo's default is 60)
   "call_monitor_timeout": SECONDS,          calls: optional (server heartbeats)
   "retry": N,                               optional (oslo: None = forever)
   "at_least_once": true,                    optional: TransportOptions(at_least_once=True)
                                             (mandatory flag: a request nobody can
                                             receive fails with MessageUndeliverable)
   "context": {...}}                         a plain dict, sent as _context_<key> fields
                                             (default {})
  {"kind": "sleep", "seconds": S}            pause (prints {"i": n, "ok": true} too)
"fanout" is a cast with prepare(fanout=True) (to every server of T).

Output (stdout), one JSON line per request, in order, flushed at once:
  {"i": n, "result": R, "elapsed": s}        a call that returned R
  {"i": n, "ok": true, "elapsed": s}         a cast/fanout that was sent (or a sleep)
  {"i": n, "error": {"class": C, "module": M, "exc_type": E, "value": V, "text": T},
   "elapsed": s}                             anything that raised:
     class     type(e).__name__: RemoteError, MessagingTimeout, ValueError (a builtin
               exception raised by the server is rebuilt as itself by oslo), ...
     module    type(e).__module__ (e.g. "oslo_messaging.rpc.client",
               "oslo_messaging.exceptions", "builtins")
     exc_type  for RemoteError: e.exc_type (the server's class name, e.g. "NoSuchMethod",
               "InteropError"); otherwise null
     value     for RemoteError: e.value (the server's message); for a rebuilt builtin:
               the first line of its text (oslo appends "\\n" + traceback); otherwise
               str(e)
     text      str(e)
"elapsed" is the request's duration in seconds (float).

--trace: [oslo_messaging_tracing] tracing_enabled = true with an in-memory span
exporter (see _interop_common.enable_tracing); after the request lines, one line
  {"spans": [SPAN, ...]}                     every span oslo finished, SPAN as in
                                             _interop_common.span_dict (trace_id,
                                             span_id, parent_span_id, name, kind,
                                             attributes)

Driver options: [oslo_messaging_rabbit] options can go in the URL query (oslo reads
them there), e.g. rabbit://guest:guest@127.0.0.1:PORT/?rabbit_quorum_queue=true
No config file is read.

Exit status: 0 once every request was attempted (errors are output, not failures);
2 on bad input.
"""

import argparse
import json
import sys
import time

import _interop_common as common

KINDS = ("call", "cast", "fanout", "sleep")


def _load(path):
    data = common.load_json_objects(path, "requests", "request")
    for i, r in enumerate(data):
        kind = r.get("kind", "call")
        if kind not in KINDS:
            raise ValueError("request %d: bad kind %r" % (i, kind))
        if kind == "sleep":
            continue
        if not r.get("topic") or not r.get("method"):
            raise ValueError("request %d: topic and method are required" % i)
        if not isinstance(r.get("args", {}), dict):
            raise ValueError("request %d: args must be an object" % i)
        if not isinstance(r.get("context", {}), dict):
            raise ValueError("request %d: context must be an object" % i)
    return data


def _describe(exc):
    import oslo_messaging

    cls = type(exc)
    err = {"class": cls.__name__, "module": cls.__module__, "exc_type": None,
           "value": None, "text": str(exc)}
    if isinstance(exc, oslo_messaging.RemoteError):
        err["exc_type"] = exc.exc_type
        err["value"] = exc.value
    elif cls.__module__ in ("builtins", "exceptions") and exc.args and isinstance(exc.args[0], str):
        err["value"] = exc.args[0].split("\n", 1)[0]
    else:
        err["value"] = str(exc)
    return err


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="rabbit://USER:PASS@HOST:PORT/[VHOST]")
    ap.add_argument("--requests", required=True, help="JSON file, or - for stdin")
    ap.add_argument("--exchange", help="default control exchange for every request")
    ap.add_argument("--trace", action="store_true", help="OpenTelemetry tracing on")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    common.setup_logging(args.verbose)

    try:
        requests = _load(args.requests)
    except (OSError, ValueError) as exc:
        common.log("ERROR: bad requests: %s", exc)
        return 2

    import oslo_messaging

    conf = common.init_oslo_config()
    exporter = common.enable_tracing(conf) if args.trace else None
    transport = oslo_messaging.get_rpc_transport(conf, url=args.url)
    try:
        first_topic = next((r["topic"] for r in requests if r.get("topic")), "interop")
        client = oslo_messaging.get_rpc_client(
            transport, oslo_messaging.Target(topic=first_topic, exchange=args.exchange))
        for i, r in enumerate(requests):
            kind = r.get("kind", "call")
            t0 = time.monotonic()
            if kind == "sleep":
                time.sleep(float(r.get("seconds", 0)))
                common.emit({"i": i, "ok": True, "elapsed": round(time.monotonic() - t0, 4)})
                continue
            prep = {"topic": r["topic"], "server": r.get("server"),
                    "namespace": r.get("namespace"), "version": r.get("version"),
                    "fanout": kind == "fanout"}
            if r.get("exchange") is not None:
                prep["exchange"] = r["exchange"]
            if kind == "call":
                prep["timeout"] = r.get("timeout", 10)
                if r.get("call_monitor_timeout") is not None:
                    prep["call_monitor_timeout"] = r["call_monitor_timeout"]
            if "retry" in r:
                prep["retry"] = r["retry"]
            if r.get("at_least_once"):
                prep["transport_options"] = oslo_messaging.TransportOptions(at_least_once=True)
            cctxt = client.prepare(**prep)
            ctxt = dict(r.get("context", {}))
            kwargs = r.get("args", {})
            line = {"i": i}
            try:
                if kind == "call":
                    line["result"] = cctxt.call(ctxt, r["method"], **kwargs)
                else:
                    cctxt.cast(ctxt, r["method"], **kwargs)
                    line["ok"] = True
            except Exception as exc:  # every failure is data for the caller
                line["error"] = _describe(exc)
            line["elapsed"] = round(time.monotonic() - t0, 4)
            common.emit(line)
        if exporter is not None:
            common.emit({"spans": [common.span_dict(s) for s in exporter.get_finished_spans()]})
    finally:
        transport.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
