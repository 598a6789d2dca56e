//! TLS to a real RabbitMQ: notifications and an RPC call over `rabbit+ssl://` with the
//! broker's CA and a client certificate, and the refusals that make TLS worth having:
//! a certificate signed by a CA the client does not trust, a certificate for another
//! host name, and (by the broker) a client without a certificate.
//!
//! The node's TLS listener comes from `scripts/rabbitmq.sh` (every node has one, with a
//! certificate for `localhost` only); its URL from `$MESSAGING_RABBIT_SCRIPT tls-url
//! --name $RABBITMQ_INSTANCE`, as the README's test command sets them. Otherwise
//! skipped with a note (a failure under `MESSAGING_REQUIRE_BROKER=1`).

mod rabbit_support;

use std::time::Duration;

use integration_tests::support::{unique, Collector};
use messaging_core::{Context, ErrorKind, NotificationListener, Notifier, Target, Transport};
use serde_json::json;

/// The node's TLS URL (`rabbit+ssl://guest:guest@localhost:PORT/?ssl_ca_file=...`).
fn tls_url() -> Option<String> {
    rabbit_support::broker_url()?;
    let (Ok(script), Ok(name)) = (
        std::env::var("MESSAGING_RABBIT_SCRIPT"),
        std::env::var("RABBITMQ_INSTANCE"),
    ) else {
        if rabbit_support::broker_required() {
            panic!("MESSAGING_REQUIRE_BROKER=1 but MESSAGING_RABBIT_SCRIPT or RABBITMQ_INSTANCE is not set");
        }
        eprintln!(
            "RabbitMQ TLS tests skipped: they need MESSAGING_RABBIT_SCRIPT and RABBITMQ_INSTANCE"
        );
        return None;
    };
    let out = std::process::Command::new("bash")
        .args([script.as_str(), "tls-url", "--name", name.as_str()])
        .output()
        .expect("the broker script runs");
    assert!(
        out.status.success(),
        "tls-url failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `url` without the query option `key` (`ssl_ca_file`: the system's CAs apply).
fn without(url: &str, key: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.starts_with(&format!("{key}=")))
        .collect();
    format!("{base}?{}", kept.join("&"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_and_calls_go_over_tls_with_the_brokers_ca() {
    let Some(url) = tls_url() else { return };
    let t = rabbit_support::transport(&url, "");
    let topic = unique("tls");
    let c = Collector::new();
    let l = NotificationListener::builder(&t)
        .target(Target::new(&topic))
        .endpoint(c.endpoint())
        .build()
        .unwrap();
    l.start().await.expect("a listener connects over TLS");
    let n = Notifier::builder()
        .publisher_id("tls")
        .topic(&topic)
        .transport(&t)
        .build()
        .unwrap();
    for i in 0..5 {
        n.info(&Context::new(), "tls.event", &json!({"i": i}))
            .await
            .unwrap()
            .delivered()
            .await
            .expect("confirmed over TLS");
    }
    assert_eq!(c.wait_for(5, Duration::from_secs(20)).await, 5);

    rabbit_support::a_call_is_answered(&t, &format!("{topic}-rpc")).await;
    l.stop_and_wait().await.unwrap();
    t.close(Duration::from_secs(10)).await.unwrap();
}

async fn send_one(t: &Transport) -> messaging_core::Error {
    let n = Notifier::builder()
        .publisher_id("tls")
        .topic(unique("tls-refused"))
        .retry(messaging_core::Retry::Limited(0))
        .transport(t)
        .build()
        .unwrap();
    let sent = n.info(&Context::new(), "tls.event", &json!({})).await;
    let err = match sent {
        Err(e) => e,
        Ok(receipt) => receipt
            .delivered()
            .await
            .expect_err("a send over a refused TLS connection fails"),
    };
    assert_eq!(err.kind(), &ErrorKind::Transport, "{err}");
    eprintln!("refused as expected: {err}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_untrusted_ca_is_refused() {
    let Some(url) = tls_url() else { return };
    // Without ssl_ca_file the system's CAs apply, and they never signed the test CA.
    let t = rabbit_support::transport(&without(&url, "ssl_ca_file"), "");
    let err = send_one(&t).await;
    let text = format!("{err:?}").to_lowercase();
    assert!(
        text.contains("certificate") || text.contains("ssl") || text.contains("tls"),
        "the error says why: {err:?}"
    );
    t.close(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_host_name_is_refused() {
    let Some(url) = tls_url() else { return };
    // The certificate names `localhost` only; 127.0.0.1 is the same broker by another name.
    let t = rabbit_support::transport(&url.replacen("@localhost:", "@127.0.0.1:", 1), "");
    let err = send_one(&t).await;
    let text = format!("{err:?}").to_lowercase();
    assert!(
        text.contains("certificate") || text.contains("hostname") || text.contains("ssl"),
        "the error says why: {err:?}"
    );
    t.close(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_refuses_a_client_without_a_certificate() {
    let Some(url) = tls_url() else { return };
    let bare = without(&without(&url, "ssl_cert_file"), "ssl_key_file");
    let t = rabbit_support::transport(&bare, "");
    let err = send_one(&t).await;
    let text = format!("{err:?}").to_lowercase();
    assert!(
        text.contains("certificate")
            || text.contains("ssl")
            || text.contains("handshake")
            || text.contains("alert"),
        "the error says why: {err:?}"
    );
    t.close(Duration::from_secs(5)).await.unwrap();
}
