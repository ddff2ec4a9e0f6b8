//! The edge node's rules, message by message.

use super::node::{QUALITY, QUALITY_BAD, QUALITY_UNCERTAIN, alias, asks_rebirth};
use super::proto::{Metric, MetricValue, Payload, PropertyKind};
use super::*;
use proptest::prelude::*;
use prost::Message as _;
use shopfloor_core::{MachineId, MachineState, Quality, Sample, TagId, Value};

pub(super) fn spec() -> NodeSpec {
    let metric = |name: &str, unit: Option<&str>, datatype| MetricSpec {
        name: name.into(),
        unit: unit.map(Into::into),
        datatype,
    };
    NodeSpec {
        group: "iqblvd".into(),
        edge_node: "hall".into(),
        aliases: true,
        devices: vec![
            DeviceSpec {
                id: "cnc-1".into(),
                metrics: vec![
                    metric("spindle_speed", Some("rpm"), Some(DataType::UInt16)),
                    metric("door_open", None, Some(DataType::Boolean)),
                ],
            },
            DeviceSpec {
                id: "ua-1".into(),
                metrics: vec![metric("program", None, None)],
            },
        ],
    }
}

pub(super) fn reading(machine: u16, tag: u16, ts: i64, value: Value) -> Sample {
    Sample::new(MachineId(machine), TagId(tag), ts, 1, value, Quality::Good)
}

pub(super) fn online(machine: u16, ts: i64) -> Sample {
    Sample::status(MachineId(machine), ts, MachineState::Online, None)
}

pub(super) fn decode(m: &Outgoing) -> Payload {
    match Payload::decode(m.payload.as_slice()) {
        Ok(p) => p,
        Err(e) => panic!("{}: {e}", m.topic),
    }
}

pub(super) fn take(node: &mut Node, batch: &[Sample]) -> Vec<Outgoing> {
    let mut out = Vec::new();
    node.take(batch, 1_000, &mut out);
    out
}

fn quality(m: &Metric) -> Option<u32> {
    let p = m.properties.as_ref()?.get(QUALITY)?;
    match p.value {
        Some(PropertyKind::IntValue(q)) => Some(q),
        _ => None,
    }
}

/// A node connected, with cnc-1 online and read once.
pub(super) fn running() -> (Node, Vec<Outgoing>) {
    let mut node = Node::new(spec());
    node.session();
    let mut out = node.births(1_000);
    out.extend(take(
        &mut node,
        &[
            online(0, 900),
            reading(0, 0, 950, Value::U64(1200)),
            reading(0, 1, 950, Value::Bool(false)),
        ],
    ));
    (node, out)
}

#[test]
fn the_will_and_the_birth_carry_the_same_bd_seq() {
    let mut node = Node::new(spec());
    for bd_seq in [0u64, 1, 2] {
        let will = decode(&node.session());
        let births = node.births(1_000);
        let nbirth = decode(&births[0]);
        assert_eq!(births[0].topic, "spBv1.0/iqblvd/NBIRTH/hall");
        assert_eq!(will.seq, None, "NDEATH carries no seq");
        assert_eq!(will.metrics.len(), 1, "NDEATH carries bdSeq alone");
        assert_eq!(nbirth.seq, Some(0));
        for p in [&will, &nbirth] {
            let m = &p.metrics[0];
            assert_eq!(m.name.as_deref(), Some("bdSeq"));
            assert_eq!(m.datatype, Some(DataType::Int64.code()));
            assert_eq!(m.value, Some(MetricValue::LongValue(bd_seq)));
        }
        let rebirth = &nbirth.metrics[1];
        assert_eq!(rebirth.name.as_deref(), Some("Node Control/Rebirth"));
        assert_eq!(rebirth.value, Some(MetricValue::BooleanValue(false)));
        assert_eq!(
            rebirth.alias, None,
            "a host must be able to name it before any birth"
        );
        assert_eq!(births.len(), 1, "no machine online yet");
    }
}

