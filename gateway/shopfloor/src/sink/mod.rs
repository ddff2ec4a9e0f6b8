//! Sinks: where samples go after the ring.
//!
//! Every sink runs as its own task and receives [`Batch`]es from the dispatcher through its own
//! [`intake`], bounded in samples by the sink's [`Bound`]. A batch holds each machine's readings and its status changes in one order
//! ([`Sample::status`] events, walked with [`parts`]), so a sink that publishes statuses puts
//! each in its place among the samples. A sink that cannot keep up never stalls the
//! dispatcher: what does not fit its intake goes as the sink's `when_full` says, counted in that
//! sink's [`SinkStats`].
//!
//! Every sink implements [`Sink`] and has a [`Build`] function that makes it from its config
//! section (nothing when the section is absent); the runtime's table of builders is the one
//! place a new sink is registered.
//!
//! - [`intake`]: the bounded queue between the dispatcher and each sink.
//! - [`mqtt`]: publishes samples and statuses over MQTT with an acknowledged outbox.
//! - [`sparkplug`]: the gateway as a Sparkplug B edge node, each machine a device.
//! - [`csv`]: one CSV file per machine and UTC day, for data analysis.
//! - [`influx`]: writes points over the InfluxDB v2 write API (InfluxDB 2/3, VictoriaMetrics).
//! - [`live`]: latest values and history per tag, and the event stream, for HTTP.

pub mod csv;
pub mod influx;
pub mod intake;
pub mod live;
pub mod mqtt;
pub mod sparkplug;

use crate::config::Config;
use crate::runtime::StartError;
use intake::{Bound, Intake};
use shopfloor_core::ring::WhenFull;
use shopfloor_core::{Catalog, Sample, SharedCatalog};
use shopfloor_spool::Spool;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Samples as the dispatcher fans them out: shared by all sinks, never copied.
pub type Batch = Arc<[Sample]>;

/// A sink's task: runs until its input closes, then flushes what it holds within the budget.
pub type SinkTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One sink, built from its config section and ready to run as its own task.
pub trait Sink: Send {
    /// Its name in logs, metrics (`sink` label) and spool directories.
    fn name(&self) -> &'static str;

    /// How much of its input may wait for it, and what goes beyond that.
    fn bound(&self) -> Bound;

    /// The task, fed batches through `input`. When `input` closes the sink flushes for at
    /// most `budget`, then ends; what a spool holds stays there for the next start.
    fn run(self: Box<Self>, input: Intake, budget: Duration) -> SinkTask;
}

/// A sink that spools: its task also takes how often the spool is forced to disk.
pub trait Spooling: Send + 'static {
    /// See [`Sink::name`].
    const NAME: &'static str;

    /// See [`Sink::run`]; `fsync` is the spool's sync interval.
    fn serve(self, input: Intake, budget: Duration, fsync: Duration) -> SinkTask;
}

/// A [`Spooling`] sink with its fsync interval, as the runtime runs it.
#[derive(Debug)]
pub struct WithFsync<S> {
    /// The sink.
    pub sink: S,
    /// `[buffer] fsync_interval`.
    pub fsync: Duration,
    /// Its intake's bound.
    pub bound: Bound,
}

impl<S: Spooling> Sink for WithFsync<S> {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn bound(&self) -> Bound {
        self.bound
    }

    fn run(self: Box<Self>, input: Intake, budget: Duration) -> SinkTask {
        self.sink.serve(input, budget, self.fsync)
    }
}

/// Makes a sink from the configuration, or `None` when its section is absent.
pub type Build = fn(&SinkContext<'_>, Arc<SinkStats>) -> Result<Option<Box<dyn Sink>>, StartError>;

/// What every sink builder gets from the runtime.
#[derive(Debug)]
pub struct SinkContext<'a> {
    /// The validated configuration.
    pub config: &'a Config,
    /// The gateway's own machines and tags.
    pub catalog: &'a Arc<Catalog>,
    /// The catalog as it grows (a recorder learns machines, a reload adds them): for sinks
    /// that take samples of machines they did not start with.
    pub shared: &'a Arc<SharedCatalog>,
    /// The configuration as a reload applied it last.
    pub applied: &'a Arc<crate::config::Applied>,
    /// The machines' states now: a sink started while they run (by a reload) begins from
    /// them, not from `connecting`.
    pub status: &'a crate::status::StatusBoard,
}

