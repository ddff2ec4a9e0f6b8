//! Live reconfiguration against a running gateway: SIGHUP with a new file starts what it adds
//! and logs one summary line; an invalid file is logged at FILE:LINE:COL and changes nothing
//! while samples keep flowing; a changed `[gateway] name` is refused; `--watch` applies an
//! edit without a signal. Each outcome is counted in `shopfloor_config_reloads_total`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shopfloor_core::Value;
use shopfloor_modbus::{Area, DataType, WordOrder};
use shopfloor_tests::device::{Behaviour, Device, Memory};
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::mosquitto::Mosquitto;
use shopfloor_tests::subscriber::Subscriber;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

async fn device() -> Device {
    let mut m = Memory::default();
    m.put(
        Area::Holding,
        0,
        DataType::U16,
        WordOrder::ABCD,
        Value::U64(7),
    );
    Device::start(m, Behaviour::Healthy, 0).await
}

fn machine(id: &str, device: &Device) -> String {
    format!(
        "\n[[machine]]\nid = \"{id}\"\nprotocol = \"modbus-tcp\"\naddress = \"{}\"\npoll_interval = \"100ms\"\n\n  [[machine.tag]]\n  name = \"speed\"\n  area = \"holding\"\n  address = 0\n  type = \"u16\"\n",
        device.addr
    )
}

fn config(name: &str, broker: &Mosquitto, http: u16, machines: &str) -> String {
    format!(
        "[gateway]\nname = \"{name}\"\nhttp = \"127.0.0.1:{http}\"\n\n[mqtt]\nurl = \"{}\"\ntopic_prefix = \"hall\"\n{machines}",
        broker.url()
    )
}

fn reloads(http: u16, result: &str) -> u64 {
    let addr = format!("127.0.0.1:{http}").parse().unwrap();
    let metrics = shopfloor_tests::http::get(addr, "/metrics", None).body;
    let key = format!("shopfloor_config_reloads_total{{result=\"{result}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_new_file_refuses_a_bad_one_and_keeps_reading() {
    let broker = Mosquitto::start();
    let (a, b) = (device().await, device().await);
    let http = shopfloor_tests::free_port();
    let mut sub = Subscriber::start(broker.port, "hall/+/speed").await;
    let gw = GatewayProcess::start(&config("hall", &broker, http, &machine("a", &a)));
    sub.expect(WAIT, "a sample of a", |m| m.topic == "hall/a/speed")
        .await;

    // b added: it flows, and one line says what happened.
    let both = format!("{}{}", machine("a", &a), machine("b", &b));
    gw.rewrite(&config("hall", &broker, http, &both));
    gw.hangup();
    gw.expect_event("config_reloaded", WAIT);
    sub.expect(WAIT, "a sample of b", |m| m.topic == "hall/b/speed")
        .await;
    assert!(
        gw.log().contains("config reloaded: added b; 1 unchanged"),
        "{}",
        gw.log()
    );
    assert_eq!(reloads(http, "applied"), 1);

    // A file with an unknown key: its position logged, nothing changes, a and b read on.
    let bad = config("hall", &broker, http, &both).replace("poll_interval", "poll_intervall");
    gw.rewrite(&bad);
    gw.hangup();
    gw.expect_event("config_invalid", WAIT);
    assert!(gw.log().contains("gateway.toml:"), "{}", gw.log());
    let before = sub.collect_for(Duration::from_millis(100)).await.len();
    let after = sub.collect_for(Duration::from_secs(1)).await;
    assert!(
        after.iter().any(|m| m.topic == "hall/a/speed")
            && after.iter().any(|m| m.topic == "hall/b/speed"),
        "samples stopped after the invalid file ({before} before)"
    );
    assert_eq!(reloads(http, "invalid"), 1);

    // A file that cannot start (its HTTP port taken): the server goes on where it was, and
    // the machines are not touched (b's seq goes on).
    let last_b = sub
        .expect(WAIT, "a sample of b", |m| m.topic == "hall/b/speed")
        .await
        .json()["seq"]
        .as_u64()
        .unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    gw.rewrite(&config("hall", &broker, port, &both));
    gw.hangup();
    gw.expect_event("config_not_started", WAIT);
    let next = sub
        .expect(WAIT, "b read on", |m| m.topic == "hall/b/speed")
        .await;
    assert!(
        next.json()["seq"].as_u64().unwrap() > last_b,
        "b started again"
    );
    assert_eq!(reloads(http, "not_started"), 1);
    assert_eq!(reloads(http, "applied"), 1);
    drop(taken);

    // Another name: refused as a whole, with what to do.
    gw.rewrite(&config("hall-2", &broker, http, &both));
    gw.hangup();
    gw.expect_event("config_restart_needed", WAIT);
    assert!(gw.log().contains("[gateway] name"), "{}", gw.log());
    assert_eq!(reloads(http, "restart_needed"), 1);
    assert_eq!(reloads(http, "applied"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_watch_an_edit_is_applied_without_a_signal() {
    let broker = Mosquitto::start();
    let (a, b) = (device().await, device().await);
    let http = shopfloor_tests::free_port();
    let mut sub = Subscriber::start(broker.port, "hall/+/speed").await;
    let gw = GatewayProcess::spawn(
        &["run", "--watch"],
        &config("hall", &broker, http, &machine("a", &a)),
        &[],
    );
    sub.expect(WAIT, "a sample of a", |m| m.topic == "hall/a/speed")
        .await;
    let both = format!("{}{}", machine("a", &a), machine("b", &b));
    gw.rewrite(&config("hall", &broker, http, &both));
    gw.expect_event("config_reloaded", WAIT);
    sub.expect(WAIT, "a sample of b", |m| m.topic == "hall/b/speed")
        .await;
}
