#!/usr/bin/env python3
"""Write the committed seed corpus (fuzz/corpus/<target>/seed-*) from the repository's
own test vectors (oslo.messaging bodies, RPC requests and replies, URLs, rules files)
plus a few hand-written inputs. Run from anywhere: python3 fuzz/seeds/make_seeds.py"""
import hashlib, json, os, re, subprocess

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
corpus = os.path.join(root, "fuzz", "corpus")

def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def rust_raw_strings(path):
    text = open(os.path.join(root, path)).read()
    for m in re.finditer(r'b?r(#+)"(.*?)"\1', text, re.S):
        yield m.group(2)

# 1. Envelopes: every raw string of the envelope tests that looks like a record.
for path in ["messaging-core/src/envelope/tests.rs", "messaging-core/src/envelope/decode.rs",
             "messaging-core/src/envelope/record.rs", "messaging-core/src/envelope/encode.rs"]:
    for s in rust_raw_strings(path):
        if s.startswith("{") and ("priority" in s or "oslo" in s):
            write("envelope_decode", s)
# oslo.messaging's own record (reference/oslo-compat.md), its rabbit form, and v1.
kafka_form = {"message_id": "6f1c0000-0000-4000-8000-000000000001", "publisher_id": "compute.host1",
              "event_type": "compute.instance.create.end", "priority": "INFO",
              "payload": {"instance_id": "abc", "n": [1, 2.5, None, True], "s": "\u00e9\"\\\n"},
              "timestamp": "2026-05-01 12:00:00.123456", "_context": {"user": "u1", "roles": ["admin"]}}
write("envelope_decode", json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(kafka_form)}))
write("envelope_decode", json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(kafka_form, ensure_ascii=False)}, ensure_ascii=False))
rabbit_form = dict(kafka_form)
del rabbit_form["_context"]
rabbit_form.update({"_unique_id": "9f5e0c8a3b2d4e1f8a7b6c5d4e3f2a1b", "_context_user": "u1",
                    "_context_request_id": "req-1", "_context_auth_token": None})
write("envelope_decode", json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(rabbit_form)}))
write("envelope_decode", json.dumps(kafka_form))
write("envelope_decode", json.dumps(kafka_form, separators=(",", ":")))

# 2. RPC requests and replies: the wire tests' bodies and oslo-rabbit.md's request.
for s in rust_raw_strings("messaging-core/src/rpc/wire.rs"):
    if s.startswith("{"):
        write("rpc_wire", s)
for s in rust_raw_strings("driver-memory/tests/rpc.rs"):
    if s.startswith("{"):
        write("rpc_wire", s)
request = {"method": "add", "args": {"a": 1, "b": [2, 3.5]}, "namespace": "calc", "version": "1.2",
           "_msg_id": "b3522016a5e843019a6129ee6e792599", "_reply_q": "reply_f7eee2d91b704ceaad439d4f07c93a5f",
           "_timeout": 30, "_unique_id": "84dcfc6b374a4872b84d2f6237d91410", "_context_user": "u1",
           "_context_request_id": "req-1"}
write("rpc_wire", json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(request)}))
failure = {"class": "ValueError", "module": "builtins", "message": "bad", "tb": ["Traceback"], "args": ["bad"], "kwargs": {}}
write("rpc_wire", json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(
    {"result": None, "failure": json.dumps(failure), "ending": True, "_msg_id": "m2", "_unique_id": "u2"})}))
write("rpc_wire", json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(
    {"result": None, "failure": None, "ending": False, "_msg_id": "m3", "_unique_id": "u3"})}))

# 3. URLs: every URL the repository's code and docs write.
url_re = re.compile(r"(?:kafka|rabbit|amqp|memory|kombu|notifier)(?:\+[a-z+-]+)?://[^\s\"'`)<>|\\]*")
files = subprocess.run(["git", "-C", root, "ls-files", "*.rs", "*.md", "*.py", "*.toml", "*.sh"],
                       capture_output=True, text=True, check=True).stdout.split()
urls = set()
for f in files:
    if f.startswith("fuzz/"):
        continue
    try:
        text = open(os.path.join(root, f), encoding="utf-8").read()
    except (UnicodeDecodeError, FileNotFoundError):
        continue
    for m in url_re.finditer(text):
        u = m.group(0).rstrip(".,;:")
        if "{" not in u and "$" not in u and len(u) < 200:
            urls.add(u)
