//! `cargo bench --bench end_to_end`: simulated Modbus devices → the release gateway → a real
//! mosquitto → a subscriber, measuring what is delivered.
//!
//! - 100 devices × 1,000 registers (100,000 tags), every value changing, polled every 500 ms,
//!   200,000 samples/s offered, once in layout `machine` and once as Sparkplug B (counted by
//!   decoding each DDATA): samples/s delivered, gateway CPU per sample, gateway RSS per tag,
//!   bytes on the wire per sample, and the latency from the reading (the payload's timestamp)
//!   to delivery at the subscriber.
//! - `tag` layout, QoS 1: 10 devices × 100 registers every 100 ms, done by the gateway and then
//!   by Node-RED 4 with node-red-contrib-modbus (`benches/node_red.rs`, installed from npm on
//!   first use) on the same broker: distinct samples delivered (by topic and `seq`, duplicates
//!   apart) and CPU per sample of each.
//!
//! - reloads (`benches/reload.rs`): 100 devices × 100 tags every 500 ms and a SIGHUP every
//!   10 s that adds a machine and removes the one added before: what the untouched machines
//!   notice (missed polls, `seq` breaks, reconnects, the longest gap) and the time to the first
//!   sample of the machine added, applied in place and, in the same run, by a restart of the
//!   gateway.
//!
//! Devices and subscriber run in this process; broker and gateway are their own processes;
//! everything shares the machine's two cores.

use prost::Message;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use shopfloor_benches::node_red::NodeRed;
use shopfloor_benches::{
    asked_to_run, cpu_seconds, cpu_share, device_runtime, rss_bytes, u16_devices,
};
use shopfloor_contract::sparkplug::proto::Payload;
use shopfloor_core::Value;
use shopfloor_modbus::{Area, DataType, WordOrder};
use shopfloor_tests::device::Device;
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::mosquitto::Mosquitto;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MEASURE: Duration = Duration::from_secs(20);

/// What the subscriber saw.
#[derive(Default)]
struct Seen {
    /// Distinct samples: a message whose topic and `seq` came before counts as duplicates.
    samples: AtomicU64,
    /// Samples of messages that came again.
    duplicates: AtomicU64,
    /// Topic and payload bytes of the data messages counted.
    bytes: AtomicU64,
    latencies_ms: Mutex<Vec<i64>>,
    keys: Mutex<HashSet<(String, u64)>>,
}

/// How the subscriber counts what a message carries.
#[derive(Clone, Copy, PartialEq)]
enum Count {
    /// Layout `machine`: a value per colon of the JSON object.
    Machine,
    /// Layout `tag`: one sample per message.
    Tag,
    /// Sparkplug B DDATA, decoded: one sample per metric.
    Sparkplug,
}

fn now_ms() -> i64 {
    shopfloor_core::time::now_ms()
}

/// What one data message carries.
struct Carried {
    samples: u64,
    reading_ms: Option<i64>,
    /// Its `seq` (JSON layouts; Sparkplug's wraps at 256 and so cannot tell duplicates).
    seq: Option<u64>,
}

