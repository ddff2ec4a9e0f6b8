//! Production KPIs against a Modbus machine whose state and counters the test drives on a known
//! timeline (a setup, running, idle, running with a reject, an outage during which its good
//! counter is reset, running again, maintenance) and a meter whose energy counter rises in known
//! steps. Every KPI is compared with the value computed by hand from the same timeline (the
//! outage's bounds taken from the machine's own `offline` and `online` statuses): ratios within
//! ±0.05, counts and energy exact, through `/api/machines/{id}/kpi` and MQTT alike. Then the
//! gateway is restarted on its spool directory and the window's KPIs go on from where they were.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value as Json;
use shopfloor_core::Value;
use shopfloor_core::time::now_ms;
use shopfloor_modbus::{Area, DataType, WordOrder};
use shopfloor_tests::device::{Behaviour, Device, Memory};
use shopfloor_tests::free_port;
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::http::get;
use shopfloor_tests::link::Link;
use shopfloor_tests::mosquitto::Mosquitto;
use shopfloor_tests::subscriber::{Msg, Subscriber};
use std::net::SocketAddr;
use std::time::Duration;

const PREFIX: &str = "kpi-test";
const IDEAL_CYCLE_S: f64 = 1.0;

fn config(
    broker: u16,
    http: SocketAddr,
    cell: SocketAddr,
    meter: SocketAddr,
    spool: &str,
) -> String {
    format!(
        r#"
[gateway]
name = "kpi-test"
http = "{http}"

[buffer]
spool_dir = "{spool}"

[mqtt]
url = "mqtt://127.0.0.1:{broker}"
topic_prefix = "{PREFIX}"

[kpi]
window = "1h"
interval = "250ms"
shifts = ["00:00"]
timezone = "UTC"
co2_kg_per_kwh = 0.5

[[machine]]
id = "cell"
protocol = "modbus-tcp"
address = "{cell}"
poll_interval = "50ms"
timeout = "300ms"

  [[machine.tag]]
  name = "state"
  area = "holding"
  address = 0
  type = "u16"

  [[machine.tag]]
  name = "good"
  area = "holding"
  address = 1
  type = "u32"

  [[machine.tag]]
  name = "reject"
  area = "holding"
  address = 3
  type = "u32"

  [machine.kpi]
  state = "state"
  running = [2]
  planned_stop = [0, 4]
  good = "good"
  reject = "reject"
  ideal_cycle = "{IDEAL_CYCLE_S}s"
  energy = "meter.energy_import"

[[machine]]
id = "meter"
kind = "energy-meter"
protocol = "modbus-tcp"
address = "{meter}"
poll_interval = "50ms"

  [[machine.tag]]
  name = "energy_import"
  area = "holding"
  address = 0
  type = "f32"
  unit = "kWh"
"#
    )
}

/// The machine's state codes.
const SETUP: u64 = 0;
const IDLE: u64 = 1;
const RUNNING: u64 = 2;
const MAINTENANCE: u64 = 4;

fn put(device: &Device, address: u16, data_type: DataType, value: Value) {
    let mut m = device.memory.lock().unwrap();
    m.put(Area::Holding, address, data_type, WordOrder::ABCD, value);
}

/// The timeline as the test drove it: from each time on, the machine was in this state
/// (`None`: not known, its outage).
#[derive(Default)]
struct Timeline {
    from: Vec<(i64, Option<u64>)>,
}

impl Timeline {
    fn state(&mut self, device: &Device, state: u64) {
        put(device, 0, DataType::U16, Value::U64(state));
        self.from.push((now_ms(), Some(state)));
    }

    /// Seconds (known, planned, running, planned stop) from the first entry until `end`.
    fn seconds(&self, end: i64) -> (f64, f64, f64, f64) {
        let (mut known, mut running, mut stop) = (0, 0, 0);
        for (i, &(start, state)) in self.from.iter().enumerate() {
            let until = self.from.get(i + 1).map_or(end, |n| n.0).min(end);
            let ms = (until - start).max(0);
            match state {
                None => continue,
                Some(RUNNING) => running += ms,
                Some(SETUP | MAINTENANCE) => stop += ms,
                Some(_) => {}
            }
            known += ms;
        }
        let s = |ms: i64| ms as f64 / 1000.0;
        (s(known), s(known - stop), s(running), s(stop))
    }
}

/// What the KPIs must be at `end`, by hand.
struct Expected {
    availability: f64,
    performance: f64,
    quality: f64,
    oee: f64,
}

