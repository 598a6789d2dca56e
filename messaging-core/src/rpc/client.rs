//! [`RpcClient`]: calls (with a typed reply or a timeout), casts and fanout casts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tracing::Span;

use super::wire::{self, OutgoingRequest, WireFailure};
use super::{resolve, RpcSerializer, Target, DEFAULT_TIMEOUT};
use super::{RpcAddress, RpcDelivery, RpcDriver, RpcOperation, RpcReceiver, RpcRequest};
use crate::error::{Error, ErrorKind, Result};
use crate::notification::Context;
use crate::observability::instruments::RpcClientMetrics;
use crate::retry::Backoff;
use crate::trace::{self, RunInSpan};
use crate::transport::Transport;

type Outcome = std::result::Result<Value, WireFailure>;

/// The callers waiting for replies on one reply queue, by `_msg_id`.
#[derive(Debug, Default)]
struct Waiters {
    /// `None` once the queue's reader has ended: nobody will be woken any more.
    map: Mutex<Option<HashMap<String, oneshot::Sender<Outcome>>>>,
}

impl Waiters {
    fn new() -> Self {
        Waiters {
            map: Mutex::new(Some(HashMap::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<HashMap<String, oneshot::Sender<Outcome>>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(&self, msg_id: &str) -> Option<oneshot::Receiver<Outcome>> {
        let (tx, rx) = oneshot::channel();
        self.lock().as_mut()?.insert(msg_id.to_owned(), tx);
        Some(rx)
    }

    fn remove(&self, msg_id: &str) -> Option<oneshot::Sender<Outcome>> {
        self.lock().as_mut()?.remove(msg_id)
    }

    fn is_alive(&self) -> bool {
        self.lock().is_some()
    }

    /// The reader ended: drop every waiter (they see the queue closed).
    fn end(&self) {
        self.lock().take();
    }
}

/// Removes a waiter when its call returns or is cancelled.
struct WaiterGuard<'a> {
    waiters: &'a Waiters,
    msg_id: &'a str,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.waiters.remove(self.msg_id);
    }
}

#[derive(Debug)]
struct ReplyQueue {
    name: String,
    waiters: Arc<Waiters>,
    /// Dropping it (with the last client) stops the reader, which closes the queue.
    _stop: watch::Sender<bool>,
    reader: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    transport: Transport,
    reply_queue: tokio::sync::Mutex<Option<ReplyQueue>>,
    metrics: RpcClientMetrics,
}

impl Shared {
    /// This client's reply queue, opened on the first call (and again if its
    /// reader ended, e.g. after a transport failure).
    async fn reply_queue(&self, rpc: &Arc<dyn RpcDriver>) -> Result<(String, Arc<Waiters>)> {
        let mut slot = self.reply_queue.lock().await;
        if let Some(q) = slot.as_ref() {
            // The reader may also have vanished without ending (its runtime shut down).
            if q.waiters.is_alive() && !q.reader.is_finished() {
                return Ok((q.name.clone(), q.waiters.clone()));
            }
        }
        let opened = rpc.open_reply_queue().await?;
        let waiters = Arc::new(Waiters::new());
        let (stop_tx, stop_rx) = watch::channel(false);
        let reader = tokio::spawn(read_replies(opened.receiver, waiters.clone(), stop_rx));
        let out = (opened.name.clone(), waiters.clone());
        *slot = Some(ReplyQueue {
            name: opened.name,
            waiters,
            _stop: stop_tx,
            reader,
        });
        Ok(out)
    }
}

/// Routes replies to their callers until stopped or the queue fails for good.
async fn read_replies(
    receiver: Box<dyn RpcReceiver>,
    waiters: Arc<Waiters>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::reply_receive();
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            received = receiver.receive(256, Duration::from_secs(1)) => match received {
                Ok(bodies) => {
                    backoff.reset();
                    for body in bodies {
                        route(&waiters, &body);
                    }
                }
                Err(e) if e.kind() == &ErrorKind::Closed => break,
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, ?delay, "receiving RPC replies failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            },
        }
    }
    waiters.end();
    if let Err(e) = receiver.close(Duration::from_secs(5)).await {
        tracing::debug!(error = %e, "closing an RPC reply queue failed");
    }
}

fn route(waiters: &Waiters, body: &Bytes) {
    let reply = match wire::decode_reply(body) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "skipping a record on an RPC reply queue that is not a reply");
            return;
        }
    };
    let Some(outcome) = reply.outcome else {
        return; // a bare end-of-reply marker
    };
    match waiters.remove(&reply.msg_id) {
        Some(tx) => {
            let _ = tx.send(outcome);
        }
        None => {
            tracing::debug!(msg_id = %reply.msg_id, "reply for a call nobody waits for (timed out?)")
        }
    }
}

