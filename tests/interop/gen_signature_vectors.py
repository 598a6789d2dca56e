#!/usr/bin/env python3
"""Regenerate the Ceilometer signing golden vectors used by messaging-telemetry.

Writes, from the real ``ceilometer.publisher.utils`` of the running interpreter:

* messaging-telemetry/tests/data/signature_vectors.json
    a corpus of messages with ``compute_signature(json.loads(text), secret)``;
* messaging-telemetry/tests/data/signature_random_vectors.json
    300 random nested messages in the same format (message_json only);
* messaging-telemetry/tests/data/float_repr_vectors.json
    IEEE-754 bit patterns with Python's ``repr(float)`` (the text Ceilometer
    feeds into the MAC for floats).

Run it with an interpreter that can import ceilometer.publisher.utils, e.g. the
one printed by scripts/python-env.sh, or a throwaway venv:

    python3 -m venv /tmp/sigvenv
    /tmp/sigvenv/bin/pip install --no-deps ceilometer==27.0.0
    /tmp/sigvenv/bin/pip install oslo.config oslo.log oslo.utils stevedore
    /tmp/sigvenv/bin/python tests/interop/gen_signature_vectors.py

Vector fields:
  name              short description
  secret            the shared secret (str)
  message           the message as a JSON object, or
  message_json      the exact JSON text of the message, for vectors whose
                    number text matters (json.dumps would not keep it)
  signature         what Ceilometer computes ('' for an empty secret)
  value_path        how the Rust parsed-value entry point (serde_json::Value,
                    without arbitrary_precision) relates to Ceilometer:
                    "exact", "differs" (serde_json loses the distinction) or
                    "rejected" (serde_json refuses the text)

The output is deterministic (fixed random seed), so a rerun with the same
ceilometer and Python versions reproduces the committed files byte for byte.
"""

import importlib.metadata
import json
import os
import random
import struct
import sys

from ceilometer.publisher import utils

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "messaging-telemetry", "tests", "data")

SECRET = "s3cr3t"

SAMPLE = {
    "source": "openstack",
    "counter_name": "cpu",
    "counter_type": "cumulative",
    "counter_unit": "ns",
    "counter_volume": 123456789000,
    "user_id": "9f0c4c2f6a8b4d2e8c1e7b6a5d4c3b2a",
    "user_name": None,
    "project_id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    "project_name": None,
    "resource_id": "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9",
    "timestamp": "2026-05-01T12:00:00.123456+00:00",
    "resource_metadata": {
        "display_name": "web-01",
        "name": "instance-00000001",
        "host": "5d2a0c1e9f",
        "instance_type": "m1.small",
        "flavor": {"id": "2", "name": "m1.small", "vcpus": 1, "ram": 2048,
                   "disk": 20, "ephemeral": 0, "swap": 0},
        "image": {"id": "c5f1a3b7-0000-4000-8000-000000000001"},
        "vcpus": 1,
        "memory_mb": 2048,
        "status": "active",
        "state": "running",
        "cpu_number": 1,
        "cpu_util": 12.5,
        "security_groups": ["default", "web"],
        "block_devices": [{"device_name": "/dev/vda", "volume_id": None}],
    },
    "message_id": "6f1c8a2e-3b4d-11ef-9a5b-0242ac120002",
    "monotonic_time": None,
    "publisher_id": "telemetry.publisher.ctl-1",
    "message_signature": "to-be-ignored",
}

EVENT = {
    "message_id": "0e6e9f3a-5b1d-4c2e-9a7f-1d2c3b4a5e6f",
    "event_type": "compute.instance.create.end",
    "generated": "2026-05-01T12:00:00.654321",
    "traits": [
        {"name": "service", "dtype": 1, "value": "compute.host1"},
        {"name": "memory_mb", "dtype": 2, "value": 2048},
        {"name": "disk_gb", "dtype": 3, "value": 20.0},
        {"name": "launched_at", "dtype": 4, "value": "2026-05-01T11:59:58"},
    ],
    "raw": {},
}

