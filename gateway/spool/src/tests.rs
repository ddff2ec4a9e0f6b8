use super::*;
use proptest::prelude::*;
use std::collections::VecDeque;

fn record(i: u64, len: usize) -> Vec<u8> {
    let mut r = i.to_le_bytes().to_vec();
    r.resize(len.max(8), (i % 251) as u8);
    r
}

fn drain(s: &mut Spool) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some((w, p)) = s.peek().unwrap() {
        out.push((w, p.to_vec()));
        s.ack().unwrap();
    }
    out
}

#[test]
fn records_leave_in_order_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    // 1 MiB allowed: segments of 128 KiB, so 2000 records of 300 bytes span several.
    let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
    for i in 0..2000 {
        s.push(i, &record(i, 300)).unwrap();
    }
    let segments = std::fs::read_dir(dir.path()).unwrap().count();
    assert!(segments > 3, "{segments} files: no rotation");
    let got = drain(&mut s);
    assert_eq!(got.len(), 2000);
    for (i, (w, p)) in got.iter().enumerate() {
        assert_eq!((*w, p), (i as u64, &record(i as u64, 300)));
    }
    assert_eq!(s.counts().pending, 0);
    s.sync().unwrap();
    let left = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "seg")
        })
        .count();
    assert_eq!(left, 1, "acknowledged segments are deleted");
}

#[test]
fn a_reopened_spool_replays_what_was_not_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), 64 << 20).unwrap();
    for i in 0..10 {
        s.push(i, &record(i, 20)).unwrap();
    }
    for _ in 0..4 {
        s.peek().unwrap();
        s.ack().unwrap();
    }
    s.sync().unwrap();
    // Acknowledged after the last sync: replayed again (a duplicate, never a gap).
    s.peek().unwrap();
    s.ack().unwrap();
    drop(s);
    let mut s = Spool::open(dir.path(), 64 << 20).unwrap();
    assert_eq!(s.counts().pending, 6);
    assert_eq!(s.counts().pending_weight, (4..10).sum::<u64>());
    let got: Vec<u64> = drain(&mut s).into_iter().map(|(w, _)| w).collect();
    assert_eq!(got, (4..10).collect::<Vec<_>>());
    // New records go after the replayed ones.
    s.push(99, b"later").unwrap();
    assert_eq!(s.peek().unwrap(), Some((99, &b"later"[..])));
}

#[test]
fn the_limit_drops_the_oldest_and_counts_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let max = 256 << 10;
    let mut s = Spool::open(dir.path(), max).unwrap();
    let mut pushed_weight = 0;
    for i in 0..4000u64 {
        s.push(3, &record(i, 500)).unwrap();
        pushed_weight += 3;
        assert!(s.counts().bytes <= max, "{} bytes", s.counts().bytes);
        if i % 7 == 0 {
            s.peek().unwrap();
            s.ack().unwrap();
            pushed_weight -= 3;
        }
    }
    let c = s.counts();
    assert!(c.dropped > 0);
    assert_eq!(c.dropped_weight, c.dropped * 3);
    let delivered = drain(&mut s);
    // What was pushed and not acknowledged above: either dropped or delivered now, exactly.
    assert_eq!(c.dropped_weight + delivered.len() as u64 * 3, pushed_weight);
    // And what is delivered is the newest, in order.
    let ids: Vec<u64> = delivered
        .iter()
        .map(|(_, p)| u64::from_le_bytes(p[..8].try_into().unwrap()))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(ids.last(), Some(&3999));
}

#[test]
fn a_torn_tail_is_cut_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), 64 << 20).unwrap();
    for i in 0..5 {
        s.push(i, &record(i, 40)).unwrap();
    }
    s.sync().unwrap();
    drop(s);
    let seg = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::metadata(p).unwrap().len() > 0 && p.extension().is_some_and(|x| x == "seg")
        })
        .unwrap();
    // Half a frame, as a power cut mid-write leaves it.
    let mut half = Vec::new();
    frame::encode(&mut half, 7, &[1; 100]);
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&half[..50]).unwrap();
    drop(f);
    let mut s = Spool::open(dir.path(), 64 << 20).unwrap();
    assert_eq!(s.counts().torn, 1);
    assert_eq!(drain(&mut s).len(), 5);
}

#[test]
fn a_corrupt_record_cuts_the_segment_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), 64 << 20).unwrap();
    for i in 0..5 {
        s.push(i, &record(i, 40)).unwrap();
    }
    s.sync().unwrap();
    drop(s);
    let seg = dir.path().join(format!("{:016}.seg", 0));
    let mut bytes = std::fs::read(&seg).unwrap();
    // Inside the third record's payload: the first two survive.
    bytes[2 * 56 + 30] ^= 0xFF;
    std::fs::write(&seg, &bytes).unwrap();
    let mut s = Spool::open(dir.path(), 64 << 20).unwrap();
    assert_eq!(s.counts().torn, 1);
    let got: Vec<u64> = drain(&mut s).into_iter().map(|(w, _)| w).collect();
    assert_eq!(got, vec![0, 1]);
}

