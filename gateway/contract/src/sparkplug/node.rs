//! The edge node's session rules as a pure state machine: what to publish for a connection,
//! for each batch of samples and status events, and for a rebirth. The sink around it does
//! the I/O; this module decides every topic, payload, `seq` and `bdSeq`.
//!
//! One node is the gateway; one device is a machine (by its [`MachineId`] index), one metric
//! a tag (by its [`TagId`] index). Aliases are `machine << 16 | tag`: unique within the node
//! and the same in every session.

use super::datatype::DataType;
use super::proto::{Metric, MetricValue, Payload, PropertyKind, PropertySet, PropertyValue};
use super::topic::{MessageType, Topic};
use prost::Message as _;
use shopfloor_core::{MachineState, Quality, Sample, Value};

/// The NBIRTH/NDEATH metric that pairs a birth with the will of its connection.
pub const BD_SEQ: &str = "bdSeq";
/// The NBIRTH metric a host sets to true in an NCMD to ask for births again.
pub const REBIRTH: &str = "Node Control/Rebirth";
/// The property that carries a configured unit.
pub const ENG_UNIT: &str = "engUnit";
/// The property that carries a reading's quality when it is not good.
pub const QUALITY: &str = "Quality";
/// `Quality` of an uncertain reading.
pub const QUALITY_UNCERTAIN: i32 = 64;
/// `Quality` of a bad reading.
pub const QUALITY_BAD: i32 = 0;

/// One tag as the node announces it.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricSpec {
    /// The metric's name: the tag's.
    pub name: String,
    /// The configured unit, sent as `engUnit`.
    pub unit: Option<String>,
    /// The declared type; `None` learns it from the first value (OPC UA tags).
    pub datatype: Option<DataType>,
}

/// One machine as the node announces it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceSpec {
    /// The device id: the machine's id.
    pub id: String,
    /// Its tags, by tag index.
    pub metrics: Vec<MetricSpec>,
}

/// What the node is and holds.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    /// `group_id`.
    pub group: String,
    /// `edge_node_id`.
    pub edge_node: String,
    /// Whether data carries aliases instead of names.
    pub aliases: bool,
    /// The devices, by machine index.
    pub devices: Vec<DeviceSpec>,
}

/// A message for the broker.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    /// Its type (which decides its QoS: 1 for NDEATH, 0 for the rest).
    pub kind: MessageType,
    /// Its topic.
    pub topic: String,
    /// The encoded [`Payload`].
    pub payload: Vec<u8>,
}

/// A reading as last known.
#[derive(Clone, Debug, PartialEq)]
struct Reading {
    value: Value,
    quality: Quality,
    timestamp_ms: i64,
}

#[derive(Debug)]
struct MetricState {
    spec: MetricSpec,
    /// The type announced in the last birth (the declared one, or the one learnt).
    datatype: Option<DataType>,
    last: Option<Reading>,
    /// The DDATA being built holds this metric already (index of that build).
    in_build: u64,
}

#[derive(Debug)]
struct DeviceState {
    id: String,
    metrics: Vec<MetricState>,
    online: bool,
    /// A DBIRTH went out in this session and no DDEATH since.
    born: bool,
    /// Superseded by a device of the same id added later, or never a device (an index the
    /// node was not given): takes no more samples.
    retired: bool,
}

impl DeviceState {
    fn new(d: DeviceSpec) -> DeviceState {
        DeviceState {
            id: d.id,
            metrics: d
                .metrics
                .into_iter()
                .map(|spec| MetricState {
                    datatype: spec.datatype,
                    spec,
                    last: None,
                    in_build: 0,
                })
                .collect(),
            online: false,
            born: false,
            retired: false,
        }
    }

    /// The place of a machine index the node has no device for.
    fn vacant() -> DeviceState {
        DeviceState {
            id: String::new(),
            metrics: Vec::new(),
            online: false,
            born: false,
            retired: true,
        }
    }
}

/// The edge node: feed it what happens, publish what it returns, in order.
#[derive(Debug)]
pub struct Node {
    group: String,
    edge_node: String,
    aliases: bool,
    devices: Vec<DeviceState>,
    /// The current session's `bdSeq`; `None` before the first.
    bd_seq: Option<u8>,
    /// The `seq` of the next message.
    seq: u8,
    /// Births went out on the current connection.
    live: bool,
    builds: u64,
}

