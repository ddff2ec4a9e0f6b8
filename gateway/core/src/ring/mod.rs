//! The bounded ring buffer between drivers (many producers) and the dispatcher (one consumer).
//!
//! Written here rather than taken from a crate: crossbeam's `ArrayQueue` and tokio's `mpsc` push
//! and pop one element per atomic read-modify-write on a shared index, and `rtrb`, which moves
//! chunks, is one single-producer lane with no parking; none drops the oldest element with a
//! count. `cargo bench --bench ring` measures them side by side.
//!
//! # Shape
//! The ring is a set of *lanes*, one per [`Producer`]: each lane is a single-producer,
//! single-consumer circular buffer. A producer never contends with another producer, so one
//! machine's burst never slows another machine's push, and each lane's share of the capacity is
//! its own. The single [`Consumer`] drains the lanes round robin. Machines added at run time
//! get a ring of their own, read with the others through one [`Rings`].
//!
//! # Invariants
//! 1. Per lane, `head <= tail <= head + capacity`; `tail - head` samples are in the lane.
//! 2. `tail` is written only by the lane's producer; slots in `[head, tail)` are initialised,
//!    all others are not.
//! 3. `head` is written by the consumer while it holds the lane's `busy` flag, and, under the
//!    `DropOldest` policy, by the producer while it holds the same flag. Nobody else writes it.
//! 4. A slot is written by the producer only when it is outside `[head, tail)` and the `head` that
//!    freed it was published with `Release` after the slot was read (or dropped).
//! 5. Order is kept per lane: samples leave a lane in the order they were pushed; across lanes
//!    no order is promised.
//! 6. Every sample pushed is either drained exactly once or counted exactly once in
//!    [`Consumer::dropped`]; never both, never neither. Samples still in the ring when it is
//!    dropped are dropped with it and not counted. [`Consumer::pop`] drains a chunk at a time
//!    and hands it out one by one: what it holds has left its lane.
//! 7. `push` and `push_batch` never block: when a lane is full they apply [`WhenFull`].
//!    `try_push` never drops: it hands the sample back.
//! 8. The consumer is woken after a push whenever it is parked in [`Consumer::ready`]; no
//!    wake-up is lost (the producer's `tail` publish and the consumer's `parked` flag are ordered
//!    by sequentially consistent operations on both sides).

mod lane;
mod set;

pub use set::{Joiner, Rings, RingsReady};

use crate::sample::Sample;
use lane::Lane;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use thiserror::Error;

/// What a push does when its lane is full.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Make room by dropping the oldest samples of the lane: fresh data wins (default).
    #[default]
    DropOldest,
    /// Drop the samples that do not fit: what is already queued wins.
    DropNewest,
}

impl crate::word::Word for WhenFull {
    const ALL: &'static [Self] = &[WhenFull::DropOldest, WhenFull::DropNewest];

    fn word(self) -> &'static str {
        match self {
            WhenFull::DropOldest => "drop_oldest",
            WhenFull::DropNewest => "drop_newest",
        }
    }
}

/// A ring could not be built.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RingError {
    /// A ring needs at least one lane.
    #[error("a ring needs at least one lane")]
    NoLanes,
    /// A lane's capacity is zero or above 2^31.
    #[error("lane capacity {0} is out of range (1..=2^31)")]
    BadCapacity(usize),
}

pub(crate) struct Shared {
    lanes: Box<[Lane]>,
    when_full: WhenFull,
    parked: AtomicBool,
    waker: Mutex<Option<Waker>>,
    producers_alive: AtomicUsize,
}

