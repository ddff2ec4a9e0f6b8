//! Test harness: real servers started on free ports in temporary directories, stopped by drop
//! guards.
//!
//! - [`mosquitto`]: a private mosquitto broker.
//! - [`browser`]: a headless Chromium driven over WebDriver, and the test-artifact folder.
//! - [`device`]: Modbus TCP devices: a healthy one with a register map, and faulty ones (hang,
//!   garbage, close, exception).
//! - [`python`]: the Python peers as child processes, awaited until they say `READY`.
//! - [`sparkplug`]: the independent Sparkplug B peers (pysparkplug): a host, every message
//!   decoded, and an edge node.
//! - [`tahu`]: Eclipse Tahu's JavaScript payload library decoding what a host captured, to
//!   agree with pysparkplug.
//! - [`csv`]: the `[csv]` sink's files read back as a record of good readings.
//! - [`rtu`]: a serial line of two pseudo-terminals (socat), and the independent pymodbus
//!   RTU slave on it or over TCP.
//! - [`pki`]: a throw-away CA with server and client certificates (openssl).
//! - [`subscriber`]: an MQTT client that collects every message.
//! - [`http`]: a minimal HTTP/1.1 client for the gateway's API.
//! - [`link`]: a TCP link to a real server that a test can cut (a network outage).
//! - [`gateway`]: the `shopfloor` binary as a child process.
//! - [`opcua`]: OPC UA servers: the independent Python asyncua one, and the simulated machines
//!   served in-process so a test can restart them.
//! - [`victoria`]: a private VictoriaMetrics that can be stopped and started again.
//! - [`tmpfs`]: a small tmpfs a test can fill up: a real full disk.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod browser;
pub mod csv;
pub mod device;
pub mod gate;
pub mod gateway;
pub mod http;
pub mod link;
pub mod mosquitto;
pub mod opcua;
pub mod pki;
pub mod python;
pub mod rtu;
pub mod sparkplug;
pub mod subscriber;
pub mod tahu;
pub mod tmpfs;
pub mod victoria;

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

/// Where a test or bench keeps what it installs between runs: `$override_var` when set, else
/// `folder` under `$XDG_CACHE_HOME` or `~/.cache` (the temporary folder without a home).
pub fn cache_dir(override_var: &str, folder: &str) -> std::path::PathBuf {
    use std::path::PathBuf;
    if let Some(dir) = std::env::var_os(override_var) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join(folder)
}

/// A TCP port that was free a moment ago on 127.0.0.1 (for servers that cannot report the port
/// they bound, and for a device that appears later). Never the same port twice in one test
/// process, so tests running in parallel cannot be handed one port between its release and
/// its server's bind.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free port");
        let mut given = GIVEN.lock().unwrap();
        if given.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}
