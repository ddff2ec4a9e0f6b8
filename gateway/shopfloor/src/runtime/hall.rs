//! The machines of a running gateway, by driver *unit*: an OPC UA machine, or a Modbus bus with
//! the machines on it (one connection, one task). Units start and stop one by one, so that a new
//! configuration touches only the units whose machines it changes: a unit left alone keeps its
//! connection, its poll rhythm and its `seq`.
//!
//! Each start gives its machines lanes in a ring of their own, joined to the dispatcher's
//! [`ring::Rings`]; a stopped unit's lanes close with it, and its ring leaves once drained.
//! Catalog ids are never reused: a machine whose settings changed gets a new id (the old one
//! still names its samples on their way) and continues each kept tag's `seq`.

use super::StartError;
use super::reporter::Reporter;
use crate::config::{Config, ProtocolConfig};
use crate::tasks::{TaskPanic, Tasks};
use shopfloor_core::ring::{self, Joiner, Producer};
use shopfloor_core::{Catalog, CatalogError, MachineId, SharedCatalog, StatusReporter};
use shopfloor_modbus::bus::Bus;
use shopfloor_opcua::OpcuaMachine;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How long stopping units may take before the next ones start anyway.
const STOP_PATIENCE: Duration = Duration::from_secs(3);

/// What a unit runs.
enum Driver {
    Bus(Bus),
    Opcua(Box<OpcuaMachine>),
}

/// A unit as a configuration asks for it.
struct Planned {
    key: String,
    /// Its machines' configured ids, in the order of their lanes.
    machines: Vec<String>,
    driver: Driver,
}

/// A running unit.
#[derive(Debug)]
struct Unit {
    machines: Vec<(String, MachineId)>,
    stop: CancellationToken,
    done: oneshot::Receiver<()>,
}

/// Every machine's driver settings, grouped into units; passwords are read from their
/// variables now, so a missing one stops the start before anything changed.
fn planned(config: &Config) -> Result<Vec<Planned>, StartError> {
    let mut out = Vec::new();
    let mut modbus = Vec::new();
    for (index, m) in config.machines.iter().enumerate() {
        match &m.protocol {
            ProtocolConfig::Modbus(_) => modbus.extend(config.modbus_machine(index)),
            ProtocolConfig::Opcua(_) => {
                if let Some(ua) = config.opcua_machine(index) {
                    out.push(Planned {
                        key: format!("opcua {}", m.id),
                        machines: vec![m.id.clone()],
                        driver: Driver::Opcua(Box::new(ua?)),
                    });
                }
            }
        }
    }
    for bus in shopfloor_modbus::bus::buses(modbus) {
        out.push(Planned {
            key: format!("bus {}", bus.link.bus()),
            machines: bus.machines.iter().map(|m| m.name.clone()).collect(),
            driver: Driver::Bus(bus),
        });
    }
    Ok(out)
}

/// Whether every machine of `config` has what its driver needs to start.
pub(crate) fn check(config: &Config) -> Result<(), StartError> {
    planned(config).map(drop)
}

/// Samples a machine's lane holds: its share of the ring, and at least two poll cycles (one
/// being written while the one before is drained), so that a large hall does not multiply the
/// configured capacity more than it must (the lanes are committed memory, 32 bytes a sample).
fn lane_capacity(config: &Config, tags: usize) -> usize {
    let share = config.buffer.capacity / config.machines.len().max(1);
    share.max(2 * tags).max(64)
}

/// `seq`s by the new tag list: each tag of `new` that `old` had (by name) continues its own.
fn seeds_by_name(old: &Catalog, was: MachineId, now: &[String], ended: &[u64]) -> Vec<u64> {
    now.iter()
        .map(|name| {
            old.find_tag(was, name)
                .and_then(|t| ended.get(t.index()).copied())
                .unwrap_or(0)
        })
        .collect()
}

/// The drivers of a gateway's machines.
#[derive(Debug)]
pub(crate) struct Hall {
    units: HashMap<String, Unit>,
    tasks: Tasks,
    joiner: Option<Joiner>,
    reporter: Arc<Reporter>,
    catalog: Arc<SharedCatalog>,
}