impl Shared {
    /// Called by producers after publishing: wake the consumer if it is parked.
    #[inline]
    fn wake_consumer(&self) {
        // Paired with the SeqCst store of `parked` and the SeqCst re-check in `poll_ready`:
        // either the consumer sees our tail, or we see its flag.
        if self.parked.load(Ordering::SeqCst) && self.parked.swap(false, Ordering::SeqCst) {
            let waker = self.waker.lock().map(|mut w| w.take()).unwrap_or(None);
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

/// Builds a ring with one lane per entry of `capacities` (each rounded up to a power of two).
///
/// Returns the producers, in the order of `capacities`, and the one consumer.
pub fn with_lanes(
    capacities: &[usize],
    when_full: WhenFull,
) -> Result<(Vec<Producer>, Consumer), RingError> {
    if capacities.is_empty() {
        return Err(RingError::NoLanes);
    }
    let lanes = capacities
        .iter()
        .map(|&c| {
            if c == 0 || c > 1 << 31 {
                Err(RingError::BadCapacity(c))
            } else {
                Ok(Lane::new(c.next_power_of_two()))
            }
        })
        .collect::<Result<Box<[Lane]>, _>>()?;
    let shared = Arc::new(Shared {
        lanes,
        when_full,
        parked: AtomicBool::new(false),
        waker: Mutex::new(None),
        producers_alive: AtomicUsize::new(capacities.len()),
    });
    let producers = (0..capacities.len())
        .map(|i| Producer::new(Arc::clone(&shared), i))
        .collect();
    let cursor = 0;
    let consumer = Consumer {
        shared,
        cursor,
        popped: VecDeque::new(),
        scratch: Vec::new(),
    };
    Ok((producers, consumer))
}

/// Builds a ring of `lanes` lanes sharing `capacity` samples evenly.
pub fn channel(
    capacity: usize,
    lanes: usize,
    when_full: WhenFull,
) -> Result<(Vec<Producer>, Consumer), RingError> {
    if lanes == 0 {
        return Err(RingError::NoLanes);
    }
    let per_lane = capacity.div_ceil(lanes).max(1);
    with_lanes(&vec![per_lane; lanes], when_full)
}

/// The writing end of one lane; one per machine task. `Send`, not `Clone`.
pub struct Producer {
    shared: Arc<Shared>,
    lane: usize,
    /// Local copy of the lane's tail: only this producer writes it.
    tail: u64,
    /// Last head seen; refreshed only when the lane looks full.
    cached_head: u64,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("lane", &self.lane)
            .finish()
    }
}

impl Producer {
    #[inline]
    fn new(shared: Arc<Shared>, lane: usize) -> Producer {
        Producer {
            shared,
            lane,
            tail: 0,
            cached_head: 0,
        }
    }

    #[inline]
    fn lane(&self) -> &Lane {
        &self.shared.lanes[self.lane]
    }

    /// This producer's lane index.
    #[inline]
    pub fn lane_index(&self) -> usize {
        self.lane
    }

    /// The lane's capacity in samples.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.lane().capacity()
    }

    /// Free slots, refreshing the view of the consumer's progress when `want` do not fit.
    #[inline]
    fn free(&mut self, want: usize) -> usize {
        let cap = self.lane().capacity() as u64;
        let mut free = cap - (self.tail - self.cached_head);
        if free < want as u64 {
            self.cached_head = self.lane().head();
            free = cap - (self.tail - self.cached_head);
        }
        free as usize
    }

    /// Pushes one sample, applying the ring's [`WhenFull`] policy. Returns how many samples
    /// were dropped to make room (or, under `DropNewest`, 1 if this one was dropped).
    #[inline]
    pub fn push(&mut self, sample: Sample) -> u64 {
        match self.try_push(sample) {
            Ok(()) => 0,
            Err(sample) => {
                let mut one = vec![sample];
                self.push_batch(&mut one)
            }
        }
    }

    /// Pushes one sample if there is room, else hands it back. Never drops.
    #[inline]
    pub fn try_push(&mut self, sample: Sample) -> Result<(), Sample> {
        if self.free(1) == 0 {
            return Err(sample);
        }
        // SAFETY: free() >= 1 means slot `tail` is outside [head, tail) and no longer read
        // (invariant 4); only this producer writes slots.
        unsafe { self.lane().write(self.tail, sample) };
        self.tail += 1;
        self.lane().publish_tail(self.tail);
        self.shared.wake_consumer();
        Ok(())
    }

    /// Moves as many samples from the front of `batch` as fit, without dropping any; returns
    /// how many were moved. What did not fit stays in `batch`, in order.
    #[inline]
    pub fn try_push_batch(&mut self, batch: &mut Vec<Sample>) -> usize {
        let n = batch.len().min(self.free(batch.len()));
        if n == 0 {
            return 0;
        }
        // SAFETY: n <= free(), so the n slots from `tail` are writable (invariant 4).
        unsafe { self.lane().write_from_vec(self.tail, batch, n) };
        self.tail += n as u64;
        self.lane().publish_tail(self.tail);
        self.shared.wake_consumer();
        n
    }

    /// True when `n` samples fit without dropping any.
    #[inline]
    pub fn has_room(&mut self, n: usize) -> bool {
        self.free(n) >= n
    }

    /// Writes the samples of `samples` straight into the lane (no staging buffer), applying the
    /// [`WhenFull`] policy to what does not fit. Returns how many were dropped.
    #[inline]
    pub fn push_iter<I>(&mut self, samples: I) -> u64
    where
        I: IntoIterator<Item = Sample>,
        I::IntoIter: ExactSizeIterator,
    {
        let mut it = samples.into_iter();
        let n = it.len();
        if self.free(n) < n {
            // The rare full path: fall back to the batch push and its policy.
            let mut batch: Vec<Sample> = it.collect();
            return self.push_batch(&mut batch);
        }
        let lane = &self.shared.lanes[self.lane];
        let mut written = 0;
        for sample in it.by_ref().take(n) {
            // SAFETY: free() >= n, so the n slots from `tail` are writable (invariant 4).
            unsafe { lane.write(self.tail + written, sample) };
            written += 1;
        }
        self.tail += written;
        lane.publish_tail(self.tail);
        self.shared.wake_consumer();
        0
    }

    /// Moves every sample of `batch` into the lane (leaving `batch` empty, its allocation kept),
    /// applying the [`WhenFull`] policy to what does not fit. Returns how many were dropped.
    #[inline]
    pub fn push_batch(&mut self, batch: &mut Vec<Sample>) -> u64 {
        self.try_push_batch(batch);
        if batch.is_empty() {
            return 0;
        }
        let dropped = match self.shared.when_full {
            WhenFull::DropNewest => {
                let n = batch.len() as u64;
                batch.clear();
                n
            }
            WhenFull::DropOldest => self.push_dropping_oldest(batch),
        };
        self.lane().count_dropped(dropped);
        dropped
    }

    #[inline]
    fn push_dropping_oldest(&mut self, batch: &mut Vec<Sample>) -> u64 {
        let cap = self.lane().capacity();
        let mut dropped = 0u64;
        // Samples of this batch that could never fit are its oldest ones.
        if batch.len() > cap {
            let excess = batch.len() - cap;
            batch.drain(..excess);
            dropped += excess as u64;
        }
        let lane = &self.shared.lanes[self.lane];
        let guard = lane.lock();
        let head = lane.head();
        let used = (self.tail - head) as usize;
        let need = (used + batch.len()).saturating_sub(cap);
        // SAFETY: we hold the lane lock, so the consumer is not reading; [head, head+need) is
        // inside [head, tail) because need <= used.
        unsafe { lane.drop_range(head, need) };
        lane.set_head(head + need as u64);
        drop(guard);
        self.cached_head = head + need as u64;
        dropped += need as u64;
        let n = batch.len();
        // SAFETY: after dropping `need`, exactly `n` slots from `tail` are free (invariant 4).
        unsafe { lane.write_from_vec(self.tail, batch, n) };
        self.tail += n as u64;
        lane.publish_tail(self.tail);
        self.shared.wake_consumer();
        dropped
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.shared.producers_alive.fetch_sub(1, Ordering::SeqCst);
        // A closed ring must wake the consumer so it can notice the end.
        self.shared.parked.store(true, Ordering::SeqCst);
        self.shared.wake_consumer();
    }
}

/// Samples [`Consumer::pop`] takes from the lanes at once.
const POP_CHUNK: usize = 256;

/// The reading end; exactly one per ring.
pub struct Consumer {
    shared: Arc<Shared>,
    cursor: usize,
    /// Samples `pop` has taken from the lanes and not handed out yet, in drain order: one
    /// lock and one look at the producer's tail per chunk instead of per sample.
    popped: VecDeque<Sample>,
    scratch: Vec<Sample>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("lanes", &self.shared.lanes.len())
            .finish()
    }
}

