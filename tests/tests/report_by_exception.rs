//! Report by exception against a Modbus device whose values the test moves: a temperature in
//! steps smaller and larger than its deadband, a state and a door that change now and then.
//! Two gateways read the same device, one with layout `tag` and one with layout `machine`.
//!
//! Shown: every sample is a value the device held when it was read; whenever the device has
//! stood still for a few polls, what a subscriber last received is within the deadband of the
//! device's value (exact for the state and the door); every state change is sent; heartbeats
//! come at their interval while nothing changes; `seq` has no gap; a device that stops gives
//! exactly one bad sample per tag, and the first reading after it is back is always sent, even
//! unchanged. Layout `machine` sends only what changed and nothing for a cycle without change.
//! Over OPC UA, against the independent asyncua server: the deadband reaches the server as a
//! DataChangeFilter (it notifies fewer changes than it makes) and the heartbeat comes from the
//! gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value as Json;
use shopfloor_core::Value;
use shopfloor_core::time::now_ms;
use shopfloor_modbus::{Area, DataType, WordOrder};
use shopfloor_tests::device::{Behaviour, Device, Memory};
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::mosquitto::Mosquitto;
use shopfloor_tests::opcua::PyOpcua;
use shopfloor_tests::subscriber::{Msg, Subscriber};
use std::collections::HashMap;
use std::time::Duration;
use tokio_modbus::ExceptionCode;

const POLL_MS: i64 = 50;
const TIMEOUT_MS: i64 = 300;
const HEARTBEAT_MS: i64 = 1_000;
const DEADBAND: f64 = 0.5;

fn config(broker: &str, prefix: &str, layout: &str, device: &str) -> String {
    format!(
        r#"
[gateway]
name = "{prefix}"

[mqtt]
url = "{broker}"
topic_prefix = "{prefix}"
layout = "{layout}"

[[machine]]
id = "oven"
protocol = "modbus-tcp"
address = "{device}"
poll_interval = "{POLL_MS}ms"
timeout = "{TIMEOUT_MS}ms"
publish = "change"
heartbeat = "{HEARTBEAT_MS}ms"

  [[machine.tag]]
  name = "state"
  area = "holding"
  address = 0
  type = "u16"

  [[machine.tag]]
  name = "temp"
  area = "holding"
  address = 1
  type = "f32"
  deadband = {DEADBAND}

  [[machine.tag]]
  name = "door"
  area = "coil"
  address = 0
"#
    )
}

/// The device's values from `at` (gateway clock, ms) on.
#[derive(Debug, Clone, Copy)]
struct Held {
    at: i64,
    state: u64,
    temp: f64,
    door: bool,
}

/// The device and the history of what it held.
struct Script {
    device: Device,
    history: Vec<Held>,
}

impl Script {
    fn set(&mut self, state: u64, temp: f64, door: bool) {
        {
            let mut m = self.device.memory.lock().unwrap();
            put(&mut m, state, temp, door);
        }
        self.history.push(Held {
            at: now_ms(),
            state,
            temp,
            door,
        });
    }

    /// What the device held at any moment of `[from, to]`.
    fn held_during(&self, from: i64, to: i64) -> impl Iterator<Item = &Held> {
        self.history.iter().enumerate().filter_map(move |(i, h)| {
            let until = self.history.get(i + 1).map_or(i64::MAX, |n| n.at);
            (h.at <= to && until >= from).then_some(h)
        })
    }
}

fn put(m: &mut Memory, state: u64, temp: f64, door: bool) {
    let abcd = WordOrder::ABCD;
    m.put(Area::Holding, 0, DataType::U16, abcd, Value::U64(state));
    m.put(Area::Holding, 1, DataType::F32, abcd, Value::F64(temp));
    m.put(Area::Coil, 0, DataType::Bool, abcd, Value::Bool(door));
}

/// One `tag`-layout sample: tag, timestamp, value (None when bad), seq.
#[derive(Debug, Clone)]
struct Got {
    tag: String,
    ts: i64,
    value: Option<Json>,
    seq: u64,
}

fn samples(log: &[Msg], prefix: &str) -> Vec<Got> {
    samples_in(log, &format!("{prefix}/oven/"))
}

fn samples_of(log: &[Msg], prefix: &str, machine: &str, tag: &str) -> Vec<Got> {
    samples_in(log, &format!("{prefix}/{machine}/"))
        .into_iter()
        .filter(|g| g.tag == tag)
        .collect()
}

