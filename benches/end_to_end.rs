//! `cargo bench --bench end_to_end`: simulated Modbus devices → the release gateway → a real
//! mosquitto → a subscriber, measuring what is delivered.
//!
//! - `machine` layout: 100 devices × 1,000 registers (100,000 tags) every 500 ms, 200,000
//!   samples/s offered: samples/s delivered, gateway CPU per sample, gateway RSS per tag, and the
//!   latency from the reading (the payload's `timestamp_ms`) to delivery at the subscriber.
//! - `tag` layout, QoS 1: 10 devices × 100 registers every 100 ms (the job Node-RED with
//!   node-red-contrib-modbus is measured doing, at 46–55 µs of CPU per sample on this machine):
//!   gateway CPU per sample.
//!
//! Devices and subscriber run in this process; broker and gateway are their own processes;
//! everything shares the machine's two cores.

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use shopfloor_benches::{
    asked_to_run, cpu_seconds, cpu_share, device_runtime, rss_bytes, u16_devices,
};
use shopfloor_tests::device::Device;
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::mosquitto::Mosquitto;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MEASURE: Duration = Duration::from_secs(20);

/// What the subscriber saw.
#[derive(Default)]
struct Seen {
    samples: AtomicU64,
    latencies_ms: Mutex<Vec<i64>>,
}

fn now_ms() -> i64 {
    shopfloor_core::time::now_ms()
}

/// Counts samples (values in layout `machine`, messages in layout `tag`) and latencies.
async fn subscribe(port: u16, filter: &str, machine_layout: bool, seen: Arc<Seen>) {
    let mut options = MqttOptions::new(format!("bench-sub-{port}"), "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(1 << 22, 1 << 22);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let _ = client.subscribe(filter, QoS::AtMostOnce).await;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if p.topic.contains("/_") {
                    continue;
                }
                let text = String::from_utf8_lossy(&p.payload);
                let n = if machine_layout {
                    // {"timestamp_ms":T,"seq":S,"values":{"t0000":1,…}}: a colon per value.
                    text.matches(':').count().saturating_sub(3) as u64
                } else {
                    1
                };
                seen.samples.fetch_add(n, Ordering::Relaxed);
                if let Some(ts) = text
                    .strip_prefix("{\"timestamp_ms\":")
                    .and_then(|r| r.split(',').next())
                    .and_then(|t| t.parse::<i64>().ok())
                    && let Ok(mut l) = seen.latencies_ms.lock()
                {
                    l.push(now_ms() - ts);
                }
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn config(
    broker: &Mosquitto,
    layout: &str,
    qos: u8,
    devices: &[Device],
    tags: usize,
    poll: &str,
) -> String {
    let mut c = format!(
        "[gateway]\nname = \"e2e\"\n[mqtt]\nurl = \"{}\"\ntopic_prefix = \"e2e\"\nlayout = \"{layout}\"\nqos = {qos}\n",
        broker.url()
    );
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
    let quiet = [("RUST_LOG", "warn")];

    // ---- machine layout, 100,000 tags; a broker set up for latency, as it is measured here
    let broker = Mosquitto::start_low_latency();
    let devs = u16_devices(&rt, 100, 1000);
    let seen = Arc::new(Seen::default());
    rt.spawn(subscribe(broker.port, "e2e/#", true, Arc::clone(&seen)));
    let gw = GatewayProcess::start_with_env(
        &config(&broker, "machine", 1, &devs, 1000, "500ms"),
        &quiet,
    );
    let pid = gw.pid().unwrap_or_else(|| panic!("gateway gone"));
    std::thread::sleep(Duration::from_secs(8));
    if let Ok(mut l) = seen.latencies_ms.lock() {
        l.clear();
    }
    let (s0, t0) = (seen.samples.load(Ordering::Relaxed), Instant::now());
    let cpu = cpu_share(pid, MEASURE);
    let secs = t0.elapsed().as_secs_f64();
    let rate = (seen.samples.load(Ordering::Relaxed) - s0) as f64 / secs;
    let rss = rss_bytes(pid);
    let mut lat = seen
        .latencies_ms
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    lat.sort_unstable();
    println!(
        "end_to_end, layout machine: 100 devices × 1,000 tags every 500 ms = 200,000 samples/s offered"
    );
    println!("  delivered:        {rate:>9.0} samples/s   (floor: at least 200,000)");
    println!(
        "  gateway CPU:      {:>9.2} µs per sample ({:.1} % of a core; floor: at most 2 µs)",
        cpu * 1e6 / rate.max(1.0),
        cpu * 100.0
    );
    println!(
        "  gateway RSS:      {:>9.0} B per tag ({:.1} MiB for 100,000 tags; floor: at most 500 B)",
        rss as f64 / 100_000.0,
        rss as f64 / 1048576.0
    );
    println!(
        "  latency reading → subscriber: p50 {} ms, p99 {} ms, max {} ms over {} messages",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(-1),
        lat.len()
    );
    drop(gw);
    drop(devs);
    drop(broker);

    // ---- tag layout, QoS 1, the Node-RED job: with mosquitto as installed (as Node-RED was
    // measured), then with TCP_NODELAY, where the broker sends every PUBACK on its own.
    println!(
        "end_to_end, layout tag, QoS 1: 10 devices × 100 tags every 100 ms = 10,000 samples/s offered"
    );
    for (name, broker) in [
        ("mosquitto defaults", Mosquitto::start()),
        ("mosquitto set_tcp_nodelay", Mosquitto::start_low_latency()),
    ] {
        let (rate, per) = tag_layout(&rt, &broker);
        println!(
            "  {name:<26} delivered {rate:>6.0} samples/s, gateway CPU {per:>5.2} µs per sample; \
             Node-RED doing this job: 46–55 µs → {:.0}× less",
            46.0 / per.max(1e-9)
        );
    }
}

/// The tag layout job through `broker`: (samples/s delivered, gateway CPU µs per sample).
fn tag_layout(rt: &tokio::runtime::Runtime, broker: &Mosquitto) -> (f64, f64) {
    let devs = u16_devices(rt, 10, 100);
    let seen = Arc::new(Seen::default());
    rt.spawn(subscribe(broker.port, "e2e/#", false, Arc::clone(&seen)));
    let gw = GatewayProcess::start_with_env(
        &config(broker, "tag", 1, &devs, 100, "100ms"),
        &[("RUST_LOG", "warn")],
    );
    let pid = gw.pid().unwrap_or_else(|| panic!("gateway gone"));
    std::thread::sleep(Duration::from_secs(5));
    let (s0, c0, t0) = (
        seen.samples.load(Ordering::Relaxed),
        cpu_seconds(pid),
        Instant::now(),
    );
    std::thread::sleep(MEASURE);
    let secs = t0.elapsed().as_secs_f64();
    let rate = (seen.samples.load(Ordering::Relaxed) - s0) as f64 / secs;
    let cpu = (cpu_seconds(pid) - c0) / secs;
    (rate, cpu * 1e6 / rate.max(1.0))
}
