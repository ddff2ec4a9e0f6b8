//! `[record]` against a real mosquitto: gateways publish (layout `tag` and layout `machine`), a
//! recorder stores what they published, row for row the same as the gateways' own CSV files;
//! it learns each machine's kind from its status; two recorders in one share group split the
//! stream with nothing stored twice and nothing lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shopfloor_tests::device::Device;
use shopfloor_tests::free_port;
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::http::{get, wait_ready};
use shopfloor_tests::mosquitto::Mosquitto;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

async fn device() -> Device {
    shopfloor_tests::device::moving().await
}

fn gateway(broker: &Mosquitto, name: &str, machine: &str, layout: &str, device: &Device) -> String {
    format!(
        r#"
[gateway]
name = "{name}"

[mqtt]
url = "{url}"
topic_prefix = "hall/{name}"
layout = "{layout}"

[csv]
dir = "data"

[[machine]]
id = "{machine}"
kind = "press"
protocol = "modbus-tcp"
address = "{addr}"
poll_interval = "50ms"
{tags}"#,
        url = broker.url(),
        addr = device.addr,
        tags = shopfloor_tests::device::MOVING_TAGS,
    )
}

fn recorder(broker: &Mosquitto, name: &str, share: Option<&str>, http: Option<&str>) -> String {
    let share = share.map_or(String::new(), |g| format!("share_group = \"{g}\"\n"));
    let http = http.map_or(String::new(), |h| format!("http = \"{h}\"\n"));
    format!(
        "[gateway]\nname = \"{name}\"\n{http}\n[record]\nurl = \"{}\"\ntopics = [\"hall/#\"]\n{share}\n[csv]\ndir = \"data\"\n",
        broker.url()
    )
}

/// The rows of a process's CSV files for `machine`, without the header, with the unit column
/// left out (a recorder knows a unit only from layout `tag`).
fn rows(dir: &Path, machine: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(files) = std::fs::read_dir(dir.join("data").join(machine)) else {
        return out;
    };
    for f in files {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        for line in text.lines().skip(1) {
            let cut = line.rfind(',').unwrap();
            out.insert(line[..cut].to_owned());
        }
    }
    out
}

fn wait_for_rows(dirs: &[&Path], machine: &str, want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n: usize = dirs.iter().map(|d| rows(d, machine).len()).sum();
        if n >= want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_stores_what_gateways_publish_in_both_layouts() {
    let broker = Mosquitto::start();
    let dev = device().await;
    let http = format!("127.0.0.1:{}", free_port());
    let mut rec = GatewayProcess::start(&recorder(&broker, "rec", None, Some(&http)));
    rec.expect_event("recording", Duration::from_secs(20));
    let mut tag_gw = GatewayProcess::start(&gateway(&broker, "gw-a", "press-1", "tag", &dev));
    let mut machine_gw =
        GatewayProcess::start(&gateway(&broker, "gw-b", "press-2", "machine", &dev));
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        tag_gw.terminate(Duration::from_secs(5)).success(),
        "{}",
        tag_gw.log()
    );
    assert!(
        machine_gw.terminate(Duration::from_secs(5)).success(),
        "{}",
        machine_gw.log()
    );

    for (gw, machine) in [(&tag_gw, "press-1"), (&machine_gw, "press-2")] {
        let published = rows(gw.dir.path(), machine);
        assert!(published.len() > 100, "{machine}: {} rows", published.len());
        let n = wait_for_rows(&[rec.dir.path()], machine, published.len());
        let recorded = rows(rec.dir.path(), machine);
        let missing: Vec<_> = published.difference(&recorded).take(5).collect();
        let extra: Vec<_> = recorded.difference(&published).take(5).collect();
        assert_eq!(
            recorded,
            published,
            "{machine}: {n} recorded; missing {missing:?}, extra {extra:?}\n{}",
            rec.log()
        );
    }
    // The recorder knows the machines under their kind, with the unit layout `tag` carries.
    assert!(wait_ready(http.parse().unwrap(), Duration::from_secs(5)));
    let machines = get(http.parse().unwrap(), "/api/machines", None).json();
    let press1 = machines
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "press-1")
        .unwrap();
    assert_eq!(press1["kind"], "press");
    assert_eq!(press1["protocol"], "mqtt");
    let speed = press1["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "speed")
        .unwrap();
    assert_eq!(speed["unit"], "rpm");
    assert!(
        rec.terminate(Duration::from_secs(5)).success(),
        "{}",
        rec.log()
    );
    assert!(
        !rec.log().contains("not a shopfloor message"),
        "{}",
        rec.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_recorders_in_a_share_group_split_the_stream() {
    let broker = Mosquitto::start();
    let dev = device().await;
    let mut r1 = GatewayProcess::start(&recorder(&broker, "rec-1", Some("recorders"), None));
    let mut r2 = GatewayProcess::start(&recorder(&broker, "rec-2", Some("recorders"), None));
    for r in [&r1, &r2] {
        r.expect_event("recording", Duration::from_secs(20));
    }
    let mut gw = GatewayProcess::start(&gateway(&broker, "gw-a", "press-1", "tag", &dev));
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        gw.terminate(Duration::from_secs(5)).success(),
        "{}",
        gw.log()
    );
    let published = rows(gw.dir.path(), "press-1");
    assert!(published.len() > 100, "{} rows", published.len());
    wait_for_rows(&[r1.dir.path(), r2.dir.path()], "press-1", published.len());
    let (a, b) = (
        rows(r1.dir.path(), "press-1"),
        rows(r2.dir.path(), "press-1"),
    );
    assert!(
        !a.is_empty() && !b.is_empty(),
        "one recorder got everything: {} / {}",
        a.len(),
        b.len()
    );
    assert!(a.is_disjoint(&b), "a sample stored twice");
    let union: BTreeSet<String> = a.union(&b).cloned().collect();
    assert_eq!(union, published, "samples lost");
    for r in [&mut r1, &mut r2] {
        assert!(r.terminate(Duration::from_secs(5)).success(), "{}", r.log());
    }
}

/// The value of the counter line `name` (with its labels) in a `/metrics` text, 0 if absent.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_are_skipped_counted_and_never_leave_the_data_directory() {
    use rumqttc::{AsyncClient, MqttOptions, QoS};
    let broker = Mosquitto::start();
    // Retained, so that the recorder gets them whenever its subscription is in place.
    let (client, mut events) = AsyncClient::new(
        MqttOptions::new(format!("hostile-{}", free_port()), "127.0.0.1", broker.port),
        16,
    );
    let pump = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    let payload = br#"{"timestamp_ms":1795379533423,"value":1,"quality":"good","seq":1}"#;
    for topic in [
        "hall/../x",
        "hall/gw/a b/t",
        "hall/gw/m1/t",
        "hall/gw/m2/t",
        "hall/gw/m3/t",
    ] {
        client
            .publish(topic, QoS::AtLeastOnce, true, payload.to_vec())
            .await
            .unwrap();
    }
    let http = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "[gateway]\nname = \"rec\"\nhttp = \"{http}\"\n[record]\nurl = \"{}\"\ntopics = [\"hall/#\"]\nmax_machines = 2\n[csv]\ndir = \"data\"\n",
        broker.url()
    );
    let mut rec = GatewayProcess::start(&config);
    let addr = http.parse().unwrap();
    assert!(wait_ready(addr, Duration::from_secs(20)), "{}", rec.log());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = get(addr, "/metrics", None).body;
        let name = counter(&m, "shopfloor_record_skipped_total{reason=\"name\"}");
        let full = counter(
            &m,
            "shopfloor_record_skipped_total{reason=\"max_machines\"}",
        );
        if name == 2 && full == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "skipped: name {name}, max_machines {full}\n{}",
            rec.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        rec.terminate(Duration::from_secs(5)).success(),
        "{}",
        rec.log()
    );
    pump.abort();
    let root = rec.dir.path();
    let mut machines: Vec<String> = std::fs::read_dir(root.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    machines.sort();
    assert_eq!(machines, ["m1", "m2"]);
    let outside: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    assert!(
        outside.is_empty(),
        "files outside the data directory: {outside:?}"
    );
}

