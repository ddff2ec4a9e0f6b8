//! One single-producer, single-consumer circular buffer of the ring; see the invariants in the
//! parent module. All `unsafe` of the ring lives here and in the callers' `SAFETY` notes.

use crate::sample::Sample;
use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Keeps a value on its own cache lines so that the producer's and the consumer's indices do not
/// share one (128 bytes: adjacent-line prefetch pulls lines in pairs).
#[repr(align(128))]
struct CachePadded<T>(T);

/// The consumer side: its index and the lock that makes dropping the oldest samples safe.
struct HeadSide {
    head: AtomicU64,
    busy: AtomicBool,
}

/// Slot storage in whole cache lines, so that a batch boundary never leaves one line shared by
/// the producer writing and the consumer reading.
#[repr(C, align(64))]
struct Line([UnsafeCell<MaybeUninit<Sample>>; SLOTS_PER_LINE]);

const SLOTS_PER_LINE: usize = 64 / std::mem::size_of::<Sample>();

pub(super) struct Lane {
    head: CachePadded<HeadSide>,
    tail: CachePadded<AtomicU64>,
    dropped: CachePadded<AtomicU64>,
    lines: Box<[Line]>,
    mask: u64,
}

// SAFETY: slots are only touched under the protocol of the module invariants: a slot is written
// by the one producer while it is outside [head, tail) and read or dropped by whoever holds
// `busy` while it is inside. Samples themselves are Send + Sync.
unsafe impl Sync for Lane {}
// SAFETY: see above; the lane owns its samples.
unsafe impl Send for Lane {}

/// Holds the lane's `busy` flag; released on drop.
pub(super) struct LaneGuard<'a>(&'a AtomicBool);

impl Drop for LaneGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Lane {
    /// A lane of `capacity` slots; `capacity` is a power of two.
    #[inline]
    pub(super) fn new(capacity: usize) -> Lane {
        debug_assert!(capacity.is_power_of_two());
        let capacity = capacity.max(SLOTS_PER_LINE);
        // Zeroed, not left uninitialised: touching every page now commits the memory at start-up,
        // so the first lap of the hot path takes no page faults and RSS does not creep later.
        let lines = (0..capacity / SLOTS_PER_LINE)
            .map(|_| {
                Line(std::array::from_fn(|_| {
                    UnsafeCell::new(MaybeUninit::zeroed())
                }))
            })
            .collect();
        Lane {
            head: CachePadded(HeadSide {
                head: AtomicU64::new(0),
                busy: AtomicBool::new(false),
            }),
            tail: CachePadded(AtomicU64::new(0)),
            dropped: CachePadded(AtomicU64::new(0)),
            lines,
            mask: capacity as u64 - 1,
        }
    }

    #[inline]
    pub(super) fn capacity(&self) -> usize {
        self.lines.len() * SLOTS_PER_LINE
    }

    /// The first slot; slots are contiguous `Sample`-sized cells from here.
    #[inline]
    fn base(&self) -> *mut Sample {
        // `Line` is repr(C) arrays of UnsafeCell<MaybeUninit<Sample>>, which have Sample's layout.
        UnsafeCell::raw_get(
            self.lines
                .as_ptr()
                .cast::<UnsafeCell<MaybeUninit<Sample>>>(),
        )
        .cast::<Sample>()
    }

    #[inline]
    pub(super) fn head(&self) -> u64 {
        self.head.0.head.load(Ordering::Acquire)
    }

    /// Moves `head`; only under [`Lane::lock`] (invariant 3).
    #[inline]
    pub(super) fn set_head(&self, head: u64) {
        self.head.0.head.store(head, Ordering::Release);
    }

    /// Publishes the producer's progress. SeqCst: paired with the consumer's parking (inv. 8).
    #[inline]
    pub(super) fn publish_tail(&self, tail: u64) {
        self.tail.0.store(tail, Ordering::SeqCst);
    }

    #[inline]
    pub(super) fn len(&self) -> usize {
        // Head first: a tail read afterwards can only be larger, so the difference is >= 0.
        let head = self.head.0.head.load(Ordering::Acquire);
        let tail = self.tail.0.load(Ordering::SeqCst);
        tail.saturating_sub(head) as usize
    }

    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn dropped(&self) -> u64 {
        self.dropped.0.load(Ordering::Relaxed)
    }

