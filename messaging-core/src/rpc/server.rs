//! [`RpcServer`]: receives requests, dispatches them to endpoints with bounded
//! concurrency, replies, and drains on stop.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use serde_json::{Map, Value};
use tokio::task::JoinError;
use tracing::Span;

use super::dispatcher::Dispatcher;
use super::endpoint::{RemoteError, RpcEndpoint};
use super::wire::{self, IncomingRequest, ReplyTo};
use super::{
    resolve, RpcDriver, RpcListenSpec, RpcOperation, RpcReceiver, RpcReply, RpcSerializer, Target,
    DEFAULT_MAX_CONCURRENCY,
};
use crate::error::{Error, ErrorKind, Result};
use crate::lifecycle::Lifecycle;
use crate::observability::instruments::{Counted, Timer};
use crate::observability::metrics;
use crate::service::{spawned, InFlight, Service, ServiceSettings, DEFAULT_STOP_TIMEOUT};
use crate::trace::{self, RunInSpan};
use crate::transport::Transport;

/// How long one receive of requests waits.
const POLL_WAIT: Duration = Duration::from_secs(1);

/// A snapshot of a server's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RpcServerCounters {
    /// Requests received (decoded or not).
    pub received: u64,
    /// Replies sent (calls only; failures included).
    pub replied: u64,
    /// Requests whose method failed, panicked, or could not be dispatched.
    pub failed: u64,
    /// Records that were not RPC requests (skipped, logged).
    pub skipped: u64,
    /// Requests dropped, without a reply, because their `_unique_id` was one of the
    /// last [`RECENT_UNIQUE_IDS`] this server took (a redelivered copy).
    pub duplicates: u64,
}

/// How many of the latest requests' `_unique_id`s a server remembers to drop
/// duplicates (oslo's `DUP_MSG_CHECK_SIZE`).
pub const RECENT_UNIQUE_IDS: usize = 16;

/// The server's counters (each also a metric) and its method-run histogram.
#[derive(Debug)]
struct Stats {
    received: Counted,
    replied: Counted,
    failed: Counted,
    skipped: Counted,
    duplicates: Counted,
    process: metrics::Histogram,
}

impl Stats {
    /// Recorded with `messaging.system` and the server's topic.
    fn new(driver: &str, topic: &str) -> Self {
        let labels = metrics::destination_labels(driver, topic, None);
        let c = |name| Counted::new(metrics::counter(name, &labels));
        let mut process = labels.clone();
        process.push(metrics::Label::new(
            metrics::ATTR_OPERATION,
            metrics::OP_PROCESS,
        ));
        Stats {
            received: c(metrics::RPC_SERVER_RECEIVED),
            replied: c(metrics::RPC_SERVER_REPLIED),
            failed: c(metrics::RPC_SERVER_FAILED),
            skipped: c(metrics::RPC_SERVER_SKIPPED),
            duplicates: c(metrics::RPC_SERVER_DUPLICATES),
            process: metrics::histogram(metrics::PROCESS_DURATION, &process),
        }
    }
}

/// Builds an [`RpcServer`].
#[derive(Debug)]
pub struct RpcServerBuilder {
    transport: Transport,
    target: Target,
    endpoints: Vec<RpcEndpoint>,
    serializer: Option<Arc<dyn RpcSerializer>>,
    service: ServiceSettings,
}

impl RpcServerBuilder {
    /// Add an endpoint (tried in the order added).
    pub fn endpoint(mut self, endpoint: RpcEndpoint) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    /// Rewrite the context, arguments and results around the wire.
    pub fn serializer(mut self, serializer: Arc<dyn RpcSerializer>) -> Self {
        self.serializer = Some(serializer);
        self
    }

