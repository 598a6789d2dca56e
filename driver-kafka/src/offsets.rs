//! Which offsets of a consumer's partitions may be committed, and which records to
//! deliver again.
//!
//! Records of one partition are fetched in offset order but handled concurrently, so
//! they are acknowledged in any order. The committable position of a partition is
//! the first offset not yet acknowledged: everything before it was handled. Records
//! fetched but not yet handed to the listener count as not acknowledged.
//!
//! A requeued record is delivered again by rewinding the partition to it (a seek):
//! the records re-fetched after it that were already delivered (acknowledged or
//! still in flight) are skipped, so only requeued records come back, and they stay
//! uncommitted until handled.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use messaging_core::DeliveryTag;

/// A topic partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TopicPartition {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
}

impl TopicPartition {
    pub(crate) fn new(topic: &str, partition: i32) -> Self {
        TopicPartition {
            topic: Arc::from(topic),
            partition,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Handed out under this tag, not acknowledged yet.
    Delivered(DeliveryTag),
    /// To be delivered again once the partition is re-fetched from it.
    Requeued,
}

#[derive(Debug, Default)]
struct PartitionState {
    /// Offsets not acknowledged yet.
    outstanding: BTreeMap<i64, Slot>,
    /// The highest offset ever delivered in this assignment.
    highest: Option<i64>,
    /// The offset the fetcher hands out next (after the last fetched one, or a seek).
    next_fetch: Option<i64>,
    /// A rewind to ask the consumer for.
    pending_seek: Option<i64>,
    /// The last position stored for commit (at first, where fetching started).
    stored: Option<i64>,
}

impl PartitionState {
    fn commit_point(&self) -> Option<i64> {
        match self.outstanding.keys().next() {
            Some(first) => Some(*first),
            None => self.highest.map(|h| h + 1),
        }
    }

    /// A new position to store, if the committable position moved forward.
    fn advance(&mut self) -> Option<i64> {
        let point = self.commit_point()?;
        if self.stored.is_some_and(|s| s >= point) {
            return None;
        }
        self.stored = Some(point);
        Some(point)
    }
}

/// What to do with a fetched record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fetched {
    /// Deliver it under this tag.
    Deliver(DeliveryTag),
    /// Already delivered in this assignment (re-fetched after a rewind): skip it.
    Skip,
}

/// The per-partition bookkeeping of one consumer.
#[derive(Debug, Default)]
pub(crate) struct OffsetTracker {
    partitions: HashMap<TopicPartition, PartitionState>,
    tags: HashMap<DeliveryTag, (TopicPartition, i64)>,
    next_tag: u64,
}

impl OffsetTracker {
    /// The partition was assigned: start afresh.
    pub(crate) fn assign(&mut self, tp: &TopicPartition) {
        self.revoke(tp);
        self.partitions
            .insert(tp.clone(), PartitionState::default());
    }

    /// The partition was revoked: forget it. Acknowledgements of its records are ignored
    /// from now on (the records go to the partition's next owner).
    pub(crate) fn revoke(&mut self, tp: &TopicPartition) {
        if let Some(state) = self.partitions.remove(tp) {
            for slot in state.outstanding.values() {
                if let Slot::Delivered(tag) = slot {
                    self.tags.remove(tag);
                }
            }
        }
    }

    /// Forget every partition.
    pub(crate) fn clear(&mut self) {
        self.partitions.clear();
        self.tags.clear();
    }

    /// Whether the partition is tracked (assigned).
    pub(crate) fn is_assigned(&self, tp: &TopicPartition) -> bool {
        self.partitions.contains_key(tp)
    }

    /// A record was taken from the consumer.
    pub(crate) fn fetched(&mut self, tp: &TopicPartition, offset: i64) -> Fetched {
        let state = self.partitions.entry(tp.clone()).or_default();
        state.next_fetch = Some(offset + 1);
        // The partition started here: committing this position would change nothing.
        state.stored.get_or_insert(offset);
        let deliver = match state.outstanding.get(&offset) {
            Some(Slot::Requeued) => true,
            Some(Slot::Delivered(_)) => false,
            None => state.highest.is_none_or(|h| offset > h),
        };
        if !deliver {
            return Fetched::Skip;
        }
        state.highest = Some(state.highest.map_or(offset, |h| h.max(offset)));
        self.next_tag += 1;
        let tag = DeliveryTag(self.next_tag);
        state.outstanding.insert(offset, Slot::Delivered(tag));
        self.tags.insert(tag, (tp.clone(), offset));
        Fetched::Deliver(tag)
    }

