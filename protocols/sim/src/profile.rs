//! Each simulated machine's register map: where its values live on Modbus, as ready
//! `[[machine.tag]]` entries. `config/profiles/<kind>.toml` holds the same text (a test keeps
//! them equal), so an engineer can paste a machine's tags into a config.
//!
//! The maps mix types and orders as real controllers do: floats in CDAB on the CNC, ABCD on the
//! moulding machine, status bits packed in one register, scaled integers, strings in both byte
//! orders, and the energy meter's float32 input registers at the addresses such meters use.

use crate::model::SimKind;
use shopfloor_core::Value;
use shopfloor_modbus::{Area, DataType, TagSpec, WordOrder};
use std::fmt::Write as _;

/// One tag of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileTag {
    /// Tag name.
    pub name: &'static str,
    /// Where and how it is read.
    pub spec: TagSpec,
    /// Engineering unit.
    pub unit: Option<&'static str>,
    /// What the numbers mean, for enumerations.
    pub note: Option<&'static str>,
    /// How far the value moves before it is worth a sample under `publish = "change"`: about
    /// the signal's noise and resolution (a tenth of a degree, a few rpm). `None`: any change.
    pub deadband: Option<f64>,
}

/// How a profile's TOML carries its deadbands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Deadbands {
    /// As a comment beside the tag, for a machine with `publish = "every"` (the default).
    Suggested,
    /// As `deadband` keys, for a machine with `publish = "change"`.
    Set,
}

impl Deadbands {
    /// The TOML line of `deadband`, if there is one.
    pub fn line(self, deadband: Option<f64>) -> Option<String> {
        let d = deadband?;
        Some(match self {
            Deadbands::Suggested => format!("  # deadband = {d:?}   (with publish = \"change\")"),
            Deadbands::Set => format!("  deadband = {d:?}"),
        })
    }
}

fn tag(name: &'static str, area: Area, address: u16, t: DataType) -> ProfileTag {
    ProfileTag {
        name,
        spec: TagSpec::new(area, address, t),
        unit: None,
        note: None,
        deadband: None,
    }
}

impl ProfileTag {
    fn order(mut self, o: WordOrder) -> Self {
        self.spec.order = o;
        self
    }
    fn bit(mut self, b: u8) -> Self {
        self.spec.bit = Some(b);
        self
    }
    fn len(mut self, l: u16) -> Self {
        self.spec.length = l;
        self
    }
    fn scale(mut self, s: f64) -> Self {
        self.spec.scale = s;
        self
    }
    fn unit(mut self, u: &'static str) -> Self {
        self.unit = Some(u);
        self
    }
    fn deadband(mut self, d: f64) -> Self {
        self.deadband = Some(d);
        self
    }

    fn note(mut self, n: &'static str) -> Self {
        self.note = Some(n);
        self
    }
}

fn cnc() -> Vec<ProfileTag> {
    use Area::Holding as H;
    use DataType::*;
    use WordOrder::CDAB;
    vec![
        tag("state", H, 0, U16).note("0 setup, 1 idle, 2 running, 3 alarm, 4 maintenance"),
        tag("operation", H, 1, U16).note("0 roughing, 1 finishing, 2 tool change, 3 none"),
        tag("program_number", H, 2, U16),
        tag("program_name", H, 3, String).len(8),
        tag("part_count", H, 11, U32),
        tag("good_count", H, 13, U32),
        tag("scrap_count", H, 15, U32),
        tag("cycle_time", H, 17, F32)
            .order(CDAB)
            .unit("s")
            .deadband(0.1),
        tag("spindle_speed", H, 19, F32)
            .order(CDAB)
            .unit("rpm")
            .deadband(5.0),
        tag("spindle_load", H, 21, U16)
            .scale(0.1)
            .unit("%")
            .deadband(1.0),
        tag("feed_rate", H, 22, F32)
            .order(CDAB)
            .unit("mm/min")
            .deadband(5.0),
        tag("feed_override", H, 24, U16).unit("%"),
        tag("x_position", H, 25, F32)
            .order(CDAB)
            .unit("mm")
            .deadband(1.0),
        tag("y_position", H, 27, F32)
            .order(CDAB)
            .unit("mm")
            .deadband(1.0),
        tag("z_position", H, 29, F32)
            .order(CDAB)
            .unit("mm")
            .deadband(1.0),
        tag("active_tool", H, 31, U16),
        tag("tool_wear", H, 32, U16)
            .scale(0.1)
            .unit("%")
            .deadband(0.5),
        tag("coolant_on", H, 33, Bool).bit(0),
        tag("door_open", H, 33, Bool).bit(1),
        tag("alarm_active", H, 33, Bool).bit(2),
        tag("spindle_running", H, 33, Bool).bit(3),
        tag("alarm_code", H, 34, U16),
        tag("alarm_text", H, 35, String).len(16),
        tag("power", H, 51, F32)
            .order(CDAB)
            .unit("kW")
            .deadband(0.1),
    ]
}

