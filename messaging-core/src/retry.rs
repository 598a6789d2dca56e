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

/// Exponential backoff between attempts: 10 ms doubling up to 2 s.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Duration::from_millis(10),
            max: Duration::from_secs(2),
        }
    }
}

impl Backoff {
    /// A backoff starting at `first` and capped at `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff { next: first, max }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
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
    }
}
