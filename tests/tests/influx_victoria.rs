//! `[influx]` against a real VictoriaMetrics: what the gateway read (its CSV file is the record)
//! is read back through the store's export API, sample by sample: values, types and timestamps.
//! The store stopped for 30 s mid-run loses nothing; a batch the store refuses is logged with
//! its reason, counted, set aside and not retried; a store that refuses the token (401) and
//! then does not know the bucket (404) loses nothing once fixed, with and without a spool; the
//! token never reaches the log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shopfloor_core::time::now_ms;
use shopfloor_tests::device::Device;
use shopfloor_tests::free_port;
use shopfloor_tests::gate::HttpGate;
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::http::{get, metric, wait_ready};
use shopfloor_tests::victoria::Victoria;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

const TOKEN: &str = "s3cr3t-t0ken-for-the-store";

async fn device() -> Device {
    shopfloor_tests::device::moving().await
}

fn config(store: &str, device: &str, extra: &str) -> String {
    format!(
        r#"
[gateway]
name = "store-test"

[csv]
dir = "data"

[influx]
url = "{store}"
org = "iqblvd"
bucket = "fieldlab"
token_env = "SHOPFLOOR_TEST_INFLUX_TOKEN"
flush_interval = "200ms"
{extra}

[[machine]]
id = "press-1"
kind = "press line, 2 = \"big\""
protocol = "modbus-tcp"
address = "{device}"
poll_interval = "50ms"
{tags}"#,
        tags = shopfloor_tests::device::MOVING_TAGS
    )
}

/// The gateway's own record: (tag → set of (timestamp, value)) of good samples, from its CSV.
fn csv_record(dir: &Path) -> BTreeMap<String, BTreeSet<(i64, u64)>> {
    let mut out: BTreeMap<String, BTreeSet<(i64, u64)>> = BTreeMap::new();
    let machine_dir = dir.join("data").join("press-1");
    for entry in std::fs::read_dir(machine_dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split(',').collect();
            let (ts, tag, value, quality) = (cols[0], cols[2], cols[3], cols[4]);
            if quality != "good" || tag == "program" {
                continue;
            }
            let v: f64 = match value {
                "true" => 1.0,
                "false" => 0.0,
                n => n.parse().unwrap(),
            };
            out.entry(tag.to_owned())
                .or_default()
                .insert((ts.parse().unwrap(), v.to_bits()));
        }
    }
    out
}

/// What the store holds: the same shape, from its export API.
fn stored(store: &Victoria) -> BTreeMap<String, BTreeSet<(i64, u64)>> {
    let mut out: BTreeMap<String, BTreeSet<(i64, u64)>> = BTreeMap::new();
    for s in store.export("shopfloor_.*") {
        assert_eq!(s.labels["machine"], "press-1", "{s:?}");
        assert_eq!(s.labels["kind"], "press line, 2 = \"big\"", "{s:?}");
        let tag = s.labels["__name__"]
            .trim_start_matches("shopfloor_")
            .to_owned();
        if tag == "program" {
            continue; // VictoriaMetrics keeps numbers only; a string field arrives as 0
        }
        out.entry(tag)
            .or_default()
            .extend(s.points.iter().map(|(t, v)| (*t, v.to_bits())));
    }
    out
}

