//! A CNC machining centre.
//!
//! States: setup → idle → running ⇄ idle, with alarms and maintenance now and then. A running
//! machine makes parts in cycles of 60–180 s: roughing, a tool change, finishing. Spindle speed
//! and load follow the operation through first-order lags; the axes trace a toolpath; the tool
//! wears with load until it is changed; power follows spindle load. A machine that is not
//! running (alarm included) makes no parts, and counters only rise.

use crate::model::{Model, SimKind, lag, rng, substeps};
use rand::Rng;
use rand::rngs::SmallRng;
use shopfloor_core::Value;

/// The machine's state, as its `state` register reports it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CncState {
    /// Clamping a new job: door open, spindle still.
    Setup = 0,
    /// Ready, not cutting.
    Idle = 1,
    /// Making parts.
    Running = 2,
    /// Stopped by an alarm.
    Alarm = 3,
    /// Planned maintenance.
    Maintenance = 4,
}

/// What the spindle is doing within a cycle.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Heavy cuts: moderate speed, high load.
    Roughing = 0,
    /// Light cuts: high speed, low load.
    Finishing = 1,
    /// Changing the tool: spindle still.
    ToolChange = 2,
    /// Not cutting.
    None = 3,
}

const PROGRAMS: [(u16, &str); 4] = [
    (1001, "BRKT-A01"),
    (1002, "FLNG-220"),
    (2040, "HSNG-7B"),
    (3100, "SHFT-M12"),
];

const ALARMS: [(u16, &str); 4] = [
    (1001, "Spindle overload"),
    (2010, "Coolant level low"),
    (3005, "X axis following error"),
    (4002, "Tool breakage detected"),
];

/// A simulated CNC machining centre.
#[derive(Debug, Clone)]
pub struct Cnc {
    rng: SmallRng,
    time: f64,
    state: CncState,
    state_left: f64,
    op: Operation,
    cycle_elapsed: f64,
    cycle_len: f64,
    last_cycle: f64,
    program: usize,
    parts: u32,
    good: u32,
    scrap: u32,
    rpm: f64,
    load: f64,
    feed: f64,
    feed_override: f64,
    pos: [f64; 3],
    tool: u16,
    wear: f64,
    coolant: bool,
    door_open: bool,
    alarm: usize,
    power: f64,
}

impl Cnc {
    /// A machine in setup, seeded.
    pub fn new(seed: u64) -> Cnc {
        let mut rng = rng(seed);
        let program = rng.random_range(0..PROGRAMS.len());
        let cycle_len = rng.random_range(60.0..180.0);
        let state_left = rng.random_range(20.0..90.0);
        let tool = rng.random_range(1..=12);
        let wear = rng.random_range(0.0..60.0);
        Cnc {
            rng,
            time: 0.0,
            state: CncState::Setup,
            state_left,
            op: Operation::None,
            cycle_elapsed: 0.0,
            cycle_len,
            last_cycle: 0.0,
            program,
            parts: 0,
            good: 0,
            scrap: 0,
            rpm: 0.0,
            load: 0.0,
            feed: 0.0,
            feed_override: 100.0,
            pos: [0.0, 0.0, 50.0],
            tool,
            wear,
            coolant: false,
            door_open: true,
            alarm: usize::MAX,
            power: 1.2,
        }
    }

    /// The current state.
    pub fn state(&self) -> CncState {
        self.state
    }

    /// Parts finished since start (good and scrap).
    pub fn parts(&self) -> u32 {
        self.parts
    }

    fn enter(&mut self, state: CncState) {
        self.state = state;
        self.state_left = match state {
            CncState::Setup => self.rng.random_range(120.0..600.0),
            CncState::Idle => self.rng.random_range(3.0..20.0),
            CncState::Running => self.rng.random_range(600.0..2400.0),
            CncState::Alarm => self.rng.random_range(30.0..180.0),
            CncState::Maintenance => self.rng.random_range(300.0..900.0),
        };
        if state == CncState::Alarm {
            self.alarm = self.rng.random_range(0..ALARMS.len());
        } else if state != CncState::Running {
            self.alarm = usize::MAX;
        }
        if state == CncState::Setup {
            self.program = self.rng.random_range(0..PROGRAMS.len());
        }
        if state == CncState::Running {
            self.cycle_elapsed = 0.0;
        }
    }

    fn finish_part(&mut self) {
        self.parts += 1;
        // Worn tools make more scrap.
        let p_scrap = 0.02 + 0.08 * (self.wear / 100.0).powi(3);
        if self.rng.random_bool(p_scrap.clamp(0.0, 1.0)) {
            self.scrap += 1;
        } else {
            self.good += 1;
        }
        self.last_cycle = self.cycle_elapsed;
        self.cycle_elapsed = 0.0;
        self.cycle_len = self.rng.random_range(60.0..180.0);
    }