#[derive(Debug, Clone)]
enum Op {
    Push(u8),
    Ack,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u8>().prop_map(Op::Push),
        3 => Just(Op::Ack),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Against a queue: with a sync before each reopen, the spool shows exactly the queue's
    /// front, whatever the order of pushes, acknowledgements and restarts.
    #[test]
    fn behaves_as_a_queue_across_restarts(ops in proptest::collection::vec(op(), 1..120)) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 64 << 20).unwrap();
        let mut model: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
        for (n, op) in ops.into_iter().enumerate() {
            match op {
                Op::Push(len) => {
                    let r = record(n as u64, usize::from(len));
                    s.push(n as u64, &r).unwrap();
                    model.push_back((n as u64, r));
                }
                Op::Ack => {
                    let got = s.peek().unwrap().map(|(w, p)| (w, p.to_vec()));
                    prop_assert_eq!(got.as_ref(), model.front());
                    if got.is_some() {
                        s.ack().unwrap();
                        model.pop_front();
                    }
                }
                Op::Reopen => {
                    s.sync().unwrap();
                    drop(s);
                    s = Spool::open(dir.path(), 64 << 20).unwrap();
                }
            }
            prop_assert_eq!(s.counts().pending, model.len() as u64);
        }
        prop_assert_eq!(drain(&mut s), Vec::from(model));
    }
}

#[test]
fn a_window_is_acknowledged_in_any_order_and_replayed_from_the_oldest_gap() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
    for i in 0..1000 {
        s.push(1, &record(i, 300)).unwrap();
    }
    let window: Vec<Record> = (0..600).map(|_| s.read_next().unwrap().unwrap()).collect();
    for (i, r) in window.iter().enumerate() {
        assert_eq!(r.payload, record(i as u64, 300));
    }
    // Acknowledged backwards, except record 100: the position stops before it.
    for r in window.iter().rev().filter(|r| r.seq != 100) {
        s.ack_seq(r.seq).unwrap();
    }
    assert_eq!(s.counts().pending, 900);
    s.sync().unwrap();
    drop(s);
    let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
    let got: Vec<u64> = drain(&mut s)
        .into_iter()
        .map(|(_, p)| u64::from_le_bytes(p[..8].try_into().unwrap()))
        .collect();
    assert_eq!(got, (100..1000).collect::<Vec<_>>());
}

#[test]
fn records_read_ahead_are_not_counted_dropped_when_their_segment_goes() {
    let dir = tempfile::tempdir().unwrap();
    let max = 256 << 10;
    let mut s = Spool::open(dir.path(), max).unwrap();
    let mut pushed = 0;
    let mut in_flight = Vec::new();
    for i in 0..4000u64 {
        s.push(2, &record(i, 500)).unwrap();
        pushed += 2;
        assert!(s.counts().bytes <= max, "{} bytes", s.counts().bytes);
        if i % 5 == 0
            && let Some(r) = s.read_next().unwrap()
        {
            in_flight.push(r);
        }
    }
    let c = s.counts();
    assert!(c.dropped > 0);
    // The sink delivers what it holds, late: nothing changes in the spool's counts.
    for r in &in_flight {
        s.ack_seq(r.seq).unwrap();
    }
    assert_eq!(s.counts().dropped, c.dropped);
    let mut rest = 0;
    while let Some(r) = s.read_next().unwrap() {
        rest += r.weight;
        s.ack_seq(r.seq).unwrap();
    }
    let delivered = in_flight.iter().map(|r| r.weight).sum::<u64>() + rest;
    assert_eq!(c.dropped_weight + delivered, pushed);
    assert_eq!(s.counts().pending, 0);
}

#[derive(Debug, Clone)]
enum WindowOp {
    Push(u8),
    Read,
    /// Acknowledges the n-th (mod count) record read and not yet acknowledged.
    Ack(usize),
    Reopen,
}

