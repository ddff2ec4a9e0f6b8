//! The sealed batches waiting for the store: in memory, or in the disk spool.
//!
//! With a spool, a batch it cannot take (a full disk) waits in memory instead, as without a
//! spool and within the same bound: a full disk must not cost points while the store takes
//! them. The batch being written stays the head until it is taken off, whatever arrives
//! meanwhile, so an acknowledgement always removes the batch that was written.

use crate::sink::Throttle;
use bytes::Bytes;
use shopfloor_core::ring::WhenFull;
use shopfloor_spool::Spool;
use shopfloor_spool::syncer::Syncer;
use std::collections::VecDeque;
use std::time::Duration;
use tracing::warn;

/// Sealed batches kept in memory while the store is away, without a spool (with the default
/// 5000 points a batch, about a million points).
pub const BACKLOG_BATCHES: usize = 200;

/// A sealed, compressed batch.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// The gzip-compressed line protocol.
    pub body: Bytes,
    /// The samples it stands for.
    pub samples: u64,
}

/// Where the head batch comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    Memory,
    Spool,
}

/// See the module doc.
#[derive(Debug)]
pub struct Backlog {
    memory: VecDeque<Chunk>,
    memory_samples: u64,
    spool: Option<Box<Spool>>,
    reported_drops: u64,
    head: Option<Head>,
    /// Spool failures repeat with every batch and every tick while a disk is full: each kind
    /// logged now and then, the one that says where the batches go on its own.
    push_trouble: Throttle,
    trouble: Throttle,
    /// What goes when memory is full.
    when_full: WhenFull,
    /// The spool's sync, off the async workers.
    syncer: Syncer,
}

impl Backlog {
    /// Bytes in the spool's files and the most they may hold; `(0, 0)` without a spool.
    pub fn spool_fill(&self) -> (u64, u64) {
        self.spool
            .as_ref()
            .map_or((0, 0), |s| (s.counts().bytes, s.max_bytes()))
    }

    /// A backlog in memory only, or on `spool`.
    pub fn new(spool: Option<Spool>) -> Backlog {
        Backlog {
            memory: VecDeque::new(),
            memory_samples: 0,
            reported_drops: spool.as_ref().map_or(0, |s| s.counts().dropped_weight),
            spool: spool.map(Box::new),
            head: None,
            push_trouble: Throttle::new(Duration::from_secs(10)),
            trouble: Throttle::new(Duration::from_secs(10)),
            when_full: WhenFull::DropOldest,
            syncer: Syncer::default(),
        }
    }

    /// The same backlog, dropping as `when_full` says when memory is full (the oldest batch
    /// by default, or the one being queued).
    pub fn dropping(mut self, when_full: WhenFull) -> Backlog {
        self.when_full = when_full;
        self
    }

    /// Queues a batch; returns the samples dropped for room (the oldest batch in memory, never
    /// the one being written, or this one when memory holds only that).
    pub fn push(&mut self, chunk: Chunk) -> u64 {
        if let Some(spool) = &mut self.spool {
            match spool.push(chunk.samples, &chunk.body) {
                Ok(()) => return 0,
                Err(e) => {
                    if let Some(repeats) = self.push_trouble.ready() {
                        warn!(event = "spool_unwritable", sink = "influx", error = %e, repeats, "cannot write the batch to the spool; batches wait in memory meanwhile");
                    }
                }
            }
        }
        if self.when_full == WhenFull::DropNewest && self.memory.len() >= BACKLOG_BATCHES {
            return chunk.samples;
        }
        self.memory_samples += chunk.samples;
        self.memory.push_back(chunk);
        let mut dropped = 0;
        while self.memory.len() > BACKLOG_BATCHES {
            let oldest = usize::from(self.head == Some(Head::Memory));
            let Some(old) = self.memory.remove(oldest) else {
                break;
            };
            self.memory_samples -= old.samples;
            dropped += old.samples;
        }
        dropped
    }

    /// The head batch: the one being written, else the oldest (on disk before memory).
    pub fn front(&mut self) -> Option<Chunk> {
        if self.head.is_none() {
            self.head = self.choose_head();
        }
        match self.head? {
            Head::Memory => self.memory.front().cloned(),
            Head::Spool => {
                let spool = self.spool.as_mut()?;
                match spool.peek() {
                    Ok(head) => head.map(|(samples, body)| Chunk {
                        body: Bytes::copy_from_slice(body),
                        samples,
                    }),
                    Err(e) => {
                        warn!(error = %e, "cannot read the spool");
                        None
                    }
                }
            }
        }
    }

    fn choose_head(&mut self) -> Option<Head> {
        if let Some(spool) = &mut self.spool {
            match spool.peek() {
                Ok(Some(_)) => return Some(Head::Spool),
                Ok(None) => {}
                Err(e) => {
                    // A full disk: what the spool holds waits for room; memory goes meanwhile.
                    if let Some(repeats) = self.trouble.ready() {
                        warn!(error = %e, repeats, "cannot read the spool");
                    }
                }
            }
        }
        (!self.memory.is_empty()).then_some(Head::Memory)
    }

    /// Takes the head batch off; returns its samples.
    pub fn pop(&mut self) -> u64 {
        match self.head.take() {
            Some(Head::Memory) => self.memory.pop_front().map_or(0, |c| {
                self.memory_samples -= c.samples;
                c.samples
            }),
            Some(Head::Spool) => {
                let Some(spool) = &mut self.spool else {
                    return 0;
                };
                let samples = spool.peek().ok().flatten().map_or(0, |(w, _)| w);
                if let Err(e) = spool.ack() {
                    warn!(error = %e, "cannot update the spool");
                }
                samples
            }
            None => 0,
        }
    }

