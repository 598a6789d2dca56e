//! Traces across a transport (issue 12): with messaging-core's `opentelemetry`
//! feature, a trace started around a notify continues in the handler, and an RPC
//! server's span is a child of the client's, on memory and `kafka+mock://` (no
//! broker needed), and on a real Kafka-protocol broker (`KAFKA_BOOTSTRAP_SERVERS`,
//! e.g. Tansu) and a real RabbitMQ (`RABBITMQ_URL`), skipped with a note without
//! them (`MESSAGING_REQUIRE_BROKER=1` makes that a failure).

mod kafka_support;
// Both support modules include docker_support (each is also used alone elsewhere).
#[allow(clippy::duplicate_mod)]
mod rabbit_support;
mod trace_support;

use std::future::Future;

use messaging_core::{DriverRegistry, Transport, TransportUrl};

fn memory() -> Option<Transport> {
    let registry = DriverRegistry::new();
    registry.register(driver_memory::factory());
    let url = TransportUrl::parse(&format!(
        "memory://{}",
        integration_tests::support::unique("traces")
    ))
    .unwrap();
    Some(Transport::open_with(&registry, &url, &[]).unwrap())
}

fn kafka_mock() -> Option<Transport> {
    let registry = DriverRegistry::new();
    registry.register(driver_kafka::factory());
    let group = integration_tests::support::unique("group");
    let url = TransportUrl::parse(&format!(
        "kafka+mock://?create_topics=true&consumer_group={group}\
         &rdkafka.consumer.session.timeout.ms=6000&rdkafka.consumer.heartbeat.interval.ms=500\
         &rdkafka.consumer.topic.metadata.refresh.interval.ms=1000"
    ))
    .unwrap();
    Some(Transport::open_with(&registry, &url, &[]).unwrap())
}

fn tansu() -> Option<Transport> {
    kafka_support::bootstrap_servers().map(|servers| kafka_support::transport(&servers, ""))
}

fn rabbit() -> Option<Transport> {
    rabbit_support::broker_url().map(|url| rabbit_support::transport(&url, ""))
}

/// Run `case` on the transport `open` gives, if any (else a printed skip).
fn run<F: Future<Output = ()>>(
    what: &str,
    open: fn() -> Option<Transport>,
    case: impl FnOnce(Transport) -> F,
) {
    trace_support::exporter();
    let rt = integration_tests::support::runtime();
    rt.block_on(async {
        let Some(t) = open() else {
            eprintln!("{what}: skipped (no broker)");
            return;
        };
        case(t.clone()).await;
        t.close(std::time::Duration::from_secs(10)).await.unwrap();
    });
}

macro_rules! trace_cases {
    ($transport:ident: $($case:ident),* $(,)?) => {
        mod $transport {
            $(
                #[test]
                fn $case() {
                    super::run(
                        concat!(stringify!($transport), "::", stringify!($case)),
                        super::$transport,
                        |t| async move { super::trace_support::$case(&t).await },
                    );
                }
            )*
        }
    };
}

trace_cases!(memory:
    a_notify_trace_continues_in_the_handler,
    a_handler_that_notifies_sends_its_own_trace,
    a_missing_or_malformed_traceparent_starts_a_new_trace,
    an_rpc_trace_continues_on_the_server,
);
trace_cases!(kafka_mock:
    a_notify_trace_continues_in_the_handler,
    a_missing_or_malformed_traceparent_starts_a_new_trace,
);
trace_cases!(tansu:
    a_notify_trace_continues_in_the_handler,
    a_missing_or_malformed_traceparent_starts_a_new_trace,
);
trace_cases!(rabbit:
    a_notify_trace_continues_in_the_handler,
    a_missing_or_malformed_traceparent_starts_a_new_trace,
    an_rpc_trace_continues_on_the_server,
);
