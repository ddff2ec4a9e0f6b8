#![allow(clippy::unwrap_used)]
use super::*;
use proptest::prelude::*;
use shopfloor_core::{MachineId, Quality, Sample, TagId, Value};

/// A batch of `len` samples whose seqs start at `first`.
fn batch(first: u64, len: usize) -> Batch {
    (0..len as u64)
        .map(|i| {
            Sample::new(
                MachineId(0),
                TagId(0),
                1,
                first + i,
                Value::I64(0),
                Quality::Good,
            )
        })
        .collect()
}

fn bound(samples: usize, when_full: WhenFull) -> Bound {
    Bound { samples, when_full }
}

fn firsts(batches: &[Batch]) -> Vec<u64> {
    batches.iter().map(|b| b[0].seq).collect()
}

#[test]
fn what_a_full_queue_drops_follows_its_policy() {
    // (policy, batches pushed as (first seq, len), first seqs kept, first seqs dropped)
    type Case = (
        WhenFull,
        &'static [(u64, usize)],
        &'static [u64],
        &'static [u64],
    );
    let cases: [Case; 5] = [
        (
            WhenFull::DropOldest,
            &[(1, 4), (5, 4), (9, 4)],
            &[5, 9],
            &[1],
        ),
        (
            WhenFull::DropNewest,
            &[(1, 4), (5, 4), (9, 4)],
            &[1, 5],
            &[9],
        ),
        // One batch larger than the bound still goes through an empty queue.
        (WhenFull::DropNewest, &[(1, 20)], &[1], &[]),
        (WhenFull::DropOldest, &[(1, 2), (3, 20)], &[3], &[1]),
        (
            WhenFull::DropOldest,
            &[(1, 3), (4, 3), (7, 2)],
            &[1, 4, 7],
            &[],
        ),
    ];
    for (when_full, pushed, kept, dropped) in cases {
        let mut q = Queue::new(bound(8, when_full));
        let mut gone = Vec::new();
        for &(first, len) in pushed {
            gone.extend(q.push(batch(first, len)).batches);
        }
        let left: Vec<Batch> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(firsts(&left), kept, "{when_full:?} {pushed:?}");
        assert_eq!(firsts(&gone), dropped, "{when_full:?} {pushed:?}");
    }
}

#[test]
fn a_sinks_bound_is_the_rings_capacity_with_its_own_when_full_or_the_buffers() {
    let buffer = crate::config::BufferConfig {
        capacity: 1000,
        when_full: WhenFull::DropNewest,
        spool_dir: None,
        spool_max_mb: 1,
        fsync_interval: std::time::Duration::from_secs(1),
    };
    let own = crate::sink::bound(&buffer, Some(WhenFull::DropOldest));
    let buffers = crate::sink::bound(&buffer, None);
    assert_eq!(own, bound(1000, WhenFull::DropOldest));
    assert_eq!(buffers, bound(1000, WhenFull::DropNewest));
}

#[tokio::test]
async fn the_intake_gives_what_is_queued_then_ends_with_its_feed() {
    let (feed, mut intake) = super::intake(bound(100, WhenFull::DropOldest));
    assert!(matches!(feed.push(batch(1, 3)), Pushed::Queued(o) if o.batches.is_empty()));
    assert!(matches!(feed.push(batch(4, 3)), Pushed::Queued(_)));
    drop(feed);
    assert_eq!(intake.recv().await.unwrap()[0].seq, 1);
    assert_eq!(intake.recv().await.unwrap()[0].seq, 4);
    assert!(intake.recv().await.is_none());
}

#[tokio::test]
async fn a_waiting_sink_wakes_for_a_push_from_another_task() {
    let (feed, mut intake) = super::intake(bound(100, WhenFull::DropOldest));
    let pusher = tokio::spawn(async move {
        tokio::task::yield_now().await;
        feed.push(batch(7, 1));
        feed
    });
    assert_eq!(intake.recv().await.unwrap()[0].seq, 7);
    drop(pusher.await.unwrap());
    assert!(intake.recv().await.is_none());
}

#[test]
fn a_feed_whose_sink_ended_hands_the_batch_back() {
    let (feed, intake) = super::intake(bound(100, WhenFull::DropOldest));
    drop(intake);
    assert!(matches!(feed.push(batch(1, 2)), Pushed::Closed(b) if b.len() == 2));
}

proptest! {
    /// Against a model: order kept, every batch once, queued + dropped + taken = pushed, and
    /// never more than the bound queued (but for one oversized batch in an empty queue).
    #[test]
    fn the_queue_keeps_its_invariants(
        limit in 1usize..64,
        oldest in any::<bool>(),
        ops in proptest::collection::vec(prop_oneof![(1usize..24).prop_map(Some), Just(None)], 1..200),
    ) {
        let when_full = if oldest { WhenFull::DropOldest } else { WhenFull::DropNewest };
        let mut q = Queue::new(bound(limit, when_full));
        let (mut next, mut pushes, mut taken, mut dropped) = (0u64, 0usize, Vec::new(), Vec::new());
        for op in ops {
            match op {
                Some(len) => {
                    dropped.extend(firsts(&q.push(batch(next, len)).batches));
                    next += len as u64;
                    pushes += 1;
                }
                None => taken.extend(q.pop().map(|b| b[0].seq)),
            }
            prop_assert!(q.samples() <= limit || q.len() == 1);
        }
        let queued: Vec<u64> = std::iter::from_fn(|| q.pop()).map(|b| b[0].seq).collect();
        prop_assert!(taken.windows(2).all(|w| w[0] < w[1]));
        prop_assert!(queued.windows(2).all(|w| w[0] < w[1]));
        let mut all: Vec<u64> = taken.iter().chain(&queued).chain(&dropped).copied().collect();
        all.sort_unstable();
        let before = all.len();
        all.dedup();
        prop_assert_eq!(all.len(), before, "a batch came out twice");
        prop_assert_eq!(all.len(), pushes, "a batch went missing");
        prop_assert_eq!(q.samples(), 0);
    }
}
