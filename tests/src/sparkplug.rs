//! The independent Sparkplug B host of the Sparkplug tests: `tests/sparkplug/host.py`
//! (pysparkplug and paho) as a child process, every message it decoded kept as JSON.

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

/// The host; killed on drop.
#[derive(Debug)]
pub struct SparkplugHost {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl SparkplugHost {
    /// Subscribes to `spBv1.0/#` on the broker at `port` and acts as `options` say.
    pub fn start(port: u16, options: HostOptions) -> SparkplugHost {
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
        SparkplugHost {
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

impl Drop for SparkplugHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
