//! The KPIs of one span of time, from its [`Totals`], as ISO 22400-2 defines them.

use crate::ledger::Totals;
use serde::Serialize;

/// What the KPIs need besides the ledger.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// The ideal time for one part, in seconds.
    pub ideal_cycle_s: f64,
    /// The grid's emission factor, kg CO2 per kWh, when configured.
    pub co2_kg_per_kwh: Option<f64>,
}

/// The KPIs of a span, with the sums they come from. A ratio whose denominator is zero is
/// `None` (left out), never 0.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Breakdown {
    /// The span, seconds.
    pub window_s: f64,
    /// Online with the state read, seconds.
    pub known_s: f64,
    /// Known less planned stops, seconds.
    pub planned_s: f64,
    /// Running, seconds.
    pub running_s: f64,
    /// In a planned stop, seconds.
    pub planned_stop_s: f64,
    /// Good parts made.
    pub good: f64,
    /// Rejected parts made.
    pub reject: f64,
    /// Energy used, kWh (0 without a meter).
    pub energy_kwh: f64,
    /// Running / planned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability: Option<f64>,
    /// Ideal cycle × parts made / running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub performance: Option<f64>,
    /// Good / parts made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<f64>,
    /// Availability × performance × quality.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oee: Option<f64>,
    /// Energy used / good parts made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy_per_part_kwh: Option<f64>,
    /// Energy per part × the emission factor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub co2_per_part_kg: Option<f64>,
}

/// `num / den`, left out when `den` is zero.
fn ratio(num: f64, den: f64) -> Option<f64> {
    (den > 0.0).then(|| num / den)
}

