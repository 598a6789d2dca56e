//! The metrics and health endpoint of the long-running commands (`listen`,
//! `rpc-server`, `soak`, `bench`), turned on by `--metrics-addr HOST:PORT`:
//!
//! - `/metrics`: every metric the process recorded, in Prometheus text format,
//!   rendered by the `metrics-exporter-prometheus` recorder;
//! - `/healthz`: 200 while the process answers at all (liveness);
//! - `/readyz`: 200 when the command's probe says the transport is connected and its
//!   listener or server is running, otherwise 503 with the reason (readiness).
//!
//! The HTTP server is axum on the tokio runtime the CLI already runs: three routes
//! are a few lines there, it is hyper underneath (so HTTP/1.1 keep-alive, request
//! parsing and graceful shutdown are the well-worn ones), and the workspace already
//! builds it. The exporter's own listener feature is not used: it has no routes but
//! `/metrics` and would pull in a second HTTP stack.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use clap::Args;
use messaging_core::observability::ServiceStatus;
use messaging_core::{Error, ErrorKind, NotificationListener, Result, RpcServer, Transport};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::sync::watch;

/// Upper bounds of the histogram buckets, in seconds: from 100 µs (an in-memory
/// hand-over) to a minute (a handler stuck behind a broker outage), about three per
/// decade, so that `histogram_quantile` has resolution where latency objectives sit.
pub(crate) const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// How often the recorder's histogram samples are folded into their buckets when
/// nobody scrapes (a scrape folds them too).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The `--metrics-addr` flag, shared by every command that serves the endpoint.
#[derive(Debug, Clone, Args)]
pub(crate) struct MetricsArgs {
    /// Serve /metrics (Prometheus), /healthz and /readyz on this address (port 0: any
    /// free port; the bound address is printed on stderr as
    /// `metrics listening on http://ADDR`).
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) metrics_addr: Option<String>,
    /// With --metrics-addr: once the command's work is done, go on serving this long
    /// (e.g. `30s`), so that a scrape still sees the final counts of a short run
    /// (`/readyz` then answers 503 "finished"; Ctrl-C ends it early).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub(crate) metrics_linger: Duration,
}

/// What `/readyz` answers: `Ok` (200) or the reason it is not ready (503).
pub(crate) type Readiness = std::result::Result<(), String>;

type Probe = Box<dyn Fn() -> Readiness + Send + Sync>;

/// The readiness probe the command sets as it goes (starting, running, stopping).
#[derive(Clone)]
struct Health {
    probe: Arc<RwLock<Probe>>,
}

impl Health {
    fn new() -> Health {
        Health {
            probe: Arc::new(RwLock::new(Box::new(|| Err("starting".to_owned())))),
        }
    }

    fn set(&self, probe: Probe) {
        *self.probe.write().unwrap_or_else(|e| e.into_inner()) = probe;
    }

    fn check(&self) -> Readiness {
        (self.probe.read().unwrap_or_else(|e| e.into_inner()))()
    }
}

#[derive(Clone)]
struct Served {
    metrics: PrometheusHandle,
    health: Health,
}

/// The recorder settings every exporter of this tool uses: Prometheus naming
/// (`_total` on counters, the unit as a suffix, e.g. `_seconds`) and
/// [`SECONDS_BUCKETS`] for histograms, so that they render as real histograms
/// (aggregatable across instances) rather than summaries.
pub(crate) fn prometheus_builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .with_recommended_naming(true)
        .set_buckets(SECONDS_BUCKETS)
        .expect("the bucket list is not empty")
}

/// Install the Prometheus recorder as the process's global `metrics` recorder and
/// describe the framework's metrics to it (units and help lines).
fn install_global() -> Result<PrometheusHandle> {
    let handle = prometheus_builder().install_recorder().map_err(|e| {
        Error::new(ErrorKind::Internal, "cannot install the metrics recorder").with_source(e)
    })?;
    messaging_core::observability::metrics::describe();
    Ok(handle)
}

/// The running endpoint, or nothing when `--metrics-addr` was not given (then every
/// method does nothing). Stops serving when dropped.
#[derive(Debug)]
pub(crate) struct MetricsEndpoint {
    inner: Option<Running>,
}

struct Running {
    addr: SocketAddr,
    linger: Duration,
    health: Health,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("addr", &self.addr).finish()
    }
}

impl MetricsEndpoint {
    /// An endpoint that serves nothing.
    pub(crate) fn disabled() -> MetricsEndpoint {
        MetricsEndpoint { inner: None }
    }

