//! The raw lapin baseline of `messaging bench --raw` on `rabbit://` and `amqp://`
//! URLs: the same number of records of the same size, published and consumed with
//! lapin directly and the RabbitMQ driver's settings ([`driver_rabbit::client_settings`]),
//! timed the same way as the framework side.
//!
//! Like the driver: a consumer connection (prefetch as the driver's, the topic
//! exchange and a queue named like the routing key declared as the driver declares
//! them, not timed) acknowledging every delivery on a task of its own (the
//! deliveries waiting at once together), a publisher connection opened with
//! confirms on, the same declarations once, and one warm-up record published and
//! consumed (not timed either: the framework side also sends and handles one
//! notification first, which opens the driver's publisher connection); then, timed,
//! every record published to the topic exchange, mandatory, with the driver's
//! properties (persistent), every confirm awaited.
//! Notify: every `basic_publish` returned; delivered: every confirm an ack;
//! end to end: every record consumed.

use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::FieldTable;
use lapin::{
    Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind, PublisherConfirm,
};
use messaging_core::{Error, ErrorKind, Result, TransportUrl};

use super::compare::{consumed_within, warm_up_signal, RawReport, WARM_UP};

fn amqp_error(what: &str, e: lapin::Error) -> Error {
    Error::new(ErrorKind::Transport, format!("raw baseline: {what}: {e}")).with_source(e)
}

async fn connect(s: &driver_rabbit::ClientSettings) -> Result<Connection> {
    let runtime =
        lapin::runtime::default_runtime().map_err(|e| amqp_error("no async runtime", e))?;
    let tls = OwnedTLSConfig {
        identity: None,
        cert_chain: s.ca_pem.clone(),
    };
    Connection::connect_uri_with_config(
        s.uri.clone(),
        ConnectionProperties::default(),
        tls,
        runtime,
    )
    .await
    .map_err(|e| amqp_error("connect", e))
}

/// The driver's declarations for a notification queue: the topic exchange, the queue
/// named like the routing key, bound with it.
async fn declare(ch: &Channel, s: &driver_rabbit::ClientSettings, queue: &str) -> Result<()> {
    ch.exchange_declare(
        s.exchange.as_str().into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: s.exchange_durable,
            auto_delete: s.exchange_auto_delete,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .map_err(|e| amqp_error("declare the exchange", e))?;
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: s.queue_durable,
            auto_delete: s.queue_auto_delete,
            ..QueueDeclareOptions::default()
        },
        s.queue_arguments.clone(),
    )
    .await
    .map_err(|e| amqp_error("declare the queue", e))?;
    ch.queue_bind(
        queue.into(),
        s.exchange.as_str().into(),
        queue.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(|e| amqp_error("bind the queue", e))
}

/// Publish `body` as the driver publishes a notification to `routing_key`:
/// mandatory, with the driver's properties.
async fn publish(
    ch: &Channel,
    s: &driver_rabbit::ClientSettings,
    routing_key: &str,
    body: &[u8],
) -> lapin::Result<PublisherConfirm> {
    ch.basic_publish(
        s.exchange.as_str().into(),
        routing_key.into(),
        BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        },
        body,
        s.properties.clone(),
    )
    .await
}

/// An error unless the broker acknowledged the record into a queue.
fn confirmed(confirmation: Confirmation) -> Result<()> {
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(_)) => Err(Error::new(
            ErrorKind::DeliveryFailed,
            "raw baseline: a record was returned (no queue)",
        )),
        Confirmation::Nack(_) => Err(Error::new(
            ErrorKind::DeliveryFailed,
            "raw baseline: a record was refused (nack)",
        )),
        Confirmation::NotRequested => Err(Error::new(
            ErrorKind::Internal,
            "raw baseline: publisher confirms are off",
        )),
    }
}

/// Publish `count` records of `record_bytes` bytes to a fresh queue and consume them.
pub(crate) async fn measure(
    url: &str,
    count: u64,
    record_bytes: usize,
    timeout: Duration,
) -> Result<RawReport> {
    let s = driver_rabbit::client_settings(&TransportUrl::parse(url)?, &[])?;
    // A notification's routing key and queue: `<topic>.<priority>`.
    let queue = format!(
        "bench-raw-{}.info",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );

    let consumer_connection = connect(&s).await?;
    let cch = consumer_connection
        .create_channel()
        .await
        .map_err(|e| amqp_error("consumer channel", e))?;
    cch.basic_qos(s.prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| amqp_error("prefetch", e))?;
    declare(&cch, &s, &queue).await?;
    let mut consumer = cch
        .basic_consume(
            queue.as_str().into(),
            "raw".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| amqp_error("consume", e))?;
    // Acknowledgements (one per delivery, as the driver's) on a task of their own,
    // apart from the delivery stream, each time for all the deliveries waiting, their
    // frames queued together.
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<lapin::Acker>();
    let acks = tokio::spawn(async move {
        let mut batch = Vec::new();
        while ack_rx.recv_many(&mut batch, 1024).await > 0 {
            let acks = batch.iter().map(|a| a.ack(BasicAckOptions::default()));
            for r in futures::future::join_all(acks).await {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "raw baseline ack");
                }
            }
            batch.clear();
        }
    });
    let (mut warmed_up, warm_up_seen) = warm_up_signal();
    let consume = tokio::spawn(async move {
        let mut seen = 0u64;
        while seen < count {
            match consumer.next().await {
                Some(Ok(d)) => {
                    if d.data == WARM_UP {
                        warmed_up.seen();
                    } else {
                        seen += 1;
                    }
                    let _ = ack_tx.send(d.acker);
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "raw baseline consumer");
                    break;
                }
                None => break,
            }
        }
        seen
    });

    // Not timed, as on the framework side: the publisher's connection (the driver
    // connects on its first send) and one record published and consumed.
    let publisher_connection = connect(&s).await?;
    let pch = publisher_connection
        .create_channel()
        .await
        .map_err(|e| amqp_error("publisher channel", e))?;
    pch.confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| amqp_error("confirm_select", e))?;
    declare(&pch, &s, &queue).await?;
    let warm_up = publish(&pch, &s, &queue, WARM_UP)
        .await
        .map_err(|e| amqp_error("warm-up", e))?;
    confirmed(warm_up.await.map_err(|e| amqp_error("warm-up", e))?)?;
    warm_up_seen.wait(timeout).await?;

    let body = vec![b'x'; record_bytes.max(1)];
    let started = Instant::now();
    let mut confirms = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for _ in 0..count {
        let confirm = publish(&pch, &s, &queue, &body)
            .await
            .map_err(|e| amqp_error("publish", e))?;
        confirms.push(confirm);
    }
    let produce_secs = started.elapsed().as_secs_f64();
    for c in confirms {
        confirmed(c.await.map_err(|e| amqp_error("confirm", e))?)?;
    }
    let delivered_secs = started.elapsed().as_secs_f64();
    let consumed = consumed_within(consume, timeout).await?;
    let e2e_secs = started.elapsed().as_secs_f64();
    // The consumer task dropped its sender: the ack task ends once all are sent.
    let _ = tokio::time::timeout(Duration::from_secs(30), acks).await;
    let _ = pch
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = pch.close(200, "done".into()).await;
    let _ = cch.close(200, "done".into()).await;
    let _ = publisher_connection.close(200, "done".into()).await;
    let _ = consumer_connection.close(200, "done".into()).await;
    RawReport::of(
        record_bytes,
        count,
        consumed,
        [produce_secs, delivered_secs, e2e_secs],
    )
}
