#!/usr/bin/env python3
"""Create the Kafka topics an oslo.messaging notification topic needs.

Usage:
  create_topics.py --bootstrap HOST:PORT --topic T [--topic T2 ...]
                   [--partitions 1] [--priorities audit,debug,...] [--timeout 30]

For every --topic T, creates T.<priority> for each of the 7 oslo priorities
(audit debug info warn error critical sample) with confluent_kafka's AdminClient
(replication factor 1, --partitions partitions, default 1). Tansu 0.6.0 has no topic
auto-creation, so this must run before any oslo notifier/listener uses the topic.

Already-existing topics are not an error. stdout: one JSON object
{"topic": "created"|"exists", ...}. Exit status 0 on success, 1 on any other error.
"""

import argparse
import sys

import _interop_common as common


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", required=True, help="HOST:PORT[,HOST:PORT...]")
    ap.add_argument("--topic", required=True, action="append",
                    help="oslo notification topic (repeatable)")
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--priorities", default=",".join(common.PRIORITIES),
                    help="comma separated priorities (default: all 7)")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    common.setup_logging(args.verbose)

    prios = [p.strip().lower() for p in args.priorities.split(",") if p.strip()]
    names = [n for t in args.topic for n in common.priority_topics(t, prios)]
    try:
        result = common.create_topics(args.bootstrap, names, args.partitions, args.timeout)
    except Exception as exc:
        common.log("ERROR: %s", exc)
        return 1
    common.emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