    /// Bound on requests handled at once (default 64). The server takes no more
    /// requests from the transport than it has room for, so the others stay
    /// available to the other servers on the topic.
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.service.max_concurrency = n.max(1);
        self
    }

    /// How long `stop` lets requests in flight finish and reply (default 30 s).
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.service.stop_timeout = timeout;
        self
    }

    /// Build the server (not started). Checks the target and the endpoints'
    /// versions; touches nothing on the transport.
    pub fn build(self) -> Result<RpcServer> {
        let invalid = |m: String| Error::new(ErrorKind::InvalidArgument, m);
        if self.target.topic.is_empty() {
            return Err(invalid("an RPC server needs a topic".into()));
        }
        if self.endpoints.is_empty() {
            return Err(invalid("an RPC server needs at least one endpoint".into()));
        }
        let dispatcher = Dispatcher::new(self.endpoints)?;
        let server = self
            .target
            .server
            .clone()
            .unwrap_or_else(|| format!("server-{}", uuid::Uuid::new_v4().simple()));
        let (exchange, topic) = resolve(&self.transport, &self.target);
        let stats = Arc::new(Stats::new(self.transport.driver().name(), &topic));
        Ok(RpcServer {
            inner: Arc::new(Inner {
                transport: self.transport,
                spec: RpcListenSpec {
                    exchange,
                    topic,
                    server,
                },
                dispatcher: Arc::new(dispatcher),
                serializer: self.serializer,
                service: self.service,
                stats,
                lifecycle: Lifecycle::new("RPC server"),
            }),
        })
    }
}

#[derive(Debug)]
struct Inner {
    transport: Transport,
    spec: RpcListenSpec,
    dispatcher: Arc<Dispatcher>,
    serializer: Option<Arc<dyn RpcSerializer>>,
    service: ServiceSettings,
    stats: Arc<Stats>,
    lifecycle: Lifecycle,
}

/// Serves RPC requests for a [`Target`]'s topic as a named server: requests to the
/// topic (shared, load-balanced with the other servers on it), requests directed at
/// its name, and fanout casts. Cheap to clone.
///
/// **Lifecycle.** `start`, `stop` and `wait` are idempotent, like a notification
/// listener's: `start` after `start` does nothing, `stop` before `start` makes
/// `start` refuse, `wait` returns once the server drained (at once if it never
/// started). **Stop** leaves the topic at once (requests not yet taken stay for
/// the other servers), lets the requests in flight finish within the stop timeout
/// and sends their replies; requests still running at the deadline are abandoned
/// (their callers time out).
///
/// **Failures.** An error returned by a method, a panic in it, a method that does
/// not exist and an unsupported version all reach the caller as a failure reply;
/// none of them stops the server. Methods run on tokio tasks, up to
/// `max_concurrency` at once.
#[derive(Debug, Clone)]
pub struct RpcServer {
    inner: Arc<Inner>,
}

impl RpcServer {
    /// Start building a server listening on `target` (its topic, its exchange, and
    /// its `server` name; without one, a unique name is generated).
    pub fn builder(transport: &Transport, target: Target) -> RpcServerBuilder {
        RpcServerBuilder {
            transport: transport.clone(),
            target,
            endpoints: Vec::new(),
            serializer: None,
            service: ServiceSettings {
                max_concurrency: DEFAULT_MAX_CONCURRENCY,
                poll_wait: POLL_WAIT,
                stop_timeout: DEFAULT_STOP_TIMEOUT,
            },
        }
    }

    /// The server's name (its target's `server`, or the generated one).
    pub fn server_name(&self) -> &str {
        &self.inner.spec.server
    }

    /// Where the server listens on the transport.
    pub fn listen_spec(&self) -> &RpcListenSpec {
        &self.inner.spec
    }