/// The caller-side error for a failure a server sent back.
fn remote_error(failure: WireFailure) -> Error {
    let kind = match failure.class.as_str() {
        "NoSuchMethod" => ErrorKind::NoSuchMethod,
        "UnsupportedVersion" => ErrorKind::UnsupportedVersion,
        _ => ErrorKind::Remote {
            type_name: failure.class,
        },
    };
    Error::new(kind, failure.message)
}

/// Sends RPC requests to a [`Target`]. Cheap to clone; clones and
/// [`RpcClient::prepare`]d copies share one reply queue, opened on the first call
/// and closed when the last copy is dropped.
///
/// Every entry point first asks the driver for its RPC side
/// ([`crate::Driver::rpc`]), so on a transport without RPC (Kafka) each one fails
/// at once with [`ErrorKind::Unsupported`], naming the driver and the operation.
#[derive(Debug, Clone)]
pub struct RpcClient {
    shared: Arc<Shared>,
    target: Target,
    timeout: Duration,
    serializer: Option<Arc<dyn RpcSerializer>>,
}

impl RpcClient {
    /// A client for `target` on `transport`, with the default timeout: the URL's
    /// `rpc_response_timeout` (oslo's option, seconds) where the driver accepts it
    /// (RabbitMQ), else 60 s. Touches nothing on the transport until the first call
    /// or cast.
    pub fn new(transport: &Transport, target: Target) -> Self {
        let timeout = transport
            .url()
            .query("rpc_response_timeout")
            .and_then(|v| crate::options::parse_seconds(&v))
            .filter(|t| !t.is_zero())
            .unwrap_or(DEFAULT_TIMEOUT);
        RpcClient {
            shared: Arc::new(Shared {
                transport: transport.clone(),
                reply_queue: tokio::sync::Mutex::new(None),
                metrics: RpcClientMetrics::new(transport.driver().name(), &target.topic),
            }),
            target,
            timeout,
            serializer: None,
        }
    }

    /// A copy sharing this client's reply queue, to change with the `with_*` methods
    /// (oslo's `prepare`): `client.prepare().with_server("host1").with_timeout(d)`.
    pub fn prepare(&self) -> RpcClient {
        self.clone()
    }

    /// How long a call waits for its reply (also bounds how long a send waits
    /// for room in a full queue).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Direct calls and casts at the server with this name.
    pub fn with_server(mut self, server: impl Into<String>) -> Self {
        self.target.server = Some(server.into());
        self
    }

    /// Send calls and casts to any one server on the topic (undoes `with_server`).
    pub fn without_server(mut self) -> Self {
        self.target.server = None;
        self
    }

    /// Make casts go to every server on the topic (calls refuse a fanout target).
    pub fn with_fanout(mut self, fanout: bool) -> Self {
        self.target.fanout = fanout;
        self
    }