impl SinkContext<'_> {
    /// The intake bound of a sink whose section says `when_full` (or not).
    pub fn bound(&self, when_full: Option<WhenFull>) -> Bound {
        bound(&self.config.buffer, when_full)
    }

    /// The spool of sink `name` under `[buffer] spool_dir`, if set. The sinks that spool
    /// (MQTT, the store) share `spool_max_mb` equally, so the directory as a whole stays
    /// within it.
    pub fn spool(&self, name: &str) -> Result<Option<Spool>, StartError> {
        let config = self.config;
        let Some(dir) = &config.buffer.spool_dir else {
            return Ok(None);
        };
        let sinks = u64::from(config.mqtt.is_some()) + u64::from(config.influx.is_some());
        let max = config.buffer.spool_max_mb.saturating_mul(1 << 20) / sinks.max(1);
        let dir = dir.join(name);
        Spool::open(&dir, max)
            .map(Some)
            .map_err(|e| StartError::Spool(format!("{}: {e}", dir.display())))
    }
}

/// A sink's intake bound: `[buffer] capacity` samples (a sink may fall as far behind as the
/// ring holds), dropping as its section's `when_full` says, or as `[buffer] when_full`.
pub fn bound(buffer: &crate::config::BufferConfig, when_full: Option<WhenFull>) -> Bound {
    Bound {
        samples: buffer.capacity,
        when_full: when_full.unwrap_or(buffer.when_full),
    }
}

/// A piece of a batch: a run of readings, or one status event between them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Part<'a> {
    /// Readings, in order, with no status event among them.
    Readings(&'a [Sample]),
    /// A machine's status change ([`Sample::as_status`] gives it).
    Status(&'a Sample),
}

/// Walks `batch` as runs of readings and the status events between them, in order.
pub fn parts(batch: &[Sample]) -> impl Iterator<Item = Part<'_>> {
    let mut rest = batch;
    std::iter::from_fn(move || {
        let (first, tail) = rest.split_first()?;
        if first.is_status() {
            rest = tail;
            return Some(Part::Status(first));
        }
        let end = rest
            .iter()
            .position(Sample::is_status)
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at(end);
        rest = tail;
        Some(Part::Readings(run))
    })
}

/// How many readings `batch` holds, its status events left out (for the counters).
pub fn readings(batch: &[Sample]) -> u64 {
    batch.iter().filter(|s| !s.is_status()).count() as u64
}

/// Counters of one sink, read by `/metrics` and the logs.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Samples the destination acknowledged.
    pub sent: AtomicU64,
    /// Samples dropped before delivery (its intake, memory buffer or spool full).
    pub dropped: AtomicU64,
    /// Messages waiting for delivery.
    pub backlog: AtomicU64,
    /// Delivery errors (connection losses, refusals).
    pub errors: AtomicU64,
    /// Samples the destination refused for good (an HTTP 4xx), set aside and not retried.
    pub rejected: AtomicU64,
    /// Whether the sink can deliver now, for `/health`.
    pub health: SinkHealth,
    /// Samples of its input this sink has in its own hands: written to its file, spool or
    /// bounded buffer, or dropped and counted (by it or by the dispatcher). Kept by the sinks
    /// a recorder can feed (`csv`, `influx`): a recorder acknowledges a message to the broker
    /// only once each of them has taken its samples.
    pub taken: AtomicU64,
    /// Woken whenever `taken` grows; shared by the sinks of one gateway.
    pub progress: Arc<Notify>,
}

/// The counters of the sinks running now, by name: `/metrics` and `/health` read it, a reload
/// that adds or removes a sink section changes it.
#[derive(Debug, Default, Clone)]
pub struct SinkBoard(Arc<Mutex<Vec<Named>>>);

/// A sink's name and its counters.
pub type Named = (&'static str, Arc<SinkStats>);

impl SinkBoard {
    /// Adds the counters of a sink that starts.
    pub fn add(&self, name: &'static str, stats: Arc<SinkStats>) {
        lock(&self.0).push((name, stats));
    }

    /// Drops the counters of sink `name`, which stopped for good.
    pub fn remove(&self, name: &str) {
        lock(&self.0).retain(|(n, _)| *n != name);
    }

    /// The sinks running now, in start order.
    pub fn snapshot(&self) -> Vec<Named> {
        lock(&self.0).clone()
    }
}

/// A lock that a panicked holder left as it was: counters stay readable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether a sink can reach its destination: set by the sink, read by `/health`.
#[derive(Debug, Default)]
pub struct SinkHealth {
    /// When the destination stopped taking what the sink sends (UTC ms), 0 while it takes it.
    down_since_ms: AtomicI64,
    /// The destination refuses our credentials (or bucket): waiting will not help.
    refused: AtomicBool,
    /// The last reason it could not deliver.
    reason: Mutex<String>,
    /// How full the sink's spool is, in thousandths of `spool_max_mb` (0 without one).
    spool_permille: AtomicU64,
}

/// A sink's trouble as `/health` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkTrouble {
    /// Since when (UTC ms) it could not deliver.
    pub since_ms: i64,
    /// The destination refuses our credentials or bucket.
    pub refused: bool,
    /// Why, in the sink's words.
    pub reason: String,
}