#[test]
fn bd_seq_wraps_after_255() {
    let mut node = Node::new(spec());
    let mut last = 0;
    for _ in 0..257 {
        let will = decode(&node.session());
        if let Some(MetricValue::LongValue(b)) = will.metrics[0].value {
            last = b;
        }
    }
    assert_eq!(last, 0);
}

#[test]
fn a_machine_online_is_born_with_every_tag_then_reports_by_exception() {
    let (mut node, out) = running();
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].topic, "spBv1.0/iqblvd/DBIRTH/hall/cnc-1");
    let dbirth = decode(&out[1]);
    assert_eq!(dbirth.seq, Some(1));
    let speed = &dbirth.metrics[0];
    assert_eq!(speed.name.as_deref(), Some("spindle_speed"));
    assert_eq!(speed.alias, Some(alias(0, 0)));
    assert_eq!(speed.datatype, Some(DataType::UInt16.code()));
    assert_eq!(speed.value, Some(MetricValue::IntValue(1200)));
    assert_eq!(speed.timestamp, Some(950));
    let unit = speed.properties.as_ref().and_then(|p| p.get("engUnit"));
    assert_eq!(
        unit.and_then(|u| u.value.clone()),
        Some(PropertyKind::StringValue("rpm".into()))
    );
    assert_eq!(dbirth.metrics[1].datatype, Some(DataType::Boolean.code()));

    // The same values again: nothing. One change: a DDATA with that metric alone, by alias.
    let same = [
        reading(0, 0, 1950, Value::U64(1200)),
        reading(0, 1, 1950, Value::Bool(false)),
    ];
    assert!(take(&mut node, &same).is_empty());
    let changed = [
        reading(0, 0, 2950, Value::U64(1300)),
        reading(0, 1, 2950, Value::Bool(false)),
    ];
    let out = take(&mut node, &changed);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].topic, "spBv1.0/iqblvd/DDATA/hall/cnc-1");
    let ddata = decode(&out[0]);
    assert_eq!(ddata.seq, Some(2));
    assert_eq!(ddata.metrics.len(), 1);
    let m = &ddata.metrics[0];
    assert_eq!((m.name.as_deref(), m.alias), (None, Some(alias(0, 0))));
    assert_eq!(m.value, Some(MetricValue::IntValue(1300)));
    assert_eq!(m.timestamp, Some(2950));
}

