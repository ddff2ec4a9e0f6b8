//! The reload job of `cargo bench --bench end_to_end`: 100 resident devices × 100 tags every
//! 500 ms through the gateway to mosquitto (layout `machine`), while every 10 s a SIGHUP brings
//! a file in which a guest machine is added and the guest before it removed. Measured on the
//! residents, which no reload touches: polls missed, `seq` breaks, reconnects (their devices
//! count connections) and the longest gap between two of their readings; and the time from
//! SIGHUP to the first sample of the guest added.
//!
//! The same job runs twice in one run: once as the reload applies it (only the guests' drivers
//! start and stop), and once with a changed `[kpi]` section in every file, which a reload
//! applies by restarting the whole gateway inside the process: what every machine goes through
//! when a gateway restarts its inputs on a new file.

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use shopfloor_tests::device::Device;
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::mosquitto::Mosquitto;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Resident machines; each has [`TAGS`] tags.
const RESIDENTS: usize = 100;
const TAGS: usize = 100;
const POLL_MS: i64 = 500;
/// Reloads per job, one every [`EVERY`].
const RELOADS: usize = 6;
const EVERY: Duration = Duration::from_secs(10);

/// What one job measured.
#[derive(Debug)]
pub struct ReloadRun {
    /// Polls of residents that never arrived (a gap of n intervals is n - 1 polls).
    pub polls_missed: u64,
    /// Messages of residents whose `seq` did not follow the one before (lost or restarted).
    pub seq_breaks: u64,
    /// New connections of resident devices after the first.
    pub reconnects: usize,
    /// Longest time between two readings of one resident, ms.
    pub longest_gap_ms: i64,
    /// From each SIGHUP to the first sample of the guest it added, ms.
    pub to_first_ms: Vec<u128>,
}

impl ReloadRun {
    /// Prints the figures under `name`.
    pub fn print(&self, name: &str) {
        let mut first = self.to_first_ms.clone();
        first.sort_unstable();
        println!("  {name}");
        println!(
            "    residents: {} polls missed ({} samples), {} seq breaks, {} reconnects, longest gap {} ms (poll interval {POLL_MS} ms)",
            self.polls_missed,
            self.polls_missed * TAGS as u64,
            self.seq_breaks,
            self.reconnects,
            self.longest_gap_ms
        );
        println!(
            "    SIGHUP → first sample of the added machine: median {} ms, max {} ms over {} reloads",
            first.get(first.len() / 2).copied().unwrap_or(0),
            first.last().copied().unwrap_or(0),
            first.len()
        );
    }
}

/// When a topic's first message came, and the `(seq, timestamp_ms)` of each in order.
type Topic = (Instant, Vec<(u64, i64)>);

/// Every topic heard.
#[derive(Default)]
struct Heard {
    by_topic: Mutex<HashMap<String, Topic>>,
}

