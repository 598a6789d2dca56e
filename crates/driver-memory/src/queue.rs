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

    /// Take up to `max` records.
    pub(crate) fn pop_many(&self, max: usize, out: &mut Vec<Entry>) {
        let mut items = self.lock();
        let n = max.min(items.len());
        out.extend(items.drain(..n));
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