# (name, message, secret, value_path). A message given as str is exact JSON
# text (kept verbatim as message_json); anything else is a JSON object.
CORPUS = [
    ("empty message", {}, SECRET, "exact"),
    ("flat strings", {"b": "two", "a": "one", "c": ""}, SECRET, "exact"),
    ("realistic metering sample", SAMPLE, SECRET, "exact"),
    ("realistic event", EVENT, SECRET, "exact"),
    ("nested map", {"outer": {"b": 2, "a": "x"}, "z": 1}, SECRET, "exact"),
    ("three levels", {"a": {"b": {"c": {"d": "deep"}}, "e": True}}, SECRET, "exact"),
    ("empty nested map contributes nothing", {"a": {}, "b": 1, "c": {"d": {}}}, SECRET, "exact"),
    ("list of strings", {"l": ["a", "b", ""]}, SECRET, "exact"),
    ("list of integers", {"l": [0, 1, -1, 42, 9223372036854775807]}, SECRET, "exact"),
    ("list of floats", {"l": [0.1, 1e20, 1e-7, -0.0, 1.0, 2.5, 1e16, 1e15]}, SECRET, "exact"),
    ("list of bools and nulls", {"l": [True, False, None]}, SECRET, "exact"),
    ("list of maps", {"l": [{"z": "1", "a": "2"}, {"m": 3, "b": None}]}, SECRET, "exact"),
    ("list of lists", {"l": [[1, 2], ["a", ["b", []]], []]}, SECRET, "exact"),
    ("empty list", {"l": [], "m": "x"}, SECRET, "exact"),
    ("list with empty map and list", {"l": [{}, [], ""]}, SECRET, "exact"),
    ("map in list with nested map and list",
     {"l": [{"k": {"y": [1, "s", {"q": False}], "x": 0.5}}]}, SECRET, "exact"),
    ("unicode top-level strings", {"a": "héllo", "b": "日本", "c": "😀"}, SECRET, "exact"),
    ("unicode in list", {"l": ["héllo", "日本", "😀", "ñ"]}, SECRET, "exact"),
    ("unicode keys sorted by code point",
     {"é": 1, "e": 2, "z": 3, "日本": 4, "😀": 5, "\ufffd": 6, "\ue000": 7}, SECRET, "exact"),
    ("unicode nested keys", {"métadonnées": {"clé": "valeur", "日": "本"}}, SECRET, "exact"),
    ("unicode keys of map in list", {"l": [{"clé": "é", "a": "日本"}]}, SECRET, "exact"),
    ("single quote in list", {"l": ["it's"]}, SECRET, "exact"),
    ("double quote in list", {"l": ['say "hi"']}, SECRET, "exact"),
    ("both quotes in list", {"l": ["a\"'b", "'\""]}, SECRET, "exact"),
    ("backslash in list", {"l": ["C:\\path\\to", "\\'", "\\"]}, SECRET, "exact"),
    ("control characters in list",
     {"l": ["line1\nline2", "tab\there", "cr\rx", "\u0000\u0001\u001f\u007f", " ~"]},
     SECRET, "exact"),
    ("quotes in map keys in list", {"l": [{"it's": "a\"b", "x\\y": "\n"}]}, SECRET, "exact"),
    ("top-level strings with quotes, backslashes, newlines",
     {"q": "it's \"quoted\"", "b": "back\\slash", "n": "a\nb\tc\r", "u": "\u0000\u007f"},
     SECRET, "exact"),
    ("integers", {"zero": 0, "neg": -1, "big": 123456789012, "i64max": 9223372036854775807,
                  "i64min": -9223372036854775808, "u64max": 18446744073709551615},
     SECRET, "exact"),
    ("integer above u64",
     '{"big": 123456789012345678901234567890, "l": [18446744073709551616]}', SECRET, "differs"),
    ("integer below i64", '{"neg": -9223372036854775809}', SECRET, "differs"),
    ("floats", {"a": 0.1, "b": 1e20, "c": 1e-7, "d": 1e16, "e": 1e15, "f": 123456789.123,
                "g": 1e-5, "h": 0.0001, "i": 5e-324, "j": 1.7976931348623157e308,
                "k": 2.5, "l": 1.0, "m": -1.5e-7, "n": 0.30000000000000004},
     SECRET, "exact"),
    ("negative zero float", {"z": -0.0, "l": [-0.0]}, SECRET, "exact"),
    ("negative zero integer text", '{"z": -0, "l": [-0]}', SECRET, "differs"),
    ("float text variants",
     '{"a": 1E2, "b": 1.0e+2, "c": 100.000, "d": 1e-7, "e": 0.1e1, "f": 12345678901234567890.0}',
     SECRET, "exact"),
    ("float overflow to inf", '{"big": 1e400, "l": [-1e400, 1e-400]}', SECRET, "rejected"),
    ("booleans and nulls", {"t": True, "f": False, "n": None}, SECRET, "exact"),
    ("signature at top level is skipped",
     {"a": 1, "message_signature": "deadbeef"}, SECRET, "exact"),
    ("signature list at top level is skipped",
     {"a": 1, "message_signature": ["x"]}, SECRET, "exact"),
    ("nested message_signature is signed",
     {"a": {"message_signature": "nested"}}, SECRET, "exact"),
    ("message_signature map is flattened and signed",
     {"message_signature": {"x": "1"}, "b": 2}, SECRET, "exact"),
    ("flattened name collides with a key", {"a": {"b": 1}, "a:b": 2, "a:a": 3}, SECRET, "exact"),
    ("key sort order", {"b": 1, "B": 2, "_": 3, "1": 4, "a b": 5, "a": 6, "~": 7, "": 8},
     SECRET, "exact"),
    ("empty key and nested empty key", {"": {"": "x", "a": 1}, "z": ""}, SECRET, "exact"),
    ("empty secret", SAMPLE, "", "exact"),
    ("unicode secret", {"a": "b", "l": [1]}, "clé-日本-😀", "exact"),
    ("long secret", {"a": "b"}, "k" * 200, "exact"),
    ("secret with spaces and quotes", {"a": "b"}, " it's a \"secret\" ", "exact"),
    ("duplicate keys: last wins",
     '{"a": 1, "b": {"x": 1, "x": 2}, "a": "second"}', SECRET, "exact"),
    ("insignificant whitespace",
     ' \n {\t"b" : [ 1 , "x" ] ,\r\n "a":{ "c" :null } } \n', SECRET, "exact"),
    ("escaped unicode and surrogate pair",
     '{"s": "\\u00e9\\ud83d\\ude00", "l": ["\\u00e9\\ud83d\\ude00", "\\u2028"]}',
     SECRET, "exact"),
    ("numbers in nested lists and maps",
     {"l": [[0.1, [1e-7, -2]], {"f": 1e22, "i": -7}, [[[]]]]}, SECRET, "exact"),
    ("float ties round half to even",
     {"a": 739851323064877.25, "l": [739851323064877.75, -2205547964965410.25]}, SECRET, "exact"),
    ("long list", {"l": list(range(-50, 50))}, SECRET, "exact"),
    ("mixed list", {"l": ["a", 1, 1.5, None, True, {"k": "v"}, ["n"], "é"]}, SECRET, "exact"),
    ("payload like a notification",
     {"event_type": "metering", "payload": [{"counter_name": "cpu", "counter_volume": 1.0,
                                              "resource_metadata": {"host": "h"}}],
      "priority": "SAMPLE", "publisher_id": "telemetry.publisher.h", "_context": {}},
     SECRET, "exact"),
]


