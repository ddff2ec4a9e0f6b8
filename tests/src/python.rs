//! The independent Python peers of the tests (asyncua, pymodbus) as child processes: started,
//! awaited until they print `READY`, every other line of their stdout kept for the test.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// A started peer and the lines it printed besides `READY`.
#[derive(Debug)]
pub struct Peer {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
}

/// Runs `python3 script args…` and waits up to 60 s for its `READY` line; `needs` says what a
/// machine without the peer lacks. The peer's stderr goes to `stderr`.
pub fn start(script: &Path, args: &[&str], stderr: Stdio, needs: &str) -> Peer {
    let mut child = Command::new("python3")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start python3 ({needs}): {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("READY") {
                let _ = tx.send(());
            } else {
                seen.lock().unwrap().push(line);
            }
        }
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(60)).is_ok(),
        "{} did not start ({needs})",
        script.display()
    );
    Peer { child, lines }
}
