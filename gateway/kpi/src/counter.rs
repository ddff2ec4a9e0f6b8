//! A counter's rises between readings, across resets.

use serde::{Deserialize, Serialize};

/// The last value of a counter that only rises, except when it is reset.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Counter {
    last: Option<f64>,
}

impl Counter {
    /// What the counter rose by since its last reading: nothing for the first reading (it is
    /// the baseline) and nothing when it went down (a reset: counting goes on from the new
    /// value). A value that is not finite is ignored.
    pub fn step(&mut self, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        let rise = match self.last {
            Some(last) if value >= last => value - last,
            _ => 0.0,
        };
        self.last = Some(value);
        rise
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rises_are_counted_and_resets_count_on_from_the_new_value() {
        let mut c = Counter::default();
        let rises: Vec<f64> = [5.0, 7.0, 7.0, 2.0, 4.0, f64::NAN, 5.0]
            .into_iter()
            .map(|v| c.step(v))
            .collect();
        assert_eq!(rises, [0.0, 2.0, 0.0, 0.0, 2.0, 0.0, 1.0]);
    }

    proptest! {
        #[test]
        fn without_resets_the_rises_add_up_to_last_less_first(
            mut values in proptest::collection::vec(0u32..1_000_000, 1..50)
        ) {
            values.sort_unstable();
            let mut c = Counter::default();
            let sum: f64 = values.iter().map(|&v| c.step(f64::from(v))).sum();
            let want = f64::from(values[values.len() - 1] - values[0]);
            prop_assert_eq!(sum, want);
        }

        #[test]
        fn rises_are_never_negative(values in proptest::collection::vec(-1e9f64..1e9, 0..50)) {
            let mut c = Counter::default();
            for v in values {
                prop_assert!(c.step(v) >= 0.0);
            }
        }
    }
}
