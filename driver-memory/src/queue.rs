//! A bounded queue of records shared by the members of one pool.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

/// One queued record.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) topic: Arc<str>,
    pub(crate) body: Bytes,
}

#[derive(Debug)]
pub(crate) struct Queue {
    items: Mutex<VecDeque<Entry>>,
    pub(crate) readable: Notify,
    capacity: usize,
}

impl Queue {
    pub(crate) fn new(capacity: usize) -> Self {
        Queue {
            items: Mutex::new(VecDeque::new()),
            readable: Notify::new(),
            capacity,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, VecDeque<Entry>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn has_room(&self, items: &VecDeque<Entry>) -> bool {
        items.len() < self.capacity
    }

    /// Take up to `max` records; returns how many are left.
    pub(crate) fn pop_many(&self, max: usize, out: &mut Vec<Entry>) -> usize {
        let mut items = self.lock();
        let n = max.min(items.len());
        out.extend(items.drain(..n));
        items.len()
    }

    /// Put records back (requeue, or unacknowledged at close); never refused.
    pub(crate) fn push_back_unbounded(&self, entries: impl IntoIterator<Item = Entry>) {
        self.lock().extend(entries);
        self.readable.notify_waiters();
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Take records with `take`, waiting (until `deadline`) for any of `signals` when
/// there are none. Interest is registered before the second look, so a push between
/// the look and the wait is never missed; `check` runs before every look (closed?).
/// Returns an empty vector at the deadline.
pub(crate) async fn take_or_wait<T>(
    signals: &[&Notify],
    deadline: tokio::time::Instant,
    check: impl Fn() -> messaging_core::Result<()>,
    take: impl Fn() -> Vec<T>,
) -> messaging_core::Result<Vec<T>> {
    loop {
        check()?;
        let got = take();
        if !got.is_empty() {
            return Ok(got);
        }
        let mut waits: Vec<std::pin::Pin<Box<tokio::sync::futures::Notified<'_>>>> =
            signals.iter().map(|n| Box::pin(n.notified())).collect();
        for w in &mut waits {
            w.as_mut().enable();
        }
        let got = take();
        if !got.is_empty() {
            return Ok(got);
        }
        if waits.is_empty() {
            tokio::time::sleep_until(deadline).await;
            return Ok(Vec::new());
        }
        if tokio::time::timeout_at(deadline, futures::future::select_all(waits))
            .await
            .is_err()
        {
            check()?;
            return Ok(Vec::new());
        }
    }
}