impl SinkHealth {
    /// The destination took what was sent.
    pub fn delivering(&self) {
        self.down_since_ms.store(0, Ordering::Relaxed);
        self.refused.store(false, Ordering::Relaxed);
    }

    /// The destination is away or failing; `refused` when it refuses our credentials.
    pub fn failing(&self, reason: &str, refused: bool) {
        let now = shopfloor_core::time::now_ms().max(1);
        let _ = self
            .down_since_ms
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        self.refused.store(refused, Ordering::Relaxed);
        if let Ok(mut r) = self.reason.lock() {
            reason.clone_into(&mut r);
        }
    }

    /// The trouble, when the sink cannot deliver now.
    pub fn trouble(&self) -> Option<SinkTrouble> {
        let since_ms = self.down_since_ms.load(Ordering::Relaxed);
        (since_ms != 0).then(|| SinkTrouble {
            since_ms,
            refused: self.refused.load(Ordering::Relaxed),
            reason: self.reason.lock().map(|r| r.clone()).unwrap_or_default(),
        })
    }

    /// Records how full the spool is: `bytes` of `max` (no spool: `max` 0).
    pub fn spool_fill(&self, bytes: u64, max: u64) {
        let permille = bytes
            .saturating_mul(1000)
            .checked_div(max)
            .unwrap_or_default();
        self.spool_permille.store(permille, Ordering::Relaxed);
    }

    /// How full the spool is, in thousandths.
    pub fn spool_permille(&self) -> u64 {
        self.spool_permille.load(Ordering::Relaxed)
    }

    /// Moves the start of the current episode, for tests of what `/health` makes of it.
    #[cfg(test)]
    pub fn set_since_for_test(&self, since_ms: i64) {
        self.down_since_ms.store(since_ms, Ordering::Relaxed);
    }
}

impl SinkStats {
    /// Counters whose progress wakes `progress`.
    pub fn with_progress(progress: &Arc<Notify>) -> SinkStats {
        SinkStats {
            progress: Arc::clone(progress),
            ..SinkStats::default()
        }
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The sink has taken `n` more samples of its input into its own hands.
    pub fn took(&self, n: u64) {
        if n > 0 {
            self.taken.fetch_add(n, Ordering::Release);
            // A stored permit: a recorder that checks just before waiting still wakes.
            self.progress.notify_one();
        }
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
    use shopfloor_core::{MachineId, MachineState, Quality, TagId, Value};

    fn reading(seq: u64) -> Sample {
        Sample::new(
            MachineId(0),
            TagId(0),
            1,
            seq,
            Value::U64(seq),
            Quality::Good,
        )
    }

    fn status(state: MachineState) -> Sample {
        Sample::status(MachineId(0), 1, state, None)
    }

    #[test]
    fn a_batch_walks_as_runs_of_readings_and_statuses_in_place() {
        let online = status(MachineState::Online);
        let offline = status(MachineState::Offline);
        let cases: Vec<(Vec<Sample>, Vec<&str>)> = vec![
            (vec![], vec![]),
            (vec![reading(1), reading(2)], vec!["2"]),
            (vec![online.clone()], vec!["online"]),
            (
                vec![online.clone(), reading(1), reading(2), offline.clone()],
                vec!["online", "2", "offline"],
            ),
            (
                vec![reading(1), offline, online, reading(2)],
                vec!["1", "offline", "online", "1"],
            ),
        ];
        for (batch, want) in cases {
            let got: Vec<String> = parts(&batch)
                .map(|p| match p {
                    Part::Readings(r) => r.len().to_string(),
                    Part::Status(s) => s.as_status().map(|s| s.0.as_str()).unwrap_or("?").into(),
                })
                .collect();
            assert_eq!(got, want);
            let in_runs: usize = parts(&batch)
                .map(|p| match p {
                    Part::Readings(r) => r.len(),
                    Part::Status(_) => 0,
                })
                .sum();
            assert_eq!(readings(&batch), in_runs as u64);
        }
    }

    #[test]
    fn sink_health_keeps_the_start_of_an_episode_and_clears_on_delivery() {
        let h = SinkHealth::default();
        assert_eq!(h.trouble(), None);
        h.failing("connection refused", false);
        let first = h.trouble().unwrap();
        h.failing("HTTP 401: unauthorized", true);
        let second = h.trouble().unwrap();
        assert_eq!(
            second.since_ms, first.since_ms,
            "the episode's start is kept"
        );
        assert!(second.refused);
        assert_eq!(second.reason, "HTTP 401: unauthorized");
        h.delivering();
        assert_eq!(h.trouble(), None);
        h.spool_fill(950, 1000);
        assert_eq!(h.spool_permille(), 950);
        h.spool_fill(5, 0);
        assert_eq!(h.spool_permille(), 0);
    }

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