    /// Start listening and dispatching. Returns once the server listens.
    ///
    /// On a transport without RPC this fails with [`ErrorKind::Unsupported`]
    /// (operation `rpc.server`) before anything else.
    pub async fn start(&self) -> Result<()> {
        let rpc = self.inner.transport.driver().rpc(RpcOperation::Server)?;
        let inner = &self.inner;
        inner
            .lifecycle
            .start(inner.service.clone(), async move {
                if inner.transport.is_closed() {
                    return Err(Error::closed("transport"));
                }
                let receiver = rpc.listen(inner.spec.clone()).await?;
                Ok(ServerService {
                    rpc,
                    receiver,
                    dispatcher: inner.dispatcher.clone(),
                    serializer: inner.serializer.clone(),
                    stats: inner.stats.clone(),
                    server: inner.spec.server.clone(),
                    system: inner.transport.driver().name().to_owned(),
                    topic: inner.spec.topic.clone(),
                    replies: Vec::new(),
                    recent: VecDeque::with_capacity(RECENT_UNIQUE_IDS),
                })
            })
            .await
    }

    /// Ask the server to stop: leave the topic, finish what is in flight. Returns at once.
    pub fn stop(&self) {
        self.inner.lifecycle.stop();
    }

    /// Wait until the server stopped and drained.
    pub async fn wait(&self) -> Result<()> {
        self.inner.lifecycle.wait().await
    }

    /// `stop` then `wait`.
    pub async fn stop_and_wait(&self) -> Result<()> {
        self.inner.lifecycle.stop_and_wait().await
    }

    /// Running or stopped and since when, and the last error. (The RPC drivers do
    /// not report a backlog yet: `lag` is `None`.)
    pub fn status(&self) -> crate::observability::ServiceStatus {
        self.inner.lifecycle.status()
    }

    /// The server's counters.
    pub fn counters(&self) -> RpcServerCounters {
        let s = &self.inner.stats;
        RpcServerCounters {
            received: s.received.load(Ordering::Relaxed),
            replied: s.replied.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            skipped: s.skipped.load(Ordering::Relaxed),
            duplicates: s.duplicates.load(Ordering::Relaxed),
        }
    }
}

/// One started server: its receiver, and the replies not sent yet.
struct ServerService {
    rpc: Arc<dyn RpcDriver>,
    receiver: Box<dyn RpcReceiver>,
    dispatcher: Arc<Dispatcher>,
    serializer: Option<Arc<dyn RpcSerializer>>,
    stats: Arc<Stats>,
    server: String,
    /// The driver's name and the topic, for the spans.
    system: String,
    topic: String,
    replies: Vec<RpcReply>,
    /// The `_unique_id`s of the latest requests taken, oldest first.
    recent: VecDeque<String>,
}

/// What a finished request leaves to send: a reply for a call, nothing for a cast.
type Done = Option<RpcReply>;

impl Service for ServerService {
    type Item = Bytes;
    type Done = std::result::Result<Done, JoinError>;
    const ABANDONED: &'static str = "their callers time out";

    fn name(&self) -> &str {
        &self.server
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Bytes>> {
        self.receiver.receive(max, wait).await
    }

    async fn dispatch(&mut self, body: Bytes, work: &mut InFlight<Self::Done>) {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        match wire::decode_request(&body) {
            Ok(request) => {
                if self.is_duplicate(request.unique_id.as_deref()) {
                    self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        server = %self.server,
                        method = %request.method,
                        unique_id = request.unique_id.as_deref().unwrap_or_default(),
                        "dropping a duplicate RPC request (its _unique_id was seen just before)"
                    );
                    return;
                }
                let span = self.span(&request);
                let job = handle(
                    request,
                    self.dispatcher.clone(),
                    self.serializer.clone(),
                    self.stats.clone(),
                    self.rpc.clone(),
                )
                .in_span(span);
                if let Some(done) = work.start(spawned(job)) {
                    self.settle(done);
                }
            }
            Err(bad) => self.refuse(&body, *bad),
        }
    }

    fn settle(&mut self, done: Self::Done) {
        match done {
            Ok(Some(reply)) => self.replies.push(reply),
            Ok(None) => {}
            Err(e) if e.is_cancelled() => {}
            Err(e) => tracing::error!(server = %self.server, error = %e, "RPC request task failed"),
        }
    }

