//! `cargo bench --bench report_by_exception`: what report by exception saves on the demo hall.
//!
//! The five machines of `config/demo-hall.toml` (simulated CNC, moulding and energy-meter models,
//! seeded) run 10 minutes of production, replayed faster than real time: each machine is read at
//! its configured interval of machine time, and every reading goes through the gateway's own
//! emitter, once with `publish = "every"` and once with the hall's `publish = "change"`,
//! heartbeats and deadbands (the emitter's clock follows machine time, so heartbeats fall due as
//! they would). What the emitter sends is encoded by the gateway's own MQTT and line-protocol
//! encoders: MQTT messages and bytes per second (whole PUBLISH packets, layout `tag`, QoS 1),
//! and points for the store. For every read it also checks the largest gap between the device's
//! value and the value a subscriber last received, against that tag's deadband.
//!
//! Floor (issue: report by exception): at least 80 % fewer MQTT messages than `every`, with
//! every error within its tag's deadband. benthos-umh documents 95–99 % less traffic for its
//! deadband downsampler; that figure is the project's claim, not measured here.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use shopfloor::config::{Config, MachineConfig, ProtocolConfig};
use shopfloor::demo::DEMO_HALL;
use shopfloor_contract::json as encode;
use shopfloor_contract::line;
use shopfloor_core::emit::{Publish, change};
use shopfloor_core::ring::{self, Consumer, WhenFull};
use shopfloor_core::status::{MachineStatus, StatusReporter};
use shopfloor_core::{Emitter, MachineId, Quality, Sample, Value};
use shopfloor_mqtt::wire;
use shopfloor_sim::SimKind;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

const PRODUCTION: Duration = Duration::from_secs(600);
const PREFIX: &str = "iqblvd/hardenberg/demo-hall";

/// Machine time in milliseconds, the emitters' clock in this replay.
static CLOCK: AtomicI64 = AtomicI64::new(1_795_000_000_000);

fn clock() -> i64 {
    CLOCK.load(Ordering::Relaxed)
}

struct NoBoard;

impl StatusReporter for NoBoard {
    fn report(&self, _: MachineId, _: MachineStatus) {}
}

/// What one policy sent over the whole run.
#[derive(Default)]
struct Tally {
    messages: u64,
    mqtt_bytes: u64,
    points: u64,
    store_bytes: u64,
    /// Messages per `machine/tag`.
    per_tag: std::collections::HashMap<String, u64>,
    /// Largest |device − last sent| ÷ deadband over the numeric tags with a deadband.
    worst_ratio: f64,
    /// Largest |device − last sent| over the tags without a deadband (must be 0).
    worst_exact: f64,
    /// Reads whose value differed from the last sent one in a tag that allows no difference.
    missed: u64,
}

/// One machine of the hall under one policy.
struct Replay {
    name: String,
    tags: Vec<String>,
    deadbands: Vec<f64>,
    /// Index of each configured tag in the model's values.
    model_index: Vec<usize>,
    model: Box<dyn shopfloor_sim::model::Model>,
    emitter: Emitter,
    consumer: Consumer,
    last_sent: Vec<Option<Value>>,
    interval: Duration,
}

fn kind_and_interval(m: &MachineConfig) -> (SimKind, Duration) {
    match &m.protocol {
        ProtocolConfig::Modbus(c) => (c.simulator.unwrap(), c.poll_interval),
        ProtocolConfig::Opcua(c) => (c.simulator.unwrap(), c.publishing_interval),
    }
}

impl Replay {
    fn new(index: usize, m: &MachineConfig, publish: Publish, seed: u64) -> Replay {
        let (kind, interval) = kind_and_interval(m);
        let names: Vec<&str> = shopfloor_sim::profile::profile(kind)
            .iter()
            .map(|t| t.name)
            .collect();
        let model_index = m
            .tags
            .iter()
            .map(|t| names.iter().position(|n| *n == t.name).unwrap())
            .collect();
        let (mut producers, consumer) = ring::channel(1 << 12, 1, WhenFull::DropNewest).unwrap();
        let id = MachineId(index as u16);
        let deadbands = match &publish {
            Publish::Change { deadbands, .. } => deadbands.clone(),
            Publish::Every => vec![0.0; m.tags.len()],
        };
        let emitter = Emitter::new(
            id,
            &m.id,
            m.tags.len(),
            producers.pop().unwrap(),
            Arc::new(NoBoard),
        )
        .with_publish(publish)
        .with_clock(clock);
        Replay {
            name: m.id.clone(),
            tags: m.tags.iter().map(|t| t.name.clone()).collect(),
            deadbands,
            model_index,
            model: kind.build(seed),
            emitter,
            consumer,
            last_sent: vec![None; m.tags.len()],
            interval,
        }
    }

