//! RPC on the in-process broker: it only moves bytes; the core's `RpcClient` and
//! `RpcServer` own timeouts, dispatch and shutdown.
//!
//! Per (exchange, topic): one shared inbox that every server on the topic takes
//! from (topic-level load balancing: whichever server has room takes the next
//! request), one inbox per server name for directed requests, and one inbox per
//! listening server instance for fanout copies. Per client: a reply queue.
//!
//! - A request taken by a server is never delivered again (at most once).
//! - Requests for a topic or server nobody listens to yet wait in its inbox (the
//!   shared and per-name inboxes outlive their servers, like durable queues), until
//!   their time to live (a call's timeout) has passed; then they are dropped.
//! - A fanout reaches the servers listening at that moment; a server's fanout
//!   copies not yet taken go away when it stops.
//! - A server that stops takes nothing more; what it did not take stays for the
//!   others. A reply to a reply queue that is gone is dropped.
//! - Request inboxes hold at most `queue_capacity` records (then senders wait);
//!   reply queues are unbounded (a server must never block on a reply).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use messaging_core::rpc::{
    RpcDelivery, RpcDriver, RpcListenSpec, RpcReceiver, RpcReply, RpcReplyQueue, RpcRequest,
};
use messaging_core::{Error, ErrorKind, Result};
use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Debug)]
struct Item {
    body: Bytes,
    expires: Option<Instant>,
}

/// A queue of encoded messages, taken by one or more receivers.
#[derive(Debug)]
struct Inbox {
    items: Mutex<VecDeque<Item>>,
    readable: Notify,
    /// `None`: unbounded (reply queues).
    capacity: Option<usize>,
}