    async fn flush(&mut self) {
        if self.replies.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.replies);
        let n = batch.len() as u64;
        match self.rpc.send_replies(batch).await {
            Ok(()) => {
                self.stats.replied.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(server = %self.server, error = %e, count = n, "sending RPC replies failed; their callers time out")
            }
        }
    }

    /// Leave the topic first: what was not taken stays for the other servers.
    async fn stop_receiving(&mut self, _work: &mut InFlight<Self::Done>, timeout: Duration) {
        if let Err(e) = self.receiver.close(timeout).await {
            tracing::warn!(server = %self.server, error = %e, "leaving the RPC topic failed");
        }
    }

    async fn finish(self, _timeout: Duration) -> Result<()> {
        Ok(())
    }
}

impl ServerService {
    /// The server span `request` runs in.
    fn span(&self, request: &IncomingRequest) -> Span {
        trace::rpc_server(
            &self.system,
            &self.topic,
            &request.method,
            request.namespace.as_deref(),
            request.reply.as_ref().map(|r| r.msg_id.as_str()),
            &request.context,
        )
    }

    /// Whether `unique_id` is one of the last [`RECENT_UNIQUE_IDS`] taken; if not,
    /// it is remembered. A request without one is never a duplicate.
    fn is_duplicate(&mut self, unique_id: Option<&str>) -> bool {
        let Some(id) = unique_id else {
            return false;
        };
        if self.recent.iter().any(|seen| seen == id) {
            return true;
        }
        if self.recent.len() == RECENT_UNIQUE_IDS {
            self.recent.pop_front();
        }
        self.recent.push_back(id.to_owned());
        false
    }

