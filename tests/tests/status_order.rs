//! A machine's status travels among its samples: on one subscription, `online` arrives before
//! the first good sample read after it, and `offline` after the last good sample read before
//! it, for a machine whose connection is cut and restored and for one that answers with
//! exceptions for a while, three times each, with and without a spool.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shopfloor_tests::device::{Behaviour, Device, speed_and_temp, speed_and_temp_machine};
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::link::Link;
use shopfloor_tests::mosquitto::Mosquitto;
use shopfloor_tests::subscriber::{Msg, Subscriber};
use std::time::Duration;
use tokio_modbus::ExceptionCode;

const PREFIX: &str = "order";
const ROUNDS: usize = 3;

/// What arrived for one machine, in order: `online`, `offline`, `good` or `bad`. A status that
/// repeats the one before it is no change and is left out (a new connection publishes the
/// current status at once, and then the spool may hold that same status again).
fn events(log: &[Msg], machine: &str) -> Vec<String> {
    let head = format!("{PREFIX}/{machine}/");
    let mut last_status = String::new();
    log.iter()
        .filter_map(|m| {
            let tag = m.topic.strip_prefix(&head)?;
            let json = m.json();
            let word = if tag == "_status" {
                let state = json["state"].as_str()?.to_owned();
                if state == last_status {
                    return None;
                }
                last_status.clone_from(&state);
                state
            } else {
                json["quality"].as_str()?.to_owned()
            };
            Some(word)
        })
        .collect()
}

fn count(events: &[String], word: &str) -> usize {
    events.iter().filter(|e| *e == word).count()
}

/// Good samples since the last status of `machine`, when that status is `state`.
fn good_since(log: &[Msg], machine: &str, state: &str) -> Option<usize> {
    let ev = events(log, machine);
    let last = ev.iter().rposition(|e| e == "online" || e == "offline")?;
    (ev[last] == state).then(|| count(&ev[last..], "good"))
}

/// Collects into `log` until `done` holds; panics after 20 s.
async fn until(
    sub: &mut Subscriber,
    log: &mut Vec<Msg>,
    what: &str,
    done: impl Fn(&[Msg]) -> bool,
) {
    sub.collect_until(log, Duration::from_secs(20), what, done)
        .await;
}

/// Checks the order rule on what arrived for `machine`, and that it went through every round.
fn assert_in_order(log: &[Msg], machine: &str) {
    let ev = events(log, machine);
    let mut state = "none";
    for (i, e) in ev.iter().enumerate() {
        match e.as_str() {
            "online" | "offline" => state = e,
            "good" => assert_eq!(
                state, "online",
                "{machine}: a good sample at {i} while {state}: {ev:?}"
            ),
            _ => {}
        }
    }
    assert_eq!(count(&ev, "offline"), ROUNDS, "{machine}: {ev:?}");
    assert_eq!(count(&ev, "online"), ROUNDS + 1, "{machine}: {ev:?}");
}

async fn statuses_arrive_in_their_place(spool: bool) {
    let broker = Mosquitto::start();
    let cut = Device::start(speed_and_temp(1500), Behaviour::Healthy, 0).await;
    let link = Link::start(cut.addr).await;
    let refusing = Device::start(speed_and_temp(700), Behaviour::Healthy, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let buffer = if spool {
        format!("[buffer]\nspool_dir = \"{}\"\n", dir.path().display())
    } else {
        String::new()
    };
    let config = format!(
        "[gateway]\nname = \"gw\"\n{buffer}[mqtt]\nurl = \"{}\"\ntopic_prefix = \"{PREFIX}\"\n{}{}",
        broker.url(),
        speed_and_temp_machine("cut", &link.addr.to_string(), 20, 300),
        speed_and_temp_machine("refusing", &refusing.addr.to_string(), 20, 300),
    );
    let mut sub = Subscriber::start(broker.port, &format!("{PREFIX}/#")).await;
    let _gw = GatewayProcess::start(&config);
    let mut log = Vec::new();
    for _ in 0..ROUNDS {
        until(&mut sub, &mut log, "good samples of both", |l| {
            ["cut", "refusing"]
                .iter()
                .all(|m| good_since(l, m, "online").is_some_and(|n| n >= 10))
        })
        .await;
        link.cut();
        refusing.set_behaviour(Behaviour::Exception(ExceptionCode::ServerDeviceFailure));
        until(&mut sub, &mut log, "both offline", |l| {
            ["cut", "refusing"]
                .iter()
                .all(|m| good_since(l, m, "offline").is_some())
        })
        .await;
        link.restore();
        refusing.set_behaviour(Behaviour::Healthy);
    }
    until(
        &mut sub,
        &mut log,
        "good samples after the last round",
        |l| {
            ["cut", "refusing"]
                .iter()
                .all(|m| good_since(l, m, "online").is_some_and(|n| n >= 10))
        },
    )
    .await;
    for machine in ["cut", "refusing"] {
        assert_in_order(&log, machine);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_arrive_in_their_place_among_the_samples() {
    statuses_arrive_in_their_place(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_arrive_in_their_place_among_the_samples_through_the_spool() {
    statuses_arrive_in_their_place(true).await;
}
