//! The HTTP API of a running gateway: status codes, JSON shapes, history bounds, metrics,
//! Server-Sent Events, and the bearer-token rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shopfloor_core::Value;
use shopfloor_modbus::{Area, DataType, WordOrder};
use shopfloor_tests::device::{Behaviour, Device, Memory};
use shopfloor_tests::free_port;
use shopfloor_tests::gateway::{GatewayProcess, run_to_end};
use shopfloor_tests::http::{first_event, get, wait_ready};
use std::net::SocketAddr;
use std::time::Duration;

async fn device() -> Device {
    let mut m = Memory::default();
    m.put(
        Area::Holding,
        0,
        DataType::F32,
        WordOrder::ABCD,
        Value::F64(1234.5),
    );
    m.put(
        Area::Holding,
        2,
        DataType::U16,
        WordOrder::ABCD,
        Value::U64(7),
    );
    Device::start(m, Behaviour::Healthy, 0).await
}

fn config(http: &str, extra: &str, device: &str) -> String {
    format!(
        r#"
[gateway]
name = "api"
http = "{http}"
{extra}

[[machine]]
id = "cnc-1"
kind = "cnc"
protocol = "modbus-tcp"
address = "{device}"
poll_interval = "100ms"

  [[machine.tag]]
  name = "speed"
  area = "holding"
  address = 0
  type = "f32"
  unit = "rpm"

  [[machine.tag]]
  name = "parts"
  area = "holding"
  address = 2
  type = "u16"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_with_the_contract_shapes() {
    let dev = device().await;
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let gw = GatewayProcess::start(&config(&addr.to_string(), "", &dev.addr.to_string()));
    assert!(wait_ready(addr, Duration::from_secs(20)), "{}", gw.log());

    let health = get(addr, "/health", None);
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");

    // Wait (bounded) for the first poll to reach the live store.
    let machines = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let r = get(addr, "/api/machines", None);
            let j = r.json();
            if j[0]["tags"][0]["value"].is_number() || std::time::Instant::now() > deadline {
                return j;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    let m = &machines[0];
    assert_eq!(m["id"], "cnc-1");
    assert_eq!(m["kind"], "cnc");
    assert_eq!(m["protocol"], "modbus-tcp");
    assert_eq!(m["state"], "online");
    assert!(m["last_seen_ms"].as_i64().unwrap() > 1_700_000_000_000);
    assert_eq!(m["tags"][0]["name"], "speed");
    assert_eq!(m["tags"][0]["value"], 1234.5);
    assert_eq!(m["tags"][0]["unit"], "rpm");
    assert_eq!(m["tags"][0]["quality"], "good");
    assert_eq!(m["tags"][1]["value"], 7);
    assert!(m["tags"][1]["unit"].is_null());

    let h = get(
        addr,
        "/api/machines/cnc-1/history?tag=speed&seconds=60",
        None,
    );
    assert_eq!(h.status, 200);
    let points = h.json();
    let points = points.as_array().unwrap();
    assert!(!points.is_empty());
    assert!(
        points
            .windows(2)
            .all(|w| w[0]["timestamp_ms"].as_i64() <= w[1]["timestamp_ms"].as_i64())
    );
    assert_eq!(points[0]["value"], 1234.5);
    assert_eq!(points[0]["quality"], "good");

    assert_eq!(
        get(addr, "/api/machines/nope/history?tag=speed", None).status,
        404
    );
    assert_eq!(
        get(addr, "/api/machines/cnc-1/history?tag=nope", None).status,
        404
    );
    assert_eq!(get(addr, "/api/machines/cnc-1/history", None).status, 400);
    assert_eq!(
        get(
            addr,
            "/api/machines/cnc-1/history?tag=speed&seconds=0",
            None
        )
        .status,
        400
    );
    assert_eq!(
        get(
            addr,
            "/api/machines/cnc-1/history?tag=speed&seconds=x",
            None
        )
        .status,
        400
    );
    assert_eq!(get(addr, "/no/such/path", None).status, 404);

    let metrics = get(addr, "/metrics", None);
    assert_eq!(metrics.status, 200);
    for needle in [
        "shopfloor_samples_total{machine=\"cnc-1\"} ",
        "shopfloor_samples_dropped_total 0",
        "shopfloor_machine_up{machine=\"cnc-1\"} 1",
        "shopfloor_poll_duration_seconds_bucket{machine=\"cnc-1\",le=\"+Inf\"} ",
        "shopfloor_poll_duration_seconds_count{machine=\"cnc-1\"} ",
        "shopfloor_sink_sent_total{sink=\"live\"} ",
        "shopfloor_sink_backlog{sink=\"live\"} ",
    ] {
        assert!(
            metrics.body.contains(needle),
            "{needle} missing in\n{}",
            metrics.body
        );
    }
    let samples: u64 = metrics
        .body
        .lines()
        .find_map(|l| l.strip_prefix("shopfloor_samples_total{machine=\"cnc-1\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(samples >= 2);

    let event = tokio::task::spawn_blocking(move || first_event(addr, "/api/stream", None))
        .await
        .unwrap();
    let batch: serde_json::Value = serde_json::from_str(&event).unwrap();
    let first = &batch[0];
    assert_eq!(first["machine"], "cnc-1");
    assert!(
        first["tag"] == "speed" || first["tag"] == "parts",
        "{first}"
    );
    assert!(first["seq"].as_u64().unwrap() >= 1);
    assert_eq!(first["quality"], "good");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_every_path_but_health_needs_the_token() {
    let dev = device().await;
    let port = free_port();
    let cfg = config(
        &format!("0.0.0.0:{port}"),
        "http_token_env = \"SHOPFLOOR_TEST_HTTP_TOKEN\"",
        &dev.addr.to_string(),
    );
    let gw = GatewayProcess::start_with_env(&cfg, &[("SHOPFLOOR_TEST_HTTP_TOKEN", "t0ken")]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(wait_ready(addr, Duration::from_secs(20)), "{}", gw.log());
    assert_eq!(get(addr, "/health", None).status, 200);
    for path in [
        "/",
        "/metrics",
        "/api/machines",
        "/api/machines/cnc-1/history?tag=speed",
    ] {
        let r = get(addr, path, None);
        assert_eq!(r.status, 401, "{path}");
        assert!(
            r.headers
                .to_ascii_lowercase()
                .contains("www-authenticate: bearer")
        );
        assert_eq!(get(addr, path, Some("wrong")).status, 401, "{path}");
        assert_eq!(get(addr, path, Some("t0ken")).status, 200, "{path}");
        // Browsers (the dashboard's EventSource) pass it as a query parameter instead.
        let sep = if path.contains('?') { '&' } else { '?' };
        let with = |t: &str| format!("{path}{sep}access_token={t}");
        assert_eq!(get(addr, &with("wrong"), None).status, 401, "{path}");
        assert_eq!(get(addr, &with("t0ken"), None).status, 200, "{path}");
    }
    // The page's scripts and styles are behind the token too.
    assert_eq!(get(addr, "/dashboard.js", None).status, 401);
    let page = get(addr, "/dashboard.js?access_token=t0ken", None);
    assert_eq!(page.status, 200);
    assert!(page.headers.contains("text/javascript"), "{}", page.headers);
}

#[test]
fn a_missing_token_variable_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    std::fs::write(
        &path,
        config(
            &format!("0.0.0.0:{}", free_port()),
            "http_token_env = \"SHOPFLOOR_TEST_UNSET_TOKEN\"",
            "127.0.0.1:1",
        ),
    )
    .unwrap();
    let p = path.display().to_string();
    let (code, _, err) = run_to_end(&["run", "-c", &p]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "{p}:5:18: environment variable SHOPFLOOR_TEST_UNSET_TOKEN is not set"
        )),
        "{err}"
    );
}

/// `/health` answers 200 and `degraded` with each problem named: a broker that refuses the
/// gateway's credentials (at once, not after the grace) and a machine that does not answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_degraded_and_names_each_problem() {
    let broker = shopfloor_tests::mosquitto::Mosquitto::start_with("allow_anonymous false\n");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let absent = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "[gateway]\nname = \"health\"\nhttp = \"{addr}\"\n[mqtt]\nurl = \"{}\"\ntopic_prefix = \"h\"\n{}",
        broker.url(),
        shopfloor_tests::device::speed_and_temp_machine("gone", &absent, 100, 200),
    );
    let gw = GatewayProcess::start(&config);
    assert!(wait_ready(addr, Duration::from_secs(20)), "{}", gw.log());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let health = loop {
        let reply = get(addr, "/health", None);
        assert_eq!(reply.status, 200, "degraded is still 200");
        let j = reply.json();
        let problems: Vec<String> = j["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect();
        let machine = problems
            .iter()
            .any(|p| p.starts_with("machine gone offline: "));
        let mqtt = problems
            .iter()
            .any(|p| p.starts_with("mqtt: the destination refuses our credentials"));
        if machine && mqtt {
            break j;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "problems {problems:?}\n{}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["machines_online"], 0);
}
