//! The soak's accounts: every message id sent, its receipt, and every handling in
//! each pool, with the fault log that duplicates are attributed to, and the figures
//! over time.

use std::collections::BTreeMap;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

/// What the broker said about one sent notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Receipt {
    /// Sent, receipt not resolved yet.
    Pending,
    /// The broker has it: it must be handled in every pool.
    Accepted,
    /// Refused, after the notifier's retries: it may not arrive.
    Failed,
    /// The outcome is unknown (`OutcomeUnknown`): it may arrive, once.
    Unknown,
}

/// One handling of a message in a pool, as a member reported it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Handling {
    pub(crate) pool: usize,
    pub(crate) member: u32,
    pub(crate) notifier: usize,
    pub(crate) seq: u64,
    /// Microseconds since the Unix epoch: when it was sent, when it was handled.
    pub(crate) sent_us: u64,
    pub(crate) handled_us: u64,
}

/// A fault the soak caused, for attributing duplicates.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FaultEvent {
    /// `broker-restart`, `member-kill`, `member-pause`, `rebalance`.
    pub(crate) kind: &'static str,
    /// The pool it touched (`None`: every pool, a broker restart).
    pub(crate) pool: Option<usize>,
    /// Seconds since the soak started, and the same instant in µs since the epoch.
    pub(crate) at_secs: f64,
    #[serde(skip)]
    pub(crate) at_us: u64,
    /// When its effect is over (the member resumed, the new member joined), µs
    /// since the epoch.
    #[serde(skip)]
    pub(crate) until_us: u64,
}

/// A message handled twice in one pool: by which member, when (seconds into the
/// soak), the first time and again.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Duplicate {
    pub(crate) pool: usize,
    pub(crate) notifier: usize,
    pub(crate) seq: u64,
    pub(crate) first: (u32, f64),
    pub(crate) again: (u32, f64),
}

/// The first handling of one message in one pool.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    count: u8,
    member: u32,
    at_ms: u64,
}

/// Figures of one window of the soak.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Window {
    pub(crate) end_secs: f64,
    pub(crate) sent: u64,
    pub(crate) handled: u64,
    pub(crate) latency_p50_ms: f64,
    pub(crate) latency_p99_ms: f64,
    /// Resident memory of the soak process and of each member process alive.
    pub(crate) rss_mib: BTreeMap<String, f64>,
}

/// How much a window mutates while it is open.
struct Open {
    sent: u64,
    handled: u64,
    latency: Histogram<u64>,
}

impl Open {
    fn new() -> Open {
        Open {
            sent: 0,
            handled: 0,
            latency: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("valid histogram bounds"),
        }
    }
}

/// Every account of one soak.
pub(crate) struct Ledger {
    started: Instant,
    started_us: u64,
    receipts: Vec<Vec<Receipt>>,
    /// `slots[pool][notifier][seq]`.
    slots: Vec<Vec<Vec<Slot>>>,
    faults: Vec<FaultEvent>,
    duplicates: BTreeMap<&'static str, u64>,
    /// Handlings of ids never sent (a foreign record on the topic, a bad member).
    strays: u64,
    /// The first few unattributed duplicates, to look into.
    unattributed: Vec<Duplicate>,
    open: Open,
    windows: Vec<Window>,
    overall: Histogram<u64>,
    handled: Vec<u64>,
    /// When each member first handled a message, seconds into the soak.
    first_handled: BTreeMap<u32, f64>,
}

/// How a member process is named in the report's memory figures: `member-ID`.
pub(crate) fn member_label(id: u32) -> String {
    format!("member-{id}")
}

impl Ledger {
    pub(crate) fn new(notifiers: usize, pools: usize) -> Ledger {
        Ledger {
            started: Instant::now(),
            started_us: super::member::now_us(),
            receipts: vec![Vec::new(); notifiers],
            slots: vec![vec![Vec::new(); notifiers]; pools],
            faults: Vec::new(),
            duplicates: BTreeMap::new(),
            strays: 0,
            unattributed: Vec::new(),
            open: Open::new(),
            windows: Vec::new(),
            overall: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("valid histogram bounds"),
            handled: vec![0; pools],
            first_handled: BTreeMap::new(),
        }
    }

