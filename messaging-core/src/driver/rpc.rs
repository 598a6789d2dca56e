//! The RPC half of the driver contract: it only moves bytes.
//!
//! The core's RPC client and server own encoding, timeouts, dispatch,
//! serialization, concurrency and shutdown. A driver supplies four things:
//! send a request to an [`RpcAddress`], send replies to reply queues, open a reply
//! queue for a client, and listen as a server. Received records are the encoded
//! messages, in batches.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;

/// An RPC operation, as asked of [`crate::Driver::rpc`] and named (by
/// [`RpcOperation::as_str`]) in [`crate::ErrorKind::Unsupported`] errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RpcOperation {
    /// A call: a request with a reply (`rpc.call`).
    Call,
    /// A cast to one server, without a reply (`rpc.cast`).
    Cast,
    /// A cast to every server on a topic (`rpc.fanout`).
    Fanout,
    /// Serving requests (`rpc.server`).
    Server,
}

impl RpcOperation {
    /// Every operation.
    pub const ALL: [RpcOperation; 4] = [
        RpcOperation::Call,
        RpcOperation::Cast,
        RpcOperation::Fanout,
        RpcOperation::Server,
    ];

    /// Its name in errors: `rpc.call`, `rpc.cast`, `rpc.fanout`, `rpc.server`.
    pub fn as_str(self) -> &'static str {
        match self {
            RpcOperation::Call => "rpc.call",
            RpcOperation::Cast => "rpc.cast",
            RpcOperation::Fanout => "rpc.fanout",
            RpcOperation::Server => "rpc.server",
        }
    }
}

impl std::fmt::Display for RpcOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which servers on a topic a request is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RpcDelivery {
    /// Exactly one of the servers listening on the topic (the transport load-balances).
    AnyServer,
    /// The server with this name.
    Server(String),
    /// A copy for every server listening on the topic now.
    Fanout,
}

/// Where a request goes: an exchange, a topic and which servers on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RpcAddress {
    /// The exchange (already defaulted by the core).
    pub exchange: String,
    /// The topic (with the virtual host already applied by the core in the
    /// [`crate::driver::Dialect::Kafka`] dialect; an [`crate::driver::Dialect::Amqp`]
    /// driver gets the bare topic and uses the URL's virtual host itself).
    pub topic: String,
    /// Which servers.
    pub delivery: RpcDelivery,
}

/// One encoded request on its way to servers.
#[derive(Debug, Clone)]
pub struct RpcRequest {
    /// Where it goes.
    pub to: RpcAddress,
    /// The encoded message (oslo v2 envelope).
    pub body: Bytes,
    /// Drop the request if no server took it within this time (a call's timeout:
    /// nobody waits for its reply any more). `None`: keep it.
    pub ttl: Option<Duration>,
}

/// One encoded reply on its way to a client's reply queue.
#[derive(Debug, Clone)]
pub struct RpcReply {
    /// The reply queue's name, from the request's `_reply_q`.
    pub reply_queue: String,
    /// The encoded reply (oslo v2 envelope).
    pub body: Bytes,
}

/// What an RPC server listens to: requests for its topic (shared with the other
/// servers on it), requests directed at its name, and fanout casts on its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcListenSpec {
    /// The exchange (already defaulted by the core).
    pub exchange: String,
    /// The topic (with the virtual host already applied by the core in the
    /// [`crate::driver::Dialect::Kafka`] dialect; an [`crate::driver::Dialect::Amqp`]
    /// driver gets the bare topic and uses the URL's virtual host itself).
    pub topic: String,
    /// The server's name.
    pub server: String,
}

/// A source of encoded messages: a server's requests or a client's replies.
///
/// Taking a record hands it over for good (oslo acknowledges RPC requests before
/// dispatching them): a driver never delivers a taken record again.
#[async_trait]
pub trait RpcReceiver: Send + Sync + Debug {
    /// Wait up to `wait` for records and return at most `max` (empty on timeout).
    /// Must not lose records when the returned future is dropped before it completes.
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Bytes>>;

    /// Stop receiving. A server's records not yet taken stay for the other servers
    /// (its fanout copies go away with it); a reply queue disappears. Idempotent.
    async fn close(&self, timeout: Duration) -> Result<()>;
}

/// A client's reply queue: its name (sent as `_reply_q`) and its receiver.
#[derive(Debug)]
pub struct RpcReplyQueue {
    /// The name replies are addressed to.
    pub name: String,
    /// Where the replies arrive.
    pub receiver: Box<dyn RpcReceiver>,
}

/// The RPC half of a driver, returned by [`crate::Driver::rpc`].
///
/// Drivers without RPC keep [`crate::Driver::rpc`]'s default, which refuses every
/// operation with [`crate::ErrorKind::Unsupported`].
#[async_trait]
pub trait RpcDriver: Send + Sync + Debug {
    /// Hand a request to the transport. Returns once it was accepted. A full local
    /// queue is reported at once as [`crate::ErrorKind::ResourceExhausted`] (the core
    /// waits and tries again). A request for a topic or server nobody listens to yet
    /// waits for one (within `ttl`); a fanout with no server listening goes nowhere.
    async fn send_request(&self, request: RpcRequest) -> Result<()>;

    /// Hand replies to the transport. A reply to a queue that no longer exists (its
    /// client gave up or left) is dropped without an error.
    async fn send_replies(&self, replies: Vec<RpcReply>) -> Result<()>;

    /// Open a new reply queue, with a name unique on this transport.
    async fn open_reply_queue(&self) -> Result<RpcReplyQueue>;

    /// Start receiving requests as a server.
    async fn listen(&self, spec: RpcListenSpec) -> Result<Box<dyn RpcReceiver>>;
}
