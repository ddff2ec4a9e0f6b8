//! OPC UA machines read by the gateway: every listed type, quality and source timestamps from
//! an independent server (Python asyncua), subscribe and poll modes, a missing node reported
//! once while the others flow; and a simulated machine restarted 20 times in a row without growth
//! in open files, threads, runtime tasks or memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value as Json, json};
use shopfloor_sim::SimKind;
use shopfloor_sim::profile::Deadbands;
use shopfloor_tests::free_port;
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::http::{get, wait_ready};
use shopfloor_tests::opcua::{PyOpcua, SimOpcua};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const TYPES: [&str; 15] = [
    "Boolean",
    "SByte",
    "Byte",
    "Int16",
    "UInt16",
    "Int32",
    "UInt32",
    "Int64",
    "UInt64",
    "Float",
    "Double",
    "String",
    "DateTime",
    "LocalizedText",
    "ByteString",
];

fn py_config(http: SocketAddr, pki: &str, endpoint: &str) -> String {
    let mut c = format!(
        "[gateway]\nname = \"ua\"\nhttp = \"{http}\"\npki_dir = \"{pki}\"\n\n\
         [[machine]]\nid = \"py\"\nkind = \"test\"\nprotocol = \"opcua\"\nendpoint = \"{endpoint}\"\n\
         publishing_interval = \"100ms\"\ntimeout = \"2s\"\n"
    );
    for t in TYPES {
        c.push_str(&format!(
            "\n  [[machine.tag]]\n  name = \"{}\"\n  node = \"nsu=urn:shopfloor:test;s=T.{t}\"\n",
            t.to_lowercase()
        ));
    }
    for (name, node) in [
        ("counter", "ns=2;i=5001"),
        ("broken", "ns=2;s=T.Broken"),
        ("unsure", "ns=2;s=T.Unsure"),
        ("stamped", "ns=2;s=T.Stamped"),
        ("missing", "ns=2;s=T.Nope"),
    ] {
        c.push_str(&format!(
            "\n  [[machine.tag]]\n  name = \"{name}\"\n  node = \"{node}\"\n"
        ));
    }
    c.push_str(&format!(
        "\n[[machine]]\nid = \"py-poll\"\nkind = \"test\"\nprotocol = \"opcua\"\n\
         endpoint = \"{endpoint}\"\nmode = \"poll\"\npublishing_interval = \"200ms\"\n\n\
         \x20 [[machine.tag]]\n  name = \"counter\"\n  node = \"ns=2;i=5001\"\n\n\
         \x20 [[machine.tag]]\n  name = \"string\"\n  node = \"ns=2;s=T.String\"\n"
    ));
    c
}

/// Tag name → tag JSON of machine `id`, from `/api/machines`.
fn tags(http: SocketAddr, id: &str) -> HashMap<String, Json> {
    let all = get(http, "/api/machines", None).json();
    let m = all
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap()
        .clone();
    m["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_owned(), t.clone()))
        .collect()
}

fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < until, "waited {within:?} for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_type_quality_and_source_time_from_an_independent_server() {
    let server = PyOpcua::start();
    let pki = tempfile::tempdir().unwrap();
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut gw = GatewayProcess::start(&py_config(
        http,
        &pki.path().display().to_string(),
        &server.endpoint(),
    ));
    assert!(wait_ready(http, Duration::from_secs(30)), "{}", gw.log());
    wait_for(
        "every tag of both machines",
        Duration::from_secs(30),
        || {
            let t = tags(http, "py");
            let p = tags(http, "py-poll");
            t.values().all(|t| !t["quality"].is_null())
                && t["counter"]["value"].as_u64().unwrap_or(0) > 0
                && p["counter"]["value"].as_u64().unwrap_or(0) > 0
        },
    );
    let t = tags(http, "py");
    let want = [
        ("boolean", json!(true)),
        ("sbyte", json!(-8)),
        ("byte", json!(200)),
        ("int16", json!(-300)),
        ("uint16", json!(65535)),
        ("int32", json!(-2147483648i64)),
        ("uint32", json!(4294967295u64)),
        ("int64", json!(-9007199254740993i64)),
        ("uint64", json!(u64::MAX)),
        ("float", json!(1.5)),
        ("double", json!(-2.25e300)),
        ("string", json!("PA6-GF30")),
        ("datetime", json!("2026-11-23T08:30:00+00:00")),
        ("localizedtext", json!("Gereed")),
        ("bytestring", json!("AQL/")),
    ];
    for (name, value) in want {
        assert_eq!(t[name]["value"], value, "{name}: {}", t[name]);
        assert_eq!(t[name]["quality"], "good", "{name}");
    }
    assert_eq!(t["broken"]["quality"], "bad");
    assert!(t["broken"]["value"].is_null());
    assert_eq!(t["unsure"]["quality"], "uncertain");
    assert_eq!(t["unsure"]["value"], json!(2.0));
    // The server's source timestamp, not the time the gateway got the value.
    assert_eq!(t["stamped"]["timestamp_ms"], json!(1_767_323_045_000i64));
    assert_eq!(t["missing"]["quality"], "bad");

    // Data changes keep arriving, in both modes.
    let (c1, p1) = (
        t["counter"]["value"].as_u64().unwrap(),
        tags(http, "py-poll")["counter"]["value"].as_u64().unwrap(),
    );
    wait_for("the counter to move on", Duration::from_secs(10), || {
        tags(http, "py")["counter"]["value"].as_u64().unwrap() >= c1 + 5
            && tags(http, "py-poll")["counter"]["value"].as_u64().unwrap() >= p1 + 5
    });
    assert_eq!(tags(http, "py-poll")["string"]["value"], "PA6-GF30");
    let machines = get(http, "/api/machines", None).json();
    for m in machines.as_array().unwrap() {
        assert_eq!(m["state"], "online", "{m}");
    }
    // The missing node is reported once, by id.
    assert_eq!(gw.log().matches("T.Nope").count(), 1, "{}", gw.log());
    assert!(gw.is_running());
}