impl Node {
    /// A node that has not connected yet, every device offline.
    pub fn new(spec: NodeSpec) -> Node {
        let devices = spec.devices.into_iter().map(DeviceState::new).collect();
        Node {
            group: spec.group,
            edge_node: spec.edge_node,
            aliases: spec.aliases,
            devices,
            bd_seq: None,
            seq: 0,
            live: false,
            builds: 0,
        }
    }

    /// Starts a new connection: the next `bdSeq` (0 for the first of the process, then +1,
    /// 255 → 0), and the NDEATH to register as its will. Nothing is published until
    /// [`Node::births`].
    pub fn session(&mut self) -> Outgoing {
        self.bd_seq = Some(self.bd_seq.map_or(0, |b| b.wrapping_add(1)));
        self.live = false;
        for d in &mut self.devices {
            d.born = false;
        }
        self.death()
    }

    /// The current session's NDEATH (no `seq`): the will, and what a clean stop publishes
    /// before it disconnects.
    pub fn death(&self) -> Outgoing {
        let payload = Payload {
            timestamp: None,
            metrics: vec![self.bd_seq_metric()],
            ..Payload::default()
        };
        self.node_message(MessageType::NDeath, payload)
    }

    /// NBIRTH (`seq` 0, this session's `bdSeq`) and a DBIRTH for every online machine with a
    /// reading: on a new connection, and again for a rebirth command.
    pub fn births(&mut self, now_ms: i64) -> Vec<Outgoing> {
        self.seq = 0;
        self.live = true;
        let rebirth = Metric {
            name: Some(REBIRTH.into()),
            timestamp: Some(wire_ms(now_ms)),
            datatype: Some(DataType::Boolean.code()),
            value: Some(MetricValue::BooleanValue(false)),
            ..Metric::default()
        };
        let mut bd_seq = self.bd_seq_metric();
        bd_seq.timestamp = Some(wire_ms(now_ms));
        let nbirth = Payload {
            timestamp: Some(wire_ms(now_ms)),
            metrics: vec![bd_seq, rebirth],
            seq: Some(self.next_seq()),
            ..Payload::default()
        };
        let mut out = vec![self.node_message(MessageType::NBirth, nbirth)];
        for machine in 0..self.devices.len() {
            let d = &mut self.devices[machine];
            d.born = false;
            if d.online && d.metrics.iter().any(|m| m.last.is_some()) {
                out.push(self.device_birth(machine, now_ms));
            }
        }
        out
    }

    /// Takes a batch (readings and status events, in order) and appends what to publish for
    /// it. While disconnected nothing is appended, but the batch still sets what the next
    /// births say.
    pub fn take(&mut self, batch: &[Sample], now_ms: i64, out: &mut Vec<Outgoing>) {
        let mut rest = batch;
        while let Some(first) = rest.first() {
            let machine = first.machine.index();
            if let Some((state, _)) = first.as_status() {
                self.status(machine, state, now_ms, out);
                rest = &rest[1..];
                continue;
            }
            let end = rest
                .iter()
                .position(|s| s.machine != first.machine || s.is_status())
                .unwrap_or(rest.len());
            self.readings(machine, &rest[..end], now_ms, out);
            rest = &rest[end..];
        }
    }

    /// Appends readings kept through an outage as DDATA with `is_historical`, for devices
    /// born in this session (the births already carry the latest values; these do not change
    /// what is known).
    pub fn historical(&mut self, batch: &[Sample], now_ms: i64, out: &mut Vec<Outgoing>) {
        for run in batch.chunk_by(|a, b| a.machine == b.machine) {
            let machine = run[0].machine.index();
            if !self.live || !self.devices.get(machine).is_some_and(|d| d.born) {
                continue;
            }
            let mut metrics = Vec::new();
            for s in run.iter().filter(|s| !s.is_status()) {
                let Some(m) = self.devices[machine].metrics.get(s.tag.index()) else {
                    continue;
                };
                let reading = Reading {
                    value: s.to_value(),
                    quality: s.quality(),
                    timestamp_ms: s.timestamp_ms,
                };
                let mut metric = self.data_metric(machine, s.tag.index(), m, &reading);
                metric.is_historical = Some(true);
                metrics.push(metric);
            }
            if !metrics.is_empty() {
                out.push(self.device_data(machine, metrics, now_ms));
            }
        }
    }

