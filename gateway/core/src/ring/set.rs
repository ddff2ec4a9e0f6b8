//! Several rings read as one: a ring's lanes are fixed when it is built, so machines added
//! while the gateway runs get a ring of their own, joined to the dispatcher's [`Rings`]. A ring
//! whose producers are all gone leaves the set once it is drained.
//!
//! The lanes of the hot path are untouched: a push still knows only its own lane, and a join
//! costs the consumer one uncontended lock on its next turn.

use super::Consumer;
use crate::sample::Sample;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// What the joining side and the reading side share.
#[derive(Debug, Default)]
struct Door {
    pending: Mutex<Vec<Consumer>>,
    waker: Mutex<Option<Waker>>,
    /// Set when the last [`Joiner`] is gone: no ring will come any more.
    closed: AtomicBool,
}

impl Door {
    /// Wakes the reader, if it waits.
    fn wake(&self) {
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Adds rings to a [`Rings`] while it is being read. Dropping it says no more will come.
#[derive(Debug)]
pub struct Joiner {
    door: Arc<Door>,
}

impl Joiner {
    /// Hands `ring` to the reader, which drains it from its next turn on.
    pub fn join(&self, ring: Consumer) {
        self.door
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(ring);
        self.door.wake();
    }
}

impl Drop for Joiner {
    fn drop(&mut self) {
        self.door.closed.store(true, Ordering::SeqCst);
        self.door.wake();
    }
}

/// The one consumer of every ring of a gateway.
#[derive(Debug)]
pub struct Rings {
    rings: Vec<Consumer>,
    door: Arc<Door>,
    cursor: usize,
    /// Drops counted by rings that have left the set.
    dropped_before: u64,
}

impl Rings {
    /// An empty set, and the handle that adds rings to it.
    pub fn new() -> (Rings, Joiner) {
        let door = Arc::new(Door::default());
        let rings = Rings {
            rings: Vec::new(),
            door: Arc::clone(&door),
            cursor: 0,
            dropped_before: 0,
        };
        (rings, Joiner { door })
    }

    /// Takes in the rings joined since the last turn.
    fn admit(&mut self) {
        let mut pending = self
            .door
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.rings.append(&mut pending);
    }

    /// Moves up to `max` samples into `out`, ring after ring in turn; returns how many. Rings
    /// that are finished leave the set.
    pub fn drain(&mut self, out: &mut Vec<Sample>, max: usize) -> usize {
        self.admit();
        let n = self.rings.len();
        let mut moved = 0;
        for step in 0..n {
            if moved >= max {
                break;
            }
            let i = (self.cursor + step) % n;
            moved += self.rings[i].drain(out, max - moved);
        }
        self.cursor = self.cursor.wrapping_add(1);
        let before = self.rings.len();
        let mut gone = 0;
        self.rings.retain(|r| {
            let done = r.is_finished();
            if done {
                gone += r.dropped();
            }
            !done
        });
        self.dropped_before += gone;
        if self.rings.len() != before {
            self.cursor = 0;
        }
        moved
    }

    /// Samples dropped by the rings' [`super::WhenFull`] policy, all rings ever in the set.
    pub fn dropped(&self) -> u64 {
        let pending: u64 = self
            .door
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(Consumer::dropped)
            .sum();
        self.dropped_before + pending + self.rings.iter().map(Consumer::dropped).sum::<u64>()
    }

    /// Rings being read now.
    pub fn len(&self) -> usize {
        self.rings.len()
    }

    /// True when no ring is being read.
    pub fn is_empty(&self) -> bool {
        self.rings.is_empty()
    }

    /// True when no ring can join any more and every ring is finished.
    pub fn is_finished(&self) -> bool {
        self.door.closed.load(Ordering::SeqCst)
            && self
                .door
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty()
            && self.rings.iter().all(Consumer::is_finished)
    }

    /// Resolves when a sample is queued in any ring, a ring joined, or the set is finished.
    pub fn ready(&mut self) -> RingsReady<'_> {
        RingsReady { rings: self }
    }

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        *self
            .door
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        // After the waker is in place: a join or a close from now on wakes us.
        let joined = !self
            .door
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty();
        if joined || self.is_finished() {
            return Poll::Ready(());
        }
        // Every ring is polled, so that each holds our waker.
        let mut ready = false;
        for r in &self.rings {
            ready |= r.poll_ready(cx).is_ready();
        }
        if ready {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Future of [`Rings::ready`].
#[derive(Debug)]
pub struct RingsReady<'a> {
    rings: &'a mut Rings,
}

impl Future for RingsReady<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.rings.poll_ready(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ring::{WhenFull, with_lanes};
    use crate::sample::{MachineId, Quality, TagId, Value};

    fn sample(machine: u16, seq: u64) -> Sample {
        Sample::new(
            MachineId(machine),
            TagId(0),
            1,
            seq,
            Value::I64(0),
            Quality::Good,
        )
    }

    fn poll(rings: &mut Rings) -> bool {
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut f = rings.ready();
        Pin::new(&mut f).poll(&mut cx).is_ready()
    }

    #[test]
    fn a_joined_ring_is_read_and_a_finished_one_leaves() {
        let (mut first, c1) = with_lanes(&[8], WhenFull::DropNewest).unwrap();
        let (mut rings, joiner) = Rings::new();
        joiner.join(c1);
        assert!(poll(&mut rings), "a join is a reason to look");
        assert_eq!(rings.drain(&mut Vec::new(), 100), 0);
        assert!(!poll(&mut rings), "nothing queued, the door open");
        let (mut second, c2) = with_lanes(&[8, 8], WhenFull::DropNewest).unwrap();
        joiner.join(c2);
        assert!(poll(&mut rings), "a join is a reason to look");
        second[1].push(sample(2, 1));
        first[0].push(sample(0, 1));
        let mut out = Vec::new();
        assert_eq!(rings.drain(&mut out, 100), 2);
        assert_eq!(rings.len(), 2);
        // The first ring's producer leaves: once drained, so does the ring.
        first[0].push(sample(0, 2));
        drop(first);
        out.clear();
        rings.drain(&mut out, 100);
        assert_eq!(out.len(), 1);
        assert_eq!(rings.len(), 1);
        drop(second);
        assert!(!rings.is_finished(), "the joiner can still add a ring");
        drop(joiner);
        rings.drain(&mut out, 100);
        assert!(rings.is_finished() && rings.is_empty());
        assert!(poll(&mut rings));
    }

    #[test]
    fn drops_of_a_ring_that_left_stay_counted() {
        let (mut p, c) = with_lanes(&[8], WhenFull::DropNewest).unwrap();
        let (mut rings, joiner) = Rings::new();
        joiner.join(c);
        for seq in 1..=100 {
            p[0].push(sample(0, seq));
        }
        drop(p);
        let before = rings.dropped();
        assert!(before > 0);
        let mut out = Vec::new();
        rings.drain(&mut out, 1000);
        assert!(rings.is_empty());
        assert_eq!(rings.dropped(), before);
    }
}
