//! The simulated machines' fault knobs, seen through the gateway: exception codes, slow answers,
//! periodic outages and dropped connections each give the status and recovery a real device's
//! would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shopfloor_tests::free_port;
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::mosquitto::Mosquitto;
use shopfloor_tests::subscriber::Subscriber;
use std::collections::HashMap;
use std::time::Duration;

fn machine(id: &str, port: u16, faults: &str) -> String {
    format!(
        r#"
[[machine]]
id = "{id}"
protocol = "modbus-tcp"
address = "127.0.0.1:{port}"
simulator = "cnc"
poll_interval = "100ms"
timeout = "300ms"

  [machine.faults]
  {faults}

  [[machine.tag]]
  name = "state"
  area = "holding"
  address = 0
  type = "u16"

  [[machine.tag]]
  name = "part_count"
  area = "holding"
  address = 11
  type = "u32"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_shows_as_a_real_device_would() {
    let broker = Mosquitto::start();
    let mut config = format!(
        "[gateway]\nname = \"faulty-hall\"\n[mqtt]\nurl = \"{}\"\ntopic_prefix = \"sim\"\n",
        broker.url()
    );
    let mut ports = Vec::new();
    for (id, faults) in [
        ("exception", "exception = 2"),
        ("slow", "slow = \"600ms\""),
        ("outage", "offline_every = \"2s\"\n  offline_for = \"1s\""),
        ("dropping", "drop_every = 5"),
    ] {
        let port = free_port();
        config.push_str(&machine(id, port, faults));
        ports.push(port);
    }
    let mut sub = Subscriber::start(broker.port, "sim/+/_status").await;
    let sim = GatewayProcess::simulate(&config, &[]);
    // The gateway starts once every simulated machine listens: a refused connect would be the
    // first error seen, not the fault under test.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for port in ports {
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the simulator does not listen on {port}\n{}",
                sim.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let gw = GatewayProcess::start(&config);

    // Every state change of every machine, in order, until each has shown its fault.
    let mut seen: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let done = |seen: &HashMap<String, Vec<(String, String)>>| {
        let states = |id: &str| -> Vec<&str> {
            seen.get(id)
                .map_or(Vec::new(), |v| v.iter().map(|(s, _)| s.as_str()).collect())
        };
        let recovered = |id: &str| {
            let s = states(id);
            s.iter()
                .position(|x| *x == "offline")
                .is_some_and(|i| s[i..].contains(&"online"))
        };
        states("exception").contains(&"offline")
            && states("slow").contains(&"offline")
            && recovered("outage")
            && recovered("dropping")
    };
    while !done(&seen) {
        let m = sub
            .expect(
                Duration::from_secs(20),
                "every fault and its recovery",
                |_| true,
            )
            .await;
        let id = m.topic.split('/').nth(1).unwrap().to_owned();
        let j = m.json();
        let state = j["state"].as_str().unwrap().to_owned();
        let error = j["error"].as_str().unwrap_or("").to_owned();
        seen.entry(id).or_default().push((state, error));
    }
    let first_error = |id: &str| {
        seen[id]
            .iter()
            .find(|(s, _)| s == "offline")
            .map(|(_, e)| e.clone())
            .unwrap()
    };
    assert!(
        first_error("exception").contains("device exception: Illegal data address"),
        "{seen:?}"
    );
    assert!(
        first_error("slow").contains("no answer within 300ms"),
        "{seen:?}"
    );
    assert!(!first_error("outage").is_empty());
    assert!(!first_error("dropping").is_empty());
    drop((sim, gw));
}
