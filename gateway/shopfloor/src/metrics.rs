//! Counters and histograms of the gateway, rendered in the Prometheus text format at `/metrics`.

use crate::sink::SinkStats;
use crate::status::Statuses;
use shopfloor_core::{Catalog, MachineId, MachineState};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the poll-duration histogram, seconds.
pub const POLL_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A histogram with fixed buckets, lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; POLL_BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (b, upper) in self.buckets.iter().zip(POLL_BUCKETS) {
            if secs <= upper {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

impl Histogram {
    /// Adds what `other` counted: a machine restarted under a new id keeps its counts.
    pub fn carry_from(&self, other: &Histogram) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for (b, o) in self.buckets.iter().zip(&other.buckets) {
            b.fetch_add(load(o), Ordering::Relaxed);
        }
        self.count.fetch_add(load(&other.count), Ordering::Relaxed);
        self.sum_us
            .fetch_add(load(&other.sum_us), Ordering::Relaxed);
    }
}

/// Machines a chunk of [`PerMachine`] holds.
const CHUNK: usize = 256;

/// One `T` per machine id, grown as machines are added while the gateway runs, read without a
/// lock: chunks of [`CHUNK`] entries are made once and never move.
#[derive(Debug)]
pub struct PerMachine<T> {
    chunks: Box<[std::sync::OnceLock<Box<[T]>>]>,
}

impl<T: Default> PerMachine<T> {
    /// Room for `machines` machines now, and for every id a catalog can give later.
    pub fn new(machines: usize) -> PerMachine<T> {
        let ids = usize::from(u16::MAX) + 1;
        let all = PerMachine {
            chunks: (0..ids / CHUNK)
                .map(|_| std::sync::OnceLock::new())
                .collect(),
        };
        all.reserve(machines);
        all
    }

    /// Makes sure machines `0..machines` have their entry.
    pub fn reserve(&self, machines: usize) {
        for chunk in self.chunks.iter().take(machines.div_ceil(CHUNK)) {
            chunk.get_or_init(|| (0..CHUNK).map(|_| T::default()).collect());
        }
    }

    /// The entry of machine `index`, once reserved.
    #[inline]
    pub fn get(&self, index: usize) -> Option<&T> {
        self.chunks.get(index / CHUNK)?.get()?.get(index % CHUNK)
    }
}

/// Why the recorder skipped a message: the `reason` label of
/// `shopfloor_record_skipped_total`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Not a shopfloor payload (not JSON, another shape, a topic without a machine).
    Payload,
    /// A machine or tag name that breaks the contract's name rule.
    Name,
    /// A new machine beyond `[record] max_machines`.
    MaxMachines,
    /// A new tag beyond `[record] max_tags`.
    MaxTags,
    /// Sparkplug data whose birth the recorder has not heard (it came late, a `seq` gap, an
    /// unknown alias): a rebirth is asked for.
    Unborn,
}

impl SkipReason {
    /// Every reason, in the order of [`Metrics::record_skipped`].
    pub const ALL: [SkipReason; 5] = [
        SkipReason::Payload,
        SkipReason::Name,
        SkipReason::MaxMachines,
        SkipReason::MaxTags,
        SkipReason::Unborn,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Payload => "payload",
            SkipReason::Name => "name",
            SkipReason::MaxMachines => "max_machines",
            SkipReason::MaxTags => "max_tags",
            SkipReason::Unborn => "unborn",
        }
    }
}

/// Everything `/metrics` shows that is not a sink's own counter.
#[derive(Debug)]
pub struct Metrics {
    /// Samples taken from the ring, per machine.
    pub samples: PerMachine<AtomicU64>,
    /// Samples the ring dropped (its `WhenFull` policy).
    pub ring_dropped: AtomicU64,
    /// Poll-cycle durations, per machine.
    pub poll: PerMachine<Histogram>,
    /// Messages the recorder skipped, by [`SkipReason`] (in the order of [`SkipReason::ALL`]).
    pub record_skipped: [AtomicU64; 5],
}

impl Metrics {
    /// Makes room for machines `0..machines` (added by a new configuration).
    pub fn reserve(&self, machines: usize) {
        self.samples.reserve(machines);
        self.poll.reserve(machines);
    }

