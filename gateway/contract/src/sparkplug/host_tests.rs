//! The host's view, fed with what shopfloor's own edge node publishes and with hand-made
//! messages for what a broken or late session looks like.

use super::host::{HostView, Limits, REBIRTH_PAUSE_MS, Reading, Skip};
use super::node::{QUALITY, asks_rebirth};
use super::proto::{Metric, MetricValue, Payload, PropertyKind, PropertySet, PropertyValue};
use super::tests::{online, reading, running, spec, take};
use super::*;
use proptest::prelude::*;
use prost::Message as _;
use shopfloor_core::{MachineId, MachineState, Quality, Sample, Value};

const LIMITS: Limits = Limits {
    devices: 100,
    metrics: 1000,
};

/// Feeds `messages` to `view` at time `now`; every reading, every skip, every rebirth asked.
fn hear_all(
    view: &mut HostView,
    messages: &[Outgoing],
    now: i64,
) -> (Vec<Reading>, Vec<Skip>, Vec<Outgoing>) {
    let mut heard = host::Heard::default();
    let (mut readings, mut skipped, mut rebirths) = (Vec::new(), Vec::new(), Vec::new());
    for m in messages {
        view.hear(&m.topic, &m.payload, now, &mut heard)
            .unwrap_or_else(|e| panic!("{}: {e}", m.topic));
        readings.append(&mut heard.readings);
        skipped.append(&mut heard.skipped);
        rebirths.extend(heard.rebirth.take());
    }
    (readings, skipped, rebirths)
}

fn heard(machine: &str, tag: &str, ts: i64, value: Value, quality: Quality) -> Reading {
    Reading {
        machine: machine.into(),
        tag: tag.into(),
        timestamp_ms: ts,
        value,
        quality,
        unit: (tag == "spindle_speed").then(|| "rpm".into()),
    }
}

/// A connected node with cnc-1 online and read once (so born).
fn session() -> (Node, Vec<Outgoing>) {
    running()
}

fn message(topic: &str, seq: u64, metrics: Vec<Metric>) -> Outgoing {
    let payload = Payload {
        timestamp: Some(5_000),
        seq: Some(seq),
        metrics,
        ..Payload::default()
    };
    Outgoing {
        kind: Topic::parse(topic).map_or(MessageType::DData, |t| t.kind),
        topic: topic.into(),
        payload: payload.encode_to_vec(),
    }
}

fn by_alias(alias: u64, value: MetricValue) -> Metric {
    Metric {
        alias: Some(alias),
        timestamp: Some(4_000),
        value: Some(value),
        ..Metric::default()
    }
}

#[test]
fn births_and_data_by_alias_come_back_as_the_readings_sent() {
    let (mut node, mut out) = session();
    out.extend(take(
        &mut node,
        &[Sample::new(
            MachineId(0),
            shopfloor_core::TagId(0),
            960,
            2,
            Value::U64(1300),
            Quality::Uncertain,
        )],
    ));
    let mut view = HostView::new(LIMITS);
    let (readings, skipped, rebirths) = hear_all(&mut view, &out, 2_000);
    assert_eq!((skipped, rebirths), (vec![], vec![]));
    // The DBIRTH of cnc-1 holds its first readings, then the data.
    assert_eq!(
        readings,
        vec![
            heard(
                "cnc-1",
                "spindle_speed",
                950,
                Value::U64(1200),
                Quality::Good
            ),
            heard("cnc-1", "door_open", 950, Value::Bool(false), Quality::Good),
            heard(
                "cnc-1",
                "spindle_speed",
                960,
                Value::U64(1300),
                Quality::Uncertain
            ),
        ]
    );
}