#[test]
fn quality_travels_as_a_property() {
    let (mut node, _) = running();
    let uncertain = Sample::new(
        MachineId(0),
        TagId(0),
        2000,
        2,
        Value::U64(7),
        Quality::Uncertain,
    );
    let bad = Sample::bad(MachineId(0), TagId(1), 2000, 2);
    let out = take(&mut node, &[uncertain, bad]);
    let ddata = decode(&out[0]);
    assert_eq!(quality(&ddata.metrics[0]), Some(QUALITY_UNCERTAIN as u32));
    // The specification's quality property is an Int32.
    let property = ddata.metrics[0]
        .properties
        .as_ref()
        .and_then(|p| p.get(QUALITY));
    assert_eq!(
        property.and_then(|p| p.r#type),
        Some(DataType::Int32.code())
    );
    assert_eq!(ddata.metrics[0].value, Some(MetricValue::IntValue(7)));
    assert_eq!(ddata.metrics[1].is_null, Some(true));
    assert_eq!(ddata.metrics[1].value, None);
    assert_eq!(quality(&ddata.metrics[1]), Some(QUALITY_BAD as u32));
    // Good again: the value, and no quality property.
    let out = take(&mut node, &[reading(0, 1, 3000, Value::Bool(true))]);
    let m = &decode(&out[0]).metrics[0];
    assert_eq!(
        (m.value.clone(), quality(m)),
        (Some(MetricValue::BooleanValue(true)), None)
    );
}

#[test]
fn a_value_that_does_not_fit_its_type_goes_out_bad() {
    let (mut node, _) = running();
    let out = take(&mut node, &[reading(0, 0, 2000, Value::U64(70_000))]);
    let m = &decode(&out[0]).metrics[0];
    assert_eq!((m.is_null, quality(m)), (Some(true), Some(0)));
}

#[test]
fn a_tag_read_twice_in_one_batch_gives_two_messages_in_order() {
    let (mut node, _) = running();
    let batch = [
        reading(0, 0, 2000, Value::U64(1)),
        reading(0, 1, 2000, Value::Bool(true)),
        reading(0, 0, 3000, Value::U64(2)),
    ];
    let out = take(&mut node, &batch);
    let seqs: Vec<_> = out.iter().map(|m| decode(m).seq).collect();
    assert_eq!(seqs, [Some(2), Some(3)]);
    assert_eq!(decode(&out[0]).metrics.len(), 2);
    assert_eq!(
        decode(&out[1]).metrics[0].value,
        Some(MetricValue::IntValue(2))
    );
}

#[test]
fn a_device_added_while_running_is_born_and_one_it_supersedes_dies() {
    let (mut node, _) = running();
    let mut out = Vec::new();
    // cnc-1 again, now with a third tag, under machine index 3 (index 2 never given).
    let mut again = spec().devices[0].clone();
    again.metrics.push(MetricSpec {
        name: "feed".into(),
        unit: None,
        datatype: Some(DataType::Double),
    });
    node.add_device(3, again, 2_000, &mut out);
    let kinds: Vec<_> = out.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, [MessageType::DDeath], "the device before dies");
    assert_eq!(node.device_count(), 4);
    // The old index takes nothing more; the new one is born with its three metrics.
    assert!(take(&mut node, &[reading(0, 0, 2100, Value::U64(7))]).is_empty());
    let out = take(
        &mut node,
        &[online(3, 2200), reading(3, 2, 2200, Value::F64(0.5))],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, MessageType::DBirth);
    assert_eq!(out[0].topic, "spBv1.0/iqblvd/DBIRTH/hall/cnc-1");
    assert_eq!(decode(&out[0]).metrics.len(), 3);
    // A rebirth names the device once, by its new index.
    let births = node.births(3_000);
    let dbirths = births
        .iter()
        .filter(|m| m.kind == MessageType::DBirth)
        .count();
    assert_eq!(dbirths, 1);
}

#[test]
fn offline_gives_a_death_and_online_a_new_birth_with_current_values() {
    let (mut node, _) = running();
    let offline = Sample::status(MachineId(0), 2000, MachineState::Offline, Some("timeout"));
    let out = take(
        &mut node,
        &[Sample::bad(MachineId(0), TagId(0), 2000, 2), offline],
    );
    let kinds: Vec<_> = out.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, [MessageType::DData, MessageType::DDeath]);
    assert_eq!(out[1].topic, "spBv1.0/iqblvd/DDEATH/hall/cnc-1");
    assert_eq!(decode(&out[1]).seq, Some(3));
    // Readings of a dead device go nowhere until it is online and born again.
    assert!(take(&mut node, &[reading(0, 0, 2500, Value::U64(5))]).is_empty());
    let out = take(
        &mut node,
        &[online(0, 3000), reading(0, 0, 3000, Value::U64(9))],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, MessageType::DBirth);
    let dbirth = decode(&out[0]);
    assert_eq!(dbirth.metrics[0].value, Some(MetricValue::IntValue(9)));
    assert_eq!(
        dbirth.metrics[1].value,
        Some(MetricValue::BooleanValue(false))
    );
}

#[test]
fn nothing_goes_out_while_disconnected_but_the_next_births_know_it() {
    let (mut node, _) = running();
    node.disconnected();
    assert!(take(&mut node, &[reading(0, 0, 2000, Value::U64(42))]).is_empty());
    node.session();
    let births = node.births(3000);
    assert_eq!(births.len(), 2);
    let dbirth = decode(&births[1]);
    assert_eq!(dbirth.seq, Some(1));
    assert_eq!(dbirth.metrics[0].value, Some(MetricValue::IntValue(42)));
    // Kept readings follow the births, marked historical, in order.
    let mut out = Vec::new();
    node.historical(&[reading(0, 0, 2000, Value::U64(42))], 3000, &mut out);
    let ddata = decode(&out[0]);
    assert_eq!(ddata.seq, Some(2));
    assert_eq!(ddata.metrics[0].is_historical, Some(true));
}

