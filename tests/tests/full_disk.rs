//! A full disk under the spool (a real one: a small tmpfs filled to the last byte) costs no
//! sample while the broker and the store take them: both sinks keep delivering from memory,
//! and once there is room again what the spool held goes out too. Every `seq` arrives, the
//! store holds every good sample, nothing is counted dropped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shopfloor_core::Value;
use shopfloor_modbus::{Area, DataType, WordOrder};
use shopfloor_tests::device::{Behaviour, Device, Memory};
use shopfloor_tests::free_port;
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::http::{get, metric};
use shopfloor_tests::mosquitto::Mosquitto;
use shopfloor_tests::subscriber::{Msg, Subscriber};
use shopfloor_tests::tmpfs::Tmpfs;
use shopfloor_tests::victoria::Victoria;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;
use tokio_modbus::ExceptionCode;

const PREFIX: &str = "iqblvd/hardenberg/full";
const TAGS: u16 = 50;

fn config(broker: u16, store: &str, device: SocketAddr, spool: &str, http: u16) -> String {
    let mut c = format!(
        r#"
[gateway]
name = "full"
http = "127.0.0.1:{http}"

[buffer]
spool_dir = "{spool}"
spool_max_mb = 1
fsync_interval = "200ms"

[mqtt]
url = "mqtt://127.0.0.1:{broker}"
topic_prefix = "{PREFIX}"
layout = "tag"
qos = 1

[influx]
url = "{store}"
org = "iqblvd"
bucket = "fieldlab"
flush_interval = "200ms"

[[machine]]
id = "cnc-1"
kind = "cnc"
protocol = "modbus-tcp"
address = "{device}"
poll_interval = "50ms"
timeout = "500ms"
"#
    );
    for i in 0..TAGS {
        c.push_str(&format!(
            "\n  [[machine.tag]]\n  name = \"r{i}\"\n  area = \"holding\"\n  address = {i}\n  type = \"u16\"\n"
        ));
    }
    c
}

/// Distinct seqs seen per tag topic.
fn record(seen: &mut BTreeMap<String, BTreeSet<u64>>, msgs: Vec<Msg>) {
    for m in msgs {
        if !m.topic.ends_with("/_status") {
            let seq = m.json()["seq"].as_u64().unwrap();
            seen.entry(m.topic).or_default().insert(seq);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_the_spool_loses_nothing_while_broker_and_store_take_samples() {
    let broker = Mosquitto::start();
    let store = Victoria::start();
    let mut memory = Memory::default();
    for i in 0..TAGS {
        let v = Value::U64(100 + u64::from(i));
        memory.put(Area::Holding, i, DataType::U16, WordOrder::ABCD, v);
    }
    let dev = Device::start(memory, Behaviour::Healthy, 0).await;
    let disk = Tmpfs::mount(512);
    let spool = disk.path().join("spool");
    std::fs::create_dir_all(spool.join("mqtt")).unwrap();
    std::fs::create_dir_all(spool.join("influx")).unwrap();
    let filler = disk.fill("filler");
    let http = free_port();
    let api: SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    let cfg = config(
        broker.port,
        &store.url(),
        dev.addr,
        spool.to_str().unwrap(),
        http,
    );
    let mut seen = BTreeMap::new();
    let mut sub = Subscriber::start(broker.port, &format!("{PREFIX}/cnc-1/+")).await;
    let gw = GatewayProcess::start(&cfg);
    let metrics = || get(api, "/metrics", None).body;

    // The disk is full from the start: both sinks must deliver anyway, from memory.
    gw.expect_sink_event("spool_unwritable", "mqtt", Duration::from_secs(20));
    gw.expect_sink_event("spool_unwritable", "influx", Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(30);
    let goal = 5_000; // samples per sink, about 5 s of reading
    loop {
        record(&mut seen, sub.collect_for(Duration::from_millis(250)).await);
        let body = metrics();
        let mqtt = metric(&body, "shopfloor_sink_sent_total{sink=\"mqtt\"}");
        let influx = metric(&body, "shopfloor_sink_sent_total{sink=\"influx\"}");
        if mqtt >= goal && influx >= goal {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "with the disk full, delivered {mqtt} to MQTT and {influx} to the store\n{body}\n{}",
            gw.log()
        );
    }
    assert!(
        std::fs::write(disk.path().join("probe"), [0u8; 8192]).is_err(),
        "the disk had room all along"
    );
    let body = metrics();
    assert_eq!(
        metric(&body, "shopfloor_sink_dropped_total{sink=\"mqtt\"}"),
        0
    );
    assert_eq!(
        metric(&body, "shopfloor_sink_dropped_total{sink=\"influx\"}"),
        0
    );

    // Room again; then the device answers exceptions (one bad sample per tag, then nothing
    // new), so that the counts settle.
    std::fs::remove_file(&filler).unwrap();
    dev.set_behaviour(Behaviour::Exception(ExceptionCode::IllegalDataAddress));
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        let a = metrics();
        record(&mut seen, sub.collect_for(Duration::from_millis(500)).await);
        let b = metrics();
        let read = |s: &str| metric(s, "shopfloor_samples_total{machine=\"cnc-1\"}");
        let backlog =
            |sink: &str| metric(&b, &format!("shopfloor_sink_backlog{{sink=\"{sink}\"}}"));
        if read(&a) == read(&b) && backlog("mqtt") == 0 && backlog("influx") == 0 {
            break b;
        }
        assert!(
            Instant::now() < deadline,
            "never settled\n{b}\n{}",
            gw.log()
        );
    };
    record(&mut seen, sub.collect_for(Duration::from_millis(500)).await);

    let read = metric(&body, "shopfloor_samples_total{machine=\"cnc-1\"}");
    let counts = |sink: &str| {
        (
            metric(
                &body,
                &format!("shopfloor_sink_sent_total{{sink=\"{sink}\"}}"),
            ),
            metric(
                &body,
                &format!("shopfloor_sink_dropped_total{{sink=\"{sink}\"}}"),
            ),
        )
    };
    assert_eq!(counts("mqtt"), (read, 0), "read {read}\n{}", gw.log());
    assert_eq!(counts("influx"), (read, 0), "read {read}\n{}", gw.log());
    // Every seq from 1 on, no gap, for every tag: nothing was lost on the way.
    assert_eq!(seen.len(), usize::from(TAGS));
    let mut distinct = 0;
    for (topic, seqs) in &seen {
        let last = *seqs.last().unwrap();
        assert_eq!(
            seqs.len() as u64,
            last,
            "{topic}: {} of seqs 1..={last}",
            seqs.len()
        );
        distinct += last;
    }
    assert_eq!(distinct, read, "the subscriber saw every sample read");
    // The store has every good sample (all but the one bad sample per tag at the end).
    let stored: usize = store
        .export("shopfloor_r.*")
        .iter()
        .map(|s| s.points.iter().map(|p| p.0).collect::<BTreeSet<_>>().len())
        .sum();
    assert_eq!(stored as u64, read - u64::from(TAGS), "points in the store");
}
