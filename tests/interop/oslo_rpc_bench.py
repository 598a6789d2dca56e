#!/usr/bin/env python3
"""oslo.messaging's RPC round trips on rabbit://, for scripts/bench-rpc-vs-oslo.sh.

Usage:
  oslo_rpc_bench.py server --url rabbit://... --topic T [--workers N] [--ready-file F]
  oslo_rpc_bench.py client --url rabbit://... --topic T --calls N [--in-flight K]

server: oslo_messaging.get_rpc_server(..., executor="threading") on Target(topic=T,
  server="bench") with one endpoint, add(ctxt, a, b) -> a + b (no namespace, version
  1.0, as `messaging bench --rpc` calls the demo endpoint's add), a thread pool of
  --workers (default 64, oslo's default). Writes --ready-file once started; runs until
  SIGTERM/SIGINT.
client: K threads sharing one oslo RPCClient (oslo's client is blocking: one call in
  flight per thread), each calling add(a=1, b=2) until N calls are made in all, after
  one warm-up call (not counted: it creates the reply queue). Prints one JSON line:
  {"calls", "in_flight", "seconds", "calls_per_sec", "latency_p50_us",
   "latency_p99_us", "latency_max_us"}; exits 1 when a call failed.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _interop_common as common  # noqa: E402


def serve(args):
    import oslo_messaging

    class Endpoint:
        target = oslo_messaging.Target(version="1.0")

        def add(self, ctxt, a, b):
            return a + b

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    conf = common.init_oslo_config()
    transport = oslo_messaging.get_rpc_transport(conf, url=args.url)
    target = oslo_messaging.Target(topic=args.topic, server="bench")
    server = oslo_messaging.get_rpc_server(transport, target, [Endpoint()],
                                           executor="threading")
    server.start(override_pool_size=args.workers)
    if args.ready_file:
        common.write_ready_file(args.ready_file)
    while not stop.is_set():
        stop.wait(0.1)
    server.stop()
    server.wait()
    transport.cleanup()
    return 0


def percentile(sorted_values, q):
    if not sorted_values:
        return 0
    i = min(len(sorted_values) - 1, max(0, int(round(q * len(sorted_values) + 0.5)) - 1))
    return sorted_values[i]


def call(args):
    import oslo_messaging

    conf = common.init_oslo_config()
    transport = oslo_messaging.get_rpc_transport(conf, url=args.url)
    client = oslo_messaging.get_rpc_client(
        transport, oslo_messaging.Target(topic=args.topic), timeout=30)
    if client.call({}, "add", a=1, b=2) != 3:
        raise SystemExit("warm-up call: wrong result")
    lock = threading.Lock()
    state = {"next": 0, "failed": None}
    latencies = []

    def worker():
        mine = []
        while True:
            with lock:
                if state["next"] >= args.calls or state["failed"]:
                    break
                state["next"] += 1
            t0 = time.perf_counter()
            try:
                r = client.call({}, "add", a=1, b=2)
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    state["failed"] = repr(e)
                break
            mine.append(time.perf_counter() - t0)
            if r != 3:
                with lock:
                    state["failed"] = "add returned %r" % (r,)
                break
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(max(1, args.in_flight))]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    transport.cleanup()
    if state["failed"]:
        common.log("a call failed: %s", state["failed"])
        return 1
    latencies.sort()
    us = [int(x * 1e6) for x in latencies]
    print(json.dumps({
        "calls": len(us), "in_flight": max(1, args.in_flight), "seconds": seconds,
        "calls_per_sec": len(us) / seconds,
        "latency_p50_us": percentile(us, 0.50), "latency_p99_us": percentile(us, 0.99),
        "latency_max_us": us[-1] if us else 0,
    }), flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("role", choices=["server", "client"])
    ap.add_argument("--url", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--workers", type=int, default=64)
    ap.add_argument("--ready-file")
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--in-flight", type=int, default=1)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    common.setup_logging(args.verbose)
    return serve(args) if args.role == "server" else call(args)


if __name__ == "__main__":
    sys.exit(main())
