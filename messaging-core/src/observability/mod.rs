//! Observability: metrics through the [`metrics`] facade ([`mod@metrics`]) and
//! health and status for applications and probes ([`health`]).
//!
//! **Why the `metrics` crate.** It is a facade, like `log`: the library records,
//! the application picks the exporter (`metrics-exporter-prometheus` for a
//! `/metrics` endpoint, a StatsD or OpenTelemetry bridge, or none). Its handles
//! (`Counter`, `Gauge`, `Histogram`) are obtained once and are a branch on an
//! empty handle when no recorder is installed, so an application without metrics
//! pays almost nothing (besides that: clock reads around sends and handler runs,
//! reading a notification's timestamp, one read-locked look-up of a destination's
//! handles per send). The OpenTelemetry metrics API would tie every user to the
//! OpenTelemetry SDK and its exporter pipeline; through `metrics` they can still
//! reach OpenTelemetry (a bridge crate exists) without the library choosing.
//!
//! **Install the recorder before opening transports.** The framework obtains its
//! handles once, when a transport, listener, notifier, RPC client or server is
//! built (per destination, the first time it is used), never per event. Handles
//! obtained before a recorder was installed stay no-ops: install the recorder (e.g.
//! `PrometheusBuilder::new().install_recorder()`) first, then open transports.
//! [`metrics::describe`] describes every metric (unit and meaning) to the recorder.
//!
//! Names and attributes follow OpenTelemetry's semantic conventions for messaging
//! where a name exists; the others are under [`metrics::NAMESPACE`]. Every name and
//! attribute key is a constant in [`mod@metrics`]; `docs/observability.md` lists them.

pub mod health;
pub(crate) mod instruments;
pub mod metrics;

pub use health::{
    ConnectionState, ConnectionTracker, ErrorReport, RunState, ServiceStatus, TransportHealth,
};