def signature_vectors():
    vectors = []
    for name, message, secret, value_path in CORPUS:
        vector = {"name": name, "secret": secret}
        if isinstance(message, str):
            text = message
            vector["message_json"] = text
        else:
            text = json.dumps(message, ensure_ascii=False)
            vector["message"] = message
        loaded = json.loads(text)
        assert loaded == message or isinstance(message, str), name
        vector["signature"] = utils.compute_signature(loaded, secret)
        vector["value_path"] = value_path
        if secret and isinstance(loaded.get("message_signature", ""), str):
            signed = dict(loaded, message_signature=vector["signature"])
            assert utils.verify_signature(signed, secret), name
        vectors.append(vector)
    return vectors


# Characters that exercise the str()/bytes-repr rules.
ALPHABET = ["a", "b", "Z", "'", '"', "\\", "\n", "\t", "\r", "\x00", "\x1f", "\x7f",
            "\x80", "é", "日", "😀", " ", ":", "\u2028", "\ufffd", "~"]


def random_vectors(count=300):
    """Random nested messages; every one signed by Ceilometer."""
    rng = random.Random(20260502)

    def rstr():
        return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 6)))

    def rfloat():
        k = rng.random()
        if k < 0.4:
            while True:
                f = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
                if f == f and abs(f) != float("inf"):
                    return f
        if k < 0.8:
            return float("%de%d" % (rng.randint(-10 ** 6, 10 ** 6), rng.randint(-30, 30)))
        return rng.choice([0.0, -0.0, 1.0, 0.1, 1e16, 1e-5, 1e-4, 5e-324,
                           rng.randrange(2 ** 50, 2 ** 51) + 0.25])

    def rval(depth, big):
        k = rng.random() * (0.6 if depth > 3 else 1.0)
        if k < 0.1:
            return None
        if k < 0.2:
            return rng.random() < 0.5
        if k < 0.3:
            if big and rng.random() < 0.2:
                return rng.randint(-10 ** 30, 10 ** 30)
            if rng.random() < 0.5:
                return rng.randint(-2 ** 63, 2 ** 64 - 1)
            return rng.randint(-100, 100)
        if k < 0.4:
            return rfloat()
        if k < 0.6:
            return rstr()
        if k < 0.8:
            return [rval(depth + 1, big) for _ in range(rng.randint(0, 4))]
        return {rstr(): rval(depth + 1, big) for _ in range(rng.randint(0, 4))}

    def beyond_64_bits(v):
        if isinstance(v, bool):
            return False
        if isinstance(v, int):
            return not -2 ** 63 <= v < 2 ** 64
        if isinstance(v, list):
            return any(beyond_64_bits(x) for x in v)
        if isinstance(v, dict):
            return any(beyond_64_bits(x) for x in v.values())
        return False

    vectors = []
    for i in range(count):
        msg = {rstr(): rval(0, rng.random() < 0.3) for _ in range(rng.randint(0, 6))}
        text = json.dumps(msg, ensure_ascii=rng.random() < 0.5)
        secret = rstr() or "k"
        vectors.append({
            "name": "random %d" % i,
            "secret": secret,
            "message_json": text,
            "signature": utils.compute_signature(json.loads(text), secret),
            "value_path": "differs" if beyond_64_bits(msg) else "exact",
        })
    return vectors


