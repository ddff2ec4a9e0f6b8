//! The MQTT sink on the disk spool: a gateway killed (SIGKILL) during a broker outage replays
//! what it had spooled after its next start, and an outage longer than the spool holds keeps
//! the disk within `spool_max_mb` and counts every dropped sample exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shopfloor_core::Value;
use shopfloor_core::time::now_ms;
use shopfloor_modbus::{Area, DataType, WordOrder};
use shopfloor_tests::device::{Behaviour, Device, Memory};
use shopfloor_tests::free_port;
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::http::{get, metric};
use shopfloor_tests::link::Link;
use shopfloor_tests::mosquitto::Mosquitto;
use shopfloor_tests::subscriber::{Msg, Subscriber};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;
use tokio_modbus::ExceptionCode;

const PREFIX: &str = "iqblvd/hardenberg/spool";

/// A device with `tags` holding registers counting up from 100.
async fn device(tags: u16) -> Device {
    let mut m = Memory::default();
    for i in 0..tags {
        m.put(
            Area::Holding,
            i,
            DataType::U16,
            WordOrder::ABCD,
            Value::U64(100 + u64::from(i)),
        );
    }
    Device::start(m, Behaviour::Healthy, 0).await
}

struct Setup<'a> {
    broker: SocketAddr,
    device: SocketAddr,
    spool: &'a Path,
    spool_max_mb: u64,
    tags: u16,
    poll: &'a str,
    http: u16,
}

fn config(s: &Setup) -> String {
    let mut c = format!(
        r#"
[gateway]
name = "spool"
http = "127.0.0.1:{http}"

[buffer]
spool_dir = "{spool}"
spool_max_mb = {max}
fsync_interval = "200ms"

[mqtt]
url = "mqtt://{broker}"
topic_prefix = "{PREFIX}"
layout = "tag"
qos = 1

[[machine]]
id = "cnc-1"
kind = "cnc"
protocol = "modbus-tcp"
address = "{device}"
poll_interval = "{poll}"
timeout = "500ms"
"#,
        http = s.http,
        spool = s.spool.display(),
        max = s.spool_max_mb,
        broker = s.broker,
        device = s.device,
        poll = s.poll,
    );
    for i in 0..s.tags {
        c.push_str(&format!(
            "\n  [[machine.tag]]\n  name = \"r{i}\"\n  area = \"holding\"\n  address = {i}\n  type = \"u16\"\n"
        ));
    }
    c
}

/// The (seq, timestamp) pairs seen per tag topic (a restarted gateway counts seq from 1 again).
#[derive(Default)]
struct Seen {
    seqs: BTreeMap<String, BTreeSet<(u64, i64)>>,
    messages: usize,
}