fn imm() -> Vec<ProfileTag> {
    use Area::Holding as H;
    use DataType::*;
    vec![
        tag("state", H, 0, U16).note("0 heating, 1 automatic, 2 alarm"),
        tag("phase", H, 1, U16).note("0 close, 1 inject, 2 hold, 3 cool, 4 open, 5 eject"),
        tag("shot_count", H, 2, U32),
        tag("reject_count", H, 4, U32),
        tag("barrel_zone_1", H, 6, F32).unit("°C").deadband(0.1),
        tag("barrel_zone_2", H, 8, F32).unit("°C").deadband(0.1),
        tag("barrel_zone_3", H, 10, F32).unit("°C").deadband(0.1),
        tag("barrel_zone_4", H, 12, F32).unit("°C").deadband(0.1),
        tag("barrel_zone_5", H, 14, F32).unit("°C").deadband(0.1),
        tag("mould_temperature", H, 16, I16)
            .scale(0.1)
            .unit("°C")
            .deadband(0.2),
        tag("injection_pressure", H, 17, F32)
            .unit("bar")
            .deadband(5.0),
        tag("peak_pressure", H, 19, F32).unit("bar").deadband(5.0),
        tag("screw_position", H, 21, F32).unit("mm").deadband(1.0),
        tag("cushion", H, 23, F32).unit("mm").deadband(0.1),
        tag("cycle_time", H, 25, F32).unit("s").deadband(0.1),
        tag("heaters_on", H, 27, Bool).bit(0),
        tag("mould_closed", H, 27, Bool).bit(1),
        tag("alarm_active", H, 27, Bool).bit(2),
        tag("last_shot_rejected", H, 27, Bool).bit(3),
        tag("alarm_code", H, 28, U16).note("0 none, 501..505 heater fault in zone 1..5"),
        tag("material", H, 29, String).len(8).order(WordOrder::BADC),
        tag("good_count", H, 37, U32).note("shots less rejects"),
    ]
}

fn energy() -> Vec<ProfileTag> {
    use Area::Input as I;
    use DataType::F32;
    vec![
        tag("voltage_l1", I, 0, F32).unit("V").deadband(0.5),
        tag("voltage_l2", I, 2, F32).unit("V").deadband(0.5),
        tag("voltage_l3", I, 4, F32).unit("V").deadband(0.5),
        tag("current_l1", I, 6, F32).unit("A").deadband(0.1),
        tag("current_l2", I, 8, F32).unit("A").deadband(0.1),
        tag("current_l3", I, 10, F32).unit("A").deadband(0.1),
        tag("power_l1", I, 12, F32).unit("W").deadband(50.0),
        tag("power_l2", I, 14, F32).unit("W").deadband(50.0),
        tag("power_l3", I, 16, F32).unit("W").deadband(50.0),
        tag("power_total", I, 52, F32).unit("W").deadband(100.0),
        tag("power_factor", I, 62, F32).deadband(0.01),
        tag("frequency", I, 70, F32).unit("Hz").deadband(0.02),
        tag("energy_import", I, 72, F32).unit("kWh").deadband(0.01),
    ]
}

/// The register map of `kind`, in the order of its model's values.
pub fn profile(kind: SimKind) -> Vec<ProfileTag> {
    match kind {
        SimKind::Cnc => cnc(),
        SimKind::InjectionMoulding => imm(),
        SimKind::EnergyMeter => energy(),
    }
}

