//! The connection state of a machine, as its driver sees it.
//!
//! Drivers report through a [`StatusReporter`], so they stay independent of how the gateway
//! fans state out (MQTT retained `_status` topics, `/api/machines`, metrics).

use crate::sample::MachineId;
use std::sync::Arc;

/// Whether a machine answers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MachineState {
    /// The driver has not yet had an answer since the gateway started.
    Connecting,
    /// The last request was answered.
    Online,
    /// The last request failed; the driver is reconnecting.
    Offline,
}

impl MachineState {
    /// The word used in payloads and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            MachineState::Connecting => "connecting",
            MachineState::Online => "online",
            MachineState::Offline => "offline",
        }
    }
}

/// A machine's state, since when, and why it is offline.
#[derive(Clone, Debug, PartialEq)]
pub struct MachineStatus {
    /// The state.
    pub state: MachineState,
    /// When the machine entered this state, UTC milliseconds.
    pub since_ms: i64,
    /// What went wrong, when offline.
    pub error: Option<String>,
}

/// Where drivers report their machine's state changes and how long their polls take.
pub trait StatusReporter: Send + Sync {
    /// Record a state change of `machine`; called only when the state or error changes.
    fn report(&self, machine: MachineId, status: MachineStatus);

    /// Record that one poll cycle of `machine` took `duration` (for the poll-time histogram).
    fn poll_done(&self, machine: MachineId, duration: std::time::Duration) {
        let _ = (machine, duration);
    }

    /// The `seq` each tag of `machine` continues from (by tag index; missing ones from 0),
    /// asked when its emitter is made: a machine restarted by a new configuration keeps them.
    fn first_seqs(&self, machine: MachineId) -> Vec<u64> {
        let _ = machine;
        Vec::new()
    }

    /// The emitter of `machine` is gone (its driver stopped), its tags last sent as `seqs`.
    /// Returns the error to report it offline with when it left for good (removed from the
    /// configuration); `None` on a plain stop, which says nothing in the stream.
    fn ended(&self, machine: MachineId, seqs: &[u64]) -> Option<String> {
        let _ = (machine, seqs);
        None
    }
}

/// A driver's view of its machine's state: passes a state on to the [`StatusReporter`] and logs
/// it only when it changes, so a machine that stays down is one log line, not one per retry.
pub struct StatusTracker {
    machine: MachineId,
    name: String,
    reporter: Arc<dyn StatusReporter>,
    last: Option<(MachineState, Option<String>)>,
}

impl std::fmt::Debug for StatusTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusTracker")
            .field("machine", &self.name)
            .field("last", &self.last)
            .finish()
    }
}

impl StatusTracker {
    /// A tracker for `machine`, named `name` in logs.
    pub fn new(machine: MachineId, name: &str, reporter: Arc<dyn StatusReporter>) -> Self {
        StatusTracker {
            machine,
            name: name.to_owned(),
            reporter,
            last: None,
        }
    }

    /// Records `state` (and why, when offline) if it differs from the last one.
    pub fn report(&mut self, state: MachineState, error: Option<String>) {
        self.report_at(state, error, crate::time::now_ms());
    }

    /// As [`StatusTracker::report`], the change dated `since_ms`; true when it was a change.
    pub fn report_at(&mut self, state: MachineState, error: Option<String>, since_ms: i64) -> bool {
        let now = (state, error);
        if self.last.as_ref() == Some(&now) {
            return false;
        }
        match &now {
            (MachineState::Online, _) => tracing::info!(machine = %self.name, "online"),
            (_, Some(e)) => tracing::warn!(machine = %self.name, error = %e, "offline"),
            _ => {}
        }
        self.reporter.report(
            self.machine,
            MachineStatus {
                state: now.0,
                since_ms,
                error: now.1.clone(),
            },
        );
        self.last = Some(now);
        true
    }

    /// The last state recorded.
    pub fn state(&self) -> Option<MachineState> {
        self.last.as_ref().map(|s| s.0)
    }

    /// Records the duration of one poll cycle.
    pub fn poll_done(&self, duration: std::time::Duration) {
        self.reporter.poll_done(self.machine, duration);
    }

    /// Where the machine's reporter sends what outlives a driver.
    pub fn reporter(&self) -> &dyn StatusReporter {
        &*self.reporter
    }
}
