//! RPC: request/reply and one-way messages between services (oslo's RPC API).
//!
//! - [`RpcClient`] sends to a [`Target`]: [`RpcClient::call`] waits for a typed
//!   reply (or a timeout), [`RpcClient::cast`] sends without one,
//!   [`RpcClient::fanout`] casts to every server on the topic; a target with a
//!   `server` directs a call or cast at that one server. [`RpcClient::prepare`] makes
//!   a copy with another timeout, server, fanout, namespace or version.
//! - [`RpcServer`] listens on a topic as a named server and dispatches requests to
//!   [`RpcEndpoint`]s by namespace, version and method name, with bounded
//!   concurrency and a graceful stop.
//! - [`RpcDriver`] is the small trait a transport implements; it only moves bytes.
//!   It is part of the driver contract ([`crate::driver::rpc`]) and re-exported here.
//!
//! ```
//! # async fn demo(transport: messaging_core::Transport) -> messaging_core::Result<()> {
//! use messaging_core::rpc::{RemoteError, RpcClient, RpcEndpoint, RpcServer};
//! use messaging_core::{Context, Target};
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct AddArgs { a: i64, b: i64 }
//!
//! let calc = RpcEndpoint::new().namespace("calc").version("1.2")
//!     .method("add", |_ctx, args: AddArgs| async move { Ok::<_, RemoteError>(args.a + args.b) });
//! let server = RpcServer::builder(&transport, Target::new("calc").with_server("host1"))
//!     .endpoint(calc)
//!     .build()?;
//! server.start().await?;
//!
//! let client = RpcClient::new(&transport, Target::new("calc").with_namespace("calc").with_version("1.1"));
//! let sum: i64 = client.call(&Context::new(), "add", &AddArgs { a: 1, b: 2 }).await?;
//! assert_eq!(sum, 3);
//! client.prepare().with_server("host1").cast(&Context::new(), "add", &AddArgs { a: 0, b: 0 }).await?;
//! server.stop_and_wait().await?;
//! # Ok(()) }
//! ```
//!
//! The context travels to the server as it is (it is not sanitized: servers
//! usually need the caller's credentials); a [`RpcSerializer`] can rewrite it.

mod client;
pub mod demo;
mod dispatcher;
mod endpoint;
pub(crate) mod server;
pub(crate) mod wire;

use std::fmt;
use std::time::Duration;

use serde_json::Value;

pub use crate::driver::rpc::{
    RpcAddress, RpcDelivery, RpcDriver, RpcListenSpec, RpcOperation, RpcReceiver, RpcReply,
    RpcReplyQueue, RpcRequest,
};
pub use client::RpcClient;
pub use endpoint::{RemoteError, RpcEndpoint};
pub use server::{RpcServer, RpcServerBuilder, RpcServerCounters, RECENT_UNIQUE_IDS};

pub use crate::target::Target;

use crate::error::Result;
use crate::notification::Context;
use crate::transport::Transport;

/// The exchange used when a target names none (oslo's `control_exchange`).
pub const DEFAULT_EXCHANGE: &str = "openstack";

/// How long a call waits for its reply unless told otherwise (oslo's
/// `rpc_response_timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Default bound on requests an RPC server handles at once.
pub const DEFAULT_MAX_CONCURRENCY: usize = 64;

/// Turns application values into JSON and back around the wire (oslo's
/// `Serializer`). Every method defaults to passing the value through.
///
/// A client serializes each keyword argument and the context before sending and
/// deserializes the result; a server deserializes the context and each argument
/// before dispatch and serializes the result.
pub trait RpcSerializer: Send + Sync + fmt::Debug {
    /// An argument or result on its way to the wire.
    fn serialize_entity(&self, _context: &Context, entity: Value) -> Result<Value> {
        Ok(entity)
    }
    /// An argument or result coming from the wire.
    fn deserialize_entity(&self, _context: &Context, entity: Value) -> Result<Value> {
        Ok(entity)
    }
    /// The context on its way to the wire.
    fn serialize_context(&self, context: Context) -> Result<Context> {
        Ok(context)
    }
    /// The context coming from the wire.
    fn deserialize_context(&self, context: Context) -> Result<Context> {
        Ok(context)
    }
}

/// The exchange and topic a target maps to on `transport`: the default exchange
/// when none is set, and the URL's virtual host applied to the topic the same way
/// as for notifications (in the [`crate::driver::Dialect::Kafka`] dialect only), so
/// clients and servers on one virtual host meet.
pub(crate) fn resolve(transport: &Transport, target: &Target) -> (String, String) {
    let exchange = target
        .exchange
        .clone()
        .unwrap_or_else(|| DEFAULT_EXCHANGE.to_owned());
    let topic = match transport.topic_virtual_host() {
        Some(vhost) => format!("{}.{vhost}", target.topic),
        None => target.topic.clone(),
    };
    (exchange, topic)
}
