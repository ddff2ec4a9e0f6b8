//! What a gateway's `[csv]` sink wrote, read back as the record of what it took.

use std::collections::BTreeMap;
use std::path::Path;

/// Machine `machine`'s good readings in `{dir}/data`: (tag, timestamp) → value as written.
/// Empty while the machine has no file yet.
pub fn good_values(dir: &Path, machine: &str) -> BTreeMap<(String, i64), String> {
    let mut out = BTreeMap::new();
    let Ok(files) = std::fs::read_dir(dir.join("data").join(machine)) else {
        return out;
    };
    for entry in files.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split(',').collect();
            let (Some(ts), Some(tag), Some(value), Some(&"good")) =
                (cols.first(), cols.get(2), cols.get(3), cols.get(4))
            else {
                continue;
            };
            if let Ok(ts) = ts.parse() {
                out.insert(((*tag).to_owned(), ts), (*value).to_owned());
            }
        }
    }
    out
}