def float_repr_vectors():
    rng = random.Random(20260501)
    floats = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
              0.1, 0.2, 0.30000000000000004, 1 / 3, 2 / 3, 9007199254740993.0]
    for exp in range(-30, 31):
        for mantissa in (1.0, 1.5, 9.999999999999998, 9.5, 1.25):
            floats.append(mantissa * 10.0 ** exp)
    for exp in range(-1074, 1024, 7):
        floats.append(2.0 ** exp)
        floats.append(-(2.0 ** exp) * 3)
    # Exact ties between two shortest candidates (Python rounds them to even).
    for _ in range(100):
        k = rng.randrange(2 ** 50, 2 ** 51)
        floats.append(k + rng.choice((0.25, 0.75)))
        floats.append(-(k + 0.25))
    while len(floats) < 1000:
        bits = rng.getrandbits(64)
        f = struct.unpack("<d", struct.pack("<Q", bits))[0]
        if f == f and f not in (float("inf"), float("-inf")):
            floats.append(f)
    while len(floats) < 1600:
        digits = rng.randint(1, 17)
        mantissa = rng.randint(1, 10 ** digits - 1)
        floats.append(float("%de%d" % (mantissa, rng.randint(-330, 300))))
    out = []
    seen = set()
    for f in floats:
        if f != f or f in (float("inf"), float("-inf")):
            continue
        bits = "%016x" % struct.unpack("<Q", struct.pack("<d", f))[0]
        if bits in seen:
            continue
        seen.add(bits)
        out.append({"bits": bits, "repr": repr(f)})
    return out


def write(path, obj, indent=1):
    with open(path, "w", encoding="utf-8") as f:
        if indent is None:
            # One compact entry per line.
            f.write("[\n" + ",\n".join(json.dumps(e) for e in obj) + "\n]\n")
        else:
            json.dump(obj, f, ensure_ascii=False, indent=indent)
            f.write("\n")
    print("wrote %s" % os.path.relpath(path, ROOT), file=sys.stderr)


def main():
    os.makedirs(DATA, exist_ok=True)
    write(os.path.join(DATA, "signature_vectors.json"), {
        "generator": "tests/interop/gen_signature_vectors.py",
        "source": "ceilometer.publisher.utils.compute_signature",
        "ceilometer": importlib.metadata.version("ceilometer"),
        "python": "%d.%d" % sys.version_info[:2],
        "vectors": signature_vectors(),
    })
    write(os.path.join(DATA, "signature_random_vectors.json"), {
        "generator": "tests/interop/gen_signature_vectors.py",
        "source": "ceilometer.publisher.utils.compute_signature",
        "ceilometer": importlib.metadata.version("ceilometer"),
        "python": "%d.%d" % sys.version_info[:2],
        "vectors": random_vectors(),
    })
    write(os.path.join(DATA, "float_repr_vectors.json"), float_repr_vectors(), indent=None)


if __name__ == "__main__":
    main()
