use super::*;
use crate::sample::{MachineId, Quality, TagId, Value};
use proptest::prelude::*;
use std::collections::VecDeque;
use std::sync::Arc;
use std::thread;

fn s(seq: u64) -> Sample {
    Sample::new(
        MachineId(0),
        TagId(0),
        0,
        seq,
        Value::U64(seq),
        Quality::Good,
    )
}

fn seqs(v: &[Sample]) -> Vec<u64> {
    v.iter().map(|x| x.seq).collect()
}

#[test]
fn capacity_rounds_up_to_a_power_of_two() {
    let (p, _c) = with_lanes(&[5, 64], WhenFull::DropOldest).unwrap();
    assert_eq!(p[0].capacity(), 8);
    assert_eq!(p[1].capacity(), 64);
    assert_eq!(
        with_lanes(&[], WhenFull::DropOldest).unwrap_err(),
        RingError::NoLanes
    );
    assert_eq!(
        with_lanes(&[0], WhenFull::DropOldest).unwrap_err(),
        RingError::BadCapacity(0)
    );
}

#[test]
fn batch_push_and_drain_keep_order_across_the_wrap() {
    let (mut p, mut c) = with_lanes(&[8], WhenFull::DropOldest).unwrap();
    let mut out = Vec::new();
    let mut next = 0;
    for round in 0..10 {
        let mut batch: Vec<Sample> = (next..next + 5).map(s).collect();
        next += 5;
        assert_eq!(p[0].push_batch(&mut batch), 0, "round {round}");
        assert!(batch.is_empty());
        c.drain(&mut out, 100);
    }
    assert_eq!(seqs(&out), (0..50).collect::<Vec<_>>());
    assert_eq!(c.dropped(), 0);
}

#[test]
fn drop_oldest_keeps_the_newest_and_counts() {
    let (mut p, mut c) = with_lanes(&[4], WhenFull::DropOldest).unwrap();
    for i in 0..6 {
        p[0].push(s(i));
    }
    let mut out = Vec::new();
    c.drain(&mut out, 10);
    assert_eq!(seqs(&out), vec![2, 3, 4, 5]);
    assert_eq!(c.dropped(), 2);
}

#[test]
fn drop_oldest_with_a_batch_larger_than_the_lane() {
    let (mut p, mut c) = with_lanes(&[4], WhenFull::DropOldest).unwrap();
    p[0].push(s(100));
    let mut batch: Vec<Sample> = (0..10).map(s).collect();
    assert_eq!(p[0].push_batch(&mut batch), 7);
    let mut out = Vec::new();
    c.drain(&mut out, 10);
    assert_eq!(seqs(&out), vec![6, 7, 8, 9]);
    assert_eq!(c.dropped(), 7);
}

#[test]
fn drop_newest_keeps_what_is_queued_and_counts() {
    let (mut p, mut c) = with_lanes(&[4], WhenFull::DropNewest).unwrap();
    let mut batch: Vec<Sample> = (0..6).map(s).collect();
    assert_eq!(p[0].push_batch(&mut batch), 2);
    assert_eq!(p[0].push(s(9)), 1);
    let mut out = Vec::new();
    c.drain(&mut out, 10);
    assert_eq!(seqs(&out), vec![0, 1, 2, 3]);
    assert_eq!(c.dropped(), 3);
}

#[test]
fn try_push_hands_the_sample_back_when_full() {
    let (mut p, mut c) = with_lanes(&[2], WhenFull::DropOldest).unwrap();
    assert!(p[0].try_push(s(0)).is_ok());
    assert!(p[0].try_push(s(1)).is_ok());
    assert_eq!(p[0].try_push(s(2)).unwrap_err().seq, 2);
    assert_eq!(c.pop().map(|x| x.seq), Some(0));
    assert!(p[0].try_push(s(2)).is_ok());
    assert_eq!(c.dropped(), 0);
    assert_eq!(c.len(), 2);
}

#[test]
fn text_values_are_neither_leaked_nor_freed_twice() {
    let text = crate::sample::Text::from("PRG-0042");
    {
        let (mut p, mut c) = with_lanes(&[4], WhenFull::DropOldest).unwrap();
        for i in 0..10 {
            let v = Value::Text(text.clone());
            p[0].push(Sample::new(MachineId(0), TagId(0), 0, i, v, Quality::Good));
        }
        assert_eq!(text.strong_count(), 5);
        let mut out = Vec::new();
        c.drain(&mut out, 2);
        assert_eq!(text.strong_count(), 5);
        drop(out);
        assert_eq!(text.strong_count(), 3);
    }
    assert_eq!(text.strong_count(), 1);
}

#[test]
fn drain_visits_lanes_round_robin() {
    let (mut p, mut c) = with_lanes(&[16, 16], WhenFull::DropOldest).unwrap();
    for i in 0..8 {
        p[0].push(s(i));
        p[1].push(s(100 + i));
    }
    let mut out = Vec::new();
    c.drain(&mut out, 4);
    c.drain(&mut out, 4);
    let first: Vec<u64> = seqs(&out);
    assert!(first.iter().any(|&x| x < 100) && first.iter().any(|&x| x >= 100));
}

#[test]
fn finished_after_every_producer_is_gone_and_drained() {
    let (p, mut c) = with_lanes(&[4, 4], WhenFull::DropOldest).unwrap();
    let mut p = p.into_iter();
    let mut a = p.next().unwrap();
    let b = p.next().unwrap();
    a.push(s(1));
    drop(b);
    assert!(!c.is_finished());
    drop(a);
    assert!(!c.is_finished());
    assert!(c.pop().is_some());
    assert!(c.is_finished());
}

