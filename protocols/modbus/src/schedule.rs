//! When each machine on a bus polls next. Pure: no I/O; the bus sleeps until the time it gives.
//!
//! The machine due earliest goes first, so a bus with time for all keeps every machine's
//! interval, and one without time for all shares it fairly (a late machine skips the ticks it
//! missed instead of catching up in a burst). A machine that failed 3 polls in a row is tried
//! only with backoff, so a dead unit does not eat its neighbours' time.

use shopfloor_core::backoff::Backoff;
use std::time::Duration;
use tokio::time::Instant;

/// Failed polls in a row after which a machine is tried only with backoff.
pub const FAILS_BEFORE_BACKOFF: u32 = 3;

/// Longest wait between two tries of a machine that does not answer.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
struct Slot {
    interval: Duration,
    due: Instant,
    fails: u32,
    backoff: Backoff,
}

/// The polls of one bus.
#[derive(Debug, Clone)]
pub struct Schedule {
    slots: Vec<Slot>,
}

impl Schedule {
    /// Machines polling every `intervals[i]`, the first poll of each `offsets[i]` after `start`.
    pub fn new(start: Instant, intervals: &[Duration], offsets: &[Duration]) -> Schedule {
        let slots = intervals
            .iter()
            .zip(offsets)
            .map(|(&interval, &offset)| Slot {
                interval,
                due: start + offset,
                fails: 0,
                backoff: Backoff::new(interval.max(Duration::from_secs(1)), MAX_BACKOFF),
            })
            .collect();
        Schedule { slots }
    }

    /// The machine to poll next and when: the earliest due, the first listed among equals.
    pub fn next(&self) -> Option<(usize, Instant)> {
        self.slots
            .iter()
            .enumerate()
            .min_by_key(|(i, s)| (s.due, *i))
            .map(|(i, s)| (i, s.due))
    }

    /// Machine `i` answered its poll that ended at `now`.
    pub fn answered(&mut self, i: usize, now: Instant) {
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        s.fails = 0;
        s.backoff.reset();
        s.due = next_tick(s.due, s.interval, now);
    }

    /// Machine `i` did not answer its poll that ended at `now`.
    pub fn failed(&mut self, i: usize, now: Instant) {
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        s.fails = s.fails.saturating_add(1);
        s.due = if s.fails >= FAILS_BEFORE_BACKOFF {
            now + s.backoff.next_delay()
        } else {
            next_tick(s.due, s.interval, now)
        };
    }

    /// No machine polls before `until` (the bus connection is down and retried then).
    pub fn hold_all(&mut self, until: Instant) {
        for s in &mut self.slots {
            s.due = s.due.max(until);
        }
    }

    /// Failed polls in a row of machine `i`.
    pub fn fails(&self, i: usize) -> u32 {
        self.slots.get(i).map_or(0, |s| s.fails)
    }
}

/// The first tick of `interval` after `due` that is later than `now`: ticks already missed are
/// skipped, keeping the machine's phase.
fn next_tick(due: Instant, interval: Duration, now: Instant) -> Instant {
    let next = due + interval;
    if next > now || interval.is_zero() {
        return next.max(now);
    }
    let behind = now.duration_since(next).as_nanos();
    let step = interval.as_nanos();
    let skip = (behind / step + 1).min(u128::from(u32::MAX)) as u32;
    next + interval * skip
}

#[cfg(test)]
mod tests;
