//! Wall-clock time in UTC milliseconds, the timestamp unit of every [`crate::Sample`].

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, UTC; 0 if the clock is set before 1970.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Timestamps of one source that never repeat: a reading in the same millisecond as the one
/// before (a poll that overran its interval is followed at once by the next) gets the next
/// millisecond, since a time-series store keeps one point per series and timestamp and the
/// second would overwrite the first. A clock stepped back by more than [`Stamps::STEP_BACK`] is
/// followed as it is, rather than stamping readings ahead of the wall clock for that long.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stamps {
    last: Option<i64>,
}

impl Stamps {
    /// How far back the clock may go and still be taken for the same moment.
    pub const STEP_BACK: i64 = 1000;

    /// The timestamp for a reading taken at `now`.
    pub fn next(&mut self, now: i64) -> i64 {
        let ts = match self.last {
            Some(last) if now <= last && last - now < Self::STEP_BACK => last + 1,
            _ => now,
        };
        self.last = Some(ts);
        ts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_rise_within_a_millisecond_and_follow_a_real_clock_step() {
        let mut s = Stamps::default();
        let cases = [
            (1_000, 1_000), // first
            (1_100, 1_100), // a normal poll
            (1_100, 1_101), // same millisecond
            (1_100, 1_102), // and again
            (1_101, 1_103), // the clock has not caught up yet
            (1_500, 1_500), // caught up
            (1_200, 1_501), // a small step back: still rising
            (400, 400),     // a step back of over a second: the clock is followed
            (400, 401),
        ];
        for (now, want) in cases {
            assert_eq!(s.next(now), want, "at {now}");
        }
    }
}
