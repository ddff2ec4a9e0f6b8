#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::ring::{self, Consumer, WhenFull};
use crate::status::MachineStatus;
use proptest::prelude::*;
use std::sync::Mutex;

#[derive(Default)]
struct Board(Mutex<Vec<MachineStatus>>);

impl StatusReporter for Board {
    fn report(&self, _: MachineId, status: MachineStatus) {
        self.0.lock().unwrap().push(status);
    }
}

fn emitter(tags: usize) -> (Emitter, Consumer, Arc<Board>) {
    let (mut producers, consumer) = ring::channel(1 << 12, 1, WhenFull::DropNewest).unwrap();
    let board = Arc::new(Board::default());
    let e = Emitter::new(
        MachineId(0),
        "m",
        tags,
        producers.pop().unwrap(),
        board.clone(),
    );
    (e, consumer, board)
}

fn drain(consumer: &mut Consumer) -> Vec<Sample> {
    let mut out = Vec::new();
    consumer.drain(&mut out, usize::MAX);
    out
}

/// One step a driver can take.
#[derive(Debug, Clone)]
enum Step {
    Good(usize, i64),
    Bad(usize),
    Offline,
    Online,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0usize..4, -3i64..3).prop_map(|(t, v)| Step::Good(t, v)),
        1 => (0usize..4).prop_map(Step::Bad),
        1 => Just(Step::Offline),
        1 => Just(Step::Online),
    ]
}

proptest! {
    /// Whatever a driver does: seq per tag runs 1, 2, 3 without a gap; a tag is never bad
    /// twice in a row; no good sample is sent while the stream says the machine is not online;
    /// and statuses alternate (no status twice). The same with report by exception, where
    /// also the first reading of a tag after online always goes out.
    #[test]
    fn the_stream_keeps_the_contracts_rules(
        steps in prop::collection::vec(step(), 0..200),
        by_exception in any::<bool>(),
    ) {
        let (e, mut consumer, board) = emitter(4);
        let mut e = if by_exception {
            e.with_publish(Publish::Change { heartbeat: None, deadbands: vec![1.0; 4] })
        } else {
            e
        };
        let mut first_after_online = [true; 4];
        let mut ts = 1_000;
        for s in steps {
            ts += 1;
            match s {
                Step::Good(t, v) => {
                    let before = e.batch.len();
                    e.reading(t, ts, Value::I64(v), Quality::Good);
                    if std::mem::take(&mut first_after_online[t]) {
                        prop_assert!(e.batch.len() > before, "first reading held back");
                    }
                }
                Step::Bad(t) => e.reading(t, ts, Value::Null, Quality::Bad),
                Step::Offline => {
                    e.offline("gone".into());
                    first_after_online = [true; 4];
                }
                Step::Online => e.online(),
            }
            e.flush();
        }
        let out = drain(&mut consumer);
        let mut seq = [0u64; 4];
        let mut bad = [false; 4];
        let mut last = None;
        let mut statuses = 0;
        for s in &out {
            if let Some((state, _)) = s.as_status() {
                prop_assert_ne!(Some(state), last, "a status repeated");
                last = Some(state);
                statuses += 1;
                continue;
            }
            let online = last == Some(MachineState::Online);
            let t = s.tag.index();
            prop_assert_eq!(s.seq, seq[t] + 1);
            seq[t] = s.seq;
            let is_bad = s.quality() == Quality::Bad;
            prop_assert!(!(is_bad && bad[t]), "bad twice in a row");
            bad[t] = is_bad;
            prop_assert!(is_bad || online, "a good sample outside online");
        }
        prop_assert_eq!(board.0.lock().unwrap().len(), statuses);
    }
}

#[test]
fn offline_follows_the_last_good_sample_and_online_precedes_the_first() {
    let (mut e, mut consumer, board) = emitter(2);
    e.connecting();
    e.reading(0, 10, Value::F64(1.5), Quality::Good);
    e.reading(1, 10, Value::Bool(true), Quality::Good);
    e.offline("connect: refused".into());
    e.offline("connect: refused".into()); // no second round of bad samples or status
    e.reading(0, 20, Value::F64(2.5), Quality::Good);
    e.flush();
    let kinds: Vec<String> = drain(&mut consumer)
        .iter()
        .map(|s| match s.as_status() {
            Some((state, error)) => format!("{}{error}", state.as_str()),
            None => format!("{}:{}:{}", s.tag.0, s.seq, s.quality().as_str()),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "connecting",
            "online",
            "0:1:good",
            "1:1:good",
            "0:2:bad",
            "1:2:bad",
            "offlineconnect: refused",
            "online",
            "0:3:good",
        ]
    );
    let states: Vec<_> = board.0.lock().unwrap().iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [
            MachineState::Connecting,
            MachineState::Online,
            MachineState::Offline,
            MachineState::Online
        ]
    );
}

#[test]
fn the_status_is_never_dated_after_the_first_good_sample_nor_before_the_last() {
    let (mut e, mut consumer, _) = emitter(1);
    let now = now_ms();
    e.reading(0, now - 5_000, Value::U64(1), Quality::Good);
    e.offline("timeout".into());
    e.flush();
    let out = drain(&mut consumer);
    assert_eq!(out[0].as_status().map(|s| s.0), Some(MachineState::Online));
    assert!(out[0].timestamp_ms <= out[1].timestamp_ms);
    let last = out.last().unwrap();
    assert_eq!(last.as_status().map(|s| s.0), Some(MachineState::Offline));
    assert!(last.timestamp_ms >= out[out.len() - 2].timestamp_ms);
}