/// The recorder keeps a persistent session: stopped and started again while a gateway goes on
/// publishing, it gets from the broker what was published meanwhile, and between its two runs
/// every sample the gateway published is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_restarted_mid_stream_stores_what_was_published_while_it_was_away() {
    recorder_lives(2, |rec| {
        assert!(
            rec.terminate(Duration::from_secs(5)).success(),
            "{}",
            rec.log()
        );
    })
    .await;
}

/// SIGKILL at any moment of a stream loses nothing: what the broker had taken was either
/// stored (flushed to the CSV file) before it was acknowledged, or is handed over again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_killed_mid_stream_three_times_stores_every_row() {
    recorder_lives(4, GatewayProcess::kill).await;
}

/// A gateway publishes on while a recorder runs `lives` times in turn, each life but the last
/// ended by `end` mid-stream, and the gateway publishing 100 more rows before the next life
/// starts: every row the gateway published is stored by one of the lives.
async fn recorder_lives(lives: usize, end: impl Fn(&mut GatewayProcess)) {
    let broker = Mosquitto::start();
    let dev = device().await;
    let config = recorder(&broker, "rec", None, None);
    let mut gw: Option<GatewayProcess> = None;
    let mut ended = Vec::new();
    for life in 0..lives {
        let mut rec = GatewayProcess::start(&config);
        rec.expect_event("recording", Duration::from_secs(20));
        // Polled every 10 ms: 500 messages/s, so that a kill always falls while some are
        // on their way from the broker to the file.
        let publisher = gw.get_or_insert_with(|| {
            let fast = gateway(&broker, "gw-a", "press-1", "tag", &dev)
                .replace("poll_interval = \"50ms\"", "poll_interval = \"10ms\"");
            GatewayProcess::start(&fast)
        });
        assert!(
            wait_for_rows(&[rec.dir.path()], "press-1", 50) >= 50,
            "{}",
            rec.log()
        );
        if life + 1 == lives {
            ended.push(rec);
            break;
        }
        end(&mut rec);
        ended.push(rec);
        // Away while the gateway publishes on: at least 100 more rows of it.
        let published_then = rows(publisher.dir.path(), "press-1").len();
        let want = published_then + 100;
        assert!(
            wait_for_rows(&[publisher.dir.path()], "press-1", want) >= want,
            "{}",
            publisher.log()
        );
    }
    let mut publisher = gw.unwrap();
    assert!(
        publisher.terminate(Duration::from_secs(5)).success(),
        "{}",
        publisher.log()
    );
    let published = rows(publisher.dir.path(), "press-1");
    let dirs: Vec<&Path> = ended.iter().map(|r| r.dir.path()).collect();
    wait_for_rows(&dirs, "press-1", published.len());
    let recorded: BTreeSet<String> = dirs.iter().flat_map(|d| rows(d, "press-1")).collect();
    let missing: Vec<_> = published.difference(&recorded).take(5).collect();
    assert!(
        missing.is_empty(),
        "{} of {} published rows never stored, e.g. {missing:?}",
        published.difference(&recorded).count(),
        published.len()
    );
    let last = ended.last_mut().unwrap();
    assert!(
        last.terminate(Duration::from_secs(5)).success(),
        "{}",
        last.log()
    );
}
