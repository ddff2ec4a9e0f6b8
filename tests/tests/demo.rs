//! `shopfloor demo`: the whole hall with no other software: its embedded broker serves live data
//! of every machine, as JSON and as a Sparkplug B edge node, the banner says where, Ctrl-C stops it all within 5 s with exit 0, and a
//! port in use is named with the flag that changes it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shopfloor_tests::gateway::{GatewayProcess, run_to_end};
use shopfloor_tests::http::get;
use shopfloor_tests::sparkplug::{HostOptions, SparkplugPeer};
use shopfloor_tests::subscriber::Subscriber;
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_every_machine_through_its_own_broker_and_stops_cleanly() {
    // The broker is up once the banner is out; the subscriber then sees retained statuses too.
    let (mut demo, port, http) = GatewayProcess::demo_on_free_ports(
        &["--seed", "4", "--speedup", "30"],
        Duration::from_secs(20),
    );
    let banner = demo.stdout();
    assert!(
        banner.contains(&format!(
            "mosquitto_sub -h 127.0.0.1 -p {port} -t 'iqblvd/hardenberg/demo-hall/#' -v"
        )),
        "{banner}"
    );
    for id in [
        "cnc-1", "cnc-2", "imm-1", "imm-2", "energy-1", "energy-2", "energy-3",
    ] {
        assert!(banner.contains(id), "{banner}");
    }
    assert!(
        banner.contains(&format!("http://{http}/api/machines")),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("dashboard http://{http}/\n")),
        "{banner}"
    );
    let api = get(http.parse().unwrap(), "/api/machines", None);
    assert_eq!(api.status, 200);
    assert_eq!(api.json().as_array().unwrap().len(), 7);
    let mut sub = Subscriber::start(port, "iqblvd/hardenberg/demo-hall/#").await;
    let mut with_data = HashSet::new();
    while with_data.len() < 7 {
        let m = sub
            .expect(Duration::from_secs(20), "data from every machine", |m| {
                !m.topic.contains("/_status") && !m.topic.contains("/_gateway/")
            })
            .await;
        assert_eq!(m.json()["quality"], "good", "{}: {:?}", m.topic, m.json());
        let machine = m.topic.split('/').nth(3).unwrap().to_owned();
        with_data.insert(machine);
    }
    // The same hall as a Sparkplug B edge node, on the same broker: a host that comes late asks
    // for a rebirth and then knows every machine.
    assert!(
        banner.contains("sparkplug spBv1.0/iqblvd/+/demo-hall/#"),
        "{banner}"
    );
    let host = SparkplugPeer::host(
        port,
        HostOptions {
            rebirth_unknown: true,
            ..HostOptions::default()
        },
    );
    let log = host.wait(
        Duration::from_secs(30),
        "a DBIRTH and DDATA of every machine",
        |l| {
            let Some(birth) = l.iter().position(|m| m["type"] == "NBIRTH") else {
                return false;
            };
            let devices = |kind: &str| {
                l[birth..]
                    .iter()
                    .filter(|m| m["type"] == kind)
                    .filter_map(|m| m["device"].as_str())
                    .collect::<HashSet<_>>()
                    .len()
            };
            devices("DBIRTH") == 7 && devices("DDATA") == 7
        },
    );
    let birth = log.iter().position(|m| m["type"] == "NBIRTH").unwrap();
    assert_eq!(
        log[birth]["topic"], "spBv1.0/iqblvd/NBIRTH/demo-hall",
        "{}",
        log[birth]
    );
    assert!(
        log[birth..].iter().all(|m| m.get("error").is_none()),
        "undecodable: {log:#?}"
    );
    let code = demo.interrupt(Duration::from_secs(5));
    assert!(code.success(), "exit {code:?}\n{}", demo.log());
    assert!(!demo.log().contains("ERROR"), "{}", demo.log());
}

#[test]
fn a_broker_port_in_use_names_the_flag_to_change() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, _, err) = run_to_end(&["demo", "--mqtt-port", &port]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port} is in use")),
        "{err}"
    );
    assert!(err.contains("--mqtt-port"), "{err}");
}
