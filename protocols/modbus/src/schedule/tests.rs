#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;

const MS: Duration = Duration::from_millis(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn the_earliest_due_machine_goes_first() {
    let t0 = Instant::now();
    let mut s = Schedule::new(
        t0,
        &[100 * MS, 100 * MS, 50 * MS],
        &[20 * MS, Duration::ZERO, Duration::ZERO],
    );
    // Equal times: the first listed.
    assert_eq!(s.next(), Some((1, t0)));
    s.answered(1, t0 + 5 * MS);
    assert_eq!(s.next(), Some((2, t0)));
    s.answered(2, t0 + 10 * MS);
    assert_eq!(s.next(), Some((0, t0 + 20 * MS)));
    s.answered(0, t0 + 25 * MS);
    assert_eq!(s.next(), Some((2, t0 + 50 * MS)));
}

#[test]
fn ticks_missed_are_skipped_keeping_the_phase() {
    let t0 = Instant::now();
    let table = [
        // (due, interval, now) in ms -> next due
        (0, 100, 10, 100),
        (0, 100, 100, 200),
        (0, 100, 350, 400),
        (30, 100, 999, 1030),
        (0, 0, 7, 7),
    ];
    for (due, interval, now, want) in table {
        let got = next_tick(t0 + ms(due), ms(interval), t0 + ms(now));
        assert_eq!(got, t0 + ms(want), "{due} {interval} {now}");
    }
}

#[test]
fn a_unit_that_fails_three_polls_is_tried_with_backoff_and_back_on_cadence_when_it_answers() {
    let t0 = Instant::now();
    let mut s = Schedule::new(t0, &[100 * MS], &[Duration::ZERO]);
    s.failed(0, t0 + 10 * MS);
    s.failed(0, t0 + 110 * MS);
    assert_eq!(s.next(), Some((0, t0 + 200 * MS)), "two fails: on cadence");
    let now = t0 + 210 * MS;
    s.failed(0, now);
    assert_eq!(s.fails(0), 3);
    let (_, due) = s.next().unwrap();
    // Backoff from 1 s with jitter: half to all of the step.
    assert!(
        due >= now + 500 * MS && due <= now + 1000 * MS,
        "{:?}",
        due - now
    );
    let mut longest = Duration::ZERO;
    for _ in 0..10 {
        let (_, due) = s.next().unwrap();
        s.failed(0, due);
        let (_, next) = s.next().unwrap();
        longest = longest.max(next - due);
    }
    assert!(longest <= MAX_BACKOFF && longest >= 10 * 1000 * MS);
    let (_, due) = s.next().unwrap();
    s.answered(0, due);
    assert_eq!(s.fails(0), 0);
    assert_eq!(s.next().unwrap().1, due + 100 * MS);
}

#[test]
fn holding_the_bus_delays_every_machine_but_never_brings_one_forward() {
    let t0 = Instant::now();
    let mut s = Schedule::new(t0, &[100 * MS, 100 * MS], &[Duration::ZERO, 900 * MS]);
    s.hold_all(t0 + 500 * MS);
    assert_eq!(s.next(), Some((0, t0 + 500 * MS)));
    s.answered(0, t0 + 500 * MS);
    assert_eq!(s.next(), Some((0, t0 + 600 * MS)));
    s.hold_all(t0 + 950 * MS);
    assert_eq!(s.next(), Some((0, t0 + 950 * MS)));
    s.answered(0, t0 + 951 * MS);
    assert_eq!(
        s.next(),
        Some((1, t0 + 950 * MS)),
        "the other, held, comes next"
    );
}

proptest! {
    #[test]
    fn the_next_tick_is_later_than_now_and_on_the_grid(
        due in 0u64..10_000, interval in 1u64..5_000, late in 0u64..100_000,
    ) {
        let t0 = Instant::now();
        let (due, now) = (t0 + ms(due), t0 + ms(due + late));
        let next = next_tick(due, ms(interval), now);
        prop_assert!(next > now);
        prop_assert!(next <= now + ms(interval));
        prop_assert_eq!((next - due).as_nanos() % ms(interval).as_nanos(), 0);
    }

    /// A bus whose polls take no time keeps every machine's interval exactly.
    #[test]
    fn a_bus_with_time_for_all_keeps_each_interval(intervals in prop::collection::vec(1u64..500, 1..8)) {
        let t0 = Instant::now();
        let iv: Vec<Duration> = intervals.iter().map(|&i| ms(i)).collect();
        let offsets = vec![Duration::ZERO; iv.len()];
        let mut s = Schedule::new(t0, &iv, &offsets);
        let mut polls = vec![0u64; iv.len()];
        let horizon = t0 + ms(5_000);
        while let Some((i, due)) = s.next() {
            if due >= horizon {
                break;
            }
            polls[i] += 1;
            s.answered(i, due);
        }
        for (i, n) in polls.iter().enumerate() {
            prop_assert_eq!(*n, 5_000u64.div_ceil(intervals[i]));
        }
    }
}
