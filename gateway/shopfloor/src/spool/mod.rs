//! The store-and-forward spool: a sink's backlog on disk while its destination is away.
//!
//! - [`frame`]: one record's bytes (length, checksum, weight, payload), pure and tested.
//!
//! Layout: a directory per sink holding append-only segment files `<id>.seg` (ids rising) and
//! an `ack` file naming the first record not yet acknowledged (`<segment id> <offset>`).
//!
//! Invariants:
//! 1. Records leave in the order they came: [`Spool::peek`] always shows the oldest record not
//!    acknowledged, and [`Spool::ack`] is the only way past it (called on the destination's
//!    acknowledgement: MQTT PUBACK, HTTP 2xx).
//! 2. Segment files are only appended to; a segment is deleted whole, once every record in it
//!    is acknowledged or when it is dropped for space.
//! 3. The files never hold more than `max_bytes` plus one record: past it, the oldest segment is
//!    dropped, and the records and weight it still held are added to the dropped counts,
//!    exactly.
//! 4. After [`Spool::sync`], everything pushed before it is on disk (`fsync`), and so is the
//!    acknowledged position. A power cut loses at most what was pushed since the last sync; a
//!    crash replays at most what was acknowledged since the last sync (duplicates, never gaps).
//! 5. Opening a spool replays what was left: every intact record after the acknowledged
//!    position. A torn or corrupt tail (a frame cut short or failing its checksum) is cut off
//!    and counted in `torn`; nothing in the files can make it panic.
//! 6. Writing resumes in a new segment after opening, so a segment that was cut is never
//!    appended to.
//!
//! All calls are synchronous file I/O on small buffered writes; sinks call them once per batch.

pub mod frame;

use frame::Decoded;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
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

#[derive(Debug)]
struct Head {
    weight: u64,
    payload: Vec<u8>,
    size: u64,
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
    head: Option<Head>,
    counts: SpoolCounts,
    ack_dirty: bool,
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
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(64 << 10, 64 << 20),
            segments,
            writer,
            cursor,
            head: None,
            counts,
            ack_dirty: false,
            scratch: Vec::new(),
        })
    }

    /// The counters.
    pub fn counts(&self) -> SpoolCounts {
        self.counts
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
        if let Some(last) = self.segments.back()
            && last.bytes > 0
            && last.bytes + size > self.segment_bytes
        {
            self.rotate()?;
        }
        self.writer.write_all(&self.scratch)?;
        if let Some(last) = self.segments.back_mut() {
            last.bytes += size;
            last.records += 1;
            last.weight += weight;
        }
        self.counts.pending += 1;
        self.counts.pending_weight += weight;
        self.counts.bytes += size;
        self.enforce_limit()
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.writer.flush()?;
        self.writer.get_ref().sync_data()?;
        let next = self.segments.back().map_or(0, |s| s.id + 1);
        self.writer = create_segment(&self.dir, next)?;
        self.segments.push_back(Segment {
            id: next,
            bytes: 0,
            records: 0,
            weight: 0,
        });
        Ok(())
    }

    fn enforce_limit(&mut self) -> io::Result<()> {
        while self.counts.bytes > self.max_bytes && self.segments.len() > 1 {
            let Some(old) = self.segments.pop_front() else {
                break;
            };
            let records = old.records - self.cursor.records;
            let weight = old.weight - self.cursor.weight;
            self.counts.dropped += records;
            self.counts.dropped_weight += weight;
            self.counts.pending -= records;
            self.counts.pending_weight -= weight;
            self.counts.bytes -= old.bytes;
            self.cursor = Cursor::default();
            self.head = None;
            self.ack_dirty = true;
            std::fs::remove_file(segment_path(&self.dir, old.id))?;
        }
        Ok(())
    }

    /// The oldest record not acknowledged: its weight and payload.
    pub fn peek(&mut self) -> io::Result<Option<(u64, &[u8])>> {
        while self.head.is_none() {
            let Some(front) = self.segments.front().copied() else {
                return Ok(None);
            };
            if self.cursor.offset >= front.bytes {
                if self.segments.len() == 1 {
                    return Ok(None);
                }
                self.retire_front()?;
                continue;
            }
            if self.segments.len() == 1 {
                self.writer.flush()?;
            }
            match self.read_at(front.id, self.cursor.offset)? {
                Some(head) => self.head = Some(head),
                None => {
                    // Damage found while reading: the rest of this segment is lost, counted.
                    self.counts.torn += 1;
                    let records = front.records - self.cursor.records;
                    let weight = front.weight - self.cursor.weight;
                    self.counts.dropped += records;
                    self.counts.dropped_weight += weight;
                    self.counts.pending -= records;
                    self.counts.pending_weight -= weight;
                    self.cursor.offset = front.bytes;
                    self.cursor.records = front.records;
                    self.cursor.weight = front.weight;
                }
            }
        }
        Ok(self.head.as_ref().map(|h| (h.weight, h.payload.as_slice())))
    }

    fn read_at(&self, id: u64, offset: u64) -> io::Result<Option<Head>> {
        let mut f = File::open(segment_path(&self.dir, id))?;
        f.seek(SeekFrom::Start(offset))?;
        let mut len = [0u8; 4];
        f.read_exact(&mut len)?;
        let n = u32::from_le_bytes(len) as usize;
        if n > frame::MAX_RECORD {
            return Ok(None);
        }
        let mut buf = vec![0u8; 8 + n];
        buf[..4].copy_from_slice(&len);
        if f.read_exact(&mut buf[4..]).is_err() {
            return Ok(None);
        }
        Ok(match frame::decode(&buf) {
            Decoded::Record {
                weight,
                payload,
                size,
            } => Some(Head {
                weight,
                payload: payload.to_vec(),
                size: size as u64,
            }),
            _ => None,
        })
    }

    /// Deletes the oldest segment, every record of which has been acknowledged.
    fn retire_front(&mut self) -> io::Result<()> {
        if let Some(old) = self.segments.pop_front() {
            self.counts.bytes -= old.bytes;
            std::fs::remove_file(segment_path(&self.dir, old.id))?;
        }
        self.cursor = Cursor::default();
        self.ack_dirty = true;
        Ok(())
    }

    /// The record [`Spool::peek`] showed has been acknowledged by the destination.
    pub fn ack(&mut self) -> io::Result<()> {
        let Some(head) = self.head.take() else {
            return Ok(());
        };
        self.cursor.offset += head.size;
        self.cursor.records += 1;
        self.cursor.weight += head.weight;
        self.counts.pending -= 1;
        self.counts.pending_weight -= head.weight;
        self.ack_dirty = true;
        if let Some(front) = self.segments.front().copied()
            && self.cursor.offset >= front.bytes
            && self.segments.len() > 1
        {
            self.retire_front()?;
        }
        Ok(())
    }

    /// Forces what was pushed, and the acknowledged position, to disk.
    pub fn sync(&mut self) -> io::Result<()> {
        self.writer.flush()?;
        self.writer.get_ref().sync_data()?;
        if self.ack_dirty {
            let (id, offset) = self
                .segments
                .front()
                .map_or((0, 0), |s| (s.id, self.cursor.offset));
            let tmp = self.dir.join("ack.tmp");
            {
                let mut f = File::create(&tmp)?;
                writeln!(f, "{id} {offset}")?;
                f.sync_data()?;
            }
            std::fs::rename(&tmp, self.dir.join("ack"))?;
            self.ack_dirty = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
