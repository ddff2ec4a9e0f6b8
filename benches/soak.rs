//! `cargo bench --bench soak`: an hour at twice the nominal load with a fault every 5 minutes.
//!
//! Load: 20 simulated Modbus TCP devices × 100 registers every 100 ms = 20,000 samples/s, twice
//! the nominal job (10 devices × 100 registers every 100 ms, what Node-RED is measured doing).
//! The release gateway publishes every sample (layout `tag`, QoS 1, disk spool) to a real
//! mosquitto and writes it to a real VictoriaMetrics (`[influx]`). A subscriber in this process
//! checks every tag's `seq`.
//!
//! Faults, in turn, one every `SOAK_FAULT_SECS` (default 300): the link to the broker cut for
//! 30 s; the store stopped for 30 s; two devices unreachable for 20 s (a reboot); two devices
//! answering with exceptions for 20 s. Devices and the broker link run through TCP links in
//! this process that can be cut, so the subscriber stays on the broker throughout.
//!
//! At the end the devices answer only exceptions, the gateway drains, and the bench reports:
//! RSS after warm-up (the first three fault periods, so every fault has happened once) against
//! the largest RSS after it (floor: less than 5 % growth), and the accounting: samples read,
//! delivered and dropped per sink, what the subscriber saw (gaps, duplicates) and what the store
//! holds; "unexplained" is whatever these do not account for (floor: zero).
//!
//! `SOAK_MINUTES` (default 60) shortens it for a trial.

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use shopfloor_benches::{asked_to_run, device_runtime, rss_bytes, u16_devices};
use shopfloor_tests::device::Behaviour;
use shopfloor_tests::free_port;
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::http::get;
use shopfloor_tests::link::Link;
use shopfloor_tests::mosquitto::Mosquitto;
use shopfloor_tests::victoria::Victoria;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_modbus::ExceptionCode;

const DEVICES: usize = 20;
const TAGS: usize = 100;
const PREFIX: &str = "soak";

fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

/// Every tag's seqs seen, as a bitset, and what that adds up to.
#[derive(Default)]
struct Tally {
    seen: HashMap<String, Vec<u64>>,
    duplicates: u64,
    good: u64,
}