    /// When each member process (by its label, `member-ID`) first handled a message,
    /// in seconds into the soak: its working memory grows from then on.
    pub(crate) fn active_since(&self) -> BTreeMap<String, f64> {
        self.first_handled
            .iter()
            .map(|(member, at)| (member_label(*member), *at))
            .collect()
    }

    /// Seconds since the soak started.
    pub(crate) fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Notifier `n` sent its next message; returns its sequence number.
    pub(crate) fn sent(&mut self, n: usize) -> u64 {
        let r = &mut self.receipts[n];
        r.push(Receipt::Pending);
        self.open.sent += 1;
        (r.len() - 1) as u64
    }

    pub(crate) fn receipt(&mut self, n: usize, seq: u64, receipt: Receipt) {
        if let Some(r) = self.receipts[n].get_mut(seq as usize) {
            *r = receipt;
        }
    }

    pub(crate) fn fault(&mut self, event: FaultEvent) {
        self.faults.push(event);
    }

    /// Extend the last fault's effect to `until_us` (a paused member resumed).
    pub(crate) fn fault_until(&mut self, until_us: u64) {
        if let Some(f) = self.faults.last_mut() {
            f.until_us = until_us;
        }
    }

    pub(crate) fn faults(&self) -> &[FaultEvent] {
        &self.faults
    }

    /// Count one handling: the first in its pool counts as received (with its
    /// latency); a later one is a duplicate, attributed to a fault.
    pub(crate) fn handled(&mut self, h: Handling) {
        let at = h.handled_us.saturating_sub(self.started_us) as f64 / 1e6;
        self.first_handled.entry(h.member).or_insert(at);
        let Some(slots) = self
            .slots
            .get_mut(h.pool)
            .and_then(|p| p.get_mut(h.notifier))
        else {
            self.strays += 1;
            return;
        };
        if h.seq as usize >= self.receipts[h.notifier].len() {
            self.strays += 1;
            return;
        }
        if slots.len() <= h.seq as usize {
            slots.resize(h.seq as usize + 1, Slot::default());
        }
        let slot = &mut slots[h.seq as usize];
        slot.count = slot.count.saturating_add(1);
        if slot.count == 1 {
            slot.member = h.member;
            slot.at_ms = h.handled_us / 1000;
            let latency = h.handled_us.saturating_sub(h.sent_us).max(1);
            let _ = self.open.latency.record(latency);
            let _ = self.overall.record(latency);
            self.open.handled += 1;
            self.handled[h.pool] += 1;
            return;
        }
        let first_us = slot.at_ms * 1000;
        let first_member = slot.member;
        let cause = self.cause_of_duplicate(h.pool, first_us, h.handled_us);
        *self.duplicates.entry(cause).or_default() += 1;
        if cause == "unattributed" && self.unattributed.len() < 20 {
            let secs = |us: u64| us.saturating_sub(self.started_us) as f64 / 1e6;
            self.unattributed.push(Duplicate {
                pool: h.pool,
                notifier: h.notifier,
                seq: h.seq,
                first: (first_member, secs(first_us)),
                again: (h.member, secs(h.handled_us)),
            });
        }
    }

