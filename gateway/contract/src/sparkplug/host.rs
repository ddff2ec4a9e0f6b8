//! A Sparkplug host application's view of the edge nodes it hears, as a pure state machine:
//! births learnt, data decoded by alias, deaths making tags bad, and a rebirth asked for
//! whenever the view is broken (data from a node or device not born here, an unknown alias, a
//! `seq` gap). The recorder does the I/O; this module decides what each message means.
//!
//! A device is reported as machine `{device_id}`, its metrics as tags; an edge node's own
//! metrics (besides `bdSeq` and `Node Control/*`) as machine `{edge_node_id}`. Names are
//! reported as the node sent them: the caller checks them before they go anywhere.

use super::datatype::DataType;
use super::node::{BD_SEQ, ENG_UNIT, Outgoing, QUALITY, QUALITY_BAD, QUALITY_UNCERTAIN, REBIRTH};
use super::proto::{Metric, MetricValue, Payload, PropertyKind};
use super::topic::{MessageType, Topic};
use prost::Message as _;
use shopfloor_core::{Quality, Value};
use std::collections::HashMap;

/// How long a rebirth asked for may take before it is asked for again.
pub const REBIRTH_PAUSE_MS: i64 = 5_000;

/// One reading heard.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// The device id (or the edge node id, for the node's own metrics).
    pub machine: String,
    /// The metric's name.
    pub tag: String,
    /// The metric's timestamp, else the payload's, else the time it was heard.
    pub timestamp_ms: i64,
    /// The value; `Null` when bad.
    pub value: Value,
    /// Good, or as the `Quality` property says; bad when `is_null` or dead.
    pub quality: Quality,
    /// The birth's `engUnit`.
    pub unit: Option<String>,
}

/// Why a message, or part of one, was not taken.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Data from a node or device whose birth was not heard, or a metric whose alias or name
    /// the birth did not hold: a rebirth is asked for.
    Unborn,
    /// A new device beyond the view's bound.
    MaxDevices,
    /// A new metric beyond the view's bound.
    MaxMetrics,
}

/// What one message brought.
#[derive(Debug, Default)]
pub struct Heard {
    /// Readings, in the message's order.
    pub readings: Vec<Reading>,
    /// An NCMD Rebirth to publish (QoS 0), when the view of that node is broken.
    pub rebirth: Option<Outgoing>,
    /// What was skipped.
    pub skipped: Vec<Skip>,
}

impl Heard {
    /// Empties it for the next message, keeping its allocations.
    pub fn clear(&mut self) {
        self.readings.clear();
        self.rebirth = None;
        self.skipped.clear();
    }
}

/// A message that is not Sparkplug B.
#[derive(Debug, thiserror::Error)]
pub enum HearError {
    /// The topic is not `spBv1.0/{group}/{type}/{edge node}[/{device}]`.
    #[error("not a Sparkplug B topic")]
    Topic,
    /// The payload is not a Sparkplug B protobuf.
    #[error("not a Sparkplug B payload: {0}")]
    Payload(#[from] prost::DecodeError),
}

/// How much the view learns at most.
#[derive(Copy, Clone, Debug)]
pub struct Limits {
    /// Devices (and nodes with metrics of their own), over all nodes.
    pub devices: usize,
    /// Metrics, over all devices.
    pub metrics: usize,
}

#[derive(Clone, Debug)]
struct MetricInfo {
    name: String,
    datatype: DataType,
    unit: Option<String>,
}

/// A device's (or a node's own) metrics as its last birth announced them. A metric of a
/// type not recorded (arrays, data sets, templates) or beyond the bound is known as `None`:
/// its data is passed over without asking for a rebirth.
#[derive(Debug, Default)]
struct Born {
    by_alias: HashMap<u64, Option<usize>>,
    by_name: HashMap<String, Option<usize>>,
    metrics: Vec<MetricInfo>,
}

impl Born {
    /// `None` for a metric the birth did not hold, `Some(None)` for one passed over.
    fn find(&self, m: &Metric) -> Option<Option<&MetricInfo>> {
        let i = match (m.alias, &m.name) {
            (Some(a), _) => self.by_alias.get(&a),
            (None, Some(n)) => self.by_name.get(n),
            (None, None) => None,
        }?;
        Some(i.and_then(|i| self.metrics.get(i)))
    }