#[test]
fn unchanged_text_shares_one_allocation() {
    let (mut e, mut consumer, _) = emitter(1);
    e.reading(0, 1, Value::Text(Text::from("PRG-7")), Quality::Good);
    e.reading(0, 2, Value::Text(Text::from("PRG-7")), Quality::Good);
    e.flush();
    let out = drain(&mut consumer);
    let texts: Vec<Text> = out
        .iter()
        .filter(|s| !s.is_status())
        .map(|s| match s.to_value() {
            Value::Text(t) => t,
            v => panic!("{v:?}"),
        })
        .collect();
    // Two samples, the emitter's memory and the two handles here.
    assert_eq!(texts[0].strong_count(), 5);
}

#[test]
fn a_tag_out_of_range_is_ignored() {
    let (mut e, mut consumer, _) = emitter(1);
    e.reading(5, 1, Value::U64(1), Quality::Good);
    e.bad_once(5, 1);
    e.flush();
    assert!(drain(&mut consumer).is_empty());
}

#[test]
fn unchanged_readings_wait_for_their_heartbeat_and_keep_seq_without_gaps() {
    let (e, mut consumer, _) = emitter(2);
    let mut e = e.with_publish(Publish::Change {
        heartbeat: Some(Duration::from_millis(1)),
        deadbands: vec![0.5, 0.0],
    });
    // One poll's stamp: a heartbeat of a polled tag is due by the readings' stamps.
    let t = now_ms();
    e.reading(0, t, Value::F64(10.0), Quality::Good);
    e.reading(0, t, Value::F64(10.2), Quality::Good);
    e.reading(1, t, Value::Bool(true), Quality::Good);
    e.reading(1, t, Value::Bool(true), Quality::Good);
    assert_eq!(e.heartbeats(), 0, "none due within the same millisecond");
    let due = e.next_heartbeat().unwrap();
    while now_ms() < due {
        std::thread::yield_now();
    }
    assert_eq!(e.heartbeats(), 2);
    e.flush();
    let got: Vec<(u16, u64, Value)> = drain(&mut consumer)
        .iter()
        .filter(|s| !s.is_status())
        .map(|s| (s.tag.0, s.seq, s.to_value()))
        .collect();
    assert_eq!(
        got,
        [
            (0, 1, Value::F64(10.0)),
            (1, 1, Value::Bool(true)),
            (0, 2, Value::F64(10.0)),
            (1, 2, Value::Bool(true)),
        ]
    );
}

#[test]
fn a_float_that_is_not_finite_is_bad_each_poll_under_every_and_once_under_change() {
    for (publish, want) in [
        (Publish::Every, 3),
        (
            Publish::Change {
                heartbeat: None,
                deadbands: vec![0.0],
            },
            1,
        ),
    ] {
        let (e, mut consumer, _) = emitter(1);
        let mut e = e.with_publish(publish);
        for ts in 1..=3 {
            e.reading(0, ts, Value::F64(f64::NAN), Quality::Good);
        }
        e.bad_once(0, 4);
        e.flush();
        let bad: Vec<u64> = drain(&mut consumer)
            .iter()
            .filter(|s| !s.is_status())
            .inspect(|s| assert_eq!(s.quality(), Quality::Bad))
            .map(|s| s.seq)
            .collect();
        assert_eq!(bad.len(), want, "{bad:?}");
    }
}

/// A reporter of a machine restarted by a new configuration and then removed.
#[derive(Default)]
struct Lineage {
    ended: Mutex<Option<Vec<u64>>>,
}

impl StatusReporter for Lineage {
    fn report(&self, _: MachineId, _: MachineStatus) {}
    fn first_seqs(&self, _: MachineId) -> Vec<u64> {
        vec![41, 7]
    }
    fn ended(&self, _: MachineId, seqs: &[u64]) -> Option<String> {
        *self.ended.lock().unwrap() = Some(seqs.to_vec());
        Some("removed from the configuration".into())
    }
}

#[test]
fn a_restarted_emitter_continues_seq_and_a_removed_one_says_goodbye_in_the_stream() {
    let (mut producers, mut consumer) = ring::channel(64, 1, WhenFull::DropNewest).unwrap();
    let lineage = Arc::new(Lineage::default());
    let mut e = Emitter::new(
        MachineId(0),
        "m",
        3,
        producers.pop().unwrap(),
        lineage.clone(),
    );
    for tag in 0..3 {
        e.reading(tag, 10, Value::I64(1), Quality::Good);
    }
    e.flush();
    drop(e);
    let out = drain(&mut consumer);
    let seqs: Vec<(u16, u64)> = out
        .iter()
        .filter(|s| !s.is_status())
        .map(|s| (s.tag.0, s.seq))
        .collect();
    // The last three are the goodbye: every tag bad once, after the readings.
    assert_eq!(seqs, vec![(0, 42), (1, 8), (2, 1), (0, 43), (1, 9), (2, 2)]);
    let last = out.last().unwrap();
    assert!(last.is_status(), "the offline status comes last");
    assert_eq!(*lineage.ended.lock().unwrap(), Some(vec![42, 8, 1]));
}
