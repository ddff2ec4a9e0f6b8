//! Modbus RTU peers for the tests: a serial line made of two pseudo-terminals joined by
//! `socat`, and the independent RTU slave of `tests/modbus/rtu_server.py` (pymodbus), on a
//! serial device or as RTU over TCP.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Two pseudo-terminals joined by `socat`: what one end writes, the other reads. Killed on
/// drop.
#[derive(Debug)]
pub struct SerialLine {
    /// The gateway's end.
    pub gateway: PathBuf,
    /// The device's end.
    pub device: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl SerialLine {
    /// Starts `socat` and waits until both ends exist.
    pub fn start() -> SerialLine {
        let dir = tempfile::tempdir().unwrap();
        let gateway = dir.path().join("gateway");
        let device = dir.path().join("device");
        let end = |p: &Path| format!("pty,raw,echo=0,link={}", p.display());
        let child = Command::new("socat")
            .arg(end(&gateway))
            .arg(end(&device))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat is needed for the RTU tests: run the README's test command");
        let started = Instant::now();
        while !(gateway.exists() && device.exists()) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "socat made no pseudo-terminals"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        SerialLine {
            gateway,
            device,
            child,
            _dir: dir,
        }
    }
}

impl Drop for SerialLine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pymodbus RTU slave; killed on drop. Units 1 and 2 answer (holding 0 = 100 × unit,
/// holding 1 = 1000 + unit), unit 3 is silent, unit 4 answers with a broken CRC.
#[derive(Debug)]
pub struct PyRtu {
    /// The TCP port, when it serves RTU over TCP.
    pub port: Option<u16>,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl PyRtu {
    /// Serves on the serial device `device` at `baud`.
    pub fn serial(device: &Path, baud: u32) -> PyRtu {
        PyRtu::start(
            &["serial", &device.display().to_string(), &baud.to_string()],
            None,
        )
    }

    /// Serves RTU over TCP on a free port of 127.0.0.1.
    pub fn tcp() -> PyRtu {
        let port = crate::free_port();
        PyRtu::start(&["tcp", &port.to_string()], Some(port))
    }

    fn start(args: &[&str], port: Option<u16>) -> PyRtu {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("modbus/rtu_server.py");
        let peer = crate::python::start(
            &script,
            args,
            Stdio::null(),
            "the RTU tests need `pip install pymodbus pyserial`",
        );
        PyRtu {
            port,
            child: peer.child,
            lines: peer.lines,
        }
    }

    /// `host:port` of the RTU-over-TCP server.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port.expect("a TCP server"))
    }

    /// TCP connections it accepted so far.
    pub fn connections(&self) -> usize {
        let lines = self.lines.lock().unwrap();
        lines.iter().filter(|l| *l == "CONNECTED").count()
    }

    /// Request frames it read for `unit` so far.
    pub fn requests(&self, unit: u8) -> usize {
        let want = format!("REQUEST {unit}");
        let lines = self.lines.lock().unwrap();
        lines.iter().filter(|l| **l == want).count()
    }
}

impl Drop for PyRtu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
