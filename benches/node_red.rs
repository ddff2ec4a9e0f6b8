//! Node-RED 4 with node-red-contrib-modbus, the peer of the end-to-end `tag` job: the flow in
//! `benches/peers/node_red/flow.json` reads 10 devices' 100 holding registers every 100 ms and
//! publishes each register as the gateway's `tag` layout does (topic `e2e/m00N/tNNNN`, the
//! same JSON with a `seq` per tag), at QoS 1. Installed from npm on first use.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The versions measured. Later node-red-contrib-modbus releases take their Modbus client from
/// a registry outside npm's, which a build machine here cannot reach.
const PACKAGES: [&str; 2] = ["node-red@4.1.15", "node-red-contrib-modbus@5.23.3"];

/// A running Node-RED; killed on drop.
#[derive(Debug)]
pub struct NodeRed {
    child: Child,
    _user_dir: tempfile::TempDir,
}

impl NodeRed {
    /// Node-RED polling `devices` (exactly ten, as the flow has) and publishing to the broker
    /// on `mqtt_port`; `None`, with the reason printed, when it cannot be installed or run.
    pub fn start(devices: &[SocketAddr], mqtt_port: u16) -> Option<NodeRed> {
        let red = match installed() {
            Ok(red) => red,
            Err(why) => {
                println!("  Node-RED: not measured ({why})");
                return None;
            }
        };
        let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/node_red");
        let user_dir = tempfile::tempdir().ok()?;
        std::fs::copy(peer.join("flow.json"), user_dir.path().join("flow.json")).ok()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .ok()?
            .port();
        let mut command = Command::new("node");
        command
            .arg(red)
            .args(["--port", &port.to_string(), "--userDir"])
            .arg(user_dir.path())
            .arg("--settings")
            .arg(peer.join("settings.js"))
            .env("MQTT_PORT", mqtt_port.to_string())
            .stdout(Stdio::null());
        for (i, d) in devices.iter().enumerate() {
            command.env(format!("DEV{i}_PORT"), d.port().to_string());
        }
        let child = command.spawn().ok()?;
        Some(NodeRed {
            child,
            _user_dir: user_dir,
        })
    }

    /// Its process id, for its CPU time.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for NodeRed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Node-RED's `red.js`, installed with npm into the cache folder when it is not there yet
/// (`$SHOPFLOOR_NODE_RED_DIR`, or `shopfloor-benches/node-red` in the user's cache folder).
fn installed() -> Result<PathBuf, String> {
    let dir = shopfloor_tests::cache_dir("SHOPFLOOR_NODE_RED_DIR", "shopfloor-benches/node-red");
    let red = dir.join("node_modules/node-red/red.js");
    let modbus = dir.join("node_modules/node-red-contrib-modbus");
    if red.exists() && modbus.exists() {
        return Ok(red);
    }
    println!(
        "  installing {} with npm into {}",
        PACKAGES.join(" "),
        dir.display()
    );
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let status = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .args(PACKAGES)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("npm: {e}"))?;
    if !status.success() || !red.exists() {
        return Err(format!("npm install failed: {status}"));
    }
    Ok(red)
}
