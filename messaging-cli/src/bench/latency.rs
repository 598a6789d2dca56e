//! Latency counts the bench handler records into without a lock: one relaxed
//! atomic increment per notification, where a mutex around a histogram made every
//! handler call pay for the lock (a bench artefact, not framework cost).

use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use messaging_core::{Error, ErrorKind, Result};

/// Values below this are counted exactly; above it, with this many steps per
/// power of two (a relative error under 1/1024, hdrhistogram's 3 significant
/// figures).
const EXACT: u64 = 2048;
const STEP_BITS: u32 = 10;

/// The bucket of `value` (counts exactly below [`EXACT`], then log-linear).
fn bucket_of(value: u64) -> usize {
    if value < EXACT {
        return value as usize;
    }
    let shift = 64 - value.leading_zeros() - (STEP_BITS + 1);
    ((u64::from(shift) << STEP_BITS) + (value >> shift)) as usize
}

/// The lowest value that falls in `bucket` (the inverse of [`bucket_of`]).
fn lowest_in(bucket: usize) -> u64 {
    let bucket = bucket as u64;
    if bucket < EXACT {
        return bucket;
    }
    let shift = (bucket >> STEP_BITS) - 1;
    let mantissa = bucket - (shift << STEP_BITS);
    mantissa << shift
}

/// Latencies in microseconds, recorded from any thread without a lock.
pub(crate) struct LatencyCounts {
    buckets: Box<[AtomicU64]>,
    max: AtomicU64,
    highest: u64,
}

impl LatencyCounts {
    /// Counts for values from 1 up to `highest` (larger ones are counted as `highest`).
    pub(crate) fn new(highest: u64) -> Self {
        let buckets = (0..=bucket_of(highest))
            .map(|_| AtomicU64::new(0))
            .collect();
        LatencyCounts {
            buckets,
            max: AtomicU64::new(0),
            highest,
        }
    }

    /// Count one latency (at least 1).
    pub(crate) fn record(&self, value: u64) {
        let value = value.clamp(1, self.highest);
        self.buckets[bucket_of(value)].fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
    }

    /// The exact largest value recorded (0 when none).
    pub(crate) fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// The counts as an hdrhistogram (3 significant figures), for its quantiles.
    pub(crate) fn histogram(&self) -> Result<Histogram<u64>> {
        let mut h = Histogram::<u64>::new_with_bounds(1, self.highest.max(2), 3)
            .map_err(|e| Error::new(ErrorKind::Internal, "histogram").with_source(e))?;
        for (bucket, count) in self.buckets.iter().enumerate() {
            let count = count.load(Ordering::Relaxed);
            if count > 0 {
                h.record_n(lowest_in(bucket).max(1), count)
                    .map_err(|e| Error::new(ErrorKind::Internal, "histogram").with_source(e))?;
            }
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_trip_within_hdr_precision() {
        let mut previous = 0;
        for value in (1..5000).chain((1..40).map(|k| 1u64 << k).flat_map(|p| [p - 1, p, p + 7])) {
            let bucket = bucket_of(value);
            let low = lowest_in(bucket);
            assert!(low <= value, "{value}: bucket {bucket} starts at {low}");
            assert!(
                (value - low) * 1024 <= value,
                "{value}: bucket {bucket} starts at {low}, too coarse"
            );
            assert_eq!(bucket_of(low), bucket, "{value}");
            if value > previous {
                assert!(
                    bucket >= bucket_of(previous),
                    "{value} sorts before {previous}"
                );
            }
            previous = value;
        }
    }

    #[test]
    fn quantiles_and_max_match_a_plain_histogram() {
        let counts = LatencyCounts::new(600_000_000);
        let mut plain = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).unwrap();
        for i in 0..100_000u64 {
            let v = 1 + (i * 7919) % 250_000;
            counts.record(v);
            plain.record(v).unwrap();
        }
        counts.record(599_999_999);
        plain.record(599_999_999).unwrap();
        let h = counts.histogram().unwrap();
        assert_eq!(h.len(), plain.len());
        for q in [0.5, 0.9, 0.99, 0.999] {
            let (a, b) = (h.value_at_quantile(q), plain.value_at_quantile(q));
            assert!(a.abs_diff(b) * 500 <= b, "q {q}: {a} vs {b}");
        }
        assert_eq!(counts.max(), 599_999_999);
    }

    #[test]
    fn values_out_of_range_are_clamped() {
        let counts = LatencyCounts::new(1000);
        counts.record(0);
        counts.record(5000);
        let h = counts.histogram().unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(counts.max(), 1000);
        assert_eq!(h.min(), 1);
    }
}
