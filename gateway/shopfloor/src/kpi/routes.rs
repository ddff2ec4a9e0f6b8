//! Which samples of the stream feed which machine's ledger.

use crate::config::Config;
use shopfloor_core::{MachineId, MachineState, Sample};
use shopfloor_kpi::{Activity, Counted, Ledger, States, states::number};

/// What one tag's samples mean to one ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The machine's state.
    State,
    /// One of its counters (or its meter's).
    Counter(Counted),
}

/// For every machine and tag of the catalog, the ledgers it feeds (by index) and how.
#[derive(Debug, Default)]
pub struct Routes {
    by_tag: Vec<Vec<Vec<(usize, Role)>>>,
    /// For every machine, the ledgers whose own machine it is.
    owned: Vec<Vec<usize>>,
    /// For every machine, whether any of its samples feeds a ledger.
    watched: Vec<bool>,
    states: Vec<States>,
}

impl Routes {
    /// The routes of `config`'s machines with a `[machine.kpi]`, ledgers in that order;
    /// `ids[i]` is the catalog id of the file's machine `i`.
    pub fn new(config: &Config, ids: &[MachineId]) -> Routes {
        let slots = ids.iter().map(|m| m.index() + 1).max().unwrap_or(0);
        let mut r = Routes {
            by_tag: vec![Vec::new(); slots],
            owned: vec![Vec::new(); slots],
            watched: vec![false; slots],
            states: Vec::new(),
        };
        for (m, id) in config.machines.iter().zip(ids) {
            r.by_tag[id.index()] = vec![Vec::new(); m.tags.len()];
        }
        let at = |index: usize| ids.get(index).map_or(usize::MAX, |m| m.index());
        let watched = config.machines.iter().enumerate();
        for (ledger, (index, kpi)) in watched
            .filter_map(|(i, m)| Some((i, m.kpi.as_ref()?)))
            .enumerate()
        {
            r.states.push(kpi.states.clone());
            let own = at(index);
            r.add(own, kpi.state, ledger, Role::State);
            r.add(own, kpi.good, ledger, Role::Counter(Counted::Good));
            if let Some(reject) = kpi.reject {
                r.add(own, reject, ledger, Role::Counter(Counted::Reject));
            }
            if let Some(e) = kpi.energy {
                r.add(at(e.machine), e.tag, ledger, Role::Counter(Counted::Energy));
            }
            if let Some(o) = r.owned.get_mut(own) {
                o.push(ledger);
            }
        }
        r
    }

    fn add(&mut self, machine: usize, tag: usize, ledger: usize, role: Role) {
        if let Some(t) = self.by_tag.get_mut(machine).and_then(|m| m.get_mut(tag)) {
            t.push((ledger, role));
            if let Some(w) = self.watched.get_mut(machine) {
                *w = true;
            }
        }
    }

    /// Feeds `sample` to the ledgers it matters to. A machine's status other than online
    /// makes its activity not known; a bad state reading too. The KPI tags themselves, after
    /// a machine's own tags, feed nothing.
    pub fn feed(&self, ledgers: &mut [Ledger], sample: &Sample) {
        let m = usize::from(sample.machine.0);
        if let Some((state, _)) = sample.as_status() {
            if state != MachineState::Online {
                for &l in self.owned.get(m).into_iter().flatten() {
                    if let Some(ledger) = ledgers.get_mut(l) {
                        ledger.activity(sample.timestamp_ms, Activity::Unknown);
                    }
                }
            }
            return;
        }
        let routes = self
            .by_tag
            .get(m)
            .and_then(|t| t.get(usize::from(sample.tag.0)));
        for &(l, role) in routes.into_iter().flatten() {
            let Some(ledger) = ledgers.get_mut(l) else {
                continue;
            };
            let ts = sample.timestamp_ms;
            match role {
                Role::State => {
                    let states = self.states.get(l);
                    let activity = states.map_or(Activity::Unknown, |s| s.activity(sample.value()));
                    ledger.activity(ts, activity);
                }
                Role::Counter(which) => {
                    if let Some(n) = number(sample.value()) {
                        ledger.counter(ts, which, n);
                    }
                }
            }
        }
    }

    /// Whether machine `machine` feeds any ledger at all (a quick skip for the rest).
    pub fn watches(&self, machine: MachineId) -> bool {
        self.watched
            .get(usize::from(machine.0))
            .copied()
            .unwrap_or(false)
    }
}
