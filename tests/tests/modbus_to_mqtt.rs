//! A real Modbus TCP device → `shopfloor run` → a real mosquitto → a subscriber: exact topics and
//! payloads for every type, `seq` continuity, statuses, and a clean stop on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use shopfloor_core::{Text, Value};
use shopfloor_modbus::{Area, DataType, WordOrder};
use shopfloor_tests::device::{Behaviour, Device, Memory};
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::mosquitto::Mosquitto;
use shopfloor_tests::subscriber::Subscriber;
use std::collections::BTreeMap;
use std::time::Duration;

const PREFIX: &str = "iqblvd/hardenberg/test";

fn memory() -> Memory {
    let mut m = Memory::default();
    use DataType::*;
    use WordOrder::*;
    m.put(Area::Holding, 0, F32, CDAB, Value::F64(1200.5));
    m.put(Area::Holding, 2, U16, ABCD, Value::U64(455)); // spindle load, scale 0.1
    m.put(Area::Holding, 3, U32, ABCD, Value::U64(70_000));
    m.put(Area::Holding, 5, I16, ABCD, Value::I64(-40));
    m.put(Area::Holding, 6, I32, BADC, Value::I64(-123_456));
    m.put(Area::Holding, 30, U64, DCBA, Value::U64(1 << 40));
    m.put(Area::Holding, 12, I64, ABCD, Value::I64(i64::MIN + 1));
    m.put(Area::Holding, 16, F64, DCBA, Value::F64(-0.25));
    m.put(Area::Holding, 10, U16, ABCD, Value::U64(0b1000)); // bit 3 set
    m.put(
        Area::Holding,
        20,
        String,
        ABCD,
        Value::Text(Text::from("PRG-0042")),
    );
    m.put(Area::Input, 0, F32, ABCD, Value::F64(f64::NAN));
    m.put(Area::Coil, 0, Bool, ABCD, Value::Bool(true));
    m.put(Area::Discrete, 5, Bool, ABCD, Value::Bool(false));
    m
}

fn config(name: &str, broker: &str, device: &str, layout: &str) -> String {
    format!(
        r#"
[gateway]
name = "{name}"

[mqtt]
url = "{broker}"
topic_prefix = "{PREFIX}"
layout = "{layout}"

[[machine]]
id = "cnc-1"
kind = "cnc"
protocol = "modbus-tcp"
address = "{device}"
poll_interval = "100ms"
timeout = "500ms"

  [[machine.tag]]
  name = "spindle_speed"
  area = "holding"
  address = 0
  type = "f32"
  order = "CDAB"
  unit = "rpm"

  [[machine.tag]]
  name = "spindle_load"
  area = "holding"
  address = 2
  type = "u16"
  scale = 0.1
  unit = "%"

  [[machine.tag]]
  name = "part_count"
  area = "holding"
  address = 3
  type = "u32"

  [[machine.tag]]
  name = "temperature"
  area = "holding"
  address = 5
  type = "i16"

  [[machine.tag]]
  name = "offset_x"
  area = "holding"
  address = 6
  type = "i32"
  order = "BADC"

  [[machine.tag]]
  name = "energy"
  area = "holding"
  address = 30
  type = "u64"
  order = "DCBA"

  [[machine.tag]]
  name = "runtime"
  area = "holding"
  address = 12
  type = "i64"

  [[machine.tag]]
  name = "feed"
  area = "holding"
  address = 16
  type = "f64"
  order = "DCBA"

  [[machine.tag]]
  name = "door_open"
  area = "holding"
  address = 10
  type = "bool"
  bit = 3

  [[machine.tag]]
  name = "door_locked"
  area = "holding"
  address = 10
  type = "bool"
  bit = 15

  [[machine.tag]]
  name = "program"
  area = "holding"
  address = 20
  type = "string"
  length = 8

  [[machine.tag]]
  name = "broken_sensor"
  area = "input"
  address = 0
  type = "f32"

  [[machine.tag]]
  name = "coolant_on"
  area = "coil"
  address = 0

  [[machine.tag]]
  name = "estop"
  area = "discrete"
  address = 5
"#
    )
}

