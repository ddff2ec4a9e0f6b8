//! The independent Sparkplug B host of the Sparkplug tests: `tests/sparkplug/host.py`
//! (pysparkplug and paho) as a child process, every message it decoded kept as JSON.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The host; killed on drop.
#[derive(Debug)]
pub struct SparkplugHost {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl SparkplugHost {
    /// Subscribes to `spBv1.0/#` on the broker at `port`; with `rebirth_after`, sends the
    /// first edge node it sees an NCMD Rebirth after that many DDATA; `persistent` keeps its
    /// session across a broker restart.
    pub fn start(port: u16, rebirth_after: Option<usize>, persistent: bool) -> SparkplugHost {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sparkplug/host.py");
        let port = port.to_string();
        let after = rebirth_after.map(|n| n.to_string());
        let mut args = vec![port.as_str()];
        if let Some(n) = &after {
            args.extend(["--rebirth-after", n.as_str()]);
        }
        if persistent {
            args.push("--persistent");
        }
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