fn window_op() -> impl Strategy<Value = WindowOp> {
    prop_oneof![
        4 => any::<u8>().prop_map(WindowOp::Push),
        3 => Just(WindowOp::Read),
        3 => any::<usize>().prop_map(WindowOp::Ack),
        1 => Just(WindowOp::Reopen),
    ]
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Unread,
    Read(u64),
    Acked,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Against a model: reads go in order, acknowledgements in any order, and a reopen (after a
    /// sync) replays everything from the oldest record not acknowledged.
    #[test]
    fn a_window_behaves_as_its_model(ops in proptest::collection::vec(window_op(), 1..150)) {
        let dir = tempfile::tempdir().unwrap();
        // Segments of 128 KiB, so that records cross them, and room for all (at most 750 KiB).
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        let mut model: Vec<(Vec<u8>, State)> = Vec::new();
        for (n, op) in ops.into_iter().enumerate() {
            match op {
                WindowOp::Push(len) => {
                    let r = record(n as u64, usize::from(len) * 20);
                    s.push(1, &r).unwrap();
                    model.push((r, State::Unread));
                }
                WindowOp::Read => {
                    let got = s.read_next().unwrap();
                    let want = model.iter_mut().find(|(_, st)| *st == State::Unread);
                    match (got, want) {
                        (Some(r), Some((p, st))) => {
                            prop_assert_eq!(&r.payload, p);
                            *st = State::Read(r.seq);
                        }
                        (None, None) => {}
                        (got, want) => prop_assert!(false, "{got:?} vs {want:?}"),
                    }
                }
                WindowOp::Ack(k) => {
                    let read: Vec<usize> = (0..model.len())
                        .filter(|&i| matches!(model[i].1, State::Read(_)))
                        .collect();
                    if !read.is_empty() {
                        let i = read[k % read.len()];
                        if let State::Read(seq) = model[i].1 {
                            s.ack_seq(seq).unwrap();
                        }
                        model[i].1 = State::Acked;
                    }
                }
                WindowOp::Reopen => {
                    s.sync().unwrap();
                    drop(s);
                    s = Spool::open(dir.path(), 1 << 20).unwrap();
                    let first = model.iter().position(|(_, st)| *st != State::Acked);
                    model.drain(..first.unwrap_or(model.len()));
                    for (_, st) in &mut model {
                        *st = State::Unread;
                    }
                }
            }
            let first = model.iter().position(|(_, st)| *st != State::Acked);
            let pending = first.map_or(0, |f| model.len() - f);
            prop_assert_eq!(s.counts().pending, pending as u64);
        }
    }
}

#[test]
fn sync_makes_new_segments_and_the_ack_file_durable_in_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    // Segments of 64 KiB: 300 records of 300 bytes need more than one.
    let mut s = Spool::open(dir.path(), 512 << 10).unwrap();
    s.push(0, &record(0, 300)).unwrap();
    s.sync().unwrap();
    assert_eq!(s.dir_syncs(), 1, "the segment created on opening");
    s.sync().unwrap();
    assert_eq!(s.dir_syncs(), 1, "nothing new in the directory");
    for i in 1..300 {
        s.push(i, &record(i, 300)).unwrap();
    }
    s.sync().unwrap();
    assert_eq!(s.dir_syncs(), 2, "a segment made by rotation");
    s.peek().unwrap();
    s.ack().unwrap();
    s.sync().unwrap();
    assert_eq!(s.dir_syncs(), 3, "the ack file renamed into place");
    // A process killed now (no more syncs) leaves every record after the acknowledged one.
    drop(s);
    let mut again = Spool::open(dir.path(), 512 << 10).unwrap();
    assert_eq!(drain(&mut again).len(), 299);
}

#[test]
fn a_sync_job_on_another_thread_lets_the_spool_go_on_and_keeps_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
    for i in 0..10 {
        s.push(i, &record(i, 100)).unwrap();
    }
    for _ in 0..4 {
        s.peek().unwrap();
        s.ack().unwrap();
    }
    let job = s.begin_sync().unwrap();
    let running = std::thread::spawn(move || job.run());
    // The spool goes on while the job syncs: more pushed, one more acknowledged.
    for i in 10..15 {
        s.push(i, &record(i, 100)).unwrap();
    }
    s.peek().unwrap();
    s.ack().unwrap();
    s.end_sync(running.join().unwrap()).unwrap();
    // On disk is the position at the job's start: the acknowledgement after it comes back
    // once (a duplicate, never a gap), and everything pushed meanwhile is there.
    drop(s);
    let mut reopened = Spool::open(dir.path(), 1 << 20).unwrap();
    let weights: Vec<u64> = drain(&mut reopened).into_iter().map(|(w, _)| w).collect();
    assert_eq!(weights, (4..15).collect::<Vec<u64>>());
}

#[test]
fn a_failed_sync_job_leaves_its_work_to_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
    s.push(1, &record(1, 100)).unwrap();
    s.peek().unwrap();
    s.ack().unwrap();
    let job = s.begin_sync().unwrap();
    drop(job);
    assert!(
        s.end_sync(Synced::failed(io::Error::other("cancelled")))
            .is_err()
    );
    assert!(
        !dir.path().join("ack").exists(),
        "the failed job wrote nothing"
    );
    s.sync().unwrap();
    assert!(
        dir.path().join("ack").exists(),
        "the next sync wrote the position"
    );
}
