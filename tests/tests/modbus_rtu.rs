//! Modbus RTU against an independent slave (pymodbus): on a serial line between two
//! pseudo-terminals (socat), and as RTU over TCP. Units 1 and 2 answer, unit 3 is silent and
//! unit 4 answers with a broken CRC: the good units give their values at their cadence, the
//! others go bad once and offline, and a corrupt frame never gives a good value. `scan --units`
//! finds the units that answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value as Json;
use shopfloor_tests::gateway::{GatewayProcess, run_to_end};
use shopfloor_tests::mosquitto::Mosquitto;
use shopfloor_tests::rtu::{PyRtu, SerialLine};
use shopfloor_tests::subscriber::{Msg, Subscriber};
use std::collections::HashMap;
use std::time::Duration;

const POLL_MS: i64 = 100;

/// Four machines, units 1 to 4, on the bus that `link` (the protocol's keys) names.
fn config(broker: &Mosquitto, prefix: &str, link: &str) -> String {
    let mut c = format!(
        "[gateway]\nname = \"gw\"\n[mqtt]\nurl = \"{}\"\ntopic_prefix = \"{prefix}\"\n",
        broker.url()
    );
    for unit in 1..=4 {
        c.push_str(&format!(
            "[[machine]]\nid = \"unit-{unit}\"\n{link}\nunit_id = {unit}\n\
             poll_interval = \"{POLL_MS}ms\"\ntimeout = \"150ms\"\n\
             [[machine.tag]]\nname = \"a\"\narea = \"holding\"\naddress = 0\n\
             [[machine.tag]]\nname = \"b\"\narea = \"holding\"\naddress = 1\n"
        ));
    }
    c
}

/// Samples by (machine, tag) and each machine's last status.
struct Seen {
    samples: HashMap<(String, String), Vec<Json>>,
    status: HashMap<String, Json>,
}

fn sort(prefix: &str, msgs: &[Msg]) -> Seen {
    let mut seen = Seen {
        samples: HashMap::new(),
        status: HashMap::new(),
    };
    for m in msgs {
        let Some((machine, tag)) = m
            .topic
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('/'))
            .and_then(|r| r.split_once('/'))
        else {
            continue;
        };
        if tag == "_status" {
            seen.status.insert(machine.to_owned(), m.json());
        } else {
            seen.samples
                .entry((machine.to_owned(), tag.to_owned()))
                .or_default()
                .push(m.json());
        }
    }
    seen
}

