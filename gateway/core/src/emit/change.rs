//! Report by exception: which readings are changes worth a sample.
//!
//! Pure: no clock and no I/O; the caller passes the time. The emitter asks [`ChangeFilter::wants`]
//! for every good or uncertain reading and tells [`ChangeFilter::sent`] what it sent, so that
//! `seq` counts exactly what is sent and the filter always compares with what a subscriber last
//! saw, not with the last reading (a slow drift of many small steps is still sent once it has
//! moved beyond the deadband).

use crate::sample::{Quality, Value};
use std::time::Duration;

/// How a machine publishes its readings.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Publish {
    /// Every reading is a sample (the default).
    #[default]
    Every,
    /// Only readings that changed, and a tag unsent for `heartbeat` again with its current
    /// reading (`None`: never).
    Change {
        /// The longest time a tag stays unsent while the machine is online.
        heartbeat: Option<Duration>,
        /// Per tag (by index), how far a number must move from the value last sent to count as
        /// changed; 0 (or a missing entry) means any difference.
        deadbands: Vec<f64>,
    },
}

/// What was last sent for one tag.
#[derive(Debug, Clone)]
struct Last {
    value: Value,
    quality: Quality,
    /// The gateway's clock when it was sent: when a heartbeat of its own falls due.
    sent_ms: i64,
    /// The sample's timestamp: a polled tag's heartbeat is due by the readings' own stamps, so
    /// that no two samples a subscriber sees are closer than the heartbeat.
    sent_ts: i64,
}

/// Per-tag memory of the last sample sent, deciding what is a change.
#[derive(Debug, Clone, Default)]
pub struct ChangeFilter {
    publish: Publish,
    last: Vec<Option<Last>>,
}

impl ChangeFilter {
    /// A filter for `tags` tags under `publish`.
    pub fn new(publish: Publish, tags: usize) -> ChangeFilter {
        ChangeFilter {
            publish,
            last: vec![None; tags],
        }
    }

    /// Whether the filter ever holds a reading back.
    pub fn filters(&self) -> bool {
        matches!(self.publish, Publish::Change { .. })
    }

    /// Whether a reading of `tag` (good or uncertain) stamped `ts` is to be sent.
    pub fn wants(&self, tag: usize, value: &Value, quality: Quality, ts: i64) -> bool {
        let Publish::Change {
            heartbeat,
            deadbands,
        } = &self.publish
        else {
            return true;
        };
        let Some(Some(last)) = self.last.get(tag) else {
            return true;
        };
        if last.quality != quality {
            return true;
        }
        if heartbeat.is_some_and(|h| ts.saturating_sub(last.sent_ts) >= millis(h)) {
            return true;
        }
        let deadband = deadbands.get(tag).copied().unwrap_or(0.0);
        changed(&last.value, value, deadband)
    }

    /// Notes that a sample of `tag` with `value` and `quality`, stamped `ts`, was sent at
    /// gateway time `now_ms`.
    pub fn sent(&mut self, tag: usize, value: &Value, quality: Quality, ts: i64, now_ms: i64) {
        if !self.filters() {
            return;
        }
        if let Some(slot) = self.last.get_mut(tag) {
            *slot = Some(Last {
                value: value.clone(),
                quality,
                sent_ms: now_ms,
                sent_ts: ts,
            });
        }
    }

    /// Forgets what was sent, so that the next reading of every tag goes out (after start, and
    /// when the machine is back online).
    pub fn reset(&mut self) {
        self.last.iter_mut().for_each(|l| *l = None);
    }

    /// The tags whose heartbeat is due at `now_ms`, with the value and quality last sent: a
    /// producer that only hears of changes (an OPC UA subscription) sends these again. A tag
    /// last sent bad is not due: a bad sample is sent once.
    pub fn due(&self, now_ms: i64) -> Vec<(usize, Value, Quality)> {
        let Publish::Change {
            heartbeat: Some(h), ..
        } = &self.publish
        else {
            return Vec::new();
        };
        let h = millis(*h);
        self.last
            .iter()
            .enumerate()
            .filter_map(|(tag, l)| {
                let l = l.as_ref()?;
                let due = l.quality != Quality::Bad && now_ms.saturating_sub(l.sent_ms) >= h;
                due.then(|| (tag, l.value.clone(), l.quality))
            })
            .collect()
    }

    /// The earliest gateway time at which some tag's heartbeat falls due, if any.
    pub fn next_due(&self) -> Option<i64> {
        let Publish::Change {
            heartbeat: Some(h), ..
        } = &self.publish
        else {
            return None;
        };
        self.last
            .iter()
            .flatten()
            .filter(|l| l.quality != Quality::Bad)
            .map(|l| l.sent_ms.saturating_add(millis(*h)))
            .min()
    }
}

/// Whether `new` differs from `old`: beyond `deadband` for two numbers, any difference
/// otherwise (a number that changed its type counts as changed).
pub fn changed(old: &Value, new: &Value, deadband: f64) -> bool {
    match (number(old), number(new)) {
        (Some(a), Some(b)) if deadband > 0.0 => (b - a).abs() > deadband,
        _ => old != new,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::I64(i) => Some(*i as f64),
        Value::U64(u) => Some(*u as f64),
        Value::F64(f) => Some(*f),
        _ => None,
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
