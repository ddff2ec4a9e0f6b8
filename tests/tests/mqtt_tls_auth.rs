//! `mqtts://` with a configured CA and a client certificate, and a username with its password
//! from the environment, against a real mosquitto that requires all of them; a wrong password is
//! refused without stopping the gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shopfloor_core::Value;
use shopfloor_modbus::{Area, DataType, WordOrder};
use shopfloor_tests::device::{Behaviour, Device, Memory};
use shopfloor_tests::free_port;
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::http::{get, metric, wait_ready};
use shopfloor_tests::mosquitto::Mosquitto;
use shopfloor_tests::pki::Pki;
use shopfloor_tests::subscriber::Subscriber;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn config(pki: &Pki, tls_port: u16, device: &str, qos: u8) -> String {
    format!(
        r#"
[gateway]
name = "tls-gw"

[mqtt]
url = "mqtts://127.0.0.1:{tls_port}"
topic_prefix = "secure"
qos = {qos}
username = "gateway"
password_env = "SHOPFLOOR_TEST_MQTT_PASSWORD"
ca_file = "{}"
client_cert = "{}"
client_key = "{}"

[[machine]]
id = "press-1"
protocol = "modbus-tcp"
address = "{device}"
poll_interval = "100ms"

  [[machine.tag]]
  name = "pressure"
  area = "input"
  address = 0
  type = "f32"
  unit = "bar"
"#,
        pki.ca.display(),
        pki.client_cert.display(),
        pki.client_key.display()
    )
}

async fn device() -> Device {
    let mut m = Memory::default();
    m.put(
        Area::Input,
        0,
        DataType::F32,
        WordOrder::ABCD,
        Value::F64(812.25),
    );
    Device::start(m, Behaviour::Healthy, 0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificate_and_password_delivers_at_qos_0_and_1() {
    let pki = Pki::new();
    let broker = Mosquitto::start_tls(&pki, "gateway", "s3cret");
    let tls_port = broker.tls_port.unwrap();
    let dev = device().await;
    for qos in [1, 0] {
        let mut sub = Subscriber::start(broker.port, "secure/press-1/pressure").await;
        let gw = GatewayProcess::start_with_env(
            &config(&pki, tls_port, &dev.addr.to_string(), qos),
            &[("SHOPFLOOR_TEST_MQTT_PASSWORD", "s3cret")],
        );
        let m = sub
            .expect(Duration::from_secs(15), "a sample over TLS", |_| true)
            .await;
        let j = m.json();
        assert_eq!(j["value"], 812.25, "qos {qos}");
        assert_eq!(m.qos, qos, "the sample was published at another QoS");
        assert_eq!(j["unit"], "bar");
        drop(gw);
    }
}

/// A wrong password: `/health` names the refused credentials, and the gateway keeps going: it
/// tries the broker again and again (its error counter rises) while it keeps reading the
/// machine (its sample counter rises) and answering HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_and_the_gateway_keeps_running() {
    let pki = Pki::new();
    let broker = Mosquitto::start_tls(&pki, "gateway", "s3cret");
    let dev = device().await;
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let cfg = config(&pki, broker.tls_port.unwrap(), &dev.addr.to_string(), 1).replace(
        "name = \"tls-gw\"\n",
        &format!("name = \"tls-gw\"\nhttp = \"{http}\"\n"),
    );
    let mut gw = GatewayProcess::start_with_env(&cfg, &[("SHOPFLOOR_TEST_MQTT_PASSWORD", "wrong")]);
    assert!(wait_ready(http, Duration::from_secs(30)), "{}", gw.log());
    let counters = || {
        let body = get(http, "/metrics", None).body;
        (
            metric(&body, "shopfloor_sink_errors_total{sink=\"mqtt\"}"),
            metric(&body, "shopfloor_samples_total{machine=\"press-1\"}"),
        )
    };
    let (errors, samples) = counters();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (e, s) = counters();
        if e >= errors + 3 && s > samples {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "errors {errors} -> {e}, samples {samples} -> {s}\n{}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gw.is_running(), "{}", gw.log());
    let health = get(http, "/health", None).json();
    assert!(
        health["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().contains("refuses our credentials")),
        "{health}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_password_variable_stops_the_start_with_its_position() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    std::fs::write(&path, config(&pki, 1, "127.0.0.1:1", 1)).unwrap();
    let p = path.display().to_string();
    let (code, _, err) = shopfloor_tests::gateway::run_to_end(&["run", "-c", &p]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "{p}:10:16: environment variable SHOPFLOOR_TEST_MQTT_PASSWORD is not set"
        )),
        "{err}"
    );
}

/// A recorder on the same secured broker, with its own credentials and trust (CA file, client
/// certificate, username and password from the environment): it stores what the gateway
/// publishes over TLS, and with a wrong password it stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_connects_with_its_credentials_over_tls() {
    let pki = Pki::new();
    let broker = Mosquitto::start_tls(&pki, "gateway", "s3cret");
    let tls_port = broker.tls_port.unwrap();
    let dev = device().await;
    let env = [("SHOPFLOOR_TEST_MQTT_PASSWORD", "s3cret")];
    let _gw =
        GatewayProcess::start_with_env(&config(&pki, tls_port, &dev.addr.to_string(), 1), &env);
    let recorder = format!(
        r#"
[gateway]
name = "tls-recorder"

[record]
url = "mqtts://127.0.0.1:{tls_port}"
topics = ["secure/#"]
username = "gateway"
password_env = "SHOPFLOOR_TEST_MQTT_PASSWORD"
ca_file = "{}"
client_cert = "{}"
client_key = "{}"

[csv]
dir = "data"
"#,
        pki.ca.display(),
        pki.client_cert.display(),
        pki.client_key.display()
    );
    let rec = GatewayProcess::start_with_env(&recorder, &env);
    let file = |rec: &GatewayProcess| {
        let dir = rec.dir.path().join("data/press-1");
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .collect::<String>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !file(&rec).contains(",press-1,pressure,812.25,good,bar") {
        assert!(
            Instant::now() < deadline,
            "the recorder stored nothing over TLS:\n{}",
            rec.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The same recorder with a wrong password: the broker refuses it, and it stores nothing
    // while the gateway's samples keep coming (a subscriber sees them).
    let wrong =
        GatewayProcess::start_with_env(&recorder, &[("SHOPFLOOR_TEST_MQTT_PASSWORD", "nope")]);
    let mut sub = Subscriber::start(broker.port, "secure/press-1/pressure").await;
    for _ in 0..10 {
        sub.expect(Duration::from_secs(10), "a sample", |_| true)
            .await;
    }
    assert!(file(&wrong).is_empty(), "stored with a wrong password");
}