/// The contract's checks on a bus with two good units, a silent one and a corrupt one.
fn check_bus(seen: &Seen, gw: &GatewayProcess) {
    for unit in [1, 2] {
        let id = format!("unit-{unit}");
        assert_eq!(seen.status[&id]["state"], "online", "{id}\n{}", gw.log());
        for (tag, want) in [("a", 100 * unit), ("b", 1000 + unit)] {
            let s = &seen.samples[&(id.clone(), tag.to_owned())];
            assert!(
                s.iter()
                    .all(|x| x["quality"] == "good" && x["value"] == want),
                "{id}/{tag}: {s:?}"
            );
            // Cadence once the dead units are in backoff: the last 3 s of samples.
            let last = s.last().unwrap()["timestamp_ms"].as_i64().unwrap();
            let recent = s
                .iter()
                .filter(|x| x["timestamp_ms"].as_i64().unwrap() > last - 3000)
                .count() as i64;
            let nominal = 3000 / POLL_MS;
            assert!(
                recent * 10 >= nominal * 8,
                "{id}/{tag}: {recent} polls in 3 s, nominal {nominal}"
            );
        }
    }
    for (unit, error) in [(3, "no answer within"), (4, "wrong CRC")] {
        let id = format!("unit-{unit}");
        let st = &seen.status[&id];
        assert_eq!(st["state"], "offline", "{id}: {st}");
        assert!(st["error"].as_str().unwrap().contains(error), "{id}: {st}");
        for tag in ["a", "b"] {
            let s = &seen.samples[&(id.clone(), tag.to_owned())];
            assert_eq!(s.len(), 1, "{id}/{tag}: bad once, got {s:?}");
            assert_eq!(s[0]["quality"], "bad");
            assert_eq!(s[0]["seq"], 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serial_bus_reads_its_good_units_and_isolates_the_dead_and_the_corrupt() {
    let broker = Mosquitto::start();
    let line = SerialLine::start();
    let slave = PyRtu::serial(&line.device, 19200);
    let link = format!(
        "protocol = \"modbus-rtu\"\nport = \"{}\"\nbaud = 19200",
        line.gateway.display()
    );
    let mut sub = Subscriber::start(broker.port, "serial/#").await;
    let mut gw = GatewayProcess::start(&config(&broker, "serial", &link));
    let msgs = sub.collect_for(Duration::from_secs(6)).await;
    assert!(gw.is_running(), "gateway died\n{}", gw.log());
    check_bus(&sort("serial", &msgs), &gw);
    // A dead unit is tried with backoff, not at every poll.
    let (silent, good) = (slave.requests(3), slave.requests(1));
    assert!(
        silent * 4 < good,
        "unit 3 asked {silent} times beside unit 1's {good}"
    );
    // The pty may refuse the default even parity: said once at most, never fatal.
    let told = gw.log().matches("serial_parity_refused").count();
    assert!(told <= 1, "parity fallback said {told} times");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtu_over_tcp_reads_every_unit_of_the_bus_over_one_connection() {
    let broker = Mosquitto::start();
    let slave = PyRtu::tcp();
    let link = format!(
        "protocol = \"modbus-rtu-tcp\"\naddress = \"{}\"",
        slave.address()
    );
    let mut sub = Subscriber::start(broker.port, "rtutcp/#").await;
    let mut gw = GatewayProcess::start(&config(&broker, "rtutcp", &link));
    let msgs = sub.collect_for(Duration::from_secs(6)).await;
    assert!(gw.is_running(), "gateway died\n{}", gw.log());
    check_bus(&sort("rtutcp", &msgs), &gw);
    assert_eq!(
        slave.connections(),
        1,
        "one connection for the whole bus, kept through the silent unit's timeouts"
    );
}

/// The unit ids `scan --units` lists as answering.
fn units_answering(out: &str) -> Vec<u8> {
    out.lines()
        .filter(|l| l.contains(": answers"))
        .filter_map(|l| {
            l.strip_prefix("unit ")?
                .split(':')
                .next()?
                .trim()
                .parse()
                .ok()
        })
        .collect()
}

#[test]
fn scan_finds_the_units_that_answer_on_a_bus_and_reads_their_registers() {
    let tcp = PyRtu::tcp();
    let url = format!("modbus-rtu-tcp://{}", tcp.address());
    let (code, out, err) = run_to_end(&["scan", &url, "--units", "1..=5"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(units_answering(&out), vec![1, 2], "{out}");
    assert!(out.contains("2 of 5 unit ids answer"), "{out}");
    let (code, out, err) = run_to_end(&["scan", &url, "--unit", "2", "--range", "0..2"]);
    assert_eq!(code, 0, "{err}");
    let first = out
        .lines()
        .find(|l| l.trim_start().starts_with("0 "))
        .unwrap();
    assert!(first.contains(" 200 "), "{out}");

    let line = SerialLine::start();
    let _slave = PyRtu::serial(&line.device, 19200);
    let url = format!("modbus-rtu://{}?baud=19200", line.gateway.display());
    let (code, out, err) = run_to_end(&["scan", &url, "--units", "1..=4"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(units_answering(&out), vec![1, 2], "{out}");
}

/// Two energy meters on a serial line, with `simulator` and `protocol = "modbus-rtu"` on `port`.
fn meters_on(port: &std::path::Path, broker: &Mosquitto) -> String {
    let mut c = format!(
        "[gateway]\nname = \"gw\"\n[mqtt]\nurl = \"{}\"\ntopic_prefix = \"simline\"\n",
        broker.url()
    );
    for unit in [1, 2] {
        c.push_str(&format!(
            "[[machine]]\nid = \"meter-{unit}\"\nkind = \"energy-meter\"\nprotocol = \"modbus-rtu\"\n\
             port = \"{}\"\nunit_id = {unit}\nsimulator = \"energy-meter\"\n\
             poll_interval = \"200ms\"\ntimeout = \"200ms\"\n\
             [[machine.tag]]\nname = \"voltage_l1\"\narea = \"input\"\naddress = 0\ntype = \"f32\"\n",
            port.display()
        ));
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_meters_answer_under_their_unit_ids_on_a_serial_line() {
    let broker = Mosquitto::start();
    let line = SerialLine::start();
    let mut sim = GatewayProcess::simulate(&meters_on(&line.device, &broker), &[]);
    let mut sub = Subscriber::start(broker.port, "simline/#").await;
    let mut gw = GatewayProcess::start(&meters_on(&line.gateway, &broker));
    let mut volts: HashMap<String, f64> = HashMap::new();
    while volts.len() < 2 {
        let m = sub
            .expect(Duration::from_secs(20), "both meters' voltage", |m| {
                m.topic.ends_with("/voltage_l1")
            })
            .await;
        let j = m.json();
        if j["quality"] == "good" {
            volts.insert(m.topic.clone(), j["value"].as_f64().unwrap());
        }
    }
    for (topic, v) in &volts {
        assert!((200.0..260.0).contains(v), "{topic}: {v} V");
    }
    assert!(gw.is_running(), "{}", gw.log());
    assert!(sim.is_running(), "{}", sim.log());
}
