//! A reload that changes only machines is applied as the difference: a machine added starts
//! with `seq` 1, a machine removed goes offline with the contract's error and leaves
//! `/api/machines`, and an untouched machine does not notice: the same connection (the device
//! counts them), no status message, `seq` without a gap. A machine given a new tag restarts and
//! continues the `seq` of the tag it kept; the new tag starts at 1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shopfloor_core::Value;
use shopfloor_modbus::{Area, DataType, WordOrder};
use shopfloor_tests::device::{Behaviour, Device, Memory};
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::mosquitto::Mosquitto;
use shopfloor_tests::subscriber::{Msg, Subscriber};
use std::sync::atomic::Ordering;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

async fn device() -> Device {
    let mut m = Memory::default();
    for address in [0, 1] {
        m.put(
            Area::Holding,
            address,
            DataType::U16,
            WordOrder::ABCD,
            Value::U64(7),
        );
    }
    Device::start(m, Behaviour::Healthy, 0).await
}

fn tag(name: &str, address: u16) -> String {
    format!(
        "\n  [[machine.tag]]\n  name = \"{name}\"\n  area = \"holding\"\n  address = {address}\n  type = \"u16\"\n"
    )
}

fn machine(id: &str, device: &Device, tags: &str) -> String {
    format!(
        "\n[[machine]]\nid = \"{id}\"\nprotocol = \"modbus-tcp\"\naddress = \"{}\"\npoll_interval = \"100ms\"\n{tags}",
        device.addr
    )
}

fn config(broker: &Mosquitto, http: u16, machines: &[String]) -> String {
    format!(
        "[gateway]\nname = \"hall\"\nhttp = \"127.0.0.1:{http}\"\n\n[mqtt]\nurl = \"{}\"\ntopic_prefix = \"hall\"\n{}",
        broker.url(),
        machines.concat()
    )
}

/// Writes `text` over the running gateway's config, sends SIGHUP and waits for its reload
/// number `nth`, whose summary line must say `summary` when given.
fn reload(gw: &GatewayProcess, text: &str, nth: usize, summary: Option<&str>) {
    gw.rewrite(text);
    gw.hangup();
    gw.expect_events("config_reloaded", nth, WAIT);
    if let Some(summary) = summary {
        let line = format!("config reloaded: {summary}");
        assert!(gw.log().contains(&line), "no {line:?} in\n{}", gw.log());
    }
}

/// The `seq`s of `topic`, in order of arrival.
fn seqs(log: &[Msg], topic: &str) -> Vec<u64> {
    log.iter()
        .filter(|m| m.topic == topic)
        .filter_map(|m| m.json()["seq"].as_u64())
        .collect()
}

fn assert_no_gap(log: &[Msg], topic: &str) {
    let s = seqs(log, topic);
    assert!(s.len() > 5, "too few samples of {topic}: {s:?}");
    for w in s.windows(2) {
        assert_eq!(w[1], w[0] + 1, "{topic}: seq {} after {}", w[1], w[0]);
    }
}

fn statuses(log: &[Msg], machine: &str) -> Vec<serde_json::Value> {
    let topic = format!("hall/{machine}/_status");
    log.iter()
        .filter(|m| m.topic == topic)
        .map(Msg::json)
        .collect()
}