    fn know(&mut self, m: &Metric, index: Option<usize>) {
        if let Some(n) = &m.name {
            self.by_name.insert(n.clone(), index);
        }
        if let Some(a) = m.alias {
            self.by_alias.insert(a, index);
        }
    }
}

#[derive(Debug, Default)]
struct NodeView {
    /// The `bdSeq` of the NBIRTH heard; `None` while the node is not born here.
    bd_seq: Option<i64>,
    next_seq: u64,
    own: Born,
    devices: HashMap<String, Born>,
    rebirth_asked_at: Option<i64>,
}

/// Every edge node heard, by (group, edge node).
#[derive(Debug)]
pub struct HostView {
    nodes: HashMap<(String, String), NodeView>,
    limits: Limits,
    devices: usize,
    metrics: usize,
}

impl HostView {
    /// A view that learns at most `limits`.
    pub fn new(limits: Limits) -> HostView {
        HostView {
            nodes: HashMap::new(),
            limits,
            devices: 0,
            metrics: 0,
        }
    }

    /// Takes one message heard at `now_ms` into `out` (cleared first). `STATE` and command
    /// messages bring nothing.
    pub fn hear(
        &mut self,
        topic: &str,
        payload: &[u8],
        now_ms: i64,
        out: &mut Heard,
    ) -> Result<(), HearError> {
        out.clear();
        let Some(t) = Topic::parse(topic) else {
            return if topic.starts_with("spBv1.0/STATE/") {
                Ok(())
            } else {
                Err(HearError::Topic)
            };
        };
        if matches!(t.kind, MessageType::NCmd | MessageType::DCmd) {
            return Ok(());
        }
        let p = Payload::decode(payload)?;
        let key = (t.group.to_owned(), t.edge_node.to_owned());
        let stamp = p.timestamp.map_or(now_ms, heard_ms);
        match t.kind {
            MessageType::NBirth => self.node_birth(key.clone(), &p, stamp, out),
            MessageType::NDeath => self.node_death(&key, &p, stamp, out),
            _ => {
                if !self.nodes.contains_key(&key) && self.nodes.len() >= self.limits.devices {
                    out.skipped.push(Skip::MaxDevices);
                    return Ok(());
                }
                let node = self.nodes.entry(key.clone()).or_default();
                if node.bd_seq.is_none() {
                    unborn(out);
                } else {
                    let gap = p.seq.is_some_and(|s| s != node.next_seq);
                    node.next_seq = (p.seq.unwrap_or(node.next_seq) + 1) % 256;
                    if gap {
                        unborn(out);
                    }
                    match (t.kind, t.device) {
                        (MessageType::DBirth, Some(d)) => {
                            self.device_birth(&key, d, &p, stamp, out)
                        }
                        (MessageType::DDeath, Some(d)) => self.device_death(&key, d, stamp, out),
                        (MessageType::DData, Some(d)) => self.data(&key, Some(d), &p, stamp, out),
                        (MessageType::NData, None) => self.data(&key, None, &p, stamp, out),
                        _ => {}
                    }
                }
            }
        }
        if out.skipped.contains(&Skip::Unborn) {
            out.rebirth = self.ask_rebirth(&key, now_ms);
        }
        Ok(())
    }

    fn node_birth(&mut self, key: (String, String), p: &Payload, stamp: i64, out: &mut Heard) {
        let old = self.nodes.remove(&key).unwrap_or_default();
        self.forget(&old);
        let bd_seq = p
            .metrics
            .iter()
            .find(|m| m.name.as_deref() == Some(BD_SEQ))
            .and_then(|m| match m.value {
                Some(MetricValue::LongValue(v)) => Some(v as i64),
                Some(MetricValue::IntValue(v)) => Some(i64::from(v)),
                _ => None,
            })
            .unwrap_or(0);
        let own = p.metrics.iter().filter(|m| !is_control(m)).cloned();
        let own: Vec<Metric> = own.collect();
        let mut node = NodeView {
            bd_seq: Some(bd_seq),
            next_seq: (p.seq.unwrap_or(0) + 1) % 256,
            ..NodeView::default()
        };
        if !own.is_empty() {
            node.own = self.learn(&own, true, out);
            report(&node.own, &key.1, &own, stamp, out);
        }
        self.nodes.insert(key, node);
    }

