//! Where the simulated CNC and moulding machine keep their values on OPC UA: a node per tag,
//! in folders modelled on the umati machine-tool (OPC 40501-1: Identification, Monitoring,
//! Production, Equipment, Notification) and EUROMAP 77 (MachineStatus, Jobs, InjectionUnits,
//! Moulds) structures. String node ids in the machine's own namespace URI, so a profile's
//! `nsu=` ids hold whatever index the server gives that namespace.
//!
//! The value of a tag is the same model value the Modbus profile serves; its OPC UA data type
//! follows what a controller would expose (counters UInt32, temperatures Double, ...).

use crate::model::SimKind;
use crate::profile::{Deadbands, ProfileTag, profile};
use shopfloor_modbus::DataType;
use std::fmt::Write as _;

/// OPC UA data types the simulated nodes use.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UaType {
    /// Boolean.
    Boolean,
    /// UInt16.
    UInt16,
    /// Int16.
    Int16,
    /// UInt32.
    UInt32,
    /// Int32.
    Int32,
    /// Float.
    Float,
    /// Double.
    Double,
    /// String.
    String,
}

/// One node of a simulated machine.
#[derive(Clone, Debug, PartialEq)]
pub struct UaNode {
    /// The tag it feeds (the Modbus profile's name).
    pub tag: &'static str,
    /// Dotted path under the machine object; also the string node id.
    pub path: &'static str,
    /// Its data type.
    pub ua_type: UaType,
    /// Engineering unit.
    pub unit: Option<&'static str>,
    /// Index of the tag in the model's values.
    pub index: usize,
}

/// The namespace URI of a simulated machine kind.
pub fn namespace_uri(kind: SimKind) -> String {
    format!("urn:iqblvd:sim:{kind}")
}

fn paths(kind: SimKind) -> &'static [(&'static str, &'static str)] {
    match kind {
        SimKind::Cnc => &[
            ("state", "Monitoring.MachineTool.State"),
            ("operation", "Monitoring.MachineTool.Operation"),
            ("program_number", "Production.ActiveProgram.Number"),
            ("program_name", "Production.ActiveProgram.Name"),
            ("part_count", "Production.PartCount"),
            ("good_count", "Production.GoodCount"),
            ("scrap_count", "Production.ScrapCount"),
            ("cycle_time", "Production.CycleTime"),
            ("spindle_speed", "Monitoring.Spindle.Speed"),
            ("spindle_load", "Monitoring.Spindle.Load"),
            ("feed_rate", "Monitoring.Channel.FeedRate"),
            ("feed_override", "Monitoring.Channel.FeedOverride"),
            ("x_position", "Monitoring.Axes.X.Position"),
            ("y_position", "Monitoring.Axes.Y.Position"),
            ("z_position", "Monitoring.Axes.Z.Position"),
            ("active_tool", "Equipment.Tools.ActiveTool"),
            ("tool_wear", "Equipment.Tools.Wear"),
            ("coolant_on", "Monitoring.MachineTool.CoolantOn"),
            ("door_open", "Monitoring.MachineTool.DoorOpen"),
            ("alarm_active", "Notification.AlarmActive"),
            ("spindle_running", "Monitoring.Spindle.Running"),
            ("alarm_code", "Notification.AlarmCode"),
            ("alarm_text", "Notification.AlarmText"),
            ("power", "Monitoring.MachineTool.Power"),
        ],
        SimKind::InjectionMoulding => &[
            ("state", "MachineStatus.State"),
            ("phase", "MachineStatus.CyclePhase"),
            ("shot_count", "Jobs.ActiveJobValues.ShotCounter"),
            ("reject_count", "Jobs.ActiveJobValues.RejectedPartsCounter"),
            (
                "barrel_zone_1",
                "InjectionUnits.InjectionUnit_1.Barrel.Zone_1.Temperature",
            ),
            (
                "barrel_zone_2",
                "InjectionUnits.InjectionUnit_1.Barrel.Zone_2.Temperature",
            ),
            (
                "barrel_zone_3",
                "InjectionUnits.InjectionUnit_1.Barrel.Zone_3.Temperature",
            ),
            (
                "barrel_zone_4",
                "InjectionUnits.InjectionUnit_1.Barrel.Zone_4.Temperature",
            ),
            (
                "barrel_zone_5",
                "InjectionUnits.InjectionUnit_1.Barrel.Zone_5.Temperature",
            ),
            ("mould_temperature", "Moulds.Mould_1.Temperature"),
            (
                "injection_pressure",
                "InjectionUnits.InjectionUnit_1.InjectionPressure",
            ),
            (
                "peak_pressure",
                "InjectionUnits.InjectionUnit_1.PeakPressure",
            ),
            (
                "screw_position",
                "InjectionUnits.InjectionUnit_1.ScrewPosition",
            ),
            ("cushion", "InjectionUnits.InjectionUnit_1.Cushion"),
            ("cycle_time", "Jobs.ActiveJobValues.LastCycleTime"),
            (
                "heaters_on",
                "InjectionUnits.InjectionUnit_1.Barrel.HeatersOn",
            ),
            ("mould_closed", "Moulds.Mould_1.Closed"),
            ("alarm_active", "MachineStatus.AlarmActive"),
            (
                "last_shot_rejected",
                "Jobs.ActiveJobValues.LastShotRejected",
            ),
            ("alarm_code", "MachineStatus.AlarmCode"),
            ("material", "Jobs.ActiveJobValues.Material"),
            ("good_count", "Jobs.ActiveJobValues.GoodPartsCounter"),
        ],
        SimKind::EnergyMeter => &[],
    }
}

