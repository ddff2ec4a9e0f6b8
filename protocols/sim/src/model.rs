//! What every simulated machine offers, and the small physics they share.

use rand::SeedableRng;
use rand::rngs::SmallRng;
use shopfloor_core::Value;
use std::fmt;

/// A simulated machine: advanced by time steps, read as values in its profile's tag order.
pub trait Model: Send {
    /// Advances the machine by `dt` seconds of machine time.
    fn step(&mut self, dt: f64);
    /// The current values, one per tag of [`Model::kind`]'s profile, in profile order.
    fn values(&self) -> Vec<Value>;
    /// Which kind of machine this is.
    fn kind(&self) -> SimKind;
}

/// The kinds of simulated machine.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum SimKind {
    /// A CNC machining centre.
    Cnc,
    /// An injection-moulding machine.
    InjectionMoulding,
    /// A three-phase energy meter.
    EnergyMeter,
}

impl SimKind {
    /// Every kind.
    pub const ALL: [SimKind; 3] = [
        SimKind::Cnc,
        SimKind::InjectionMoulding,
        SimKind::EnergyMeter,
    ];

    /// The word used in configs and profile file names.
    pub fn as_str(self) -> &'static str {
        match self {
            SimKind::Cnc => "cnc",
            SimKind::InjectionMoulding => "injection-moulding",
            SimKind::EnergyMeter => "energy-meter",
        }
    }

    /// Parses the config word.
    pub fn parse(word: &str) -> Option<SimKind> {
        SimKind::ALL.into_iter().find(|k| k.as_str() == word)
    }

    /// A new machine of this kind, seeded.
    pub fn build(self, seed: u64) -> Box<dyn Model> {
        match self {
            SimKind::Cnc => Box::new(crate::cnc::Cnc::new(seed)),
            SimKind::InjectionMoulding => Box::new(crate::imm::Imm::new(seed)),
            SimKind::EnergyMeter => Box::new(crate::energy::EnergyMeter::new(seed)),
        }
    }
}

impl fmt::Display for SimKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A seeded random source; the same seed gives the same machine.
pub fn rng(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}

/// Moves `value` toward `target` as a first-order lag with time constant `tau` seconds: smooth,
/// never overshooting, the way temperatures and spindle speeds follow their setpoints.
pub fn lag(value: f64, target: f64, tau: f64, dt: f64) -> f64 {
    if tau <= 0.0 {
        return target;
    }
    let k = 1.0 - (-dt / tau).exp();
    value + (target - value) * k
}

/// Splits `dt` into steps of at most `max` seconds, so that a large speed-up does not skip
/// through a state machine's phases.
pub fn substeps(dt: f64, max: f64) -> impl Iterator<Item = f64> {
    let n = (dt / max).ceil().max(1.0) as usize;
    let step = dt / n as f64;
    std::iter::repeat_n(step, if dt > 0.0 { n } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_approaches_without_overshoot() {
        let mut v = 20.0;
        for _ in 0..1000 {
            let next = lag(v, 220.0, 60.0, 1.0);
            assert!(next >= v && next <= 220.0);
            v = next;
        }
        assert!((v - 220.0).abs() < 0.01);
    }

    #[test]
    fn substeps_cover_dt() {
        let total: f64 = substeps(2.5, 1.0).sum();
        assert!((total - 2.5).abs() < 1e-9);
        assert_eq!(substeps(2.5, 1.0).count(), 3);
        assert_eq!(substeps(0.0, 1.0).count(), 0);
    }

    #[test]
    fn kinds_round_trip() {
        for k in SimKind::ALL {
            assert_eq!(SimKind::parse(k.as_str()), Some(k));
        }
    }
}