impl Hall {
    /// An empty hall whose machines' rings join through `joiner`.
    pub fn new(joiner: Joiner, reporter: Arc<Reporter>, catalog: Arc<SharedCatalog>) -> Hall {
        Hall {
            units: HashMap::new(),
            tasks: Tasks::new(),
            joiner: Some(joiner),
            reporter,
            catalog,
        }
    }

    /// Starts every unit of `config` that does not run yet. Must run inside a tokio runtime.
    pub fn start(&mut self, config: &Config, changed: &[String]) -> Result<(), StartError> {
        let start: Vec<Planned> = planned(config)?
            .into_iter()
            .filter(|p| !self.units.contains_key(&p.key))
            .collect();
        if start.iter().any(|p| matches!(p.driver, Driver::Opcua(_))) {
            super::own_certificate(config);
        }
        let mut capacities = Vec::new();
        let mut units = Vec::new();
        for mut p in start {
            let mut ids = Vec::with_capacity(p.machines.len());
            for name in &p.machines {
                let Some(m) = config.machines.iter().find(|m| &m.id == name) else {
                    continue;
                };
                capacities.push(lane_capacity(config, m.tags.len()));
                let id = self.admit(config, m, changed.contains(name))?;
                ids.push((name.clone(), id));
            }
            match &mut p.driver {
                Driver::Bus(bus) => {
                    for (m, (_, id)) in bus.machines.iter_mut().zip(&ids) {
                        m.id = *id;
                    }
                }
                Driver::Opcua(ua) => {
                    if let Some((_, id)) = ids.first() {
                        ua.id = *id;
                    }
                }
            }
            units.push((p, ids));
        }
        let order: Vec<&str> = config.machines.iter().map(|m| m.id.as_str()).collect();
        let listed = self.catalog.load();
        // Copy on write: the catalog is copied only when the order really changes.
        if !listed
            .machines()
            .map(|(_, m)| m.id.as_str())
            .eq(order.iter().copied())
        {
            self.catalog.update(|c| c.arrange(&order));
        }
        drop(listed);
        let machines = self.catalog.load().len();
        self.reporter.board.reserve(machines);
        self.reporter.metrics.reserve(machines);
        if capacities.is_empty() {
            return Ok(());
        }
        let when_full = config.buffer.when_full;
        let (mut lanes, consumer) = ring::with_lanes(&capacities, when_full)?;
        if let Some(j) = &self.joiner {
            j.join(consumer);
        }
        for (p, ids) in units {
            let rest = lanes.split_off(ids.len().min(lanes.len()));
            let mine = std::mem::replace(&mut lanes, rest);
            self.spawn(p, ids, mine);
        }
        Ok(())
    }

    /// The catalog id machine `m` runs under: its own when it runs on unchanged (a fresh lane
    /// on a restarted bus), a new one when it is new or `changed` (the old one retired). Its
    /// tags continue the `seq` they had. (Its catalog entry is made only when it needs one: a
    /// large hall's tag names are megabytes.)
    fn admit(
        &self,
        config: &Config,
        m: &crate::config::MachineConfig,
        changed: bool,
    ) -> Result<MachineId, CatalogError> {
        let lineage = &self.reporter.lineage;
        let before = self.catalog.load();
        let Some(was) = before.find(&m.id) else {
            let info = config.machine_info(m);
            return self.catalog.update(|c| c.add(info));
        };
        if !changed {
            if let Some(ended) = lineage.take_ended(was) {
                lineage.seed(was, ended);
            }
            return Ok(was);
        }
        let info = config.machine_info(m);
        let tags: Vec<String> = info.tags.iter().map(|t| t.name.clone()).collect();
        let seeds = lineage
            .take_ended(was)
            .map(|ended| seeds_by_name(&before, was, &tags, &ended));
        let id = self.catalog.update(|c| {
            c.retire(was);
            c.add(info)
        })?;
        if let Some(s) = seeds {
            lineage.seed(id, s);
        }
        self.reporter.metrics.carry(was, id);
        Ok(id)
    }