    fn step_once(&mut self, dt: f64) {
        self.time += dt;
        self.state_left -= dt;
        match self.state {
            CncState::Setup | CncState::Maintenance => {
                self.op = Operation::None;
                self.door_open = true;
                if self.state_left <= 0.0 {
                    self.door_open = false;
                    self.enter(CncState::Idle);
                }
            }
            CncState::Idle => {
                self.op = Operation::None;
                if self.state_left <= 0.0 {
                    self.door_open = false;
                    self.enter(CncState::Running);
                }
            }
            CncState::Alarm => {
                self.op = Operation::None;
                if self.state_left <= 0.0 {
                    self.enter(CncState::Idle);
                }
            }
            CncState::Running => {
                self.cycle_elapsed += dt;
                let progress = self.cycle_elapsed / self.cycle_len;
                let tool_change_from = 0.55;
                let tool_change_to = 0.55 + 6.0 / self.cycle_len;
                self.op = if progress < tool_change_from {
                    Operation::Roughing
                } else if progress < tool_change_to {
                    Operation::ToolChange
                } else {
                    Operation::Finishing
                };
                if self.op == Operation::ToolChange && self.wear >= 80.0 {
                    self.tool = self.tool % 12 + 1;
                    self.wear = 0.0;
                }
                if self.op != Operation::ToolChange {
                    self.wear = (self.wear + dt * self.load / 100.0 * 0.02).min(100.0);
                }
                if progress >= 1.0 {
                    self.finish_part();
                    if self.state_left <= 0.0 {
                        self.enter(CncState::Idle);
                    }
                }
                // Now and then something goes wrong.
                if self.state == CncState::Running && self.rng.random_bool((dt / 3600.0).min(1.0)) {
                    self.enter(CncState::Alarm);
                } else if self.state == CncState::Running
                    && self.rng.random_bool((dt / 14_400.0).min(1.0))
                {
                    self.enter(CncState::Maintenance);
                }
            }
        }
        let cutting = self.state == CncState::Running;
        let (rpm_target, load_target, feed_target) = match (cutting, self.op) {
            (true, Operation::Roughing) => (7200.0, 72.0, 1500.0),
            (true, Operation::Finishing) => (11_500.0, 28.0, 800.0),
            _ => (0.0, 0.0, 0.0),
        };
        let noise = self.rng.random_range(-1.0..1.0);
        self.rpm = lag(self.rpm, rpm_target, 1.5, dt).max(0.0);
        let wear_extra = if load_target > 0.0 {
            self.wear * 0.12
        } else {
            0.0
        };
        self.load =
            lag(self.load, load_target + wear_extra + 3.0 * noise, 0.5, dt).clamp(0.0, 150.0);
        self.feed = lag(self.feed, feed_target, 0.3, dt).max(0.0);
        if cutting && self.rng.random_bool((dt / 120.0).min(1.0)) {
            self.feed_override = [80.0, 90.0, 100.0, 100.0, 110.0][self.rng.random_range(0..5)];
        }
        self.coolant = cutting && self.op != Operation::ToolChange;
        // The toolpath: a pocket traced in X/Y, stepping down in Z while roughing.
        let w = 2.0 * std::f64::consts::PI / 20.0;
        let target = if cutting && self.op != Operation::ToolChange {
            let depth = if self.op == Operation::Roughing {
                -2.0 - 18.0 * (self.cycle_elapsed / (self.cycle_len * 0.55)).min(1.0)
            } else {
                -20.0
            };
            [
                250.0 + 180.0 * (w * self.time).sin(),
                150.0 + 100.0 * (2.0 * w * self.time + 0.7).sin(),
                depth,
            ]
        } else {
            [0.0, 0.0, 50.0]
        };
        for (p, t) in self.pos.iter_mut().zip(target) {
            *p = lag(*p, t, 0.4, dt);
        }
        let spindle_kw = if self.rpm > 100.0 {
            2.0 + 0.16 * self.load
        } else {
            0.0
        };
        let axes_kw = if cutting { 0.8 } else { 0.0 };
        self.power = 1.2 + spindle_kw + axes_kw;
    }
}

impl Model for Cnc {
    fn step(&mut self, dt: f64) {
        for d in substeps(dt, 0.1) {
            self.step_once(d);
        }
    }

    fn values(&self) -> Vec<Value> {
        let (program_no, program_name) = PROGRAMS[self.program];
        let (alarm_code, alarm_text) = ALARMS.get(self.alarm).copied().unwrap_or((0, ""));
        vec![
            Value::U64(self.state as u64),
            Value::U64(self.op as u64),
            Value::U64(u64::from(program_no)),
            Value::Text(program_name.into()),
            Value::U64(u64::from(self.parts)),
            Value::U64(u64::from(self.good)),
            Value::U64(u64::from(self.scrap)),
            Value::F64(self.last_cycle),
            Value::F64(self.rpm),
            Value::F64(self.load),
            Value::F64(self.feed),
            Value::F64(self.feed_override),
            Value::F64(self.pos[0]),
            Value::F64(self.pos[1]),
            Value::F64(self.pos[2]),
            Value::U64(u64::from(self.tool)),
            Value::F64(self.wear),
            Value::Bool(self.coolant),
            Value::Bool(self.door_open),
            Value::Bool(self.state == CncState::Alarm),
            Value::Bool(self.rpm > 100.0),
            Value::U64(u64::from(alarm_code)),
            Value::Text(alarm_text.into()),
            Value::F64(self.power),
        ]
    }

    fn kind(&self) -> SimKind {
        SimKind::Cnc
    }
}