    /// Install the global recorder and serve on `--metrics-addr`, if it was given.
    pub(crate) async fn start(args: &MetricsArgs) -> Result<MetricsEndpoint> {
        let Some(addr) = &args.metrics_addr else {
            return Ok(MetricsEndpoint::disabled());
        };
        let handle = install_global()?;
        MetricsEndpoint::serve(args, addr, handle).await
    }

    /// Serve `metrics` (a recorder's handle) and the health routes on `addr`.
    pub(crate) async fn serve(
        args: &MetricsArgs,
        addr: &str,
        metrics: PrometheusHandle,
    ) -> Result<MetricsEndpoint> {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("--metrics-addr {addr}: cannot listen"),
            )
            .with_source(e)
        })?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::new(ErrorKind::Internal, "metrics address").with_source(e))?;
        let health = Health::new();
        let (stop, mut stopped) = watch::channel(false);
        tokio::spawn(upkeep(metrics.clone(), stop.subscribe()));
        let app = Router::new()
            .route("/metrics", get(render))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(ready))
            .with_state(Served {
                metrics,
                health: health.clone(),
            });
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(error = %e, "the metrics endpoint stopped");
            }
        });
        eprintln!("metrics listening on http://{bound}");
        Ok(MetricsEndpoint {
            inner: Some(Running {
                addr: bound,
                linger: args.metrics_linger,
                health,
                stop,
            }),
        })
    }

    /// From now on `/readyz` answers what `probe` says.
    pub(crate) fn ready_when(&self, probe: impl Fn() -> Readiness + Send + Sync + 'static) {
        if let Some(r) = &self.inner {
            r.health.set(Box::new(probe));
        }
    }

    /// From now on `/readyz` answers 503 with `reason` (e.g. the command is stopping).
    pub(crate) fn not_ready(&self, reason: &str) {
        let reason = reason.to_owned();
        self.ready_when(move || Err(reason.clone()));
    }
}

impl MetricsEndpoint {
    /// The command's work is done: answer 503 "finished" on `/readyz` and go on
    /// serving for `--metrics-linger` (or until Ctrl-C), then stop.
    pub(crate) async fn finish(self) {
        let Some(r) = &self.inner else { return };
        self.not_ready("finished");
        if r.linger.is_zero() {
            return;
        }
        eprintln!(
            "metrics: serving for another {}",
            humantime::format_duration(r.linger)
        );
        tokio::select! {
            () = tokio::time::sleep(r.linger) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        if let Some(r) = &self.inner {
            let _ = r.stop.send(true);
        }
    }
}

async fn render(State(s): State<Served>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn ready(State(s): State<Served>) -> impl IntoResponse {
    match s.health.check() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

async fn upkeep(metrics: PrometheusHandle, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(UPKEEP_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => metrics.run_upkeep(),
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Ready while `transport` is connected and `listener` is running.
pub(crate) fn listener_ready(
    transport: &Transport,
    listener: &NotificationListener,
) -> impl Fn() -> Readiness + Send + Sync + 'static {
    let (transport, listener) = (transport.clone(), listener.clone());
    move || {
        transport_ready(&transport)?;
        service_ready("listener", &listener.status())
    }
}

/// Ready while `transport` is connected and `server` is running.
pub(crate) fn server_ready(
    transport: &Transport,
    server: &RpcServer,
) -> impl Fn() -> Readiness + Send + Sync + 'static {
    let (transport, server) = (transport.clone(), server.clone());
    move || {
        transport_ready(&transport)?;
        service_ready("RPC server", &server.status())
    }
}

/// Ready while `transport` is connected (or its driver cannot tell).
pub(crate) fn transport_ready(transport: &Transport) -> Readiness {
    let health = transport.health();
    if health.is_connected() {
        return Ok(());
    }
    if health.closed {
        return Err("the transport is closed".to_owned());
    }
    Err(match &health.last_error {
        Some(e) => format!("the transport is {}: {}", health.state.as_str(), e.message),
        None => format!("the transport is {}", health.state.as_str()),
    })
}

/// Ready while the listener or server (`what`) is running.
fn service_ready(what: &str, status: &ServiceStatus) -> Readiness {
    if status.is_running() {
        return Ok(());
    }
    Err(match &status.last_error {
        Some(e) => format!("the {what} is {}: {}", status.state.as_str(), e.message),
        None => format!("the {what} is {}", status.state.as_str()),
    })
}