    fn spawn(&mut self, p: Planned, machines: Vec<(String, MachineId)>, mut lanes: Vec<Producer>) {
        let stop = CancellationToken::new();
        let (tx, done) = oneshot::channel();
        let reporter: Arc<dyn StatusReporter> = self.reporter.clone();
        match p.driver {
            Driver::Bus(bus) => {
                let name = format!("the driver of bus {}", bus.link);
                let run = shopfloor_modbus::bus::run(bus, lanes, reporter, stop.clone());
                self.tasks.spawn(name, signal_end(run, tx));
            }
            Driver::Opcua(ua) => {
                let Some(lane) = lanes.pop() else { return };
                let name = format!("the driver of machine {}", ua.name);
                let run = shopfloor_opcua::run(*ua, lane, reporter, stop.clone());
                self.tasks.spawn(name, signal_end(run, tx));
            }
        }
        self.units.insert(
            p.key,
            Unit {
                machines,
                stop,
                done,
            },
        );
    }

    /// Stops the units `config` does not keep as they run: those whose machines it removes or
    /// `changed`, or regroups. Machines of `removed` go offline with the contract's error, and
    /// leave the catalog's listing.
    pub async fn stop_changed(&mut self, config: &Config, changed: &[String], removed: &[String]) {
        let wanted: HashMap<String, Vec<String>> = match planned(config) {
            Ok(p) => p.into_iter().map(|p| (p.key, p.machines)).collect(),
            // Checked again (and reported) by the start that follows.
            Err(_) => HashMap::new(),
        };
        let kept = |key: &String, unit: &Unit| {
            wanted.get(key).is_some_and(|names| {
                names.len() == unit.machines.len()
                    && names
                        .iter()
                        .zip(&unit.machines)
                        .all(|(n, (m, _))| n == m && !changed.contains(n))
            })
        };
        let stopping: Vec<String> = self
            .units
            .iter()
            .filter(|(k, u)| !kept(k, u))
            .map(|(k, _)| k.clone())
            .collect();
        let mut units = Vec::new();
        for key in stopping {
            if let Some(u) = self.units.remove(&key) {
                units.push(u);
            }
        }
        let leaving: HashSet<&String> = removed.iter().collect();
        let lineage = &self.reporter.lineage;
        let (mut ids, mut gone) = (Vec::new(), Vec::new());
        for u in &units {
            for (name, id) in &u.machines {
                if leaving.contains(name) {
                    lineage.leave(*id);
                    gone.push(*id);
                }
                ids.push(*id);
            }
            u.stop.cancel();
        }
        let deadline = Instant::now() + STOP_PATIENCE;
        for u in units {
            if tokio::time::timeout_at(deadline, u.done).await.is_err() {
                warn!(machines = ?u.machines, "a driver did not stop in time");
            }
        }
        lineage.wait_ended(&ids, Duration::from_secs(1)).await;
        self.catalog.update(|c| {
            for id in &gone {
                c.retire(*id);
            }
        });
        for id in gone {
            lineage.take_ended(id);
        }
    }

    /// Waits until a driver panicked (a bug) and says which. Cancel-safe.
    pub async fn panicked(&mut self) -> TaskPanic {
        self.tasks.panicked().await
    }

    /// Stops every unit and closes the door for rings: once what is queued is drained, the
    /// dispatcher ends.
    pub async fn stop(&mut self) -> Vec<TaskPanic> {
        for u in self.units.values() {
            u.stop.cancel();
        }
        self.units.clear();
        let panics = self.tasks.join_all().await;
        self.joiner = None;
        panics
    }
}

/// `run`, then word that it ended (a panic drops the sender, which says it as well).
async fn signal_end(run: impl Future<Output = ()>, done: oneshot::Sender<()>) {
    run.await;
    let _ = done.send(());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use shopfloor_core::{MachineInfo, TagInfo};

    #[test]
    fn a_changed_machine_continues_the_seq_of_the_tags_it_keeps() {
        let mut c = Catalog::new();
        let tag = |n: &str| TagInfo {
            name: n.into(),
            unit: None,
        };
        let was = c
            .add(MachineInfo {
                id: "a".into(),
                kind: String::new(),
                protocol: "opcua".into(),
                tags: vec![tag("x"), tag("y"), tag("z")],
            })
            .unwrap();
        let now: Vec<String> = ["z", "new", "x"].iter().map(|s| s.to_string()).collect();
        assert_eq!(seeds_by_name(&c, was, &now, &[10, 20, 30]), vec![30, 0, 10]);
    }
}
