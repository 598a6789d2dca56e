//! Lag and health on a real Kafka broker (a Tansu of the test's own, through
//! `MESSAGING_TANSU_SCRIPT`): notifications sent while no member of a pool takes
//! them show as consumer lag (per partition, and in the listener's status), and the
//! transport's health goes disconnected when the broker stops and connected again
//! once it is back. Skipped with a note without the script (a failure under
//! `MESSAGING_REQUIRE_BROKER=1`).

mod kafka_support;

use std::time::Duration;

use integration_tests::metrics::{self as seen, gauges};
use integration_tests::support::{runtime, stuck_member, Collector};
use integration_tests::tansu::OwnTansu;
use kafka_support::{broker_required, eventually, unique};
use messaging_core::observability::metrics as m;
use messaging_core::observability::ConnectionState;
use messaging_core::{
    Context, NotificationListener, Notifier, Priority, Retry, StartPosition, Target,
};
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(90);
const BACKLOG: u64 = 8;

async fn send(notifier: &Notifier, ids: impl Iterator<Item = u64>) {
    for i in ids {
        let receipt = notifier
            .info(&Context::new(), "lag.test", &json!({ "i": i }))
            .await;
        receipt.unwrap().delivered().await.unwrap();
    }
}

#[test]
fn a_backlog_shows_as_lag_and_health_follows_the_broker_down_and_up() {
    let Some(script) = OwnTansu::script() else {
        assert!(
            !broker_required(),
            "MESSAGING_REQUIRE_BROKER=1 but MESSAGING_TANSU_SCRIPT is not set"
        );
        eprintln!("skipped: MESSAGING_TANSU_SCRIPT (path to scripts/tansu.sh) is not set");
        return;
    };
    seen::install();
    let broker = OwnTansu::start(script, "kmetrics").expect("start a Tansu broker");
    runtime().block_on(async {
        let t = kafka_support::transport(&broker.servers, "statistics_interval=0.5");
        let topic = unique("lag");
        let notifier = Notifier::builder()
            .publisher_id("metrics")
            .topic(&topic)
            .retry(Retry::Limited(3))
            .transport(&t)
            .build()
            .unwrap();
        // The pool handles one notification (its position is committed), then no
        // member runs while BACKLOG more are sent.
        let pool = unique("lagging");
        let got = Collector::new();
        let first = NotificationListener::builder(&t)
            .target(Target::new(&topic))
            .pool(&pool)
            .start_position(StartPosition::Earliest)
            .endpoint(got.endpoint())
            .build()
            .unwrap();
        first.start().await.unwrap();
        send(&notifier, 0..1).await;
        assert!(eventually(PATIENCE, || got.len() == 1).await);
        first.stop_and_wait().await.unwrap();
        send(&notifier, 1..=BACKLOG).await;
        // A member that never finishes a handler: the whole backlog stays its lag.
        let listener = stuck_member(&t, &topic, &pool);
        listener.start().await.unwrap();
        let full = t.notification_topic(&topic, Priority::Info);
        let labels = [
            (m::ATTR_DESTINATION, full.as_str()),
            (m::ATTR_CONSUMER_GROUP, pool.as_str()),
        ];
        let lag = || {
            gauges(m::CONSUMER_LAG, &labels)
                .iter()
                .map(|(_, v)| *v)
                .sum::<f64>()
        };
        assert!(
            eventually(PATIENCE, || lag() >= BACKLOG as f64).await,
            "lag {} < {BACKLOG}:\n{}",
            lag(),
            seen::dump()
        );
        assert!(listener.status().lag.unwrap_or(0) >= BACKLOG);
        assert!(eventually(PATIENCE, || t.health().state == ConnectionState::Connected).await);

        broker.stop().expect("stop the broker");
        let down = eventually(PATIENCE, || {
            t.health().state == ConnectionState::Disconnected
        })
        .await;
        assert!(down, "health with the broker stopped: {:?}", t.health());
        let health = t.health();
        assert!(!health.is_connected() && health.last_error.is_some());

        broker.kill_and_restart().expect("start the broker again");
        let up = eventually(PATIENCE, || t.health().state == ConnectionState::Connected).await;
        assert!(up, "health with the broker back: {:?}", t.health());
        listener.stop_and_wait().await.unwrap();
        let _ = t.close(Duration::from_secs(5)).await;
    });
}
