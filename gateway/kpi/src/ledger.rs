//! What one machine did over time: when it was running, stopped or not known, and what its
//! counters added, kept for as long as a window or a shift reaches back.

use crate::counter::Counter;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// What a machine is doing, as its `state` tag says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activity {
    /// Not known: offline, the state not read yet, or read bad. Not part of known time.
    Unknown,
    /// In a `running` state: producing.
    Running,
    /// In a `planned_stop` state (setup, maintenance): known, but not planned time.
    PlannedStop,
    /// Any other state (idle, alarm): planned time lost.
    Stopped,
}

/// Which counter a reading belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Good parts.
    Good,
    /// Rejected parts.
    Reject,
    /// Energy, kWh.
    Energy,
}

/// What the counters added in one second.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
struct Added {
    /// The second, as the millisecond it starts at.
    ts: i64,
    good: f64,
    reject: f64,
    energy: f64,
}

/// Sums of one span of time, the inputs of every KPI.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Totals {
    /// The span's length.
    pub span_ms: i64,
    /// Online with its state read.
    pub known_ms: i64,
    /// Known, less planned stops.
    pub planned_ms: i64,
    /// In a running state.
    pub running_ms: i64,
    /// In a planned stop.
    pub planned_stop_ms: i64,
    /// Good parts made.
    pub good: f64,
    /// Rejected parts made.
    pub reject: f64,
    /// Energy used, kWh.
    pub energy_kwh: f64,
}

impl std::ops::Add for Totals {
    type Output = Totals;

    fn add(self, o: Totals) -> Totals {
        Totals {
            span_ms: self.span_ms + o.span_ms,
            known_ms: self.known_ms + o.known_ms,
            planned_ms: self.planned_ms + o.planned_ms,
            running_ms: self.running_ms + o.running_ms,
            planned_stop_ms: self.planned_stop_ms + o.planned_stop_ms,
            good: self.good + o.good,
            reject: self.reject + o.reject,
            energy_kwh: self.energy_kwh + o.energy_kwh,
        }
    }
}

/// One machine's activity and counted increments over time (UTC milliseconds).
///
/// Times that go backwards (a device clock, two sources) are taken as the latest time seen, so
/// the record stays in order and no time is counted twice.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ledger {
    /// Change points in time order: the activity holds from its time until the next one.
    changes: VecDeque<(i64, Activity)>,
    /// Increments, one entry per second at most, in time order.
    added: VecDeque<Added>,
    good: Counter,
    reject: Counter,
    energy: Counter,
}

impl Ledger {
    /// An empty ledger: nothing known yet.
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// The activity from `ts` on.
    pub fn activity(&mut self, ts: i64, activity: Activity) {
        let ts = match self.changes.back() {
            Some(&(_, last)) if last == activity => return,
            Some(&(t, _)) => ts.max(t),
            None => ts,
        };
        if let Some(back) = self.changes.back_mut()
            && back.0 == ts
        {
            back.1 = activity;
            return;
        }
        self.changes.push_back((ts, activity));
    }

    /// The activity now (the last one recorded).
    pub fn current(&self) -> Activity {
        self.changes.back().map_or(Activity::Unknown, |c| c.1)
    }

    /// A reading of a counter at `ts`: what it rose by since its last reading is counted at
    /// `ts`. A counter that went down was reset and counts on from its new value.
    pub fn counter(&mut self, ts: i64, which: Counted, value: f64) {
        let counter = match which {
            Counted::Good => &mut self.good,
            Counted::Reject => &mut self.reject,
            Counted::Energy => &mut self.energy,
        };
        let rise = counter.step(value);
        if rise == 0.0 {
            return;
        }
        let second = ts.div_euclid(1000) * 1000;
        let second = self.added.back().map_or(second, |b| second.max(b.ts));
        if self.added.back().is_none_or(|b| b.ts != second) {
            self.added.push_back(Added {
                ts: second,
                ..Added::default()
            });
        }
        if let Some(b) = self.added.back_mut() {
            match which {
                Counted::Good => b.good += rise,
                Counted::Reject => b.reject += rise,
                Counted::Energy => b.energy += rise,
            }
        }
    }