    fn take(&mut self, tag: DeliveryTag) -> Option<(TopicPartition, i64, &mut PartitionState)> {
        let (tp, offset) = self.tags.remove(&tag)?;
        let state = self.partitions.get_mut(&tp)?;
        match state.outstanding.get(&offset) {
            Some(Slot::Delivered(t)) if *t == tag => Some((tp, offset, state)),
            _ => None,
        }
    }

    /// The record was handled. Returns a new position to store for its partition when
    /// the contiguous handled prefix grew.
    pub(crate) fn ack(&mut self, tag: DeliveryTag) -> Option<(TopicPartition, i64)> {
        let (tp, offset, state) = self.take(tag)?;
        state.outstanding.remove(&offset);
        state.advance().map(|p| (tp, p))
    }

    /// Deliver the record again. Returns false for an unknown (revoked, settled) tag.
    pub(crate) fn requeue(&mut self, tag: DeliveryTag) -> bool {
        let Some((_, offset, state)) = self.take(tag) else {
            return false;
        };
        state.outstanding.insert(offset, Slot::Requeued);
        if state.next_fetch.is_none_or(|next| offset < next) {
            state.pending_seek = Some(state.pending_seek.map_or(offset, |s| s.min(offset)));
        }
        true
    }

    /// The rewinds to perform now.
    pub(crate) fn take_seeks(&mut self) -> Vec<(TopicPartition, i64)> {
        let mut out: Vec<_> = self
            .partitions
            .iter_mut()
            .filter_map(|(tp, s)| s.pending_seek.take().map(|o| (tp.clone(), o)))
            .collect();
        out.sort();
        out
    }

    /// The consumer rewound the partition to `offset`.
    pub(crate) fn seeked(&mut self, tp: &TopicPartition, offset: i64) {
        if let Some(s) = self.partitions.get_mut(tp) {
            s.next_fetch = Some(offset);
            // A rewind asked for meanwhile (against the old position) to a later offset
            // is covered by this one; seeking there would skip the records in between.
            if s.pending_seek.is_some_and(|p| p >= offset) {
                s.pending_seek = None;
            }
        }
    }

    /// The rewind failed: try again later.
    pub(crate) fn seek_failed(&mut self, tp: &TopicPartition, offset: i64) {
        if let Some(s) = self.partitions.get_mut(tp) {
            s.pending_seek = Some(s.pending_seek.map_or(offset, |p| p.min(offset)));
        }
    }

