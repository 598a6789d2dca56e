//! Endpoints: the handlers a listener dispatches to, with their priorities and filter.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;

use super::filter::NotificationFilter;
use crate::error::{BoxError, Error, Result};
use crate::notification::Notification;
use crate::priority::Priority;

/// What a handler decided about a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerOutcome {
    /// Done: acknowledge it.
    Handled,
    /// Deliver it again later (only when the listener allows requeue; otherwise it is
    /// acknowledged and the refusal logged).
    Requeue,
}

/// The result of a handler: an error counts as [`HandlerOutcome::Requeue`].
pub type HandlerResult = Result<HandlerOutcome, BoxError>;

/// Handles notifications one at a time.
#[async_trait]
pub trait NotificationHandler: Send + Sync + 'static {
    /// Handle one notification.
    async fn handle(&self, notification: Arc<Notification>) -> HandlerResult;
}

/// Handles notifications in batches (for a batch listener).
#[async_trait]
pub trait BatchNotificationHandler: Send + Sync + 'static {
    /// Handle a batch; the outcome applies to every notification in it.
    async fn handle_batch(&self, notifications: Vec<Arc<Notification>>) -> HandlerResult;
}

/// A handler made from an async closure: a [`NotificationHandler`] for
/// `Fn(Arc<Notification>) -> Future`, a [`BatchNotificationHandler`] for
/// `Fn(Vec<Arc<Notification>>) -> Future`.
pub struct FnHandler<F>(pub F);

impl<F> fmt::Debug for FnHandler<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnHandler")
    }
}

#[async_trait]
impl<F, Fut> NotificationHandler for FnHandler<F>
where
    F: Fn(Arc<Notification>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    async fn handle(&self, notification: Arc<Notification>) -> HandlerResult {
        (self.0)(notification).await
    }
}

#[async_trait]
impl<F, Fut> BatchNotificationHandler for FnHandler<F>
where
    F: Fn(Vec<Arc<Notification>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    async fn handle_batch(&self, notifications: Vec<Arc<Notification>>) -> HandlerResult {
        (self.0)(notifications).await
    }
}

/// A handler whose closure takes the payload as a `T` of your own (see
/// [`NotificationEndpoint::typed`] and [`BatchEndpoint::typed_batch`]).
pub struct TypedHandler<T, F> {
    f: F,
    // `fn() -> T`: the handler holds no `T`, so it is `Send + Sync` for every `T`.
    payload: PhantomData<fn() -> T>,
}

impl<T, F> fmt::Debug for TypedHandler<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TypedHandler<{}>", std::any::type_name::<T>())
    }
}

/// The payload as a `T`, or the error that makes the listener skip the record.
fn typed_payload<T: DeserializeOwned>(n: &Notification) -> Result<T> {
    n.payload.deserialize().map_err(|e| {
        Error::decode(format!(
            "payload of {} does not fit the type {} of a typed endpoint",
            n.event_type,
            std::any::type_name::<T>()
        ))
        .with_source(e)
    })
}

/// Whether a payload fits `T` (what a typed endpoint checks before dispatch).
fn check_payload<T: DeserializeOwned>(n: &Notification) -> Result<()> {
    typed_payload::<T>(n).map(drop)
}

#[async_trait]
impl<T, F, Fut> NotificationHandler for TypedHandler<T, F>
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(T, Arc<Notification>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    async fn handle(&self, notification: Arc<Notification>) -> HandlerResult {
        let payload = typed_payload(&notification)?;
        (self.f)(payload, notification).await
    }
}

#[async_trait]
impl<T, F, Fut> BatchNotificationHandler for TypedHandler<T, F>
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(Vec<(T, Arc<Notification>)>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    async fn handle_batch(&self, notifications: Vec<Arc<Notification>>) -> HandlerResult {
        let typed = notifications
            .into_iter()
            .map(|n| typed_payload(&n).map(|payload| (payload, n)))
            .collect::<Result<Vec<_>>>()?;
        (self.f)(typed).await
    }
}

/// Checks that a payload fits the type of a typed endpoint.
pub(crate) type PayloadCheck = fn(&Notification) -> Result<()>;

