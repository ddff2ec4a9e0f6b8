//! The store-and-forward spool: a sink's backlog on disk while its destination is away (the
//! MQTT and store sinks' `[buffer] spool_dir`).
//!
//! Modules:
//! - [`frame`]: one record's bytes (length, checksum, weight, payload), pure and tested.
//! - [`syncer`]: a sink's syncs on a blocking thread, one at a time.
//!
//! Layout: a directory per sink holding append-only segment files `<id>.seg` (ids rising) and
//! an `ack` file naming the first record not yet acknowledged (`<segment id> <offset>`).
//!
//! Two ways to read, one per sink: [`Spool::peek`]/[`Spool::ack`] for a sink that sends one
//! record at a time (HTTP), and [`Spool::read_next`]/[`Spool::ack_seq`] for a sink with a window
//! of records in flight (MQTT), acknowledged in any order.
//!
//! Invariants:
//! 1. Records leave in the order they came: a record is read only after every older one was
//!    read, and the acknowledged position moves past a record only once it and every older one
//!    were acknowledged (on the destination's acknowledgement: MQTT PUBACK, HTTP 2xx).
//! 2. Segment files are only appended to; a segment is deleted whole, once every record in it
//!    is acknowledged or when it is dropped for space.
//! 3. The files never hold more than `max_bytes` (segments are an eighth of it, at least
//!    64 KiB): before a record that would not fit is written, the oldest segment is dropped, and the records and weight it still held are added to the dropped counts,
//!    exactly. Records of it already read (in the sink's memory, on their way) are not counted
//!    as dropped: the sink delivers or counts them; acknowledging them later changes nothing.
//! 4. After [`Spool::sync`] (or a [`SyncJob`] from [`Spool::begin_sync`] that succeeded),
//!    everything pushed before it is on disk (`fsync`), and so is the
//!    acknowledged position, and so are the directory's entries: a segment created or deleted
//!    and the `ack` file renamed into place are made durable by an `fsync` of the directory,
//!    without which a power cut could lose a whole segment whose data was synced. A power cut loses at most what was pushed since the last sync; a
//!    crash replays at most what was acknowledged since the last sync (duplicates, never gaps).
//! 5. Opening a spool replays what was left: every intact record after the acknowledged
//!    position. A torn or corrupt tail (a frame cut short or failing its checksum) is cut off
//!    and counted in `torn`; nothing in the files can make it panic.
//! 6. Writing resumes in a new segment after opening, so a segment that was cut is never
//!    appended to.
//!
//! 7. After [`Spool::flush`], everything pushed is in the operating system's hands: a killed
//!    process loses none of it (only a power cut can lose what was not yet synced).
//! 8. Once a write to the files failed (a full disk), [`Spool::push`] refuses every record, so
//!    that the caller keeps it elsewhere, until the write buffer is out again: what that buffer
//!    holds stays pending and goes out when there is room, and what is already in the files
//!    keeps being read (only whole frames), so acknowledging it frees space.
//!
//! All calls are synchronous file I/O on small buffered writes; sinks call them once per batch.
//! The `fsync`s, which can take long on a slow disk, run apart as a [`SyncJob`] on a blocking
//! thread, so that a sink takes its input meanwhile.

pub mod frame;
pub mod syncer;

use frame::Decoded;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy)]
struct Segment {
    id: u64,
    bytes: u64,
    records: u64,
    weight: u64,
}

/// Where reading stands in the oldest segment.
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    offset: u64,
    records: u64,
    weight: u64,
}

/// Where the next read starts: a segment, an offset in it, and what lies before it there.
#[derive(Debug, Clone, Copy, Default)]
struct ReadPos {
    segment: u64,
    offset: u64,
    records: u64,
    weight: u64,
}

/// A record read and not yet passed by the acknowledged position (or a damaged stretch skipped).
#[derive(Debug, Clone, Copy)]
struct Ahead {
    seq: u64,
    segment: u64,
    size: u64,
    weight: u64,
    /// 1 for a record; for a skipped stretch, the records lost in it.
    records: u64,
    skip: bool,
    acked: bool,
}