    /// Samples waiting.
    pub fn samples(&self) -> u64 {
        self.memory_samples + self.spool.as_ref().map_or(0, |s| s.counts().pending_weight)
    }

    /// Samples waiting in memory only (lost if the gateway stops now).
    pub fn samples_in_memory(&self) -> u64 {
        self.memory_samples
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.memory.is_empty() && self.spool.as_ref().is_none_or(|s| s.is_empty())
    }

    /// Forgets what waits in memory (at shutdown); returns its samples.
    pub fn drop_memory(&mut self) -> u64 {
        if self.head == Some(Head::Memory) {
            self.head = None;
        }
        self.memory.clear();
        std::mem::take(&mut self.memory_samples)
    }

    /// Samples the spool dropped for space since the last call.
    pub fn new_spool_drops(&mut self) -> u64 {
        let Some(spool) = &self.spool else {
            return 0;
        };
        let now = spool.counts().dropped_weight;
        let new = now - self.reported_drops;
        self.reported_drops = now;
        new
    }

    /// Starts forcing the spool to disk on a blocking thread, unless that runs already; the
    /// backlog goes on meanwhile.
    pub fn start_sync(&mut self) {
        if let Some(spool) = &mut self.spool {
            let r = self.syncer.start(spool);
            self.complain(r);
        }
    }

    /// True while a sync runs.
    pub fn syncing(&self) -> bool {
        !self.syncer.is_idle()
    }

    /// Waits for the running sync (never ready while none runs) and takes its outcome.
    pub async fn synced(&mut self) {
        if let Some(spool) = &mut self.spool {
            let r = self.syncer.finish(spool).await;
            self.complain(r);
        } else {
            std::future::pending::<()>().await;
        }
    }

    /// Forces the spool to disk, after the sync running: at the end.
    pub async fn sync(&mut self) {
        if let Some(spool) = &mut self.spool {
            let r = self.syncer.sync(spool).await;
            self.complain(r);
        }
    }

    fn complain(&mut self, r: std::io::Result<()>) {
        if let Err(e) = r
            && let Some(repeats) = self.trouble.ready()
        {
            warn!(error = %e, repeats, "cannot sync the spool");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(samples: u64) -> Chunk {
        Chunk {
            body: Bytes::from(samples.to_string()),
            samples,
        }
    }

    #[test]
    fn memory_dropping_newest_keeps_the_oldest_batches() {
        let mut b = Backlog::new(None).dropping(WhenFull::DropNewest);
        let mut dropped = 0;
        for i in 1..=BACKLOG_BATCHES as u64 + 3 {
            dropped += b.push(chunk(i));
        }
        let n = BACKLOG_BATCHES as u64;
        assert_eq!(dropped, (n + 1) + (n + 2) + (n + 3));
        assert_eq!(b.front().map(|c| c.samples), Some(1));
        assert_eq!(b.samples(), (1..=n).sum::<u64>());
    }

    #[test]
    fn memory_keeps_the_newest_batches_and_counts_the_dropped() {
        let mut b = Backlog::new(None);
        let mut dropped = 0;
        for i in 1..=BACKLOG_BATCHES as u64 + 3 {
            dropped += b.push(chunk(i));
        }
        assert_eq!(dropped, 1 + 2 + 3);
        assert_eq!(b.front().map(|c| c.samples), Some(4));
        let total: u64 = (4..=BACKLOG_BATCHES as u64 + 3).sum();
        assert_eq!(b.samples(), total);
        assert_eq!(b.samples_in_memory(), total);
        assert_eq!(b.drop_memory(), total);
        assert!(b.is_empty());
        assert_eq!(b.front().map(|c| c.samples), None);
    }

    #[test]
    fn the_batch_being_written_is_the_one_taken_off_even_when_memory_overflows() {
        let mut b = Backlog::new(None);
        for i in 1..=BACKLOG_BATCHES as u64 {
            b.push(chunk(i));
        }
        let written = b.front().map(|c| c.samples);
        assert_eq!(written, Some(1));
        // Batches arrive while it is written: the oldest others make room, not it.
        assert_eq!(b.push(chunk(1000)), 2);
        assert_eq!(b.push(chunk(1001)), 3);
        assert_eq!(b.front().map(|c| c.samples), written, "the head stays");
        assert_eq!(b.pop(), 1);
        assert_eq!(b.front().map(|c| c.samples), Some(4));
        assert_eq!(b.pop(), 4);
    }

    #[test]
    fn a_spool_takes_batches_and_gives_them_back_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let spool = Spool::open(dir.path(), 1 << 20).expect("spool");
        let mut b = Backlog::new(Some(spool));
        for i in 1..=3 {
            assert_eq!(b.push(chunk(i)), 0);
        }
        assert_eq!(b.samples(), 6);
        assert_eq!(b.samples_in_memory(), 0);
        let head = b.front().map(|c| c.body);
        assert_eq!(head.as_deref(), Some(&b"1"[..]));
        b.push(chunk(4));
        assert_eq!(b.pop(), 1);
        assert_eq!(b.pop(), 0, "nothing is taken off without a head");
        let rest: Vec<u64> = std::iter::from_fn(|| {
            b.front()?;
            Some(b.pop())
        })
        .collect();
        assert_eq!(rest, vec![2, 3, 4]);
        assert!(b.is_empty());
    }
}