    /// Machine indexes the node knows a place for (devices of its spec and added since).
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// Adds machine `index` as a device, for a machine added while the node runs; it is born
    /// with its first reading after its `online` status. A device of the same id known before
    /// (the machine before its settings changed) is superseded: its DDEATH goes out now if it
    /// was born, and it takes no more samples.
    pub fn add_device(
        &mut self,
        index: usize,
        spec: DeviceSpec,
        now_ms: i64,
        out: &mut Vec<Outgoing>,
    ) {
        let before: Vec<usize> = (0..self.devices.len())
            .filter(|&i| i != index && !self.devices[i].retired && self.devices[i].id == spec.id)
            .collect();
        for i in before {
            self.status(i, MachineState::Offline, now_ms, out);
            self.devices[i].retired = true;
        }
        while self.devices.len() <= index {
            self.devices.push(DeviceState::vacant());
        }
        self.devices[index] = DeviceState::new(spec);
    }

    /// True when the node's messages go out (births were sent on this connection).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The connection is gone: nothing more until the next [`Node::session`].
    pub fn disconnected(&mut self) {
        self.live = false;
    }

    fn status(
        &mut self,
        machine: usize,
        state: MachineState,
        now_ms: i64,
        out: &mut Vec<Outgoing>,
    ) {
        let Some(d) = self.devices.get_mut(machine).filter(|d| !d.retired) else {
            return;
        };
        let was_born = d.born;
        d.online = state == MachineState::Online;
        if d.online {
            return;
        }
        d.born = false;
        if was_born && self.live {
            let payload = Payload {
                timestamp: Some(wire_ms(now_ms)),
                seq: Some(self.next_seq()),
                ..Payload::default()
            };
            out.push(self.device_message(MessageType::DDeath, machine, payload));
        }
    }

    fn readings(&mut self, machine: usize, run: &[Sample], now_ms: i64, out: &mut Vec<Outgoing>) {
        let live = self.live;
        let Some(d) = self.devices.get_mut(machine).filter(|d| !d.retired) else {
            return;
        };
        let (born, online) = (d.born, d.online);
        let mut retyped = false;
        let mut changed: Vec<(usize, Reading)> = Vec::new();
        for s in run {
            let Some(m) = d.metrics.get_mut(s.tag.index()) else {
                continue;
            };
            let reading = Reading {
                value: s.to_value(),
                quality: s.quality(),
                timestamp_ms: s.timestamp_ms,
            };
            retyped |= learn_type(m, &reading.value) && born;
            let same = m
                .last
                .as_ref()
                .is_some_and(|l| l.value == reading.value && l.quality == reading.quality);
            m.last = Some(reading.clone());
            if !same {
                changed.push((s.tag.index(), reading));
            }
        }
        if !live || !online {
            return;
        }
        if !born || retyped {
            out.push(self.device_birth(machine, now_ms));
            return;
        }
        self.changes(machine, changed, now_ms, out);
    }

    /// DDATA of the changed readings: a new message whenever a tag comes again, so that each
    /// message holds one reading per tag (one poll cycle, in order).
    fn changes(
        &mut self,
        machine: usize,
        changed: Vec<(usize, Reading)>,
        now_ms: i64,
        out: &mut Vec<Outgoing>,
    ) {
        self.builds += 1;
        let mut metrics = Vec::new();
        for (tag, reading) in changed {
            let build = self.builds;
            let Some(m) = self.devices[machine].metrics.get(tag) else {
                continue;
            };
            if m.in_build == build {
                let full = std::mem::take(&mut metrics);
                out.push(self.device_data(machine, full, now_ms));
                self.builds += 1;
            }
            let m = &self.devices[machine].metrics[tag];
            metrics.push(self.data_metric(machine, tag, m, &reading));
            self.devices[machine].metrics[tag].in_build = self.builds;
        }
        if !metrics.is_empty() {
            out.push(self.device_data(machine, metrics, now_ms));
        }
    }

    fn device_birth(&mut self, machine: usize, now_ms: i64) -> Outgoing {
        let d = &self.devices[machine];
        let metrics = d
            .metrics
            .iter()
            .enumerate()
            .map(|(tag, m)| self.birth_metric(machine, tag, m))
            .collect();
        let payload = Payload {
            timestamp: Some(wire_ms(now_ms)),
            metrics,
            seq: Some(self.next_seq()),
            ..Payload::default()
        };
        self.devices[machine].born = true;
        self.device_message(MessageType::DBirth, machine, payload)
    }

