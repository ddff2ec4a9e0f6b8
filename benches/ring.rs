//! `cargo bench --bench ring`: samples per second through the ring buffer, one producer thread
//! and one consumer thread, beside crossbeam's `ArrayQueue` and tokio's `mpsc` (which take one
//! sample per operation) and `rtrb` (a single-producer, single-consumer ring that writes and
//! reads in chunks, as the shopfloor ring does) in the same run; in `batch64` also tokio's
//! `mpsc` carrying a `Vec` of 64 samples per message, the usual way to batch over a channel.
//!
//! Every implementation runs the same loop: the producer spins while the queue is full (nothing
//! is dropped, so every sample is counted), the consumer spins while it is empty. `single` moves
//! one sample per push and per pop; `batch64` pushes 64 at a time (one by one where the queue
//! has no batch push) and takes up to 64 at a time.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shopfloor_core::ring::{self, WhenFull};
use shopfloor_core::{MachineId, Quality, Sample, TagId, Value};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Queue capacity for every implementation, in samples.
const CAPACITY: usize = 8192;
const BATCH: usize = 64;

fn sample(i: u64) -> Sample {
    Sample::new(
        MachineId(1),
        TagId(2),
        1_795_379_533_423,
        i,
        Value::F64(i as f64),
        Quality::Good,
    )
}

/// Runs `produce` and `consume` on two threads and returns the time from the moment both are
/// running until the consumer has taken `n` samples. Thread start-up is kept out of the clock
/// with a spin barrier, so small `n` are not dominated by spawning.
fn two_threads(
    n: u64,
    produce: impl FnOnce(u64) + Send + 'static,
    consume: impl FnOnce(u64) + Send + 'static,
) -> Duration {
    let arrived = Arc::new(AtomicUsize::new(0));
    let meet = |arrived: &AtomicUsize| {
        arrived.fetch_add(1, Ordering::SeqCst);
        while arrived.load(Ordering::SeqCst) < 2 {
            std::hint::spin_loop();
        }
    };
    let a = Arc::clone(&arrived);
    let p = thread::spawn(move || {
        meet(&a);
        produce(n)
    });
    let c = thread::spawn(move || {
        meet(&arrived);
        let start = Instant::now();
        consume(n);
        start.elapsed()
    });
    p.join().unwrap();
    c.join().unwrap()
}

fn shopfloor_single(n: u64) -> Duration {
    let (mut ps, mut c) = ring::with_lanes(&[CAPACITY], WhenFull::DropOldest).unwrap();
    let mut p = ps.pop().unwrap();
    two_threads(
        n,
        move |n| {
            for i in 0..n {
                let mut s = sample(i);
                while let Err(back) = p.try_push(s) {
                    s = back;
                    std::hint::spin_loop();
                }
            }
        },
        move |n| {
            let mut got = 0;
            while got < n {
                if let Some(s) = c.pop() {
                    black_box(s);
                    got += 1;
                } else {
                    std::hint::spin_loop();
                }
            }
        },
    )
}

fn shopfloor_batch(n: u64) -> Duration {
    let (mut ps, mut c) = ring::with_lanes(&[CAPACITY], WhenFull::DropOldest).unwrap();
    let mut p = ps.pop().unwrap();
    two_threads(
        n,
        move |n| {
            let mut i = 0;
            while i < n {
                let end = (i + BATCH as u64).min(n);
                while !p.has_room((end - i) as usize) {
                    std::hint::spin_loop();
                }
                p.push_iter((0..(end - i) as usize).map(|k| sample(i + k as u64)));
                i = end;
            }
        },
        move |n| {
            let mut out = Vec::with_capacity(BATCH);
            let mut got = 0;
            while got < n {
                out.clear();
                let k = c.drain(&mut out, BATCH);
                if k == 0 {
                    std::hint::spin_loop();
                }
                black_box(&out);
                got += k as u64;
            }
        },
    )
}

fn crossbeam(n: u64, batch: usize) -> Duration {
    let q = Arc::new(crossbeam_queue::ArrayQueue::new(CAPACITY));
    let qc = Arc::clone(&q);
    two_threads(
        n,
        move |n| {
            for i in 0..n {
                let mut s = sample(i);
                while let Err(back) = q.push(s) {
                    s = back;
                    std::hint::spin_loop();
                }
            }
        },
        move |n| {
            let mut out = Vec::with_capacity(batch);
            let mut got = 0;
            while got < n {
                out.clear();
                while out.len() < batch {
                    match qc.pop() {
                        Some(s) => out.push(s),
                        None => break,
                    }
                }
                if out.is_empty() {
                    std::hint::spin_loop();
                }
                black_box(&out);
                got += out.len() as u64;
            }
        },
    )
}