/// What a gateway holds that a reconnect could leak: open files, threads, resident memory (kB)
/// and the tasks alive in its runtime (from `/metrics`).
#[derive(Debug, Clone, Copy)]
struct Held {
    fds: usize,
    threads: u64,
    rss_kb: u64,
    tasks: u64,
}

fn held(pid: u32, http: SocketAddr) -> Held {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .unwrap()
    };
    let tasks = get(http, "/metrics", None)
        .body
        .lines()
        .find_map(|l| l.strip_prefix("shopfloor_runtime_tasks "))
        .and_then(|v| v.trim().parse().ok())
        .expect("shopfloor_runtime_tasks in /metrics");
    Held {
        fds,
        threads: field("Threads:"),
        rss_kb: field("VmRSS:"),
        tasks,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_twenty_times_is_back_every_time_without_growth() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = SimOpcua::start(SimKind::Cnc, dir.path().join("server")).await;
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = format!(
        "[gateway]\nname = \"ua\"\nhttp = \"{http}\"\npki_dir = \"{}\"\n\n\
         [[machine]]\nid = \"cnc-ua\"\nkind = \"cnc\"\nprotocol = \"opcua\"\nendpoint = \"{}\"\n\
         publishing_interval = \"100ms\"\ntimeout = \"1s\"\n\n{}",
        dir.path().join("gateway").display(),
        server.endpoint(),
        shopfloor_sim::ua_profile::to_toml(SimKind::Cnc, Deadbands::Suggested)
    );
    let mut gw = GatewayProcess::start(&config);
    let pid = gw.pid().unwrap();
    let seq_of = |http| -> u64 {
        // The position moves on every tick of the running machine: its time tells freshness.
        tags(http, "cnc-ua")["x_position"]["timestamp_ms"]
            .as_i64()
            .unwrap_or(0) as u64
    };
    let flowing = |what: &str| {
        let since = seq_of(http);
        wait_for(what, Duration::from_secs(20), || {
            let t = tags(http, "cnc-ua");
            t["x_position"]["quality"] == "good" && seq_of(http) > since
        });
    };
    assert!(wait_ready(http, Duration::from_secs(30)), "{}", gw.log());
    flowing("first data");
    let mut baseline = None;
    for round in 1..=20 {
        server.stop().await;
        let gw_http = http;
        tokio::task::spawn_blocking(move || {
            wait_for("the tags to go bad", Duration::from_secs(10), || {
                tags(gw_http, "cnc-ua")["x_position"]["quality"] == "bad"
            })
        })
        .await
        .unwrap();
        server.restart().await;
        let back = Instant::now();
        tokio::task::spawn_blocking(move || {
            let since = seq_of(gw_http);
            wait_for("data again", Duration::from_secs(5), || {
                let t = tags(gw_http, "cnc-ua");
                t["x_position"]["quality"] == "good" && seq_of(gw_http) > since
            });
        })
        .await
        .unwrap_or_else(|_| panic!("round {round}: no data within 5 s\n{}", gw.log()));
        assert!(back.elapsed() < Duration::from_secs(5), "round {round}");
        if round == 3 {
            baseline = Some(held(pid, http));
        }
    }
    let before = baseline.unwrap();
    let after = held(pid, http);
    assert!(
        after.fds <= before.fds + 2,
        "open files grew: {before:?} → {after:?}"
    );
    // The HTTP connection asking for /metrics is a task itself; anything more is a leak.
    assert!(
        after.tasks <= before.tasks + 2,
        "runtime tasks grew: {before:?} → {after:?}"
    );
    // Idle threads of the blocking pool (name lookups) linger 10 s before they end.
    assert!(
        after.threads <= before.threads + 2,
        "threads grew: {before:?} → {after:?}"
    );
    assert!(
        after.rss_kb < before.rss_kb + 8 * 1024,
        "memory grew: {before:?} → {after:?}"
    );
    assert!(gw.is_running());
}