fn ua_type(t: &ProfileTag) -> UaType {
    if t.spec.is_scaled() {
        return UaType::Double;
    }
    match t.spec.data_type {
        DataType::Bool => UaType::Boolean,
        DataType::U16 => UaType::UInt16,
        DataType::I16 => UaType::Int16,
        DataType::U32 | DataType::U64 => UaType::UInt32,
        DataType::I32 | DataType::I64 => UaType::Int32,
        DataType::F32 => UaType::Float,
        DataType::F64 => UaType::Double,
        DataType::String => UaType::String,
    }
}

/// The nodes of `kind`, in the model's value order; empty for kinds served over Modbus only.
pub fn ua_profile(kind: SimKind) -> Vec<UaNode> {
    let tags = profile(kind);
    paths(kind)
        .iter()
        .filter_map(|(tag, path)| {
            let index = tags.iter().position(|t| t.name == *tag)?;
            let t = &tags[index];
            Some(UaNode {
                tag: t.name,
                path,
                ua_type: ua_type(t),
                unit: t.unit,
                index,
            })
        })
        .collect()
}

/// Kinds that can be served over OPC UA.
pub fn serves_opcua(kind: SimKind) -> bool {
    !paths(kind).is_empty()
}

/// The `[[machine.tag]]` entries that read `kind` over OPC UA.
pub fn to_toml(kind: SimKind, deadbands: Deadbands) -> String {
    let uri = namespace_uri(kind);
    let notes = profile(kind);
    let mut out = format!(
        "# OPC UA node list of the simulated {kind}: paste under an opcua [[machine]].\n\
         # Namespace by URI (nsu=), so the ids hold whatever index the server gives it.\n"
    );
    for n in ua_profile(kind) {
        out.push('\n');
        if let Some(note) = notes.get(n.index).and_then(|t| t.note) {
            let _ = writeln!(out, "  # {note}");
        }
        let _ = writeln!(out, "  [[machine.tag]]");
        let _ = writeln!(out, "  name = \"{}\"", n.tag);
        let _ = writeln!(out, "  node = \"nsu={uri};s={}\"", n.path);
        if let Some(u) = n.unit {
            let _ = writeln!(out, "  unit = \"{u}\"");
        }
        if let Some(line) = deadbands.line(notes.get(n.index).and_then(|t| t.deadband)) {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tag_of_the_opcua_kinds_has_a_unique_node() {
        for kind in [SimKind::Cnc, SimKind::InjectionMoulding] {
            let nodes = ua_profile(kind);
            assert_eq!(nodes.len(), profile(kind).len(), "{kind}");
            let mut paths: Vec<_> = nodes.iter().map(|n| n.path).collect();
            paths.sort_unstable();
            paths.dedup();
            assert_eq!(paths.len(), nodes.len(), "{kind}: two tags on one node");
        }
        assert!(!serves_opcua(SimKind::EnergyMeter));
    }
}