#[test]
fn a_host_that_comes_late_asks_for_a_rebirth_once_per_pause() {
    let (mut node, births) = session();
    let data = take(&mut node, &[reading(0, 0, 950, Value::U64(7))]);
    let mut view = HostView::new(LIMITS);
    let (readings, skipped, rebirths) = hear_all(&mut view, &data, 10_000);
    assert!(readings.is_empty());
    assert_eq!(skipped, vec![Skip::Unborn]);
    assert_eq!(rebirths.len(), 1);
    assert_eq!(rebirths[0].topic, "spBv1.0/iqblvd/NCMD/hall");
    assert!(asks_rebirth(&rebirths[0].payload));
    let data = take(&mut node, &[reading(0, 0, 960, Value::U64(8))]);
    let (_, _, again) = hear_all(&mut view, &data, 10_000 + REBIRTH_PAUSE_MS - 1);
    assert!(again.is_empty(), "asked again within the pause");
    let (_, _, again) = hear_all(&mut view, &data, 10_000 + REBIRTH_PAUSE_MS);
    assert_eq!(again.len(), 1, "asked again after the pause");

    // The rebirth answered: from there on, everything decodes.
    let mut answer = node.births(11_000);
    answer.extend(take(&mut node, &[reading(0, 0, 970, Value::U64(9))]));
    let (readings, skipped, rebirths) = hear_all(&mut view, &answer, 11_000);
    assert_eq!((skipped, rebirths), (vec![], vec![]));
    assert_eq!(
        readings.last(),
        Some(&heard(
            "cnc-1",
            "spindle_speed",
            970,
            Value::U64(9),
            Quality::Good
        ))
    );
    drop(births);
}

#[test]
fn a_seq_gap_asks_for_a_rebirth_and_keeps_the_data() {
    let (mut node, births) = session();
    let lost = take(&mut node, &[reading(0, 0, 955, Value::U64(1))]);
    let next = take(&mut node, &[reading(0, 0, 960, Value::U64(2))]);
    let mut view = HostView::new(LIMITS);
    hear_all(&mut view, &births, 1_000);
    let (readings, skipped, rebirths) = hear_all(&mut view, &next, 1_000);
    assert_eq!(skipped, vec![Skip::Unborn]);
    assert_eq!(rebirths.len(), 1);
    assert_eq!(
        readings,
        vec![heard(
            "cnc-1",
            "spindle_speed",
            960,
            Value::U64(2),
            Quality::Good
        )]
    );
    drop(lost);
}

#[test]
fn an_unknown_alias_asks_for_a_rebirth() {
    let (_, births) = session();
    let mut view = HostView::new(LIMITS);
    hear_all(&mut view, &births, 1_000);
    let seq = births.len() as u64;
    let stray = message(
        "spBv1.0/iqblvd/DDATA/hall/cnc-1",
        seq,
        vec![by_alias(999, MetricValue::IntValue(1))],
    );
    let (readings, skipped, rebirths) = hear_all(&mut view, &[stray], 1_000);
    assert!(readings.is_empty());
    assert_eq!((skipped, rebirths.len()), (vec![Skip::Unborn], 1));
}

