//! The CSV sink, for data analysis: one file per machine and UTC day,
//! `{dir}/{machine}/{YYYY-MM-DD}.csv`, header `timestamp_ms,machine,tag,value,quality,unit`, a
//! row per sample, written on a thread of the blocking pool and flushed as soon as the sink
//! has caught up with its input. A sample's own timestamp picks its day, so a new file
//! starts at midnight UTC. Appends to an existing file of the day after a restart; a last row
//! cut short by a crash (no line end) is cut off first, so the next row never glues onto it
//! and the file stays readable by pandas.

use crate::runtime::StartError;
use crate::sink::intake::{Bound, Intake};
use crate::sink::{Sink, SinkContext, SinkStats, SinkTask};
use shopfloor_contract::json::push_value;
use shopfloor_core::{Quality, Sample, SharedCatalog};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tracing::{info, warn};

/// The file of `machine`'s samples on `date`: `dir/<machine>/<date>.csv`. A machine name learnt
/// from the network has passed the recorder's name rule, so it is one plain path component.
pub fn day_file(dir: &std::path::Path, machine: &str, date: &str) -> std::path::PathBuf {
    dir.join(machine).join(format!("{date}.csv"))
}
/// The header line of every file.
pub const HEADER: &str = "timestamp_ms,machine,tag,value,quality,unit\n";

/// The UTC calendar date of a Unix-epoch millisecond, as `YYYY-MM-DD`.
pub fn utc_date(timestamp_ms: i64) -> String {
    // Days to civil date (H. Hinnant's algorithm): exact for every day of the proleptic calendar.
    let z = timestamp_ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Appends `field` to `row`, quoted where CSV needs it (comma, quote, CR or LF).
pub fn push_field(row: &mut Vec<u8>, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        row.push(b'"');
        row.extend_from_slice(field.replace('"', "\"\"").as_bytes());
        row.push(b'"');
    } else {
        row.extend_from_slice(field.as_bytes());
    }
}

/// One row for `s`; an empty `value` when the quality is bad.
pub fn row(out: &mut Vec<u8>, s: &Sample, machine: &str, tag: &str, unit: Option<&str>) {
    out.extend_from_slice(itoa::Buffer::new().format(s.timestamp_ms).as_bytes());
    out.push(b',');
    push_field(out, machine);
    out.push(b',');
    push_field(out, tag);
    out.push(b',');
    match s.value() {
        shopfloor_core::ValueRef::Text(t) => push_field(out, t),
        _ if s.quality() == Quality::Bad => {}
        v => push_value(out, v),
    }
    out.push(b',');
    out.extend_from_slice(s.quality().as_str().as_bytes());
    out.push(b',');
    push_field(out, unit.unwrap_or(""));
    out.push(b'\n');
}

struct Open {
    date: String,
    file: BufWriter<File>,
}

/// The sink's state.
pub struct CsvSink {
    dir: PathBuf,
    catalog: Arc<SharedCatalog>,
    stats: Arc<SinkStats>,
    bound: Bound,
    open: HashMap<usize, Open>,
    row: Vec<u8>,
}

impl std::fmt::Debug for CsvSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvSink").field("dir", &self.dir).finish()
    }
}

fn open_day(path: &Path) -> std::io::Result<BufWriter<File>> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let fresh = cut_torn_tail(&file, path)? == 0;
    let mut w = BufWriter::with_capacity(64 * 1024, file);
    if fresh {
        w.write_all(HEADER.as_bytes())?;
    }
    Ok(w)
}

/// Cuts what follows the last line end of `file` (a row torn by a crash) and returns the length
/// left. A file with no line end at all is emptied, header included, to be written anew.
fn cut_torn_tail(file: &File, path: &Path) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    let mut reader = file;
    let mut keep = 0;
    // Back from the end, a block at a time: a torn row is short, the file may be large.
    let mut end = len;
    let mut block = vec![0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(block.len() as u64);
        let n = usize::try_from(end - start).unwrap_or(block.len());
        reader.seek(SeekFrom::Start(start))?;
        reader.read_exact(&mut block[..n])?;
        if let Some(i) = block[..n].iter().rposition(|b| *b == b'\n') {
            keep = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    if keep < len {
        file.set_len(keep)?;
        warn!(
            file = %path.display(),
            bytes = len - keep,
            "CSV file ended in a torn row (a crash?); the torn part is cut off"
        );
    }
    Ok(keep)
}

/// The CSV sink of `[csv]`, if the section is there.
pub fn build(
    ctx: &SinkContext<'_>,
    stats: Arc<SinkStats>,
) -> Result<Option<Box<dyn Sink>>, StartError> {
    let Some(csv) = &ctx.config.csv else {
        return Ok(None);
    };
    info!(dir = %csv.dir.display(), "writing CSV files");
    let bound = ctx.bound(csv.when_full);
    let sink = CsvSink::new(csv.dir.clone(), Arc::clone(ctx.shared), stats, bound);
    Ok(Some(Box::new(sink)))
}

impl Sink for CsvSink {
    fn name(&self) -> &'static str {
        "csv"
    }

    fn bound(&self) -> Bound {
        self.bound
    }

    /// Writes are local and flushed every second: it needs no budget of its own.
    fn run(self: Box<Self>, input: Intake, _budget: Duration) -> SinkTask {
        Box::pin((*self).run(input))
    }
}

