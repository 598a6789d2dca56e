//! The in-process broker: topics, pools and their queues.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use messaging_core::driver::{OutgoingRecord, PendingDelivery, StartPosition, SubscriptionSpec};
use messaging_core::observability::metrics;
use messaging_core::{Error, ErrorKind, Result};
use smallvec::SmallVec;

use crate::queue::{Entry, Queue};
use crate::subscription::MemorySubscription;
use crate::DEFAULT_POOL;

#[derive(Debug)]
struct Topic {
    name: Arc<str>,
    pools: RwLock<BTreeMap<String, Arc<Queue>>>,
    /// What was sent before any pool existed; the first pool takes it over.
    unclaimed: Mutex<Option<Arc<Queue>>>,
}

/// One named broker instance within this process.
#[derive(Debug)]
pub struct MemoryBroker {
    name: String,
    capacity: usize,
    topics: RwLock<HashMap<String, Arc<Topic>, foldhash::fast::RandomState>>,
}

impl MemoryBroker {
    /// The instance called `name`, created on first use with `capacity` per queue.
    pub fn instance(name: &str, capacity: usize) -> Arc<MemoryBroker> {
        static INSTANCES: OnceLock<Mutex<HashMap<String, Arc<MemoryBroker>>>> = OnceLock::new();
        let mut map = INSTANCES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(MemoryBroker {
                    name: name.to_owned(),
                    capacity,
                    topics: RwLock::default(),
                })
            })
            .clone()
    }

    /// The instance's name (empty for `memory://`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many records wait in `topic` for `pool` (`None`: no such pool).
    pub fn queued(&self, topic: &str, pool: &str) -> Option<usize> {
        let topic = self
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
            .cloned()?;
        let pools = topic.pools.read().unwrap_or_else(|e| e.into_inner());
        pools.get(pool).map(|q| q.len())
    }

    fn topic(&self, name: &str) -> Arc<Topic> {
        if let Some(t) = self
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return t.clone();
        }
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        topics
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Topic {
                    name: name.into(),
                    pools: RwLock::default(),
                    unclaimed: Mutex::default(),
                })
            })
            .clone()
    }

    /// Put each record in every pool's queue of its topic: one outcome per record,
    /// in order. Consecutive records of one topic go in under one lock per queue.
    pub(crate) fn publish_batch(&self, batch: &[OutgoingRecord]) -> Vec<Result<PendingDelivery>> {
        let mut out = Vec::with_capacity(batch.len());
        let mut rest = batch;
        while let Some(first) = rest.first() {
            let run = rest.iter().take_while(|r| r.topic == first.topic).count();
            let (now, later) = rest.split_at(run);
            self.publish_run(&first.topic, now, &mut out);
            rest = later;
        }
        out
    }

    /// Put a copy of each record of `run` (all for `topic_name`) in every pool's
    /// queue of the topic, or refuse it (`ResourceExhausted`) if any of them is
    /// full: all or nothing, per record.
    fn publish_run(
        &self,
        topic_name: &str,
        run: &[OutgoingRecord],
        out: &mut Vec<Result<PendingDelivery>>,
    ) {
        let topic = self.topic(topic_name);
        let pools = topic.pools.read().unwrap_or_else(|e| e.into_inner());
        let unclaimed;
        // Mostly one pool: no list on the heap.
        let queues: SmallVec<[&Arc<Queue>; 2]> = if pools.is_empty() {
            unclaimed = topic
                .unclaimed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(|| Arc::new(Queue::new(self.capacity)))
                .clone();
            smallvec::smallvec![&unclaimed]
        } else {
            pools.values().collect()
        };
        // Lock every queue (in the map's order, so concurrent senders agree) before
        // pushing anything, so a full queue refuses the record for every pool.
        let mut guards: SmallVec<[_; 2]> = queues.iter().map(|q| (*q, q.lock())).collect();
        for record in run {
            if guards.iter().any(|(q, items)| !q.has_room(items)) {
                out.push(Err(Error::new(
                    ErrorKind::ResourceExhausted,
                    format!(
                        "memory queue for {topic_name} is full ({} records)",
                        self.capacity
                    ),
                )));
                continue;
            }
            for (_, items) in guards.iter_mut() {
                items.push_back(Entry {
                    topic: topic.name.clone(),
                    body: record.body.clone(),
                });
            }
            out.push(Ok(PendingDelivery::Delivered));
        }
        drop(guards);
        for q in queues {
            q.readable.notify_waiters();
        }
    }

    pub(crate) fn subscribe(
        &self,
        spec: &SubscriptionSpec,
        driver_closed: Arc<AtomicBool>,
    ) -> MemorySubscription {
        let pool = spec.pool.clone().unwrap_or_else(|| DEFAULT_POOL.to_owned());
        let mut queues = Vec::with_capacity(spec.topics.len());
        for name in &spec.topics {
            let topic = self.topic(name);
            let mut pools = topic.pools.write().unwrap_or_else(|e| e.into_inner());
            let first_pool = pools.is_empty();
            let queue = pools
                .entry(pool.clone())
                .or_insert_with(|| {
                    let unclaimed = topic
                        .unclaimed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take();
                    match unclaimed {
                        Some(q) if first_pool && spec.start != StartPosition::Latest => q,
                        _ => Arc::new(Queue::new(self.capacity)),
                    }
                })
                .clone();
            queues.push(queue);
        }
        let depth = spec
            .topics
            .iter()
            .map(|name| {
                let labels = metrics::destination_labels("memory", name, Some(&pool));
                metrics::gauge(metrics::QUEUE_DEPTH, &labels)
            })
            .collect();
        MemorySubscription::new(queues, depth, driver_closed)
    }
}
