#!/usr/bin/env python3
"""Compute Ceilometer message signatures with Ceilometer's own code.

Usage:
  ceilometer_sign.py SECRET < messages.json

stdin: a JSON list of objects (metering messages / samples, events...).
argv[1]: the shared secret (telemetry_secret); may be "" (no signing).
stdout: a JSON list, one entry per input object, in order:
  {"signature": ceilometer.publisher.utils.compute_signature(obj, SECRET),
   "verified":  ceilometer.publisher.utils.verify_signature(obj, SECRET)}
"signature" is what Ceilometer would put in "message_signature" (it ignores any
existing "message_signature" key); "verified" says whether the object's own
"message_signature" is valid (False when it has none; always True for an empty
secret, as in Ceilometer).

Exit status: 0 on success, 2 on bad usage or input.
"""

import json
import sys
import warnings


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        sys.stderr.write(__doc__)
        return 2
    secret = argv[1]
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from ceilometer.publisher import utils

    try:
        messages = json.load(sys.stdin)
    except ValueError as exc:
        sys.stderr.write("ceilometer_sign.py: stdin is not JSON: %s\n" % exc)
        return 2
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        sys.stderr.write("ceilometer_sign.py: stdin must be a JSON list of objects\n")
        return 2
    out = [{"signature": utils.compute_signature(m, secret),
            "verified": bool(utils.verify_signature(m, secret))} for m in messages]
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