fn rtrb_ring(n: u64, batch: usize) -> Duration {
    let (mut p, mut c) = rtrb::RingBuffer::new(CAPACITY);
    two_threads(
        n,
        move |n| {
            let mut i = 0;
            while i < n {
                let want = (n - i).min(batch as u64) as usize;
                match p.write_chunk_uninit(want) {
                    Ok(chunk) => {
                        let written = chunk.fill_from_iter((0..want as u64).map(|k| sample(i + k)));
                        i += written as u64;
                    }
                    Err(_) => std::hint::spin_loop(),
                }
            }
        },
        move |n| {
            let mut out: Vec<Sample> = Vec::with_capacity(batch);
            let mut got = 0;
            while got < n {
                out.clear();
                let k = c.slots().min(batch);
                if k == 0 {
                    std::hint::spin_loop();
                    continue;
                }
                if let Ok(chunk) = c.read_chunk(k) {
                    out.extend(chunk);
                }
                black_box(&out);
                got += out.len() as u64;
            }
        },
    )
}

fn tokio_mpsc(n: u64, batch: usize) -> Duration {
    let (tx, mut rx) = tokio::sync::mpsc::channel(CAPACITY);
    two_threads(
        n,
        move |n| {
            for i in 0..n {
                let mut s = sample(i);
                loop {
                    match tx.try_send(s) {
                        Ok(()) => break,
                        Err(tokio::sync::mpsc::error::TrySendError::Full(back)) => {
                            s = back;
                            std::hint::spin_loop();
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        },
        move |n| {
            let mut out: Vec<Sample> = Vec::with_capacity(batch);
            let mut got = 0;
            while got < n {
                out.clear();
                while out.len() < batch {
                    match rx.try_recv() {
                        Ok(s) => out.push(s),
                        Err(_) => break,
                    }
                }
                if out.is_empty() {
                    std::hint::spin_loop();
                }
                black_box(&out);
                got += out.len() as u64;
            }
        },
    )
}

/// tokio's `mpsc` carrying a `Vec` of `batch` samples per message: batching by allocation.
fn tokio_mpsc_vec(n: u64, batch: usize) -> Duration {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Sample>>((CAPACITY / batch).max(1));
    two_threads(
        n,
        move |n| {
            let mut i = 0;
            while i < n {
                let end = (i + batch as u64).min(n);
                let mut v: Vec<Sample> = (i..end).map(sample).collect();
                loop {
                    match tx.try_send(v) {
                        Ok(()) => break,
                        Err(tokio::sync::mpsc::error::TrySendError::Full(back)) => {
                            v = back;
                            std::hint::spin_loop();
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                i = end;
            }
        },
        move |n| {
            let mut got = 0;
            while got < n {
                match rx.try_recv() {
                    Ok(v) => {
                        got += v.len() as u64;
                        black_box(v);
                    }
                    Err(_) => std::hint::spin_loop(),
                }
            }
        },
    )
}

fn ring_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(4));
    g.bench_function("shopfloor/single", |b| b.iter_custom(shopfloor_single));
    g.bench_function("crossbeam_array_queue/single", |b| {
        b.iter_custom(|n| crossbeam(n, 1))
    });
    g.bench_function("tokio_mpsc/single", |b| b.iter_custom(|n| tokio_mpsc(n, 1)));
    g.bench_function("rtrb/single", |b| b.iter_custom(|n| rtrb_ring(n, 1)));
    g.bench_function("shopfloor/batch64", |b| b.iter_custom(shopfloor_batch));
    g.bench_function("crossbeam_array_queue/batch64", |b| {
        b.iter_custom(|n| crossbeam(n, BATCH))
    });
    g.bench_function("tokio_mpsc/batch64", |b| {
        b.iter_custom(|n| tokio_mpsc(n, BATCH))
    });
    g.bench_function("rtrb/batch64", |b| b.iter_custom(|n| rtrb_ring(n, BATCH)));
    g.bench_function("tokio_mpsc_vec/batch64", |b| {
        b.iter_custom(|n| tokio_mpsc_vec(n, BATCH))
    });
    g.finish();
}

criterion_group!(benches, ring_bench);
criterion_main!(benches);