    #[inline]
    pub(super) fn count_dropped(&self, n: u64) {
        if n > 0 {
            self.dropped.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Takes the lane's `busy` flag. Held only for a bounded copy, so spinning is short; yields
    /// the thread if the holder was preempted.
    #[inline]
    pub(super) fn lock(&self) -> LaneGuard<'_> {
        let busy = &self.head.0.busy;
        let mut spins = 0u32;
        while busy
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        LaneGuard(busy)
    }

    #[inline]
    fn slot(&self, pos: u64) -> *mut Sample {
        // SAFETY: the masked index is below capacity, inside the allocation.
        unsafe { self.base().add((pos & self.mask) as usize) }
    }

    /// Writes one sample at `pos`.
    ///
    /// # Safety
    /// `pos` must be outside `[head, tail)` and inside `[tail, head + capacity)`; only the
    /// producer calls this.
    #[inline]
    pub(super) unsafe fn write(&self, pos: u64, sample: Sample) {
        // SAFETY: per the contract the slot is uninitialised and nobody else touches it.
        unsafe { self.slot(pos).write(sample) };
    }

    /// Moves the first `n` samples of `batch` to positions `pos..pos + n`, keeping the rest of
    /// `batch` in order.
    ///
    /// # Safety
    /// As [`Lane::write`], for every position of the range; `n <= batch.len()`.
    #[inline]
    pub(super) unsafe fn write_from_vec(&self, pos: u64, batch: &mut Vec<Sample>, n: usize) {
        let len = batch.len();
        debug_assert!(n <= len);
        let cap = self.capacity();
        let start = (pos & self.mask) as usize;
        let first = n.min(cap - start);
        let src = batch.as_mut_ptr();
        // SAFETY: the slots are contiguous `MaybeUninit<Sample>` (same layout as Sample), the
        // two ranges do not overlap, and ownership moves: `batch` forgets the moved elements by
        // shifting the rest down and shortening its length.
        unsafe {
            let base = self.base();
            ptr::copy_nonoverlapping(src, base.add(start), first);
            if first < n {
                ptr::copy_nonoverlapping(src.add(first), base, n - first);
            }
            ptr::copy(src.add(n), src, len - n);
            batch.set_len(len - n);
        }
    }

    /// Drops the `n` samples from `head` in place.
    ///
    /// # Safety
    /// The caller holds the lock and `[head, head + n)` lies inside `[head, tail)`.
    pub(super) unsafe fn drop_range(&self, head: u64, n: usize) {
        for i in 0..n as u64 {
            // SAFETY: per the contract these slots are initialised and nobody reads them.
            unsafe { ptr::drop_in_place(self.slot(head + i)) };
        }
    }

    /// Moves up to `max` samples into `out`; returns how many.
    #[inline]
    pub(super) fn drain_into(&self, out: &mut Vec<Sample>, max: usize) -> usize {
        // Checked without the lock first: an idle consumer polling an empty lane must not bounce
        // the lock's cache line against the producer. A stale head can only make the lane look
        // emptier than it is, never fuller.
        if max == 0 || self.is_empty() {
            return 0;
        }
        let _guard = self.lock();
        let head = self.head.0.head.load(Ordering::Relaxed);
        let tail = self.tail.0.load(Ordering::Acquire);
        let n = ((tail - head) as usize).min(max);
        if n == 0 {
            return 0;
        }
        let cap = self.capacity();
        let start = (head & self.mask) as usize;
        let first = n.min(cap - start);
        out.reserve(n);
        // SAFETY: [head, head + n) is initialised (invariant 2) and ours while we hold the lock;
        // the samples move into `out`'s spare capacity and the lane forgets them by moving head.
        unsafe {
            let base = self.base();
            let dst = out.as_mut_ptr().add(out.len());
            ptr::copy_nonoverlapping(base.add(start), dst, first);
            if first < n {
                ptr::copy_nonoverlapping(base, dst.add(first), n - first);
            }
            out.set_len(out.len() + n);
        }
        self.set_head(head + n as u64);
        n
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        let head = *self.head.0.head.get_mut();
        let tail = *self.tail.0.get_mut();
        // SAFETY: exclusive access; [head, tail) is initialised (invariant 2).
        unsafe { self.drop_range(head, (tail - head) as usize) };
    }
}
