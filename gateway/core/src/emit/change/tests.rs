#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use proptest::prelude::*;

fn change(heartbeat_ms: Option<u64>, deadbands: Vec<f64>) -> ChangeFilter {
    let tags = deadbands.len().max(1);
    ChangeFilter::new(
        Publish::Change {
            heartbeat: heartbeat_ms.map(Duration::from_millis),
            deadbands,
        },
        tags,
    )
}

/// Feeds `reading` at `now` and sends it when the filter wants it; says whether it was sent.
fn offer(f: &mut ChangeFilter, tag: usize, value: Value, quality: Quality, now: i64) -> bool {
    let send = f.wants(tag, &value, quality, now);
    if send {
        f.sent(tag, &value, quality, now, now);
    }
    send
}

#[test]
fn a_table_of_readings_and_what_is_sent() {
    let good = Quality::Good;
    // (value, quality, now, sent?) for one tag with deadband 0.5 and a 10 s heartbeat.
    let table: &[(Value, Quality, i64, bool)] = &[
        (Value::F64(20.0), good, 0, true),     // first reading after start
        (Value::F64(20.4), good, 100, false),  // within the deadband
        (Value::F64(20.5), good, 200, false),  // exactly the deadband: not "more than"
        (Value::F64(20.6), good, 300, true),   // beyond it
        (Value::F64(20.2), good, 400, false),  // within it of 20.6, the value last sent
        (Value::F64(20.15), good, 500, false), // 0.45 from 20.6
        (Value::F64(20.09), good, 600, true),  // 0.51 below 20.6: the drift adds up
        (Value::F64(20.09), Quality::Uncertain, 700, true), // quality changed
        (Value::F64(20.09), good, 800, true),
        (Value::F64(20.09), good, 10_799, false),
        (Value::F64(20.09), good, 10_800, true), // heartbeat
        (Value::I64(20), good, 10_900, false),   // the same number as an integer
        (Value::Text("x".into()), good, 11_000, true),
    ];
    let mut f = change(Some(10_000), vec![0.5]);
    for (i, (value, quality, now, want)) in table.iter().enumerate() {
        assert_eq!(
            offer(&mut f, 0, value.clone(), *quality, *now),
            *want,
            "row {i}: {value:?} {quality:?} at {now}"
        );
    }
}

#[test]
fn bools_and_text_change_on_any_difference_and_every_publishes_all() {
    let mut f = change(None, vec![0.0]);
    let g = Quality::Good;
    assert!(offer(&mut f, 0, Value::Bool(false), g, 0));
    assert!(!offer(&mut f, 0, Value::Bool(false), g, 1_000_000));
    assert!(offer(&mut f, 0, Value::Bool(true), g, 1_000_001));
    assert!(offer(&mut f, 0, Value::Text("a".into()), g, 1_000_002));
    assert!(!offer(&mut f, 0, Value::Text("a".into()), g, 1_000_003));
    let mut every = ChangeFilter::new(Publish::Every, 1);
    assert!(!every.filters());
    for now in 0..5 {
        assert!(offer(&mut every, 0, Value::I64(1), g, now));
    }
    assert!(every.due(1 << 40).is_empty());
}

#[test]
fn after_a_reset_and_after_bad_the_next_reading_goes_out() {
    let g = Quality::Good;
    let mut f = change(None, vec![1.0]);
    assert!(offer(&mut f, 0, Value::F64(1.0), g, 0));
    assert!(!offer(&mut f, 0, Value::F64(1.0), g, 1));
    f.reset();
    assert!(offer(&mut f, 0, Value::F64(1.0), g, 2));
    f.sent(0, &Value::Null, Quality::Bad, 3, 3);
    assert!(offer(&mut f, 0, Value::F64(1.0), g, 4));
}

#[test]
fn heartbeats_fall_due_for_good_tags_only() {
    let g = Quality::Good;
    let mut f = change(Some(1_000), vec![0.0, 0.0, 0.0]);
    assert_eq!(f.next_due(), None);
    offer(&mut f, 0, Value::I64(7), g, 0);
    offer(&mut f, 1, Value::I64(8), Quality::Uncertain, 500);
    f.sent(2, &Value::Null, Quality::Bad, 0, 0);
    assert_eq!(f.next_due(), Some(1_000));
    assert!(f.due(999).is_empty());
    assert_eq!(f.due(1_000), vec![(0, Value::I64(7), g)]);
    assert_eq!(f.due(1_500).len(), 2);
    let never = change(None, vec![0.0]);
    assert_eq!(never.next_due(), None);
}

#[test]
fn a_polled_heartbeat_is_due_by_the_readings_stamps_not_their_arrival() {
    let g = Quality::Good;
    let mut f = change(Some(1_000), vec![0.0]);
    // Stamped at 300 and answered at once; the next poll stamped 1_299 answered 1 ms late.
    assert!(f.wants(0, &Value::I64(1), g, 300));
    f.sent(0, &Value::I64(1), g, 300, 300);
    assert!(!f.wants(0, &Value::I64(1), g, 1_299));
    assert!(f.wants(0, &Value::I64(1), g, 1_300));
}

proptest! {
    /// Whatever the device does: after every reading the value last sent is within the
    /// deadband of the device's value (no move beyond it stays unsent), and no two samples
    /// sent in a row are within the deadband of each other unless the heartbeat sent them.
    #[test]
    fn the_last_sent_value_never_strays_beyond_the_deadband(
        deadband in 0.0f64..5.0,
        steps in prop::collection::vec(-3.0f64..3.0, 1..300),
    ) {
        let mut f = change(None, vec![deadband]);
        let mut device = 0.0;
        let mut last_sent: Option<f64> = None;
        for (i, step) in steps.iter().enumerate() {
            device += step;
            let now = i as i64 * 100;
            if offer(&mut f, 0, Value::F64(device), Quality::Good, now) {
                if let Some(prev) = last_sent {
                    prop_assert!(deadband == 0.0 || (device - prev).abs() > deadband);
                    prop_assert!(device != prev);
                }
                last_sent = Some(device);
            }
            let sent = last_sent.unwrap();
            prop_assert!((device - sent).abs() <= deadband, "device {device}, sent {sent}");
        }
    }

    /// A tag polled every `poll` ms is never unsent for longer than heartbeat + one poll.
    #[test]
    fn no_tag_waits_longer_than_its_heartbeat_and_a_poll(
        heartbeat in 1u64..5_000,
        poll in 1i64..1_000,
        n in 1usize..500,
    ) {
        let mut f = change(Some(heartbeat), vec![0.0]);
        let mut last = None;
        for i in 0..n {
            let now = i as i64 * poll;
            if offer(&mut f, 0, Value::Bool(true), Quality::Good, now) {
                if let Some(prev) = last {
                    prop_assert!(now - prev <= heartbeat as i64 + poll);
                    prop_assert!(now - prev >= heartbeat as i64);
                }
                last = Some(now);
            }
        }
    }
}
