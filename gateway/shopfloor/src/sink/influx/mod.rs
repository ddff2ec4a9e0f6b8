//! The InfluxDB v2 write API sink (InfluxDB 2.x/3.x, VictoriaMetrics); the points are encoded by
//! `shopfloor_contract::line`.
//!
//! - [`client`]: one gzip-compressed write request and what its answer means.
//! - [`backlog`]: the sealed batches waiting, in memory or in the disk spool.
//!
//! Samples are encoded as they arrive and sealed into a batch at `batch_size` points or after
//! `flush_interval`, whichever comes first. Batches are written one at a time, oldest first, so
//! the store sees points in order. A batch the store cannot take now (5xx, 429, timeout, no
//! connection) stays at the head of the backlog and is retried with capped exponential backoff
//! (10 s). One refused for our credentials or bucket (401, 403, 404: a rotated token, a bucket
//! not made yet) stays as well, retried at most every [`REFUSED_RETRY_CAP`] and logged once per
//! episode with the store's reason: fixing the token or making the bucket loses nothing. Only a
//! batch refused as bad data (400, 413, 422) is logged with the store's reason, counted as
//! rejected, saved under `<spool_dir>/influx-rejected/` when a spool directory is set, and never
//! retried.
//!
//! The backlog of sealed batches is in memory, bounded at [`BACKLOG_BATCHES`] (the oldest
//! dropped and counted), or, with `[buffer] spool_dir`, in the disk spool under
//! `<spool_dir>/influx/`: every batch is written there first and leaves only on the store's 2xx
//! (or its refusal), so a restart replays what the store had not taken, and an outage is
//! bounded by `spool_max_mb` instead of memory. A batch the spool cannot take (a full disk)
//! waits in memory, within the same bound as without a spool.

pub mod backlog;
pub mod client;

use crate::config::InfluxConfig;
use crate::runtime::StartError;
use crate::sink::intake::Intake;
use crate::sink::{Sink, SinkContext, SinkStats, SinkTask, Spooling, WithFsync};
pub use backlog::BACKLOG_BATCHES;
use backlog::{Backlog, Chunk};
use bytes::Bytes;
use client::Outcome;
use client::{Token, WriteClient};
use shopfloor_contract::line;
use shopfloor_core::SharedCatalog;
use shopfloor_core::backoff::Backoff;
use shopfloor_spool::Spool;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, info, warn};

type Sending = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// Longest wait between two tries while the store refuses our credentials or bucket: someone is
/// fixing them, and their fix should show within half a minute.
pub const REFUSED_RETRY_CAP: Duration = Duration::from_secs(30);

/// The store sink of `[influx]`, if the section is there: the token resolved and the client
/// made now, so that a missing variable stops the start.
pub fn build(
    ctx: &SinkContext<'_>,
    stats: Arc<SinkStats>,
) -> Result<Option<Box<dyn Sink>>, StartError> {
    let Some(influx) = &ctx.config.influx else {
        return Ok(None);
    };
    let token = match &influx.token_env {
        Some(env) => Some(Token::new(env.resolve()?)),
        None => None,
    };
    let client = WriteClient::new(influx, token)?;
    let buffer = &ctx.config.buffer;
    let rejected_dir = buffer.spool_dir.as_ref().map(|d| d.join("influx-rejected"));
    let bound = ctx.bound(influx.when_full);
    // Its memory backlog drops as its intake does: one policy for what the sink holds.
    let resolved = InfluxConfig {
        when_full: Some(bound.when_full),
        ..influx.clone()
    };
    let sink = InfluxSink::new(
        &resolved,
        client,
        Arc::clone(ctx.shared),
        stats,
        rejected_dir,
        ctx.spool("influx")?,
    );
    Ok(Some(Box::new(WithFsync {
        sink,
        fsync: buffer.fsync_interval,
        bound,
    })))
}

impl Spooling for InfluxSink {
    const NAME: &'static str = "influx";