/// What a message carries, or `None` for one that carries no data.
fn count(how: Count, topic: &str, payload: &[u8]) -> Option<Carried> {
    if how == Count::Sparkplug {
        if !topic.contains("/DDATA/") {
            return None;
        }
        let p = Payload::decode(payload).ok()?;
        return Some(Carried {
            samples: p.metrics.len() as u64,
            reading_ms: p
                .metrics
                .first()
                .and_then(|m| m.timestamp)
                .map(|t| t as i64),
            seq: None,
        });
    }
    if topic.contains("/_") {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let samples = match how {
        // {"timestamp_ms":T,"seq":S,"values":{"t0000":1,…}}: the values that are not null.
        Count::Machine => json["values"]
            .as_object()
            .map_or(0, |v| v.values().filter(|x| !x.is_null()).count() as u64),
        _ => 1,
    };
    Some(Carried {
        samples,
        reading_ms: json["timestamp_ms"].as_i64(),
        seq: json["seq"].as_u64(),
    })
}

impl Seen {
    /// Counts what `carried` brings, once per topic and `seq`.
    fn take(&self, topic: &str, carried: &Carried, bytes: u64) {
        let again = carried.seq.is_some_and(|seq| {
            self.keys
                .lock()
                .is_ok_and(|mut k| !k.insert((topic.to_owned(), seq)))
        });
        if again {
            self.duplicates
                .fetch_add(carried.samples, Ordering::Relaxed);
            return;
        }
        self.samples.fetch_add(carried.samples, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(ts) = carried.reading_ms
            && let Ok(mut l) = self.latencies_ms.lock()
        {
            l.push(now_ms() - ts);
        }
    }
}

/// Counts samples, bytes and latencies of what arrives under `filter`.
async fn subscribe(port: u16, filter: &str, how: Count, seen: Arc<Seen>) {
    // A new client id each time: two subscribers of one broker must not take turns.
    static SUBSCRIBERS: AtomicU64 = AtomicU64::new(0);
    let n = SUBSCRIBERS.fetch_add(1, Ordering::Relaxed);
    let mut options = MqttOptions::new(format!("bench-sub-{port}-{n}"), "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(1 << 22, 1 << 22);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let _ = client.subscribe(filter, QoS::AtMostOnce).await;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let Some(carried) = count(how, &p.topic, &p.payload) else {
                    continue;
                };
                let bytes = (p.topic.len() + p.payload.len()) as u64;
                seen.take(&p.topic, &carried, bytes);
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Moves every register of `devices` by one every 250 ms, so that each 500 ms poll reads a
/// new value of every tag (report by exception then has all of them to send).
fn keep_changing(rt: &tokio::runtime::Runtime, devices: &[Device], registers: usize) {
    let memories: Vec<_> = devices.iter().map(|d| Arc::clone(&d.memory)).collect();
    rt.spawn(async move {
        for step in 0u64.. {
            for memory in &memories {
                let Ok(mut m) = memory.lock() else { return };
                for r in 0..registers {
                    let v = Value::U64((r as u64 + step) % 65536);
                    m.put(Area::Holding, r as u16, DataType::U16, WordOrder::ABCD, v);
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
}

/// The `[mqtt]` section of layout `layout` at `qos`.
fn mqtt(broker: &Mosquitto, layout: &str, qos: u8) -> String {
    format!(
        "[mqtt]\nurl = \"{}\"\ntopic_prefix = \"e2e\"\nlayout = \"{layout}\"\nqos = {qos}\n",
        broker.url()
    )
}

/// The `[sparkplug]` section: edge node `e2e` of group `bench`.
fn sparkplug(broker: &Mosquitto) -> String {
    format!(
        "[sparkplug]\nurl = \"{}\"\ngroup_id = \"bench\"\n",
        broker.url()
    )
}

/// A gateway publishing through `sink` what it reads of `devices`, `tags` u16 each.
fn config(sink: &str, devices: &[Device], tags: usize, poll: &str) -> String {
    let mut c = format!("[gateway]\nname = \"e2e\"\n{sink}");
    for (i, d) in devices.iter().enumerate() {
        c.push_str(&format!(
            "\n[[machine]]\nid = \"m{i:03}\"\nprotocol = \"modbus-tcp\"\naddress = \"{}\"\npoll_interval = \"{poll}\"\ntimeout = \"2s\"\n",
            d.addr
        ));
        for t in 0..tags {
            c.push_str(&format!(
                "  [[machine.tag]]\n  name = \"t{t:04}\"\n  area = \"holding\"\n  address = {t}\n  type = \"u16\"\n"
            ));
        }
    }
    c
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return -1;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    if !asked_to_run() {
        return;
    }
    let rt = device_runtime();
    // `cargo bench --bench end_to_end -- reload` runs the reload jobs alone, `-- json` the
    // 100,000-tag JSON job alone (with SHOPFLOOR_BIN, of another build: A/B of one change).
    if std::env::args().any(|a| a == "reload") {
        reloads(&rt);
        return;
    }
    if std::env::args().any(|a| a == "json") {
        hundred_thousand(&rt, Count::Machine).print("layout machine (JSON)");
        return;
    }

    println!(
        "end_to_end: 100 devices × 1,000 tags every 500 ms, every value changing = 200,000 samples/s offered"
    );
    let json = hundred_thousand(&rt, Count::Machine);
    json.print("layout machine (JSON)");
    let spb = hundred_thousand(&rt, Count::Sparkplug);
    spb.print("Sparkplug B DDATA, by alias");
    println!(
        "  Sparkplug B against layout machine: {:.2}× the bytes, {:.2}× the gateway CPU per sample",
        spb.bytes_per / json.bytes_per.max(1e-9),
        spb.cpu_per_us / json.cpu_per_us.max(1e-9)
    );

    reloads(&rt);

    // ---- tag layout, QoS 1, the Node-RED job: with mosquitto as installed, then with
    // TCP_NODELAY, where the broker sends every PUBACK on its own; each time the gateway and
    // then Node-RED doing the same job.
    println!(
        "end_to_end, layout tag, QoS 1: 10 devices × 100 tags every 100 ms = 10,000 samples/s offered"
    );
    for (name, broker) in [
        ("mosquitto defaults", Mosquitto::start()),
        ("mosquitto set_tcp_nodelay", Mosquitto::start_low_latency()),
    ] {
        println!("  {name}");
        let ours = tag_layout(&rt, &broker, Publisher::Gateway);
        ours.print("shopfloor");
        let Some(theirs) = tag_layout_opt(&rt, &broker, Publisher::NodeRed) else {
            continue;
        };
        theirs.print("Node-RED 4 + node-red-contrib-modbus");
        println!(
            "    shopfloor against Node-RED: {:.1}× less CPU per sample",
            theirs.cpu_per_us / ours.cpu_per_us.max(1e-9)
        );
    }
}

/// The reload jobs, applied in place and then by a restart of the gateway.
fn reloads(rt: &tokio::runtime::Runtime) {
    println!(
        "end_to_end, reloads: 100 devices × 100 tags every 500 ms, a machine added and one removed every 10 s"
    );
    shopfloor_benches::reload::job(rt, false).print("applied in place");
    shopfloor_benches::reload::job(rt, true).print("applied by a restart of the gateway");
}

/// Who does the tag-layout job.
#[derive(Clone, Copy)]
enum Publisher {
    Gateway,
    NodeRed,
}

/// A running publisher, stopped on drop.
enum Running {
    Gateway(GatewayProcess),
    NodeRed(NodeRed),
}

impl Running {
    fn pid(&self) -> Option<u32> {
        match self {
            Running::Gateway(g) => g.pid(),
            Running::NodeRed(n) => Some(n.pid()),
        }
    }
}

/// What one tag-layout run measured.
struct TagRun {
    rate: f64,
    duplicates: f64,
    cpu_per_us: f64,
}

impl TagRun {
    fn print(&self, who: &str) {
        println!(
            "    {who:<38} delivered {:>6.0} distinct samples/s ({:.0}/s again), CPU {:>6.2} µs per sample",
            self.rate, self.duplicates, self.cpu_per_us
        );
    }
}

fn tag_layout(rt: &tokio::runtime::Runtime, broker: &Mosquitto, who: Publisher) -> TagRun {
    tag_layout_opt(rt, broker, who).unwrap_or_else(|| panic!("the gateway did not start"))
}

/// The tag layout job through `broker`, done by `who`; `None` when `who` cannot run here.
fn tag_layout_opt(
    rt: &tokio::runtime::Runtime,
    broker: &Mosquitto,
    who: Publisher,
) -> Option<TagRun> {
    let devs = u16_devices(rt, 10, 100);
    let seen = Arc::new(Seen::default());
    let subscriber = rt.spawn(subscribe(
        broker.port,
        "e2e/#",
        Count::Tag,
        Arc::clone(&seen),
    ));
    let running = match who {
        Publisher::Gateway => Running::Gateway(GatewayProcess::start_with_env(
            &config(&mqtt(broker, "tag", 1), &devs, 100, "100ms"),
            &[("RUST_LOG", "warn")],
        )),
        Publisher::NodeRed => {
            let addrs: Vec<_> = devs.iter().map(|d| d.addr).collect();
            Running::NodeRed(NodeRed::start(&addrs, broker.port)?)
        }
    };
    let pid = running.pid()?;
    // Node-RED takes a few seconds to load its palette and connect.
    std::thread::sleep(Duration::from_secs(8));
    let (s0, d0, c0, t0) = (
        seen.samples.load(Ordering::Relaxed),
        seen.duplicates.load(Ordering::Relaxed),
        cpu_seconds(pid),
        Instant::now(),
    );
    std::thread::sleep(MEASURE);
    let secs = t0.elapsed().as_secs_f64();
    let rate = (seen.samples.load(Ordering::Relaxed) - s0) as f64 / secs;
    let duplicates = (seen.duplicates.load(Ordering::Relaxed) - d0) as f64 / secs;
    let cpu = (cpu_seconds(pid) - c0) / secs;
    drop(running);
    subscriber.abort();
    Some(TagRun {
        rate,
        duplicates,
        cpu_per_us: cpu * 1e6 / rate.max(1.0),
    })
}

/// What one run of the 100,000-tag job measured.
struct Measured {
    rate: f64,
    cpu_share: f64,
    cpu_per_us: f64,
    rss: u64,
    bytes_per: f64,
    latencies_ms: Vec<i64>,
    /// Samples per second that came again (JSON only: Sparkplug's seq cannot tell).
    duplicates: Option<f64>,
}

impl Measured {
    fn print(&self, name: &str) {
        println!("  {name}");
        // Sparkplug's seq wraps at 256 and cannot tell a message that came again.
        let (what, again) = match self.duplicates {
            Some(d) => ("distinct samples/s", format!(", {d:.0}/s again")),
            None => ("metrics/s decoded", String::new()),
        };
        println!(
            "    delivered:        {:>9.0} {what}{again} (floor: at least 200,000)",
            self.rate
        );
        println!(
            "    gateway CPU:      {:>9.2} µs per sample ({:.1} % of a core; floor: at most 2 µs, Sparkplug 1 µs)",
            self.cpu_per_us,
            self.cpu_share * 100.0
        );
        println!(
            "    gateway RSS:      {:>9.0} B per tag ({:.1} MiB for 100,000 tags; floor: at most 500 B)",
            self.rss as f64 / 100_000.0,
            self.rss as f64 / 1048576.0
        );
        println!(
            "    on the wire:      {:>9.1} B per sample (topic and payload)",
            self.bytes_per
        );
        let lat = &self.latencies_ms;
        println!(
            "    latency reading → subscriber: p50 {} ms, p99 {} ms, max {} ms over {} messages",
            percentile(lat, 0.5),
            percentile(lat, 0.99),
            lat.last().copied().unwrap_or(-1),
            lat.len()
        );
    }
}

/// 100 devices × 1,000 changing u16 tags every 500 ms through a release gateway publishing as
/// `how` says, to a broker set up for latency (as it is measured here).
fn hundred_thousand(rt: &tokio::runtime::Runtime, how: Count) -> Measured {
    let broker = Mosquitto::start_low_latency();
    let devs = u16_devices(rt, 100, 1000);
    keep_changing(rt, &devs, 1000);
    let (sink, filter) = match how {
        Count::Sparkplug => (sparkplug(&broker), "spBv1.0/bench/#"),
        _ => (mqtt(&broker, "machine", 1), "e2e/#"),
    };
    let seen = Arc::new(Seen::default());
    rt.spawn(subscribe(broker.port, filter, how, Arc::clone(&seen)));
    let gw = GatewayProcess::start_with_env(
        &config(&sink, &devs, 1000, "500ms"),
        &[("RUST_LOG", "warn")],
    );
    let pid = gw.pid().unwrap_or_else(|| panic!("gateway gone"));
    std::thread::sleep(Duration::from_secs(8));
    if let Ok(mut l) = seen.latencies_ms.lock() {
        l.clear();
    }
    let (s0, b0, d0, t0) = (
        seen.samples.load(Ordering::Relaxed),
        seen.bytes.load(Ordering::Relaxed),
        seen.duplicates.load(Ordering::Relaxed),
        Instant::now(),
    );
    let cpu = cpu_share(pid, MEASURE);
    let secs = t0.elapsed().as_secs_f64();
    let samples = (seen.samples.load(Ordering::Relaxed) - s0) as f64;
    let duplicates = (seen.duplicates.load(Ordering::Relaxed) - d0) as f64 / secs;
    let bytes = (seen.bytes.load(Ordering::Relaxed) - b0) as f64;
    let rate = samples / secs;
    let mut latencies_ms = seen
        .latencies_ms
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    latencies_ms.sort_unstable();
    Measured {
        rate,
        cpu_share: cpu,
        cpu_per_us: cpu * 1e6 / rate.max(1.0),
        rss: rss_bytes(pid),
        bytes_per: bytes / samples.max(1.0),
        latencies_ms,
        duplicates: (how != Count::Sparkplug).then_some(duplicates),
    }
}
