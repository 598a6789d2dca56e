//! What a publisher does when a batch of samples cannot be delivered (`?policy=`).

use std::fmt;
use std::str::FromStr;

use messaging_core::{Error, Result};

/// The default `max_retry` (Ceilometer's).
pub const DEFAULT_MAX_RETRY: u32 = 100;

/// The default `max_queue_length`, in batches (Ceilometer's).
pub const DEFAULT_MAX_QUEUE_LENGTH: usize = 1024;

/// A publisher's failure policy, as in Ceilometer's notifier publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PublishPolicy {
    /// Retry a failed batch up to `max_retry` times, then return the error
    /// (the batch is not kept).
    #[default]
    Default,
    /// Keep failed batches in a local queue of at most `max_queue_length` batches
    /// (the oldest are dropped, and counted, beyond that) and send them again, in
    /// order, before the next batch.
    Queue,
    /// Discard a failed batch: count it, log it, carry on.
    Drop,
}

impl PublishPolicy {
    /// The name used in publisher URLs: `default`, `queue` or `drop`.
    pub fn as_str(self) -> &'static str {
        match self {
            PublishPolicy::Default => "default",
            PublishPolicy::Queue => "queue",
            PublishPolicy::Drop => "drop",
        }
    }
}

impl fmt::Display for PublishPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PublishPolicy {
    type Err = Error;

    /// Parse `default`, `queue` or `drop`. Unlike Ceilometer, which logs a warning
    /// and falls back to `default`, an unknown name is an error.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "default" => Ok(PublishPolicy::Default),
            "queue" => Ok(PublishPolicy::Queue),
            "drop" => Ok(PublishPolicy::Drop),
            other => Err(Error::invalid_option(
                "policy",
                format!("unknown publisher policy {other:?}; expected default, queue or drop"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use messaging_core::ErrorKind;

    #[test]
    fn parses_the_three_names() {
        for p in [
            PublishPolicy::Default,
            PublishPolicy::Queue,
            PublishPolicy::Drop,
        ] {
            assert_eq!(p.as_str().parse::<PublishPolicy>().unwrap(), p);
        }
        let e = "retry".parse::<PublishPolicy>().unwrap_err();
        assert_eq!(
            e.kind(),
            &ErrorKind::InvalidOption {
                key: "policy".into()
            }
        );
    }
}
