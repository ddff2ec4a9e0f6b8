//! Devices that break while the gateway reads them: a connection reset, a half-open connection
//! (silent, no FIN or RST), a reboot (silent, then RST for the old connection) and answers at a
//! byte a second. Each is detected within twice the machine's timeout, each tag goes bad exactly
//! once and comes back with `seq` continuing, and the healthy machines beside them keep their
//! poll cadence.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value as Json;
use shopfloor_core::time::now_ms;
use shopfloor_tests::device::{Behaviour, Device, speed_and_temp, speed_and_temp_machine};
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::link::Link;
use shopfloor_tests::mosquitto::Mosquitto;
use shopfloor_tests::subscriber::{Msg, Subscriber};
use std::collections::BTreeMap;
use std::time::Duration;

const PREFIX: &str = "midrun";
const POLL_MS: i64 = 100;
const TIMEOUT_MS: i64 = 500;

fn machine(id: &str, address: &str) -> String {
    speed_and_temp_machine(id, address, POLL_MS as u64, TIMEOUT_MS as u64)
}

async fn device() -> Device {
    Device::start(speed_and_temp(1500), Behaviour::Healthy, 0).await
}

/// One message as the test keeps it: machine, tag (`_status` for the status) and payload.
struct Seen {
    machine: String,
    tag: String,
    json: Json,
}

fn seen(m: &Msg) -> Option<Seen> {
    let (machine, tag) = m.topic.strip_prefix("midrun/")?.split_once('/')?;
    if machine.starts_with('_') {
        return None;
    }
    Some(Seen {
        machine: machine.to_owned(),
        tag: tag.to_owned(),
        json: m.json(),
    })
}

/// Adds what arrives during `window` to `log`.
async fn gather(sub: &mut Subscriber, log: &mut Vec<Seen>, window: Duration) {
    log.extend(sub.collect_for(window).await.iter().filter_map(seen));
}

/// Collects messages into `log` until `done` holds for it; panics after `within`.
async fn collect_until(
    sub: &mut Subscriber,
    log: &mut Vec<Seen>,
    within: Duration,
    what: &str,
    done: impl Fn(&[Seen]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + within;
    while !done(log) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {what} within {within:?}"
        );
        gather(sub, log, Duration::from_millis(100)).await;
    }
}

/// The status states of `machine` reported after `since_ms`, with their times.
fn states_after(log: &[Seen], machine: &str, since_ms: i64) -> Vec<(String, i64)> {
    log.iter()
        .filter(|s| s.machine == machine && s.tag == "_status")
        .map(|s| {
            let state = s.json["state"].as_str().unwrap_or("").to_owned();
            (state, s.json["timestamp_ms"].as_i64().unwrap_or(0))
        })
        .filter(|(_, t)| *t >= since_ms)
        .collect()
}

fn back_online(log: &[Seen], machine: &str, since_ms: i64) -> bool {
    let states = states_after(log, machine, since_ms);
    states
        .iter()
        .position(|(s, _)| s == "offline")
        .is_some_and(|i| states[i..].iter().any(|(s, _)| s == "online"))
}