impl Consumer {
    /// Moves up to `max` samples into `out`, visiting lanes round robin so that no lane starves.
    /// Returns how many were moved.
    #[inline]
    pub fn drain(&mut self, out: &mut Vec<Sample>, max: usize) -> usize {
        // What `pop` took already comes first: it left its lanes before anything still there.
        let first = self.popped.len().min(max);
        out.extend(self.popped.drain(..first));
        let lanes = self.shared.lanes.len();
        let mut moved = first;
        for step in 0..lanes {
            if moved >= max {
                break;
            }
            let i = (self.cursor + step) % lanes;
            moved += self.shared.lanes[i].drain_into(out, max - moved);
        }
        self.cursor = (self.cursor + 1) % lanes;
        moved
    }

    /// Takes one sample, if any. Takes up to [`POP_CHUNK`] from the lanes at a time and hands
    /// them out one by one; those it holds are drained (out of reach of `DropOldest`).
    #[inline]
    pub fn pop(&mut self) -> Option<Sample> {
        if self.popped.is_empty() {
            let mut scratch = std::mem::take(&mut self.scratch);
            self.drain(&mut scratch, POP_CHUNK);
            self.popped.extend(scratch.drain(..));
            self.scratch = scratch;
        }
        self.popped.pop_front()
    }