fn expected(t: &Timeline, end: i64, good: f64, reject: f64) -> Expected {
    let (_, planned, running, _) = t.seconds(end);
    let availability = running / planned;
    let performance = IDEAL_CYCLE_S * (good + reject) / running;
    let quality = good / (good + reject);
    Expected {
        availability,
        performance,
        quality,
        oee: availability * performance * quality,
    }
}

fn near(got: &Json, want: f64, what: &str) {
    let got = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: no number in {got}"));
    assert!((got - want).abs() <= 0.05, "{what}: {got}, by hand {want}");
}

fn kpi(http: SocketAddr) -> Option<Json> {
    let r = get(http, "/api/machines/cell/kpi", None);
    (r.status == 200).then(|| r.json())
}

/// Waits for a report computed after `after` (gateway clock, ms) for which `done` holds.
async fn report_after(http: SocketAddr, after: i64, done: impl Fn(&Json) -> bool) -> Json {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        let report = tokio::task::spawn_blocking(move || kpi(http))
            .await
            .unwrap();
        if let Some(r) = report.filter(|r| r["computed_ms"].as_i64() > Some(after)) {
            if done(&r) {
                return r;
            }
            last = Some(r);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no KPI report after {after} as wanted; the last: {last:?}");
}

/// The time (`timestamp_ms`) of the first `state` status of the cell after `after`.
async fn status_since(sub: &mut Subscriber, state: &str, after: i64) -> i64 {
    let topic = format!("{PREFIX}/cell/_status");
    let m = sub
        .expect(Duration::from_secs(10), state, |m: &Msg| {
            m.topic == topic
                && m.json()["state"] == state
                && m.json()["timestamp_ms"].as_i64() >= Some(after)
        })
        .await;
    m.json()["timestamp_ms"].as_i64().unwrap()
}

/// The latest sample of `tag` of the cell among `log`: (timestamp, value).
fn last_sample(log: &[Msg], tag: &str) -> Option<(i64, Json)> {
    let topic = format!("{PREFIX}/cell/{tag}");
    log.iter()
        .filter(|m| m.topic == topic)
        .map(|m| {
            let j = m.json();
            (j["timestamp_ms"].as_i64().unwrap(), j["value"].clone())
        })
        .max_by_key(|(ts, _)| *ts)
}

/// Prints the gateway's log when the test fails.
struct ShowLog(std::path::PathBuf);

impl Drop for ShowLog {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.0.join("gateway.log")).unwrap_or_default();
            eprintln!("gateway log:\n{log}");
        }
    }
}