    fn node_death(&mut self, key: &(String, String), p: &Payload, stamp: i64, out: &mut Heard) {
        let Some(node) = self.nodes.get_mut(key) else {
            return;
        };
        let will = p
            .metrics
            .iter()
            .find(|m| m.name.as_deref() == Some(BD_SEQ))
            .and_then(|m| match m.value {
                Some(MetricValue::LongValue(v)) => Some(v as i64),
                _ => None,
            });
        // A will of an older session, delivered late, says nothing about this one.
        if node.bd_seq.is_none() || will.is_some_and(|w| Some(w) != node.bd_seq) {
            return;
        }
        dead(&node.own, &key.1, stamp, out);
        for (device, born) in &node.devices {
            dead(born, device, stamp, out);
        }
        let asked = node.rebirth_asked_at;
        if let Some(old) = self.nodes.remove(key) {
            self.forget(&old);
        }
        let unborn = NodeView {
            rebirth_asked_at: asked,
            ..NodeView::default()
        };
        self.nodes.insert(key.clone(), unborn);
    }

    fn device_birth(
        &mut self,
        key: &(String, String),
        device: &str,
        p: &Payload,
        stamp: i64,
        out: &mut Heard,
    ) {
        let Some(node) = self.nodes.get_mut(key) else {
            return;
        };
        let old = node.devices.remove(device);
        let was_known = old.is_some();
        if let Some(old) = old {
            self.metrics -= old.metrics.len();
            self.devices -= 1;
        }
        if !was_known && self.devices >= self.limits.devices {
            out.skipped.push(Skip::MaxDevices);
            return;
        }
        let born = self.learn(&p.metrics, false, out);
        report(&born, device, &p.metrics, stamp, out);
        self.devices += 1;
        if let Some(node) = self.nodes.get_mut(key) {
            node.devices.insert(device.to_owned(), born);
        }
    }

    fn device_death(&mut self, key: &(String, String), device: &str, stamp: i64, out: &mut Heard) {
        let Some(born) = self
            .nodes
            .get_mut(key)
            .and_then(|n| n.devices.remove(device))
        else {
            unborn(out);
            return;
        };
        dead(&born, device, stamp, out);
        self.metrics -= born.metrics.len();
        self.devices -= 1;
    }

    fn data(
        &mut self,
        key: &(String, String),
        device: Option<&str>,
        p: &Payload,
        stamp: i64,
        out: &mut Heard,
    ) {
        let Some(node) = self.nodes.get(key) else {
            return;
        };
        let (born, machine) = match device {
            Some(d) => match node.devices.get(d) {
                Some(b) => (b, d),
                None => {
                    unborn(out);
                    return;
                }
            },
            None => (&node.own, key.1.as_str()),
        };
        report(born, machine, &p.metrics, stamp, out);
    }

    /// The metrics of a birth, within the bounds; a node's own are counted as one device.
    fn learn(&mut self, metrics: &[Metric], own: bool, out: &mut Heard) -> Born {
        if own && self.devices >= self.limits.devices {
            out.skipped.push(Skip::MaxDevices);
            return Born::default();
        }
        let born = self.learn_metrics(metrics, out);
        if own && !born.metrics.is_empty() {
            // Counted as a device only while it holds a metric (see `forget`).
            self.devices += 1;
        }
        born
    }

    fn learn_metrics(&mut self, metrics: &[Metric], out: &mut Heard) -> Born {
        let mut born = Born::default();
        for m in metrics {
            let Some(name) = &m.name else {
                continue;
            };
            if born.by_name.contains_key(name) {
                continue;
            }
            let Some(datatype) = m.datatype.and_then(DataType::from_code) else {
                born.know(m, None);
                continue;
            };
            if self.metrics >= self.limits.metrics {
                out.skipped.push(Skip::MaxMetrics);
                born.know(m, None);
                continue;
            }
            self.metrics += 1;
            born.know(m, Some(born.metrics.len()));
            born.metrics.push(MetricInfo {
                name: name.clone(),
                datatype,
                unit: unit(m),
            });
        }
        born
    }

