//! The connection state of a machine, as its driver sees it.
//!
//! Drivers report through a [`StatusReporter`], so they stay independent of how the gateway
//! fans state out (MQTT retained `_status` topics, `/api/machines`, metrics).

use crate::sample::MachineId;

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
}