#[test]
fn many_producers_one_consumer_lose_nothing_and_keep_lane_order() {
    for policy in [WhenFull::DropOldest, WhenFull::DropNewest] {
        let (producers, mut c) = with_lanes(&[64; 4], policy).unwrap();
        let per = 200_000u64;
        let handles: Vec<_> = producers
            .into_iter()
            .enumerate()
            .map(|(lane, mut p)| {
                thread::spawn(move || {
                    let mut batch = Vec::with_capacity(16);
                    let mut i = 0;
                    while i < per {
                        batch.push(Sample::new(
                            MachineId(lane as u16),
                            TagId(0),
                            0,
                            i,
                            Value::U64(i),
                            Quality::Good,
                        ));
                        i += 1;
                        if batch.len() == 16 || i == per {
                            p.push_batch(&mut batch);
                        }
                    }
                })
            })
            .collect();
        let mut last = [None::<u64>; 4];
        let mut received = 0u64;
        let mut out = Vec::new();
        while !c.is_finished() {
            out.clear();
            c.drain(&mut out, 256);
            for x in &out {
                let l = &mut last[x.machine.index()];
                assert!(l.is_none_or(|prev| x.seq > prev), "order broken in lane");
                *l = Some(x.seq);
            }
            received += out.len() as u64;
        }
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(received + c.dropped(), 4 * per, "{policy:?}");
    }
}

#[test]
fn a_parked_consumer_is_woken_by_a_push() {
    use std::task::{Wake, Waker};
    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(Arc::clone(&flag));
    let mut cx = Context::from_waker(&waker);
    let (mut p, mut c) = with_lanes(&[4], WhenFull::DropOldest).unwrap();
    let mut ready = c.ready();
    assert!(Pin::new(&mut ready).poll(&mut cx).is_pending());
    p[0].push(s(1));
    assert!(flag.0.load(Ordering::SeqCst));
    assert!(Pin::new(&mut ready).poll(&mut cx).is_ready());
}

#[derive(Debug, Clone)]
enum Op {
    Push,
    Batch(u8),
    Drain(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Push),
        (0u8..20).prop_map(Op::Batch),
        (0u8..20).prop_map(Op::Drain),
    ]
}

proptest! {
    /// A single lane behaves like a bounded deque with the chosen policy.
    #[test]
    fn lane_matches_a_bounded_deque(ops in proptest::collection::vec(op(), 0..60), oldest in any::<bool>()) {
        let policy = if oldest { WhenFull::DropOldest } else { WhenFull::DropNewest };
        let cap = 8usize;
        let (mut p, mut c) = with_lanes(&[cap], policy).unwrap();
        let mut model: VecDeque<u64> = VecDeque::new();
        let mut dropped = 0u64;
        let mut next = 0u64;
        let push_model = |model: &mut VecDeque<u64>, x: u64, dropped: &mut u64| {
            if model.len() == cap {
                *dropped += 1;
                if oldest { model.pop_front(); model.push_back(x); }
            } else {
                model.push_back(x);
            }
        };
        for op in ops {
            match op {
                Op::Push => {
                    p[0].push(s(next));
                    push_model(&mut model, next, &mut dropped);
                    next += 1;
                }
                Op::Batch(n) => {
                    let mut b: Vec<Sample> = (next..next + u64::from(n)).map(s).collect();
                    p[0].push_batch(&mut b);
                    prop_assert!(b.is_empty());
                    for x in next..next + u64::from(n) {
                        push_model(&mut model, x, &mut dropped);
                    }
                    next += u64::from(n);
                }
                Op::Drain(n) => {
                    let mut out = Vec::new();
                    c.drain(&mut out, n as usize);
                    let want: Vec<u64> = (0..(n as usize).min(model.len())).filter_map(|_| model.pop_front()).collect();
                    prop_assert_eq!(seqs(&out), want);
                }
            }
            prop_assert_eq!(c.len(), model.len());
            prop_assert_eq!(c.dropped(), dropped);
        }
    }
}

#[test]
fn push_iter_writes_in_order_and_applies_the_policy_when_full() {
    let (mut p, mut c) = with_lanes(&[8], WhenFull::DropOldest).unwrap();
    assert_eq!(p[0].push_iter((0..6u32).map(|i| s(u64::from(i)))), 0);
    assert!(p[0].has_room(2));
    assert!(!p[0].has_room(3));
    assert_eq!(p[0].push_iter((6..10u32).map(|i| s(u64::from(i)))), 2);
    let mut out = Vec::new();
    c.drain(&mut out, 100);
    assert_eq!(seqs(&out), (2..10).collect::<Vec<_>>());
    assert_eq!(c.dropped(), 2);
}

#[test]
fn pop_takes_a_chunk_and_drain_hands_out_the_rest_first() {
    let (mut p, mut c) = with_lanes(&[8], WhenFull::DropOldest).unwrap();
    let mut b: Vec<Sample> = (0..8).map(s).collect();
    p[0].push_batch(&mut b);
    assert_eq!(c.pop().map(|x| x.seq), Some(0));
    // The other seven left the lane with it: a full lane's worth more drops nothing.
    let mut more: Vec<Sample> = (8..16).map(s).collect();
    p[0].push_batch(&mut more);
    assert_eq!((c.len(), c.dropped()), (15, 0));
    let mut out = Vec::new();
    c.drain(&mut out, 10);
    assert_eq!(seqs(&out), (1..11).collect::<Vec<_>>());
    assert_eq!(c.pop().map(|x| x.seq), Some(11));
    out.clear();
    c.drain(&mut out, 100);
    assert_eq!(seqs(&out), (12..16).collect::<Vec<_>>());
    assert!(c.is_empty() && c.pop().is_none());
}
