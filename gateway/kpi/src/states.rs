//! What a machine's `state` tag means: which of its values are running, which planned stops.

use crate::ledger::Activity;
use shopfloor_core::ValueRef;

/// One value of a `state` tag, as the configuration names it.
#[derive(Debug, Clone, PartialEq)]
pub enum StateWord {
    /// A text state (`"running"`), compared exactly.
    Text(String),
    /// A numeric state code (`2`), compared with any numeric reading.
    Number(f64),
    /// A boolean state (`true` for a machine whose state is a "producing" bit).
    Bool(bool),
}

impl StateWord {
    fn matches(&self, value: ValueRef<'_>) -> bool {
        match (self, value) {
            (StateWord::Text(w), ValueRef::Text(t)) => w == t,
            (StateWord::Bool(w), ValueRef::Bool(b)) => *w == b,
            (StateWord::Number(w), v) => number(v).is_some_and(|n| n == *w),
            _ => false,
        }
    }
}

/// A reading as a number, when it is one.
pub fn number(value: ValueRef<'_>) -> Option<f64> {
    match value {
        ValueRef::I64(i) => Some(i as f64),
        ValueRef::U64(u) => Some(u as f64),
        ValueRef::F64(f) => Some(f),
        _ => None,
    }
}

/// The meaning of a machine's state values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct States {
    /// Values that mean producing.
    pub running: Vec<StateWord>,
    /// Values that mean a planned stop.
    pub planned_stop: Vec<StateWord>,
}

impl States {
    /// What the machine is doing while its state reads `value`: a value named in neither list
    /// is an unplanned stop; no value (a bad reading) is not known.
    pub fn activity(&self, value: ValueRef<'_>) -> Activity {
        if value == ValueRef::Null {
            Activity::Unknown
        } else if self.running.iter().any(|w| w.matches(value)) {
            Activity::Running
        } else if self.planned_stop.iter().any(|w| w.matches(value)) {
            Activity::PlannedStop
        } else {
            Activity::Stopped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_values_are_classified_by_text_number_or_bool() {
        let s = States {
            running: vec![StateWord::Number(2.0), StateWord::Text("running".into())],
            planned_stop: vec![StateWord::Number(0.0), StateWord::Text("setup".into())],
        };
        let cases = [
            (ValueRef::U64(2), Activity::Running),
            (ValueRef::I64(2), Activity::Running),
            (ValueRef::F64(2.0), Activity::Running),
            (ValueRef::U64(0), Activity::PlannedStop),
            (ValueRef::U64(3), Activity::Stopped),
            (ValueRef::Text("running"), Activity::Running),
            (ValueRef::Text("setup"), Activity::PlannedStop),
            (ValueRef::Text("Running"), Activity::Stopped),
            (ValueRef::Bool(true), Activity::Stopped),
            (ValueRef::Null, Activity::Unknown),
        ];
        for (v, want) in cases {
            assert_eq!(s.activity(v), want, "{v:?}");
        }
        let bit = States {
            running: vec![StateWord::Bool(true)],
            planned_stop: vec![],
        };
        assert_eq!(bit.activity(ValueRef::Bool(true)), Activity::Running);
        assert_eq!(bit.activity(ValueRef::Bool(false)), Activity::Stopped);
    }
}
