//! Live reconfiguration: what a new config file changes against the running one (pure), and
//! the requests to look at the file again (SIGHUP, and with `--watch` the file's own changes
//! after 500 ms of quiet).
//!
//! A file that changes only machines is applied as the difference ([`in_place`]): the drivers
//! of machines removed or changed stop, those added or changed start, and every other machine
//! is not touched. A file that changes a section (a sink, `[gateway] http`, `[kpi]`) is applied
//! by stopping the gateway (the ring drained, the sinks flushed or spooled, as on SIGTERM) and
//! starting it again on the new file, inside the same process: then every machine reconnects
//! and its `seq` starts at 1 again.

use crate::config::{Config, ProtocolConfig};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::warn;

/// What a new file changes against the running one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Machines only in the new file.
    pub added: Vec<String>,
    /// Machines only in the running one.
    pub removed: Vec<String>,
    /// Machines in both whose settings or tags differ.
    pub changed: Vec<String>,
    /// Machines in both, the same.
    pub unchanged: usize,
    /// Other sections that differ (`[mqtt]`, `[gateway] http`, …).
    pub sections: Vec<&'static str>,
    /// What only a restart of the process can change: `[gateway] name`, `[buffer]`.
    pub restart_needed: Vec<&'static str>,
}

impl Plan {
    /// True when the new file changes nothing.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.sections.is_empty()
            && self.restart_needed.is_empty()
    }

    /// The one log line: `added cnc-3; removed meter-9; changed imm-1; 4 unchanged`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for (what, ids) in [
            ("added", &self.added),
            ("removed", &self.removed),
            ("changed", &self.changed),
        ] {
            if !ids.is_empty() {
                parts.push(format!("{what} {}", ids.join(", ")));
            }
        }
        parts.push(format!("{} unchanged", self.unchanged));
        if !self.sections.is_empty() {
            parts.push(format!("sections {}", self.sections.join(", ")));
        }
        parts.join("; ")
    }
}

/// True when `plan` (from `old` to `new`) can be applied to the running gateway as it is: it
/// changes machines, sections whose sink starts, restarts or stops on its own (`[mqtt]`,
/// `[sparkplug]`, `[csv]`, `[influx]`; added or removed only where no recorder waits on the
/// sinks it started with), `[gateway] http` (the server moved, started or stopped),
/// `[gateway] history` and `pki_dir`.
pub fn in_place(old: &Config, new: &Config, plan: &Plan) -> bool {
    let recording = old.record.is_some() || new.record.is_some();
    let restartable = |section: &&str| {
        let present = match *section {
            // A new pki_dir restarts the OPC UA machines (planned as changed), no more.
            "[gateway] http" | "[gateway] history" | "[gateway] pki_dir" => return true,
            s => match crate::runtime::sinks::SINKS.iter().find(|e| e.section == s) {
                Some(_) if !recording => return true,
                Some(e) => e.present,
                None => return false,
            },
        };
        present(old) && present(new)
    };
    plan.sections.iter().all(restartable) && plan.restart_needed.is_empty()
}