    /// Samples currently queued across all lanes, and taken by `pop` but not handed out.
    #[inline]
    pub fn len(&self) -> usize {
        self.popped.len() + self.shared.lanes.iter().map(Lane::len).sum::<usize>()
    }

    /// True when no sample waits, in a lane or taken by `pop`.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.popped.is_empty() && self.shared.lanes.iter().all(Lane::is_empty)
    }

    /// Samples dropped by the [`WhenFull`] policy since the ring was built, all lanes.
    pub fn dropped(&self) -> u64 {
        self.shared.lanes.iter().map(Lane::dropped).sum()
    }

    /// Samples dropped from one lane.
    pub fn dropped_in_lane(&self, lane: usize) -> u64 {
        self.shared.lanes.get(lane).map_or(0, Lane::dropped)
    }

    /// True when every producer is gone and every lane is empty: nothing will ever arrive.
    #[inline]
    pub fn is_finished(&self) -> bool {
        self.shared.producers_alive.load(Ordering::SeqCst) == 0 && self.is_empty()
    }

    /// Resolves when a sample is queued or every producer is gone.
    #[inline]
    pub fn ready(&mut self) -> Ready<'_> {
        Ready { consumer: self }
    }

    #[inline]
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.is_empty() || self.shared.producers_alive.load(Ordering::SeqCst) == 0 {
            return Poll::Ready(());
        }
        if let Ok(mut w) = self.shared.waker.lock() {
            match w.as_ref() {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
        }
        self.shared.parked.store(true, Ordering::SeqCst);
        // Re-check after announcing that we park (invariant 8).
        if !self.is_empty() || self.shared.producers_alive.load(Ordering::SeqCst) == 0 {
            self.shared.parked.store(false, Ordering::SeqCst);
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// Future of [`Consumer::ready`].
#[derive(Debug)]
pub struct Ready<'a> {
    consumer: &'a mut Consumer,
}

impl Future for Ready<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.consumer.poll_ready(cx)
    }
}

#[cfg(test)]
mod tests;