    fn birth_metric(&self, machine: usize, tag: usize, m: &MetricState) -> Metric {
        // A type still unknown (no value yet) is announced as Double, the common case; a
        // value of another kind later brings a new DBIRTH.
        let datatype = m.datatype.unwrap_or(DataType::Double);
        let mut metric = match &m.last {
            Some(r) => self.valued(datatype, r),
            None => Metric {
                is_null: Some(true),
                ..Metric::default()
            },
        };
        metric.name = Some(m.spec.name.clone());
        metric.alias = self.aliases.then_some(alias(machine, tag));
        metric.datatype = Some(datatype.code());
        if let Some(unit) = &m.spec.unit {
            let props = metric.properties.get_or_insert_with(PropertySet::default);
            props.push(ENG_UNIT, string_property(unit));
        }
        metric
    }

    fn data_metric(&self, machine: usize, tag: usize, m: &MetricState, r: &Reading) -> Metric {
        let mut metric = self.valued(m.datatype.unwrap_or(DataType::Double), r);
        if self.aliases {
            metric.alias = Some(alias(machine, tag));
        } else {
            metric.name = Some(m.spec.name.clone());
        }
        metric
    }

    /// A metric with `r`'s value, timestamp and quality (bad when the value does not fit).
    fn valued(&self, datatype: DataType, r: &Reading) -> Metric {
        let value = match r.quality {
            Quality::Bad => None,
            _ => datatype.carry(&r.value),
        };
        let quality = match (&value, r.quality) {
            (None, _) => Some(QUALITY_BAD),
            (Some(_), Quality::Uncertain) => Some(QUALITY_UNCERTAIN),
            (Some(_), _) => None,
        };
        let properties = quality.map(|q| {
            let mut props = PropertySet::default();
            props.push(QUALITY, int32_property(q));
            props
        });
        Metric {
            timestamp: Some(wire_ms(r.timestamp_ms)),
            is_null: value.is_none().then_some(true),
            value,
            properties,
            ..Metric::default()
        }
    }

    fn device_data(&mut self, machine: usize, metrics: Vec<Metric>, now_ms: i64) -> Outgoing {
        let payload = Payload {
            timestamp: Some(wire_ms(now_ms)),
            metrics,
            seq: Some(self.next_seq()),
            ..Payload::default()
        };
        self.device_message(MessageType::DData, machine, payload)
    }

    fn bd_seq_metric(&self) -> Metric {
        Metric {
            name: Some(BD_SEQ.into()),
            datatype: Some(DataType::Int64.code()),
            value: Some(MetricValue::LongValue(self.bd_seq.unwrap_or(0).into())),
            ..Metric::default()
        }
    }

    fn next_seq(&mut self) -> u64 {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        seq.into()
    }

    fn node_message(&self, kind: MessageType, payload: Payload) -> Outgoing {
        let topic = Topic {
            group: &self.group,
            kind,
            edge_node: &self.edge_node,
            device: None,
        };
        Outgoing {
            kind,
            topic: topic.to_string(),
            payload: payload.encode_to_vec(),
        }
    }

    fn device_message(&self, kind: MessageType, machine: usize, payload: Payload) -> Outgoing {
        let topic = Topic {
            group: &self.group,
            kind,
            edge_node: &self.edge_node,
            device: Some(&self.devices[machine].id),
        };
        Outgoing {
            kind,
            topic: topic.to_string(),
            payload: payload.encode_to_vec(),
        }
    }
}

/// Learns the type of a tag declared without one from `value`; true when the type it was
/// announced with (Double while unknown) no longer holds.
fn learn_type(m: &mut MetricState, value: &Value) -> bool {
    let Some(kind) = DataType::of(value).filter(|_| m.spec.datatype.is_none()) else {
        return false;
    };
    let announced = m.datatype.unwrap_or(DataType::Double);
    m.datatype = Some(kind);
    kind != announced
}

/// The alias of a machine's tag: unique within the node, the same in every session.
pub fn alias(machine: usize, tag: usize) -> u64 {
    ((machine as u64) << 16) | tag as u64
}

/// True when an NCMD payload asks for a rebirth.
pub fn asks_rebirth(payload: &[u8]) -> bool {
    let Ok(p) = Payload::decode(payload) else {
        return false;
    };
    p.metrics.iter().any(|m| {
        m.name.as_deref() == Some(REBIRTH) && m.value == Some(MetricValue::BooleanValue(true))
    })
}

fn wire_ms(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}

fn string_property(s: &str) -> PropertyValue {
    PropertyValue {
        r#type: Some(DataType::String.code()),
        is_null: None,
        value: Some(PropertyKind::StringValue(s.into())),
    }
}

fn int32_property(v: i32) -> PropertyValue {
    PropertyValue {
        r#type: Some(DataType::Int32.code()),
        is_null: None,
        value: Some(PropertyKind::IntValue(v as u32)),
    }
}