async fn phase(ms: u64) {
    // The machine's timeline, not a wait on the gateway: what it did is recorded with its time.
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpis_match_the_timeline_by_hand_and_survive_a_restart() {
    let broker = Mosquitto::start();
    let cell = Device::start(Memory::default(), Behaviour::Healthy, 0).await;
    let link = Link::start(cell.addr).await;
    let meter = Device::start(Memory::default(), Behaviour::Healthy, 0).await;
    let energy = |kwh: f64| put(&meter, 0, DataType::F32, Value::F64(kwh));
    energy(50.0);
    put(&cell, 1, DataType::U32, Value::U64(100));
    put(&cell, 3, DataType::U32, Value::U64(5));
    let mut t = Timeline::default();
    let spool = tempfile::tempdir().unwrap();
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let cfg = config(
        broker.port,
        http,
        link.addr,
        meter.addr,
        spool.path().to_str().unwrap(),
    );
    let mut sub = Subscriber::start(broker.port, &format!("{PREFIX}/cell/#")).await;
    put(&cell, 0, DataType::U16, Value::U64(SETUP));
    let started = now_ms();
    let mut gw = GatewayProcess::start(&cfg);
    let log_dir = gw.dir.path().to_owned();
    let _show = ShowLog(log_dir);
    // Known time begins when the machine is first read.
    let online = status_since(&mut sub, "online", started - 1000).await;
    t.from.push((online, Some(SETUP)));
    phase(1500).await;

    t.state(&cell, RUNNING);
    phase(1000).await;
    put(&cell, 1, DataType::U32, Value::U64(101));
    phase(500).await;
    energy(50.5);
    phase(500).await;
    put(&cell, 1, DataType::U32, Value::U64(102));
    phase(1000).await;

    t.state(&cell, IDLE);
    phase(1500).await;

    t.state(&cell, RUNNING);
    phase(500).await;
    put(&cell, 3, DataType::U32, Value::U64(6));
    phase(500).await;
    put(&cell, 1, DataType::U32, Value::U64(103));
    energy(51.0);
    phase(1000).await;

    // The outage: the link is cut; the counter is reset meanwhile (103 → 2 counts nothing).
    let cut = now_ms();
    link.cut();
    let offline = status_since(&mut sub, "offline", cut).await;
    t.from.push((offline, None));
    put(&cell, 1, DataType::U32, Value::U64(2));
    phase(1000).await;
    let restored = now_ms();
    link.restore();
    let back = status_since(&mut sub, "online", restored).await;
    t.from.push((back, Some(RUNNING)));
    phase(1000).await;
    put(&cell, 1, DataType::U32, Value::U64(4));
    energy(51.5);
    phase(1000).await;

    t.state(&cell, MAINTENANCE);
    phase(1000).await;

    // good: 101, 102, 103, then 2 → 4 after the reset; reject: 5 → 6; energy 50 → 51.5.
    let (good, reject, kwh) = (5.0, 1.0, 1.5);
    let r = report_after(http, now_ms(), |_| true).await;
    let meter = tokio::task::spawn_blocking(move || get(http, "/api/machines/meter/kpi", None))
        .await
        .unwrap();
    assert_eq!(
        meter.status, 404,
        "a machine without [machine.kpi]: {}",
        meter.body
    );
    let end = r["computed_ms"].as_i64().unwrap();
    let (known, planned, running, stop) = t.seconds(end);
    let want = expected(&t, end, good, reject);
    assert_eq!(r["good"], good, "{r}");
    assert_eq!(r["reject"], reject, "{r}");
    assert_eq!(r["energy_kwh"], kwh, "{r}");
    near(&r["known_s"], known, "known_s");
    near(&r["planned_s"], planned, "planned_s");
    near(&r["running_s"], running, "running_s");
    near(&r["planned_stop_s"], stop, "planned_stop_s");
    near(&r["availability"], want.availability, "availability");
    near(&r["performance"], want.performance, "performance");
    near(&r["quality"], want.quality, "quality");
    near(&r["oee"], want.oee, "oee");
    near(&r["energy_per_part_kwh"], kwh / good, "energy_per_part_kwh");
    near(&r["co2_per_part_kg"], kwh / good * 0.5, "co2_per_part_kg");
    let shift = &r["shift"];
    if shift["start_ms"].as_i64() < Some(started) {
        assert_eq!(shift["good"], good, "the shift holds the whole test: {r}");
        near(&shift["oee"], want.oee, "shift oee");
    }

    // The same through MQTT: the latest of each KPI sample against the timeline at its time.
    let mut log = Vec::new();
    sub.collect_until(&mut log, Duration::from_secs(10), "KPI samples", |l| {
        last_sample(l, "kpi_oee").is_some_and(|(ts, _)| ts >= end)
    })
    .await;
    let (ts, oee) = last_sample(&log, "kpi_oee").unwrap();
    near(
        &oee,
        expected(&t, ts, good, reject).oee,
        "kpi_oee over MQTT",
    );
    let (ts, a) = last_sample(&log, "kpi_availability").unwrap();
    near(
        &a,
        expected(&t, ts, good, reject).availability,
        "kpi_availability over MQTT",
    );
    assert_eq!(last_sample(&log, "kpi_good").unwrap().1, 5);
    assert_eq!(last_sample(&log, "kpi_reject").unwrap().1, 1);
    assert_eq!(
        last_sample(&log, "kpi_shift_good").map(|s| s.1.as_u64().is_some()),
        Some(true)
    );
    near(
        &last_sample(&log, "kpi_energy_per_part_kwh").unwrap().1,
        0.3,
        "energy per part over MQTT",
    );

    // A restart on the same spool directory: the window goes on from its saved ledger, and the
    // counter's saved baseline (4) counts the next part.
    let before = report_after(http, now_ms(), |_| true).await;
    gw.terminate(Duration::from_secs(10));
    let restarted = now_ms();
    let _gw = GatewayProcess::start(&cfg);
    status_since(&mut sub, "online", restarted).await;
    put(&cell, 1, DataType::U32, Value::U64(5));
    let made = now_ms();
    // The part after the restart counts on the saved ones.
    let after = report_after(http, made, |r| r["good"] == 6.0).await;
    assert!(
        after["known_s"].as_f64() >= before["known_s"].as_f64(),
        "known time kept: {before} then {after}"
    );
    assert_eq!(after["reject"], 1.0, "{after}");
}
