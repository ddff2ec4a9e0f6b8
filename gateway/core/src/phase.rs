//! Where in its poll interval each machine polls, so that a hall of machines with the same
//! interval does not read (and hand the sinks) everything in the same millisecond.
//!
//! Machine `i` starts `frac(i × φ⁻¹)` of an interval late: a low-discrepancy sequence, so any
//! number of machines, added in any number, spread evenly without knowing how many there are.

use std::time::Duration;

/// The golden ratio's fractional part.
const INV_PHI: f64 = 0.618_033_988_749_894_8;

/// How late in its `interval` machine number `index` polls; always less than `interval`.
pub fn offset(index: usize, interval: Duration) -> Duration {
    let frac = (index as f64 * INV_PHI).fract();
    interval
        .mul_f64(frac)
        .min(interval.saturating_sub(Duration::from_nanos(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_first_machine_is_not_delayed_and_the_next_spread() {
        let s = Duration::from_secs(1);
        assert_eq!(offset(0, s), Duration::ZERO);
        assert_eq!(offset(1, s).as_millis(), 618);
        assert_eq!(offset(2, s).as_millis(), 236);
        assert_eq!(offset(3, s).as_millis(), 854);
        assert_eq!(offset(5, Duration::ZERO), Duration::ZERO);
    }

    proptest! {
        /// Three-gap theorem: the largest gap between n offsets stays within 3/n of the
        /// interval, so no stretch of the interval takes much more than its share of polls.
        #[test]
        fn any_number_of_machines_spreads_evenly(n in 1usize..2000, ms in 1u64..3_600_000) {
            let interval = Duration::from_millis(ms);
            let mut at: Vec<Duration> = (0..n).map(|i| offset(i, interval)).collect();
            prop_assert!(at.iter().all(|d| *d < interval));
            at.sort_unstable();
            at.push(interval); // the wrap to the next interval's first poll
            let widest = at.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
            prop_assert!(widest <= interval.mul_f64(3.0 / n as f64), "{widest:?} for {n}");
        }
    }
}
