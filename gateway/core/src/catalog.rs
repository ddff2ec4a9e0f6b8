//! Names behind the ids of a [`crate::Sample`].
//!
//! Built once when the configuration loads and then shared read-only (`Arc<Catalog>`), so sinks
//! turn ids back into names with two slice lookups and no hashing.

use crate::sample::{MachineId, TagId};
use thiserror::Error;

/// A tag's name and unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagInfo {
    /// `[a-z0-9_]+`, unique within its machine.
    pub name: String,
    /// Engineering unit, where configured.
    pub unit: Option<String>,
}

/// A machine's identity and its tags, in configuration order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineInfo {
    /// `[a-z0-9_-]+`, unique.
    pub id: String,
    /// Free text: cnc, injection-moulding, energy-meter, ...
    pub kind: String,
    /// The protocol word of the configuration (`modbus-tcp`, `opcua`, ...).
    pub protocol: String,
    /// Its tags; a [`TagId`] indexes this list.
    pub tags: Vec<TagInfo>,
}

/// The catalog could not take another entry.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CatalogError {
    /// More machines than a [`MachineId`] can number.
    #[error("too many machines: at most {max}")]
    TooManyMachines {
        /// The limit.
        max: usize,
    },
    /// More tags on one machine than a [`TagId`] can number.
    #[error("machine {machine}: too many tags, at most {max}")]
    TooManyTags {
        /// The machine.
        machine: String,
        /// The limit.
        max: usize,
    },
}

/// All machines of a gateway, indexed by [`MachineId`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    machines: Vec<MachineInfo>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// Adds a machine and returns its id.
    pub fn add(&mut self, machine: MachineInfo) -> Result<MachineId, CatalogError> {
        let max = usize::from(u16::MAX) + 1;
        if machine.tags.len() > max {
            return Err(CatalogError::TooManyTags {
                machine: machine.id,
                max,
            });
        }
        let id = u16::try_from(self.machines.len())
            .map_err(|_| CatalogError::TooManyMachines { max })?;
        self.machines.push(machine);
        Ok(MachineId(id))
    }

    /// The machine behind `id`.
    pub fn machine(&self, id: MachineId) -> Option<&MachineInfo> {
        self.machines.get(id.index())
    }

    /// The tag behind `(machine, tag)`.
    pub fn tag(&self, machine: MachineId, tag: TagId) -> Option<&TagInfo> {
        self.machine(machine)?.tags.get(tag.index())
    }

    /// Looks a machine up by its configured id.
    pub fn find(&self, id: &str) -> Option<MachineId> {
        self.machines
            .iter()
            .position(|m| m.id == id)
            .and_then(|i| u16::try_from(i).ok())
            .map(MachineId)
    }

    /// Looks a tag up by machine id and tag name.
    pub fn find_tag(&self, machine: MachineId, name: &str) -> Option<TagId> {
        self.machine(machine)?
            .tags
            .iter()
            .position(|t| t.name == name)
            .and_then(|i| u16::try_from(i).ok())
            .map(TagId)
    }

    /// All machines with their ids.
    pub fn machines(&self) -> impl Iterator<Item = (MachineId, &MachineInfo)> {
        self.machines
            .iter()
            .enumerate()
            .map(|(i, m)| (MachineId(i as u16), m))
    }

    /// Number of machines.
    pub fn len(&self) -> usize {
        self.machines.len()
    }

    /// True when there is no machine.
    pub fn is_empty(&self) -> bool {
        self.machines.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(id: &str, tags: &[&str]) -> MachineInfo {
        MachineInfo {
            id: id.into(),
            kind: "cnc".into(),
            protocol: "modbus-tcp".into(),
            tags: tags
                .iter()
                .map(|t| TagInfo {
                    name: (*t).into(),
                    unit: None,
                })
                .collect(),
        }
    }

    #[test]
    fn ids_resolve_back_to_names() {
        let mut c = Catalog::new();
        let a = c
            .add(machine("cnc-1", &["spindle_speed", "door_open"]))
            .unwrap();
        let b = c.add(machine("imm-1", &["cycle_time"])).unwrap();
        assert_eq!((a, b), (MachineId(0), MachineId(1)));
        assert_eq!(c.find("imm-1"), Some(b));
        assert_eq!(c.find_tag(a, "door_open"), Some(TagId(1)));
        assert_eq!(c.tag(a, TagId(1)).unwrap().name, "door_open");
        assert_eq!(c.tag(b, TagId(1)), None);
        assert_eq!(c.find("nope"), None);
    }
}