/// A handler plus the priorities it handles and an optional filter.
#[derive(Clone)]
pub struct Endpoint<H: ?Sized> {
    pub(crate) handler: Arc<H>,
    pub(crate) priorities: Vec<Priority>,
    pub(crate) filter: NotificationFilter,
    /// Set for typed endpoints: the listener runs it before dispatch and skips a
    /// record whose payload does not fit, like a foreign record.
    pub(crate) payload_check: Option<PayloadCheck>,
}

impl<H: ?Sized> fmt::Debug for Endpoint<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("priorities", &self.priorities)
            .field("filter", &self.filter)
            .finish()
    }
}

/// An endpoint of a (one-at-a-time) notification listener.
pub type NotificationEndpoint = Endpoint<dyn NotificationHandler>;
/// An endpoint of a batch listener.
pub type BatchEndpoint = Endpoint<dyn BatchNotificationHandler>;

impl<H: ?Sized> Endpoint<H> {
    /// Handle only these priorities (default: all of them).
    pub fn priorities(mut self, priorities: impl IntoIterator<Item = Priority>) -> Self {
        self.priorities = priorities.into_iter().collect();
        self
    }

    /// Receive only notifications that pass `filter`.
    pub fn filter(mut self, filter: NotificationFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Whether this endpoint takes the notification (priority and filter).
    pub fn accepts(&self, n: &Notification) -> bool {
        self.priorities.contains(&n.priority) && self.filter.matches(n)
    }

    /// The priorities handled.
    pub fn handled_priorities(&self) -> &[Priority] {
        &self.priorities
    }

    /// Why this endpoint cannot take `n` although it accepts it: the payload does
    /// not fit its type (`Ok` for endpoints that are not typed, and for
    /// notifications this endpoint does not accept).
    pub(crate) fn check_payload(&self, n: &Notification) -> Result<()> {
        match self.payload_check {
            Some(check) if self.accepts(n) => check(n),
            _ => Ok(()),
        }
    }

    fn with_handler(handler: Arc<H>, payload_check: Option<PayloadCheck>) -> Self {
        Endpoint {
            handler,
            priorities: Priority::ALL.to_vec(),
            filter: NotificationFilter::new(),
            payload_check,
        }
    }
}

impl NotificationEndpoint {
    /// An endpoint for a handler, for every priority.
    pub fn new(handler: impl NotificationHandler) -> Self {
        Self::with_handler(Arc::new(handler), None)
    }

    /// An endpoint whose async closure takes the payload deserialized into `T`
    /// (straight from its JSON text) and the notification, for every priority.
    ///
    /// A notification this endpoint accepts but whose payload does not fit `T` is
    /// handled like a foreign record: logged, counted in
    /// [`ListenerCounters::skipped`](super::ListenerCounters::skipped), copied to
    /// the dead-letter topic if there is one, and acknowledged; no endpoint sees it.
    pub fn typed<T, F, Fut>(f: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T, Arc<Notification>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let handler = TypedHandler {
            f,
            payload: PhantomData,
        };
        Self::with_handler(Arc::new(handler), Some(check_payload::<T>))
    }

    /// An endpoint for an async closure, for every priority.
    pub fn from_fn<F, Fut>(f: F) -> Self
    where
        F: Fn(Arc<Notification>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        Self::new(FnHandler(f))
    }
}

impl BatchEndpoint {
    /// A batch endpoint for a handler, for every priority.
    pub fn new_batch(handler: impl BatchNotificationHandler) -> Self {
        Self::with_handler(Arc::new(handler), None)
    }

    /// A batch endpoint whose async closure takes `(payload as T, notification)`
    /// pairs, for every priority. A notification whose payload does not fit `T` is
    /// skipped like a foreign record before it joins a batch (see
    /// [`NotificationEndpoint::typed`]).
    pub fn typed_batch<T, F, Fut>(f: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(Vec<(T, Arc<Notification>)>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let handler = TypedHandler {
            f,
            payload: PhantomData,
        };
        Self::with_handler(Arc::new(handler), Some(check_payload::<T>))
    }

    /// A batch endpoint for an async closure, for every priority.
    pub fn from_batch_fn<F, Fut>(f: F) -> Self
    where
        F: Fn(Vec<Arc<Notification>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        Self::new_batch(FnHandler(f))
    }
}