    /// The interface version requests ask for, `major.minor` (default `1.0`).
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.target.version = Some(version.into());
        self
    }

    /// The endpoint namespace requests are for.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.target.namespace = Some(namespace.into());
        self
    }

    /// Send requests to the default (unnamed) namespace (undoes `with_namespace`).
    pub fn with_default_namespace(mut self) -> Self {
        self.target.namespace = None;
        self
    }

    /// Rewrite arguments, results and the context around the wire.
    pub fn with_serializer(mut self, serializer: Arc<dyn RpcSerializer>) -> Self {
        self.serializer = Some(serializer);
        self
    }

    /// The target requests go to.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// How long a call waits for its reply.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The transport underneath.
    pub fn transport(&self) -> &Transport {
        &self.shared.transport
    }

    fn rpc(&self, op: RpcOperation) -> Result<Arc<dyn RpcDriver>> {
        self.shared.transport.driver().rpc(op)
    }

    /// Call `method` with keyword arguments `args` (a value serializing to a JSON
    /// object, or `()` for none) and wait for its result.
    ///
    /// Errors: [`ErrorKind::Timeout`] when no reply came within the timeout;
    /// [`ErrorKind::Remote`] with the remote type name and message when the method
    /// failed (or panicked: type `Panic`); [`ErrorKind::NoSuchMethod`] and
    /// [`ErrorKind::UnsupportedVersion`] when no endpoint could take the request;
    /// [`ErrorKind::Decode`] when the result does not fit `R`;
    /// [`ErrorKind::InvalidArgument`] for a fanout target.
    pub async fn call<A, R>(&self, ctx: &Context, method: &str, args: &A) -> Result<R>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let rpc = self.rpc(RpcOperation::Call)?;
        let args = args_to_map(method, serde_json::to_value(args))?;
        let value = self
            .shared
            .metrics
            .call(
                self.do_call(&rpc, ctx, method, args)
                    .in_span(self.span(method, trace::RpcOperation::Call)),
            )
            .await?;
        R::deserialize(value).map_err(|e| {
            Error::new(
                ErrorKind::Decode,
                format!("the result of {method} does not fit the expected type"),
            )
            .with_source(e)
        })
    }

    /// [`RpcClient::call`] with JSON arguments (an object, or null for none) and a
    /// JSON result: for tools that do not know the types (the CLI).
    pub async fn call_json(&self, ctx: &Context, method: &str, args: Value) -> Result<Value> {
        let rpc = self.rpc(RpcOperation::Call)?;
        let args = args_to_map(method, Ok(args))?;
        self.shared
            .metrics
            .call(
                self.do_call(&rpc, ctx, method, args)
                    .in_span(self.span(method, trace::RpcOperation::Call)),
            )
            .await
    }

    /// Send `method` without waiting for a result: to every server on the topic if
    /// the target is fanout, to the target's server if it names one, else to one
    /// server on the topic. Returns once the transport accepted the request.
    pub async fn cast<A: Serialize + ?Sized>(
        &self,
        ctx: &Context,
        method: &str,
        args: &A,
    ) -> Result<()> {
        let op = if self.target.fanout {
            RpcOperation::Fanout
        } else {
            RpcOperation::Cast
        };
        let rpc = self.rpc(op)?;
        let args = args_to_map(method, serde_json::to_value(args))?;
        self.do_cast(&rpc, ctx, method, args, self.target.fanout)
            .in_span(self.span(method, cast_operation(self.target.fanout)))
            .await
    }

    /// [`RpcClient::cast`] with JSON arguments.
    pub async fn cast_json(&self, ctx: &Context, method: &str, args: Value) -> Result<()> {
        let op = if self.target.fanout {
            RpcOperation::Fanout
        } else {
            RpcOperation::Cast
        };
        let rpc = self.rpc(op)?;
        let args = args_to_map(method, Ok(args))?;
        self.do_cast(&rpc, ctx, method, args, self.target.fanout)
            .in_span(self.span(method, cast_operation(self.target.fanout)))
            .await
    }

    /// Cast `method` to every server listening on the topic now (whatever the
    /// target's `fanout` and `server`). Servers that start later do not get it.
    pub async fn fanout<A: Serialize + ?Sized>(
        &self,
        ctx: &Context,
        method: &str,
        args: &A,
    ) -> Result<()> {
        let rpc = self.rpc(RpcOperation::Fanout)?;
        let args = args_to_map(method, serde_json::to_value(args))?;
        self.do_cast(&rpc, ctx, method, args, true)
            .in_span(self.span(method, trace::RpcOperation::Fanout))
            .await
    }

    /// [`RpcClient::fanout`] with JSON arguments.
    pub async fn fanout_json(&self, ctx: &Context, method: &str, args: Value) -> Result<()> {
        let rpc = self.rpc(RpcOperation::Fanout)?;
        let args = args_to_map(method, Ok(args))?;
        self.do_cast(&rpc, ctx, method, args, true)
            .in_span(self.span(method, trace::RpcOperation::Fanout))
            .await
    }

    fn address(&self, fanout: bool) -> RpcAddress {
        let (exchange, topic) = resolve(&self.shared.transport, &self.target);
        let delivery = match (&self.target.server, fanout) {
            (_, true) => RpcDelivery::Fanout,
            (Some(server), false) => RpcDelivery::Server(server.clone()),
            (None, false) => RpcDelivery::AnyServer,
        };
        RpcAddress {
            exchange,
            topic,
            delivery,
        }
    }

    /// The client span of a request for `method`.
    fn span(&self, method: &str, operation: trace::RpcOperation) -> Span {
        trace::rpc_client(
            self.shared.transport.driver().name(),
            &self.target.topic,
            method,
            self.target.namespace.as_deref(),
            operation,
        )
    }

    /// Context and arguments as they go on the wire, the context with the trace
    /// context of the current (client) span.
    fn outgoing(
        &self,
        ctx: &Context,
        args: Map<String, Value>,
    ) -> Result<(Context, Map<String, Value>)> {
        let (mut wire_ctx, args) = self.serialized(ctx, args)?;
        trace::inject(&Span::current(), &mut wire_ctx);
        Ok((wire_ctx, args))
    }

    /// Context and arguments through the serializer.
    fn serialized(
        &self,
        ctx: &Context,
        args: Map<String, Value>,
    ) -> Result<(Context, Map<String, Value>)> {
        match &self.serializer {
            None => Ok((ctx.clone(), args)),
            Some(s) => {
                let wire_ctx = s.serialize_context(ctx.clone())?;
                let mut out = Map::with_capacity(args.len());
                for (k, v) in args {
                    out.insert(k, s.serialize_entity(ctx, v)?);
                }
                Ok((wire_ctx, out))
            }
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.shared.transport.is_closed() {
            Err(Error::closed("transport"))
        } else {
            Ok(())
        }
    }

    async fn do_call(
        &self,
        rpc: &Arc<dyn RpcDriver>,
        ctx: &Context,
        method: &str,
        args: Map<String, Value>,
    ) -> Result<Value> {
        if self.target.fanout {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("{method}: a call cannot go to a fanout target (use a cast)"),
            ));
        }
        self.check_open()?;
        let deadline = Instant::now() + self.timeout;
        let timed_out = || {
            Error::timeout(format!(
                "no reply to {method} on topic {} within {:?}",
                self.target.topic, self.timeout
            ))
        };
        let (wire_ctx, wire_args) = self.outgoing(ctx, args)?;
        let (queue, waiters) = tokio::time::timeout_at(deadline, self.shared.reply_queue(rpc))
            .await
            .map_err(|_| timed_out())??;
        let msg_id = uuid::Uuid::new_v4().simple().to_string();
        let reply = waiters
            .register(&msg_id)
            .ok_or_else(|| Error::closed("RPC reply queue"))?;
        let _guard = WaiterGuard {
            waiters: &waiters,
            msg_id: &msg_id,
        };
        let body = wire::encode_request(&OutgoingRequest {
            method,
            args: &wire_args,
            namespace: self.target.namespace.as_deref(),
            version: self.target.version.as_deref(),
            reply: Some((&msg_id, &queue)),
            unique_id: &uuid::Uuid::new_v4().simple().to_string(),
            context: &wire_ctx,
        })?;
        send(
            &self.shared.transport,
            rpc,
            self.address(false),
            body.into(),
            deadline,
            true,
        )
        .await
        .map_err(|e| {
            if e.kind() == &ErrorKind::Timeout {
                timed_out()
            } else {
                e
            }
        })?;
        let outcome = match tokio::time::timeout_at(deadline, reply).await {
            Err(_) => return Err(timed_out()),
            Ok(Err(_)) => return Err(Error::closed("RPC reply queue")),
            Ok(Ok(outcome)) => outcome,
        };
        let result = outcome.map_err(remote_error)?;
        match &self.serializer {
            None => Ok(result),
            Some(s) => s.deserialize_entity(ctx, result),
        }
    }

    async fn do_cast(
        &self,
        rpc: &Arc<dyn RpcDriver>,
        ctx: &Context,
        method: &str,
        args: Map<String, Value>,
        fanout: bool,
    ) -> Result<()> {
        self.shared.metrics.cast();
        self.check_open()?;
        let deadline = Instant::now() + self.timeout;
        let (wire_ctx, wire_args) = self.outgoing(ctx, args)?;
        let body = wire::encode_request(&OutgoingRequest {
            method,
            args: &wire_args,
            namespace: self.target.namespace.as_deref(),
            version: self.target.version.as_deref(),
            reply: None,
            unique_id: &uuid::Uuid::new_v4().simple().to_string(),
            context: &wire_ctx,
        })?;
        send(
            &self.shared.transport,
            rpc,
            self.address(fanout),
            body.into(),
            deadline,
            false,
        )
        .await
    }
}

