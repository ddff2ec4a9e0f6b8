//! The dispatcher: the rings' one consumer. It drains batches and fans them out to every sink
//! without waiting for any of them.
//!
//! A sink whose section a reload changed is swapped between two batches ([`Control`]): its old
//! input closes (the old sink delivers or spools what it holds, then ends), the batches that
//! come meanwhile are held here under its bound, and the new sink gets them first. A sink whose
//! section a reload added joins between two batches; one whose section it removed leaves.

use crate::metrics::Metrics;
use crate::sink::intake::{Feed, Pushed, Queue};
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
#[derive(Debug)]
pub struct SinkPort {
    /// For logs.
    pub name: &'static str,
    /// Its input.
    pub feed: Feed,
    /// Its counters.
    pub stats: Arc<SinkStats>,
}

/// A change of the dispatcher's sinks, applied between two batches.
#[derive(Debug)]
pub enum Control {
    /// Close the input of sink `name` and hold its batches until it is back.
    Hold(&'static str),
    /// The sink is back: it gets the held batches first. A sink not seen before is added.
    Resume(SinkPort),
    /// Close the input of sink `name` for good: a reload removed its section.
    Close(&'static str),
}

/// A sink's port, or the batches held for it (under its bound) while it is swapped.
#[derive(Debug)]
enum Outlet {
    Open(SinkPort),
    Held(Arc<SinkStats>, Queue),
}

/// One sink: its name, where its batches go, and its warnings' throttle (kept across a swap).
#[derive(Debug)]
struct Slot {
    name: &'static str,
    outlet: Outlet,
    throttle: Throttle,
}

/// The sinks by name, in start order.
#[derive(Debug, Default)]
struct Outlets(Vec<Slot>);

impl Outlets {
    fn control(&mut self, c: Control) {
        match c {
            Control::Hold(name) => {
                for slot in self.0.iter_mut().filter(|s| s.name == name) {
                    if let Outlet::Open(port) = &slot.outlet {
                        let held = Queue::new(port.feed.bound());
                        slot.outlet = Outlet::Held(Arc::clone(&port.stats), held);
                    }
                }
            }
            Control::Resume(port) => {
                let Some(slot) = self.0.iter_mut().find(|s| s.name == port.name) else {
                    self.0.push(Slot {
                        name: port.name,
                        outlet: Outlet::Open(port),
                        throttle: Throttle::new(WARN_EVERY),
                    });
                    return;
                };
                if let Outlet::Held(_, held) = &mut slot.outlet {
                    while let Some(batch) = held.pop() {
                        hand(&port, batch, &mut slot.throttle);
                    }
                }
                slot.outlet = Outlet::Open(port);
            }
            Control::Close(name) => self.0.retain(|s| s.name != name),
        }
    }

    fn fan_out(&mut self, batch: &Batch) {
        for Slot {
            name,
            outlet,
            throttle,
        } in &mut self.0
        {
            match outlet {
                Outlet::Open(port) => hand(port, Arc::clone(batch), throttle),
                Outlet::Held(stats, held) => {
                    let overflow = held.push(Arc::clone(batch));
                    lost(name, stats, &overflow.batches, throttle);
                }
            }
        }
    }
}

/// A sink that stays behind drops batch after batch: one warning per sink this often.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Counts the batches a sink does not get as dropped (and taken: a recorder must not wait for
/// them), with a warning now and then.
fn lost(name: &str, stats: &SinkStats, batches: &[Batch], throttle: &mut Throttle) {
    if batches.is_empty() {
        return;
    }
    let samples: u64 = batches.iter().map(|b| crate::sink::readings(b)).sum();
    stats.dropped.fetch_add(samples, Ordering::Relaxed);
    stats.took(batches.iter().map(|b| b.len() as u64).sum());
    if let Some(repeats) = throttle.ready() {
        warn!(
            event = "sink_behind",
            sink = name,
            samples,
            repeats,
            "a sink is behind: its intake is full, samples dropped as its when_full says"
        );
    }
}

/// Hands `batch` to a sink without waiting.
fn hand(port: &SinkPort, batch: Batch, throttle: &mut Throttle) {
    match port.feed.push(batch) {
        Pushed::Queued(overflow) => lost(port.name, &port.stats, &overflow.batches, throttle),
        // A closed input is a sink that has ended (or the KPI engine, stopped before the ring
        // is drained): nothing waits there, and a recorder must not wait for it either.
        Pushed::Closed(batch) => port.stats.took(batch.len() as u64),
    }
}

/// Runs until no ring can join any more, every producer is gone and the rings are drained;
/// then the sinks' channels close, which tells them to flush and stop.
pub async fn run(
    mut consumer: Rings,
    metrics: Arc<Metrics>,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let mut buf = Vec::with_capacity(MAX_BATCH);
    let mut outlets = Outlets::default();
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
    use crate::sink::intake::{Bound, Intake, intake};
    use shopfloor_core::ring::WhenFull;
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

    fn port(name: &'static str, samples: usize) -> (SinkPort, Intake) {
        let (feed, rx) = intake(Bound {
            samples,
            when_full: WhenFull::DropOldest,
        });
        let stats = Arc::new(SinkStats::default());
        (SinkPort { name, feed, stats }, rx)
    }

    fn seqs(rx: &mut Intake) -> Vec<u64> {
        std::iter::from_fn(|| rx.try_recv())
            .map(|b| b[0].seq)
            .collect()
    }

    #[tokio::test]
    async fn a_swapped_sink_gets_what_came_meanwhile_first_and_the_old_one_nothing_after() {
        let mut outlets = Outlets::default();
        let (old, mut old_rx) = port("mqtt", 100);
        outlets.control(Control::Resume(old));
        outlets.fan_out(&batch(1));
        outlets.control(Control::Hold("mqtt"));
        outlets.fan_out(&batch(2));
        outlets.fan_out(&batch(3));
        assert_eq!(old_rx.recv().await.unwrap()[0].seq, 1);
        assert!(
            old_rx.recv().await.is_none(),
            "the old sink's input closed at the hold"
        );
        let (new, mut new_rx) = port("mqtt", 100);
        outlets.control(Control::Resume(new));
        outlets.fan_out(&batch(4));
        assert_eq!(seqs(&mut new_rx), vec![2, 3, 4]);
    }

    #[tokio::test]
    async fn a_sink_added_joins_between_batches_and_one_removed_leaves() {
        let mut outlets = Outlets::default();
        let (mqtt, mut mqtt_rx) = port("mqtt", 100);
        outlets.control(Control::Resume(mqtt));
        outlets.fan_out(&batch(1));
        let (csv, mut csv_rx) = port("csv", 100);
        outlets.control(Control::Resume(csv));
        outlets.fan_out(&batch(2));
        outlets.control(Control::Close("csv"));
        outlets.fan_out(&batch(3));
        assert_eq!(seqs(&mut mqtt_rx), vec![1, 2, 3]);
        assert_eq!(csv_rx.recv().await.unwrap()[0].seq, 2);
        assert!(
            csv_rx.recv().await.is_none(),
            "the removed sink's input closed"
        );
    }

    #[test]
    fn a_hold_beyond_the_sinks_bound_drops_and_counts() {
        let mut outlets = Outlets::default();
        let (p, _rx) = port("influx", 5);
        let stats = Arc::clone(&p.stats);
        outlets.control(Control::Resume(p));
        outlets.control(Control::Hold("influx"));
        for seq in 0..8 {
            outlets.fan_out(&batch(seq));
        }
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn many_small_batches_fit_a_bound_in_samples() {
        // A run of one-sample batches is no more than their samples: 1000 of them wait for a
        // sink whose bound is 1000 samples, none dropped.
        let mut outlets = Outlets::default();
        let (p, mut rx) = port("csv", 1000);
        let stats = Arc::clone(&p.stats);
        outlets.control(Control::Resume(p));
        for seq in 0..1000 {
            outlets.fan_out(&batch(seq));
        }
        outlets.fan_out(&batch(1000));
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 1);
        let got = seqs(&mut rx);
        assert_eq!(got.len(), 1000);
        assert_eq!(got[0], 1, "the oldest went first");
    }
}