fn listed(http: u16) -> Vec<String> {
    let addr = format!("127.0.0.1:{http}").parse().unwrap();
    let body = shopfloor_tests::http::get(addr, "/api/machines", None).body;
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_touches_only_the_machines_it_changes() {
    let broker = Mosquitto::start();
    let (a, b, c) = (device().await, device().await, device().await);
    let http = shopfloor_tests::free_port();
    let mut sub = Subscriber::start(broker.port, "hall/+/+").await;
    let speed = tag("speed", 0);
    let gw = GatewayProcess::start(&config(
        &broker,
        http,
        &[machine("a", &a, &speed), machine("b", &b, &speed)],
    ));
    let mut log = Vec::new();
    sub.collect_until(&mut log, WAIT, "samples of a and b", |l| {
        seqs(l, "hall/a/speed").len() >= 5 && !seqs(l, "hall/b/speed").is_empty()
    })
    .await;
    let connections = a.connections.load(Ordering::SeqCst);
    let a_statuses = statuses(&log, "a").len();

    // b removed, c added, a left alone.
    reload(
        &gw,
        &config(
            &broker,
            http,
            &[machine("a", &a, &speed), machine("c", &c, &speed)],
        ),
        1,
        Some("added c; removed b; 1 unchanged"),
    );
    sub.collect_until(&mut log, WAIT, "c's samples and b's goodbye", |l| {
        seqs(l, "hall/c/speed").len() >= 5
            && statuses(l, "b")
                .last()
                .is_some_and(|s| s["state"] == "offline")
    })
    .await;
    assert_eq!(
        seqs(&log, "hall/c/speed")[0],
        1,
        "an added machine starts at 1"
    );
    let goodbye = statuses(&log, "b").pop().unwrap();
    assert_eq!(goodbye["error"], "removed from the configuration");
    let b_last = log.iter().rposition(|m| m.topic == "hall/b/speed").unwrap();
    let b_bye = log
        .iter()
        .rposition(|m| m.topic == "hall/b/_status")
        .unwrap();
    assert!(b_last < b_bye, "b's offline follows its last sample");
    assert_eq!(listed(http), vec!["a", "c"]);
    assert_eq!(
        a.connections.load(Ordering::SeqCst),
        connections,
        "a reconnected"
    );
    assert_eq!(
        statuses(&log, "a").len(),
        a_statuses,
        "a status message for a"
    );
    assert_no_gap(&log, "hall/a/speed");

    // a gained a tag: it restarts, speed goes on, temp starts at 1; c is left alone.
    let c_connections = c.connections.load(Ordering::SeqCst);
    let both = format!("{speed}{}", tag("temp", 1));
    reload(
        &gw,
        &config(
            &broker,
            http,
            &[machine("a", &a, &both), machine("c", &c, &speed)],
        ),
        2,
        Some("changed a; 1 unchanged"),
    );
    sub.collect_until(&mut log, WAIT, "a's new tag", |l| {
        seqs(l, "hall/a/temp").len() >= 5
    })
    .await;
    assert_eq!(seqs(&log, "hall/a/temp")[0], 1, "a new tag starts at 1");
    assert_no_gap(&log, "hall/a/speed");
    assert_no_gap(&log, "hall/c/speed");
    assert_eq!(c.connections.load(Ordering::SeqCst), c_connections);
    assert_eq!(listed(http), vec!["a", "c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_mqtt_section_moves_to_the_new_broker_with_nothing_lost_between() {
    let (old, new) = (Mosquitto::start(), Mosquitto::start());
    let a = device().await;
    let http = shopfloor_tests::free_port();
    let mut on_old = Subscriber::start(old.port, "hall/a/speed").await;
    let mut on_new = Subscriber::start(new.port, "hall/a/speed").await;
    let speed = tag("speed", 0);
    let gw = GatewayProcess::start(&config(&old, http, &[machine("a", &a, &speed)]));
    let mut before = Vec::new();
    on_old
        .collect_until(&mut before, WAIT, "samples on the old broker", |l| {
            l.len() >= 10
        })
        .await;
    reload(
        &gw,
        &config(&new, http, &[machine("a", &a, &speed)]),
        1,
        Some("1 unchanged; sections [mqtt]"),
    );
    let mut after = Vec::new();
    on_new
        .collect_until(&mut after, WAIT, "samples on the new broker", |l| {
            l.len() >= 10
        })
        .await;
    // The old sink delivered what it held before it left.
    before.extend(on_old.collect_for(Duration::from_millis(500)).await);
    let (b, n) = (seqs(&before, "hall/a/speed"), seqs(&after, "hall/a/speed"));
    let last_old = *b.last().unwrap();
    assert_eq!(
        n[0],
        last_old + 1,
        "the new broker starts where the old one ended"
    );
    assert_no_gap(&before, "hall/a/speed");
    assert_no_gap(&after, "hall/a/speed");
    assert_eq!(
        a.connections.load(Ordering::SeqCst),
        1,
        "the machine was not touched"
    );
    // The new broker is told the machine's state as it is, not `connecting`.
    let mut status = Subscriber::start(new.port, "hall/a/_status").await;
    let retained = status
        .expect(WAIT, "a's retained status", |m| m.topic == "hall/a/_status")
        .await;
    assert_eq!(retained.json()["state"], "online", "{:?}", retained.json());
}

/// Every CSV row written for machine `id` under `dir` so far.
fn csv_rows(dir: &std::path::Path, id: &str) -> usize {
    let Ok(files) = std::fs::read_dir(dir.join(id)) else {
        return 0;
    };
    files
        .filter_map(Result::ok)
        .map(|f| std::fs::read_to_string(f.path()).unwrap_or_default())
        .map(|text| text.lines().skip(1).count())
        .sum()
}

/// The sinks `/metrics` speaks of.
fn sinks_in_metrics(http: u16) -> Vec<String> {
    let addr = format!("127.0.0.1:{http}").parse().unwrap();
    let body = shopfloor_tests::http::get(addr, "/metrics", None).body;
    let mut sinks: Vec<String> = body
        .lines()
        .filter(|l| l.starts_with("shopfloor_sink_sent_total{"))
        .filter_map(|l| {
            l.split("sink=\"")
                .nth(1)?
                .split('"')
                .next()
                .map(str::to_owned)
        })
        .collect();
    sinks.sort();
    sinks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_section_added_and_then_removed_starts_and_stops_that_sink_alone() {
    let broker = Mosquitto::start();
    let a = device().await;
    let http = shopfloor_tests::free_port();
    let data = tempfile::tempdir().unwrap();
    let mut sub = Subscriber::start(broker.port, "hall/a/+").await;
    let speed = tag("speed", 0);
    let base = config(&broker, http, &[machine("a", &a, &speed)]);
    let gw = GatewayProcess::start(&base);
    let mut log = Vec::new();
    sub.collect_until(&mut log, WAIT, "samples of a", |l| {
        seqs(l, "hall/a/speed").len() >= 5
    })
    .await;
    let a_statuses = statuses(&log, "a").len();

    // A CSV sink added: it starts, the machine and the MQTT sink go on untouched.
    reload(
        &gw,
        &format!("{base}\n[csv]\ndir = \"{}\"\n", data.path().display()),
        1,
        Some("1 unchanged; sections [csv]"),
    );
    assert!(
        shopfloor_tests::gateway::wait_until(WAIT, || csv_rows(data.path(), "a") >= 5),
        "no CSV rows after the [csv] section was added\n{}",
        gw.log()
    );
    assert_eq!(sinks_in_metrics(http), ["csv", "live", "mqtt"]);

    // The CSV sink removed: it stops writing and leaves /metrics.
    reload(&gw, &base, 2, None);
    assert_eq!(sinks_in_metrics(http), ["live", "mqtt"]);
    let rows = csv_rows(data.path(), "a");
    let seen = seqs(&log, "hall/a/speed").len();
    sub.collect_until(&mut log, WAIT, "more samples of a", |l| {
        seqs(l, "hall/a/speed").len() >= seen + 15
    })
    .await;
    assert_eq!(
        csv_rows(data.path(), "a"),
        rows,
        "the removed CSV sink wrote on"
    );

    assert_no_gap(&log, "hall/a/speed");
    assert_eq!(
        a.connections.load(Ordering::SeqCst),
        1,
        "the machine was touched"
    );
    assert_eq!(
        statuses(&log, "a").len(),
        a_statuses,
        "a status message for a"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_http_address_is_listened_on_with_the_history_kept() {
    let broker = Mosquitto::start();
    let a = device().await;
    let (first, second) = (shopfloor_tests::free_port(), shopfloor_tests::free_port());
    let mut sub = Subscriber::start(broker.port, "hall/a/speed").await;
    let speed = tag("speed", 0);
    let gw = GatewayProcess::start(&config(&broker, first, &[machine("a", &a, &speed)]));
    let mut log = Vec::new();
    sub.collect_until(&mut log, WAIT, "samples of a", |l| l.len() >= 5)
        .await;
    reload(
        &gw,
        &config(&broker, second, &[machine("a", &a, &speed)]),
        1,
        Some("1 unchanged; sections [gateway] http"),
    );
    let at = |port: u16| -> std::net::SocketAddr { format!("127.0.0.1:{port}").parse().unwrap() };
    assert!(
        std::net::TcpStream::connect(at(first)).is_err(),
        "the old address still answers"
    );
    let history = shopfloor_tests::http::get(
        at(second),
        "/api/machines/a/history?tag=speed&seconds=600",
        None,
    );
    let points: serde_json::Value = serde_json::from_str(&history.body).unwrap();
    let oldest = points.as_array().unwrap()[0]["timestamp_ms"]
        .as_i64()
        .unwrap();
    let first_published = log[0].json()["timestamp_ms"].as_i64().unwrap();
    assert!(
        oldest <= first_published,
        "the history begins after the reload: {oldest} > {first_published}"
    );
    assert_eq!(
        a.connections.load(Ordering::SeqCst),
        1,
        "the machine was touched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_server_is_started_changed_and_stopped_by_a_reload_with_the_machines_untouched() {
    let broker = Mosquitto::start();
    let a = device().await;
    let http = shopfloor_tests::free_port();
    let mut sub = Subscriber::start(broker.port, "hall/a/+").await;
    let speed = tag("speed", 0);
    let with_http = config(&broker, http, &[machine("a", &a, &speed)]);
    let without = with_http.replace(&format!("http = \"127.0.0.1:{http}\"\n"), "");
    assert_ne!(with_http, without);
    let gw = GatewayProcess::start(&without);
    let mut log = Vec::new();
    sub.collect_until(&mut log, WAIT, "samples of a", |l| {
        seqs(l, "hall/a/speed").len() >= 5
    })
    .await;
    let at: std::net::SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    assert!(
        std::net::TcpStream::connect(at).is_err(),
        "HTTP without http"
    );

    reload(
        &gw,
        &with_http,
        1,
        Some("1 unchanged; sections [gateway] http"),
    );
    assert_eq!(listed(http), vec!["a"]);
    assert_eq!(sinks_in_metrics(http), ["live", "mqtt"]);
    // The live store fills from the reload on: the history has a's speed.
    assert!(
        shopfloor_tests::gateway::wait_until(WAIT, || {
            let h = shopfloor_tests::http::get(
                at,
                "/api/machines/a/history?tag=speed&seconds=600",
                None,
            );
            serde_json::from_str::<serde_json::Value>(&h.body)
                .is_ok_and(|p| p.as_array().is_some_and(|p| !p.is_empty()))
        }),
        "no history after the server started"
    );

    // A new history window is kept from now on, in the same store.
    let window =
        || shopfloor_tests::http::get(at, "/api/machines/a/history?tag=speed&seconds=0", None).body;
    assert!(window().contains("1..=600"), "{}", window());
    reload(
        &gw,
        &with_http.replace("name = \"hall\"\n", "name = \"hall\"\nhistory = \"5m\"\n"),
        2,
        Some("1 unchanged; sections [gateway] history"),
    );
    assert!(window().contains("1..=300"), "{}", window());

    reload(&gw, &without, 3, None);
    assert!(
        std::net::TcpStream::connect(at).is_err(),
        "HTTP still served"
    );
    let seen = seqs(&log, "hall/a/speed").len();
    sub.collect_until(&mut log, WAIT, "more samples of a", |l| {
        seqs(l, "hall/a/speed").len() >= seen + 10
    })
    .await;
    assert_no_gap(&log, "hall/a/speed");
    assert_eq!(
        a.connections.load(Ordering::SeqCst),
        1,
        "the machine was touched"
    );
}

/// A machine with `[machine.kpi]`: its own two tags and the KPIs of them.
fn with_kpis(id: &str, device: &Device) -> String {
    let tags = format!("{}{}", tag("state", 0), tag("good", 1));
    format!(
        "{}\n  [machine.kpi]\n  state = \"state\"\n  running = [7]\n  good = \"good\"\n  ideal_cycle = \"1s\"\n",
        machine(id, device, &tags)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_with_kpis_added_by_a_reload_gets_them_and_the_others_go_on() {
    let broker = Mosquitto::start();
    let (one, two) = (device().await, device().await);
    let http = shopfloor_tests::free_port();
    let mut sub = Subscriber::start(broker.port, "hall/+/kpi_good").await;
    let kpi = "\n[kpi]\ninterval = \"250ms\"\n";
    let file = |machines: &[String]| format!("{}{kpi}", config(&broker, http, machines));
    let gw = GatewayProcess::start(&file(&[with_kpis("cell-1", &one)]));
    let mut log = Vec::new();
    sub.collect_until(&mut log, WAIT, "KPIs of cell-1", |l| {
        seqs(l, "hall/cell-1/kpi_good").len() >= 5
    })
    .await;
    reload(
        &gw,
        &file(&[with_kpis("cell-1", &one), with_kpis("cell-2", &two)]),
        1,
        Some("added cell-2; 1 unchanged"),
    );
    sub.collect_until(&mut log, WAIT, "KPIs of cell-2", |l| {
        seqs(l, "hall/cell-2/kpi_good").len() >= 5
    })
    .await;
    assert_eq!(seqs(&log, "hall/cell-2/kpi_good")[0], 1);
    assert_no_gap(&log, "hall/cell-1/kpi_good");
    let addr = format!("127.0.0.1:{http}").parse().unwrap();
    let report = shopfloor_tests::http::get(addr, "/api/machines/cell-2/kpi", None);
    assert_eq!(report.status, 200, "{}", report.body);
    assert_eq!(
        one.connections.load(Ordering::SeqCst),
        1,
        "cell-1 was touched"
    );
}
