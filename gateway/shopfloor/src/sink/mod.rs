//! Sinks: where samples go after the ring.
//!
//! Every sink runs as its own task and receives [`Batch`]es from the dispatcher through its own
//! bounded channel, and machine states through a [`crate::status::StatusBoard`] watch. A sink
//! that cannot keep up never stalls the dispatcher: the dispatcher drops what does not fit its
//! channel and counts it in that sink's [`SinkStats`].
//!
//! - [`mqtt`]: publishes samples and statuses over MQTT with an acknowledged outbox.
//! - [`csv`]: one CSV file per machine and UTC day, for data analysis.
//! - [`influx`]: writes points over the InfluxDB v2 write API (InfluxDB 2/3, VictoriaMetrics).
//! - [`live`]: latest values and history per tag, and the event stream, for HTTP.

pub mod csv;
pub mod influx;
pub mod live;
pub mod mqtt;

use shopfloor_core::Sample;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Samples as the dispatcher fans them out: shared by all sinks, never copied.
pub type Batch = Arc<[Sample]>;

/// Counters of one sink, read by `/metrics` and the logs.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Samples the destination acknowledged.
    pub sent: AtomicU64,
    /// Samples dropped before delivery (sink channel or outbox full).
    pub dropped: AtomicU64,
    /// Messages waiting for delivery.
    pub backlog: AtomicU64,
    /// Delivery errors (connection losses, refusals).
    pub errors: AtomicU64,
    /// Samples the destination refused for good (an HTTP 4xx), set aside and not retried.
    pub rejected: AtomicU64,
}

impl SinkStats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// One kind of failure that can repeat for every sample (a full disk): logged at most once per
/// interval, with how many repeats went unsaid, so the log stays readable and does not fill
/// the disk it is complaining about.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    quiet: u64,
}

impl Throttle {
    /// At most one message per `every`.
    pub fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: None,
            quiet: 0,
        }
    }

    /// `Some(repeats left unsaid since the last one)` when this occurrence is to be logged.
    pub fn ready(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            self.quiet += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.quiet))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_lets_one_through_per_interval_and_counts_the_rest() {
        let mut t = Throttle::new(Duration::from_secs(3600));
        assert_eq!(t.ready(), Some(0));
        assert_eq!(t.ready(), None);
        assert_eq!(t.ready(), None);
        let mut now = Throttle::new(Duration::ZERO);
        assert_eq!(now.ready(), Some(0));
        assert_eq!(now.ready(), Some(0));
        t.last = t
            .last
            .and_then(|l| l.checked_sub(Duration::from_secs(3601)));
        assert_eq!(t.ready(), Some(2));
    }
}