impl Inbox {
    fn new(capacity: Option<usize>) -> Self {
        Inbox {
            items: Mutex::new(VecDeque::new()),
            readable: Notify::new(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Item>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn has_room(&self, items: &VecDeque<Item>) -> bool {
        self.capacity.is_none_or(|c| items.len() < c)
    }

    /// Take up to `max` live messages; expired ones are dropped on the way.
    fn take(&self, max: usize, out: &mut Vec<Bytes>) {
        let now = Instant::now();
        let mut items = self.lock();
        let mut expired = 0usize;
        while out.len() < max {
            let Some(item) = items.pop_front() else { break };
            if item.expires.is_some_and(|at| at <= now) {
                expired += 1;
                continue;
            }
            out.push(item.body);
        }
        if expired > 0 {
            tracing::debug!(
                expired,
                "dropped RPC requests nobody took within their time to live"
            );
        }
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[derive(Debug)]
struct RpcTopic {
    shared: Arc<Inbox>,
    servers: Mutex<HashMap<String, Arc<Inbox>>>,
    fanout: Mutex<Vec<(u64, Arc<Inbox>)>>,
}

/// The RPC side of one broker instance (shared by every driver opened on it).
#[derive(Debug)]
pub(crate) struct RpcBroker {
    capacity: usize,
    topics: Mutex<HashMap<(String, String), Arc<RpcTopic>>>,
    replies: Mutex<HashMap<String, Arc<Inbox>>>,
    next_id: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RpcBroker {
    /// The RPC side of the broker instance called `name`.
    pub(crate) fn instance(name: &str, capacity: usize) -> Arc<RpcBroker> {
        static INSTANCES: OnceLock<Mutex<HashMap<String, Arc<RpcBroker>>>> = OnceLock::new();
        lock(INSTANCES.get_or_init(Default::default))
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(RpcBroker {
                    capacity,
                    topics: Mutex::default(),
                    replies: Mutex::default(),
                    next_id: AtomicU64::new(1),
                })
            })
            .clone()
    }

    fn topic(&self, exchange: &str, topic: &str) -> Arc<RpcTopic> {
        lock(&self.topics)
            .entry((exchange.to_owned(), topic.to_owned()))
            .or_insert_with(|| {
                Arc::new(RpcTopic {
                    shared: Arc::new(Inbox::new(Some(self.capacity))),
                    servers: Mutex::default(),
                    fanout: Mutex::default(),
                })
            })
            .clone()
    }

    fn server_inbox(&self, topic: &RpcTopic, server: &str) -> Arc<Inbox> {
        lock(&topic.servers)
            .entry(server.to_owned())
            .or_insert_with(|| Arc::new(Inbox::new(Some(self.capacity))))
            .clone()
    }

    fn full(&self, what: &str) -> Error {
        Error::new(
            ErrorKind::ResourceExhausted,
            format!(
                "memory RPC inbox for {what} is full ({} records)",
                self.capacity
            ),
        )
    }

    fn publish(&self, request: RpcRequest) -> Result<()> {
        let to = &request.to;
        let topic = self.topic(&to.exchange, &to.topic);
        let expires = request.ttl.map(|ttl| Instant::now() + ttl);
        let inbox = match &to.delivery {
            RpcDelivery::AnyServer => topic.shared.clone(),
            RpcDelivery::Server(server) => self.server_inbox(&topic, server),
            RpcDelivery::Fanout => {
                let listeners = lock(&topic.fanout);
                // All or nothing: every listening server gets a copy, or none does.
                let mut guards: Vec<_> = listeners.iter().map(|(_, i)| (i, i.lock())).collect();
                if guards.iter().any(|(i, items)| !i.has_room(items)) {
                    return Err(self.full(&format!("fanout on {}", to.topic)));
                }
                for (_, items) in guards.iter_mut() {
                    items.push_back(Item {
                        body: request.body.clone(),
                        expires,
                    });
                }
                drop(guards);
                for (_, inbox) in listeners.iter() {
                    inbox.readable.notify_waiters();
                }
                return Ok(());
            }
        };
        {
            let mut items = inbox.lock();
            if !inbox.has_room(&items) {
                return Err(self.full(&to.topic));
            }
            items.push_back(Item {
                body: request.body,
                expires,
            });
        }
        inbox.readable.notify_waiters();
        Ok(())
    }
}

/// What a receiver undoes when it closes.
#[derive(Debug)]
enum Leave {
    /// A server: stop getting fanout copies (its unread ones go away).
    Fanout(Arc<RpcTopic>, u64),
    /// A client: the reply queue disappears.
    ReplyQueue(Arc<RpcBroker>, String),
}

#[derive(Debug)]
struct MemoryRpcReceiver {
    inboxes: Vec<Arc<Inbox>>,
    next: AtomicUsize,
    closed: AtomicBool,
    driver_closed: Arc<AtomicBool>,
    leave: Leave,
}

impl MemoryRpcReceiver {
    fn take(&self, max: usize) -> Vec<Bytes> {
        let mut out = Vec::new();
        let n = self.inboxes.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if out.len() >= max {
                break;
            }
            self.inboxes[(start + i) % n].take(max, &mut out);
        }
        out
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) || self.driver_closed.load(Ordering::Acquire) {
            Err(Error::closed("memory RPC receiver"))
        } else {
            Ok(())
        }
    }

    fn leave(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        match &self.leave {
            Leave::Fanout(topic, id) => {
                let mut listeners = lock(&topic.fanout);
                if let Some(pos) = listeners.iter().position(|(i, _)| i == id) {
                    let (_, inbox) = listeners.swap_remove(pos);
                    let dropped = inbox.len();
                    if dropped > 0 {
                        tracing::info!(
                            dropped,
                            "a stopping RPC server leaves fanout casts it did not take"
                        );
                    }
                }
            }
            Leave::ReplyQueue(broker, name) => {
                lock(&broker.replies).remove(name);
            }
        }
        for inbox in &self.inboxes {
            inbox.readable.notify_waiters();
        }
    }
}

#[async_trait]
impl RpcReceiver for MemoryRpcReceiver {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Bytes>> {
        let signals: Vec<&Notify> = self.inboxes.iter().map(|i| &i.readable).collect();
        crate::queue::take_or_wait(
            &signals,
            Instant::now() + wait,
            || self.check_open(),
            || self.take(max),
        )
        .await
    }

    async fn close(&self, _timeout: Duration) -> Result<()> {
        self.leave();
        Ok(())
    }
}

impl Drop for MemoryRpcReceiver {
    fn drop(&mut self) {
        self.leave();
    }
}

/// The memory driver's [`RpcDriver`].
#[derive(Debug)]
pub(crate) struct MemoryRpc {
    broker: Arc<RpcBroker>,
    closed: Arc<AtomicBool>,
}

impl MemoryRpc {
    pub(crate) fn new(name: &str, capacity: usize, closed: Arc<AtomicBool>) -> Self {
        MemoryRpc {
            broker: RpcBroker::instance(name, capacity),
            closed,
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::closed("memory transport"))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl RpcDriver for MemoryRpc {
    async fn send_request(&self, request: RpcRequest) -> Result<()> {
        self.check_open()?;
        self.broker.publish(request)
    }

    async fn send_replies(&self, replies: Vec<RpcReply>) -> Result<()> {
        self.check_open()?;
        let queues = lock(&self.broker.replies);
        let mut woken: Vec<Arc<Inbox>> = Vec::new();
        for reply in replies {
            match queues.get(&reply.reply_queue) {
                Some(inbox) => {
                    inbox.lock().push_back(Item {
                        body: reply.body,
                        expires: None,
                    });
                    if !woken.iter().any(|w| Arc::ptr_eq(w, inbox)) {
                        woken.push(inbox.clone());
                    }
                }
                None => tracing::debug!(
                    reply_queue = %reply.reply_queue,
                    "dropping an RPC reply: its reply queue is gone"
                ),
            }
        }
        drop(queues);
        for inbox in woken {
            inbox.readable.notify_waiters();
        }
        Ok(())
    }

    async fn open_reply_queue(&self) -> Result<RpcReplyQueue> {
        self.check_open()?;
        let name = format!(
            "reply_{}",
            self.broker.next_id.fetch_add(1, Ordering::Relaxed)
        );
        let inbox = Arc::new(Inbox::new(None));
        lock(&self.broker.replies).insert(name.clone(), inbox.clone());
        Ok(RpcReplyQueue {
            name: name.clone(),
            receiver: Box::new(MemoryRpcReceiver {
                inboxes: vec![inbox],
                next: AtomicUsize::new(0),
                closed: AtomicBool::new(false),
                driver_closed: self.closed.clone(),
                leave: Leave::ReplyQueue(self.broker.clone(), name),
            }),
        })
    }

    async fn listen(&self, spec: RpcListenSpec) -> Result<Box<dyn RpcReceiver>> {
        self.check_open()?;
        let topic = self.broker.topic(&spec.exchange, &spec.topic);
        let directed = self.broker.server_inbox(&topic, &spec.server);
        let fanout = Arc::new(Inbox::new(Some(self.broker.capacity)));
        let id = self.broker.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&topic.fanout).push((id, fanout.clone()));
        Ok(Box::new(MemoryRpcReceiver {
            inboxes: vec![directed, topic.shared.clone(), fanout],
            next: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            driver_closed: self.closed.clone(),
            leave: Leave::Fanout(topic, id),
        }))
    }
}