    fn serve(self, input: Intake, budget: Duration, fsync: Duration) -> SinkTask {
        Box::pin(self.run(input, budget, fsync))
    }
}

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
        if let Some(spool) = &spool {
            spool.report_opened("influx");
        }
        let backlog = Backlog::new(spool).dropping(cfg.when_full.unwrap_or_default());
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
        self.samples += crate::sink::readings(batch);
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
        let (bytes, max) = self.backlog.spool_fill();
        self.stats.health.spool_fill(bytes, max);
    }

    /// Saves a refused batch under the rejected directory, on a thread of the blocking pool.
    fn set_aside(&self, chunk: &Chunk, status: u16) {
        let Some(dir) = self.rejected_dir.clone() else {
            return;
        };
        let path = dir.join(format!("{}-{status}.lp.gz", shopfloor_core::time::now_ms()));
        let body = chunk.body.clone();
        tokio::task::spawn_blocking(move || {
            let saved = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &body));
            match saved {
                Ok(()) => info!(file = %path.display(), "refused batch saved"),
                Err(e) => {
                    warn!(file = %path.display(), error = %e, "cannot save the refused batch")
                }
            }
        });
    }

    /// Runs until `input` closes, then writes what is left for at most `budget`.
    /// With a spool, `fsync` is how often it is forced to disk.
    pub async fn run(mut self, mut input: Intake, budget: Duration, fsync: Duration) {
        info!(event = "store_writer_started", url = %self.client.url(), "writing to the time-series store");
        let mut tick = tokio::time::interval(self.flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sync_tick = tokio::time::interval(fsync);
        sync_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Capped at 10 s: a write attempt is one cheap request, and a store back from an
        // upgrade should get its backlog soon.
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        let mut refused_backoff = Backoff::new(Duration::from_secs(1), REFUSED_RETRY_CAP);
        // The status of the refusal now being retried, so that each episode is logged once.
        let mut refusing: Option<u16> = None;
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
                    Some(b) => {
                        self.add(&b);
                        // Encoded into the batch being filled: in this sink's bounded buffer.
                        self.stats.took(b.len() as u64);
                    }
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
                _ = sync_tick.tick() => self.backlog.start_sync(),
                () = self.backlog.synced(), if self.backlog.syncing() => {}
                outcome = async {
                    match sending.as_mut() {
                        Some(s) => s.as_mut().await,
                        None => std::future::pending().await,
                    }
                }, if sending.is_some() => {
                    sending = None;
                    match outcome {
                        Outcome::Written => {
                            if failing || refusing.is_some() {
                                info!(event = "store_reachable", waiting = self.backlog.samples(), "store reachable again; writing the backlog");
                                failing = false;
                                refusing = None;
                            }
                            backoff.reset();
                            refused_backoff.reset();
                            self.stats.health.delivering();
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
                        Outcome::Refused { status, reason } => {
                            SinkStats::add(&self.stats.errors, 1);
                            self.stats.health.failing(&format!("HTTP {status}: {reason}"), true);
                            let delay = refused_backoff.next_delay();
                            if refusing != Some(status) {
                                warn!(
                                    status,
                                    %reason,
                                    retry_in = ?delay,
                                    "the store refuses our token or bucket; keeping the points and retrying"
                                );
                                refusing = Some(status);
                            } else {
                                debug!(status, %reason, retry_in = ?delay, "the store still refuses");
                            }
                            retry_at = Some(Instant::now() + delay);
                        }
                        Outcome::Retry(why) => {
                            SinkStats::add(&self.stats.errors, 1);
                            self.stats.health.failing(&why, false);
                            let delay = backoff.next_delay();
                            if failing {
                                debug!(error = %why, retry_in = ?delay, "store still unreachable");
                            } else {
                                warn!(event = "store_unreachable", error = %why, retry_in = ?delay, "cannot write to the store; keeping the points and retrying");
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
        self.backlog.sync().await;
        let in_memory = self.backlog.samples_in_memory();
        let spooled = self.backlog.samples() - in_memory;
        if spooled > 0 {
            info!(
                samples = spooled,
                "stopping with points the store has not taken; they stay in the spool for the next start"
            );
        }
        if in_memory > 0 {
            warn!(
                samples = in_memory,
                "stopping with points the store has not taken; those held in memory are dropped"
            );
            SinkStats::add(&self.stats.dropped, self.backlog.drop_memory());
            self.publish_backlog();
        }
    }

    /// Takes the head batch off the backlog, counting its samples in `counter`.
    fn done(&mut self, counter: impl Fn(&SinkStats) -> &std::sync::atomic::AtomicU64) {
        let samples = self.backlog.pop();
        SinkStats::add(counter(&self.stats), samples);
    }
}
