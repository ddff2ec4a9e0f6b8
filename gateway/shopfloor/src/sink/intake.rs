//! A sink's intake: the one queue between the dispatcher and a sink, bounded in samples by the
//! sink's own [`Bound`].
//!
//! The dispatcher pushes without waiting ([`Feed::push`]); a sink takes batches in order
//! ([`Intake::recv`]). When a batch does not fit, the sink's `when_full` decides what goes:
//! the oldest queued batches or the new one. What goes is returned to the caller, which
//! counts it as the sink's loss: a sink loses input only here and in its own documented
//! buffer, never in a queue of fixed batch count (a run of one-sample batches used to fill a
//! 256-batch channel in a fraction of a second).
//!
//! Invariants:
//! 1. Batches come out in the order they went in, each at most once.
//! 2. Pushed = taken + dropped + queued, counted in batches and in samples.
//! 3. The queue holds at most `bound.samples` samples, except one batch larger than the bound
//!    that came while the queue was empty (a sink always gets something to do).
//! 4. After the feed is dropped, `recv` gives what is queued, then `None`.

use super::Batch;
use shopfloor_core::ring::WhenFull;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;

/// How much a sink may hold before it takes it, and what it drops beyond that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// Samples (status events included) queued at most.
    pub samples: usize,
    /// What a full queue drops.
    pub when_full: WhenFull,
}

/// The batches a push could not keep.
#[derive(Debug, Default)]
pub struct Overflow {
    /// Dropped batches, oldest first.
    pub batches: Vec<Batch>,
}

/// A bounded queue of batches, the state behind [`Feed`] and [`Intake`] (and the batches the
/// dispatcher holds for a sink being swapped).
#[derive(Debug)]
pub struct Queue {
    bound: Bound,
    batches: VecDeque<Batch>,
    samples: usize,
}

impl Queue {
    /// An empty queue.
    pub fn new(bound: Bound) -> Queue {
        Queue {
            bound,
            batches: VecDeque::new(),
            samples: 0,
        }
    }

    /// Queues `batch` under the bound; returns what did not fit.
    pub fn push(&mut self, batch: Batch) -> Overflow {
        let mut overflow = Overflow::default();
        let fits = |q: &Queue| q.batches.is_empty() || q.samples + batch.len() <= q.bound.samples;
        if !fits(self) {
            match self.bound.when_full {
                WhenFull::DropNewest => {
                    overflow.batches.push(batch);
                    return overflow;
                }
                WhenFull::DropOldest => {
                    while !fits(self) {
                        if let Some(old) = self.pop() {
                            overflow.batches.push(old);
                        }
                    }
                }
            }
        }
        self.samples += batch.len();
        self.batches.push_back(batch);
        overflow
    }

    /// The oldest batch.
    pub fn pop(&mut self) -> Option<Batch> {
        let batch = self.batches.pop_front()?;
        self.samples -= batch.len();
        Some(batch)
    }

    /// Samples queued.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Batches queued.
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// The bound it keeps.
    pub fn bound(&self) -> Bound {
        self.bound
    }
}

#[derive(Debug)]
struct State {
    queue: Queue,
    fed: bool,
    taken: bool,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// One consumer: `notify_one` keeps a permit when it is not waiting yet.
    ready: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned one still holds a consistent queue.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The dispatcher's end of a sink's intake.
#[derive(Debug)]
pub struct Feed {
    shared: Arc<Shared>,
}

/// The sink's end: batches in order, `None` once the feed is gone and all is taken.
#[derive(Debug)]
pub struct Intake {
    shared: Arc<Shared>,
}

/// A sink's intake under `bound`: the feed for the dispatcher, the intake for the sink.
pub fn intake(bound: Bound) -> (Feed, Intake) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: Queue::new(bound),
            fed: true,
            taken: true,
        }),
        ready: Notify::new(),
    });
    (
        Feed {
            shared: Arc::clone(&shared),
        },
        Intake { shared },
    )
}

/// What became of a pushed batch.
#[derive(Debug)]
pub enum Pushed {
    /// Queued; the overflow holds what its sink's bound made room by (or the batch itself).
    Queued(Overflow),
    /// The sink has ended: nobody will take it.
    Closed(Batch),
}

impl Feed {
    /// Queues `batch` for the sink without waiting.
    pub fn push(&self, batch: Batch) -> Pushed {
        let overflow = {
            let mut state = self.shared.lock();
            if !state.taken {
                return Pushed::Closed(batch);
            }
            state.queue.push(batch)
        };
        self.shared.ready.notify_one();
        Pushed::Queued(overflow)
    }

    /// The bound of the intake.
    pub fn bound(&self) -> Bound {
        self.shared.lock().queue.bound()
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.shared.lock().fed = false;
        self.shared.ready.notify_one();
    }
}

impl Intake {
    /// The next batch, waiting for one; `None` once the feed is dropped and the queue empty.
    pub async fn recv(&mut self) -> Option<Batch> {
        loop {
            {
                let mut state = self.shared.lock();
                if let Some(batch) = state.queue.pop() {
                    return Some(batch);
                }
                if !state.fed {
                    return None;
                }
            }
            self.shared.ready.notified().await;
        }
    }

    /// [`Intake::recv`] for a sink on a thread of the blocking pool (it must not be called
    /// from an async task).
    pub fn blocking_recv(&mut self) -> Option<Batch> {
        tokio::runtime::Handle::current().block_on(self.recv())
    }

    /// The next batch if one is queued.
    pub fn try_recv(&mut self) -> Option<Batch> {
        self.shared.lock().queue.pop()
    }

    /// True when nothing waits to be taken.
    pub fn is_empty(&self) -> bool {
        self.shared.lock().queue.is_empty()
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        self.shared.lock().taken = false;
    }
}

#[cfg(test)]
mod tests;