/// One record handed out by [`Spool::read_next`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its number in this run of the spool, for [`Spool::ack_seq`].
    pub seq: u64,
    /// What it stands for.
    pub weight: u64,
    /// Its bytes.
    pub payload: Vec<u8>,
}

/// Counters of a spool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolCounts {
    /// Records waiting.
    pub pending: u64,
    /// Their total weight.
    pub pending_weight: u64,
    /// Records dropped for space (or lost to damage found while reading).
    pub dropped: u64,
    /// Their weight.
    pub dropped_weight: u64,
    /// Torn or corrupt tails cut off.
    pub torn: u64,
    /// Bytes in the segment files.
    pub bytes: u64,
}

/// A spool directory, open for one sink.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    segments: VecDeque<Segment>,
    writer: BufWriter<File>,
    cursor: Cursor,
    read: ReadPos,
    reader: Option<(u64, BufReader<File>)>,
    ahead: VecDeque<Ahead>,
    next_seq: u64,
    peeked: Option<Record>,
    counts: SpoolCounts,
    ack_dirty: bool,
    /// A segment was created or deleted since the directory was last synced.
    dir_dirty: bool,
    /// How often the directory was synced (for tests of invariant 4).
    dir_syncs: u64,
    /// A write to the files failed and the write buffer has not been written out since.
    write_failed: bool,
    /// Segments finished since the last sync, to be synced by the next one.
    finished: Vec<File>,
    scratch: Vec<u8>,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.seg"))
}

fn read_ack(dir: &Path) -> (u64, u64) {
    std::fs::read_to_string(dir.join("ack"))
        .ok()
        .and_then(|t| {
            let mut it = t.split_whitespace().map(str::parse::<u64>);
            Some((it.next()?.ok()?, it.next()?.ok()?))
        })
        .unwrap_or((0, 0))
}

