//! Endpoints: the handlers a listener dispatches to, with their priorities and filter.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

use super::filter::NotificationFilter;
use crate::error::BoxError;
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

/// A handler plus the priorities it handles and an optional filter.
#[derive(Clone)]
pub struct Endpoint<H: ?Sized> {
    pub(crate) handler: Arc<H>,
    pub(crate) priorities: Vec<Priority>,
    pub(crate) filter: NotificationFilter,
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
}

impl NotificationEndpoint {
    /// An endpoint for a handler, for every priority.
    pub fn new(handler: impl NotificationHandler) -> Self {
        Endpoint {
            handler: Arc::new(handler),
            priorities: Priority::ALL.to_vec(),
            filter: NotificationFilter::new(),
        }
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
        Endpoint {
            handler: Arc::new(handler),
            priorities: Priority::ALL.to_vec(),
            filter: NotificationFilter::new(),
        }
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
