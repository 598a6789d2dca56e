//! One listener's subscription: receive from its pool's queues, track what is in
//! flight, ack, requeue, and hand back the unacknowledged on close or drop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use messaging_core::driver::{DeliveryTag, ReceivedRecord, Subscription};
use messaging_core::observability::metrics::Gauge;
use messaging_core::{Error, Result};
use tokio::time::Instant;

use crate::queue::{take_or_wait, Entry, Queue};

/// Hashes delivery tags (distinct integers from a counter) with one multiplication:
/// SipHash's protection against chosen keys buys nothing for them and cost more
/// than the rest of an ack.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct BuildTagHasher;

#[derive(Debug, Default)]
pub(crate) struct TagHasher(u64);

impl std::hash::BuildHasher for BuildTagHasher {
    type Hasher = TagHasher;
    fn build_hasher(&self) -> TagHasher {
        TagHasher(0)
    }
}

impl std::hash::Hasher for TagHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: spreads consecutive tags over the high bits too.
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[derive(Debug)]
pub(crate) struct MemorySubscription {
    queues: Vec<Arc<Queue>>,
    /// The queue depth gauge of each queue (same order), set on each receive.
    depth: Vec<Gauge>,
    inflight: Mutex<HashMap<u64, (usize, Entry), BuildTagHasher>>,
    next_tag: AtomicU64,
    next_queue: AtomicUsize,
    closed: AtomicBool,
    driver_closed: Arc<AtomicBool>,
}

impl MemorySubscription {
    pub(crate) fn new(
        queues: Vec<Arc<Queue>>,
        depth: Vec<Gauge>,
        driver_closed: Arc<AtomicBool>,
    ) -> Self {
        MemorySubscription {
            queues,
            depth,
            inflight: Mutex::new(HashMap::default()),
            next_tag: AtomicU64::new(1),
            next_queue: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            driver_closed,
        }
    }

    /// Take up to `max` records, visiting the queues round-robin. Synchronous, so a
    /// cancelled `receive` never loses what it took.
    fn take(&self, max: usize) -> Vec<ReceivedRecord> {
        let mut out = Vec::new();
        let n = self.queues.len();
        let start = self.next_queue.fetch_add(1, Ordering::Relaxed);
        let mut entries = Vec::new();
        let mut taken: Vec<(usize, Entry)> = Vec::new();
        for i in 0..n {
            if taken.len() >= max {
                break;
            }
            let idx = (start + i) % n;
            entries.clear();
            let left = self.queues[idx].pop_many(max - taken.len(), &mut entries);
            self.depth[idx].set(left as f64);
            taken.extend(entries.drain(..).map(|e| (idx, e)));
        }
        if taken.is_empty() {
            return out;
        }
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        for (idx, entry) in taken {
            let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
            out.push(ReceivedRecord {
                tag: DeliveryTag(tag),
                topic: entry.topic.clone(),
                body: entry.body.clone(),
            });
            inflight.insert(tag, (idx, entry));
        }
        out
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) || self.driver_closed.load(Ordering::Acquire) {
            Err(Error::closed("memory subscription"))
        } else {
            Ok(())
        }
    }

    fn give_back(&self, tags: Option<&[DeliveryTag]>) {
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        let mut back: Vec<(usize, Entry)> = match tags {
            Some(tags) => tags.iter().filter_map(|t| inflight.remove(&t.0)).collect(),
            None => inflight.drain().map(|(_, v)| v).collect(),
        };
        drop(inflight);
        back.sort_by_key(|(idx, _)| *idx);
        for (idx, entry) in back {
            self.queues[idx].push_back_unbounded([entry]);
        }
    }
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<ReceivedRecord>> {
        let signals: Vec<&tokio::sync::Notify> = self.queues.iter().map(|q| &q.readable).collect();
        take_or_wait(
            &signals,
            Instant::now() + wait,
            || self.check_open(),
            || self.take(max),
        )
        .await
    }

    async fn ack(&self, tags: &[DeliveryTag]) -> Result<()> {
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        for t in tags {
            inflight.remove(&t.0);
        }
        Ok(())
    }

    async fn requeue(&self, tags: &[DeliveryTag]) -> Result<()> {
        self.give_back(Some(tags));
        Ok(())
    }

    async fn close(&self, _timeout: Duration) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        self.give_back(None);
        Ok(())
    }

    /// What the pool's queues hold (not yet taken by any member).
    fn lag(&self) -> Option<u64> {
        Some(self.queues.iter().map(|q| q.len() as u64).sum())
    }
}

impl Drop for MemorySubscription {
    fn drop(&mut self) {
        // A listener that vanished without closing must not lose what it held.
        self.give_back(None);
    }
}
