//! The primary host application's STATE messages (Sparkplug 3.0): the retained JSON
//! `{"online": bool, "timestamp": ms}` on `spBv1.0/STATE/{host_id}`, and the edge node's rule
//! for following them.

use super::topic::NAMESPACE;
use serde::Deserialize;

/// What a host application last said about itself.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct HostState {
    /// True while the host is connected to this broker and subscribed.
    pub online: bool,
    /// When the host said it (ms since the epoch, the host's clock).
    pub timestamp: u64,
}

/// A STATE payload that is not the 3.0 JSON form.
#[derive(Debug, thiserror::Error)]
#[error("not a Sparkplug 3.0 STATE payload (want {{\"online\": bool, \"timestamp\": ms}}): {0}")]
pub struct StateError(#[from] serde_json::Error);

/// Reads a STATE payload; both fields are required, as the specification asks.
pub fn parse_state(payload: &[u8]) -> Result<HostState, StateError> {
    Ok(serde_json::from_slice(payload)?)
}

/// The topic a host application `host_id` publishes its STATE on.
pub fn state_topic(host_id: &str) -> String {
    format!("{NAMESPACE}/STATE/{host_id}")
}

/// The edge node's view of its primary host on one connection.
#[derive(Debug, Default)]
pub struct PrimaryHost {
    latest: Option<HostState>,
}

impl PrimaryHost {
    /// Takes a STATE message; one older than the latest accepted is ignored (a late
    /// duplicate must not undo what the host said since). Returns whether it was taken.
    pub fn observe(&mut self, state: HostState) -> bool {
        if self.latest.is_some_and(|l| state.timestamp < l.timestamp) {
            return false;
        }
        self.latest = Some(state);
        true
    }

    /// True once the latest accepted STATE says online.
    pub fn online(&self) -> bool {
        self.latest.is_some_and(|l| l.online)
    }
}