/// The 99th percentile of the gaps between consecutive timestamps in `[from, to)`.
fn p99_gap(stamps: &[i64], from: i64, to: i64) -> (i64, usize) {
    let inside: Vec<i64> = stamps
        .iter()
        .copied()
        .filter(|t| (from..to).contains(t))
        .collect();
    let mut gaps: Vec<i64> = inside.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_unstable();
    let at = (gaps.len() * 99).div_ceil(100).saturating_sub(1);
    (gaps.get(at).copied().unwrap_or(i64::MAX), gaps.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_mid_run_are_detected_within_twice_the_timeout_and_spare_the_healthy() {
    let broker = Mosquitto::start();
    let faulty = ["reset", "half-open", "reboot", "crawl"];
    let mut devices = Vec::new();
    let mut links = BTreeMap::new();
    let mut config = format!(
        "[gateway]\nname = \"gw\"\n[mqtt]\nurl = \"{}\"\ntopic_prefix = \"{PREFIX}\"\n",
        broker.url()
    );
    for id in faulty {
        let d = device().await;
        let link = Link::start(d.addr).await;
        config.push_str(&machine(id, &link.addr.to_string()));
        links.insert(id, link);
        devices.push(d);
    }
    let healthy = ["healthy-1", "healthy-2"];
    for id in healthy {
        let d = device().await;
        config.push_str(&machine(id, &d.addr.to_string()));
        devices.push(d);
    }
    let mut sub = Subscriber::start(broker.port, &format!("{PREFIX}/#")).await;
    let mut gw = GatewayProcess::start(&config);
    let mut log = Vec::new();

    let started = now_ms();
    collect_until(
        &mut sub,
        &mut log,
        Duration::from_secs(15),
        "all online",
        |log| {
            faulty.iter().chain(&healthy).all(|id| {
                states_after(log, id, started)
                    .iter()
                    .any(|(s, _)| s == "online")
            })
        },
    )
    .await;
    // Three seconds of healthy traffic: the cadence to compare with.
    gather(&mut sub, &mut log, Duration::from_secs(3)).await;

    let t0 = now_ms();
    links["reset"].reset();
    links["half-open"].half_open();
    links["reboot"].power_off();
    links["crawl"].crawl();
    // Reset and half-open recover by themselves: the device is there for a new connection.
    collect_until(
        &mut sub,
        &mut log,
        Duration::from_secs(15),
        "detection of every fault",
        |log| {
            faulty.iter().all(|id| {
                states_after(log, id, t0)
                    .iter()
                    .any(|(s, _)| s == "offline")
            }) && back_online(log, "reset", t0)
                && back_online(log, "half-open", t0)
        },
    )
    .await;
    // Keep the other two down for a while, then bring them back.
    let down_until = t0 + 4000;
    while now_ms() < down_until {
        gather(&mut sub, &mut log, Duration::from_millis(200)).await;
    }
    links["reboot"].power_on();
    links["crawl"].restore();
    collect_until(
        &mut sub,
        &mut log,
        Duration::from_secs(15),
        "every faulty machine back online",
        |log| faulty.iter().all(|id| back_online(log, id, t0)),
    )
    .await;
    let t_end = now_ms();
    gather(&mut sub, &mut log, Duration::from_millis(500)).await;
    assert!(gw.is_running(), "gateway died\n{}", gw.log());

    // Detection: the offline status carries the moment the gateway noticed.
    for id in faulty {
        let states = states_after(&log, id, t0);
        let (_, at) = states.iter().find(|(s, _)| s == "offline").unwrap();
        let took = at - t0;
        println!("{id}: offline {took} ms after the fault");
        assert!(
            took <= 2 * TIMEOUT_MS,
            "{id}: detected {took} ms after the fault, more than twice the {TIMEOUT_MS} ms timeout: {states:?}"
        );
    }

    // Every tag: seq from 1 without a gap; a faulty machine's tags bad exactly once, with no
    // good value between the fault's detection and its recovery.
    let mut samples: BTreeMap<(String, String), Vec<&Json>> = BTreeMap::new();
    for s in log.iter().filter(|s| s.tag != "_status") {
        samples
            .entry((s.machine.clone(), s.tag.clone()))
            .or_default()
            .push(&s.json);
    }
    assert_eq!(samples.len(), 12, "{:?}", samples.keys());
    for ((machine, tag), list) in &samples {
        let seqs: Vec<u64> = list.iter().map(|j| j["seq"].as_u64().unwrap()).collect();
        let want: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(
            seqs, want,
            "{machine}/{tag}: seq must run from 1 without gaps"
        );
        let bad: Vec<&&Json> = list.iter().filter(|j| j["quality"] == "bad").collect();
        if healthy.contains(&machine.as_str()) {
            assert!(bad.is_empty(), "{machine}/{tag}: {bad:?}");
            continue;
        }
        assert_eq!(
            bad.len(),
            1,
            "{machine}/{tag}: bad exactly once, got {bad:?}"
        );
        assert_eq!(bad[0]["value"], Json::Null);
        let went_bad = bad[0]["timestamp_ms"].as_i64().unwrap();
        let states = states_after(&log, machine, t0);
        let back = states
            .iter()
            .rev()
            .find(|(s, _)| s == "online")
            .map(|(_, t)| *t)
            .unwrap();
        let stale: Vec<&&Json> = list
            .iter()
            .filter(|j| j["quality"] == "good")
            .filter(|j| (went_bad..back).contains(&j["timestamp_ms"].as_i64().unwrap()))
            .collect();
        assert!(
            stale.is_empty(),
            "{machine}/{tag}: good while down: {stale:?}"
        );
    }

    // The healthy machines kept their cadence through it all.
    for id in healthy {
        let stamps: Vec<i64> = samples[&(id.to_owned(), "speed".to_owned())]
            .iter()
            .map(|j| j["timestamp_ms"].as_i64().unwrap())
            .collect();
        let (before, n_before) = p99_gap(&stamps, t0 - 3000, t0);
        let (during, n_during) = p99_gap(&stamps, t0, t_end);
        println!(
            "{id}: p99 poll gap {before} ms before ({n_before} gaps), {during} ms during the faults ({n_during} gaps)"
        );
        assert!(n_before >= 20 && n_during >= 30, "{id}: too few polls");
        assert!(
            during <= before.max(POLL_MS) + POLL_MS / 2,
            "{id}: p99 poll gap {during} ms during the faults against {before} ms before"
        );
        let expected = (t_end - t0) / POLL_MS;
        assert!(
            n_during as i64 >= expected * 9 / 10,
            "{id}: {n_during} polls in {} ms",
            t_end - t0
        );
    }
}