fn create_segment(dir: &Path, id: u64) -> io::Result<BufWriter<File>> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(segment_path(dir, id))?;
    Ok(BufWriter::with_capacity(256 * 1024, file))
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, holding at most `max_bytes`, and finds what was
    /// left by an earlier run.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let mut ids: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        let (ack_id, ack_offset) = read_ack(dir);
        let mut counts = SpoolCounts::default();
        let mut segments = VecDeque::new();
        let mut cursor = Cursor::default();
        for id in ids {
            let path = segment_path(dir, id);
            if id < ack_id {
                std::fs::remove_file(&path)?;
                continue;
            }
            let bytes = std::fs::read(&path)?;
            let mut seg = Segment {
                id,
                bytes: 0,
                records: 0,
                weight: 0,
            };
            let mut at = 0usize;
            while at < bytes.len() {
                match frame::decode(&bytes[at..]) {
                    Decoded::Record { weight, size, .. } => {
                        if id == ack_id && (at as u64) < ack_offset {
                            cursor.offset = (at + size) as u64;
                            cursor.records += 1;
                            cursor.weight += weight;
                        }
                        seg.records += 1;
                        seg.weight += weight;
                        at += size;
                    }
                    Decoded::Incomplete | Decoded::Corrupt => {
                        counts.torn += 1;
                        OpenOptions::new()
                            .write(true)
                            .open(&path)?
                            .set_len(at as u64)?;
                        break;
                    }
                }
            }
            seg.bytes = at as u64;
            segments.push_back(seg);
        }
        if segments.front().is_some_and(|s| s.id != ack_id) {
            cursor = Cursor::default();
        }
        let next = segments.back().map_or(ack_id, |s| s.id + 1);
        let writer = create_segment(dir, next)?;
        segments.push_back(Segment {
            id: next,
            bytes: 0,
            records: 0,
            weight: 0,
        });
        for s in &segments {
            counts.pending += s.records;
            counts.pending_weight += s.weight;
            counts.bytes += s.bytes;
        }
        counts.pending -= cursor.records;
        counts.pending_weight -= cursor.weight;
        let read = ReadPos {
            segment: segments.front().map_or(next, |s| s.id),
            offset: cursor.offset,
            records: cursor.records,
            weight: cursor.weight,
        };
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(64 << 10, 64 << 20),
            segments,
            writer,
            cursor,
            read,
            reader: None,
            ahead: VecDeque::new(),
            next_seq: 0,
            peeked: None,
            counts,
            ack_dirty: false,
            // Opening created the segment written next.
            dir_dirty: true,
            dir_syncs: 0,
            write_failed: false,
            finished: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// Logs what an earlier run left for sink `sink`: records to replay, a tail cut off.
    pub fn report_opened(&self, sink: &str) {
        let c = self.counts;
        if c.pending > 0 {
            tracing::info!(
                event = "spool_replay",
                sink,
                records = c.pending,
                samples = c.pending_weight,
                "replaying the spool"
            );
        }
        if c.torn > 0 {
            tracing::warn!(
                sink,
                torn = c.torn,
                "the spool had a torn or corrupt tail; it was cut off"
            );
        }
    }

    /// The counters.
    pub fn counts(&self) -> SpoolCounts {
        self.counts
    }

    /// The most the files may hold, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// True when no record waits.
    pub fn is_empty(&self) -> bool {
        self.counts.pending == 0
    }

    /// Appends a record standing for `weight` (say, samples).
    pub fn push(&mut self, weight: u64, payload: &[u8]) -> io::Result<()> {
        self.scratch.clear();
        frame::encode(&mut self.scratch, weight, payload);
        let size = self.scratch.len() as u64;
        if self.write_failed {
            let r = self.writer.flush();
            self.note_write(r)?;
        }
        if let Some(last) = self.segments.back()
            && last.bytes > 0
            && last.bytes + size > self.segment_bytes
        {
            self.rotate()?;
        }
        // Room first, so that the files never hold more than allowed, not even for a moment.
        self.make_room(size)?;
        let r = self.writer.write_all(&self.scratch);
        self.note_write(r)?;
        if let Some(last) = self.segments.back_mut() {
            last.bytes += size;
            last.records += 1;
            last.weight += weight;
        }
        self.counts.pending += 1;
        self.counts.pending_weight += weight;
        self.counts.bytes += size;
        Ok(())
    }

    /// Remembers whether a write to the files failed (see invariant 8).
    fn note_write<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        self.write_failed = r.is_err();
        r
    }

    fn rotate(&mut self) -> io::Result<()> {
        let r = self.writer.flush();
        self.note_write(r)?;
        let next = self.segments.back().map_or(0, |s| s.id + 1);
        let old = std::mem::replace(&mut self.writer, create_segment(&self.dir, next)?);
        // Flushed above: nothing is left in its buffer. The next sync forces it to disk, off
        // the sink's task.
        if let Ok(file) = old.into_inner() {
            self.finished.push(file);
        }
        self.dir_dirty = true;
        self.segments.push_back(Segment {
            id: next,
            bytes: 0,
            records: 0,
            weight: 0,
        });
        Ok(())
    }

    /// Drops the oldest segments until `incoming` more bytes fit (the segment being written
    /// stays: a limit smaller than one segment is exceeded by that segment alone).
    fn make_room(&mut self, incoming: u64) -> io::Result<()> {
        while self.counts.bytes + incoming > self.max_bytes && self.segments.len() > 1 {
            let Some(old) = self.segments.pop_front() else {
                break;
            };
            // What the segment still held: stretches skipped as damaged (counted already),
            // records read and on their way (the sink's now), and the rest, dropped here.
            let (mut skipped, mut skipped_weight, mut read, mut read_weight) = (0, 0, 0, 0);
            for a in self.ahead.iter().filter(|a| a.segment == old.id) {
                if a.skip {
                    skipped += a.records;
                    skipped_weight += a.weight;
                } else {
                    read += 1;
                    read_weight += a.weight;
                }
            }
            self.ahead.retain(|a| a.segment != old.id);
            let records = old.records - self.cursor.records - skipped;
            let weight = old.weight - self.cursor.weight - skipped_weight;
            self.counts.dropped += records - read;
            self.counts.dropped_weight += weight - read_weight;
            self.counts.pending -= records;
            self.counts.pending_weight -= weight;
            self.counts.bytes -= old.bytes;
            self.cursor = Cursor::default();
            self.ack_dirty = true;
            self.forget_segment(old.id);
            std::fs::remove_file(segment_path(&self.dir, old.id))?;
            self.dir_dirty = true;
        }
        Ok(())
    }

    /// Moves reading off a segment that is gone.
    fn forget_segment(&mut self, id: u64) {
        if self.reader.as_ref().is_some_and(|(r, _)| *r == id) {
            self.reader = None;
        }
        if self.read.segment == id {
            self.read = ReadPos {
                segment: self.segments.front().map_or(id + 1, |s| s.id),
                ..ReadPos::default()
            };
        }
    }

    /// The next record not yet read, if any; it stays in the spool until acknowledged.
    pub fn read_next(&mut self) -> io::Result<Option<Record>> {
        loop {
            let Some(at) = self.segments.iter().position(|s| s.id == self.read.segment) else {
                return Ok(None);
            };
            let seg = self.segments[at];
            let last = at + 1 == self.segments.len();
            if self.read.offset >= seg.bytes {
                let Some(next) = self.segments.get(at + 1) else {
                    return Ok(None);
                };
                self.read = ReadPos {
                    segment: next.id,
                    ..ReadPos::default()
                };
                continue;
            }
            if last && let Err(e) = self.writer.flush() {
                self.write_failed = true;
                // A full disk: what is in the file already can still go out, and
                // acknowledging it is what frees the space the rest needs. Only a whole frame
                // is read, never one the writer still holds part of.
                let on_disk = seg.bytes - self.writer.buffer().len() as u64;
                if !self.whole_frame_on_disk(seg.id, on_disk)? {
                    return if self.read.offset < on_disk {
                        Ok(None)
                    } else {
                        Err(e)
                    };
                }
            }
            match self.read_frame(seg.id)? {
                Some((weight, payload, size)) => {
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    self.ahead.push_back(Ahead {
                        seq,
                        segment: seg.id,
                        size,
                        weight,
                        records: 1,
                        skip: false,
                        acked: false,
                    });
                    self.read.offset += size;
                    self.read.records += 1;
                    self.read.weight += weight;
                    return Ok(Some(Record {
                        seq,
                        weight,
                        payload,
                    }));
                }
                None => {
                    // Damage found while reading: the rest of this segment is lost, counted.
                    let records = seg.records - self.read.records;
                    let weight = seg.weight - self.read.weight;
                    self.counts.torn += 1;
                    self.counts.dropped += records;
                    self.counts.dropped_weight += weight;
                    self.counts.pending -= records;
                    self.counts.pending_weight -= weight;
                    self.ahead.push_back(Ahead {
                        seq: self.next_seq,
                        segment: seg.id,
                        size: seg.bytes - self.read.offset,
                        weight,
                        records,
                        skip: true,
                        acked: true,
                    });
                    self.read.offset = seg.bytes;
                    self.read.records = seg.records;
                    self.read.weight = seg.weight;
                    self.reader = None;
                    self.advance()?;
                }
            }
        }
    }

    /// True when the frame at the read position of segment `id` ends within `on_disk` bytes.
    fn whole_frame_on_disk(&self, id: u64, on_disk: u64) -> io::Result<bool> {
        use std::os::unix::fs::FileExt;
        let start = self.read.offset;
        if start + frame::HEADER as u64 > on_disk {
            return Ok(false);
        }
        let mut len = [0u8; 4];
        File::open(segment_path(&self.dir, id))?.read_exact_at(&mut len, start)?;
        Ok(start + 8 + u64::from(u32::from_le_bytes(len)) <= on_disk)
    }

    /// The frame at the read position of segment `id`: weight, payload and size, or `None`
    /// when the bytes there are not an intact frame.
    fn read_frame(&mut self, id: u64) -> io::Result<Option<(u64, Vec<u8>, u64)>> {
        let offset = self.read.offset;
        let reader = match &mut self.reader {
            Some((r, reader)) if *r == id => reader,
            _ => {
                let mut f = File::open(segment_path(&self.dir, id))?;
                f.seek(SeekFrom::Start(offset))?;
                &mut self.reader.insert((id, BufReader::new(f))).1
            }
        };
        let result = read_one(reader);
        if !matches!(result, Ok(Some(_))) {
            // The reader's position is unknown after a failure: reopen next time.
            self.reader = None;
        }
        result
    }

    /// The record [`Spool::read_next`] gave out as `seq` was delivered. Records may be
    /// acknowledged in any order; one no longer in the spool (dropped for space) is ignored.
    pub fn ack_seq(&mut self, seq: u64) -> io::Result<()> {
        let from = self.ahead.partition_point(|a| a.seq < seq);
        if let Some(a) = self
            .ahead
            .range_mut(from..)
            .take_while(|a| a.seq == seq)
            .find(|a| !a.skip)
        {
            a.acked = true;
        }
        self.advance()
    }

    /// Moves the acknowledged position past every acknowledged record at the front.
    fn advance(&mut self) -> io::Result<()> {
        while self.ahead.front().is_some_and(|a| a.acked) {
            let Some(a) = self.ahead.pop_front() else {
                break;
            };
            // Segments before this record's (empty ones, or ones read to their end) are done.
            while self.segments.len() > 1 && self.segments.front().is_some_and(|s| s.id < a.segment)
            {
                self.retire_front()?;
            }
            self.cursor.offset += a.size;
            self.cursor.records += a.records;
            self.cursor.weight += a.weight;
            if !a.skip {
                self.counts.pending -= 1;
                self.counts.pending_weight -= a.weight;
            }
            self.ack_dirty = true;
            if let Some(front) = self.segments.front().copied()
                && self.cursor.offset >= front.bytes
                && self.segments.len() > 1
            {
                self.retire_front()?;
            }
        }
        Ok(())
    }

    /// The oldest record not acknowledged: its weight and payload (for a sink that reads one
    /// record at a time and acknowledges it with [`Spool::ack`]).
    pub fn peek(&mut self) -> io::Result<Option<(u64, &[u8])>> {
        if self.peeked.is_none() {
            self.peeked = self.read_next()?;
        }
        Ok(self
            .peeked
            .as_ref()
            .map(|r| (r.weight, r.payload.as_slice())))
    }

    /// Deletes the oldest segment, every record of which has been acknowledged.
    fn retire_front(&mut self) -> io::Result<()> {
        if let Some(old) = self.segments.pop_front() {
            self.counts.bytes -= old.bytes;
            self.forget_segment(old.id);
            std::fs::remove_file(segment_path(&self.dir, old.id))?;
            self.dir_dirty = true;
        }
        self.cursor = Cursor::default();
        self.ack_dirty = true;
        Ok(())
    }

    /// The record [`Spool::peek`] showed has been acknowledged by the destination.
    pub fn ack(&mut self) -> io::Result<()> {
        match self.peeked.take() {
            Some(r) => self.ack_seq(r.seq),
            None => Ok(()),
        }
    }

    /// Hands what was pushed to the operating system (no `fsync`): safe from a killed process.
    pub fn flush(&mut self) -> io::Result<()> {
        let r = self.writer.flush();
        self.note_write(r)
    }

    /// Forces what was pushed, and the acknowledged position, to disk, here and now.
    pub fn sync(&mut self) -> io::Result<()> {
        let job = self.begin_sync()?;
        let done = job.run();
        self.end_sync(done)
    }

    /// The slow part of a [`Spool::sync`] as a job for a blocking thread: the spool goes on
    /// taking and giving records meanwhile. Hand its outcome to [`Spool::end_sync`]; begin no
    /// other sync (nor [`Spool::sync`]) before that.
    pub fn begin_sync(&mut self) -> io::Result<SyncJob> {
        self.flush()?;
        let segment = self.writer.get_ref().try_clone()?;
        let ack = std::mem::take(&mut self.ack_dirty).then(|| {
            self.segments
                .front()
                .map_or((0, 0), |s| (s.id, self.cursor.offset))
        });
        // Renaming the `ack` file into place is a change of the directory too.
        let dir = (std::mem::take(&mut self.dir_dirty) || ack.is_some()).then(|| self.dir.clone());
        Ok(SyncJob {
            finished: std::mem::take(&mut self.finished),
            segment,
            ack: ack.map(|position| (self.dir.clone(), position)),
            dir,
        })
    }

    /// Takes back what a [`SyncJob`] did; a failed one leaves its work to the next sync.
    pub fn end_sync(&mut self, done: Synced) -> io::Result<()> {
        match done.result {
            Ok(()) => {
                self.dir_syncs += u64::from(done.dir);
                Ok(())
            }
            Err(e) => {
                self.ack_dirty |= done.ack;
                self.dir_dirty |= done.dir;
                self.note_write(Err(e))
            }
        }
    }

    /// How many times a sync synced the directory itself.
    pub fn dir_syncs(&self) -> u64 {
        self.dir_syncs
    }
}