/// The difference between the running file and a new one.
pub fn plan(old: &Config, new: &Config) -> Plan {
    let mut p = Plan::default();
    if old.gateway.name != new.gateway.name {
        p.restart_needed.push("[gateway] name");
    }
    if !same(&old.buffer, &new.buffer) {
        p.restart_needed.push("[buffer]");
    }
    // An OPC UA machine's certificate lives in pki_dir: a new one changes its session.
    let new_pki = old.gateway.pki_dir != new.gateway.pki_dir;
    for m in &new.machines {
        let opcua = matches!(m.protocol, ProtocolConfig::Opcua(_));
        match old.machines.iter().find(|o| o.id == m.id) {
            None => p.added.push(m.id.clone()),
            Some(o) if same(o, m) && !(new_pki && opcua) => p.unchanged += 1,
            Some(_) => p.changed.push(m.id.clone()),
        }
    }
    for o in &old.machines {
        if !new.machines.iter().any(|m| m.id == o.id) {
            p.removed.push(o.id.clone());
        }
    }
    let (g, h) = (&old.gateway, &new.gateway);
    let sections: [(&'static str, bool); 9] = [
        (
            "[gateway] http",
            g.http == h.http && same(&g.http_token_env, &h.http_token_env),
        ),
        ("[gateway] history", g.history == h.history),
        ("[gateway] pki_dir", g.pki_dir == h.pki_dir),
        ("[mqtt]", same(&old.mqtt, &new.mqtt)),
        ("[sparkplug]", same(&old.sparkplug, &new.sparkplug)),
        ("[influx]", same(&old.influx, &new.influx)),
        ("[record]", same(&old.record, &new.record)),
        ("[csv]", same(&old.csv, &new.csv)),
        ("[kpi]", same(&old.kpi, &new.kpi)),
    ];
    p.sections = sections
        .into_iter()
        .filter(|(_, same)| !same)
        .map(|(name, _)| name)
        .collect();
    p
}

/// Equal settings, wherever in the file they stand: where a key was written (kept for error
/// messages) is not a setting.
fn same<T: Debug>(a: &T, b: &T) -> bool {
    without_positions(&format!("{a:?}")) == without_positions(&format!("{b:?}"))
}

/// `text` with the numbers after `line: ` and `col: ` left out.
fn without_positions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = ["line: ", "col: "]
        .iter()
        .filter_map(|k| rest.find(k).map(|i| i + k.len()))
        .min()
    {
        out.push_str(&rest[..i]);
        rest = rest[i..].trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

/// Reloads counted by outcome, for `shopfloor_config_reloads_total{result}`: process-wide, as
/// they outlive each gateway they start.
#[derive(Debug, Default)]
pub struct Reloads {
    /// The file was taken (or changed nothing).
    pub applied: AtomicU64,
    /// The file had errors; nothing changed.
    pub invalid: AtomicU64,
    /// The file changed what needs a restart of the process; nothing changed.
    pub restart_needed: AtomicU64,
    /// The file was valid but the gateway could not start on it; the one before runs again.
    pub not_started: AtomicU64,
}

/// This process's reload counts.
pub static RELOADS: Reloads = Reloads {
    applied: AtomicU64::new(0),
    invalid: AtomicU64::new(0),
    restart_needed: AtomicU64::new(0),
    not_started: AtomicU64::new(0),
};

impl Reloads {
    /// `(result label, count)` for each outcome.
    pub fn counts(&self) -> [(&'static str, u64); 4] {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("applied", n(&self.applied)),
            ("invalid", n(&self.invalid)),
            ("restart_needed", n(&self.restart_needed)),
            ("not_started", n(&self.not_started)),
        ]
    }
}

/// How long a watched file must stay unchanged before it is read.
pub const QUIET: Duration = Duration::from_millis(500);

/// Requests to read the config file again: SIGHUP, and with `watch` changes of the file.
pub struct Requests {
    rx: mpsc::Receiver<()>,
    // Kept alive: dropping it ends the watch.
    _watcher: Option<notify::RecommendedWatcher>,
}

impl std::fmt::Debug for Requests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requests").finish_non_exhaustive()
    }
}

/// A request could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RequestsError {
    /// The SIGHUP handler.
    #[error("installing the SIGHUP handler: {0}")]
    Signal(std::io::Error),
    /// The file watch.
    #[error("watching {path}: {error}")]
    Watch {
        /// The file.
        path: PathBuf,
        /// Why.
        error: notify::Error,
    },
}

impl Requests {
    /// Starts listening for SIGHUP and, with `watch`, for changes of `path`. Must run inside a
    /// tokio runtime.
    pub fn start(path: &Path, watch: bool) -> Result<Requests, RequestsError> {
        let (tx, rx) = mpsc::channel(4);
        hangups(tx.clone())?;
        let watcher = if watch {
            Some(watch_file(path, tx)?)
        } else {
            None
        };
        Ok(Requests {
            rx,
            _watcher: watcher,
        })
    }