impl Seen {
    fn record(&mut self, msgs: Vec<Msg>) {
        for m in msgs {
            if m.topic.ends_with("/_status") || m.topic.contains("/_gateway/") {
                continue;
            }
            let j = m.json();
            let seq = j["seq"].as_u64().unwrap();
            let ts = j["timestamp_ms"].as_i64().unwrap();
            self.seqs.entry(m.topic).or_default().insert((seq, ts));
            self.messages += 1;
        }
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The fault test: SIGKILL while the broker is away; the next start replays the spool, and of
/// what the first gateway read, at most its last second is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_during_a_broker_outage_replays_its_spool() {
    let mut broker = Mosquitto::start();
    let dev = device(10).await;
    let shared = tempfile::tempdir().unwrap();
    let cfg = config(&Setup {
        broker: format!("127.0.0.1:{}", broker.port).parse().unwrap(),
        device: dev.addr,
        spool: &shared.path().join("spool"),
        spool_max_mb: 64,
        tags: 10,
        poll: "100ms",
        http: free_port(),
    });
    let filter = format!("{PREFIX}/cnc-1/+");
    let mut seen = Seen::default();
    let mut before = Subscriber::start(broker.port, &filter).await;
    let mut first = GatewayProcess::start(&cfg);
    seen.record(before.collect_for(Duration::from_secs(2)).await);
    assert!(
        seen.messages > 50,
        "{} messages\n{}",
        seen.messages,
        first.log()
    );
    broker.stop();
    seen.record(before.collect_for(Duration::from_millis(200)).await);
    first.expect_event("mqtt_unreachable", Duration::from_secs(10));
    // The outage: what is read now goes to the spool only.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let killed_at = now_ms();
    first.kill();

    let second_started = now_ms();
    let second = GatewayProcess::start(&cfg);
    second.expect_event("spool_replay", Duration::from_secs(20));
    broker.restart();
    let restarted = now_ms();
    let mut after = Subscriber::start(broker.port, &filter).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut caught_up = false;
    while !caught_up && Instant::now() < deadline {
        let msgs = after.collect_for(Duration::from_millis(500)).await;
        // Replay goes oldest first: a sample of the second run read well after the restart
        // means the first run's backlog is through.
        caught_up = msgs.iter().any(|m| {
            !m.topic.ends_with("/_status")
                && m.json()["timestamp_ms"].as_i64().unwrap() > restarted + 2000
        });
        seen.record(msgs);
    }
    assert!(caught_up, "no catching up\n{}", second.log());

    assert_eq!(seen.seqs.len(), 10, "{:?}", seen.seqs.keys());
    for (topic, seqs) in &seen.seqs {
        // The first run's samples: seq from 1, no gap, up to the last second before the kill.
        let first_run: Vec<(u64, i64)> = seqs
            .iter()
            .filter(|(_, ts)| *ts < second_started)
            .copied()
            .collect();
        assert_eq!(first_run[0].0, 1, "{topic}: the first sample is missing");
        let (last_seq, last_ts) = *first_run.last().unwrap();
        assert_eq!(
            last_seq,
            first_run.len() as u64,
            "{topic}: a gap in the first run's seq"
        );
        let lost_ms = killed_at - last_ts;
        assert!(
            lost_ms <= 1000,
            "{topic}: the last {lost_ms} ms before the kill are lost (about {} samples)\n{}",
            lost_ms / 100,
            second.log()
        );
        // Samples read during the outage, before the kill, came back from the spool.
        assert!(
            first_run.len() > 50,
            "{topic}: {} samples of the first run",
            first_run.len()
        );
    }
}

/// The fault test: an outage longer than the spool holds (the link to the broker cut while a
/// subscriber stays on the broker): the spool directory never grows past `spool_max_mb`, and
/// dropped = read − delivered, exactly, in `/metrics` and as seen by the subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_spool_drops_the_oldest_and_counts_exactly() {
    let broker = Mosquitto::start();
    let link = Link::start(format!("127.0.0.1:{}", broker.port).parse().unwrap()).await;
    let dev = device(50).await;
    let shared = tempfile::tempdir().unwrap();
    let spool = shared.path().join("spool");
    let http = free_port();
    let cfg = config(&Setup {
        broker: link.addr,
        device: dev.addr,
        spool: &spool,
        spool_max_mb: 1,
        tags: 50,
        poll: "20ms",
        http,
    });
    let api: SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    let mut seen = Seen::default();
    let mut sub = Subscriber::start(broker.port, &format!("{PREFIX}/cnc-1/+")).await;
    let gw = GatewayProcess::start(&cfg);
    let first = sub
        .expect(Duration::from_secs(15), "a first sample", |m| {
            !m.topic.ends_with("/_status")
        })
        .await;
    seen.record(vec![first]);

    link.cut();
    gw.expect_event("mqtt_unreachable", Duration::from_secs(10));
    let limit = 1 << 20;
    let mut largest = 0;
    let outage_end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < outage_end {
        largest = largest.max(dir_bytes(&spool.join("mqtt")));
        seen.record(sub.collect_for(Duration::from_millis(50)).await);
    }
    assert!(largest <= limit, "the spool took {largest} bytes");
    assert!(
        largest > limit / 2,
        "the spool never filled: {largest} bytes"
    );
    link.restore();
    let restored = now_ms();

    // The spool goes out oldest first: a sample read 2 s after the link is back means the
    // backlog is through. Then the device answers with exceptions, so that after one bad
    // sample per tag nothing more is read, and the counts can settle.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut caught_up = false;
    while !caught_up {
        assert!(Instant::now() < deadline, "no catching up\n{}", gw.log());
        let msgs = sub.collect_for(Duration::from_millis(500)).await;
        caught_up = msgs.iter().any(|m| {
            !m.topic.ends_with("/_status")
                && m.json()["timestamp_ms"].as_i64().unwrap() > restored + 2000
        });
        seen.record(msgs);
    }
    let metrics = || get(api, "/metrics", None).body;
    let settled = |body: &str| metric(body, "shopfloor_sink_backlog{sink=\"mqtt\"}") == 0;
    dev.set_behaviour(Behaviour::Exception(ExceptionCode::IllegalDataAddress));
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let a = metrics();
        seen.record(sub.collect_for(Duration::from_millis(500)).await);
        let b = metrics();
        let read = |s: &str| metric(s, "shopfloor_samples_total{machine=\"cnc-1\"}");
        if read(&a) == read(&b) && settled(&b) {
            break b;
        }
        assert!(
            Instant::now() < deadline,
            "never settled\n{b}\n{}",
            gw.log()
        );
    };
    seen.record(sub.collect_for(Duration::from_millis(500)).await);

    let read = metric(&body, "shopfloor_samples_total{machine=\"cnc-1\"}");
    let sent = metric(&body, "shopfloor_sink_sent_total{sink=\"mqtt\"}");
    let dropped = metric(&body, "shopfloor_sink_dropped_total{sink=\"mqtt\"}");
    let distinct: u64 = seen.seqs.values().map(|s| s.len() as u64).sum();
    let last: u64 = seen.seqs.values().map(|s| s.last().unwrap().0).sum();
    let counts = format!(
        "read {read}, delivered {sent}, dropped {dropped}; the subscriber saw {distinct} \
         of {last} seqs"
    );
    assert_eq!(metric(&body, "shopfloor_samples_dropped_total"), 0);
    assert!(dropped > 1000, "only {dropped} dropped");
    assert_eq!(dropped, read - sent, "{counts}");
    // The subscriber saw exactly what the gateway says it delivered, and every seq it did not
    // see is one the gateway counted as dropped.
    assert_eq!(seen.seqs.len(), 50);
    assert_eq!(
        last, read,
        "the last seqs add up to what was read: {counts}"
    );
    assert_eq!(distinct, sent, "what the subscriber saw: {counts}");
    assert_eq!(last - distinct, dropped, "the seqs missing: {counts}");
}

