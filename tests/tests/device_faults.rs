//! Devices that hang, answer a byte a second, send garbage, answer for another transaction,
//! close every connection, answer with exception codes, or are absent at start-up: no panic,
//! the right statuses, bad quality published once per tag, and the healthy device beside them
//! keeps its poll rate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value as Json;
use shopfloor_tests::device::{
    Behaviour, Device, Fault, FaultyDevice, speed_and_temp, speed_and_temp_machine,
};
use shopfloor_tests::free_port;
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::mosquitto::Mosquitto;
use shopfloor_tests::subscriber::{Msg, Subscriber};
use std::collections::HashMap;
use std::time::Duration;
use tokio_modbus::ExceptionCode;

const PREFIX: &str = "faults";

fn machine(id: &str, address: &str) -> String {
    speed_and_temp_machine(id, address, 100, 300)
}

fn machine_of(m: &Msg) -> Option<(&str, &str)> {
    let rest = m.topic.strip_prefix("faults/")?;
    rest.split_once('/')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_devices_go_offline_once_and_the_healthy_one_keeps_its_rate() {
    let broker = Mosquitto::start();
    let healthy = Device::start(speed_and_temp(1500), Behaviour::Healthy, 0).await;
    let hang = FaultyDevice::start(Fault::Hang).await;
    let garbage = FaultyDevice::start(Fault::Garbage).await;
    let wrong_tid = FaultyDevice::start(Fault::WrongTransaction).await;
    let closer = FaultyDevice::start(Fault::Close).await;
    let trickle = FaultyDevice::start(Fault::Trickle).await;
    let exception = Device::start(
        speed_and_temp(1),
        Behaviour::Exception(ExceptionCode::IllegalDataAddress),
        0,
    )
    .await;
    let late_port = free_port();

    let mut config = format!(
        "[gateway]\nname = \"gw\"\n[mqtt]\nurl = \"{}\"\ntopic_prefix = \"{PREFIX}\"\n",
        broker.url()
    );
    for (id, addr) in [
        ("healthy", healthy.addr.to_string()),
        ("hang", hang.addr.to_string()),
        ("garbage", garbage.addr.to_string()),
        ("wrong-tid", wrong_tid.addr.to_string()),
        ("closer", closer.addr.to_string()),
        ("trickle", trickle.addr.to_string()),
        ("exception", exception.addr.to_string()),
        ("late", format!("127.0.0.1:{late_port}")),
    ] {
        config.push_str(&machine(id, &addr));
    }
    let mut sub = Subscriber::start(broker.port, &format!("{PREFIX}/#")).await;
    let mut gw = GatewayProcess::start(&config);

    // Three seconds of traffic.
    let msgs = sub.collect_for(Duration::from_secs(3)).await;
    assert!(gw.is_running(), "gateway died\n{}", gw.log());

    let mut status: HashMap<String, Json> = HashMap::new();
    let mut samples: HashMap<(String, String), Vec<Json>> = HashMap::new();
    for m in &msgs {
        let Some((machine, tag)) = machine_of(m) else {
            continue;
        };
        if tag == "_status" {
            status.insert(machine.to_owned(), m.json());
        } else {
            samples
                .entry((machine.to_owned(), tag.to_owned()))
                .or_default()
                .push(m.json());
        }
    }

    // The healthy machine: online, good values, and its 10 Hz cadence kept (>= 2 s worth).
    assert_eq!(status["healthy"]["state"], "online");
    let speed = &samples[&("healthy".to_owned(), "speed".to_owned())];
    assert!(
        speed.len() >= 20,
        "healthy machine polled only {} times in 3 s",
        speed.len()
    );
    assert!(
        speed
            .iter()
            .all(|s| s["value"] == 1500 && s["quality"] == "good")
    );

    // Every faulty machine: offline with an error, and each tag bad exactly once (seq 1).
    for id in [
        "hang",
        "garbage",
        "wrong-tid",
        "closer",
        "trickle",
        "exception",
        "late",
    ] {
        let st = status
            .get(id)
            .unwrap_or_else(|| panic!("no status for {id}\n{}", gw.log()));
        assert_eq!(st["state"], "offline", "{id}: {st}");
        assert!(
            st["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{id}: {st}"
        );
        for tag in ["speed", "temp"] {
            let s = samples
                .get(&(id.to_owned(), tag.to_owned()))
                .unwrap_or_else(|| panic!("{id}/{tag}: no bad sample"));
            assert_eq!(
                s.len(),
                1,
                "{id}/{tag}: bad quality must be published once, got {s:?}"
            );
            assert_eq!(s[0]["quality"], "bad");
            assert_eq!(s[0]["value"], Json::Null);
            assert_eq!(s[0]["seq"], 1);
        }
    }
    for slow in ["hang", "trickle"] {
        let error = status[slow]["error"].as_str().unwrap();
        assert!(error.contains("no answer within"), "{slow}: {error}");
    }
    let exc_error = status["exception"]["error"].as_str().unwrap();
    assert!(exc_error.contains("exception"), "{exc_error}");

    // The absent device appears: the driver reconnects and data flows with good quality.
    // The status travels among the samples: online arrives before the first good sample.
    let _late = Device::start(speed_and_temp(7), Behaviour::Healthy, late_port).await;
    let mut online = false;
    let mut first_good: Option<Json> = None;
    while first_good.is_none() {
        let m = sub
            .expect(
                Duration::from_secs(15),
                "the late device online with data",
                |m| m.topic.starts_with("faults/late/"),
            )
            .await;
        let j = m.json();
        if m.topic == "faults/late/_status" {
            online = j["state"] == "online" && j["error"].is_null();
        } else if m.topic == "faults/late/speed" && j["quality"] == "good" {
            assert!(
                online,
                "a good sample of the late device before its online status"
            );
            first_good = Some(j);
        }
    }
    let good = first_good.unwrap();
    assert_eq!(good["value"], 7);
    assert_eq!(good["seq"], 2, "seq continues after the one bad sample");
    assert!(gw.is_running());
}
