//! An injection-moulding machine.
//!
//! After start-up the barrel's five heater zones and the mould warm from ambient toward their
//! setpoints (first-order lags) and then drift slightly around them. Once warm, the machine
//! cycles: close, inject, hold, cool, open, eject. The injection pressure rises to a peak
//! during inject and holds during hold; the screw moves forward to its cushion and recovers
//! while cooling. A shot whose peak pressure or cushion leaves its window is a reject. Now and
//! then a heater fails: the machine stops (no shots) until the fault is cleared.

use crate::model::{Model, SimKind, lag, rng, substeps};
use rand::Rng;
use rand::rngs::SmallRng;
use shopfloor_core::Value;

/// The machine's state.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ImmState {
    /// Heating up; no shots.
    Heating = 0,
    /// Cycling automatically.
    Auto = 1,
    /// Stopped by an alarm.
    Alarm = 2,
}

/// The phase of a moulding cycle.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Mould closing.
    Close = 0,
    /// Screw injecting melt.
    Inject = 1,
    /// Holding pressure.
    Hold = 2,
    /// Part cooling, screw recovering.
    Cool = 3,
    /// Mould opening.
    Open = 4,
    /// Part ejected.
    Eject = 5,
}

const AMBIENT: f64 = 22.0;
const ZONE_SETPOINTS: [f64; 5] = [200.0, 210.0, 220.0, 225.0, 230.0];
const MOULD_SETPOINT: f64 = 45.0;
const SHOT_SIZE_MM: f64 = 60.0;
const PEAK_WINDOW: (f64, f64) = (1080.0, 1320.0);
const CUSHION_WINDOW: (f64, f64) = (3.5, 6.5);

/// A simulated injection-moulding machine.
#[derive(Debug, Clone)]
pub struct Imm {
    rng: SmallRng,
    state: ImmState,
    state_left: f64,
    phase: Phase,
    phase_left: f64,
    cycle_elapsed: f64,
    last_cycle: f64,
    zones: [f64; 5],
    drift: [f64; 5],
    failed_zone: Option<usize>,
    mould: f64,
    pressure: f64,
    shot_peak: f64,
    target_peak: f64,
    last_peak: f64,
    screw: f64,
    cushion: f64,
    target_cushion: f64,
    shots: u32,
    rejects: u32,
    last_rejected: bool,
}

fn phase_len(phase: Phase, rng: &mut SmallRng) -> f64 {
    let base = match phase {
        Phase::Close => 1.2,
        Phase::Inject => 1.0,
        Phase::Hold => 2.5,
        Phase::Cool => 7.0,
        Phase::Open => 1.2,
        Phase::Eject => 0.8,
    };
    base * rng.random_range(0.95..1.05)
}

impl Imm {
    /// A cold machine, seeded.
    pub fn new(seed: u64) -> Imm {
        let mut rng = rng(seed);
        let phase_left = phase_len(Phase::Close, &mut rng);
        Imm {
            rng,
            state: ImmState::Heating,
            state_left: 0.0,
            phase: Phase::Close,
            phase_left,
            cycle_elapsed: 0.0,
            last_cycle: 0.0,
            zones: [AMBIENT; 5],
            drift: [0.0; 5],
            failed_zone: None,
            mould: AMBIENT,
            pressure: 0.0,
            shot_peak: 0.0,
            target_peak: 1200.0,
            last_peak: 0.0,
            screw: SHOT_SIZE_MM,
            cushion: 5.0,
            target_cushion: 5.0,
            shots: 0,
            rejects: 0,
            last_rejected: false,
        }
    }

    /// The current state.
    pub fn state(&self) -> ImmState {
        self.state
    }

    /// Shots since start.
    pub fn shots(&self) -> u32 {
        self.shots
    }

    /// Barrel zone temperatures, °C.
    pub fn zones(&self) -> [f64; 5] {
        self.zones
    }

    fn warm(&self) -> bool {
        self.zones
            .iter()
            .zip(ZONE_SETPOINTS)
            .all(|(t, sp)| (t - sp).abs() < 5.0)
            && (self.mould - MOULD_SETPOINT).abs() < 5.0
    }