fn expected() -> BTreeMap<&'static str, (serde_json::Value, &'static str, Option<&'static str>)> {
    BTreeMap::from([
        ("spindle_speed", (json!(1200.5), "good", Some("rpm"))),
        ("spindle_load", (json!(455.0 * 0.1), "good", Some("%"))),
        ("part_count", (json!(70_000), "good", None)),
        ("temperature", (json!(-40), "good", None)),
        ("offset_x", (json!(-123_456), "good", None)),
        ("energy", (json!(1u64 << 40), "good", None)),
        ("runtime", (json!(i64::MIN + 1), "good", None)),
        ("feed", (json!(-0.25), "good", None)),
        ("door_open", (json!(true), "good", None)),
        ("door_locked", (json!(false), "good", None)),
        ("program", (json!("PRG-0042"), "good", None)),
        ("broken_sensor", (serde_json::Value::Null, "bad", None)),
        ("coolant_on", (json!(true), "good", None)),
        ("estop", (json!(false), "good", None)),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tag_arrives_with_the_contract_payload_and_continuous_seq() {
    let broker = Mosquitto::start();
    let device = Device::start(memory(), Behaviour::Healthy, 0).await;
    let mut sub = Subscriber::start(broker.port, &format!("{PREFIX}/#")).await;
    let mut gw = GatewayProcess::start(&config(
        "every-tag",
        &broker.url(),
        &device.addr.to_string(),
        "tag",
    ));

    // Every message is looked at, none skipped: samples read before the broker connection
    // leave the outbox ahead of the gateway's own status.
    let want = expected();
    let mut seqs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut status = None;
    let mut gw_status = None;
    while gw_status.is_none()
        || want
            .keys()
            .any(|t| seqs.get(*t).is_none_or(|v| v.len() < 5))
    {
        let m = sub
            .expect(Duration::from_secs(10), "samples of every tag", |_| true)
            .await;
        if m.topic == format!("{PREFIX}/_gateway/every-tag") {
            assert!(
                gw_status.is_none(),
                "a second gateway status: {:?}",
                m.json()
            );
            gw_status = Some(m.json());
            continue;
        }
        let rest = m
            .topic
            .strip_prefix(&format!("{PREFIX}/cnc-1/"))
            .map(str::to_owned);
        let Some(tag) = rest else { continue };
        if tag == "_status" {
            status = Some(m.json());
            continue;
        }
        let j = m.json();
        let (value, quality, unit) = want
            .get(tag.as_str())
            .unwrap_or_else(|| panic!("unexpected topic {}", m.topic));
        assert_eq!(&j["value"], value, "{tag}: {j}");
        assert_eq!(j["quality"], *quality, "{tag}");
        match unit {
            Some(u) => assert_eq!(j["unit"], *u, "{tag}"),
            None => assert!(j.get("unit").is_none(), "{tag} has no unit"),
        }
        let ts = j["timestamp_ms"].as_i64().unwrap();
        assert!(ts > 1_700_000_000_000, "{tag}: timestamp {ts}");
        seqs.entry(tag)
            .or_default()
            .push(j["seq"].as_u64().unwrap());
    }
    assert_eq!(
        gw_status.unwrap(),
        json!({"state": "online"}),
        "gateway:\n{}\nbroker:\n{}",
        gw.log(),
        broker.log()
    );
    for (tag, s) in &seqs {
        let n = s.len() as u64;
        assert_eq!(
            s,
            &(1..=n).collect::<Vec<_>>(),
            "{tag}: seq must start at 1 and have no gaps"
        );
    }
    // A NaN is published once as bad and then not repeated as good: every sample of it is bad.
    let status = status.expect("machine _status");
    assert_eq!(status["state"], "online");
    assert!(status["timestamp_ms"].as_i64().is_some());

    // One connection, kept: a connection abandoned while connecting would fire the last will.
    let connects = broker.log().matches("as shopfloor-every-tag").count();
    assert_eq!(connects, 1, "{}", broker.log());

    // A late subscriber sees the retained statuses.
    let mut late = Subscriber::start(broker.port, &format!("{PREFIX}/+/_status")).await;
    let retained = late
        .expect(Duration::from_secs(5), "retained machine status", |m| {
            m.topic.ends_with("cnc-1/_status")
        })
        .await;
    assert!(retained.retain);
    assert_eq!(retained.json()["state"], "online");

    // SIGTERM: exit 0 within 5 s, and the gateway and machine go offline (retained).
    let code = gw.terminate(Duration::from_secs(5));
    assert!(code.success(), "exit status {code:?}\n{}", gw.log());
    let offline = sub
        .expect(Duration::from_secs(5), "gateway offline", |m| {
            m.topic == format!("{PREFIX}/_gateway/every-tag") && m.json()["state"] == "offline"
        })
        .await;
    assert_eq!(offline.json(), json!({"state": "offline"}));
    let mut after = Subscriber::start(broker.port, &format!("{PREFIX}/cnc-1/_status")).await;
    let st = after
        .expect(Duration::from_secs(5), "retained offline status", |_| true)
        .await;
    assert_eq!(st.json()["state"], "offline");
    assert_eq!(st.json()["error"], "gateway stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_layout_sends_one_message_per_cycle() {
    let broker = Mosquitto::start();
    let device = Device::start(memory(), Behaviour::Healthy, 0).await;
    let mut sub = Subscriber::start(broker.port, &format!("{PREFIX}/cnc-1")).await;
    let mut gw = GatewayProcess::start(&config(
        "machine-layout",
        &broker.url(),
        &device.addr.to_string(),
        "machine",
    ));
    let mut last_seq = 0;
    for _ in 0..5 {
        let m = sub
            .expect(Duration::from_secs(10), "a machine message", |_| true)
            .await;
        let j = m.json();
        let values = j["values"].as_object().unwrap();
        let want = expected();
        assert_eq!(values.len(), want.len(), "{j}");
        for (tag, (value, _, _)) in want {
            assert_eq!(&values[tag], &value, "{tag}");
        }
        let seq = j["seq"].as_u64().unwrap();
        assert_eq!(seq, last_seq + 1, "machine seq continuous");
        last_seq = seq;
    }

    // Killed without a goodbye: the broker publishes the last will, offline and retained.
    let gw_topic = format!("{PREFIX}/_gateway/machine-layout");
    let mut watch = Subscriber::start(broker.port, &gw_topic).await;
    let online = watch
        .expect(Duration::from_secs(5), "gateway online", |_| true)
        .await;
    assert_eq!(online.json(), json!({"state": "online"}));
    gw.kill();
    let will = watch
        .expect(Duration::from_secs(10), "the last will", |_| true)
        .await;
    assert_eq!(will.json(), json!({"state": "offline"}), "{}", broker.log());
    let mut late = Subscriber::start(broker.port, &gw_topic).await;
    let kept = late
        .expect(Duration::from_secs(5), "the retained will", |_| true)
        .await;
    assert!(kept.retain);
    assert_eq!(kept.json(), json!({"state": "offline"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_loses_no_seq() {
    let mut broker = Mosquitto::start();
    let device = Device::start(memory(), Behaviour::Healthy, 0).await;
    let cfg = config("restart", &broker.url(), &device.addr.to_string(), "tag");
    let topic = format!("{PREFIX}/cnc-1/part_count");
    let seq_of = |m: &shopfloor_tests::subscriber::Msg| m.json()["seq"].as_u64().unwrap();
    // Subscribed before the gateway starts, so the seqs from before the outage are all seen.
    let mut before = Subscriber::start(broker.port, &topic).await;
    let _gw = GatewayProcess::start(&cfg);
    let first = before
        .expect(Duration::from_secs(10), "a first sample", |_| true)
        .await;
    let mut seqs = vec![seq_of(&first)];
    let running = before.collect_for(Duration::from_secs(1)).await;
    // The broker goes away (no persistence: it comes back without any session) for a while.
    broker.stop();
    // And whatever was on its way to `before` when the broker went.
    let in_flight = before.collect_for(Duration::from_millis(200)).await;
    seqs.extend(running.iter().chain(&in_flight).map(seq_of));
    let last_before = seqs.iter().copied().max().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.restart();
    let mut after = Subscriber::start(broker.port, &topic).await;
    // After the restart the outbox replays what was not acknowledged, oldest first.
    while seqs.iter().copied().max().unwrap() < last_before + 40 {
        let m = after
            .expect(Duration::from_secs(15), "samples after the restart", |_| {
                true
            })
            .await;
        seqs.push(seq_of(&m));
    }
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs[0], 1, "the first sample is missing: {seqs:?}");
    let span = seqs.last().unwrap() - seqs[0] + 1;
    assert_eq!(
        span,
        seqs.len() as u64,
        "a gap in seq across the outage (last before it: {last_before}): {seqs:?}"
    );
}

/// Fault test 1: the broker stopped for 30 s the way a service manager stops it (it saves its
/// sessions and retained messages and comes back with them) while every tag flows at 10 Hz,
/// QoS 1: afterwards no `seq` is missing for any tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_second_broker_stop_loses_no_sample() {
    let broker = Mosquitto::start_persistent();
    thirty_seconds_without_broker(broker, "stop", |b| {
        b.stop_gracefully();
        let saved = b.persistence_file();
        assert!(saved.exists(), "the broker saved no state: {}", b.log());
    })
    .await;
}

/// Fault test 2: the same with a broker killed and back without any session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_second_broker_outage_loses_no_sample() {
    thirty_seconds_without_broker(Mosquitto::start(), "outage", Mosquitto::stop).await;
}

async fn thirty_seconds_without_broker(
    mut broker: Mosquitto,
    name: &str,
    stop: fn(&mut Mosquitto),
) {
    let device = Device::start(memory(), Behaviour::Healthy, 0).await;
    let cfg = config(name, &broker.url(), &device.addr.to_string(), "tag");
    let mut before = Subscriber::start(broker.port, &format!("{PREFIX}/cnc-1/+")).await;
    let gw = GatewayProcess::start(&cfg);
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut record = |msgs: Vec<shopfloor_tests::subscriber::Msg>| {
        for m in msgs {
            if m.topic.ends_with("/_status") {
                continue;
            }
            let seq = m.json()["seq"].as_u64().unwrap();
            seen.entry(m.topic.clone()).or_default().push(seq);
        }
    };
    record(before.collect_for(Duration::from_secs(2)).await);
    stop(&mut broker);
    // Whatever was in flight towards the stopped broker is still in `before`'s queue.
    record(before.collect_for(Duration::from_millis(200)).await);
    tokio::time::sleep(Duration::from_secs(30)).await;
    broker.restart();
    let restarted = shopfloor_core::time::now_ms();
    // Subscribed at once: the gateway reconnects only after its backoff.
    let mut after = Subscriber::start(broker.port, &format!("{PREFIX}/cnc-1/+")).await;
    let mut caught_up = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !caught_up && tokio::time::Instant::now() < deadline {
        let msgs = after.collect_for(Duration::from_millis(500)).await;
        // The outbox replays oldest first: a sample read 2 s after the restart means the
        // backlog is through.
        caught_up = msgs.iter().any(|m| {
            !m.topic.ends_with("/_status")
                && m.json()["timestamp_ms"].as_i64().unwrap() > restarted + 2000
        });
        record(msgs);
    }
    assert!(caught_up, "the gateway did not catch up\n{}", gw.log());
    assert!(seen.len() >= 5, "{:?}", seen.keys());
    let mut duplicates = 0;
    for (topic, seqs) in &mut seen {
        let total = seqs.len();
        seqs.sort_unstable();
        seqs.dedup();
        duplicates += total - seqs.len();
        assert_eq!(seqs[0], 1, "{topic}: the first sample is missing");
        let span = seqs.last().unwrap() - seqs[0] + 1;
        assert_eq!(span, seqs.len() as u64, "{topic}: a gap in seq");
        assert!(
            seqs.len() > 300,
            "{topic}: only {} samples over the outage",
            seqs.len()
        );
    }
    // Only what was written and not yet acknowledged when the broker went comes twice.
    let window = shopfloor::sink::mqtt::WINDOW;
    assert!(
        duplicates <= window,
        "{duplicates} duplicates, more than the in-flight window of {window}"
    );
}

/// A message the broker will not take (larger than mosquitto's `max_packet_size`, so the broker
/// drops every connection on which it reads it) is set aside after three connections, logged
/// and counted, and the messages behind it flow again: the queue is never held forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_broker_refuses_is_set_aside_and_the_rest_flows() {
    let broker = Mosquitto::start_with("max_packet_size 300\n");
    let mut memory = Memory::default();
    memory.put(
        Area::Holding,
        0,
        DataType::U16,
        WordOrder::ABCD,
        Value::U64(1),
    );
    let program = |text: &str| Value::Text(Text::from(text));
    let put_program = |m: &mut Memory, text: &str| {
        m.put(
            Area::Holding,
            10,
            DataType::String,
            WordOrder::ABCD,
            program(text),
        );
    };
    put_program(&mut memory, "P-1");
    let device = Device::start(memory, Behaviour::Healthy, 0).await;
    let cfg = format!(
        r#"
[gateway]
name = "refuse"

[mqtt]
url = "{url}"
topic_prefix = "{PREFIX}"

[[machine]]
id = "cnc-1"
protocol = "modbus-tcp"
address = "{addr}"
poll_interval = "50ms"
publish = "change"

  [[machine.tag]]
  name = "count"
  area = "holding"
  address = 0
  type = "u16"

  [[machine.tag]]
  name = "program"
  area = "holding"
  address = 10
  type = "string"
  length = 100
"#,
        url = broker.url(),
        addr = device.addr,
    );
    let mut sub = Subscriber::start(broker.port, &format!("{PREFIX}/cnc-1/+")).await;
    let gw = GatewayProcess::start(&cfg);
    sub.expect(Duration::from_secs(10), "the first program", |m| {
        m.topic.ends_with("/program")
    })
    .await;
    // A program name of 200 characters: its message is above the broker's limit.
    put_program(&mut device.memory.lock().unwrap(), &"X".repeat(200));
    gw.expect_event("mqtt_set_aside", Duration::from_secs(30));
    // Padded over the whole field, as a PLC overwrites it (trailing spaces are trimmed).
    put_program(
        &mut device.memory.lock().unwrap(),
        &format!("{:<200}", "P-2"),
    );
    device.memory.lock().unwrap().put(
        Area::Holding,
        0,
        DataType::U16,
        WordOrder::ABCD,
        Value::U64(2),
    );
    let mut log = Vec::new();
    sub.collect_until(&mut log, Duration::from_secs(15), "what follows", |l| {
        let has = |tag: &str, value: serde_json::Value| {
            l.iter()
                .any(|m| m.topic.ends_with(tag) && m.json()["value"] == value)
        };
        has("/program", json!("P-2")) && has("/count", json!(2))
    })
    .await;
    let programs: Vec<_> = log
        .iter()
        .filter(|m| m.topic.ends_with("/program"))
        .map(|m| m.json()["value"].clone())
        .collect();
    assert!(
        !programs
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.starts_with("XX"))),
        "{programs:?}"
    );
    let set_aside = gw.log().matches("event=\"mqtt_set_aside\"").count();
    assert_eq!(set_aside, 1, "{}", gw.log());
}