/// The `fsync`s of one sync, with the spool's state they need, taken apart from the spool so
/// that they run where blocking is allowed ([`Spool::begin_sync`]).
#[derive(Debug)]
pub struct SyncJob {
    /// Segments finished since the sync before.
    finished: Vec<File>,
    /// The segment being written (a second handle to it).
    segment: File,
    /// The acknowledged position to write, and the directory its file goes in.
    ack: Option<(PathBuf, (u64, u64))>,
    /// The directory, when its entries changed.
    dir: Option<PathBuf>,
}

/// What a [`SyncJob`] did, for [`Spool::end_sync`].
#[derive(Debug)]
pub struct Synced {
    result: io::Result<()>,
    ack: bool,
    dir: bool,
}

impl Synced {
    /// A job that could not run (its thread was cancelled): its work is left to the next.
    pub fn failed(e: io::Error) -> Synced {
        Synced {
            result: Err(e),
            ack: true,
            dir: true,
        }
    }
}

impl SyncJob {
    /// Runs the job: blocking file I/O, off the async workers.
    pub fn run(self) -> Synced {
        let result = (|| {
            for file in &self.finished {
                file.sync_data()?;
            }
            self.segment.sync_data()?;
            if let Some((dir, (id, offset))) = &self.ack {
                let tmp = dir.join("ack.tmp");
                {
                    let mut f = File::create(&tmp)?;
                    writeln!(f, "{id} {offset}")?;
                    f.sync_data()?;
                }
                std::fs::rename(&tmp, dir.join("ack"))?;
            }
            if let Some(dir) = &self.dir {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        })();
        Synced {
            result,
            ack: self.ack.is_some(),
            dir: self.dir.is_some(),
        }
    }
}

/// One frame from `r`: `None` when what is there is cut short or fails its checksum.
fn read_one(r: &mut impl Read) -> io::Result<Option<(u64, Vec<u8>, u64)>> {
    let mut buf = vec![0u8; 4];
    match r.read_exact(&mut buf) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let n = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if n > frame::MAX_RECORD {
        return Ok(None);
    }
    buf.resize(8 + n, 0);
    match r.read_exact(&mut buf[4..]) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    Ok(match frame::decode(&buf) {
        Decoded::Record { weight, size, .. } => {
            buf.drain(..frame::HEADER);
            Some((weight, buf, size as u64))
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests;
