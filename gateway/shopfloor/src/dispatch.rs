//! The dispatcher: the ring's one consumer. It drains batches and fans them out to every sink
//! without waiting for any of them.

use crate::metrics::Metrics;
use crate::sink::{Batch, SinkStats, Throttle};
use shopfloor_core::ring::Rings;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Largest batch taken from the ring at once.
pub const MAX_BATCH: usize = 8192;

/// One sink as the dispatcher sees it.
#[derive(Debug, Clone)]
pub struct SinkPort {
    /// For logs.
    pub name: &'static str,
    /// Its input.
    pub tx: mpsc::Sender<Batch>,
    /// Its counters.
    pub stats: Arc<SinkStats>,
}

/// Runs until no ring can join any more, every producer is gone and the rings are drained; then the sinks' channels close,
/// which tells them to flush and stop.
pub async fn run(mut consumer: Rings, sinks: Vec<SinkPort>, metrics: Arc<Metrics>) {
    let mut buf = Vec::with_capacity(MAX_BATCH);
    // A sink that stays behind drops every batch: one warning per sink every 10 s, with a count.
    let mut behind: Vec<Throttle> = sinks
        .iter()
        .map(|_| Throttle::new(Duration::from_secs(10)))
        .collect();
    loop {
        consumer.ready().await;
        buf.clear();
        consumer.drain(&mut buf, MAX_BATCH);
        if buf.is_empty() {
            if consumer.is_finished() {
                break;
            }
            continue;
        }
        // Drains go lane by lane, so a machine's samples come in runs: one add per run.
        for run in buf.chunk_by(|a, b| a.machine == b.machine) {
            if let Some(c) = metrics.samples.get(run[0].machine.index()) {
                c.fetch_add(crate::sink::readings(run), Ordering::Relaxed);
            }
        }
        metrics
            .ring_dropped
            .store(consumer.dropped(), Ordering::Relaxed);
        // One exact-size allocation per batch; `buf` keeps its capacity for the next drain.
        let batch: Batch = buf.drain(..).collect();
        for (s, throttle) in sinks.iter().zip(&mut behind) {
            // A closed input is a sink that has ended (or the KPI engine, stopped before the
            // ring is drained): nothing waits there to be counted.
            match s.tx.try_send(Arc::clone(&batch)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let samples = crate::sink::readings(&batch);
                    s.stats.dropped.fetch_add(samples, Ordering::Relaxed);
                    s.stats.took(batch.len() as u64);
                    if let Some(repeats) = throttle.ready() {
                        warn!(
                            sink = s.name,
                            samples, repeats, "sink behind: a batch dropped for it"
                        );
                    }
                }
                // Nobody waits there: a recorder must not wait for it either.
                Err(mpsc::error::TrySendError::Closed(_)) => s.stats.took(batch.len() as u64),
            }
        }
    }
    debug!(dropped_in_ring = consumer.dropped(), "dispatcher done");
}