    fn forget(&mut self, node: &NodeView) {
        let own = usize::from(!node.own.metrics.is_empty());
        self.devices -= (node.devices.len() + own).min(self.devices);
        let metrics: usize = node.devices.values().map(|b| b.metrics.len()).sum();
        self.metrics -= (metrics + node.own.metrics.len()).min(self.metrics);
    }

    /// An NCMD Rebirth to the node, unless one was asked for within [`REBIRTH_PAUSE_MS`].
    fn ask_rebirth(&mut self, key: &(String, String), now_ms: i64) -> Option<Outgoing> {
        let node = self.nodes.get_mut(key)?;
        if node
            .rebirth_asked_at
            .is_some_and(|at| now_ms - at < REBIRTH_PAUSE_MS)
        {
            return None;
        }
        node.rebirth_asked_at = Some(now_ms);
        Some(rebirth_command(&key.0, &key.1, now_ms))
    }
}

/// The NCMD a host sends to ask edge node `edge_node` of `group` for its births again.
pub fn rebirth_command(group: &str, edge_node: &str, now_ms: i64) -> Outgoing {
    let payload = Payload {
        timestamp: Some(sent_ms(now_ms)),
        metrics: vec![Metric {
            name: Some(REBIRTH.into()),
            timestamp: Some(sent_ms(now_ms)),
            datatype: Some(DataType::Boolean.code()),
            value: Some(MetricValue::BooleanValue(true)),
            ..Metric::default()
        }],
        ..Payload::default()
    };
    let topic = Topic {
        group,
        kind: MessageType::NCmd,
        edge_node,
        device: None,
    };
    Outgoing {
        kind: MessageType::NCmd,
        topic: topic.to_string(),
        payload: payload.encode_to_vec(),
    }
}

/// Marks the message as one the view could not place (once per message).
fn unborn(out: &mut Heard) {
    if !out.skipped.contains(&Skip::Unborn) {
        out.skipped.push(Skip::Unborn);
    }
}

fn is_control(m: &Metric) -> bool {
    m.name
        .as_deref()
        .is_some_and(|n| n == BD_SEQ || n.starts_with("Node Control/"))
}

/// The readings of `metrics` as `born` describes them; an unknown metric marks the message.
fn report(born: &Born, machine: &str, metrics: &[Metric], stamp: i64, out: &mut Heard) {
    for m in metrics {
        if is_control(m) {
            continue;
        }
        let info = match born.find(m) {
            Some(Some(info)) => info,
            Some(None) => continue,
            None => {
                unborn(out);
                continue;
            }
        };
        let (value, quality) = value_of(m, info.datatype);
        out.readings.push(Reading {
            machine: machine.to_owned(),
            tag: info.name.clone(),
            timestamp_ms: m.timestamp.map_or(stamp, heard_ms),
            value,
            quality,
            unit: info.unit.clone(),
        });
    }
}

/// Every metric of `born` as bad, at `stamp`.
fn dead(born: &Born, machine: &str, stamp: i64, out: &mut Heard) {
    for info in &born.metrics {
        out.readings.push(Reading {
            machine: machine.to_owned(),
            tag: info.name.clone(),
            timestamp_ms: stamp,
            value: Value::Null,
            quality: Quality::Bad,
            unit: info.unit.clone(),
        });
    }
}

fn value_of(m: &Metric, datatype: DataType) -> (Value, Quality) {
    let said = m
        .properties
        .as_ref()
        .and_then(|p| p.get(QUALITY))
        .and_then(|v| match v.value {
            Some(PropertyKind::IntValue(q)) => Some(q as i32),
            Some(PropertyKind::LongValue(q)) => Some(q as i32),
            _ => None,
        });
    let value = if m.is_null == Some(true) {
        None
    } else {
        m.value.as_ref().and_then(|v| datatype.read(v))
    };
    match (value, said) {
        (None, _) | (_, Some(QUALITY_BAD)) => (Value::Null, Quality::Bad),
        (Some(v), Some(QUALITY_UNCERTAIN)) => (v, Quality::Uncertain),
        (Some(v), _) => (v, Quality::Good),
    }
}

fn unit(m: &Metric) -> Option<String> {
    match m.properties.as_ref()?.get(ENG_UNIT)?.value.as_ref()? {
        PropertyKind::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

/// A timestamp off the wire; one beyond `i64` is taken as the far future.
fn heard_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn sent_ms(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}