impl Tally {
    fn record(&mut self, topic: &str, payload: &[u8]) {
        let Ok(j) = serde_json::from_slice::<serde_json::Value>(payload) else {
            return;
        };
        let Some(seq) = j["seq"].as_u64() else { return };
        let bits = self.seen.entry(topic.to_owned()).or_default();
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        if bits[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        bits[word] |= 1 << bit;
        if j["quality"] != "bad" {
            self.good += 1;
        }
    }

    /// (distinct seqs seen, sum over tags of the highest seq).
    fn totals(&self) -> (u64, u64) {
        let mut distinct = 0;
        let mut highest = 0;
        for bits in self.seen.values() {
            distinct += bits.iter().map(|w| u64::from(w.count_ones())).sum::<u64>();
            if let Some((i, w)) = bits.iter().enumerate().rev().find(|(_, w)| **w != 0) {
                highest += i as u64 * 64 + 63 - u64::from(w.leading_zeros());
            }
        }
        (distinct, highest)
    }
}

async fn subscribe(port: u16, tally: Arc<Mutex<Tally>>) {
    let mut options = MqttOptions::new("soak-subscriber", "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(false)
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let _ = client
        .subscribe(format!("{PREFIX}/#"), QoS::AtLeastOnce)
        .await;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if p.topic.contains("/_") {
                    continue;
                }
                if let Ok(mut t) = tally.lock() {
                    t.record(&p.topic, &p.payload);
                }
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn config(
    broker: SocketAddr,
    store: &Victoria,
    devices: &[Link],
    spool: &str,
    http: u16,
) -> String {
    let mut c = format!(
        "[gateway]\nname = \"soak\"\nhttp = \"127.0.0.1:{http}\"\n\
         [buffer]\nspool_dir = \"{spool}\"\nspool_max_mb = 2048\n\
         [mqtt]\nurl = \"mqtt://{broker}\"\ntopic_prefix = \"{PREFIX}\"\nlayout = \"tag\"\nqos = 1\n\
         [influx]\nurl = \"{}\"\norg = \"iqblvd\"\nbucket = \"soak\"\n",
        store.url()
    );
    for (i, d) in devices.iter().enumerate() {
        c.push_str(&format!(
            "\n[[machine]]\nid = \"m{i:02}\"\nkind = \"soak\"\nprotocol = \"modbus-tcp\"\n\
             address = \"{}\"\npoll_interval = \"100ms\"\ntimeout = \"1s\"\n",
            d.addr
        ));
        for t in 0..TAGS {
            c.push_str(&format!(
                "  [[machine.tag]]\n  name = \"t{t:03}\"\n  area = \"holding\"\n  address = {t}\n  type = \"u16\"\n"
            ));
        }
    }
    c
}

/// Sums every line of a Prometheus text body that starts with `prefix`.
fn metric(body: &str, prefix: &str) -> u64 {
    body.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn main() {
    if !asked_to_run() {
        return;
    }
    let total = env_secs("SOAK_MINUTES", 60) * 60;
    let fault_every = env_secs("SOAK_FAULT_SECS", 300);
    let warm_up = fault_every * 3;
    let rt = device_runtime();
    let devices = u16_devices(&rt, DEVICES, TAGS);
    let device_links: Vec<Link> = devices
        .iter()
        .map(|d| rt.block_on(Link::start(d.addr)))
        .collect();
    // No limit on what the broker queues for the subscriber: a replayed backlog must reach it.
    let broker = Mosquitto::start_with("max_queued_messages 0\n");
    let broker_link = rt.block_on(Link::start(
        format!("127.0.0.1:{}", broker.port)
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
    ));
    let mut store = Victoria::start_deduplicating();
    let tally = Arc::new(Mutex::new(Tally::default()));
    rt.spawn(subscribe(broker.port, Arc::clone(&tally)));
    let spool = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let http = free_port();
    let api: SocketAddr = format!("127.0.0.1:{http}")
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let cfg = config(
        broker_link.addr,
        &store,
        &device_links,
        &spool.path().display().to_string(),
        http,
    );
    let gw = GatewayProcess::start_with_env(&cfg, &[("RUST_LOG", "warn")]);
    let pid = gw.pid().unwrap_or_else(|| panic!("gateway gone"));
    println!(
        "soak: {DEVICES} devices × {TAGS} tags every 100 ms = 20,000 samples/s (twice nominal), \
         layout tag QoS 1 + influx, spool on; {} min, a fault every {} s",
        total.as_secs() / 60,
        fault_every.as_secs()
    );

    let started = Instant::now();
    let mut next_fault = fault_every;
    let mut fault_no = 0usize;
    // When the current fault ends; the store is the one thing not healed by restoring links.
    let mut heal_at: Option<Instant> = None;
    let mut store_down = false;
    let mut rss_at_warm_up = None;
    let mut rss_max_after = 0u64;
    let mut rss_last = 0u64;
    let mut next_report = Duration::ZERO;
    while started.elapsed() < total {
        std::thread::sleep(Duration::from_secs(1));
        let t = started.elapsed();
        if heal_at.is_some_and(|at| Instant::now() >= at) {
            heal_at = None;
            if store_down {
                store.restart();
                store_down = false;
            }
        }
        if t >= next_fault && heal_at.is_none() && t + Duration::from_secs(60) < total {
            next_fault += fault_every;
            let pair = [fault_no * 2 % DEVICES, (fault_no * 2 + 1) % DEVICES];
            let what: &str;
            let lasts = match fault_no % 4 {
                0 => {
                    what = "link to the broker cut for 30 s";
                    broker_link.cut();
                    30
                }
                1 => {
                    what = "store stopped for 30 s";
                    store.stop();
                    store_down = true;
                    30
                }
                2 => {
                    what = "two devices unreachable for 20 s";
                    for i in pair {
                        device_links[i].cut();
                    }
                    20
                }
                _ => {
                    what = "two devices answering exceptions for 20 s";
                    for i in pair {
                        devices[i].set_behaviour(Behaviour::Exception(
                            ExceptionCode::ServerDeviceFailure,
                        ));
                    }
                    20
                }
            };
            heal_at = Some(Instant::now() + Duration::from_secs(lasts));
            println!("  {:>5} s  fault {}: {what}", t.as_secs(), fault_no + 1);
            fault_no += 1;
        }
        if heal_at.is_none() {
            broker_link.restore();
            for (l, d) in device_links.iter().zip(&devices) {
                l.restore();
                d.set_behaviour(Behaviour::Healthy);
            }
        }
        let rss = rss_bytes(pid);
        assert!(rss > 0, "the gateway is gone:\n{}", gw.log());
        rss_last = rss;
        if t >= warm_up {
            match rss_at_warm_up {
                None => rss_at_warm_up = Some(rss),
                Some(_) => rss_max_after = rss_max_after.max(rss),
            }
        }
        if t >= next_report {
            next_report += Duration::from_secs(60);
            let body = get(api, "/metrics", None).body;
            println!(
                "  {:>5} s  RSS {:6.1} MiB  read {:>10}  mqtt sent {:>10} backlog {:>7}  influx sent {:>10} backlog {:>7}",
                t.as_secs(),
                rss as f64 / 1048576.0,
                metric(&body, "shopfloor_samples_total{"),
                metric(&body, "shopfloor_sink_sent_total{sink=\"mqtt\"}"),
                metric(&body, "shopfloor_sink_backlog{sink=\"mqtt\"}"),
                metric(&body, "shopfloor_sink_sent_total{sink=\"influx\"}"),
                metric(&body, "shopfloor_sink_backlog{sink=\"influx\"}"),
            );
        }
    }
    if store_down {
        store.restart();
    }
    broker_link.restore();
    for l in &device_links {
        l.restore();
    }

    // Stop reading (one bad sample per tag, then nothing), and let every sink drain.
    for d in &devices {
        d.set_behaviour(Behaviour::Exception(ExceptionCode::IllegalDataAddress));
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    let body = loop {
        let a = get(api, "/metrics", None).body;
        std::thread::sleep(Duration::from_secs(2));
        let b = get(api, "/metrics", None).body;
        let read = |s: &str| metric(s, "shopfloor_samples_total{");
        let backlog = metric(&b, "shopfloor_sink_backlog{");
        if read(&a) == read(&b) && backlog == 0 {
            break b;
        }
        assert!(Instant::now() < deadline, "never drained\n{b}");
    };
    // What is delivered has reached the subscriber once its counts stop moving.
    let mut last = (0, 0);
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let now = tally.lock().map(|t| t.totals()).unwrap_or_default();
        if now == last {
            break;
        }
        last = now;
    }
    let read = metric(&body, "shopfloor_samples_total{");
    let ring_dropped = metric(&body, "shopfloor_samples_dropped_total");
    let mqtt_sent = metric(&body, "shopfloor_sink_sent_total{sink=\"mqtt\"}");
    let mqtt_dropped = metric(&body, "shopfloor_sink_dropped_total{sink=\"mqtt\"}");
    let influx_sent = metric(&body, "shopfloor_sink_sent_total{sink=\"influx\"}");
    let influx_dropped = metric(&body, "shopfloor_sink_dropped_total{sink=\"influx\"}");
    let (distinct, highest, duplicates, good) = match tally.lock() {
        Ok(t) => {
            let (d, h) = t.totals();
            (d, h, t.duplicates, t.good)
        }
        Err(_) => (0, 0, 0, 0),
    };
    let stored = store.query_value("sum(count_over_time({machine=~\"m.*\"}[30d]))") as u64;

    let base = rss_at_warm_up.unwrap_or(rss_last);
    let growth = (rss_max_after.max(rss_last) as f64 / base.max(1) as f64 - 1.0) * 100.0;
    println!("soak result after {} faults:", fault_no);
    println!(
        "  RSS: {:.1} MiB after warm-up ({} s), at most {:.1} MiB after it, {:.1} MiB at the end: {growth:+.1} % (floor: < 5 %)",
        base as f64 / 1048576.0,
        warm_up.as_secs(),
        rss_max_after as f64 / 1048576.0,
        rss_last as f64 / 1048576.0
    );
    println!("  read {read} samples; dropped in the ring {ring_dropped}");
    println!(
        "  mqtt: delivered {mqtt_sent}, dropped {mqtt_dropped}; the subscriber saw {distinct} distinct \
         (+{duplicates} duplicates), {} missing seqs",
        highest.saturating_sub(distinct)
    );
    println!(
        "  influx: delivered {influx_sent}, dropped {influx_dropped}; the store holds {stored} values, \
         the subscriber saw {good} samples that are not bad"
    );
    let missing = highest.saturating_sub(distinct);
    let unexplained = read.abs_diff(mqtt_sent + mqtt_dropped)
        + missing.abs_diff(mqtt_dropped)
        + distinct.abs_diff(mqtt_sent)
        + highest.abs_diff(read)
        + read.abs_diff(influx_sent + influx_dropped)
        + stored.abs_diff(good);
    println!("  unexplained loss: {unexplained} (floor: 0)");
    drop(gw);
}