/// The `[machine.kpi]` of a simulated machine: its state codes, counters and an ideal cycle a
/// little shorter than its mean one; `energy` names the meter that feeds it (`machine.tag`).
/// `None` for a kind that makes no parts.
pub fn kpi_toml(kind: SimKind, energy: Option<&str>) -> Option<String> {
    let (running, planned_stop, reject, ideal_cycle) = match kind {
        // Cycles of 60–180 s; setup and maintenance are planned.
        SimKind::Cnc => ("[2]", "[0, 4]", "scrap_count", "100s"),
        // Cycles of about 13.7 s; heating up is planned, a heater alarm is not.
        SimKind::InjectionMoulding => ("[1]", "[0]", "reject_count", "11.5s"),
        SimKind::EnergyMeter => return None,
    };
    let mut out = format!(
        "\n  [machine.kpi]\n  state = \"state\"\n  running = {running}\n  \
         planned_stop = {planned_stop}\n  good = \"good_count\"\n  reject = \"{reject}\"\n  \
         ideal_cycle = \"{ideal_cycle}\"\n"
    );
    if let Some(e) = energy {
        let _ = writeln!(out, "  energy = \"{e}\"");
    }
    Some(out)
}

/// The raw value to write for an engineering value: scale and offset undone, integers rounded
/// and clamped to their type.
pub fn raw_value(spec: &TagSpec, value: &Value) -> Value {
    // An integer for an unscaled tag is already raw; through f64 it would lose digits past 2^53.
    if !spec.is_scaled() && matches!(value, Value::I64(_) | Value::U64(_)) {
        return value.clone();
    }
    let Some(v) = value.as_f64().filter(|_| spec.data_type.is_number()) else {
        return value.clone();
    };
    let raw = (v - spec.offset) / spec.scale;
    let (lo, hi) = match spec.data_type {
        DataType::U16 => (0.0, f64::from(u16::MAX)),
        DataType::I16 => (f64::from(i16::MIN), f64::from(i16::MAX)),
        DataType::U32 => (0.0, f64::from(u32::MAX)),
        DataType::I32 => (f64::from(i32::MIN), f64::from(i32::MAX)),
        DataType::U64 => (0.0, u64::MAX as f64),
        DataType::I64 => (i64::MIN as f64, i64::MAX as f64),
        _ => return Value::F64(raw),
    };
    let r = raw.round().clamp(lo, hi);
    if lo < 0.0 {
        Value::I64(r as i64)
    } else {
        Value::U64(r as u64)
    }
}

/// The profile as `[[machine.tag]]` TOML, as in `config/profiles/<kind>.toml`.
pub fn to_toml(kind: SimKind, deadbands: Deadbands) -> String {
    let mut out = format!(
        "# Register map of the simulated {} machine (`simulator = \"{}\"`).\n\
         # Generated from protocols/sim/src/profile.rs; paste the entries under a [[machine]]\n\
         # with protocol = \"modbus-tcp\".\n",
        kind, kind
    );
    for t in profile(kind) {
        let s = &t.spec;
        out.push('\n');
        if let Some(n) = t.note {
            let _ = writeln!(out, "  # {n}");
        }
        let _ = writeln!(out, "  [[machine.tag]]");
        let _ = writeln!(out, "  name = \"{}\"", t.name);
        let _ = writeln!(out, "  area = \"{}\"", s.area);
        let _ = writeln!(out, "  address = {}", s.address);
        let _ = writeln!(out, "  type = \"{}\"", s.data_type);
        if s.order != WordOrder::ABCD {
            let _ = writeln!(out, "  order = \"{}\"", s.order);
        }
        if let Some(b) = s.bit {
            let _ = writeln!(out, "  bit = {b}");
        }
        if s.data_type == DataType::String {
            let _ = writeln!(out, "  length = {}", s.length);
        }
        if s.scale != 1.0 {
            let _ = writeln!(out, "  scale = {}", s.scale);
        }
        if let Some(u) = t.unit {
            let _ = writeln!(out, "  unit = \"{u}\"");
        }
        if let Some(line) = deadbands.line(t.deadband) {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}