impl CsvSink {
    /// A sink writing under `dir`, its intake under `bound`.
    pub fn new(
        dir: PathBuf,
        catalog: Arc<SharedCatalog>,
        stats: Arc<SinkStats>,
        bound: Bound,
    ) -> CsvSink {
        CsvSink {
            dir,
            catalog,
            stats,
            bound,
            open: HashMap::new(),
            row: Vec::with_capacity(256),
        }
    }

    fn write_batch(&mut self, batch: &[Sample]) {
        let catalog = self.catalog.load();
        for s in batch {
            let (Some(m), Some(t)) = (catalog.machine(s.machine), catalog.tag(s.machine, s.tag))
            else {
                continue;
            };
            let date = utc_date(s.timestamp_ms);
            let key = s.machine.index();
            if self.open.get(&key).is_none_or(|o| o.date != date) {
                if let Some(mut old) = self.open.remove(&key) {
                    let _ = old.file.flush();
                }
                let path = day_file(&self.dir, &m.id, &date);
                match open_day(&path) {
                    Ok(file) => {
                        self.open.insert(key, Open { date, file });
                    }
                    Err(e) => {
                        warn!(file = %path.display(), error = %e, "cannot open CSV file");
                        self.stats.errors.fetch_add(1, Ordering::Relaxed);
                        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                }
            }
            self.row.clear();
            row(&mut self.row, s, &m.id, &t.name, t.unit.as_deref());
            let Some(open) = self.open.get_mut(&key) else {
                continue;
            };
            if let Err(e) = open.file.write_all(&self.row) {
                warn!(machine = %m.id, error = %e, "cannot write CSV row");
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            } else {
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn flush(&mut self) {
        for o in self.open.values_mut() {
            if let Err(e) = o.file.flush() {
                warn!(error = %e, "cannot flush CSV file");
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Runs until `input` closes, on a thread of the blocking pool, so that file writes never
    /// hold up the async workers. Flushes whenever it has caught up with its input (so a row is
    /// in the file within a batch of being read), and at the end.
    pub async fn run(mut self, mut input: Intake) {
        let writer = tokio::task::spawn_blocking(move || {
            // Samples written since the last flush: in the file (and safe from a crash of
            // this process) only once flushed.
            let mut unflushed = 0;
            while let Some(b) = input.blocking_recv() {
                self.write_batch(&b);
                unflushed += b.len() as u64;
                if input.is_empty() {
                    self.flush();
                    self.stats.took(std::mem::take(&mut unflushed));
                }
            }
            self.flush();
            self.stats.took(unflushed);
        });
        if let Err(e) = writer.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

#[cfg(test)]
mod torn_tail_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_torn_last_row_is_cut_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m").join("2026-12-01.csv");
        let row = "1795379533423,m,t,1,good,\n";
        let cases = [
            (
                format!("{HEADER}{row}1795379533424,m,t,2,go"),
                format!("{HEADER}{row}"),
            ),
            (format!("{HEADER}{row}"), format!("{HEADER}{row}")),
            ("timestamp_ms,mach".to_owned(), HEADER.to_owned()),
            (String::new(), HEADER.to_owned()),
        ];
        for (before, want) in cases {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &before).unwrap();
            let mut w = open_day(&path).unwrap();
            w.write_all(b"9,m,t,3,good,\n").unwrap();
            w.flush().unwrap();
            drop(w);
            let got = std::fs::read_to_string(&path).unwrap();
            assert_eq!(got, format!("{want}9,m,t,3,good,\n"), "{before:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shopfloor_core::{MachineId, TagId, Text, Value};

    #[test]
    fn utc_dates() {
        for (ms, want) in [
            (0, "1970-01-01"),
            (86_399_999, "1970-01-01"),
            (86_400_000, "1970-01-02"),
            (951_782_400_000, "2000-02-29"),
            (1_795_379_533_423, "2026-11-22"),
            (1_798_761_599_999, "2026-12-31"),
            (1_798_761_600_000, "2027-01-01"),
            (-1, "1969-12-31"),
        ] {
            assert_eq!(utc_date(ms), want, "{ms}");
        }
    }

    fn csv_row(v: Value, q: Quality, unit: Option<&str>) -> String {
        let s = Sample::new(MachineId(0), TagId(0), 5, 1, v, q);
        let mut out = Vec::new();
        row(&mut out, &s, "cnc-1", "t", unit);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rows_are_quoted_where_csv_needs_it() {
        assert_eq!(
            csv_row(Value::F64(1.5), Quality::Good, Some("rpm")),
            "5,cnc-1,t,1.5,good,rpm\n"
        );
        assert_eq!(
            csv_row(Value::Bool(true), Quality::Uncertain, None),
            "5,cnc-1,t,true,uncertain,\n"
        );
        assert_eq!(
            csv_row(Value::I64(3), Quality::Bad, None),
            "5,cnc-1,t,,bad,\n"
        );
        assert_eq!(
            csv_row(
                Value::Text(Text::from("a,\"b\"\nc")),
                Quality::Good,
                Some("m,m")
            ),
            "5,cnc-1,t,\"a,\"\"b\"\"\nc\",good,\"m,m\"\n"
        );
    }
}