    fn next_phase(&mut self) {
        self.phase = match self.phase {
            Phase::Close => {
                self.target_peak = 1200.0 + self.rng.random_range(-90.0..90.0);
                self.target_cushion = 5.0 + self.rng.random_range(-1.3..1.3);
                self.shot_peak = 0.0;
                Phase::Inject
            }
            Phase::Inject => Phase::Hold,
            Phase::Hold => {
                self.cushion = self.screw;
                Phase::Cool
            }
            Phase::Cool => Phase::Open,
            Phase::Open => Phase::Eject,
            Phase::Eject => {
                self.shots += 1;
                self.last_peak = self.shot_peak;
                let peak_ok = (PEAK_WINDOW.0..=PEAK_WINDOW.1).contains(&self.shot_peak);
                let cushion_ok = (CUSHION_WINDOW.0..=CUSHION_WINDOW.1).contains(&self.cushion);
                self.last_rejected = !(peak_ok && cushion_ok);
                if self.last_rejected {
                    self.rejects += 1;
                }
                self.last_cycle = self.cycle_elapsed;
                self.cycle_elapsed = 0.0;
                Phase::Close
            }
        };
        self.phase_left = phase_len(self.phase, &mut self.rng);
    }

    fn step_once(&mut self, dt: f64) {
        // Heaters: every zone follows its (slightly drifting) setpoint, a failed one cools.
        for (i, (zone, drift)) in self.zones.iter_mut().zip(&mut self.drift).enumerate() {
            *drift = (*drift + self.rng.random_range(-0.05..0.05) * dt).clamp(-1.5, 1.5);
            let target = if self.failed_zone == Some(i) {
                AMBIENT
            } else {
                ZONE_SETPOINTS[i] + *drift
            };
            *zone = lag(*zone, target, 300.0, dt);
        }
        self.mould = lag(self.mould, MOULD_SETPOINT, 400.0, dt);

        match self.state {
            ImmState::Heating => {
                self.pressure = lag(self.pressure, 0.0, 0.2, dt);
                if self.warm() {
                    self.state = ImmState::Auto;
                    self.phase = Phase::Close;
                    self.phase_left = phase_len(Phase::Close, &mut self.rng);
                    self.cycle_elapsed = 0.0;
                }
            }
            ImmState::Alarm => {
                self.pressure = lag(self.pressure, 0.0, 0.2, dt);
                self.state_left -= dt;
                if self.state_left <= 0.0 {
                    self.failed_zone = None;
                    self.state = ImmState::Heating;
                }
            }
            ImmState::Auto => {
                self.cycle_elapsed += dt;
                self.phase_left -= dt;
                match self.phase {
                    Phase::Inject => {
                        self.pressure = lag(self.pressure, self.target_peak, 0.25, dt);
                        let travel = SHOT_SIZE_MM - self.target_cushion;
                        self.screw =
                            (self.screw - travel * dt / 1.0).max(self.target_cushion + 0.8);
                    }
                    Phase::Hold => {
                        self.pressure = lag(self.pressure, 600.0, 0.2, dt);
                        self.screw = lag(self.screw, self.target_cushion, 0.4, dt);
                    }
                    Phase::Cool => {
                        self.pressure = lag(self.pressure, 8.0, 0.2, dt);
                        self.screw = lag(self.screw, SHOT_SIZE_MM, 1.2, dt);
                    }
                    Phase::Close | Phase::Open | Phase::Eject => {
                        self.pressure = lag(self.pressure, 0.0, 0.2, dt);
                    }
                }
                self.shot_peak = self.shot_peak.max(self.pressure);
                if self.phase_left <= 0.0 {
                    self.next_phase();
                }
                if self.rng.random_bool((dt / 5400.0).min(1.0)) {
                    self.failed_zone = Some(self.rng.random_range(0..5));
                    self.state = ImmState::Alarm;
                    self.state_left = self.rng.random_range(60.0..300.0);
                }
            }
        }
    }
}

impl Model for Imm {
    fn step(&mut self, dt: f64) {
        for d in substeps(dt, 0.05) {
            self.step_once(d);
        }
    }

    fn values(&self) -> Vec<Value> {
        let alarm_code = self.failed_zone.map_or(0, |z| 500 + z as u64 + 1);
        let mut v = vec![
            Value::U64(self.state as u64),
            Value::U64(self.phase as u64),
            Value::U64(u64::from(self.shots)),
            Value::U64(u64::from(self.rejects)),
        ];
        v.extend(self.zones.iter().map(|t| Value::F64(*t)));
        v.extend([
            Value::F64(self.mould),
            Value::F64(self.pressure),
            Value::F64(self.last_peak),
            Value::F64(self.screw),
            Value::F64(self.cushion),
            Value::F64(self.last_cycle),
            Value::Bool(self.state != ImmState::Alarm),
            Value::Bool(matches!(
                self.phase,
                Phase::Inject | Phase::Hold | Phase::Cool
            )),
            Value::Bool(self.state == ImmState::Alarm),
            Value::Bool(self.last_rejected),
            Value::U64(alarm_code),
            Value::Text("PP-H 100".into()),
            Value::U64(u64::from(self.shots.saturating_sub(self.rejects))),
        ]);
        v
    }

    fn kind(&self) -> SimKind {
        SimKind::InjectionMoulding
    }
}