#[test]
fn deaths_make_the_tags_bad_and_a_stale_will_is_ignored() {
    let (mut node, births) = session();
    let mut view = HostView::new(LIMITS);
    hear_all(&mut view, &births, 1_000);
    let gone = take(
        &mut node,
        &[Sample::status(
            MachineId(0),
            1_500,
            MachineState::Offline,
            Some("x"),
        )],
    );
    let (readings, _, _) = hear_all(&mut view, &gone, 2_000);
    let bad: Vec<(&str, Quality)> = readings
        .iter()
        .map(|r| (r.tag.as_str(), r.quality))
        .collect();
    assert_eq!(
        bad,
        vec![("spindle_speed", Quality::Bad), ("door_open", Quality::Bad)]
    );

    // The will of an older session says nothing; the will of this one kills the node.
    let back = take(
        &mut node,
        &[online(0, 1_600), reading(0, 0, 1_600, Value::U64(3))],
    );
    hear_all(&mut view, &back, 2_000);
    let will = node.death();
    let mut stale = Payload::decode(will.payload.as_slice()).unwrap_or_default();
    for m in &mut stale.metrics {
        m.value = Some(MetricValue::LongValue(77));
    }
    let stale = Outgoing {
        payload: stale.encode_to_vec(),
        ..will.clone()
    };
    let (readings, _, _) = hear_all(&mut view, &[stale], 3_000);
    assert!(readings.is_empty(), "{readings:?}");
    let (readings, _, _) = hear_all(&mut view, &[will], 3_000);
    assert_eq!(readings.len(), 2);
    assert!(readings.iter().all(|r| r.quality == Quality::Bad));
    // Dead: its data is not decoded, and a rebirth is asked for.
    let data = take(&mut node, &[reading(0, 0, 3_100, Value::U64(5))]);
    let (readings, skipped, rebirths) = hear_all(&mut view, &data, 3_200);
    assert!(readings.is_empty());
    assert_eq!((skipped, rebirths.len()), (vec![Skip::Unborn], 1));
}

#[test]
fn quality_comes_from_is_null_and_the_quality_property() {
    let quality = |q: u32| PropertySet {
        keys: vec![QUALITY.into()],
        values: vec![PropertyValue {
            r#type: Some(DataType::Int32.code()),
            is_null: None,
            value: Some(PropertyKind::IntValue(q)),
        }],
    };
    let birth = message(
        "spBv1.0/g/DBIRTH/n/d",
        1,
        vec![Metric {
            name: Some("t".into()),
            alias: Some(1),
            datatype: Some(DataType::Double.code()),
            value: Some(MetricValue::DoubleValue(1.5)),
            ..Metric::default()
        }],
    );
    let nbirth = message("spBv1.0/g/NBIRTH/n", 0, vec![]);
    let mut data = Vec::new();
    for (i, (props, null)) in [
        (None, false),
        (Some(quality(64)), false),
        (Some(quality(0)), false),
        (Some(quality(192)), false),
        (None, true),
    ]
    .into_iter()
    .enumerate()
    {
        let mut m = by_alias(1, MetricValue::DoubleValue(2.5));
        m.properties = props;
        m.is_null = null.then_some(true);
        data.push(message("spBv1.0/g/DDATA/n/d", 2 + i as u64, vec![m]));
    }
    let mut view = HostView::new(LIMITS);
    let mut all = vec![nbirth, birth];
    all.extend(data);
    let (readings, skipped, _) = hear_all(&mut view, &all, 1);
    assert!(skipped.is_empty(), "{skipped:?}");
    let got: Vec<(Value, Quality)> = readings.into_iter().map(|r| (r.value, r.quality)).collect();
    assert_eq!(
        got,
        vec![
            (Value::F64(1.5), Quality::Good),
            (Value::F64(2.5), Quality::Good),
            (Value::F64(2.5), Quality::Uncertain),
            (Value::Null, Quality::Bad),
            (Value::F64(2.5), Quality::Good),
            (Value::Null, Quality::Bad),
        ]
    );
}

#[test]
fn metrics_of_types_not_recorded_pass_without_a_rebirth() {
    let nbirth = message("spBv1.0/g/NBIRTH/n", 0, vec![]);
    let birth = message(
        "spBv1.0/g/DBIRTH/n/d",
        1,
        vec![Metric {
            name: Some("table".into()),
            alias: Some(1),
            datatype: Some(16), // DataSet
            ..Metric::default()
        }],
    );
    let data = message(
        "spBv1.0/g/DDATA/n/d",
        2,
        vec![by_alias(1, MetricValue::IntValue(1))],
    );
    let mut view = HostView::new(LIMITS);
    let (readings, skipped, rebirths) = hear_all(&mut view, &[nbirth, birth, data], 1);
    assert_eq!((readings.len(), skipped.len(), rebirths.len()), (0, 0, 0));
}