    /// The next request; never resolves once nothing can send one.
    pub async fn next(&mut self) {
        if self.rx.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(unix)]
fn hangups(tx: mpsc::Sender<()>) -> Result<(), RequestsError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).map_err(RequestsError::Signal)?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            // A request already waiting covers this one too.
            let _ = tx.try_send(());
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn hangups(_tx: mpsc::Sender<()>) -> Result<(), RequestsError> {
    Ok(())
}

/// Watches the file's folder (editors replace a file by renaming a new one over it) and asks
/// for a reload once the file has changed and then stayed quiet for [`QUIET`].
fn watch_file(
    path: &Path,
    tx: mpsc::Sender<()>,
) -> Result<notify::RecommendedWatcher, RequestsError> {
    use notify::Watcher as _;
    let file = path.file_name().map(ToOwned::to_owned);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let (changes, mut changed) = mpsc::unbounded_channel::<()>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(e) if e.paths.iter().any(|p| p.file_name() == file.as_deref()) => {
                let _ = changes.send(());
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "config file watch"),
        })
        .map_err(|error| RequestsError::Watch {
            path: path.to_path_buf(),
            error,
        })?;
    watcher
        .watch(&dir, notify::RecursiveMode::NonRecursive)
        .map_err(|error| RequestsError::Watch {
            path: path.to_path_buf(),
            error,
        })?;
    tokio::spawn(async move {
        while changed.recv().await.is_some() {
            // Quiet for QUIET since the last change: an editor's save is several events.
            while let Ok(Some(())) = tokio::time::timeout(QUIET, changed.recv()).await {}
            let _ = tx.try_send(());
        }
    });
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const BASE: &str = r#"
[gateway]
name = "hall"

[mqtt]
url = "mqtt://127.0.0.1:1883"

[[machine]]
id = "a"
protocol = "modbus-tcp"
address = "127.0.0.1:5020"

  [[machine.tag]]
  name = "speed"
  area = "holding"
  address = 0
  type = "u16"

[[machine]]
id = "b"
protocol = "modbus-tcp"
address = "127.0.0.1:5021"

  [[machine.tag]]
  name = "speed"
  area = "holding"
  address = 0
  type = "u16"
