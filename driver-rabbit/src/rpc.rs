//! RPC on RabbitMQ in oslo's topology: requests to the control exchange (routing
//! key `<topic>` or `<topic>.<server>`) or to the fanout exchange `<topic>_fanout`;
//! replies through the default exchange to the caller's `reply_<hex>` queue.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use messaging_core::rpc::{
    RpcDelivery, RpcDriver, RpcListenSpec, RpcReceiver, RpcReply, RpcReplyQueue, RpcRequest,
};
use messaging_core::{ErrorKind, Result};

use crate::connection::Connector;
use crate::publisher::{confirmed, Needs, Publication, Publisher, WhenFull};
use crate::pump::{Declaration, Inbox, Plan};

/// The RPC half of one driver.
#[derive(Debug)]
pub(crate) struct RabbitRpc {
    pub(crate) connector: Arc<Connector>,
    pub(crate) publisher: Arc<Publisher>,
    pub(crate) prefetch: u16,
}

fn fanout_exchange(topic: &str) -> String {
    format!("{topic}_fanout")
}

fn hex_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[async_trait]
impl RpcDriver for RabbitRpc {
    async fn send_request(&self, request: RpcRequest) -> Result<()> {
        let to = &request.to;
        let (exchange, key, needs) = match &to.delivery {
            // The queue is declared as the server declares it, so that a request
            // waits for a server that is starting (oslo drops it until one has).
            RpcDelivery::AnyServer => (
                to.exchange.clone(),
                to.topic.clone(),
                Needs::QueueFor {
                    exchange: to.exchange.as_str().into(),
                    key: to.topic.as_str().into(),
                },
            ),
            RpcDelivery::Server(server) => {
                let key = format!("{}.{server}", to.topic);
                (
                    to.exchange.clone(),
                    key.clone(),
                    Needs::QueueFor {
                        exchange: to.exchange.as_str().into(),
                        key: key.as_str().into(),
                    },
                )
            }
            RpcDelivery::Fanout => {
                let x = fanout_exchange(&to.topic);
                (x.clone(), String::new(), Needs::FanoutExchange(x))
            }
        };
        let publication = Publication {
            exchange: &exchange,
            routing_key: &key,
            body: &request.body,
            mandatory: false,
            expiration: request.ttl,
            needs,
        };
        let confirm = self
            .publisher
            .publish(std::slice::from_ref(&publication), WhenFull::Refuse)
            .await
            .pop()
            .unwrap_or_else(|| {
                Err(messaging_core::Error::new(
                    ErrorKind::Internal,
                    "no outcome",
                ))
            })?;
        confirmed(confirm, || format!("the request to {exchange}/{key}")).await
    }

    async fn send_replies(&self, replies: Vec<RpcReply>) -> Result<()> {
        let publications: Vec<Publication<'_>> = replies
            .iter()
            .map(|r| Publication {
                exchange: "",
                routing_key: &r.reply_queue,
                body: &r.body,
                mandatory: true,
                expiration: None,
                needs: Needs::Nothing,
            })
            .collect();
        let sent = self.publisher.publish(&publications, WhenFull::Wait).await;
        // The replies are with the connection now. Their confirms are awaited on a task
        // of their own, so that a server's loop goes on to its next requests instead of
        // waiting a broker round trip per batch; a reply lost after this point ends in
        // its caller's timeout, as every lost reply does (oslo waits for no confirm
        // either).
        let mut first_error = None;
        let mut confirms = Vec::with_capacity(sent.len());
        for (reply, outcome) in replies.iter().zip(sent) {
            match outcome {
                Ok(confirm) => confirms.push((reply.reply_queue.clone(), confirm)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if !confirms.is_empty() {
            tokio::spawn(async move {
                for (queue, confirm) in confirms {
                    match confirmed(confirm, || "a reply".to_owned()).await {
                        Ok(()) => {}
                        // Returned: the caller's reply queue is gone (it gave up or left).
                        Err(e) if *e.kind() == ErrorKind::DeliveryFailed && !e.is_retryable() => {
                            tracing::debug!(%queue, "reply to a queue that is gone; dropped");
                        }
                        Err(e) => {
                            tracing::warn!(%queue, error = %e, "an RPC reply was not confirmed; its caller times out");
                        }
                    }
                }
            });
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn open_reply_queue(&self) -> Result<RpcReplyQueue> {
        let name = format!("reply_{}", hex_id());
        let plan = Plan {
            purpose: "rpc-replies",
            declarations: vec![Declaration::Transient {
                queue: name.clone(),
                binding: None,
            }],
            queues: vec![name.clone()],
            delete_on_close: vec![name.clone()],
            prefetch: self.prefetch,
        };
        let inbox = Inbox::start(self.connector.clone(), plan).await?;
        Ok(RpcReplyQueue {
            name,
            receiver: Box::new(Taker { inbox }),
        })
    }

    async fn listen(&self, spec: RpcListenSpec) -> Result<Box<dyn RpcReceiver>> {
        let topic = spec.topic.clone();
        let server_key = format!("{topic}.{}", spec.server);
        let fanout = fanout_exchange(&topic);
        let fanout_queue = format!("{fanout}_{}", hex_id());
        let plan = Plan {
            purpose: "rpc-server",
            declarations: vec![
                Declaration::TopicExchange(spec.exchange.clone()),
                Declaration::Lasting {
                    queue: topic.clone(),
                    exchange: spec.exchange.clone(),
                    keys: vec![topic.clone()],
                },
                Declaration::Lasting {
                    queue: server_key.clone(),
                    exchange: spec.exchange.clone(),
                    keys: vec![server_key.clone()],
                },
                Declaration::FanoutExchange(fanout.clone()),
                Declaration::Transient {
                    queue: fanout_queue.clone(),
                    binding: Some((fanout, topic.clone())),
                },
            ],
            queues: vec![topic, server_key, fanout_queue.clone()],
            delete_on_close: vec![fanout_queue],
            prefetch: self.prefetch,
        };
        let inbox = Inbox::start(self.connector.clone(), plan).await?;
        Ok(Box::new(Taker { inbox }))
    }
}

/// An RPC receiver: taking a message acknowledges it (oslo acknowledges a request
/// before dispatching it, so it runs at most once).
#[derive(Debug)]
struct Taker {
    inbox: Inbox,
}

#[async_trait]
impl RpcReceiver for Taker {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Bytes>> {
        let taken = self.inbox.take(max, wait).await?;
        let tags: Vec<u64> = taken.iter().map(|d| d.tag).collect();
        let bodies = taken.into_iter().map(|d| d.body).collect();
        // The consumer task sends the acks, so this future has no wait left once
        // the records are taken (cancel-safe).
        self.inbox.ack(tags);
        Ok(bodies)
    }

    async fn close(&self, timeout: Duration) -> Result<()> {
        self.inbox.close(timeout).await
    }
}
