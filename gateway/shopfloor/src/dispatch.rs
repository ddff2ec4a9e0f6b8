//! The dispatcher: the ring's one consumer. It drains batches and fans them out to every sink
//! without waiting for any of them.

use crate::metrics::Metrics;
use crate::sink::{Batch, SinkStats};
use shopfloor_core::ring::Consumer;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;
use tracing::debug;

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

/// Runs until every producer is gone and the ring is drained; then the sinks' channels close,
/// which tells them to flush and stop.
pub async fn run(mut consumer: Consumer, sinks: Vec<SinkPort>, metrics: Arc<Metrics>) {
    let mut buf = Vec::with_capacity(MAX_BATCH);
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
        for s in &sinks {
            if s.tx.try_send(Arc::clone(&batch)).is_err() {
                s.stats
                    .dropped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                debug!(
                    sink = s.name,
                    samples = batch.len(),
                    "sink behind, batch dropped"
                );
            }
        }
    }
    debug!(dropped_in_ring = consumer.dropped(), "dispatcher done");
}