#[test]
fn a_tag_without_a_declared_type_is_born_with_its_values_type() {
    let mut node = Node::new(spec());
    node.session();
    node.births(0);
    let out = take(
        &mut node,
        &[online(1, 0), reading(1, 0, 10, Value::Text("P-7".into()))],
    );
    let m = &decode(&out[0]).metrics[0];
    assert_eq!(m.datatype, Some(DataType::String.code()));
    assert_eq!(m.value, Some(MetricValue::StringValue("P-7".into())));
}

#[test]
fn a_learnt_type_that_changes_brings_a_new_birth() {
    let mut node = Node::new(spec());
    node.session();
    node.births(0);
    let first = take(
        &mut node,
        &[online(1, 0), Sample::bad(MachineId(1), TagId(0), 10, 1)],
    );
    assert_eq!(
        decode(&first[0]).metrics[0].datatype,
        Some(DataType::Double.code())
    );
    let out = take(&mut node, &[reading(1, 0, 20, Value::Bool(true))]);
    assert_eq!(out[0].kind, MessageType::DBirth);
    assert_eq!(
        decode(&out[0]).metrics[0].datatype,
        Some(DataType::Boolean.code())
    );
}

#[test]
fn without_aliases_data_carries_names() {
    let mut s = spec();
    s.aliases = false;
    let mut node = Node::new(s);
    node.session();
    node.births(0);
    let out = take(&mut node, &[online(0, 0), reading(0, 0, 1, Value::U64(1))]);
    assert_eq!(decode(&out[0]).metrics[0].alias, None);
    let out = take(&mut node, &[reading(0, 0, 2, Value::U64(2))]);
    let m = &decode(&out[0]).metrics[0];
    assert_eq!((m.name.as_deref(), m.alias), (Some("spindle_speed"), None));
}

#[test]
fn a_rebirth_command_is_recognised() {
    let cmd = |name: &str, v: bool| {
        Payload {
            timestamp: Some(1),
            metrics: vec![Metric {
                name: Some(name.into()),
                datatype: Some(DataType::Boolean.code()),
                value: Some(MetricValue::BooleanValue(v)),
                ..Metric::default()
            }],
            ..Payload::default()
        }
        .encode_to_vec()
    };
    assert!(asks_rebirth(&cmd("Node Control/Rebirth", true)));
    assert!(!asks_rebirth(&cmd("Node Control/Rebirth", false)));
    assert!(!asks_rebirth(&cmd("Node Control/Reboot", true)));
    assert!(!asks_rebirth(b"\xff\xff\xff"));
}

fn event() -> impl Strategy<Value = u8> {
    0u8..8
}

proptest! {
    /// Whatever happens, every message after an NBIRTH has the next seq modulo 256, and no
    /// DDATA or DDEATH of a device comes before its DBIRTH in a session.
    #[test]
    fn seq_is_continuous_and_births_come_first(events in proptest::collection::vec(event(), 1..400)) {
        let mut node = Node::new(spec());
        node.session();
        let mut out = node.births(0);
        for (i, e) in events.iter().enumerate() {
            let ts = i as i64;
            let machine = u16::from(*e % 2);
            match e {
                0 | 1 => out.extend(take(&mut node, &[online(machine, ts)])),
                2 | 3 => out.extend(take(&mut node, &[Sample::status(MachineId(machine), ts, MachineState::Offline, Some("x"))])),
                4 => out.extend(node.births(ts)),
                _ => out.extend(take(&mut node, &[reading(0, 0, ts, Value::U64(ts as u64 % 3)), reading(1, 0, ts, Value::F64(ts as f64 % 2.0))])),
            }
        }
        let mut expected = 0u64;
        let mut born = [false, false];
        for m in &out {
            let p = decode(m);
            if m.kind == MessageType::NBirth {
                expected = 0;
                born = [false, false];
            }
            prop_assert_eq!(p.seq, Some(expected), "{}", m.topic);
            expected = (expected + 1) % 256;
            let device = m.topic.ends_with("/ua-1") as usize;
            match m.kind {
                MessageType::DBirth => born[device] = true,
                MessageType::DData => prop_assert!(born[device]),
                MessageType::DDeath => { prop_assert!(born[device]); born[device] = false; }
                _ => {}
            }
        }
    }
}