async fn listen(port: u16, heard: Arc<Heard>) {
    let mut options = MqttOptions::new(format!("bench-reload-{port}"), "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(1 << 22, 1 << 22);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let _ = client.subscribe("reload/+", QoS::AtMostOnce).await;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let Ok(json) = serde_json::from_slice::<serde_json::Value>(&p.payload) else {
                    continue;
                };
                let (Some(seq), Some(ts)) = (json["seq"].as_u64(), json["timestamp_ms"].as_i64())
                else {
                    continue;
                };
                if let Ok(mut h) = heard.by_topic.lock() {
                    h.entry(p.topic.clone())
                        .or_insert_with(|| (Instant::now(), Vec::new()))
                        .1
                        .push((seq, ts));
                }
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn machine(id: &str, device: &Device) -> String {
    let mut c = format!(
        "\n[[machine]]\nid = \"{id}\"\nprotocol = \"modbus-tcp\"\naddress = \"{}\"\npoll_interval = \"{POLL_MS}ms\"\ntimeout = \"2s\"\n",
        device.addr
    );
    for t in 0..TAGS {
        c.push_str(&format!(
            "  [[machine.tag]]\n  name = \"t{t:03}\"\n  area = \"holding\"\n  address = {t}\n  type = \"u16\"\n"
        ));
    }
    c
}

/// The file of reload `k`: the residents and guest `k`; with `restart`, a `[kpi]` section of
/// its own, which only a restart of the gateway applies.
fn file(broker: &Mosquitto, residents: &[String], guest: &str, k: usize, restart: bool) -> String {
    let kpi = if restart {
        format!("\n[kpi]\ninterval = \"{}s\"\n", 10 + k)
    } else {
        String::new()
    };
    format!(
        "[gateway]\nname = \"reload\"\n\n[mqtt]\nurl = \"{}\"\ntopic_prefix = \"reload\"\nlayout = \"machine\"\n{kpi}{}{guest}",
        broker.url(),
        residents.concat()
    )
}

/// Waits up to `within` for a first message on `topic`; true when it came.
fn wait_first(heard: &Heard, topic: &str, within: Duration) -> Option<Instant> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(at) = heard
            .by_topic
            .lock()
            .ok()
            .and_then(|h| h.get(topic).map(|(at, _)| *at))
        {
            return Some(at);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// One job: residents and guests of `devices`, reloads applied in place or, with `restart`,
/// by a restart of the gateway.
pub fn job(rt: &tokio::runtime::Runtime, restart: bool) -> ReloadRun {
    let broker = Mosquitto::start_low_latency();
    let residents = crate::u16_devices(rt, RESIDENTS, TAGS);
    let guests = crate::u16_devices(rt, RELOADS + 1, TAGS);
    let heard = Arc::new(Heard::default());
    rt.spawn(listen(broker.port, Arc::clone(&heard)));
    let resident_machines: Vec<String> = residents
        .iter()
        .enumerate()
        .map(|(i, d)| machine(&format!("r{i:03}"), d))
        .collect();
    let guest = |k: usize| machine(&format!("g{k}"), &guests[k]);
    let gw = GatewayProcess::start_with_env(
        &file(&broker, &resident_machines, &guest(0), 0, restart),
        &[("RUST_LOG", "warn")],
    );
    let last = format!("reload/r{:03}", RESIDENTS - 1);
    assert!(
        wait_first(&heard, &last, Duration::from_secs(60)).is_some(),
        "the residents did not start"
    );
    std::thread::sleep(Duration::from_secs(3));
    let connections: Vec<usize> = residents
        .iter()
        .map(|d| d.connections.load(Ordering::SeqCst))
        .collect();
    let start = Instant::now();
    let mut to_first_ms = Vec::new();
    for k in 1..=RELOADS {
        let due = start + EVERY * k as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        gw.rewrite(&file(&broker, &resident_machines, &guest(k), k, restart));
        let sent = Instant::now();
        gw.hangup();
        if let Some(at) = wait_first(&heard, &format!("reload/g{k}"), EVERY) {
            to_first_ms.push(at.saturating_duration_since(sent).as_millis());
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    drop(gw);
    let reconnects = residents
        .iter()
        .zip(&connections)
        .map(|(d, before)| d.connections.load(Ordering::SeqCst) - before)
        .sum();
    let (polls_missed, seq_breaks, longest_gap_ms) = residents_seen(&heard);
    ReloadRun {
        polls_missed,
        seq_breaks,
        reconnects,
        longest_gap_ms,
        to_first_ms,
    }
}

/// Missed polls, `seq` breaks and the longest gap over every resident's messages.
fn residents_seen(heard: &Heard) -> (u64, u64, i64) {
    let (mut missed, mut breaks, mut longest) = (0, 0, 0);
    let Ok(h) = heard.by_topic.lock() else {
        return (0, 0, 0);
    };
    for (topic, (_, messages)) in h.iter() {
        if !topic.starts_with("reload/r") {
            continue;
        }
        for w in messages.windows(2) {
            let ((s0, t0), (s1, t1)) = (w[0], w[1]);
            if s1 != s0 + 1 {
                breaks += 1;
            }
            let gap = t1 - t0;
            longest = longest.max(gap);
            let intervals = (gap as f64 / POLL_MS as f64).round() as u64;
            missed += intervals.saturating_sub(1);
        }
    }
    (missed, breaks, longest)
}