    /// Machine `new` is machine `old` restarted under a new id: its counters go on from the
    /// old one's, so that a counter of `/metrics` never goes down.
    pub fn carry(&self, old: MachineId, new: MachineId) {
        if let (Some(o), Some(n)) = (self.samples.get(old.index()), self.samples.get(new.index())) {
            n.fetch_add(o.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        if let (Some(o), Some(n)) = (self.poll.get(old.index()), self.poll.get(new.index())) {
            n.carry_from(o);
        }
    }

    /// Counts one message the recorder skipped.
    pub fn skipped(&self, reason: SkipReason) {
        let i = SkipReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.record_skipped[i].fetch_add(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Zeroed metrics for `machines` machines.
    pub fn new(machines: usize) -> Metrics {
        Metrics {
            samples: PerMachine::new(machines),
            ring_dropped: AtomicU64::new(0),
            poll: PerMachine::new(machines),
            record_skipped: Default::default(),
        }
    }
}

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text exposition of everything.
pub fn render(
    catalog: &Catalog,
    metrics: &Metrics,
    statuses: &Statuses,
    sinks: &[(&'static str, Arc<SinkStats>)],
) -> String {
    let mut o = String::with_capacity(4096);
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    o.push_str("# HELP shopfloor_samples_total Samples read, per machine.\n");
    o.push_str("# TYPE shopfloor_samples_total counter\n");
    for (id, m) in catalog.machines() {
        let n = metrics.samples.get(id.index()).map_or(0, load);
        let _ = writeln!(
            o,
            "shopfloor_samples_total{{machine=\"{}\"}} {n}",
            label(&m.id)
        );
    }
    o.push_str("# HELP shopfloor_samples_dropped_total Samples dropped by the full ring buffer.\n");
    o.push_str("# TYPE shopfloor_samples_dropped_total counter\n");
    let _ = writeln!(
        o,
        "shopfloor_samples_dropped_total {}",
        load(&metrics.ring_dropped)
    );
    o.push_str(
        "# HELP shopfloor_record_skipped_total Messages (past a bound: readings) the recorder skipped, by reason.\n\
         # TYPE shopfloor_record_skipped_total counter\n",
    );
    for (reason, n) in SkipReason::ALL.iter().zip(&metrics.record_skipped) {
        let _ = writeln!(
            o,
            "shopfloor_record_skipped_total{{reason=\"{}\"}} {}",
            reason.as_str(),
            load(n)
        );
    }
    o.push_str(
        "# HELP shopfloor_config_reloads_total Config files read again (SIGHUP, --watch), by outcome.\n\
         # TYPE shopfloor_config_reloads_total counter\n",
    );
    for (result, n) in crate::reload::RELOADS.counts() {
        let _ = writeln!(
            o,
            "shopfloor_config_reloads_total{{result=\"{result}\"}} {n}"
        );
    }
    o.push_str("# HELP shopfloor_machine_up 1 when the machine answers, else 0.\n");
    o.push_str("# TYPE shopfloor_machine_up gauge\n");
    for (id, m) in catalog.machines() {
        let up = statuses
            .get(id.index())
            .is_some_and(|s| s.state == MachineState::Online);
        let _ = writeln!(
            o,
            "shopfloor_machine_up{{machine=\"{}\"}} {}",
            label(&m.id),
            u8::from(up)
        );
    }
    o.push_str("# HELP shopfloor_poll_duration_seconds Time of one poll cycle.\n");
    o.push_str("# TYPE shopfloor_poll_duration_seconds histogram\n");
    for (id, m) in catalog.machines() {
        let Some(h) = metrics.poll.get(id.index()) else {
            continue;
        };
        let name = label(&m.id);
        for (b, upper) in h.buckets.iter().zip(POLL_BUCKETS) {
            let _ = writeln!(
                o,
                "shopfloor_poll_duration_seconds_bucket{{machine=\"{name}\",le=\"{upper}\"}} {}",
                load(b)
            );
        }
        let count = load(&h.count);
        let _ = writeln!(
            o,
            "shopfloor_poll_duration_seconds_bucket{{machine=\"{name}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            o,
            "shopfloor_poll_duration_seconds_sum{{machine=\"{name}\"}} {}",
            load(&h.sum_us) as f64 / 1e6
        );
        let _ = writeln!(
            o,
            "shopfloor_poll_duration_seconds_count{{machine=\"{name}\"}} {count}"
        );
    }
    // A task or socket left behind by every reconnect shows here long before it shows in RSS.
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        o.push_str("# HELP shopfloor_runtime_tasks Tasks alive in the gateway's runtime.\n");
        o.push_str("# TYPE shopfloor_runtime_tasks gauge\n");
        let _ = writeln!(
            o,
            "shopfloor_runtime_tasks {}",
            rt.metrics().num_alive_tasks()
        );
    }
    type Pick = fn(&SinkStats) -> &AtomicU64;
    let families: [(&str, &str, &str, Pick); 5] = [
        (
            "shopfloor_sink_sent_total",
            "counter",
            "Messages or samples the sink delivered.",
            |s| &s.sent,
        ),
        (
            "shopfloor_sink_backlog",
            "gauge",
            "Messages waiting in the sink.",
            |s| &s.backlog,
        ),
        (
            "shopfloor_sink_dropped_total",
            "counter",
            "Samples the sink dropped.",
            |s| &s.dropped,
        ),
        (
            "shopfloor_sink_errors_total",
            "counter",
            "Delivery errors of the sink.",
            |s| &s.errors,
        ),
        (
            "shopfloor_sink_rejected_total",
            "counter",
            "Samples the destination refused (a 4xx answer); set aside, not retried.",
            |s| &s.rejected,
        ),
    ];
    for (name, kind, help, pick) in families {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (sink, stats) in sinks {
            let _ = writeln!(o, "{name}{{sink=\"{sink}\"}} {}", load(pick(stats)));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(300));
        let counts: Vec<u64> = h
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts, vec![0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2]);
        assert_eq!(h.count.load(Ordering::Relaxed), 2);
        assert_eq!(h.sum_us.load(Ordering::Relaxed), 303_000);
    }
}
