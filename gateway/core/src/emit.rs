//! The emitter: the one place where a producer's reading becomes a sample.
//!
//! Every driver (and every other producer of samples) goes through an [`Emitter`] for its
//! machine, so the contract's per-tag rules are written once:
//! - `seq` per tag: 1 for the first sample after start, +1 for every sample sent;
//! - bad once: a tag that goes bad gets one bad sample, not one per failed poll;
//! - never a stale good value: a machine that stops answering gets each tag bad (once);
//! - timestamps of the gateway's clock never repeat within a machine ([`Stamps`]);
//! - the machine's status changes travel in its stream as [`Sample::status`] events: `online`
//!   before the first good sample read after it, `offline` after the last sample read before
//!   it, so that every sink sees them in their place.
//!
//! - report by exception ([`change`]): under `publish = "change"` a reading that did not change
//!   is not sent, heartbeats are, and the first reading after start or after the machine is
//!   back online always goes out.
//!
//! - computed tags ([`derived`]): `seq` and timestamps for values a producer computes (KPIs),
//!   with no status of their own.
//!
//! Text that did not change shares one allocation instead of a new one every poll.

pub mod change;
pub mod derived;

use crate::ring::Producer;
use crate::sample::{MachineId, Quality, Sample, TagId, Text, Value};
use crate::status::{MachineState, StatusReporter, StatusTracker};
use crate::time::{Stamps, now_ms};
pub use change::{ChangeFilter, Publish};
use std::sync::Arc;
use std::time::Duration;

/// What the emitter remembers of one tag.
#[derive(Debug, Default, Clone)]
struct TagState {
    seq: u64,
    bad: bool,
    last_text: Option<Text>,
}

/// Turns one machine's readings and state changes into samples on its ring lane.
#[derive(Debug)]
pub struct Emitter {
    machine: MachineId,
    tags: Vec<TagState>,
    batch: Vec<Sample>,
    producer: Producer,
    stamps: Stamps,
    status: StatusTracker,
    change: ChangeFilter,
    clock: fn() -> i64,
}

impl Emitter {
    /// An emitter for `machine` (named `name` in logs) with `tags` tags, pushing to `producer`
    /// and reporting state changes to `reporter` as well as into the stream.
    pub fn new(
        machine: MachineId,
        name: &str,
        tags: usize,
        producer: Producer,
        reporter: Arc<dyn StatusReporter>,
    ) -> Emitter {
        let mut states = vec![TagState::default(); tags];
        for (st, seq) in states.iter_mut().zip(reporter.first_seqs(machine)) {
            st.seq = seq;
        }
        Emitter {
            machine,
            tags: states,
            batch: Vec::with_capacity(tags.clamp(1, 4096)),
            producer,
            stamps: Stamps::default(),
            status: StatusTracker::new(machine, name, reporter),
            change: ChangeFilter::new(Publish::Every, tags),
            clock: now_ms,
        }
    }

    /// The same emitter reading the time from `clock` (wall-clock milliseconds by default):
    /// for replaying hours of machine time in a benchmark.
    pub fn with_clock(mut self, clock: fn() -> i64) -> Emitter {
        self.clock = clock;
        self
    }

    /// The same emitter publishing under `publish` (report by exception).
    pub fn with_publish(mut self, publish: Publish) -> Emitter {
        self.change = ChangeFilter::new(publish, self.tags.len());
        self
    }

    /// The time of a reading taken now by the gateway's clock: never the same millisecond
    /// twice, or the store would keep only one of the two.
    pub fn now(&mut self) -> i64 {
        self.stamps.next((self.clock)())
    }

    /// A reading of tag `tag` at `ts`. A bad one is sent once; a good or uncertain one makes
    /// the machine online first if it was not, and is sent unless report by exception holds it
    /// back. A tag index out of range is ignored.
    pub fn reading(&mut self, tag: usize, ts: i64, value: Value, quality: Quality) {
        if quality == Quality::Bad || tag >= self.tags.len() {
            self.bad_once(tag, ts);
            return;
        }
        if self.status.state() != Some(MachineState::Online) {
            let now = (self.clock)();
            self.set_status(MachineState::Online, None, ts.min(now));
        }
        // A float that is not finite is a bad reading, but still a reading: under "every" it is
        // sent each poll like any other, under "change" once.
        let (value, quality) = match value {
            Value::F64(f) if !f.is_finite() => (Value::Null, Quality::Bad),
            v => (v, quality),
        };
        if !self.change.wants(tag, &value, quality, ts) {
            return;
        }
        // The clock is read only where report by exception needs it: not once per reading
        // under "every".
        let now = if self.change.filters() {
            (self.clock)()
        } else {
            0
        };
        self.send(tag, ts, value, quality, now);
    }

