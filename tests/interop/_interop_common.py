"""Helpers shared by the interop programs in this directory.

Run the programs with the interpreter printed by scripts/python-env.sh; they import
oslo.messaging, confluent-kafka and ceilometer from that virtualenv.
"""

import json
import logging
import os
import sys
import threading
import warnings

PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")
WARMUP_EVENT_TYPE = "interop.warmup"

_stdout_lock = threading.Lock()


def setup_logging(verbose):
    """Logs go to stderr; stdout is reserved for the JSON output."""
    # eventlet (an oslo.messaging dependency) warns about its deprecation on
    # import; it is not used here (executor="threading").
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        # oslo.messaging logs every swallowed send error at ERROR already; keep
        # the INFO chatter ("Kafka messaging driver shutdown") out.
        logging.getLogger("oslo_messaging").setLevel(logging.WARNING)


def init_oslo_config():
    """Initialise cfg.CONF without reading any config file or argv.

    Kafka driver options (group oslo_messaging_kafka) can still be given as
    transport URL query parameters, e.g.
    kafka://127.0.0.1:9092?compression_codec=gzip&consumer_group=g1, or with
    oslo.config's environment variables (OS_OSLO_MESSAGING_KAFKA__<OPT>).
    """
    from oslo_config import cfg

    cfg.CONF([], project="messaging-interop", default_config_files=[],
             default_config_dirs=[])
    return cfg.CONF


def load_json_objects(path, what, item):
    """The JSON list of objects in file `path` ("-": stdin); ValueError naming
    `what` (the list) or `item` (an entry) when it is not one."""
    if path == "-":
        data = json.load(sys.stdin)
    else:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    if not isinstance(data, list):
        raise ValueError("%s must be a JSON list" % what)
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise ValueError("%s %d is not an object" % (item, i))
    return data


def emit(obj):
    """Print one compact JSON line on stdout and flush it (thread safe)."""
    line = json.dumps(obj, sort_keys=False, separators=(",", ":"))
    with _stdout_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def log(msg, *args):
    sys.stderr.write(("[%s] " % os.path.basename(sys.argv[0])) + (msg % args if args else msg) + "\n")
    sys.stderr.flush()


def bootstrap_from_url(url):
    """'kafka://[user:pass@]h1:p1,h2:p2/vhost?x=y' -> 'h1:p1,h2:p2' (default port 9092)."""
    rest = url.split("://", 1)[1] if "://" in url else url
    rest = rest.split("?", 1)[0].split("/", 1)[0]
    hosts = []
    for part in rest.split(","):
        part = part.rsplit("@", 1)[-1]
        if not part:
            continue
        if part.startswith("["):
            host, _, port = part[1:].partition("]")
            port = port.lstrip(":")
            host = "[%s]" % host
        else:
            host, _, port = part.partition(":")
        hosts.append("%s:%s" % (host, port or "9092"))
    if not hosts:
        raise ValueError("no broker host in %r" % url)
    return ",".join(hosts)


def create_topics(bootstrap, names, partitions=1, timeout=30.0):
    """Create Kafka topics with confluent_kafka's AdminClient.

    A topic that already exists is fine. Returns {name: "created"|"exists"}.
    Raises RuntimeError on any other error.
    """
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap,
                         "socket.timeout.ms": int(timeout * 1000)})
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names],
        request_timeout=timeout, operation_timeout=timeout)
    result = {}
    errors = []
    for name, fut in futures.items():
        try:
            fut.result(timeout=timeout + 5)
            result[name] = "created"
        except Exception as exc:  # KafkaException wrapping a KafkaError
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                result[name] = "exists"
            else:
                errors.append("%s: %s" % (name, exc))
    if errors:
        raise RuntimeError("topic creation failed: " + "; ".join(errors))
    return result


def priority_topics(topic, priorities=PRIORITIES):
    return ["%s.%s" % (topic, p) for p in priorities]


class InteropError(Exception):
    """Raised by oslo_rpc_server.py's fail_custom().

    Its module (_interop_common) is not in a client's allowed_remote_exmods, so an oslo
    client turns it into RemoteError(exc_type="InteropError", value=message); the
    error reply carries "kwargs": {"code": code} (oslo sends the exception's .kwargs).
    """

    def __init__(self, message, code=None):
        super().__init__(message)
        self.kwargs = {"code": code}


def write_ready_file(path):
    """Create PATH atomically with content "ready\\n"."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("ready\n")
    os.replace(tmp, path)


def url_scheme(url):
    """'rabbit://...' -> 'rabbit' ('kafka' for a bare host:port)."""
    return url.split("://", 1)[0].lower() if "://" in url else "kafka"


def is_rabbit_url(url):
    """True for oslo's RabbitMQ driver (rabbit://; kombu:// is broken in oslo 18.3)."""
    return url_scheme(url) == "rabbit"


def enable_tracing(conf):
    """[oslo_messaging_tracing] tracing_enabled = true, with an in-memory exporter.

    A TracerProvider is installed before oslo.messaging sets up its tracer, so
    oslo reuses it (its _tracing.client does so for any provider already set)
    instead of building its own with an OTLP exporter. Returns the exporter.
    """
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    conf.set_override("tracing_enabled", True, group="oslo_messaging_tracing")
    return exporter


def span_dict(span):
    """A finished (or current) span as JSON: ids in W3C hex, kind, attributes."""
    ctx = span.get_span_context()
    parent = getattr(span, "parent", None)
    return {"name": getattr(span, "name", None),
            "kind": str(getattr(span, "kind", "")).rsplit(".", 1)[-1],
            "trace_id": format(ctx.trace_id, "032x"),
            "span_id": format(ctx.span_id, "016x"),
            "parent_span_id": format(parent.span_id, "016x") if parent else None,
            "attributes": dict(getattr(span, "attributes", None) or {})}


def current_span_dict():
    """The span current in this thread (oslo's consumer span inside an endpoint),
    or None when tracing is off."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    span = trace.get_current_span()
    if not span.get_span_context().is_valid:
        return None
    return span_dict(span)
