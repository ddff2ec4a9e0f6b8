//! A three-phase energy meter, as the common DIN-rail meters report it: voltages, currents,
//! active power per phase and in total, power factor, frequency, and imported energy that only
//! rises and equals the integral of the total power.

use crate::model::{Model, SimKind, lag, rng, substeps};
use rand::Rng;
use rand::rngs::SmallRng;
use shopfloor_core::Value;

/// A simulated three-phase energy meter.
#[derive(Debug, Clone)]
pub struct EnergyMeter {
    rng: SmallRng,
    volts: [f64; 3],
    amps: [f64; 3],
    amp_targets: [f64; 3],
    retarget_in: f64,
    pf: f64,
    hz: f64,
    kwh: f64,
}

impl EnergyMeter {
    /// A meter with a seeded load pattern and a seeded starting register.
    pub fn new(seed: u64) -> EnergyMeter {
        let mut rng = rng(seed);
        let kwh = rng.random_range(1000.0..50_000.0_f64).round();
        EnergyMeter {
            rng,
            volts: [230.0; 3],
            amps: [10.0; 3],
            amp_targets: [10.0; 3],
            retarget_in: 0.0,
            pf: 0.92,
            hz: 50.0,
            kwh,
        }
    }

    /// Active power per phase, W.
    pub fn phase_watts(&self) -> [f64; 3] {
        [0, 1, 2].map(|i| self.volts[i] * self.amps[i] * self.pf)
    }

    /// Total active power, W.
    pub fn total_watts(&self) -> f64 {
        self.phase_watts().iter().sum()
    }

    /// Imported energy, kWh.
    pub fn kwh(&self) -> f64 {
        self.kwh
    }

    fn step_once(&mut self, dt: f64) {
        // Energy over this step at the power of its start: the register is the integral.
        self.kwh += self.total_watts() / 1000.0 * dt / 3600.0;
        self.retarget_in -= dt;
        if self.retarget_in <= 0.0 {
            // Machines on this feeder switch on and off: new load levels now and then.
            let base = self.rng.random_range(8.0..45.0);
            for t in &mut self.amp_targets {
                *t = base * self.rng.random_range(0.85..1.15);
            }
            self.retarget_in = self.rng.random_range(20.0..120.0);
        }
        for i in 0..3 {
            self.amps[i] = lag(self.amps[i], self.amp_targets[i], 3.0, dt).max(0.0);
            let v_target = 230.0 + self.rng.random_range(-2.5..2.5) - 0.05 * self.amps[i];
            self.volts[i] = lag(self.volts[i], v_target, 2.0, dt);
        }
        self.pf = lag(self.pf, self.rng.random_range(0.86..0.97), 10.0, dt);
        self.hz = lag(self.hz, 50.0 + self.rng.random_range(-0.03..0.03), 5.0, dt);
    }
}

impl Model for EnergyMeter {
    fn step(&mut self, dt: f64) {
        for d in substeps(dt, 0.5) {
            self.step_once(d);
        }
    }

    fn values(&self) -> Vec<Value> {
        let w = self.phase_watts();
        let mut v: Vec<Value> = self.volts.iter().map(|x| Value::F64(*x)).collect();
        v.extend(self.amps.iter().map(|x| Value::F64(*x)));
        v.extend(w.iter().map(|x| Value::F64(*x)));
        v.extend([
            Value::F64(self.total_watts()),
            Value::F64(self.pf),
            Value::F64(self.hz),
            Value::F64(self.kwh),
        ]);
        v
    }

    fn kind(&self) -> SimKind {
        SimKind::EnergyMeter
    }
}
