//! The KPI ledgers on disk: one JSON file under the spool directory, replaced whole.

use serde::{Deserialize, Serialize};
use shopfloor_kpi::Ledger;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file under `spool_dir`.
pub fn path(spool_dir: &Path) -> PathBuf {
    spool_dir.join("kpi").join("state.json")
}

/// What is saved: each machine's ledger, and when.
#[derive(Debug, Serialize, Deserialize)]
pub struct Saved {
    /// When it was saved (UTC ms): the ledgers know nothing after it.
    pub saved_ms: i64,
    machines: HashMap<String, Ledger>,
}

impl Saved {
    /// The ledgers of `machines` (id, ledger) at `saved_ms`.
    pub fn of<'a>(saved_ms: i64, machines: impl Iterator<Item = (&'a str, &'a Ledger)>) -> Saved {
        Saved {
            saved_ms,
            machines: machines.map(|(id, l)| (id.to_owned(), l.clone())).collect(),
        }
    }

    /// The ledger saved for machine `id`.
    pub fn ledger(&self, id: &str) -> Option<Ledger> {
        self.machines.get(id).cloned()
    }
}

/// Writes `saved` to `path` through a temporary file and a rename, synced, so a crash leaves
/// the old file or the new one, never half of one.
pub fn save(path: &Path, saved: &Saved) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(saved).map_err(std::io::Error::other)?;
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The saved state, or `None` when there is none yet.
pub fn load(path: &Path) -> std::io::Result<Option<Saved>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shopfloor_kpi::{Activity, Counted};

    #[test]
    fn a_saved_ledger_comes_back_with_its_counter_baselines() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(dir.path());
        assert!(load(&file).unwrap().is_none());
        let mut l = Ledger::new();
        l.activity(0, Activity::Running);
        l.counter(0, Counted::Good, 10.0);
        l.counter(5_000, Counted::Good, 12.0);
        save(&file, &Saved::of(9_000, [("cnc-1", &l)].into_iter())).unwrap();
        let back = load(&file).unwrap().unwrap();
        assert_eq!(back.saved_ms, 9_000);
        let mut again = back.ledger("cnc-1").unwrap();
        assert_eq!(again.totals(0, 10_000), l.totals(0, 10_000));
        // The baseline came back too: 12 → 15 counts 3.
        again.counter(20_000, Counted::Good, 15.0);
        assert_eq!(again.totals(0, 30_000).good, 5.0);
        assert!(back.ledger("cnc-2").is_none());
        std::fs::write(&file, b"{").unwrap();
        assert!(load(&file).is_err());
    }
}
