//! The InfluxDB v2 write API sink (InfluxDB 2.x/3.x, VictoriaMetrics).
//!
//! - [`line`]: the line-protocol encoding of samples, pure and tested.
//! - [`client`]: one gzip-compressed write request and what its answer means.
//!
//! Samples are encoded as they arrive and sealed into a batch at `batch_size` points or after
//! `flush_interval`, whichever comes first. Batches are written one at a time, oldest first, so
//! the store sees points in order. A batch the store cannot take now (5xx, 429, timeout, no
//! connection) stays at the head of the backlog and is retried with capped exponential backoff;
//! one it refuses for good (another 4xx) is logged with the store's reason, counted as rejected,
//! saved under `<spool_dir>/influx-rejected/` when a spool directory is set, and never retried.
//!
//! The backlog of sealed batches is in memory, bounded at [`BACKLOG_BATCHES`] (the oldest
//! dropped and counted), or, with `[buffer] spool_dir`, in the disk spool under
//! `<spool_dir>/influx/`: every batch is written there first and leaves only on the store's 2xx
//! (or its refusal), so a restart replays what the store had not taken, and an outage is
//! bounded by `spool_max_mb` instead of memory.

pub mod client;
pub mod line;

use crate::config::InfluxConfig;
use crate::sink::{Batch, SinkStats};
use crate::spool::Spool;
use bytes::Bytes;
use client::{Outcome, WriteClient};
use shopfloor_core::SharedCatalog;
use shopfloor_core::backoff::Backoff;
use std::collections::VecDeque;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Sealed batches kept in memory while the store is away, without a spool (with the default
/// 5000 points a batch, about a million points).
pub const BACKLOG_BATCHES: usize = 200;

/// A sealed, compressed batch.
#[derive(Debug, Clone)]
struct Chunk {
    body: Bytes,
    samples: u64,
}

type Sending = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// Writes samples to one bucket.
#[derive(Debug)]
pub struct InfluxSink {
    catalog: Arc<SharedCatalog>,
    measurement: String,
    batch_size: usize,
    flush_interval: Duration,
    client: WriteClient,
    stats: Arc<SinkStats>,
    rejected_dir: Option<PathBuf>,
    // The batch being filled.
    lines: String,
    points: usize,
    samples: u64,
    backlog: Backlog,
}

/// Sealed batches waiting for the store: in memory, or in the disk spool.
#[derive(Debug)]
enum Backlog {
    Memory {
        chunks: VecDeque<Chunk>,
        samples: u64,
    },
    Spool {
        spool: Box<Spool>,
        reported_drops: u64,
    },
}

impl Backlog {
    /// Queues a batch; returns the samples it had to drop for room.
    fn push(&mut self, chunk: Chunk) -> u64 {
        match self {
            Backlog::Memory { chunks, samples } => {
                *samples += chunk.samples;
                chunks.push_back(chunk);
                let mut dropped = 0;
                while chunks.len() > BACKLOG_BATCHES {
                    if let Some(old) = chunks.pop_front() {
                        *samples -= old.samples;
                        dropped += old.samples;
                    }
                }
                dropped
            }
            Backlog::Spool { spool, .. } => match spool.push(chunk.samples, &chunk.body) {
                Ok(()) => 0,
                Err(e) => {
                    warn!(error = %e, samples = chunk.samples, "cannot write the batch to the spool; dropped");
                    chunk.samples
                }
            },
        }
    }

    /// The oldest batch, if any.
    fn front(&mut self) -> Option<Chunk> {
        match self {
            Backlog::Memory { chunks, .. } => chunks.front().cloned(),
            Backlog::Spool { spool, .. } => match spool.peek() {
                Ok(head) => head.map(|(samples, body)| Chunk {
                    body: Bytes::copy_from_slice(body),
                    samples,
                }),
                Err(e) => {
                    warn!(error = %e, "cannot read the spool");
                    None
                }
            },
        }
    }

    /// Takes the oldest batch off; returns its samples.
    fn pop(&mut self) -> u64 {
        match self {
            Backlog::Memory { chunks, samples } => chunks.pop_front().map_or(0, |c| {
                *samples -= c.samples;
                c.samples
            }),
            Backlog::Spool { spool, .. } => {
                let samples = spool.peek().ok().flatten().map_or(0, |(w, _)| w);
                if let Err(e) = spool.ack() {
                    warn!(error = %e, "cannot update the spool");
                }
                samples
            }
        }
    }

    /// Samples waiting.
    fn samples(&self) -> u64 {
        match self {
            Backlog::Memory { samples, .. } => *samples,
            Backlog::Spool { spool, .. } => spool.counts().pending_weight,
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Backlog::Memory { chunks, .. } => chunks.is_empty(),
            Backlog::Spool { spool, .. } => spool.is_empty(),
        }
    }

    /// Samples the spool dropped for space since the last call.
    fn new_spool_drops(&mut self) -> u64 {
        match self {
            Backlog::Memory { .. } => 0,
            Backlog::Spool {
                spool,
                reported_drops,
            } => {
                let now = spool.counts().dropped_weight;
                let new = now - *reported_drops;
                *reported_drops = now;
                new
            }
        }
    }

    fn sync(&mut self) {
        if let Backlog::Spool { spool, .. } = self
            && let Err(e) = spool.sync()
        {
            warn!(error = %e, "cannot sync the spool");
        }
    }
}

impl InfluxSink {
    /// A sink for `cfg`; `rejected_dir` keeps refused batches when set; `spool` holds the
    /// backlog on disk when given.
    pub fn new(
        cfg: &InfluxConfig,
        client: WriteClient,
        catalog: Arc<SharedCatalog>,
        stats: Arc<SinkStats>,
        rejected_dir: Option<PathBuf>,
        spool: Option<Spool>,
    ) -> InfluxSink {
        let backlog = match spool {
            Some(spool) => {
                spool.report_opened("influx");
                Backlog::Spool {
                    spool: Box::new(spool),
                    reported_drops: 0,
                }
            }
            None => Backlog::Memory {
                chunks: VecDeque::new(),
                samples: 0,
            },
        };
        InfluxSink {
            catalog,
            measurement: cfg.measurement.clone(),
            batch_size: cfg.batch_size,
            flush_interval: cfg.flush_interval,
            client,
            stats,
            rejected_dir,
            lines: String::with_capacity(cfg.batch_size.min(100_000) * 64),
            points: 0,
            samples: 0,
            backlog,
        }
    }

    fn add(&mut self, batch: &[shopfloor_core::Sample]) {
        let catalog = self.catalog.load();
        self.points += line::encode(&mut self.lines, &catalog, &self.measurement, batch);
        self.samples += batch.len() as u64;
        if self.points >= self.batch_size {
            self.seal();
        }
        self.publish_backlog();
    }

    /// Compresses the batch being filled and queues it.
    fn seal(&mut self) {
        if self.points == 0 {
            // Only bad samples: nothing to write, but they were handled.
            SinkStats::add(&self.stats.sent, self.samples);
            self.samples = 0;
            return;
        }
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(self.lines.len() / 6),
            flate2::Compression::fast(),
        );
        // Writing into a Vec cannot fail.
        let body = gz
            .write_all(self.lines.as_bytes())
            .and_then(|()| gz.finish())
            .unwrap_or_default();
        let dropped = self.backlog.push(Chunk {
            body: Bytes::from(body),
            samples: self.samples,
        });
        self.lines.clear();
        self.points = 0;
        self.samples = 0;
        let dropped = dropped + self.backlog.new_spool_drops();
        if dropped > 0 {
            SinkStats::add(&self.stats.dropped, dropped);
            warn!(
                samples = dropped,
                "store backlog full: the oldest batches are dropped"
            );
        }
    }

    fn publish_backlog(&self) {
        self.stats
            .backlog
            .store(self.backlog.samples() + self.samples, Ordering::Relaxed);
    }

    fn set_aside(&self, chunk: &Chunk, status: u16) {
        let Some(dir) = &self.rejected_dir else {
            return;
        };
        let path = dir.join(format!("{}-{status}.lp.gz", shopfloor_core::time::now_ms()));
        let saved = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, &chunk.body));
        match saved {
            Ok(()) => info!(file = %path.display(), "refused batch saved"),
            Err(e) => warn!(file = %path.display(), error = %e, "cannot save the refused batch"),
        }
    }

    /// Runs until `input` closes, then writes what is left for at most `budget`.
    /// With a spool, `fsync` is how often it is forced to disk.
    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<Batch>,
        budget: Duration,
        fsync: Duration,
    ) {
        info!(url = %self.client.url(), "writing to the time-series store");
        let mut tick = tokio::time::interval(self.flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sync_tick = tokio::time::interval(fsync);
        sync_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Capped at 10 s: a write attempt is one cheap request, and a store back from an
        // upgrade should get its backlog soon.
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        let mut sending: Option<Sending> = None;
        let mut retry_at: Option<Instant> = None;
        let mut failing = false;
        let mut deadline: Option<Instant> = None;
        loop {
            if sending.is_none()
                && retry_at.is_none()
                && let Some(front) = self.backlog.front()
            {
                let client = self.client.clone();
                let body = front.body.clone();
                sending = Some(Box::pin(async move { client.write(body).await }));
            }
            if deadline.is_some() && self.backlog.is_empty() {
                break;
            }
            let stop_at = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                batch = input.recv(), if deadline.is_none() => match batch {
                    Some(b) => self.add(&b),
                    None => {
                        self.seal();
                        self.publish_backlog();
                        deadline = Some(Instant::now() + budget);
                    }
                },
                _ = tick.tick(), if deadline.is_none() => {
                    self.seal();
                    self.publish_backlog();
                }
                _ = sync_tick.tick() => self.backlog.sync(),
                outcome = async {
                    match sending.as_mut() {
                        Some(s) => s.as_mut().await,
                        None => std::future::pending().await,
                    }
                }, if sending.is_some() => {
                    sending = None;
                    match outcome {
                        Outcome::Written => {
                            if failing {
                                info!(waiting = self.backlog.samples(), "store reachable again; writing the backlog");
                                failing = false;
                            }
                            backoff.reset();
                            self.done(|s| &s.sent);
                        }
                        Outcome::Rejected { status, reason } => {
                            SinkStats::add(&self.stats.errors, 1);
                            if let Some(front) = self.backlog.front() {
                                warn!(status, %reason, samples = front.samples, "the store refused a batch; it is set aside, not retried");
                                self.set_aside(&front.clone(), status);
                            }
                            self.done(|s| &s.rejected);
                        }
                        Outcome::Retry(why) => {
                            SinkStats::add(&self.stats.errors, 1);
                            let delay = backoff.next_delay();
                            if failing {
                                debug!(error = %why, retry_in = ?delay, "store still unreachable");
                            } else {
                                warn!(error = %why, retry_in = ?delay, "cannot write to the store; keeping the points and retrying");
                                failing = true;
                            }
                            retry_at = Some(Instant::now() + delay);
                        }
                    }
                    self.publish_backlog();
                }
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                    retry_at = None;
                }
                _ = tokio::time::sleep_until(stop_at), if deadline.is_some() => break,
            }
        }
        self.backlog.sync();
        let left = self.backlog.samples();
        match &self.backlog {
            Backlog::Spool { .. } if left > 0 => info!(
                samples = left,
                "stopping with points the store has not taken; they stay in the spool for the next start"
            ),
            Backlog::Memory { .. } if left > 0 => {
                warn!(
                    samples = left,
                    "stopping with points the store has not taken; they are dropped"
                );
                SinkStats::add(&self.stats.dropped, left);
                self.backlog = Backlog::Memory {
                    chunks: VecDeque::new(),
                    samples: 0,
                };
                self.publish_backlog();
            }
            _ => {}
        }
    }

    /// Takes the head batch off the backlog, counting its samples in `counter`.
    fn done(&mut self, counter: impl Fn(&SinkStats) -> &std::sync::atomic::AtomicU64) {
        let samples = self.backlog.pop();
        SinkStats::add(counter(&self.stats), samples);
    }
}
