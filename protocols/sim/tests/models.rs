//! The simulated machines are deterministic and physically consistent: counters only rise,
//! energy is the integral of power, temperatures move smoothly, a machine in alarm makes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use shopfloor_core::Value;
use shopfloor_sim::cnc::{Cnc, CncState};
use shopfloor_sim::energy::EnergyMeter;
use shopfloor_sim::imm::{Imm, ImmState};
use shopfloor_sim::profile::profile;
use shopfloor_sim::{Model, SimKind};

fn run(kind: SimKind, seed: u64, steps: &[f64]) -> Vec<Vec<Value>> {
    let mut m = kind.build(seed);
    steps
        .iter()
        .map(|dt| {
            m.step(*dt);
            m.values()
        })
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_machine_and_another_seed_another() {
    let steps = vec![0.5; 2000];
    for kind in SimKind::ALL {
        assert_eq!(run(kind, 7, &steps), run(kind, 7, &steps), "{kind}");
        assert_ne!(run(kind, 7, &steps), run(kind, 8, &steps), "{kind}");
    }
}

#[test]
fn every_model_gives_one_value_per_profile_tag() {
    for kind in SimKind::ALL {
        let m = kind.build(1);
        assert_eq!(m.values().len(), profile(kind).len(), "{kind}");
        assert_eq!(m.kind(), kind);
    }
}

#[test]
fn a_cnc_makes_parts_in_cycles_of_60_to_180_s() {
    let mut m = Cnc::new(3);
    let mut last_parts = 0;
    let mut seen_running = false;
    for _ in 0..(4 * 3600 * 2) {
        m.step(0.5);
        seen_running |= m.state() == CncState::Running;
        if m.parts() > last_parts {
            if let Value::F64(cycle) = m.values()[7] {
                assert!((59.0..=181.0).contains(&cycle), "cycle time {cycle}");
            }
            last_parts = m.parts();
        }
    }
    assert!(seen_running);
    // Four hours of a machine that runs most of the time: dozens of parts.
    assert!(last_parts > 30, "only {last_parts} parts in 4 h");
}

#[test]
fn a_moulding_machine_warms_up_then_shoots() {
    let mut m = Imm::new(5);
    assert_eq!(m.state(), ImmState::Heating);
    let mut t = 0.0;
    while m.state() == ImmState::Heating && t < 7200.0 {
        m.step(1.0);
        t += 1.0;
    }
    assert!(t > 300.0 && t < 7200.0, "warm after {t} s");
    let zones = m.zones();
    assert!(
        zones.iter().all(|z| (190.0..240.0).contains(z)),
        "{zones:?}"
    );
    let before = m.shots();
    for _ in 0..600 {
        m.step(0.5);
    }
    // 300 s of ~14 s cycles, unless a heater fault interrupted.
    assert!(
        m.shots() - before >= 10 || m.state() == ImmState::Alarm,
        "{} shots",
        m.shots() - before
    );
}

fn counters(kind: SimKind, v: &[Value]) -> Vec<u64> {
    let idx: &[usize] = match kind {
        SimKind::Cnc => &[4, 5, 6],
        SimKind::InjectionMoulding => &[2, 3],
        SimKind::EnergyMeter => &[],
    };
    idx.iter()
        .map(|i| match v[*i] {
            Value::U64(x) => x,
            _ => panic!("counter {i} is not an integer"),
        })
        .collect()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn counters_only_rise_and_nothing_is_made_in_alarm(
        seed in any::<u64>(),
        steps in proptest::collection::vec(0.05f64..30.0, 50..400),
    ) {
        for kind in [SimKind::Cnc, SimKind::InjectionMoulding] {
            let mut m = kind.build(seed);
            let mut prev = counters(kind, &m.values());
            let mut prev_state = f(&m.values()[0]);
            for dt in &steps {
                m.step(*dt);
                let v = m.values();
                let now = counters(kind, &v);
                for (a, b) in prev.iter().zip(&now) {
                    prop_assert!(b >= a, "{kind}: counter fell");
                }
                let alarm_state = if kind == SimKind::Cnc { 3.0 } else { 2.0 };
                let state = f(&v[0]);
                if prev_state == alarm_state && state == alarm_state {
                    prop_assert_eq!(&now[0], &prev[0], "{} made something in alarm", kind);
                }
                prev = now;
                prev_state = state;
            }
        }
    }

    #[test]
    fn energy_is_the_integral_of_power(seed in any::<u64>(), n in 10usize..500) {
        let mut m = EnergyMeter::new(seed);
        let start = m.kwh();
        let mut integral = 0.0;
        for _ in 0..n {
            // Steps of the meter's own internal step, so the check is exact.
            integral += m.total_watts() / 1000.0 * 0.5 / 3600.0;
            m.step(0.5);
        }
        prop_assert!((m.kwh() - start - integral).abs() < 1e-9);
        prop_assert!(m.kwh() >= start);
        let v = m.values();
        for volts in &v[..3] {
            prop_assert!((215.0..245.0).contains(&f(volts)), "voltage {}", f(volts));
        }
        prop_assert!((49.9..50.1).contains(&f(&v[11])));
        let sum: f64 = (6..9).map(|i| f(&v[i])).sum();
        prop_assert!((sum - f(&v[9])).abs() < 1e-6, "total is the sum of the phases");
    }

    #[test]
    fn temperatures_move_smoothly(seed in any::<u64>()) {
        let mut m = Imm::new(seed);
        let mut prev = m.zones();
        for _ in 0..2000 {
            m.step(1.0);
            let now = m.zones();
            for (a, b) in prev.iter().zip(now) {
                // A heater lag of 300 s moves at most ~1/300 of the gap to the setpoint per second.
                prop_assert!((b - a).abs() < 1.0, "jump from {a} to {b}");
            }
            prev = now;
        }
    }
}