"#;

    fn config(text: &str) -> Config {
        Config::parse(Path::new("gateway.toml"), text).unwrap()
    }

    #[test]
    fn what_applies_in_place_and_what_restarts_the_gateway() {
        let old = config(BASE);
        let cases: [(&str, String, bool); 9] = [
            ("a machine removed", BASE.replace("id = \"b\"", "id = \"c\""), true),
            ("another broker", BASE.replace("1883", "1884"), true),
            (
                "a CSV sink added",
                BASE.replace("[[machine]]\nid = \"a\"", "[csv]\ndir = \"x\"\n\n[[machine]]\nid = \"a\""),
                true,
            ),
            (
                "the MQTT sink removed",
                BASE.replace("[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\n", ""),
                true,
            ),
            (
                "the HTTP server",
                BASE.replace("name = \"hall\"", "name = \"hall\"\nhttp = \"127.0.0.1:0\""),
                true,
            ),
            (
                "a Sparkplug node",
                BASE.replace(
                    "[[machine]]\nid = \"a\"",
                    "[sparkplug]\nurl = \"mqtt://127.0.0.1:1883\"\ngroup_id = \"g\"\n\n[[machine]]\nid = \"a\"",
                ),
                true,
            ),
            ("another name", BASE.replace("name = \"hall\"", "name = \"h2\""), false),
            (
                "the dashboard's history",
                BASE.replace("name = \"hall\"", "name = \"hall\"\nhistory = \"5m\""),
                true,
            ),
            (
                "the OPC UA certificate's folder",
                BASE.replace("name = \"hall\"", "name = \"hall\"\npki_dir = \"elsewhere\""),
                true,
            ),
        ];
        for (what, text, expected) in cases {
            let new = config(&text);
            let p = plan(&old, &new);
            assert!(!p.is_empty(), "{what}: the file changed nothing");
            assert_eq!(in_place(&old, &new, &p), expected, "{what}: {p:?}");
        }
    }

    #[test]
    fn a_new_pki_dir_changes_the_opcua_machines_alone() {
        let ua = "\n[[machine]]\nid = \"ua\"\nprotocol = \"opcua\"\nendpoint = \"opc.tcp://127.0.0.1:4840\"\n\n  [[machine.tag]]\n  name = \"t\"\n  node = \"ns=2;s=T\"\n";
        let text = format!("{BASE}{ua}");
        let old = config(&text);
        let new = config(&text.replace(
            "name = \"hall\"",
            "name = \"hall\"\npki_dir = \"elsewhere\"",
        ));
        let p = plan(&old, &new);
        assert_eq!(p.changed, ["ua"]);
        assert_eq!(p.unchanged, 2);
        assert_eq!(p.sections, ["[gateway] pki_dir"]);
        assert!(in_place(&old, &new, &p));
    }

    #[test]
    fn a_recorder_keeps_the_sinks_it_started_with() {
        // The recorder acknowledges once the sinks it started with have taken a message: a
        // sink added or removed under it takes a restart; one changed in place does not.
        let recorder = "[gateway]\nname = \"r\"\n\n[record]\nurl = \"mqtt://127.0.0.1:1883\"\ntopics = [\"hall/#\"]\n\n[csv]\ndir = \"x\"\n";
        let old = config(recorder);
        for (what, text, expected) in [
            (
                "a CSV dir changed",
                recorder.replace("\"x\"", "\"y\""),
                true,
            ),
            (
                "CSV removed",
                recorder.replace("[csv]\ndir = \"x\"\n", ""),
                false,
            ),
            (
                "a store added",
                format!(
                    "{recorder}\n[influx]\nurl = \"http://127.0.0.1:8428\"\norg = \"o\"\nbucket = \"b\"\n"
                ),
                false,
            ),
        ] {
            let new = config(&text);
            let p = plan(&old, &new);
            assert_eq!(in_place(&old, &new, &p), expected, "{what}: {p:?}");
        }
    }

    #[test]
    fn machines_added_removed_changed_and_unchanged() {
        let old = config(BASE);
        let cases = [
            (
                BASE.to_owned(),
                Plan {
                    unchanged: 2,
                    ..Plan::default()
                },
            ),
            (
                BASE.replace("id = \"b\"", "id = \"c\""),
                Plan {
                    added: vec!["c".into()],
                    removed: vec!["b".into()],
                    unchanged: 1,
                    ..Plan::default()
                },
            ),
            (
                BASE.replace("127.0.0.1:5021", "127.0.0.1:5022"),
                Plan {
                    changed: vec!["b".into()],
                    unchanged: 1,
                    ..Plan::default()
                },
            ),
            (
                // Moved down the file by a comment: the same settings.
                format!("# the hall\n{BASE}"),
                Plan {
                    unchanged: 2,
                    ..Plan::default()
                },
            ),
            (
                BASE.replace("mqtt://127.0.0.1:1883", "mqtt://127.0.0.1:1884"),
                Plan {
                    unchanged: 2,
                    sections: vec!["[mqtt]"],
                    ..Plan::default()
                },
            ),
            (
                BASE.replace("name = \"hall\"", "name = \"hall-2\"")
                    .replace("[mqtt]", "[buffer]\ncapacity = 1024\n\n[mqtt]"),
                Plan {
                    unchanged: 2,
                    // The default topic prefix follows the name.
                    sections: vec!["[mqtt]"],
                    restart_needed: vec!["[gateway] name", "[buffer]"],
                    ..Plan::default()
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(plan(&old, &config(&text)), want, "{text}");
        }
    }

    #[test]
    fn the_summary_names_each_machine_once() {
        let p = Plan {
            added: vec!["cnc-3".into()],
            removed: vec!["meter-9".into()],
            changed: vec!["imm-1".into()],
            unchanged: 4,
            ..Plan::default()
        };
        assert_eq!(
            p.summary(),
            "added cnc-3; removed meter-9; changed imm-1; 4 unchanged"
        );
        assert!(Plan::default().is_empty());
    }

    #[test]
    fn positions_are_not_settings() {
        assert_eq!(
            without_positions("EnvRef { var: \"X\", at: E { line: 12, col: 3 } }"),
            "EnvRef { var: \"X\", at: E { line: , col:  } }"
        );
    }
}
