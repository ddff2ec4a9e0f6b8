//! What drivers report to: machine states to the status board, poll times to the metrics, and
//! what outlives a driver that a new configuration restarts or removes (its tags' `seq`).

use crate::metrics::Metrics;
use crate::status::StatusBoard;
use shopfloor_core::{MachineId, MachineStatus, StatusReporter};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;

/// The error a machine removed from the configuration goes offline with (the contract's).
pub const REMOVED: &str = "removed from the configuration";

/// The `seq`s that pass from a stopped driver to the next one of the same machine.
#[derive(Debug, Default)]
pub struct Lineage {
    /// What each machine's next emitter starts from, by tag index.
    seeds: Mutex<HashMap<MachineId, Vec<u64>>>,
    /// What each stopped emitter last sent, by tag index.
    ended: Mutex<HashMap<MachineId, Vec<u64>>>,
    /// Machines being removed: their emitter says goodbye with [`REMOVED`].
    leaving: Mutex<HashSet<MachineId>>,
    /// Told whenever an emitter ends.
    ends: Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Lineage {
    /// Machine `machine`'s next emitter starts its tags from `seqs`.
    pub fn seed(&self, machine: MachineId, seqs: Vec<u64>) {
        lock(&self.seeds).insert(machine, seqs);
    }

    /// Machine `machine` is being removed: it goes offline with [`REMOVED`] when it stops.
    pub fn leave(&self, machine: MachineId) {
        lock(&self.leaving).insert(machine);
    }

    /// What machine `machine`'s stopped emitter last sent, once (`None` if it has not ended).
    pub fn take_ended(&self, machine: MachineId) -> Option<Vec<u64>> {
        lock(&self.ended).remove(&machine)
    }

    /// Waits until every machine of `machines` has ended, or `patience` has passed; a driver
    /// may let go of its emitter a moment after its task ended.
    pub async fn wait_ended(&self, machines: &[MachineId], patience: Duration) {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let told = self.ends.notified();
            if machines.iter().all(|m| lock(&self.ended).contains_key(m)) {
                return;
            }
            if tokio::time::timeout_at(deadline, told).await.is_err() {
                return;
            }
        }
    }
}

/// The reporter every driver of a gateway gets.
#[derive(Debug)]
pub struct Reporter {
    /// Machine states.
    pub board: Arc<StatusBoard>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// `seq` across restarts.
    pub lineage: Lineage,
}

impl StatusReporter for Reporter {
    fn report(&self, machine: MachineId, status: MachineStatus) {
        self.board.report(machine, status);
    }

    fn poll_done(&self, machine: MachineId, duration: Duration) {
        if let Some(h) = self.metrics.poll.get(machine.index()) {
            h.observe(duration);
        }
    }

    fn first_seqs(&self, machine: MachineId) -> Vec<u64> {
        lock(&self.lineage.seeds)
            .remove(&machine)
            .unwrap_or_default()
    }

    fn ended(&self, machine: MachineId, seqs: &[u64]) -> Option<String> {
        lock(&self.lineage.ended).insert(machine, seqs.to_vec());
        self.lineage.ends.notify_waiters();
        lock(&self.lineage.leaving)
            .remove(&machine)
            .then(|| REMOVED.to_owned())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn seqs_pass_from_one_emitter_to_the_next_and_a_leaver_says_why() {
        let r = Reporter {
            board: Arc::new(StatusBoard::new(2)),
            metrics: Arc::new(Metrics::new(2)),
            lineage: Lineage::default(),
        };
        let (a, b) = (MachineId(0), MachineId(1));
        r.lineage.seed(a, vec![5, 6]);
        assert_eq!(r.first_seqs(a), vec![5, 6]);
        assert_eq!(r.first_seqs(a), Vec::<u64>::new(), "a seed is taken once");
        r.lineage.leave(b);
        assert_eq!(r.ended(a, &[9]), None);
        assert_eq!(r.ended(b, &[1]).as_deref(), Some(REMOVED));
        assert_eq!(r.lineage.take_ended(a), Some(vec![9]));
        assert_eq!(r.lineage.take_ended(a), None);
    }
}