    /// Sends again, stamped now, the last value of every tag whose heartbeat is due; for a
    /// producer that only hears of changes. Returns how many were queued.
    pub fn heartbeats(&mut self) -> usize {
        if self.status.state() != Some(MachineState::Online) {
            return 0;
        }
        let now = (self.clock)();
        let due = self.change.due(now);
        if due.is_empty() {
            return 0;
        }
        let ts = self.now();
        let n = due.len();
        for (tag, value, quality) in due {
            self.send(tag, ts, value, quality, now);
        }
        n
    }

    /// When the next heartbeat falls due (gateway milliseconds), if any tag has one pending.
    pub fn next_heartbeat(&self) -> Option<i64> {
        self.change.next_due()
    }

    fn send(&mut self, tag: usize, ts: i64, value: Value, quality: Quality, now: i64) {
        let Some(st) = self.tags.get_mut(tag) else {
            return;
        };
        let value = match value {
            Value::Text(t) => match &st.last_text {
                Some(old) if old.as_str() == t.as_str() => Value::Text(old.clone()),
                _ => {
                    st.last_text = Some(t.clone());
                    Value::Text(t)
                }
            },
            v => v,
        };
        self.change.sent(tag, &value, quality, ts, now);
        st.seq += 1;
        st.bad = quality == Quality::Bad;
        self.batch.push(Sample::new(
            self.machine,
            tag_id(tag),
            ts,
            st.seq,
            value,
            quality,
        ));
    }

    /// A bad sample of `tag` at `ts`, unless its last sample already was bad.
    pub fn bad_once(&mut self, tag: usize, ts: i64) {
        let Some(st) = self.tags.get_mut(tag) else {
            return;
        };
        if st.bad {
            return;
        }
        st.bad = true;
        st.seq += 1;
        self.batch
            .push(Sample::bad(self.machine, tag_id(tag), ts, st.seq));
        if self.change.filters() {
            let now = (self.clock)();
            self.change.sent(tag, &Value::Null, Quality::Bad, ts, now);
        }
    }

    /// The machine answers (before any reading of this poll is pushed).
    pub fn online(&mut self) {
        self.set_status(MachineState::Online, None, (self.clock)());
    }

    /// The driver is (re)connecting and has no answer yet.
    pub fn connecting(&mut self) {
        self.set_status(MachineState::Connecting, None, (self.clock)());
    }

    /// The machine stopped answering: every tag bad (once), then the `offline` status with
    /// `error`, all pushed at once.
    pub fn offline(&mut self, error: String) {
        let ts = self.now();
        for tag in 0..self.tags.len() {
            self.bad_once(tag, ts);
        }
        self.set_status(MachineState::Offline, Some(error), ts.max((self.clock)()));
        self.flush();
    }

    /// Records the duration of one poll cycle.
    pub fn poll_done(&self, duration: Duration) {
        self.status.poll_done(duration);
    }

    /// Pushes what is queued to the ring; returns how many samples the ring dropped.
    pub fn flush(&mut self) -> u64 {
        if self.batch.is_empty() {
            return 0;
        }
        let dropped = self.producer.push_batch(&mut self.batch);
        if dropped > 0 {
            tracing::debug!(
                machine = self.machine.0,
                dropped,
                "ring full, samples dropped"
            );
        }
        dropped
    }

    fn set_status(&mut self, state: MachineState, error: Option<String>, ts: i64) {
        let event = Sample::status(self.machine, ts, state, error.as_deref());
        if self.status.report_at(state, error, ts) {
            self.batch.push(event);
            if state == MachineState::Online {
                // Back online: whatever a subscriber saw before is old, so every tag goes out.
                self.change.reset();
            }
        }
    }
}

impl Drop for Emitter {
    /// Hands the tags' `seq` back (a restarted machine continues them) and, for a machine
    /// removed from the configuration, sends its last status in its place in the stream.
    fn drop(&mut self) {
        let seqs: Vec<u64> = self.tags.iter().map(|t| t.seq).collect();
        if let Some(error) = self.status.reporter().ended(self.machine, &seqs) {
            self.offline(error);
        }
    }
}

fn tag_id(tag: usize) -> TagId {
    // Catalogs hold fewer than u16::MAX tags per machine, so this never saturates in use.
    TagId(u16::try_from(tag).unwrap_or(u16::MAX - 1))
}

#[cfg(test)]
mod tests;