/// Waits until the store holds exactly what the CSV record says (flushing takes a moment).
fn assert_store_matches(store: &Victoria, dir: &Path) {
    let want = csv_record(dir);
    let total: usize = want.values().map(BTreeSet::len).sum();
    assert!(total > 100, "too few samples to compare: {total}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = stored(store);
        if got == want {
            return;
        }
        if Instant::now() > deadline {
            for (tag, points) in &want {
                let have = got.get(tag).cloned().unwrap_or_default();
                let missing: Vec<_> = points.difference(&have).take(5).collect();
                let extra: Vec<_> = have.difference(points).take(5).collect();
                eprintln!(
                    "{tag}: want {} have {}; missing {missing:?} extra {extra:?}",
                    points.len(),
                    have.len()
                );
            }
            panic!("the store does not hold what the gateway read");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_arrives_with_its_value_type_and_timestamp() {
    let store = Victoria::start();
    let dev = device().await;
    let mut gw = GatewayProcess::start_with_env(
        &config(&store.url(), &dev.addr.to_string(), ""),
        &[("SHOPFLOOR_TEST_INFLUX_TOKEN", TOKEN)],
    );
    gw.expect_event("store_writer_started", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        gw.terminate(Duration::from_secs(5)).success(),
        "{}",
        gw.log()
    );
    assert_store_matches(&store, gw.dir.path());
    // Integers stay integers, bools are 0/1: spot checks on the exported values.
    let got = stored(&store);
    assert!(got["temp"].iter().all(|(_, v)| f64::from_bits(*v) == -40.0));
    assert!(got["total"].iter().all(|(_, v)| f64::from_bits(*v) == 4e9));
    assert!(
        got["running"]
            .iter()
            .any(|(_, v)| f64::from_bits(*v) == 0.0)
    );
    assert!(!gw.log().contains(TOKEN), "the token reached the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_stopped_and_started_mid_run_loses_nothing() {
    let mut store = Victoria::start();
    let dev = device().await;
    let mut gw = GatewayProcess::start_with_env(
        &config(&store.url(), &dev.addr.to_string(), ""),
        &[("SHOPFLOOR_TEST_INFLUX_TOKEN", TOKEN)],
    );
    gw.expect_event("store_writer_started", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    store.stop();
    gw.expect_event("store_unreachable", Duration::from_secs(10));
    // Away for 30 s, as a store being upgraded is.
    std::thread::sleep(Duration::from_secs(30));
    store.restart();
    gw.expect_event("store_reachable", Duration::from_secs(40));
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        gw.terminate(Duration::from_secs(5)).success(),
        "{}",
        gw.log()
    );
    assert_store_matches(&store, gw.dir.path());
    assert!(!gw.log().contains(TOKEN), "the token reached the log");
}

/// A store that answers 400 to every write: each refused batch is counted in
/// `shopfloor_sink_rejected_total`, set aside under the spool, never retried, and the gateway
/// goes on with new batches (the counter keeps rising while nothing counts as sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_is_logged_counted_and_set_aside() {
    let store = Victoria::start();
    let dev = device().await;
    // No such path on the store: every write is answered 400 with a reason.
    let url = format!("{}/no/such/prefix", store.url());
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let cfg = config(
        &url,
        &dev.addr.to_string(),
        "\n[buffer]\nspool_dir = \"spool\"",
    )
    .replace(
        "name = \"store-test\"\n",
        &format!("name = \"store-test\"\nhttp = \"{http}\"\n"),
    );
    let mut gw = GatewayProcess::start_with_env(&cfg, &[("SHOPFLOOR_TEST_INFLUX_TOKEN", TOKEN)]);
    assert!(wait_ready(http, Duration::from_secs(30)), "{}", gw.log());
    let aside_dir = gw.dir.path().join("spool").join("influx-rejected");
    let aside = || std::fs::read_dir(&aside_dir).map_or(0, |d| d.count());
    let counters = || {
        let body = get(http, "/metrics", None).body;
        (
            metric(&body, "shopfloor_sink_rejected_total{sink=\"influx\"}"),
            metric(&body, "shopfloor_sink_sent_total{sink=\"influx\"}"),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut first = None;
    loop {
        let (rejected, sent) = counters();
        assert_eq!(sent, 0, "a refused write counted as sent");
        if rejected > 0 && first.is_none() {
            first = Some(rejected);
        }
        if first.is_some_and(|f| rejected > f) && aside() >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rejected {rejected}, {} set aside\n{}",
            aside(),
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        gw.terminate(Duration::from_secs(5)).success(),
        "{}",
        gw.log()
    );
    let log = gw.log();
    let line = log
        .lines()
        .find(|l| l.contains("the store refused a batch"))
        .unwrap();
    assert!(line.contains("status=400"), "{line}");
    assert!(
        !log.contains("retrying"),
        "a refused batch was retried:\n{log}"
    );
    assert!(!log.contains(TOKEN), "the token reached the log");
}

/// The store behind a gate that answers 401, then 404, then lets the writes through: every
/// point the gateway read arrives in the end.
async fn refusals_then_fixed_lose_nothing(extra: &str) {
    let store = Victoria::start();
    let gate = HttpGate::refusing(
        store.addr,
        401,
        r#"{"code":"unauthorized","message":"unauthorized access"}"#,
    )
    .await;
    let dev = device().await;
    let url = format!("http://{}", gate.addr);
    let mut gw = GatewayProcess::start_with_env(
        &config(&url, &dev.addr.to_string(), extra),
        &[("SHOPFLOOR_TEST_INFLUX_TOKEN", TOKEN)],
    );
    gate.wait_answered(2, Duration::from_secs(30)).await;
    gate.refuse(
        404,
        r#"{"code":"not found","message":"bucket \"fieldlab\" not found"}"#,
    );
    gate.wait_answered(4, Duration::from_secs(30)).await;
    let fixed_at = now_ms();
    gate.pass();
    // Batches go oldest first: once a point read after the fix is stored, all before it are.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stored(&store)
        .values()
        .any(|points| points.iter().any(|(t, _)| *t >= fixed_at))
    {
        assert!(Instant::now() < deadline, "nothing stored after the fix");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        gw.terminate(Duration::from_secs(5)).success(),
        "{}",
        gw.log()
    );
    assert_store_matches(&store, gw.dir.path());
    let log = gw.log();
    assert!(
        !log.contains("set aside"),
        "a refused batch was set aside:\n{log}"
    );
    assert!(!log.contains(TOKEN), "the token reached the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_refusing_token_then_bucket_loses_nothing_once_fixed() {
    refusals_then_fixed_lose_nothing("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_refusing_token_then_bucket_loses_nothing_once_fixed_with_a_spool() {
    refusals_then_fixed_lose_nothing("\n[buffer]\nspool_dir = \"spool\"").await;
}

#[test]
fn demo_with_influx_fills_the_store_with_every_machine() {
    let store = Victoria::start();
    let url = store.url();
    // Fast enough that the CNC machines finish their first setup and parts within the test, so
    // the KPI panels have their data too.
    let (mut demo, _, _) = GatewayProcess::demo_on_free_ports(
        &["--influx", &url, "--speedup", "60"],
        Duration::from_secs(30),
    );
    assert!(
        demo.stdout()
            .contains(&format!("store     {}", store.url())),
        "{}",
        demo.stdout()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let machines = loop {
        let machines: BTreeSet<String> = store
            .export("shopfloor_.*")
            .into_iter()
            .map(|s| s.labels["machine"].clone())
            .collect();
        if machines.len() == 7 || Instant::now() > deadline {
            break machines;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let want: BTreeSet<String> = [
        "cnc-1", "cnc-2", "imm-1", "imm-2", "energy-1", "energy-2", "energy-3",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(machines, want, "{}", demo.log());
    // The energy meters' power, under the contract's name and labels: the three of the line.
    let power = store.export("shopfloor_power_total");
    assert_eq!(power.len(), 3, "{power:?}");
    for p in &power {
        assert_eq!(p.labels["kind"], "energy-meter");
        assert!(p.points.iter().all(|(_, w)| *w > 0.0));
    }
    every_dashboard_query_returns_data_of_the_hall(&store, &want);
    assert!(
        demo.interrupt(Duration::from_secs(5)).success(),
        "{}",
        demo.log()
    );
}

/// Every `expr` of a dashboard's JSON, in order.
fn exprs(j: &serde_json::Value, out: &mut Vec<String>) {
    match j {
        serde_json::Value::Object(o) => {
            if let Some(e) = o.get("expr").and_then(|e| e.as_str()) {
                out.push(e.to_owned());
            }
            o.values().for_each(|v| exprs(v, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// Each query of the VictoriaMetrics dashboard, run against the store the demo hall fills,
/// returns at least one series: with `$machine` for at least one machine of the hall.
fn every_dashboard_query_returns_data_of_the_hall(store: &Victoria, machines: &BTreeSet<String>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../dashboards/grafana/hall-victoriametrics.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    assert!(queries.len() >= 10, "{queries:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    for q in &queries {
        loop {
            let answered = if q.contains("$machine") {
                machines
                    .iter()
                    .any(|m| store.query_series(&q.replace("$machine", m)) > 0)
            } else {
                store.query_series(q) > 0
            };
            if answered {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no data for the dashboard query {q}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Good samples of `machine` in the CSV files under `dir` as (tag, timestamp, value bits).
fn csv_points(dir: &Path) -> BTreeSet<(String, i64, u64)> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir.join("press-1")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split(',').collect();
            if cols.len() < 5 || cols[4] != "good" || cols[2] == "program" {
                continue; // a row cut by the kill, or a string the store does not keep
            }
            let v: f64 = match cols[3] {
                "true" => 1.0,
                "false" => 0.0,
                n => n.parse().unwrap(),
            };
            out.insert((cols[2].to_owned(), cols[0].parse().unwrap(), v.to_bits()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_during_an_outage_replays_its_spool() {
    let mut store = Victoria::start();
    let dev = device().await;
    let shared = tempfile::tempdir().unwrap();
    let extra = format!(
        "\n[buffer]\nspool_dir = \"{}\"\nfsync_interval = \"200ms\"",
        shared.path().join("spool").display()
    );
    let config = config(&store.url(), &dev.addr.to_string(), &extra).replace(
        "dir = \"data\"",
        &format!("dir = \"{}\"", shared.path().join("data").display()),
    );
    let env = [("SHOPFLOOR_TEST_INFLUX_TOKEN", TOKEN)];
    let mut first = GatewayProcess::start_with_env(&config, &env);
    first.expect_event("store_writer_started", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    store.stop();
    first.expect_event("store_unreachable", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(3));
    let killed_at = shopfloor_core::time::now_ms();
    first.kill();

    // Started again while the store is still away: it finds its spool, then the store returns.
    let mut second = GatewayProcess::start_with_env(&config, &env);
    second.expect_event("spool_replay", Duration::from_secs(20));
    store.restart();
    second.expect_event("store_reachable", Duration::from_secs(40));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        second.terminate(Duration::from_secs(5)).success(),
        "{}",
        second.log()
    );

    // Everything read up to the fsync window (and the CSV's own flush) before the kill is
    // stored, including what was read while the store was away.
    let read = csv_points(&shared.path().join("data"));
    let before_kill: BTreeSet<_> = read
        .iter()
        .filter(|(_, ts, _)| *ts <= killed_at - 1500)
        .cloned()
        .collect();
    assert!(before_kill.len() > 100, "{} points", before_kill.len());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let stored: BTreeSet<(String, i64, u64)> = stored(&store)
            .into_iter()
            .flat_map(|(tag, pts)| pts.into_iter().map(move |(t, v)| (tag.clone(), t, v)))
            .collect();
        let missing: Vec<_> = before_kill.difference(&stored).take(5).cloned().collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lost after the kill: {missing:?}\n{}",
            second.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
