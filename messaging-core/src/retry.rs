//! Retry policy and backoff, owned by the core (drivers never retry on their own).

use std::time::Duration;

/// How often a failed send may be tried again (oslo's `retry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retry {
    /// Retry until it succeeds (oslo: `None` or `-1`).
    #[default]
    Forever,
    /// At most this many retries after the first attempt (`0`: no retry).
    Limited(u32),
}

impl Retry {
    /// From oslo's encoding: `None` or a negative number is forever, `N` is at most N retries.
    pub fn from_oslo(value: Option<i64>) -> Self {
        match value {
            None => Retry::Forever,
            Some(v) if v < 0 => Retry::Forever,
            Some(v) => Retry::Limited(u32::try_from(v).unwrap_or(u32::MAX)),
        }
    }

    /// Whether another retry is allowed after `retries_done` retries.
    pub fn allows(self, retries_done: u32) -> bool {
        match self {
            Retry::Forever => true,
            Retry::Limited(n) => retries_done < n,
        }
    }
}

/// Exponential backoff between attempts: each delay doubles, up to a cap.
///
/// The core's backoffs are named here, once: [`Backoff::default`] between send
/// retries, [`Backoff::backpressure`] while a local queue is full,
/// [`Backoff::receive`] after a listener's or RPC server's failed receive and
/// [`Backoff::reply_receive`] after an RPC reply queue's.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    next: Duration,
    max: Duration,
}

/// Between send retries after a retryable failure: 10 ms doubling up to 2 s.
const SEND_RETRY: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(2));
/// While the local queue is full: 1 ms doubling up to 100 ms (room comes back fast).
const BACKPRESSURE: (Duration, Duration) = (Duration::from_millis(1), Duration::from_millis(100));
/// After a failed receive of a listener or an RPC server: 50 ms doubling up to 5 s.
const RECEIVE: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(5));
/// After a failed receive of an RPC reply queue: 50 ms doubling up to 2 s (callers wait).
const REPLY_RECEIVE: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(2));

impl Default for Backoff {
    /// Between send retries: 10 ms doubling up to 2 s.
    fn default() -> Self {
        Backoff::new(SEND_RETRY.0, SEND_RETRY.1)
    }
}

impl Backoff {
    /// A backoff starting at `first` and capped at `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            next: first,
            max,
        }
    }

    /// While a local queue is full: 1 ms doubling up to 100 ms.
    pub fn backpressure() -> Self {
        Backoff::new(BACKPRESSURE.0, BACKPRESSURE.1)
    }

    /// After a listener's or an RPC server's failed receive: 50 ms doubling up to 5 s.
    pub fn receive() -> Self {
        Backoff::new(RECEIVE.0, RECEIVE.1)
    }

    /// After an RPC reply queue's failed receive: 50 ms doubling up to 2 s.
    pub fn reply_receive() -> Self {
        Backoff::new(REPLY_RECEIVE.0, REPLY_RECEIVE.1)
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// Start again from the first delay (after a success).
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oslo_encoding() {
        assert_eq!(Retry::from_oslo(None), Retry::Forever);
        assert_eq!(Retry::from_oslo(Some(-1)), Retry::Forever);
        assert!(!Retry::from_oslo(Some(0)).allows(0));
        assert!(Retry::from_oslo(Some(2)).allows(1));
        assert!(!Retry::from_oslo(Some(2)).allows(2));
    }

    #[test]
    fn backoff_doubles_to_cap() {
        let mut b = Backoff::new(Duration::from_millis(1), Duration::from_millis(3));
        assert_eq!(b.next_delay(), Duration::from_millis(1));
        assert_eq!(b.next_delay(), Duration::from_millis(2));
        assert_eq!(b.next_delay(), Duration::from_millis(3));
        assert_eq!(b.next_delay(), Duration::from_millis(3));
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(1));
    }

    #[test]
    fn named_backoffs_start_and_cap_as_documented() {
        let mut receive = Backoff::receive();
        assert_eq!(receive.next_delay(), Duration::from_millis(50));
        assert_eq!(receive.max, Duration::from_secs(5));
        assert_eq!(Backoff::reply_receive().max, Duration::from_secs(2));
        assert_eq!(
            Backoff::backpressure().next_delay(),
            Duration::from_millis(1)
        );
        assert_eq!(Backoff::default().next_delay(), Duration::from_millis(10));
    }
}
