//! `[sparkplug]` against an independent Sparkplug B host (pysparkplug on a real mosquitto):
//! births list every metric with its type, unit and value; data goes by exception, by alias,
//! with the values the gateway read (its CSV file is the record); `seq` runs on without a gap
//! modulo 256 from each NBIRTH; a machine that stops answering gets a DDEATH and, back, a new
//! DBIRTH; an NCMD Rebirth is answered with NBIRTH (`seq` 0, the same `bdSeq`) and every
//! DBIRTH; a SIGKILL fires the NDEATH will with the `bdSeq` of the NBIRTH; readings taken
//! while the broker was away arrive after the next births as historical data, in order; a
//! clean stop publishes NDEATH once; a lost broker hands the session over to the next of
//! `urls`. Eclipse Tahu's JavaScript payload library decodes every captured message as
//! pysparkplug does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use shopfloor_core::time::now_ms;
use shopfloor_tests::csv::good_values;
use shopfloor_tests::device::{moving, speed_and_temp, speed_and_temp_machine};
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::link::Link;
use shopfloor_tests::mosquitto::Mosquitto;
use shopfloor_tests::sparkplug::{HostOptions, SparkplugPeer};
use shopfloor_tests::tahu;
use std::collections::BTreeMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// The moving device's machine: one tag of each kind, read every 50 ms.
fn press(address: &str) -> String {
    format!(
        r#"
[[machine]]
id = "press"
protocol = "modbus-tcp"
address = "{address}"
poll_interval = "50ms"
{tags}"#,
        tags = shopfloor_tests::device::MOVING_TAGS
    )
}

fn config(broker: &str, machines: &str) -> String {
    format!(
        "[gateway]\nname = \"gw\"\n\n[csv]\ndir = \"data\"\n\n[sparkplug]\nurl = \"{broker}\"\n\
         group_id = \"iqblvd\"\nedge_node_id = \"hall\"\n{machines}"
    )
}

fn kind(m: &Value) -> &str {
    m["type"].as_str().unwrap_or_default()
}

fn device(m: &Value) -> &str {
    m["device"].as_str().unwrap_or_default()
}

fn count(log: &[Value], k: &str, dev: &str) -> usize {
    log.iter()
        .filter(|m| kind(m) == k && device(m) == dev)
        .count()
}

fn metric<'a>(m: &'a Value, name: &str) -> Option<&'a Value> {
    m["metrics"].as_array()?.iter().find(|x| x["name"] == name)
}

/// True when a metric carries the value the CSV file recorded.
fn same(csv: Option<&String>, metric: &Value) -> bool {
    let Some(csv) = csv else {
        return false;
    };
    match &metric["value"] {
        Value::Number(n) => csv.parse::<f64>().ok() == n.as_f64(),
        Value::String(s) => s == csv,
        Value::Bool(b) => csv == &b.to_string(),
        _ => false,
    }
}

/// Every message from each NBIRTH on carries the next `seq` modulo 256; NDEATH none.
fn assert_seq_continuous(log: &[Value]) {
    let mut expected: Option<u64> = None;
    for (i, m) in log.iter().enumerate() {
        match kind(m) {
            "NDEATH" => assert!(m.get("seq").is_none(), "NDEATH with a seq: {m}"),
            "NBIRTH" => {
                assert_eq!(m["seq"], 0, "{m}");
                expected = Some(1);
            }
            "DBIRTH" | "DDATA" | "DDEATH" | "NDATA" => {
                let want = expected.expect("a device message before any NBIRTH");
                assert_eq!(m["seq"].as_u64(), Some(want), "message {i}: {m}");
                expected = Some((want + 1) % 256);
            }
            _ => {}
        }
    }
}

