//! # messaging-core
//!
//! The transport-agnostic notification API of this framework, wire-compatible with
//! OpenStack's oslo.messaging:
//!
//! - [`TransportUrl`]: oslo's URL grammar; [`DriverRegistry`] picks a driver by scheme.
//! - [`Transport`]: an open driver plus the send path (backpressure, retries, receipts).
//! - [`Notifier`]: emits notifications of every [`Priority`] through sinks.
//! - [`NotificationListener`]: dispatches notifications to endpoints, with filters,
//!   pools, batches, requeue and a graceful stop.
//! - [`RpcClient`] and [`RpcServer`]: RPC calls, casts and fanout, dispatched to
//!   [`RpcEndpoint`]s by namespace and version (see [`rpc`]).
//! - [`envelope`]: the oslo v2 wire format.
//! - [`Driver`]: the small trait a transport implements.
//!
//! ```
//! # async fn demo(transport: messaging_core::Transport) -> messaging_core::Result<()> {
//! use messaging_core::{Context, HandlerOutcome, NotificationEndpoint, NotificationListener, Notifier, Target};
//! let listener = NotificationListener::builder(&transport)
//!     .target(Target::new("notifications"))
//!     .endpoint(NotificationEndpoint::from_fn(|n| async move {
//!         println!("{} from {}", n.event_type, n.publisher_id);
//!         Ok(HandlerOutcome::Handled)
//!     }))
//!     .build()?;
//! listener.start().await?;
//! let notifier = Notifier::builder().publisher_id("compute.host1").transport(&transport).build()?;
//! notifier.info(&Context::new(), "compute.instance.create.end", &serde_json::json!({"id": 1}))
//!     .await?          // the transport accepted it
//!     .delivered()
//!     .await?;         // the broker acknowledged it
//! listener.stop_and_wait().await?;
//! # Ok(()) }
//! ```

pub mod config;
pub mod driver;
pub mod envelope;
pub mod error;
mod lifecycle;
pub mod listener;
pub mod notification;
pub mod notifier;
pub mod observability;
pub mod options;
pub mod priority;
pub mod registry;
pub mod retry;
pub mod rpc;
mod service;
pub mod target;
pub mod transport;
pub mod url;

#[doc(hidden)]
pub mod __private;

pub use config::MessagingConfig;
pub use driver::{
    Capabilities, CloseReport, DeliveryTag, Dialect, Driver, DriverFactory, OutgoingRecord,
    PendingDelivery, ReceivedRecord, StartPosition, Subscription, SubscriptionSpec,
};
pub use error::{BoxError, Error, ErrorKind, Result};
pub use listener::{
    BatchEndpoint, BatchNotificationHandler, HandlerOutcome, HandlerResult, ListenerCounters,
    NotificationEndpoint, NotificationFilter, NotificationHandler, NotificationListener, Target,
};
pub use notification::{
    Context, ContextSanitizer, Metadata, Notification, OutgoingNotification, Payload,
};
pub use notifier::{
    BulkOutcome, BulkReceipt, Destination, NotificationOutcome, NotificationSink, Notifier,
    NotifyReceipt, PartialFailure, RecordingSink, Resend,
};
pub use options::{DriverOptions, OptionKind, OptionSpec};
pub use priority::Priority;
pub use registry::DriverRegistry;
pub use retry::Retry;
pub use rpc::{RemoteError, RpcClient, RpcEndpoint, RpcServer};
pub use transport::{DeliveryReceipt, Transport, TransportCounters};
pub use url::{TransportHost, TransportUrl};
