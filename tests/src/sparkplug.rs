//! The independent Sparkplug B peers of the Sparkplug tests, as child processes whose every
//! line is kept as JSON: a host (`tests/sparkplug/host.py`, pysparkplug's payload classes and
//! paho) and an edge node (`tests/sparkplug/edge.py`, pysparkplug's own EdgeNode and Device).

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the host does besides listening.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostOptions {
    /// Sends the first edge node it sees an NCMD Rebirth after this many DDATA.
    pub rebirth_after: Option<usize>,
    /// Keeps its session across a broker restart.
    pub persistent: bool,
    /// Is this primary host application: retained STATE online once subscribed, its will
    /// STATE offline.
    pub primary: Option<&'static str>,
    /// As primary host: a stale STATE offline after this many DDATA, a real one after twice
    /// as many, and online again once it has seen the NDEATH that answers it.
    pub offline_after: Option<usize>,
    /// Asks a node it has no NBIRTH of for a rebirth (once), as a host that came late does.
    pub rebirth_unknown: bool,
}

/// A peer; killed on drop.
#[derive(Debug)]
pub struct SparkplugPeer {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl SparkplugPeer {
    /// A host that subscribes to `spBv1.0/#` on the broker at `port` and acts as `options`
    /// say; its lines are the messages it decoded.
    pub fn host(port: u16, options: HostOptions) -> SparkplugPeer {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sparkplug/host.py");
        let mut args = vec![port.to_string()];
        if let Some(n) = options.rebirth_after {
            args.extend(["--rebirth-after".to_owned(), n.to_string()]);
        }
        if options.persistent {
            args.push("--persistent".to_owned());
        }
        if let Some(id) = options.primary {
            args.extend(["--primary".to_owned(), id.to_owned()]);
        }
        if let Some(n) = options.offline_after {
            args.extend(["--offline-after".to_owned(), n.to_string()]);
        }
        if options.rebirth_unknown {
            args.push("--rebirth-unknown".to_owned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let peer = crate::python::start(
            &script,
            &args,
            Stdio::inherit(),
            "the Sparkplug tests need `pip install pysparkplug`",
        );
        SparkplugPeer {
            child: peer.child,
            lines: peer.lines,
        }
    }

    /// Edge node `fieldlab/line-3` with device `oven` on the broker at `port`; its lines are
    /// what it published and did (see `edge.py`).
    pub fn edge(port: u16) -> SparkplugPeer {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sparkplug/edge.py");
        let port = port.to_string();
        let peer = crate::python::start(
            &script,
            &[port.as_str()],
            Stdio::inherit(),
            "the Sparkplug tests need `pip install pysparkplug`",
        );
        SparkplugPeer {
            child: peer.child,
            lines: peer.lines,
        }
    }

    /// Every message decoded so far, in order of arrival.
    pub fn messages(&self) -> Vec<Value> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    }

    /// Waits up to `within` until `done` holds for the messages; panics with them otherwise.
    pub fn wait(
        &self,
        within: Duration,
        what: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let messages = self.messages();
            if done(&messages) {
                return messages;
            }
            if Instant::now() > deadline {
                let all: Vec<String> = messages.iter().map(|m| format!("{m}")).collect();
                panic!("no {what} within {within:?}; messages:\n{}", all.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SparkplugPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