/// In every session (from an NBIRTH on) a device's DDATA and DDEATH come after its DBIRTH.
fn assert_births_first(log: &[Value]) {
    let mut born: BTreeMap<String, bool> = BTreeMap::new();
    for m in log {
        let dev = device(m).to_owned();
        match kind(m) {
            "NBIRTH" => born.clear(),
            "DBIRTH" => {
                born.insert(dev, true);
            }
            "DDATA" => assert!(
                born.get(&dev).copied().unwrap_or(false),
                "DDATA before DBIRTH: {m}"
            ),
            "DDEATH" => {
                assert!(
                    born.get(&dev).copied().unwrap_or(false),
                    "DDEATH before DBIRTH: {m}"
                );
                born.insert(dev, false);
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_host_sees_births_data_deaths_and_a_rebirth() {
    let broker = Mosquitto::start();
    let press_device = moving().await;
    let plain = shopfloor_tests::device::Device::start(
        speed_and_temp(1500),
        shopfloor_tests::device::Behaviour::Healthy,
        0,
    )
    .await;
    let link = Link::start(plain.addr).await;
    let host = SparkplugPeer::host(
        broker.port,
        HostOptions {
            rebirth_after: Some(40),
            ..HostOptions::default()
        },
    );
    let machines = format!(
        "{}{}",
        press(&press_device.addr.to_string()),
        speed_and_temp_machine("plain", &link.addr.to_string(), 50, 300)
    );
    let mut gw = GatewayProcess::start(&config(&broker.url(), &machines));

    // The rebirth asked for after 40 DDATA, answered, and data flowing again after it.
    host.wait(WAIT, "births again after the rebirth command", |l| {
        let Some(asked) = l.iter().position(|m| kind(m) == "REBIRTH_SENT") else {
            return false;
        };
        let after = &l[asked..];
        count(after, "DBIRTH", "press") >= 1
            && count(after, "DBIRTH", "plain") >= 1
            && count(after, "DDATA", "press") >= 10
    });
    link.cut();
    host.wait(WAIT, "a DDEATH of the machine cut off", |l| {
        count(l, "DDEATH", "plain") == 1
    });
    link.restore();
    host.wait(WAIT, "a new DBIRTH of the machine back", |l| {
        let death = l
            .iter()
            .position(|m| kind(m) == "DDEATH")
            .unwrap_or(l.len());
        count(&l[death..], "DBIRTH", "plain") == 1
    });
    gw.kill();
    let log = host.wait(WAIT, "the NDEATH will", |l| {
        l.iter().any(|m| kind(m) == "NDEATH")
    });

    assert!(
        log.iter().all(|m| m.get("error").is_none()),
        "undecodable: {log:#?}"
    );
    assert_seq_continuous(&log);
    assert_births_first(&log);
    assert!(tahu::assert_agrees(&log) >= 50, "Tahu decoded the same");
    // Births, data and deaths alike: none retained.
    let retained: Vec<&Value> = log.iter().filter(|m| m["retain"] == true).collect();
    assert!(retained.is_empty(), "retained: {retained:?}");
    // Births, data and device deaths at QoS 0 (the host subscribes at 1, so it sees what was
    // published); each with a payload timestamp, and every metric in them with its own.
    for m in log
        .iter()
        .filter(|m| kind(m) != "NDEATH" && m.get("seq").is_some())
    {
        assert_eq!(m["qos"], 0, "{m}");
        assert!(m["timestamp"].is_u64(), "no timestamp: {m}");
        for x in m["metrics"].as_array().into_iter().flatten() {
            assert!(x["timestamp"].is_u64(), "a metric without a timestamp: {m}");
        }
    }

    // The will carries the bdSeq of the births: one connection, so 0 for both NBIRTHs.
    let nbirths: Vec<&Value> = log.iter().filter(|m| kind(m) == "NBIRTH").collect();
    assert_eq!(nbirths.len(), 2, "the first birth and the rebirth");
    let ndeath = log.iter().find(|m| kind(m) == "NDEATH").unwrap();
    for nbirth in &nbirths {
        assert_eq!(nbirth["bd_seq"], ndeath["bd_seq"], "{nbirth} / {ndeath}");
        assert_eq!(metric(nbirth, "bdSeq").unwrap()["datatype"], "INT64");
        let rebirth = metric(nbirth, "Node Control/Rebirth").unwrap();
        assert_eq!(
            (&rebirth["datatype"], &rebirth["value"]),
            (&"BOOLEAN".into(), &false.into())
        );
    }
    assert_eq!(ndeath["bd_seq"], 0);
    assert_eq!(ndeath["qos"], 1);

    // Births list every metric with its type, unit and value.
    let dbirth = log
        .iter()
        .find(|m| kind(m) == "DBIRTH" && device(m) == "press")
        .unwrap();
    let types = [
        ("speed", "FLOAT"),
        ("count", "UINT16"),
        ("temp", "INT16"),
        ("total", "UINT32"),
        ("running", "BOOLEAN"),
        ("program", "STRING"),
    ];
    let mut aliases = std::collections::BTreeSet::new();
    for (name, datatype) in types {
        let m = metric(dbirth, name).unwrap_or_else(|| panic!("{name} not in {dbirth}"));
        assert_eq!(m["datatype"], datatype, "{m}");
        assert!(
            aliases.insert(m["alias"].as_u64().unwrap()),
            "alias twice: {m}"
        );
    }
    assert_eq!(
        metric(dbirth, "speed").unwrap()["properties"]["engUnit"],
        "rpm"
    );
    assert_eq!(metric(dbirth, "temp").unwrap()["value"], -40);
    assert_eq!(metric(dbirth, "total").unwrap()["value"], 4_000_000_000u64);
    assert_eq!(metric(dbirth, "program").unwrap()["value"], "P-7");

    // Data by exception, by alias (names come from the birth), with the values read.
    let record = good_values(gw.dir.path(), "press");
    let mut carried = BTreeMap::<String, usize>::new();
    for m in log
        .iter()
        .filter(|m| kind(m) == "DDATA" && device(m) == "press")
    {
        for x in m["metrics"].as_array().unwrap() {
            let name = x["name"].as_str().unwrap().to_owned();
            let ts = x["timestamp"].as_i64().unwrap();
            let read = record.get(&(name.clone(), ts));
            assert!(same(read, x), "{name} at {ts}: read {read:?}, sent {x}");
            *carried.entry(name).or_default() += 1;
        }
    }
    assert!(carried["count"] >= 20, "{carried:?}");
    for constant in ["temp", "total", "program"] {
        assert_eq!(
            carried.get(constant),
            None,
            "{constant} never changes: {carried:?}"
        );
    }
    // A machine that stopped answering sends nothing between its death and its new birth.
    let death = log.iter().position(|m| kind(m) == "DDEATH").unwrap();
    let reborn = death
        + log[death..]
            .iter()
            .position(|m| kind(m) == "DBIRTH" && device(m) == "plain")
            .unwrap();
    assert_eq!(count(&log[death..reborn], "DDATA", "plain"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_kept_through_an_outage_follow_the_next_births_as_history() {
    let mut broker = Mosquitto::start_persistent_with("queue_qos0_messages true\n");
    let press_device = moving().await;
    let host = SparkplugPeer::host(
        broker.port,
        HostOptions {
            persistent: true,
            ..HostOptions::default()
        },
    );
    let mut gw = GatewayProcess::start(&config(
        &broker.url(),
        &press(&press_device.addr.to_string()),
    ));
    host.wait(WAIT, "live data", |l| count(l, "DDATA", "press") >= 10);
    broker.stop_gracefully();
    gw.expect_sink_event("sparkplug_offline", "sparkplug", WAIT);
    let away_since = now_ms();
    // Readings go on while the broker is away: the CSV file is their record.
    let dir = gw.dir.path().to_path_buf();
    let away = |record: &BTreeMap<(String, i64), String>| {
        record
            .keys()
            .filter(|(t, ts)| t == "count" && *ts > away_since)
            .count()
    };
    while away(&good_values(&dir, "press")) < 20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    broker.restart();
    let log = host.wait(WAIT, "live data after the history", |l| {
        let live = |m: &&Value| kind(m) == "DDATA" && m["metrics"][0]["historical"] == false;
        l.iter()
            .rposition(|m| kind(m) == "NBIRTH")
            .is_some_and(|b| b > 0 && l[b..].iter().filter(live).count() >= 10)
    });
    let record = good_values(&dir, "press");
    let second = log.iter().rposition(|m| kind(m) == "NBIRTH").unwrap();
    // Every CONNECT carries a new will, so every attempt while the broker was away took a
    // bdSeq too.
    let bd_seq = log[second]["bd_seq"].as_u64().unwrap();
    assert!(
        bd_seq >= 1,
        "a new connection, a new bdSeq: {}",
        log[second]
    );
    let mut history = Vec::new();
    let mut live_seen = false;
    for m in log[second..].iter().filter(|m| kind(m) == "DDATA") {
        for x in m["metrics"].as_array().unwrap() {
            let historical = x["historical"].as_bool().unwrap();
            assert!(!(historical && live_seen), "history after live data: {x}");
            live_seen |= !historical;
            if historical && x["name"] == "count" {
                history.push(x["timestamp"].as_i64().unwrap());
                let key = ("count".to_owned(), x["timestamp"].as_i64().unwrap());
                assert!(same(record.get(&key), x), "{x}");
            }
        }
    }
    assert!(history.is_sorted(), "history in order: {history:?}");
    let read_away: Vec<i64> = record
        .keys()
        .filter(|(t, ts)| t == "count" && *ts > away_since)
        .map(|(_, ts)| *ts)
        // What was read just before the births may still have been on its way to the sink.
        .filter(|ts| *ts < log_time_of(&log[second]) - 500)
        .collect();
    for ts in &read_away {
        assert!(
            history.binary_search(ts).is_ok(),
            "read at {ts} while away, not sent: {history:?}"
        );
    }
    assert!(read_away.len() >= 10, "{read_away:?}");

    // A clean stop: NDEATH with this session's bdSeq, once.
    gw.terminate(Duration::from_secs(10));
    let log = host.wait(WAIT, "the NDEATH of the clean stop", |l| {
        l[second..].iter().any(|m| kind(m) == "NDEATH")
    });
    let deaths: Vec<&Value> = log[second..]
        .iter()
        .filter(|m| kind(m) == "NDEATH")
        .collect();
    assert_eq!(deaths.len(), 1, "{deaths:?}");
    assert_eq!(
        deaths[0]["bd_seq"], bd_seq,
        "the NDEATH of the births' session"
    );
    assert_seq_continuous(&log);
    assert_births_first(&log);
    // Historical flags and timestamps included.
    assert!(tahu::assert_agrees(&log) >= 20, "Tahu decoded the same");
}

/// When a message was made (its payload timestamp).
fn log_time_of(m: &Value) -> i64 {
    m["timestamp"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn births_wait_for_the_primary_host_and_stop_when_it_goes_offline() {
    let broker = Mosquitto::start();
    let press_device = moving().await;
    let machines = format!(
        "primary_host_id = \"scada\"\n{}",
        press(&press_device.addr.to_string())
    );
    let gw = GatewayProcess::start(&config(&broker.url(), &machines));
    gw.expect_sink_event("sparkplug_waiting_for_host", "sparkplug", WAIT);
    // Readings go on while the host is away: the CSV file is their record.
    let waiting_since = now_ms();
    let dir = gw.dir.path().to_path_buf();
    let read_since = |since: i64| {
        good_values(&dir, "press")
            .keys()
            .filter(|(t, ts)| t == "count" && *ts > since)
            .count()
    };
    while read_since(waiting_since) < 10 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let host = SparkplugPeer::host(
        broker.port,
        HostOptions {
            primary: Some("scada"),
            offline_after: Some(20),
            ..HostOptions::default()
        },
    );
    let state_sent = |m: &Value, online: bool| kind(m) == "STATE_SENT" && m["online"] == online;
    let log = host.wait(WAIT, "births again once the host is back", |l| {
        let back = l.iter().rposition(|m| state_sent(m, true));
        let offline = l
            .iter()
            .position(|m| state_sent(m, false) && m["note"].is_null());
        match (offline, back) {
            (Some(off), Some(back)) if back > off => count(&l[back..], "DDATA", "press") >= 5,
            _ => false,
        }
    });
    assert!(
        log.iter().all(|m| m.get("error").is_none()),
        "undecodable: {log:#?}"
    );
    let position = |from: usize, what: &dyn Fn(&Value) -> bool| {
        from + log[from..].iter().position(what).unwrap()
    };
    let online = position(0, &|m| state_sent(m, true));
    let stale = position(0, &|m| m["note"] == "stale");
    let offline = position(0, &|m| state_sent(m, false) && m["note"].is_null());
    let ndeath = position(offline, &|m| kind(m) == "NDEATH");
    let back = position(ndeath, &|m| state_sent(m, true));

    // Nothing before the host said online; then births and, first, what was read meanwhile.
    let node_messages = |range: &[Value]| {
        range
            .iter()
            .filter(|m| kind(m) != "STATE_SENT" && kind(m) != "REBIRTH_SENT")
            .count()
    };
    assert_eq!(node_messages(&log[..online]), 0, "{log:#?}");
    let first_birth = position(online, &|m| kind(m) == "NBIRTH");
    let history: Vec<i64> = log[first_birth..stale]
        .iter()
        .filter(|m| kind(m) == "DDATA")
        .flat_map(|m| m["metrics"].as_array().unwrap().iter())
        .filter(|x| x["historical"] == true && x["name"] == "count")
        .map(|x| x["timestamp"].as_i64().unwrap())
        .collect();
    assert!(
        history.iter().filter(|ts| **ts > waiting_since).count() >= 10,
        "readings taken while waiting, sent as history: {history:?}"
    );
    // A stale STATE changes nothing: data goes on until the real offline.
    assert_eq!(count(&log[stale..offline], "NDEATH", ""), 0);
    assert!(count(&log[stale..offline], "DDATA", "press") >= 10);
    // Offline: NDEATH with the births' bdSeq, then silence until the host is back.
    assert_eq!(log[ndeath]["bd_seq"], log[first_birth]["bd_seq"]);
    assert_eq!(node_messages(&log[ndeath + 1..back]), 0, "{log:#?}");
    let second_birth = position(back, &|m| kind(m) == "NBIRTH");
    assert!(
        log[second_birth]["bd_seq"].as_u64() > log[first_birth]["bd_seq"].as_u64(),
        "a new connection, a new bdSeq: {}",
        log[second_birth]
    );
    assert_seq_continuous(&log);
    assert_births_first(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_broker_hands_over_to_the_next_of_urls() {
    let mut first = Mosquitto::start();
    let second = Mosquitto::start();
    let press_device = moving().await;
    let on_first = SparkplugPeer::host(first.port, HostOptions::default());
    let on_second = SparkplugPeer::host(second.port, HostOptions::default());
    let machines = press(&press_device.addr.to_string());
    let config = config(&first.url(), &machines).replace(
        &format!("url = \"{}\"", first.url()),
        &format!("urls = [\"{}\", \"{}\"]", first.url(), second.url()),
    );
    let gw = GatewayProcess::start(&config);
    on_first.wait(WAIT, "live data on the first broker", |l| {
        count(l, "DDATA", "press") >= 10
    });
    assert_eq!(on_second.messages().len(), 0, "one broker at a time");
    let first_bd_seq = on_first.messages()[0]["bd_seq"].as_u64().unwrap();
    first.stop();
    let log = on_second.wait(WAIT, "live data on the second broker", |l| {
        l.iter()
            .filter(|m| kind(m) == "DDATA" && m["metrics"][0]["historical"] == false)
            .count()
            >= 10
    });
    // A whole session on the second broker: births first, a new bdSeq, the readings taken
    // during the switch as history, then live data.
    assert_eq!(kind(&log[0]), "NBIRTH", "{log:#?}");
    assert!(
        log[0]["bd_seq"].as_u64().unwrap() > first_bd_seq,
        "{}",
        log[0]
    );
    assert_eq!(kind(&log[1]), "DBIRTH", "{log:#?}");
    assert_seq_continuous(&log);
    assert_births_first(&log);
    assert!(tahu::assert_agrees(&log) >= 10, "Tahu decoded the same");
    let record = good_values(gw.dir.path(), "press");
    for m in log.iter().filter(|m| kind(m) == "DDATA") {
        for x in m["metrics"].as_array().unwrap() {
            let key = (
                x["name"].as_str().unwrap().to_owned(),
                x["timestamp"].as_i64().unwrap(),
            );
            assert!(same(record.get(&key), x), "{x}");
        }
    }
}

/// A reload that removes a machine and adds another: the host sees a DDEATH of the one and a
/// DBIRTH of the other in the same session (no NDEATH, no new NBIRTH), and the machine left
/// alone keeps sending DDATA with `seq` continuous.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_and_removes_devices_in_the_same_session() {
    let broker = Mosquitto::start();
    let press_device = moving().await;
    let healthy = || {
        shopfloor_tests::device::Device::start(
            speed_and_temp(1500),
            shopfloor_tests::device::Behaviour::Healthy,
            0,
        )
    };
    let (plain, guest) = (healthy().await, healthy().await);
    let host = SparkplugPeer::host(broker.port, HostOptions::default());
    let press = press(&press_device.addr.to_string());
    let before = format!(
        "{press}{}",
        speed_and_temp_machine("plain", &plain.addr.to_string(), 50, 300)
    );
    let gw = GatewayProcess::start(&config(&broker.url(), &before));
    // plain's values never change: after its birth, no DDATA of it.
    host.wait(WAIT, "both machines born, press's DDATA", |l| {
        count(l, "DBIRTH", "plain") == 1 && count(l, "DDATA", "press") >= 5
    });
    let after = format!(
        "{press}{}",
        speed_and_temp_machine("guest", &guest.addr.to_string(), 50, 300)
    );
    gw.rewrite(&config(&broker.url(), &after));
    gw.hangup();
    gw.expect_event("config_reloaded", WAIT);
    assert!(
        gw.log()
            .contains("config reloaded: added guest; removed plain; 1 unchanged"),
        "{}",
        gw.log()
    );
    let log = host.wait(WAIT, "the guest born, plain dead, press going on", |l| {
        let Some(born) = l
            .iter()
            .position(|m| kind(m) == "DBIRTH" && device(m) == "guest")
        else {
            return false;
        };
        count(l, "DDEATH", "plain") == 1 && count(&l[born..], "DDATA", "press") >= 10
    });
    let sessions = log.iter().filter(|m| kind(m) == "NBIRTH").count();
    assert_eq!(sessions, 1, "a new session: {log:#?}");
    assert!(!log.iter().any(|m| kind(m) == "NDEATH"), "an NDEATH");
    assert_eq!(count(&log, "DBIRTH", "press"), 1, "press born again");
    assert_seq_continuous(&log);
    assert_births_first(&log);
}