    /// A record that is not a request: a failure reply where it says where to
    /// reply, else a counted skip.
    fn refuse(&mut self, body: &Bytes, bad: wire::BadRequest) {
        let preview = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
        tracing::warn!(server = %self.server, error = %bad.error, preview, "skipping a record that is not an RPC request");
        match bad.reply {
            Some(to) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                let failure = RemoteError::new("InvalidRequest", bad.error.to_string())
                    .with_module("messaging_core.rpc");
                if let Some(r) = reply_for(&to, Err(failure)) {
                    self.replies.push(r);
                }
            }
            None => {
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Dispatch one request (panics included) and build its reply.
async fn handle(
    request: IncomingRequest,
    dispatcher: Arc<Dispatcher>,
    serializer: Option<Arc<dyn RpcSerializer>>,
    stats: Arc<Stats>,
    rpc: Arc<dyn RpcDriver>,
) -> Done {
    let _timer = Timer::start(&stats.process);
    let reply_to = request.reply.clone();
    let method = request.method.clone();
    let monitor = reply_to
        .clone()
        .zip(request.call_monitor.and_then(heartbeat_interval));
    let call = AssertUnwindSafe(invoke(request, &dispatcher, serializer.as_deref())).catch_unwind();
    let outcome = match monitor {
        None => call.await,
        Some((to, every)) => with_heartbeats(call, &rpc, &to, every).await,
    };
    let outcome = outcome.unwrap_or_else(|panic| {
        Err(RemoteError::new(
            "Panic",
            format!(
                "{method} panicked: {}",
                crate::lifecycle::panic_message(panic.as_ref())
            ),
        ))
    });
    if let Err(e) = &outcome {
        stats.failed.fetch_add(1, Ordering::Relaxed);
        match &reply_to {
            Some(_) => {
                tracing::debug!(method, error = %e, "RPC method failed; replying with the failure")
            }
            None => tracing::warn!(method, error = %e, "RPC cast failed"),
        }
    }
    reply_for(reply_to.as_ref()?, outcome)
}

/// How often oslo's server beats for a call monitor of `timeout` seconds:
/// `int(timeout) / 2` seconds, none under one second.
/// `None` too when the interval does not fit a [`Duration`] (a caller's `_timeout`
/// of more than 2 * `u64::MAX` seconds: the beat would never come anyway).
pub(crate) fn heartbeat_interval(timeout: f64) -> Option<Duration> {
    let every = timeout.floor() / 2.0;
    if every >= 1.0 {
        Duration::try_from_secs_f64(every).ok()
    } else {
        None
    }
}

/// Run `call`, sending `to` a heartbeat every `every` until it finishes (the caller
/// set a call monitor; oslo resets its timer on each).
async fn with_heartbeats<F: std::future::Future>(
    call: F,
    rpc: &Arc<dyn RpcDriver>,
    to: &ReplyTo,
    every: Duration,
) -> F::Output {
    tokio::pin!(call);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            out = &mut call => return out,
            _ = tick.tick() => {
                let unique_id = uuid::Uuid::new_v4().simple().to_string();
                let beat = wire::encode_heartbeat(&to.msg_id, &unique_id).map(|body| RpcReply {
                    reply_queue: to.reply_queue.clone(),
                    body: body.into(),
                });
                let sent = match beat {
                    Ok(reply) => rpc.send_replies(vec![reply]).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = sent {
                    tracing::debug!(error = %e, "a call-monitor heartbeat was not sent");
                }
            }
        }
    }
}

async fn invoke(
    request: IncomingRequest,
    dispatcher: &Dispatcher,
    serializer: Option<&dyn RpcSerializer>,
) -> Result<Value, RemoteError> {
    let serialization = |e: Error| RemoteError::new("SerializationError", e.to_string());
    let method = dispatcher.find(
        request.namespace.as_deref(),
        &request.version,
        &request.method,
    )?;
    let Some(s) = serializer else {
        return method(request.context, Value::Object(request.args)).await;
    };
    let context = s
        .deserialize_context(request.context)
        .map_err(serialization)?;
    let mut args = Map::with_capacity(request.args.len());
    for (k, v) in request.args {
        args.insert(k, s.deserialize_entity(&context, v).map_err(serialization)?);
    }
    let result = method(context.clone(), Value::Object(args)).await?;
    s.serialize_entity(&context, result).map_err(serialization)
}

fn reply_for(to: &ReplyTo, outcome: std::result::Result<Value, RemoteError>) -> Option<RpcReply> {
    let unique_id = uuid::Uuid::new_v4().simple().to_string();
    let encoded = wire::encode_reply(
        &to.msg_id,
        &unique_id,
        &outcome.map_err(RemoteError::into_wire),
    )
    .or_else(|e| {
        tracing::error!(error = %e, "an RPC reply does not encode; sending the failure instead");
        let failure = RemoteError::new("SerializationError", e.to_string()).into_wire();
        wire::encode_reply(&to.msg_id, &unique_id, &Err(failure))
    });
    match encoded {
        Ok(body) => Some(RpcReply {
            reply_queue: to.reply_queue.clone(),
            body: body.into(),
        }),
        Err(e) => {
            tracing::error!(error = %e, "an RPC failure reply does not encode; the caller times out");
            None
        }
    }
}

#[cfg(test)]
mod heartbeat_tests {
    use super::heartbeat_interval;
    use std::time::Duration;

    #[test]
    fn heartbeats_follow_oslo_int_timeout_over_two_and_none_under_a_second() {
        assert_eq!(heartbeat_interval(5.9), Some(Duration::from_millis(2500)));
        assert_eq!(heartbeat_interval(2.0), Some(Duration::from_secs(1)));
        assert_eq!(heartbeat_interval(1.9), None);
        assert_eq!(heartbeat_interval(0.5), None);
    }

    /// Regression: a caller's `_timeout` of 1e300 (finite, positive) made the
    /// interval overflow `Duration::from_secs_f64`, a panic in the server.
    #[test]
    fn a_call_monitor_beyond_a_duration_gets_no_heartbeat_not_a_panic() {
        assert_eq!(heartbeat_interval(1e300), None);
        assert_eq!(heartbeat_interval(f64::MAX), None);
        assert!(heartbeat_interval(1e19).is_some());
    }
}
