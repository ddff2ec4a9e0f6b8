//! The recorder as a Sparkplug B host application: every message under `spBv1.0/` goes
//! through a [`HostView`], whose readings become the recorder's, with names checked.
//!
//! Metric names use `/` for folders (`Inputs/Temperature`); as tags they take `.` instead,
//! so that they pass the name rule. Any other character outside it skips the reading.

use crate::metrics::SkipReason;
use rumqttc::{AsyncClient, QoS};
use shopfloor_contract::json::parse::{Reading, name_ok};
use shopfloor_contract::sparkplug::Outgoing;
use shopfloor_contract::sparkplug::host::{HearError, Heard, HostView, Limits, Skip};
use shopfloor_core::time::now_ms;
use tracing::{info, warn};

/// The kind of a machine recorded from Sparkplug.
pub const KIND: &str = "sparkplug";

/// True for a topic the recorder reads as Sparkplug B.
pub fn is_sparkplug(topic: &str) -> bool {
    topic.starts_with("spBv1.0/")
}

/// What one Sparkplug message brought the recorder.
#[derive(Debug, Default)]
pub struct Taken {
    /// Readings with names that pass the rule.
    pub readings: Vec<Reading>,
    /// Why parts of the message were not taken.
    pub skipped: Vec<SkipReason>,
    /// An NCMD Rebirth to publish.
    pub rebirth: Option<Outgoing>,
}

/// The host view and what it needs between messages.
#[derive(Debug)]
pub struct Hearing {
    view: HostView,
    heard: Heard,
    seq: u64,
}

impl Hearing {
    /// Learns at most `machines` devices and `tags` metrics, as `[record]` bounds the rest.
    pub fn new(machines: usize, tags: usize) -> Hearing {
        Hearing {
            view: HostView::new(Limits {
                devices: machines,
                metrics: tags,
            }),
            heard: Heard::default(),
            seq: 0,
        }
    }

    /// One message from the broker.
    pub fn hear(&mut self, topic: &str, payload: &[u8]) -> Result<Taken, HearError> {
        self.view.hear(topic, payload, now_ms(), &mut self.heard)?;
        let mut taken = Taken {
            rebirth: self.heard.rebirth.take(),
            ..Taken::default()
        };
        taken
            .skipped
            .extend(self.heard.skipped.iter().map(|s| match s {
                Skip::Unborn => SkipReason::Unborn,
                Skip::MaxDevices => SkipReason::MaxMachines,
                Skip::MaxMetrics => SkipReason::MaxTags,
            }));
        for r in self.heard.readings.drain(..) {
            let tag = r.tag.replace('/', ".");
            if !name_ok(&r.machine) || !name_ok(&tag) {
                taken.skipped.push(SkipReason::Name);
                continue;
            }
            self.seq += 1;
            taken.readings.push(Reading {
                machine: r.machine,
                tag,
                timestamp_ms: r.timestamp_ms,
                seq: self.seq,
                value: r.value,
                quality: r.quality,
                unit: r.unit,
            });
        }
        Ok(taken)
    }
}

/// Publishes a rebirth request (QoS 0, as hosts send commands); one the client cannot queue
/// now is asked for again by the next message the view cannot place.
pub fn send(client: &AsyncClient, command: Outgoing) {
    match client.try_publish(
        command.topic.as_str(),
        QoS::AtMostOnce,
        false,
        command.payload,
    ) {
        Ok(()) => info!(
            event = "sparkplug_rebirth_asked",
            topic = ?command.topic,
            "Sparkplug: asked a node for its births"
        ),
        Err(e) => warn!(topic = ?command.topic, error = %e, "Sparkplug: cannot ask for a rebirth"),
    }
}