impl Breakdown {
    /// The KPIs of `t`. Energy per part needs a meter: `metered` says whether there is one.
    pub fn of(t: &Totals, rates: Rates, metered: bool) -> Breakdown {
        let secs = |ms: i64| ms as f64 / 1000.0;
        let made = t.good + t.reject;
        let availability = ratio(t.running_ms as f64, t.planned_ms as f64);
        let performance = ratio(rates.ideal_cycle_s * made, secs(t.running_ms));
        let quality = ratio(t.good, made);
        let oee = match (availability, performance, quality) {
            (Some(a), Some(p), Some(q)) => Some(a * p * q),
            _ => None,
        };
        let energy_per_part_kwh = if metered {
            ratio(t.energy_kwh, t.good)
        } else {
            None
        };
        Breakdown {
            window_s: secs(t.span_ms),
            known_s: secs(t.known_ms),
            planned_s: secs(t.planned_ms),
            running_s: secs(t.running_ms),
            planned_stop_s: secs(t.planned_stop_ms),
            good: t.good,
            reject: t.reject,
            energy_kwh: t.energy_kwh,
            availability,
            performance,
            quality,
            oee,
            energy_per_part_kwh,
            co2_per_part_kg: energy_per_part_kwh
                .zip(rates.co2_kg_per_kwh)
                .map(|(e, f)| e * f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Activity, Counted, Ledger};
    use proptest::prelude::*;

    const RATES: Rates = Rates {
        ideal_cycle_s: 60.0,
        co2_kg_per_kwh: Some(0.5),
    };

    fn totals(known: i64, planned_stop: i64, running: i64, good: f64, reject: f64) -> Totals {
        Totals {
            span_ms: known,
            known_ms: known,
            planned_ms: known - planned_stop,
            running_ms: running,
            planned_stop_ms: planned_stop,
            good,
            reject,
            energy_kwh: 12.0,
        }
    }

    #[test]
    fn kpis_as_the_standard_defines_them() {
        // An hour: 10 min setup, 40 min running, 10 min idle; 36 parts, 4 rejects.
        let b = Breakdown::of(
            &totals(3_600_000, 600_000, 2_400_000, 36.0, 4.0),
            RATES,
            true,
        );
        let near = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-12);
        assert!(near(b.availability, 0.8), "{b:?}");
        assert!(near(b.performance, 1.0), "{b:?}");
        assert!(near(b.quality, 0.9), "{b:?}");
        assert!(near(b.oee, 0.72), "{b:?}");
        assert!(near(b.energy_per_part_kwh, 12.0 / 36.0), "{b:?}");
        assert!(near(b.co2_per_part_kg, 6.0 / 36.0), "{b:?}");
        assert_eq!(
            (b.planned_s, b.running_s, b.planned_stop_s),
            (3000.0, 2400.0, 600.0)
        );
    }

    #[test]
    fn a_zero_denominator_leaves_the_ratio_out() {
        let cases = [
            // nothing known: no availability; no parts: no quality or performance
            (
                totals(0, 0, 0, 0.0, 0.0),
                [false, false, false, false, false],
            ),
            // running, no parts made: availability and performance (0), no quality
            (
                totals(1000, 0, 1000, 0.0, 0.0),
                [true, true, false, false, false],
            ),
            // only planned stops: no availability
            (
                totals(1000, 1000, 0, 2.0, 0.0),
                [false, false, true, false, true],
            ),
        ];
        for (t, want) in cases {
            let b = Breakdown::of(&t, RATES, true);
            let got = [
                b.availability.is_some(),
                b.performance.is_some(),
                b.quality.is_some(),
                b.oee.is_some(),
                b.energy_per_part_kwh.is_some(),
            ];
            assert_eq!(got, want, "{t:?}");
        }
        let unmetered = Breakdown::of(&totals(1000, 0, 1000, 2.0, 0.0), RATES, false);
        assert_eq!(unmetered.energy_per_part_kwh, None);
        let json = serde_json::to_value(Breakdown::of(&Totals::default(), RATES, true));
        assert!(json.is_ok_and(|j| j.get("oee").is_none() && j.get("known_s").is_some()));
    }

    /// A ledger made of random activity changes and counter readings.
    fn any_ledger() -> impl Strategy<Value = Ledger> {
        let activity = prop_oneof![
            Just(Activity::Unknown),
            Just(Activity::Running),
            Just(Activity::PlannedStop),
            Just(Activity::Stopped),
        ];
        let change = (0i64..100_000, activity);
        let count = (0i64..100_000, 0u32..3, 0u32..1000);
        (
            proptest::collection::vec(change, 0..30),
            proptest::collection::vec(count, 0..60),
        )
            .prop_map(|(mut changes, mut counts)| {
                changes.sort_by_key(|c| c.0);
                counts.sort_by_key(|c| c.0);
                let mut l = Ledger::new();
                for (ts, a) in changes {
                    l.activity(ts, a);
                }
                let mut last = [0u32; 3];
                for (ts, which, step) in counts {
                    let w = which as usize;
                    last[w] += step;
                    let which = [Counted::Good, Counted::Reject, Counted::Energy][w];
                    l.counter(ts, which, f64::from(last[w]));
                }
                l
            })
    }

    proptest! {
        #[test]
        fn the_parts_hold_whatever_the_ledger(
            l in any_ledger(),
            from in -10_000i64..110_000,
            len in 0i64..120_000,
        ) {
            let t = l.totals(from, from + len);
            prop_assert!(t.running_ms <= t.planned_ms && t.planned_ms <= t.known_ms);
            prop_assert!(t.known_ms <= t.span_ms);
            let b = Breakdown::of(&t, RATES, true);
            if let Some(a) = b.availability {
                prop_assert!((0.0..=1.0).contains(&a));
            }
            if let Some(q) = b.quality {
                prop_assert!((0.0..=1.0).contains(&q));
            }
            match (b.availability, b.performance, b.quality, b.oee) {
                (Some(a), Some(p), Some(q), Some(oee)) => {
                    prop_assert!((oee - a * p * q).abs() < 1e-12)
                }
                (_, _, _, oee) => prop_assert!(oee.is_none()),
            }
        }

        #[test]
        fn a_window_cut_in_two_adds_up_to_the_whole(
            l in any_ledger(),
            from in -10_000i64..110_000,
            a in 0i64..60_000,
            b in 0i64..60_000,
        ) {
            let (mid, to) = (from + a, from + a + b);
            let whole = l.totals(from, to);
            let halves = l.totals(from, mid) + l.totals(mid, to);
            prop_assert_eq!(whole, halves);
            let per_part = |t: &Totals| Breakdown::of(t, RATES, true).energy_per_part_kwh;
            prop_assert_eq!(per_part(&whole), per_part(&halves));
        }
    }
}
