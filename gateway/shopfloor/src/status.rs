//! The status board: every machine's latest state, fed by drivers and read by `/health`,
//! `/metrics` and `/api/machines` (sinks take statuses from the stream instead).

use shopfloor_core::{MachineId, MachineState, MachineStatus, StatusReporter, time::now_ms};
use tokio::sync::watch;

/// Latest state per machine, indexed by [`MachineId`].
pub type Statuses = Vec<MachineStatus>;

/// Drivers report here; the HTTP server reads a [`StatusBoard::snapshot`].
#[derive(Debug)]
pub struct StatusBoard {
    tx: watch::Sender<Statuses>,
}

impl StatusBoard {
    /// A board for `machines` machines, all connecting.
    pub fn new(machines: usize) -> StatusBoard {
        let initial = MachineStatus {
            state: MachineState::Connecting,
            since_ms: now_ms(),
            error: None,
        };
        StatusBoard {
            tx: watch::Sender::new(vec![initial; machines]),
        }
    }

    /// Makes room for machines `0..machines` (added by a new configuration), connecting.
    pub fn reserve(&self, machines: usize) {
        self.tx.send_if_modified(|all| {
            if all.len() >= machines {
                return false;
            }
            let connecting = MachineStatus {
                state: MachineState::Connecting,
                since_ms: now_ms(),
                error: None,
            };
            all.resize(machines, connecting);
            true
        });
    }

    /// The current states.
    pub fn snapshot(&self) -> Statuses {
        self.tx.borrow().clone()
    }
}

impl StatusReporter for StatusBoard {
    fn report(&self, machine: MachineId, status: MachineStatus) {
        self.tx
            .send_if_modified(|all| match all.get_mut(machine.index()) {
                Some(slot) if *slot != status => {
                    *slot = status;
                    true
                }
                _ => false,
            });
    }
}