    /// Records delivered or requeued and not acknowledged yet.
    pub(crate) fn outstanding(&self) -> usize {
        self.partitions.values().map(|s| s.outstanding.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    fn deliver(t: &mut OffsetTracker, p: i32, offset: i64) -> DeliveryTag {
        match t.fetched(&tp(p), offset) {
            Fetched::Deliver(tag) => tag,
            Fetched::Skip => panic!("offset {offset} skipped"),
        }
    }

    #[test]
    fn commits_only_the_contiguous_prefix() {
        let mut t = OffsetTracker::default();
        t.assign(&tp(0));
        let tags: Vec<_> = (10..15).map(|o| deliver(&mut t, 0, o)).collect();
        // Out of order: 11 and 12 are handled, 10 is not: nothing to commit.
        assert_eq!(t.ack(tags[1]), None);
        assert_eq!(t.ack(tags[2]), None);
        // 10 handled: 10, 11, 12 are done, 13 is next.
        assert_eq!(t.ack(tags[0]), Some((tp(0), 13)));
        assert_eq!(t.ack(tags[4]), None);
        assert_eq!(t.ack(tags[3]), Some((tp(0), 15)));
        assert_eq!(t.outstanding(), 0);
        // Acking twice does nothing.
        assert_eq!(t.ack(tags[3]), None);
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = OffsetTracker::default();
        let a = deliver(&mut t, 0, 0);
        let b = deliver(&mut t, 1, 7);
        let a2 = deliver(&mut t, 0, 1);
        assert_eq!(t.ack(b), Some((tp(1), 8)));
        assert_eq!(t.ack(a2), None);
        assert_eq!(t.ack(a), Some((tp(0), 2)));
    }

    #[test]
    fn gaps_in_offsets_are_fine() {
        // Compacted topics and transaction markers leave holes.
        let mut t = OffsetTracker::default();
        let a = deliver(&mut t, 0, 3);
        let b = deliver(&mut t, 0, 9);
        assert_eq!(t.ack(a), Some((tp(0), 9)));
        assert_eq!(t.ack(b), Some((tp(0), 10)));
    }

    #[test]
    fn revoked_partitions_ignore_late_acks() {
        let mut t = OffsetTracker::default();
        t.assign(&tp(0));
        let a = deliver(&mut t, 0, 0);
        t.revoke(&tp(0));
        assert!(!t.is_assigned(&tp(0)));
        assert_eq!(t.ack(a), None);
        assert!(!t.requeue(a));
        // Re-assigned later: a fresh start, old tags stay dead.
        t.assign(&tp(0));
        let b = deliver(&mut t, 0, 0);
        assert_ne!(a, b);
        assert_eq!(t.ack(a), None);
        assert_eq!(t.ack(b), Some((tp(0), 1)));
    }

    #[test]
    fn requeue_rewinds_and_redelivers_only_that_record() {
        let mut t = OffsetTracker::default();
        let tags: Vec<_> = (0..5).map(|o| deliver(&mut t, 0, o)).collect();
        assert_eq!(t.ack(tags[0]), Some((tp(0), 1)));
        assert_eq!(t.ack(tags[2]), None);
        assert!(t.requeue(tags[1]));
        assert!(!t.requeue(tags[1]), "a tag settles once");
        assert_eq!(t.take_seeks(), vec![(tp(0), 1)]);
        assert_eq!(t.take_seeks(), vec![]);
        t.seeked(&tp(0), 1);
        // Re-fetch from 1: 1 comes back under a new tag, 2 (handled) and 3, 4 (in flight) are skipped.
        let again = deliver(&mut t, 0, 1);
        assert_ne!(again, tags[1]);
        for o in 2..5 {
            assert_eq!(t.fetched(&tp(0), o), Fetched::Skip);
        }
        // New records continue normally.
        let five = deliver(&mut t, 0, 5);
        assert_eq!(t.ack(again), Some((tp(0), 3)));
        assert_eq!(t.ack(tags[3]), Some((tp(0), 4)));
        assert_eq!(t.ack(tags[4]), Some((tp(0), 5)));
        assert_eq!(t.ack(five), Some((tp(0), 6)));
    }

    #[test]
    fn requeues_while_rewinding_seek_to_the_lowest() {
        let mut t = OffsetTracker::default();
        let tags: Vec<_> = (0..6).map(|o| deliver(&mut t, 0, o)).collect();
        t.requeue(tags[4]);
        t.requeue(tags[2]);
        assert_eq!(t.take_seeks(), vec![(tp(0), 2)]);
        t.seeked(&tp(0), 2);
        let two = deliver(&mut t, 0, 2);
        // 5 is requeued while the re-fetch is at 3: the re-fetch reaches it, no new seek.
        t.requeue(tags[5]);
        assert_eq!(t.take_seeks(), vec![]);
        // 0 is requeued behind the re-fetch: a new seek.
        t.requeue(tags[0]);
        assert_eq!(t.take_seeks(), vec![(tp(0), 0)]);
        t.seek_failed(&tp(0), 0);
        assert_eq!(t.take_seeks(), vec![(tp(0), 0)]);
        t.seeked(&tp(0), 0);
        let zero = deliver(&mut t, 0, 0);
        assert_eq!(t.fetched(&tp(0), 1), Fetched::Skip);
        assert_eq!(t.fetched(&tp(0), 2), Fetched::Skip);
        assert_eq!(t.fetched(&tp(0), 3), Fetched::Skip);
        let four = deliver(&mut t, 0, 4);
        let five = deliver(&mut t, 0, 5);
        for tag in [zero, tags[1], two, tags[3], four] {
            t.ack(tag);
        }
        assert_eq!(t.ack(five), Some((tp(0), 6)));
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn a_rewind_covers_later_requeues_made_while_it_ran() {
        let mut t = OffsetTracker::default();
        let tags: Vec<_> = (0..10).map(|o| deliver(&mut t, 0, o)).collect();
        t.requeue(tags[1]);
        assert_eq!(t.take_seeks(), vec![(tp(0), 1)]);
        // While the consumer seeks to 1, 5 is requeued against the old position (10).
        t.requeue(tags[5]);
        t.seeked(&tp(0), 1);
        // The rewind to 1 re-fetches 5 too: no second seek (it would skip 1..5).
        assert_eq!(t.take_seeks(), vec![]);
        let one = deliver(&mut t, 0, 1);
        t.requeue(tags[3]);
        assert_eq!(t.take_seeks(), vec![], "3 is ahead of the re-fetch");
        assert_eq!(t.fetched(&tp(0), 2), Fetched::Skip);
        let three = deliver(&mut t, 0, 3);
        assert_eq!(t.fetched(&tp(0), 4), Fetched::Skip);
        let five = deliver(&mut t, 0, 5);
        assert!(![one, three, five].contains(&tags[1]));
    }

    #[test]
    fn requeued_records_block_the_commit() {
        let mut t = OffsetTracker::default();
        let a = deliver(&mut t, 0, 0);
        let b = deliver(&mut t, 0, 1);
        t.requeue(a);
        assert_eq!(t.ack(b), None, "0 is not handled yet");
        t.clear();
        assert_eq!(t.outstanding(), 0);
    }

    /// A simulated consumer: random fetches, acks, requeues and rewinds (some failing,
    /// some racing with requeues). Every record ends up handled exactly once, and the
    /// stored position never passes a record that was not handled.
    #[test]
    fn random_interleavings_handle_everything_once() {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _round in 0..200 {
            const N: i64 = 40;
            let mut t = OffsetTracker::default();
            t.assign(&tp(0));
            let mut pos = 0i64;
            let mut inflight: Vec<(DeliveryTag, i64)> = Vec::new();
            let mut handled = vec![0u32; N as usize];
            let mut stored = 0i64;
            let mut pending: Vec<(TopicPartition, i64)> = Vec::new();
            let mut steps = 0;
            while handled.contains(&0) {
                steps += 1;
                assert!(steps < 100_000, "no progress");
                match rand(6) {
                    0 | 1 if pos < N => {
                        if let Fetched::Deliver(tag) = t.fetched(&tp(0), pos) {
                            inflight.push((tag, pos));
                        }
                        pos += 1;
                    }
                    2 | 3 if !inflight.is_empty() => {
                        let (tag, offset) =
                            inflight.swap_remove(rand(inflight.len() as u64) as usize);
                        if rand(3) == 0 {
                            assert!(t.requeue(tag));
                        } else {
                            handled[offset as usize] += 1;
                            if let Some((_, p)) = t.ack(tag) {
                                assert!(p > stored);
                                stored = p;
                            }
                            let first_unhandled =
                                handled.iter().position(|h| *h == 0).map_or(N, |i| i as i64);
                            assert!(
                                stored <= first_unhandled,
                                "stored {stored} passes {first_unhandled}"
                            );
                        }
                    }
                    // The consumer thread takes the rewinds, then performs them.
                    4 if pending.is_empty() => pending = t.take_seeks(),
                    _ => {
                        for (p, o) in pending.drain(..) {
                            if rand(4) == 0 {
                                t.seek_failed(&p, o);
                            } else {
                                pos = o;
                                t.seeked(&p, o);
                            }
                        }
                    }
                }
            }
            assert!(handled.iter().all(|h| *h == 1), "{handled:?}");
            assert!(inflight.is_empty());
            assert_eq!(t.outstanding(), 0);
        }
    }
}
