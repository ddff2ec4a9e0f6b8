//! Names behind the ids of a [`crate::Sample`].
//!
//! Built once when the configuration loads and then shared read-only (`Arc<Catalog>`), so sinks
//! turn ids back into names with two slice lookups and no hashing. A recorder, which learns its
//! machines and tags from the messages it receives, grows a [`SharedCatalog`] instead: readers
//! take a snapshot per batch, and an id once given never changes.

use crate::sample::{MachineId, TagId};
use std::sync::{Arc, PoisonError, RwLock};
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
    /// Machines taken out of the configuration: their ids keep naming the samples still on
    /// their way to a sink, but they are no longer listed or found by name.
    retired: Vec<bool>,
    /// The machines listed, in the order of the configuration.
    listing: Vec<MachineId>,
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
        self.retired.push(false);
        self.listing.push(MachineId(id));
        Ok(MachineId(id))
    }

    /// Takes a machine out of the listing and out of [`Catalog::find`]; its id is never given
    /// to another machine, and [`Catalog::machine`] still names it.
    pub fn retire(&mut self, machine: MachineId) {
        if let Some(r) = self.retired.get_mut(machine.index()) {
            *r = true;
        }
        self.listing.retain(|m| *m != machine);
    }

    /// Lists the machines in the order of `ids` (configured ids); those it does not name
    /// follow, in the order they were added.
    pub fn arrange(&mut self, ids: &[&str]) {
        let rank = |m: &MachineId| {
            let id = self.machines.get(m.index()).map(|i| i.id.as_str());
            ids.iter().position(|x| Some(*x) == id).unwrap_or(ids.len())
        };
        let mut listing = std::mem::take(&mut self.listing);
        listing.sort_by_key(rank);
        self.listing = listing;
    }

    /// True for a machine taken out of the configuration.
    pub fn is_retired(&self, machine: MachineId) -> bool {
        self.retired.get(machine.index()).copied().unwrap_or(false)
    }

    /// Adds a tag to machine `machine` and returns its id.
    pub fn add_tag(&mut self, machine: MachineId, tag: TagInfo) -> Result<TagId, CatalogError> {
        let max = usize::from(u16::MAX) + 1;
        let Some(m) = self.machines.get_mut(machine.index()) else {
            return Err(CatalogError::TooManyMachines { max });
        };
        let id = u16::try_from(m.tags.len()).map_err(|_| CatalogError::TooManyTags {
            machine: m.id.clone(),
            max,
        })?;
        m.tags.push(tag);
        Ok(TagId(id))
    }

    /// Sets a machine's kind (a recorder learns it from the machine's status).
    pub fn set_kind(&mut self, machine: MachineId, kind: &str) {
        if let Some(m) = self.machines.get_mut(machine.index()) {
            kind.clone_into(&mut m.kind);
        }
    }

    /// The machine behind `id`.
    pub fn machine(&self, id: MachineId) -> Option<&MachineInfo> {
        self.machines.get(id.index())
    }

    /// The tag behind `(machine, tag)`.
    pub fn tag(&self, machine: MachineId, tag: TagId) -> Option<&TagInfo> {
        self.machine(machine)?.tags.get(tag.index())
    }

    /// Looks a machine in the configuration up by its configured id.
    pub fn find(&self, id: &str) -> Option<MachineId> {
        self.machines().find(|(_, m)| m.id == id).map(|(i, _)| i)
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

    /// The machines in the configuration with their ids, in its order (retired ones left
    /// out).
    pub fn machines(&self) -> impl Iterator<Item = (MachineId, &MachineInfo)> {
        self.listing
            .iter()
            .filter_map(|&id| Some((id, self.machines.get(id.index())?)))
    }

    /// Number of ids given, retired machines included: every id is below it.
    pub fn len(&self) -> usize {
        self.machines.len()
    }

    /// True when no id was ever given.
    pub fn is_empty(&self) -> bool {
        self.machines.is_empty()
    }
}

/// A catalog that grows while sinks read it: each reader takes a snapshot (an `Arc`, one
/// uncontended lock) per batch; a writer copies, adds and swaps. Ids are only ever appended, so
/// a snapshot taken after a sample was made knows its ids.
#[derive(Debug, Default)]
pub struct SharedCatalog {
    current: RwLock<Arc<Catalog>>,
}

impl SharedCatalog {
    /// Starts from `catalog`.
    pub fn new(catalog: Catalog) -> SharedCatalog {
        SharedCatalog::from_arc(Arc::new(catalog))
    }

    /// Starts from a catalog already shared, without copying it until it grows.
    pub fn from_arc(catalog: Arc<Catalog>) -> SharedCatalog {
        SharedCatalog {
            current: RwLock::new(catalog),
        }
    }

    /// The catalog as it is now.
    pub fn load(&self) -> Arc<Catalog> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Changes the catalog (copy on write: readers keep the snapshot they hold).
    pub fn update<R>(&self, change: impl FnOnce(&mut Catalog) -> R) -> R {
        let mut guard = self.current.write().unwrap_or_else(PoisonError::into_inner);
        change(Arc::make_mut(&mut guard))
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

    #[test]
    fn a_retired_machine_keeps_its_id_and_names_but_leaves_the_listing() {
        let mut c = Catalog::new();
        let old = c.add(machine("cnc-1", &["speed"])).unwrap();
        c.retire(old);
        let new = c.add(machine("cnc-1", &["speed", "temp"])).unwrap();
        assert_ne!(old, new, "an id is never given twice");
        assert_eq!(c.find("cnc-1"), Some(new));
        assert!(c.is_retired(old) && !c.is_retired(new));
        assert_eq!(c.tag(old, TagId(0)).unwrap().name, "speed");
        let listed: Vec<MachineId> = c.machines().map(|(i, _)| i).collect();
        assert_eq!(listed, vec![new]);
        assert_eq!(c.len(), 2);
        let other = c.add(machine("imm-1", &[])).unwrap();
        c.arrange(&["imm-1", "cnc-1"]);
        let listed: Vec<MachineId> = c.machines().map(|(i, _)| i).collect();
        assert_eq!(listed, vec![other, new], "the configuration's order");
    }

    #[test]
    fn a_shared_catalog_grows_under_its_readers() {
        let shared = SharedCatalog::new(Catalog::new());
        let before = shared.load();
        let m = shared.update(|c| c.add(machine("rec-1", &[]))).unwrap();
        let t = shared
            .update(|c| {
                c.add_tag(
                    m,
                    TagInfo {
                        name: "speed".into(),
                        unit: Some("rpm".into()),
                    },
                )
            })
            .unwrap();
        assert!(before.is_empty(), "a snapshot does not change");
        let now = shared.load();
        assert_eq!(now.tag(m, t).unwrap().name, "speed");
        assert_eq!(
            shared.update(|c| c.add_tag(
                MachineId(9),
                TagInfo {
                    name: "x".into(),
                    unit: None
                }
            )),
            Err(CatalogError::TooManyMachines { max: 65536 })
        );
    }
}