    /// The sums over `from..to`: time in `[from, to)`, increments counted at a time in
    /// `[from, to)` (the second they fell in). Adjacent spans add up to the span they make.
    pub fn totals(&self, from: i64, to: i64) -> Totals {
        let mut t = Totals {
            span_ms: (to - from).max(0),
            ..Totals::default()
        };
        for (i, &(start, activity)) in self.changes.iter().enumerate() {
            let end = self.changes.get(i + 1).map_or(to, |n| n.0);
            let ms = end.min(to) - start.max(from);
            if ms <= 0 {
                continue;
            }
            match activity {
                Activity::Unknown => {}
                Activity::Running => t.running_ms += ms,
                Activity::PlannedStop => t.planned_stop_ms += ms,
                Activity::Stopped => {}
            }
            if activity != Activity::Unknown {
                t.known_ms += ms;
            }
        }
        t.planned_ms = t.known_ms - t.planned_stop_ms;
        for a in self.added.iter().filter(|a| a.ts >= from && a.ts < to) {
            t.good += a.good;
            t.reject += a.reject;
            t.energy_kwh += a.energy;
        }
        t
    }

    /// Forgets what lies wholly before `ts`; the activity in effect at `ts` is kept.
    pub fn forget_before(&mut self, ts: i64) {
        while self.changes.len() > 1 && self.changes.get(1).is_some_and(|c| c.0 <= ts) {
            self.changes.pop_front();
        }
        while self.added.front().is_some_and(|a| a.ts < ts) {
            self.added.pop_front();
        }
    }

    /// How many entries the ledger holds (for its bound and its tests).
    pub fn len(&self) -> usize {
        self.changes.len() + self.added.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Activity::*;

    fn ledger(changes: &[(i64, Activity)]) -> Ledger {
        let mut l = Ledger::new();
        for &(ts, a) in changes {
            l.activity(ts, a);
        }
        l
    }

    #[test]
    fn time_is_split_by_activity_within_the_span() {
        // running 0..60, idle 60..70, setup 70..100, offline 100..120, running 120..
        let l = ledger(&[
            (0, Running),
            (60, Stopped),
            (70, PlannedStop),
            (100, Unknown),
            (120, Running),
        ]);
        let cases = [
            // (from, to, known, planned, running, planned_stop)
            (0, 150, 130, 100, 90, 30),
            (50, 80, 30, 20, 10, 10),
            (100, 120, 0, 0, 0, 0),
            (-50, 0, 0, 0, 0, 0),
            (140, 200, 60, 60, 60, 0),
        ];
        for (from, to, known, planned, running, stop) in cases {
            let t = l.totals(from, to);
            assert_eq!(
                (t.known_ms, t.planned_ms, t.running_ms, t.planned_stop_ms),
                (known, planned, running, stop),
                "{from}..{to}"
            );
            assert_eq!(t.span_ms, to - from);
        }
    }

    #[test]
    fn counters_add_their_rises_and_count_on_after_a_reset() {
        let mut l = Ledger::new();
        // (ts, value): first reading is the baseline; 110 → 3 is a reset.
        for (ts, v) in [
            (0, 100.0),
            (1_000, 101.0),
            (2_500, 105.0),
            (4_000, 3.0),
            (5_000, 6.0),
        ] {
            l.counter(ts, Counted::Good, v);
        }
        assert_eq!(l.totals(0, 10_000).good, 8.0);
        assert_eq!(l.totals(2_000, 3_000).good, 4.0);
        assert_eq!(l.totals(3_000, 10_000).good, 3.0);
    }

    #[test]
    fn times_that_go_back_are_taken_as_the_latest_seen() {
        let mut l = ledger(&[(100, Running), (50, Stopped)]);
        assert_eq!(
            l.totals(0, 200).running_ms,
            0,
            "the later change wins at 100"
        );
        assert_eq!(l.totals(0, 200).known_ms, 100);
        l.counter(5_000, Counted::Reject, 1.0);
        l.counter(5_000, Counted::Reject, 2.0);
        l.counter(1_000, Counted::Reject, 4.0);
        assert_eq!(l.totals(5_000, 6_000).reject, 3.0);
    }

    #[test]
    fn forgetting_keeps_the_activity_in_effect() {
        let mut l = ledger(&[(0, Running), (100, Stopped), (200, Running)]);
        l.counter(0, Counted::Good, 0.0);
        l.counter(1_000, Counted::Good, 1.0);
        l.counter(3_000, Counted::Good, 2.0);
        l.forget_before(150);
        assert_eq!(l.totals(150, 250).running_ms, 50);
        assert_eq!(l.totals(150, 250).known_ms, 100);
        l.forget_before(2_000);
        assert_eq!(l.totals(0, 10_000).good, 1.0);
        assert_eq!(l.current(), Running);
    }
}