    /// Steps the model by `dt` seconds, reads every tag once and tallies what was sent.
    fn poll(&mut self, dt: f64, t: &mut Tally, catalog: &shopfloor_core::Catalog) {
        self.model.step(dt);
        let values = self.model.values();
        let ts = self.emitter.now();
        for (tag, &i) in self.model_index.iter().enumerate() {
            self.emitter
                .reading(tag, ts, values[i].clone(), Quality::Good);
        }
        self.emitter.flush();
        let mut sent: Vec<Sample> = Vec::new();
        self.consumer.drain(&mut sent, usize::MAX);
        let readings: Vec<Sample> = sent.into_iter().filter(|s| !s.is_status()).collect();
        let mut packet = Vec::new();
        let mut payload = Vec::new();
        for s in &readings {
            let tag = s.tag.index();
            payload.clear();
            encode::tag_payload(&mut payload, s, b"");
            let topic = encode::tag_topic(PREFIX, &self.name, &self.tags[tag]);
            packet.clear();
            wire::publish(&mut packet, &topic, &payload, 1, false, 1);
            t.messages += 1;
            *t.per_tag
                .entry(format!("{}/{}", self.name, self.tags[tag]))
                .or_default() += 1;
            t.mqtt_bytes += packet.len() as u64;
            self.last_sent[tag] = Some(s.to_value());
        }
        let mut lines = String::new();
        t.points += line::encode(&mut lines, catalog, "machine", &readings) as u64;
        t.store_bytes += lines.len() as u64;
        for (tag, &i) in self.model_index.iter().enumerate() {
            let device = &values[i];
            let Some(last) = &self.last_sent[tag] else {
                continue;
            };
            let deadband = self.deadbands[tag];
            match (device.as_f64(), last.as_f64()) {
                (Some(d), Some(l)) if deadband > 0.0 => {
                    t.worst_ratio = t.worst_ratio.max((d - l).abs() / deadband);
                }
                (Some(d), Some(l)) => t.worst_exact = t.worst_exact.max((d - l).abs()),
                _ => {}
            }
            if deadband == 0.0 && change::changed(last, device, 0.0) {
                t.missed += 1;
            }
        }
    }
}

fn run(config: &Config, change: bool) -> Tally {
    let catalog = config.catalog().unwrap();
    let mut hall: Vec<Replay> = config
        .machines
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let publish = if change {
                m.publish.clone()
            } else {
                Publish::Every
            };
            Replay::new(i, m, publish, 7 + i as u64)
        })
        .collect();
    let start = clock();
    let end = start + PRODUCTION.as_millis() as i64;
    let mut next: Vec<i64> = vec![start; hall.len()];
    let mut tally = Tally::default();
    loop {
        let (i, &at) = next.iter().enumerate().min_by_key(|(_, t)| **t).unwrap();
        if at >= end {
            break;
        }
        CLOCK.store(at, Ordering::Relaxed);
        let r = &mut hall[i];
        let dt = r.interval.as_secs_f64();
        r.poll(dt, &mut tally, &catalog);
        next[i] = at + r.interval.as_millis() as i64;
    }
    CLOCK.store(end + 1_000_000, Ordering::Relaxed);
    tally
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs it once as well.
    let config = Config::parse(Path::new("demo-hall.toml"), DEMO_HALL).unwrap();
    let changing = config
        .machines
        .iter()
        .filter(|m| matches!(m.publish, Publish::Change { .. }))
        .count();
    let secs = PRODUCTION.as_secs_f64();
    let every = run(&config, false);
    let change = run(&config, true);
    println!(
        "report_by_exception: demo hall, {} machines ({changing} with publish = \"change\"), \
         {} s of production",
        config.machines.len(),
        PRODUCTION.as_secs()
    );
    println!(
        "{:<8} {:>12} {:>12} {:>12} {:>14}",
        "publish", "msgs/s", "bytes/s", "points", "store bytes/s"
    );
    for (name, t) in [("every", &every), ("change", &change)] {
        println!(
            "{name:<8} {:>12.1} {:>12.0} {:>12} {:>14.0}",
            t.messages as f64 / secs,
            t.mqtt_bytes as f64 / secs,
            t.points,
            t.store_bytes as f64 / secs
        );
    }
    let less = |a: u64, b: u64| 100.0 * (1.0 - b as f64 / a.max(1) as f64);
    println!(
        "change sends {:.1} % fewer MQTT messages, {:.1} % fewer MQTT bytes, {:.1} % fewer \
         points, {:.1} % fewer store bytes",
        less(every.messages, change.messages),
        less(every.mqtt_bytes, change.mqtt_bytes),
        less(every.points, change.points),
        less(every.store_bytes, change.store_bytes)
    );
    println!(
        "largest error at any read: {:.3} of the deadband (tags with one); {} (tags without one); \
         {} reads of an exact tag left unsent",
        change.worst_ratio, change.worst_exact, change.missed
    );
    let mut busiest: Vec<(&String, &u64)> = change.per_tag.iter().collect();
    busiest.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let top: Vec<String> = busiest
        .iter()
        .take(6)
        .map(|(tag, n)| format!("{tag} {:.0} %", 100.0 * **n as f64 / change.messages as f64))
        .collect();
    println!("busiest tags under change: {}", top.join(", "));
    let floor = less(every.messages, change.messages) >= 80.0
        && change.worst_ratio <= 1.0
        && change.missed == 0;
    println!(
        "floor (>= 80 % fewer messages, every error within its deadband): {}",
        if floor { "met" } else { "NOT met" }
    );
}