#[test]
fn what_is_learnt_is_bounded() {
    let limits = Limits {
        devices: 2,
        metrics: 3,
    };
    let metric = |name: &str| Metric {
        name: Some(name.into()),
        datatype: Some(DataType::Boolean.code()),
        value: Some(MetricValue::BooleanValue(true)),
        ..Metric::default()
    };
    let mut all = vec![message("spBv1.0/g/NBIRTH/n", 0, vec![])];
    for (i, d) in ["a", "b", "c"].iter().enumerate() {
        all.push(message(
            &format!("spBv1.0/g/DBIRTH/n/{d}"),
            1 + i as u64,
            vec![metric("x"), metric("y")],
        ));
    }
    let mut view = HostView::new(limits);
    let (readings, skipped, _) = hear_all(&mut view, &all, 1);
    assert_eq!(readings.len(), 3, "{readings:?}");
    assert_eq!(skipped, vec![Skip::MaxMetrics, Skip::MaxDevices]);
    // A rebirth replaces what was learnt; it does not add to it.
    let (readings, skipped, _) = hear_all(&mut view, &all, 2);
    assert_eq!((readings.len(), skipped.len()), (3, 2));
}

#[test]
fn state_and_commands_bring_nothing_and_other_topics_are_refused() {
    let mut view = HostView::new(LIMITS);
    let mut heard = host::Heard::default();
    let state = br#"{"online":true,"timestamp":1}"#;
    assert!(
        view.hear("spBv1.0/STATE/scada", state, 1, &mut heard)
            .is_ok()
    );
    let command = host::rebirth_command("g", "n", 1);
    assert!(
        view.hear(&command.topic, &command.payload, 1, &mut heard)
            .is_ok()
    );
    assert!(heard.readings.is_empty() && heard.rebirth.is_none());
    assert!(view.hear("spBv1.0/g/DDATA/n", b"", 1, &mut heard).is_err());
    assert!(
        view.hear("spBv1.0/g/NBIRTH/n", b"\xff\xff", 1, &mut heard)
            .is_err()
    );
}

fn event() -> impl Strategy<Value = (u8, u16)> {
    (0u8..8, 0u16..4)
}

proptest! {
    /// Whatever shopfloor's node publishes, a host that heard it from the start asks for no
    /// rebirth, skips nothing, and hears each reading as it was sent.
    #[test]
    fn a_host_from_the_start_hears_the_node_exactly(events in proptest::collection::vec(event(), 1..200)) {
        let mut node = Node::new(spec());
        node.session();
        let mut out = node.births(0);
        let mut sent = Vec::new();
        for (i, (e, v)) in events.iter().enumerate() {
            let ts = i as i64 + 1;
            let machine = u16::from(*e % 2);
            let batch = match e {
                0 | 1 => vec![online(machine, ts)],
                2 => vec![Sample::status(MachineId(machine), ts, MachineState::Offline, Some("x"))],
                3 => { out.extend(node.births(ts)); continue; }
                4 => vec![reading(0, 1, ts, Value::Bool(*v % 2 == 0))],
                5 => vec![reading(1, 0, ts, Value::Text(format!("P{v}").as_str().into()))],
                _ => vec![reading(0, 0, ts, Value::U64(u64::from(*v)))],
            };
            out.extend(take(&mut node, &batch));
            sent.extend(batch.into_iter().filter(|s| !s.is_status()));
        }
        let mut view = HostView::new(LIMITS);
        let (readings, skipped, rebirths) = hear_all(&mut view, &out, 0);
        prop_assert!(skipped.is_empty(), "{:?}", skipped);
        prop_assert!(rebirths.is_empty());
        for r in readings.iter().filter(|r| r.quality == Quality::Good) {
            let found = sent.iter().any(|s| {
                s.timestamp_ms == r.timestamp_ms && s.to_value() == r.value
            });
            prop_assert!(found, "{:?} was never sent", r);
        }
    }
}