/// Hand a request to the driver through the transport's send rules (closed,
/// backpressure until `deadline`).
async fn send(
    transport: &Transport,
    rpc: &Arc<dyn RpcDriver>,
    to: RpcAddress,
    body: Bytes,
    deadline: Instant,
    expires: bool,
) -> Result<()> {
    let topic = format!("RPC topic {}", to.topic);
    transport
        .send_with_backpressure(deadline, &topic, || {
            let left = deadline.saturating_duration_since(Instant::now());
            rpc.send_request(RpcRequest {
                to: to.clone(),
                body: body.clone(),
                ttl: expires.then_some(left),
            })
        })
        .await
}

/// The span operation of a cast to a target (`fanout` or not).
fn cast_operation(fanout: bool) -> trace::RpcOperation {
    if fanout {
        trace::RpcOperation::Fanout
    } else {
        trace::RpcOperation::Cast
    }
}

/// Keyword arguments: a JSON object (null means none).
fn args_to_map(method: &str, args: serde_json::Result<Value>) -> Result<Map<String, Value>> {
    match args {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(other) => Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "arguments of {method} must serialize to a JSON object (keyword arguments), not {}",
                kind_of(&other)
            ),
        )),
        Err(e) => Err(Error::new(
            ErrorKind::Serialization,
            format!("arguments of {method} do not serialize to JSON"),
        )
        .with_source(e)),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