/// A broker link that stops reading for 20 s (a stalled write, then connections that are
/// accepted and never answered), with the spool on: the sink keeps taking its input while its
/// writes hang, so nothing is dropped on the way, and afterwards every `seq` arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_link_stalled_for_20_s_drops_nothing_with_the_spool() {
    let broker = Mosquitto::start();
    let link = Link::start(format!("127.0.0.1:{}", broker.port).parse().unwrap()).await;
    let dev = device(100).await;
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    // Five machines of 100 tags every 100 ms: 5000 messages and 50 batches a second, enough to
    // fill the socket buffers so that a write hangs; a sink that stopped taking its input for
    // those 10 s would overflow its channel of 256 batches.
    let mut cfg = config(&Setup {
        broker: link.addr,
        device: dev.addr,
        spool: &dir.path().join("spool"),
        spool_max_mb: 256,
        tags: 100,
        poll: "100ms",
        http,
    });
    let machine = cfg[cfg.find("[[machine]]").unwrap()..].to_owned();
    for i in 2..=5 {
        cfg.push_str(&machine.replace("id = \"cnc-1\"", &format!("id = \"cnc-{i}\"")));
    }
    let mut seen = Seen::default();
    let mut sub = Subscriber::start(broker.port, &format!("{PREFIX}/+/+")).await;
    let gw = GatewayProcess::start(&cfg);
    let metrics = |name: &str| {
        let addr: SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
        metric(&get(addr, "/metrics", None).body, name)
    };
    let sent = "shopfloor_sink_sent_total{sink=\"mqtt\"}";
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.messages < 1000 {
        assert!(Instant::now() < deadline, "no messages\n{}", gw.log());
        seen.record(sub.collect_for(Duration::from_millis(100)).await);
    }
    link.stall();
    // The stall is the scenario: 20 s without a byte read from the gateway.
    let stall_end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < stall_end {
        seen.record(sub.collect_for(Duration::from_millis(200)).await);
    }
    link.restore();
    let stalled_at = seen.messages;
    // Caught up: everything read has been delivered and the backlog is empty.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let read: u64 = (1..=5)
            .map(|i| metrics(&format!("shopfloor_samples_total{{machine=\"cnc-{i}\"}}")))
            .sum();
        // Sent is read a moment after read: caught up, it has passed that figure by then.
        seen.record(sub.collect_for(Duration::from_millis(200)).await);
        let backlog = metrics("shopfloor_sink_backlog{sink=\"mqtt\"}");
        if seen.messages > stalled_at && backlog < 5000 && metrics(sent) >= read {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not caught up: read {read}, sent {}, backlog {backlog}\n{}",
            metrics(sent),
            gw.log()
        );
    }
    assert_eq!(
        metrics("shopfloor_sink_dropped_total{sink=\"mqtt\"}"),
        0,
        "{}",
        gw.log()
    );
    // Let the last acknowledged messages reach the subscriber, then check every seq.
    seen.record(sub.collect_for(Duration::from_secs(1)).await);
    assert_eq!(seen.seqs.len(), 500, "5 machines of 100 tags");
    for (topic, seqs) in &seen.seqs {
        let distinct: BTreeSet<u64> = seqs.iter().map(|(s, _)| *s).collect();
        let last = *distinct.last().unwrap();
        assert_eq!(distinct.len() as u64, last, "{topic}: a gap in seq");
        assert_eq!(*distinct.first().unwrap(), 1, "{topic}");
    }
}
