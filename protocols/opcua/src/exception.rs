//! Report by exception over OPC UA: the deadband goes to the server as an absolute
//! DataChangeFilter, so the server filters before anything crosses the network; the heartbeat
//! is the gateway's, since a server that filters sends nothing while a value stands still.

use opcua::types::{
    DataChangeFilter, DataChangeTrigger, DeadbandType, ExtensionObject, StatusCode,
};
use shopfloor_core::Emitter;
use shopfloor_core::emit::Publish;
use shopfloor_core::time::now_ms;
use std::sync::Mutex;
use std::time::Duration;

/// The filter for tag `tag`'s monitored item: an absolute deadband where one is configured,
/// none (the server's default: any change of status or value) otherwise.
pub fn filter(publish: &Publish, tag: usize) -> ExtensionObject {
    match deadband(publish, tag) {
        Some(d) => ExtensionObject::from_message(DataChangeFilter {
            trigger: DataChangeTrigger::StatusValue,
            deadband_type: DeadbandType::Absolute as u32,
            deadband_value: d,
        }),
        None => ExtensionObject::null(),
    }
}

/// The deadband of tag `tag`, if it has one above 0.
pub fn deadband(publish: &Publish, tag: usize) -> Option<f64> {
    match publish {
        Publish::Change { deadbands, .. } => deadbands.get(tag).copied().filter(|d| *d > 0.0),
        Publish::Every => None,
    }
}

/// Whether a monitored item was refused for its filter (a deadband on a node that is not a
/// number): it is made again without one, and the gateway's own filter does the work.
pub fn refused_filter(status: StatusCode) -> bool {
    [
        StatusCode::BadFilterNotAllowed,
        StatusCode::BadMonitoredItemFilterUnsupported,
        StatusCode::BadMonitoredItemFilterInvalid,
        StatusCode::BadDeadbandFilterInvalid,
    ]
    .contains(&status)
}

/// Sends the heartbeats of `emitter` as they fall due, forever. Without a due heartbeat it
/// looks again after `idle` (a tag sent later may start one).
pub async fn heartbeats(emitter: &Mutex<Emitter>, idle: Duration) {
    loop {
        let next = emitter.lock().ok().and_then(|e| e.next_heartbeat());
        let wait = match next {
            Some(at) => Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0)),
            None => idle,
        };
        tokio::time::sleep(wait.min(idle)).await;
        if let Ok(mut e) = emitter.lock() {
            e.heartbeats();
            e.flush();
        }
    }
}
