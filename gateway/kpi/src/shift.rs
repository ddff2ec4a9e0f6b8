//! Shifts: when the current one began, from the shift starts in local time.

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use std::str::FromStr;
use thiserror::Error;

/// The time zone when the file names none.
pub const DEFAULT_TIMEZONE: &str = "Europe/Amsterdam";

/// A shift start or time zone that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ShiftError {
    /// Not `HH:MM`.
    #[error("{0:?} is no time of day; write it as \"06:00\"")]
    Time(String),
    /// No such IANA time zone.
    #[error("{0:?} is no time zone known here; use an IANA name such as \"Europe/Amsterdam\"")]
    Zone(String),
}

/// A shift start, `HH:MM` local time.
pub fn parse_start(text: &str) -> Result<Time, ShiftError> {
    let bad = || ShiftError::Time(text.to_owned());
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h = i8::from_str(h).map_err(|_| bad())?;
    let m = i8::from_str(m).map_err(|_| bad())?;
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

/// An IANA time zone by name.
pub fn zone(name: &str) -> Result<TimeZone, ShiftError> {
    TimeZone::get(name).map_err(|_| ShiftError::Zone(name.to_owned()))
}

/// The shift starts of every day, in one time zone.
#[derive(Debug, Clone)]
pub struct Shifts {
    starts: Vec<Time>,
    zone: TimeZone,
}

impl Shifts {
    /// Shifts starting at `starts` (local times, any order) in `zone`; `None` without starts.
    pub fn new(mut starts: Vec<Time>, zone: TimeZone) -> Option<Shifts> {
        starts.sort();
        starts.dedup();
        (!starts.is_empty()).then_some(Shifts { starts, zone })
    }

    /// When the shift that holds `now_ms` began (UTC milliseconds): the latest start at or
    /// before it, today or yesterday. A start that a clock change skips falls at the first
    /// valid time after it.
    pub fn current_start(&self, now_ms: i64) -> Option<i64> {
        let now = Timestamp::from_millisecond(now_ms).ok()?;
        let today = now.to_zoned(self.zone.clone()).date();
        let yesterday = today.checked_sub(1.day()).ok()?;
        [yesterday, today]
            .iter()
            .flat_map(|d| self.starts.iter().map(move |t| d.to_datetime(*t)))
            .filter_map(|dt| dt.to_zoned(self.zone.clone()).ok())
            .map(|z| z.timestamp().as_millisecond())
            .filter(|&ms| ms <= now_ms)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> i64 {
        Timestamp::from_str(rfc3339).map_or(0, |t| t.as_millisecond())
    }

    #[test]
    fn starts_are_read_as_hh_mm() {
        assert_eq!(parse_start("06:00"), Ok(Time::constant(6, 0, 0, 0)));
        assert_eq!(parse_start("22:30"), Ok(Time::constant(22, 30, 0, 0)));
        for bad in ["6:00", "24:00", "06:60", "0600", "ab:cd", ""] {
            assert_eq!(parse_start(bad), Err(ShiftError::Time(bad.into())), "{bad}");
        }
        assert!(zone(DEFAULT_TIMEZONE).is_ok());
        assert!(zone("Mars/Olympus").is_err());
    }

    #[test]
    fn the_current_shift_is_the_latest_start_before_now() {
        let starts = ["06:00", "14:00", "22:00"].map(|s| parse_start(s).unwrap_or(Time::MIN));
        let shifts = Shifts::new(
            starts.to_vec(),
            zone(DEFAULT_TIMEZONE).unwrap_or(TimeZone::UTC),
        );
        let Some(shifts) = shifts else {
            panic!("three starts make shifts");
        };
        let cases = [
            // Amsterdam is UTC+1 in winter, UTC+2 in summer.
            ("2026-12-02T10:00:00Z", "2026-12-02T05:00:00Z"),
            ("2026-12-02T13:00:00Z", "2026-12-02T13:00:00Z"),
            ("2026-12-02T02:00:00Z", "2026-12-01T21:00:00Z"),
            ("2026-12-01T23:30:00Z", "2026-12-01T21:00:00Z"),
            ("2026-07-01T04:30:00Z", "2026-07-01T04:00:00Z"),
            // 29 March 2026: clocks go from 02:00 to 03:00; the 22:00 shift of the day before
            // lasts an hour less.
            ("2026-03-29T04:30:00Z", "2026-03-29T04:00:00Z"),
            ("2026-03-29T03:30:00Z", "2026-03-28T21:00:00Z"),
        ];
        for (now, want) in cases {
            assert_eq!(shifts.current_start(ms(now)), Some(ms(want)), "{now}");
        }
        assert!(Shifts::new(vec![], TimeZone::UTC).is_none());
    }
}