/// Writes the fuzz target's corpus: real messages of a running node, and two commands.
/// `SHOPFLOOR_BLESS=1 cargo test -p shopfloor-contract corpus` rewrites it.
#[test]
fn corpus_of_real_messages() {
    if std::env::var_os("SHOPFLOOR_BLESS").is_none() {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/__fuzz__/any_sparkplug_payload_bytes_are_refused_or_read_consistently/corpus");
    std::fs::create_dir_all(&dir).unwrap();
    let (mut node, mut out) = running();
    let uncertain = Sample::new(
        MachineId(0),
        TagId(0),
        2000,
        2,
        Value::U64(7),
        Quality::Uncertain,
    );
    out.extend(take(
        &mut node,
        &[uncertain, Sample::bad(MachineId(0), TagId(1), 2000, 2)],
    ));
    let offline = Sample::status(MachineId(0), 3000, MachineState::Offline, Some("timeout"));
    out.extend(take(&mut node, &[offline]));
    out.push(node.death());
    for (i, m) in out.iter().enumerate() {
        let name = format!("{i:02}_{}", m.kind.as_str().to_lowercase());
        std::fs::write(dir.join(name), &m.payload).unwrap();
    }
    let rebirth = Payload {
        timestamp: Some(1),
        metrics: vec![Metric {
            name: Some(node::REBIRTH.into()),
            datatype: Some(DataType::Boolean.code()),
            value: Some(MetricValue::BooleanValue(true)),
            ..Metric::default()
        }],
        ..Payload::default()
    };
    std::fs::write(dir.join("ncmd_rebirth"), rebirth.encode_to_vec()).unwrap();
}

#[test]
fn state_payloads_are_read_as_the_3_0_json_form_only() {
    type Row = (&'static [u8], Option<(bool, u64)>);
    let table: [Row; 7] = [
        (
            br#"{"online": true, "timestamp": 1700000000000}"#,
            Some((true, 1_700_000_000_000)),
        ),
        (br#"{"timestamp": 5, "online": false}"#, Some((false, 5))),
        (
            br#"{"online": true, "timestamp": 5, "extra": 1}"#,
            Some((true, 5)),
        ),
        (br#"{"online": true}"#, None),
        (br#"{"online": "true", "timestamp": 5}"#, None),
        (b"ONLINE", None),
        (b"", None),
    ];
    for (payload, want) in table {
        let got = parse_state(payload).ok().map(|s| (s.online, s.timestamp));
        assert_eq!(got, want, "{}", String::from_utf8_lossy(payload));
    }
    assert_eq!(state_topic("scada"), "spBv1.0/STATE/scada");
}

#[test]
fn the_primary_host_is_online_only_by_its_latest_state() {
    let at = |online, timestamp| HostState { online, timestamp };
    let mut host = PrimaryHost::default();
    assert!(!host.online(), "nothing heard yet");
    assert!(host.observe(at(true, 10)));
    assert!(host.online());
    assert!(!host.observe(at(false, 9)), "an older STATE is ignored");
    assert!(host.online());
    assert!(host.observe(at(false, 10)), "the same time counts");
    assert!(!host.online());
    assert!(host.observe(at(true, 11)));
    assert!(host.online());
}
