//! `[record]` as a Sparkplug B host application, against an edge node written with
//! pysparkplug's own EdgeNode and Device classes on a real mosquitto: a recorder that comes
//! late asks the node for a rebirth and from its births on stores every DDATA value at its
//! timestamp; a DDATA with an alias no birth announced is counted as `unborn` and answered
//! with another rebirth; the device is recorded as machine `oven` of kind `sparkplug`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use shopfloor_tests::csv::good_values;
use shopfloor_tests::free_port;
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::http::{get, metric, wait_ready};
use shopfloor_tests::mosquitto::Mosquitto;
use shopfloor_tests::sparkplug::SparkplugPeer;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn kind(m: &Value) -> &str {
    m["type"].as_str().unwrap_or_default()
}

/// Whether the CSV cell holds what the edge node published: numbers compare as numbers (the
/// sink writes the double 191 as `191.0`), the rest as text.
fn same(published: &Value, cell: Option<&String>) -> bool {
    let Some(cell) = cell else { return false };
    match published {
        Value::String(s) => s == cell,
        Value::Number(n) => cell.parse::<f64>().ok() == n.as_f64(),
        Value::Bool(b) => cell.parse::<bool>().ok() == Some(*b),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_stores_every_value_an_independent_edge_node_publishes() {
    let broker = Mosquitto::start();
    // The node is born before the recorder exists: the recorder must ask for its births.
    let edge = SparkplugPeer::edge(broker.port);
    let http = format!("127.0.0.1:{}", free_port());
    let rec = GatewayProcess::start(&format!(
        "[gateway]\nname = \"rec\"\nhttp = \"{http}\"\n[record]\nurl = \"{}\"\n\
         topics = [\"spBv1.0/#\"]\n[csv]\ndir = \"data\"\n",
        broker.url()
    ));
    let log = edge.wait(
        Duration::from_secs(60),
        "two rebirths and the data after them",
        |l| l.iter().any(|m| kind(m) == "DONE"),
    );
    let rebirths = log.iter().filter(|m| kind(m) == "REBIRTH_DONE").count();
    assert_eq!(
        rebirths, 2,
        "one for the late start, one for the unknown alias"
    );
    let ghost = log
        .iter()
        .position(|m| kind(m) == "UNKNOWN_ALIAS_SENT")
        .unwrap();
    let second = log.iter().rposition(|m| kind(m) == "REBIRTH_DONE").unwrap();
    assert!(
        ghost < second,
        "the second rebirth answers the unknown alias"
    );

    // Everything published after the first births reaches the store's record, value for value.
    let published: Vec<&Value> = log
        .iter()
        .filter(|m| kind(m) == "DDATA" && m["after_rebirth"].as_u64() >= Some(1))
        .collect();
    assert!(published.len() >= 350, "{}", published.len());
    let dir = rec.dir.path().to_path_buf();
    let last = published.last().unwrap()["timestamp"].as_i64().unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let record = loop {
        let record = good_values(&dir, "oven");
        if record.contains_key(&("parts".to_owned(), last)) || std::time::Instant::now() > deadline
        {
            break record;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for m in &published {
        let ts = m["timestamp"].as_i64().unwrap();
        for (tag, value) in m["values"].as_object().unwrap() {
            let stored = record.get(&(tag.clone(), ts));
            assert!(
                same(value, stored),
                "{tag} at {ts}: {value} published, {stored:?} stored"
            );
        }
    }

    let addr = http.parse().unwrap();
    assert!(wait_ready(addr, Duration::from_secs(5)));
    let machines = get(addr, "/api/machines", None).json();
    let oven = machines
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "oven")
        .unwrap_or_else(|| panic!("{machines}"));
    assert_eq!(oven["kind"], "sparkplug", "{oven}");
    let metrics = get(addr, "/metrics", None).body;
    assert!(
        metric(
            &metrics,
            "shopfloor_record_skipped_total{reason=\"unborn\"}"
        ) >= 2,
        "{metrics}"
    );
    rec.expect_event("sparkplug_rebirth_asked", WAIT);
}