fn samples_in(log: &[Msg], head: &str) -> Vec<Got> {
    log.iter()
        .filter_map(|m| {
            let tag = m.topic.strip_prefix(head)?;
            if tag.starts_with('_') {
                return None;
            }
            let j = m.json();
            Some(Got {
                tag: tag.to_owned(),
                ts: j["timestamp_ms"].as_i64()?,
                value: (j["quality"] != "bad").then(|| j["value"].clone()),
                seq: j["seq"].as_u64()?,
            })
        })
        .collect()
}

fn device_value(h: &Held, tag: &str) -> Json {
    match tag {
        "state" => Json::from(h.state),
        "temp" => Json::from(h.temp),
        _ => Json::from(h.door),
    }
}

fn differs(tag: &str, got: &Json, want: &Json) -> f64 {
    match tag {
        "temp" => (got.as_f64().unwrap() - want.as_f64().unwrap()).abs(),
        _ => f64::from(u8::from(got != want)),
    }
}

async fn collect_until(
    sub: &mut Subscriber,
    log: &mut Vec<Msg>,
    what: &str,
    done: impl Fn(&[Msg]) -> bool,
) {
    sub.collect_until(log, Duration::from_secs(30), what, done)
        .await;
}

/// The device holds still for `ms`, long enough for several polls. The checkpoint is two polls
/// before the hold ends: every read stamped up to then saw what the device held, not the next
/// change (a read is stamped just before its request goes out).
async fn hold(script: &Script, checkpoints: &mut Vec<(i64, Held)>, ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    let held = *script.history.last().unwrap();
    checkpoints.push((now_ms() - 2 * POLL_MS, held));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_changes_and_heartbeats_go_out_and_nothing_is_missed() {
    let broker = Mosquitto::start();
    let mut memory = Memory::default();
    put(&mut memory, 1, 20.0, false);
    let device = Device::start(memory, Behaviour::Healthy, 0).await;
    let mut tag_sub = Subscriber::start(broker.port, "rbe-tag/#").await;
    let mut machine_sub = Subscriber::start(broker.port, "rbe-machine/#").await;
    let mut script = Script {
        device,
        history: Vec::new(),
    };
    script.set(1, 20.0, false);
    let addr = script.device.addr.to_string();
    let gw_tag = GatewayProcess::start(&config(&broker.url(), "rbe-tag", "tag", &addr));
    let gw_machine = GatewayProcess::start(&config(&broker.url(), "rbe-machine", "machine", &addr));
    let mut log = Vec::new();
    collect_until(&mut tag_sub, &mut log, "first samples", |l| {
        samples(l, "rbe-tag").len() >= 3
    })
    .await;
    let started = now_ms();
    let mut checkpoints = Vec::new();

    // Unchanged for 2.6 heartbeats: the heartbeats only.
    hold(&script, &mut checkpoints, 2_600).await;
    let still_until = now_ms();
    // Small steps, each within the deadband of 20.0, then a step beyond it, then large steps.
    for temp in [20.1, 20.2, 20.3, 20.4, 20.45] {
        script.set(1, temp, false);
        hold(&script, &mut checkpoints, 300).await;
    }
    script.set(1, 20.6, false);
    hold(&script, &mut checkpoints, 300).await;
    for (state, temp, door) in [
        (2, 35.0, false),
        (2, 35.0, true),
        (3, 35.2, true),
        (3, 20.0, false),
    ] {
        script.set(state, temp, door);
        hold(&script, &mut checkpoints, 300).await;
    }
    // The device stops answering, then is back with the very values it had.
    script
        .device
        .set_behaviour(Behaviour::Exception(ExceptionCode::ServerDeviceFailure));
    collect_until(&mut tag_sub, &mut log, "bad samples", |l| {
        samples(l, "rbe-tag")
            .iter()
            .filter(|s| s.value.is_none())
            .count()
            >= 3
    })
    .await;
    // A few more failed polls must not send a second bad sample.
    log.extend(tag_sub.collect_for(Duration::from_millis(400)).await);
    script.device.set_behaviour(Behaviour::Healthy);
    let back = now_ms();
    collect_until(
        &mut tag_sub,
        &mut log,
        "readings after the device is back",
        |l| {
            let s = samples(l, "rbe-tag");
            ["state", "temp", "door"].iter().all(|t| {
                s.iter()
                    .any(|g| g.tag == *t && g.ts >= back && g.value.is_some())
            })
        },
    )
    .await;

    let got = samples(&log, "rbe-tag");
    let tags = ["state", "temp", "door"];
    for tag in tags {
        let mine: Vec<&Got> = got.iter().filter(|g| g.tag == tag).collect();
        // seq without a gap.
        for (i, g) in mine.iter().enumerate() {
            assert_eq!(g.seq, i as u64 + 1, "{tag}: seq gap at {g:?}");
        }
        // Every good sample is a value the device held when it was read.
        for g in mine.iter().filter(|g| g.value.is_some()) {
            let v = g.value.as_ref().unwrap();
            assert!(
                script
                    .held_during(g.ts - 5, g.ts + TIMEOUT_MS)
                    .any(|h| differs(tag, v, &device_value(h, tag)) < 1e-4),
                "{tag}: {g:?} is no value the device held then"
            );
        }
        // Exactly one bad sample while the device failed; the first reading after it is sent.
        assert_eq!(
            mine.iter().filter(|g| g.value.is_none()).count(),
            1,
            "{tag}: {mine:?}"
        );
        let bad = mine.iter().position(|g| g.value.is_none()).unwrap();
        assert!(mine.get(bad + 1).is_some_and(|g| g.value.is_some()));
        // At every checkpoint the last sample received is within the deadband of the device.
        for (at, held) in &checkpoints {
            let last = mine.iter().rev().find(|g| g.ts <= *at).unwrap();
            let limit = if tag == "temp" { DEADBAND } else { 0.0 };
            let off = differs(tag, last.value.as_ref().unwrap(), &device_value(held, tag));
            assert!(
                off <= limit + 1e-4,
                "{tag} at {at}: device {held:?}, last sent {last:?}"
            );
        }
        // While nothing changed, a heartbeat per interval and nothing else.
        let still: Vec<i64> = mine
            .iter()
            .filter(|g| g.ts > started - HEARTBEAT_MS && g.ts <= still_until)
            .map(|g| g.ts)
            .collect();
        assert!(still.len() >= 2, "{tag}: no heartbeats: {still:?}");
        for w in still.windows(2) {
            let gap = w[1] - w[0];
            assert!(
                (HEARTBEAT_MS..HEARTBEAT_MS + 600).contains(&gap),
                "{tag}: heartbeat after {gap} ms: {still:?}"
            );
        }
    }
    // The small steps within the deadband were not sent (a heartbeat may carry one).
    let temps: Vec<f64> = got
        .iter()
        .filter(|g| g.tag == "temp")
        .filter_map(|g| g.value.as_ref()?.as_f64())
        .collect();
    for small in [20.1, 20.2, 20.3, 20.4, 20.45] {
        let n = temps.iter().filter(|t| (**t - small).abs() < 1e-4).count();
        assert!(n <= 1, "{small} sent {n} times: {temps:?}");
    }
    // Every move beyond the deadband of what a subscriber had is sent, with the value moved to.
    let temp_samples: Vec<&Got> = got.iter().filter(|g| g.tag == "temp").collect();
    for h in &script.history {
        let Some(had) = temp_samples.iter().rev().find(|g| g.ts < h.at) else {
            continue;
        };
        let had = had.value.as_ref().and_then(Json::as_f64);
        if had.is_some_and(|t| (h.temp - t).abs() > DEADBAND) {
            assert!(
                temp_samples.iter().any(|g| g.ts >= h.at - 5
                    && g.value
                        .as_ref()
                        .and_then(Json::as_f64)
                        .is_some_and(|t| (t - h.temp).abs() < 1e-4)),
                "the move to {} was not sent: {temps:?}",
                h.temp
            );
        }
    }
    // Every state change is sent.
    let states: Vec<u64> = got
        .iter()
        .filter(|g| g.tag == "state")
        .filter_map(|g| g.value.as_ref()?.as_u64())
        .collect();
    let mut distinct = states.clone();
    distinct.dedup();
    assert_eq!(distinct, [1, 2, 3], "{states:?}");

    // Layout machine: only changed tags in a message, never a cycle without change.
    let mut mlog = Vec::new();
    collect_until(
        &mut machine_sub,
        &mut mlog,
        "machine messages after the outage",
        |l| {
            l.iter().any(|m| {
                m.topic == "rbe-machine/oven" && m.json()["timestamp_ms"].as_i64() >= Some(back)
            })
        },
    )
    .await;
    let mut last: HashMap<String, (Json, i64)> = HashMap::new();
    let mut seen_after_back = std::collections::HashSet::new();
    let mut messages = 0;
    for m in mlog.iter().filter(|m| m.topic == "rbe-machine/oven") {
        let j = m.json();
        let ts = j["timestamp_ms"].as_i64().unwrap();
        let values = j["values"].as_object().unwrap();
        assert!(!values.is_empty(), "an empty cycle was sent: {j}");
        messages += 1;
        for (tag, v) in values {
            if let Some((old, at)) = last.get(tag) {
                let changed = v != old
                    && (tag != "temp" || v.is_null() || old.is_null() || {
                        (v.as_f64().unwrap() - old.as_f64().unwrap()).abs() > DEADBAND
                    });
                let first_after_back = ts >= back && seen_after_back.insert(tag.clone());
                assert!(
                    changed || ts - at >= HEARTBEAT_MS || first_after_back,
                    "{tag} sent unchanged after {} ms: {j}",
                    ts - at
                );
            }
            last.insert(tag.clone(), (v.clone(), ts));
        }
    }
    let polls = (now_ms() - started) / POLL_MS;
    assert!(
        messages * 4 < polls,
        "{messages} machine messages for about {polls} polls"
    );
    drop((gw_tag, gw_machine));
}

/// The source timestamp of `T.Stamped` on the asyncua server (2026-01-02T03:04:05Z).
const SOURCE_TIME_MS: i64 = 1_767_323_045_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opcua_deadbands_go_to_the_server_and_heartbeats_come_from_the_gateway() {
    let broker = Mosquitto::start();
    let server = PyOpcua::start();
    let mut sub = Subscriber::start(broker.port, "rbe-ua/#").await;
    let config = format!(
        r#"
[gateway]
name = "rbe-ua"

[mqtt]
url = "{}"
topic_prefix = "rbe-ua"

[[machine]]
id = "ua"
protocol = "opcua"
endpoint = "{}"
publishing_interval = "100ms"
publish = "change"
heartbeat = "{HEARTBEAT_MS}ms"

  [[machine.tag]]
  name = "wobble"
  node = "nsu=urn:shopfloor:test;s=T.Wobble"
  deadband = {DEADBAND}

  [[machine.tag]]
  name = "stamped"
  node = "nsu=urn:shopfloor:test;s=T.Stamped"
"#,
        broker.url(),
        server.endpoint()
    );
    let _gw = GatewayProcess::start(&config);
    let mut log = Vec::new();
    let first = |l: &[Msg]| {
        samples_of(l, "rbe-ua", "ua", "wobble")
            .first()
            .map(|g| g.ts)
    };
    collect_until(&mut sub, &mut log, "a first wobble sample", |l| {
        first(l).is_some()
    })
    .await;
    let from = first(&log).unwrap();
    collect_until(
        &mut sub,
        &mut log,
        "four heartbeats of the stamped tag",
        |l| samples_of(l, "rbe-ua", "ua", "stamped").len() >= 5,
    )
    .await;
    let until = now_ms();
    let lines = server.lines();

    // The deadband reached the server, for the tag that has one only.
    let filters: Vec<&String> = lines.iter().filter(|l| l.starts_with("FILTER")).collect();
    assert_eq!(
        filters,
        [&format!("FILTER ns=2;s=T.Wobble Absolute {DEADBAND}")],
        "{lines:?}"
    );
    // The server sent fewer notifications than the wobble changed: 10 changes a second, of
    // which one (the jump) is beyond the deadband. Client handles are tag index + 1.
    let notified = |handle: &str| {
        lines
            .iter()
            .filter(|l| l.strip_prefix("NOTIFY ") == Some(handle))
            .count() as i64
    };
    let changes = (until - from) / 100;
    assert!(changes >= 40, "only {changes} changes");
    assert!(
        notified("1") * 3 < changes,
        "{} notifications for {changes} changes",
        notified("1")
    );
    // The stamped tag never changes: the server notified it once, every later sample is the
    // gateway's heartbeat with the time it was sent, once an interval.
    assert_eq!(notified("2"), 1, "{lines:?}");
    let stamped = samples_of(&log, "rbe-ua", "ua", "stamped");
    assert_eq!(stamped[0].ts, SOURCE_TIME_MS, "{stamped:?}");
    for w in stamped[1..].windows(2) {
        let gap = w[1].ts - w[0].ts;
        assert!(
            (HEARTBEAT_MS..HEARTBEAT_MS + 600).contains(&gap),
            "heartbeat after {gap} ms: {stamped:?}"
        );
    }
    for (tag, got) in [
        ("stamped", stamped),
        ("wobble", samples_of(&log, "rbe-ua", "ua", "wobble")),
    ] {
        for (i, g) in got.iter().enumerate() {
            assert_eq!(g.seq, i as u64 + 1, "{tag}: seq gap at {g:?}");
            assert!(g.value.is_some(), "{tag}: {g:?}");
        }
    }
}