    /// The latest fault that touched `pool` and could have made a message handled
    /// at `first_us` come again at `again_us`: one that started before the second
    /// handling and had not ended (a pause: until the member resumed; others: their
    /// instant, plus a second for commits in flight) before the first one.
    fn cause_of_duplicate(&self, pool: usize, first_us: u64, again_us: u64) -> &'static str {
        const COMMIT_SLACK_US: u64 = 1_000_000;
        self.faults
            .iter()
            .rev()
            .find(|f| {
                f.pool.is_none_or(|p| p == pool)
                    && f.at_us <= again_us
                    && f.until_us.max(f.at_us).saturating_add(COMMIT_SLACK_US) >= first_us
            })
            .map_or("unattributed", |f| f.kind)
    }

    /// Close the current window with the memory figures taken now.
    pub(crate) fn close_window(&mut self, rss_mib: BTreeMap<String, f64>) {
        let open = std::mem::replace(&mut self.open, Open::new());
        let ms = |h: &Histogram<u64>, q: f64| {
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(q) as f64 / 1000.0
            }
        };
        self.windows.push(Window {
            end_secs: self.elapsed(),
            sent: open.sent,
            handled: open.handled,
            latency_p50_ms: ms(&open.latency, 0.5),
            latency_p99_ms: ms(&open.latency, 0.99),
            rss_mib,
        });
    }

    pub(crate) fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// Messages sent, and how their receipts ended.
    pub(crate) fn receipts(&self) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        for r in self.receipts.iter().flatten() {
            let key = match r {
                Receipt::Pending => "pending",
                Receipt::Accepted => "accepted",
                Receipt::Failed => "failed",
                Receipt::Unknown => "unknown",
            };
            *out.entry(key).or_default() += 1;
        }
        out
    }

    /// How many messages were sent.
    pub(crate) fn sent_total(&self) -> u64 {
        self.receipts.iter().map(|r| r.len() as u64).sum()
    }

    /// Accepted messages not handled yet in `pool`.
    pub(crate) fn missing(&self, pool: usize) -> u64 {
        let mut missing = 0;
        for (n, receipts) in self.receipts.iter().enumerate() {
            let slots = &self.slots[pool][n];
            for (seq, r) in receipts.iter().enumerate() {
                let handled = slots.get(seq).is_some_and(|s| s.count > 0);
                if *r == Receipt::Accepted && !handled {
                    missing += 1;
                }
            }
        }
        missing
    }

    /// Accepted messages not handled yet, all pools together.
    pub(crate) fn missing_total(&self) -> u64 {
        (0..self.slots.len()).map(|p| self.missing(p)).sum()
    }

    /// Distinct messages handled in each pool.
    pub(crate) fn handled_per_pool(&self) -> &[u64] {
        &self.handled
    }

    pub(crate) fn duplicates(&self) -> &BTreeMap<&'static str, u64> {
        &self.duplicates
    }

    pub(crate) fn unattributed(&self) -> &[Duplicate] {
        &self.unattributed
    }

    pub(crate) fn strays(&self) -> u64 {
        self.strays
    }

    /// p50 and p99 end-to-end latency over the whole soak, in ms.
    pub(crate) fn latency_ms(&self) -> (f64, f64) {
        if self.overall.is_empty() {
            return (0.0, 0.0);
        }
        (
            self.overall.value_at_quantile(0.5) as f64 / 1000.0,
            self.overall.value_at_quantile(0.99) as f64 / 1000.0,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handling(pool: usize, member: u32, seq: u64, at_ms: u64) -> Handling {
        Handling {
            pool,
            member,
            notifier: 0,
            seq,
            sent_us: at_ms * 1000 - 500,
            handled_us: at_ms * 1000,
        }
    }

    #[test]
    fn a_message_never_handled_is_missing_and_a_second_handling_is_a_duplicate() {
        let mut l = Ledger::new(1, 2);
        for _ in 0..3 {
            let seq = l.sent(0);
            l.receipt(0, seq, Receipt::Accepted);
        }
        l.handled(handling(0, 1, 0, 1_000));
        l.handled(handling(0, 1, 1, 1_000));
        l.handled(handling(1, 2, 0, 1_000));
        assert_eq!((l.missing(0), l.missing(1)), (1, 2));
        l.fault(FaultEvent {
            kind: "member-kill",
            pool: Some(0),
            at_secs: 0.0,
            at_us: 2_000_000,
            until_us: 2_000_000,
        });
        // Handled again after the kill: attributed to it.
        l.handled(handling(0, 3, 0, 3_000));
        // In another pool, the kill explains nothing.
        l.handled(handling(1, 4, 0, 3_000));
        assert_eq!(l.duplicates().get("member-kill"), Some(&1));
        assert_eq!(l.duplicates().get("unattributed"), Some(&1));
        // Handled long after the fault's effect ended: not its doing.
        l.handled(handling(0, 5, 1, 2_500));
        l.handled(handling(1, 2, 1, 9_000));
        assert_eq!(l.duplicates().get("member-kill"), Some(&2));
        assert_eq!(l.handled_per_pool(), &[2, 2]);
        assert_eq!(l.strays(), 0);
        l.handled(handling(0, 1, 99, 1_000));
        assert_eq!(l.strays(), 1);
    }

    #[test]
    fn a_duplicate_before_any_fault_is_unattributed() {
        let mut l = Ledger::new(1, 1);
        let seq = l.sent(0);
        l.receipt(0, seq, Receipt::Accepted);
        l.handled(handling(0, 1, 0, 1_000));
        l.handled(handling(0, 1, 0, 1_100));
        assert_eq!(l.duplicates().get("unattributed"), Some(&1));
    }
}