urls.update(["kafka+ssl://us%40er:p%3Ass@host1:9093,[::1]:9094,other/v%2Fhost?a=1&b=x+y&a=2",
             "rabbit://u:p@h1:5672,u2:p2@h2/vhost?heartbeat_timeout_threshold=30",
             "rabbit://", "memory://", "memory://b?queue_capacity=10&max_record_bytes=0"])
# Only URLs that start like a transport URL, and not two of the same shape.
shapes = {}
for u in sorted(urls):
    shape = re.sub(r"[a-z0-9]+", "a", u)
    shapes.setdefault(shape, u)
urls = set(shapes.values())
for u in sorted(urls):
    write("transport_url", u)

# 4. Driver options: the first byte picks the scheme (see the target), the rest is
# what follows "://".
schemes = ["kafka", "kafka+ssl", "kafka+sasl", "kafka+sasl+ssl", "kafka+mock", "rabbit", "rabbit+ssl", "amqp", "memory"]
for u in sorted(urls):
    scheme, _, rest = u.partition("://")
    if scheme in schemes:
        write("driver_options", bytes([schemes.index(scheme)]) + rest.encode())
for i, rest in enumerate([
        "h:9092?acks=1&linger=0.5&compression=zstd&enable_auto_commit=yes&max_poll_records=500",
        "h?security_protocol=SASL_SSL&sasl_mechanism=SCRAM-SHA-512&rdkafka.queue.buffering.max.ms=5",
        "h?idempotence=true&acks=0", "?mock_brokers=3&create_topics=on",
        "u:p@h/vh?heartbeat_timeout_threshold=30&rabbit_qos_prefetch_count=0&ssl=true&rabbit_login_method=PLAIN",
        "h?rabbit_quorum_queue=true&amqp_durable_queues=1&connection_timeout=1e300",
        "b?queue_capacity=10&max_record_bytes=0", "h?delivery_timeout=18446744073709551616",
        "h?kafka_consumer_timeout=-0.0&producer_batch_timeout=inf"]):
    write("driver_options", bytes([[0, 3, 0, 4, 5, 6, 8, 1, 2][i]]) + rest.encode())

# 5. Signing: the first byte is the secret's length, then secret and message.
vectors = os.path.join(root, "messaging-telemetry", "tests")
msgs = [
    {"counter_name": "cpu", "counter_volume": 1.5, "resource_id": "r1", "resource_metadata": {"a": [1, None, True]}},
    {"counter_name": "disk", "counter_volume": 12345678901234567890123, "message_signature": "x"},
    {"a": 0.1, "b": 1e300, "c": -0.0, "d": "\u00e9\u65e5", "e": {}, "f": []},
]
for i, m in enumerate(msgs):
    secret = ["secret", "", "k\u00e9y"][i].encode()
    write("telemetry_signing", bytes([len(secret)]) + secret + json.dumps(m).encode())
# Real Ceilometer-signed messages (tests/interop/gen_signature_vectors.py's output).
with open(os.path.join(vectors, "data", "signature_vectors.json")) as f:
    for v in json.load(f)["vectors"]:
        secret = v["secret"].encode()[:15]
        write("telemetry_signing", bytes([len(secret)]) + secret + (v["message_json"] if "message_json" in v else json.dumps(v["message"])).encode())

# 6. Routing rules: the first byte picks TOML (odd) or YAML (even).
yaml_rules = """\
group_1:
  rpc:
    accepted_events:
      - compute.instance.exists
    accepted_priorities:
      - info
  messaging:
    accepted_events:
      - compute.instance.*
      - "*.end"
group_2:
  log:
    accepted_priorities:
      - error
      - critical
"""
toml_rules = """\
[group_1.messaging]
accepted_events = ["compute.instance.*", "image.{upload,delete}"]
accepted_priorities = ["INFO", "warn"]

[group_2.log]
accepted_priorities = ["error"]
"""
write("routing_rules", b"\x00" + yaml_rules.encode())
write("routing_rules", b"\x01" + toml_rules.encode())
write("routing_rules", b"\x00{}")
write("routing_rules", b"\x00g:\n  s:\n    accepted_events: ['[a-z]*', '**/x', 'a{b,c}']\n")
