//! What the edge node announces: every machine as a device with its tags as metrics, each
//! with the Sparkplug type its configuration gives; and the devices a reload adds.

use crate::config::{Applied, Config, ProtocolConfig, SparkplugConfig};
use shopfloor_contract::sparkplug::{DataType, DeviceSpec, MetricSpec, Node, NodeSpec, Outgoing};
use shopfloor_core::{Catalog, MachineId, MachineInfo, Sample, SharedCatalog};
use shopfloor_modbus::register::{DataType as Register, TagSpec};
use std::sync::Arc;

/// The node of `cfg` over the gateway's machines (by machine index, as the samples name them).
pub fn node(config: &Config, cfg: &SparkplugConfig, catalog: &Catalog) -> NodeSpec {
    let devices = (0..catalog.len())
        .filter_map(|i| catalog.machine(MachineId(u16::try_from(i).ok()?)))
        .map(|info| device(Some(config), info))
        .collect();
    NodeSpec {
        group: cfg.group_id.clone(),
        edge_node: cfg.edge_node_id.clone(),
        aliases: cfg.aliases,
        devices,
    }
}

/// Machine `info` as a device: its tags as metrics, typed as its configuration in `config`
/// declares them (learnt from their values where it does not).
pub fn device(config: Option<&Config>, info: &MachineInfo) -> DeviceSpec {
    let machine = config.and_then(|c| c.machines.iter().find(|m| m.id == info.id));
    let registers = machine.and_then(|m| match &m.protocol {
        ProtocolConfig::Modbus(mb) => Some(mb.tags.as_slice()),
        ProtocolConfig::Opcua(_) => None,
    });
    let metrics = info
        .tags
        .iter()
        .enumerate()
        .map(|(i, tag)| MetricSpec {
            name: tag.name.clone(),
            unit: tag.unit.clone(),
            datatype: declared(registers, i, machine),
        })
        .collect();
    DeviceSpec {
        id: info.id.clone(),
        metrics,
    }
}

/// The devices of machines added while the node runs: names from the catalog as it grows,
/// types from the configuration the gateway applied last.
#[derive(Debug)]
pub struct Learner {
    /// The catalog as it grows.
    pub catalog: Arc<SharedCatalog>,
    /// The configuration as applied.
    pub applied: Arc<Applied>,
}

impl Learner {
    /// Gives `node` the devices of every machine added since it last looked, when `batch`
    /// names one it does not know; what that publishes (the death of a device superseded)
    /// goes to `out`.
    pub fn learn(&self, node: &mut Node, batch: &[Sample], now_ms: i64, out: &mut Vec<Outgoing>) {
        let known = node.device_count();
        if batch.iter().all(|s| s.machine.index() < known) {
            return;
        }
        let (catalog, config) = (self.catalog.load(), self.applied.load());
        for i in known..catalog.len() {
            let Some(info) = u16::try_from(i)
                .ok()
                .and_then(|i| catalog.machine(MachineId(i)))
            else {
                break;
            };
            node.add_device(i, device(config.as_deref(), info), now_ms, out);
        }
    }
}

/// The type of tag `i`: a Modbus tag's register type (Double once scaled), a KPI figure's
/// Double; an OPC UA tag's is learnt from its values.
fn declared(
    registers: Option<&[TagSpec]>,
    i: usize,
    machine: Option<&crate::config::MachineConfig>,
) -> Option<DataType> {
    let configured = machine.map_or(0, |m| m.tags.len());
    if i >= configured {
        return Some(DataType::Double);
    }
    registers.and_then(|r| r.get(i)).map(register_type)
}

/// The Sparkplug type of a Modbus register map entry.
pub fn register_type(spec: &TagSpec) -> DataType {
    let scaled = spec.scale != 1.0 || spec.offset != 0.0;
    match spec.data_type {
        Register::Bool => DataType::Boolean,
        Register::String => DataType::String,
        Register::F32 if !scaled => DataType::Float,
        _ if scaled => DataType::Double,
        Register::U16 => DataType::UInt16,
        Register::I16 => DataType::Int16,
        Register::U32 => DataType::UInt32,
        Register::I32 => DataType::Int32,
        Register::U64 => DataType::UInt64,
        Register::I64 => DataType::Int64,
        Register::F32 | Register::F64 => DataType::Double,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shopfloor_modbus::register::Area;

    #[test]
    fn register_types_map_as_the_contract_says() {
        let table = [
            (Register::Bool, 1.0, DataType::Boolean),
            (Register::U16, 1.0, DataType::UInt16),
            (Register::I16, 1.0, DataType::Int16),
            (Register::U32, 1.0, DataType::UInt32),
            (Register::I32, 1.0, DataType::Int32),
            (Register::U64, 1.0, DataType::UInt64),
            (Register::I64, 1.0, DataType::Int64),
            (Register::F32, 1.0, DataType::Float),
            (Register::F64, 1.0, DataType::Double),
            (Register::String, 1.0, DataType::String),
            (Register::U16, 0.1, DataType::Double),
            (Register::F32, 0.1, DataType::Double),
        ];
        for (register, scale, want) in table {
            let mut spec = TagSpec::new(Area::Holding, 0, register);
            spec.scale = scale;
            assert_eq!(register_type(&spec), want, "{register:?} scale {scale}");
        }
    }
}
