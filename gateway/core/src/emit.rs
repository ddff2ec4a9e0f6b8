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
//! Text that did not change shares one allocation instead of a new one every poll.

use crate::ring::Producer;
use crate::sample::{MachineId, Quality, Sample, TagId, Text, Value};
use crate::status::{MachineState, StatusReporter, StatusTracker};
use crate::time::{Stamps, now_ms};
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
        Emitter {
            machine,
            tags: vec![TagState::default(); tags],
            batch: Vec::with_capacity(tags.clamp(1, 4096)),
            producer,
            stamps: Stamps::default(),
            status: StatusTracker::new(machine, name, reporter),
        }
    }

    /// The time of a reading taken now by the gateway's clock: never the same millisecond
    /// twice, or the store would keep only one of the two.
    pub fn now(&mut self) -> i64 {
        self.stamps.next(now_ms())
    }

    /// A reading of tag `tag` at `ts`. A bad one is sent once; a good or uncertain one makes
    /// the machine online first if it was not. A tag index out of range is ignored.
    pub fn reading(&mut self, tag: usize, ts: i64, value: Value, quality: Quality) {
        if quality == Quality::Bad || tag >= self.tags.len() {
            self.bad_once(tag, ts);
            return;
        }
        if self.status.state() != Some(MachineState::Online) {
            self.set_status(MachineState::Online, None, ts.min(now_ms()));
        }
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
        st.seq += 1;
        let sample = Sample::new(self.machine, tag_id(tag), ts, st.seq, value, quality);
        // A float that is not finite became a bad sample: the next bad one is not sent again.
        st.bad = sample.quality() == Quality::Bad;
        self.batch.push(sample);
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
    }

    /// The machine answers (before any reading of this poll is pushed).
    pub fn online(&mut self) {
        self.set_status(MachineState::Online, None, now_ms());
    }

    /// The driver is (re)connecting and has no answer yet.
    pub fn connecting(&mut self) {
        self.set_status(MachineState::Connecting, None, now_ms());
    }

    /// The machine stopped answering: every tag bad (once), then the `offline` status with
    /// `error`, all pushed at once.
    pub fn offline(&mut self, error: String) {
        let ts = self.now();
        for tag in 0..self.tags.len() {
            self.bad_once(tag, ts);
        }
        self.set_status(MachineState::Offline, Some(error), ts.max(now_ms()));
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
        }
    }
}

fn tag_id(tag: usize) -> TagId {
    // Catalogs hold fewer than u16::MAX tags per machine, so this never saturates in use.
    TagId(u16::try_from(tag).unwrap_or(u16::MAX - 1))
}

#[cfg(test)]
mod tests;
