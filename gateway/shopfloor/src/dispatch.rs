//! The dispatcher: the rings' one consumer. It drains batches and fans them out to every sink
//! without waiting for any of them.
//!
//! A sink whose section a reload changed is swapped between two batches ([`Control`]): its old
//! input closes (the old sink delivers or spools what it holds, then ends), the batches that
//! come meanwhile are held here, and the new sink gets them first.

use crate::metrics::Metrics;
use crate::sink::{Batch, SinkStats, Throttle};
use shopfloor_core::ring::Rings;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Largest batch taken from the ring at once.
pub const MAX_BATCH: usize = 8192;

/// Batches held for a sink being swapped, at most: as many as its input queues.
pub const HOLD: usize = 256;

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

/// A change of the dispatcher's sinks, applied between two batches.
#[derive(Debug)]
pub enum Control {
    /// Close the input of sink `name` and hold its batches until it is back.
    Hold(&'static str),
    /// The sink is back: it gets the held batches first.
    Resume(SinkPort),
}

/// A sink's port, or the batches held for it while it is swapped.
#[derive(Debug)]
enum Outlet {
    Open(SinkPort, Throttle),
    Held(Arc<SinkStats>, VecDeque<Batch>),
}

/// The sinks by name, in start order.
#[derive(Debug, Default)]
struct Outlets(Vec<(&'static str, Outlet)>);

impl Outlets {
    fn control(&mut self, c: Control) {
        match c {
            Control::Hold(name) => {
                for (n, o) in &mut self.0 {
                    if *n == name
                        && let Outlet::Open(port, _) = o
                    {
                        *o = Outlet::Held(Arc::clone(&port.stats), VecDeque::new());
                    }
                }
            }
            Control::Resume(port) => {
                let throttle = Throttle::new(Duration::from_secs(10));
                let Some((_, o)) = self.0.iter_mut().find(|(n, _)| *n == port.name) else {
                    self.0.push((port.name, Outlet::Open(port, throttle)));
                    return;
                };
                if let Outlet::Held(_, held) = o {
                    for batch in held.drain(..) {
                        hand(&port, &batch, &mut Throttle::new(Duration::ZERO));
                    }
                }
                *o = Outlet::Open(port, throttle);
            }
        }
    }

    fn fan_out(&mut self, batch: &Batch) {
        for (_, o) in &mut self.0 {
            match o {
                Outlet::Open(port, throttle) => hand(port, batch, throttle),
                Outlet::Held(_, held) if held.len() < HOLD => held.push_back(Arc::clone(batch)),
                Outlet::Held(stats, _) => {
                    dropped(stats, batch);
                }
            }
        }
    }
}

/// Counts a batch a sink does not get as dropped (and taken: a recorder must not wait for it).
fn dropped(stats: &SinkStats, batch: &Batch) -> u64 {
    let samples = crate::sink::readings(batch);
    stats.dropped.fetch_add(samples, Ordering::Relaxed);
    stats.took(batch.len() as u64);
    samples
}

/// Hands `batch` to a sink without waiting.
fn hand(port: &SinkPort, batch: &Batch, throttle: &mut Throttle) {
    // A closed input is a sink that has ended (or the KPI engine, stopped before the ring is
    // drained): nothing waits there to be counted.
    match port.tx.try_send(Arc::clone(batch)) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            let samples = dropped(&port.stats, batch);
            if let Some(repeats) = throttle.ready() {
                warn!(
                    sink = port.name,
                    samples, repeats, "sink behind: a batch dropped for it"
                );
            }
        }
        // Nobody waits there: a recorder must not wait for it either.
        Err(mpsc::error::TrySendError::Closed(_)) => port.stats.took(batch.len() as u64),
    }
}

/// Runs until no ring can join any more, every producer is gone and the rings are drained;
/// then the sinks' channels close, which tells them to flush and stop.
pub async fn run(
    mut consumer: Rings,
    sinks: Vec<SinkPort>,
    metrics: Arc<Metrics>,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let mut buf = Vec::with_capacity(MAX_BATCH);
    // A sink that stays behind drops every batch: one warning per sink every 10 s, with a count.
    let mut outlets = Outlets::default();
    for port in sinks {
        outlets.control(Control::Resume(port));
    }
    loop {
        tokio::select! {
            biased;
            Some(c) = control.recv() => {
                outlets.control(c);
                continue;
            }
            () = consumer.ready() => {}
        }
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
        outlets.fan_out(&batch);
    }
    debug!(dropped_in_ring = consumer.dropped(), "dispatcher done");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use shopfloor_core::{MachineId, Quality, Sample, TagId, Value};

    fn batch(seq: u64) -> Batch {
        Arc::from(vec![Sample::new(
            MachineId(0),
            TagId(0),
            1,
            seq,
            Value::I64(0),
            Quality::Good,
        )])
    }

    fn port(name: &'static str) -> (SinkPort, mpsc::Receiver<Batch>) {
        let (tx, rx) = mpsc::channel(HOLD);
        let stats = Arc::new(SinkStats::default());
        (SinkPort { name, tx, stats }, rx)
    }

    #[test]
    fn a_swapped_sink_gets_what_came_meanwhile_first_and_the_old_one_nothing_after() {
        let mut outlets = Outlets::default();
        let (old, mut old_rx) = port("mqtt");
        outlets.control(Control::Resume(old));
        outlets.fan_out(&batch(1));
        outlets.control(Control::Hold("mqtt"));
        outlets.fan_out(&batch(2));
        outlets.fan_out(&batch(3));
        assert_eq!(old_rx.try_recv().unwrap()[0].seq, 1);
        assert!(
            matches!(
                old_rx.try_recv(),
                Err(mpsc::error::TryRecvError::Disconnected)
            ),
            "the old sink's input closed at the hold"
        );
        let (new, mut new_rx) = port("mqtt");
        outlets.control(Control::Resume(new));
        outlets.fan_out(&batch(4));
        let seqs: Vec<u64> = std::iter::from_fn(|| new_rx.try_recv().ok())
            .map(|b| b[0].seq)
            .collect();
        assert_eq!(seqs, vec![2, 3, 4]);
    }

    #[test]
    fn a_hold_beyond_its_bound_drops_and_counts() {
        let mut outlets = Outlets::default();
        let (p, _rx) = port("influx");
        let stats = Arc::clone(&p.stats);
        outlets.control(Control::Resume(p));
        outlets.control(Control::Hold("influx"));
        for seq in 0..(HOLD as u64 + 3) {
            outlets.fan_out(&batch(seq));
        }
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 3);
    }
}
