//! OPC UA servers for the tests: the independent Python `asyncua` server of
//! `tests/opcua/server.py` as a child process, and the project's simulated machines served
//! in-process by async-opcua, which a test can stop and start again on the same port.

use shopfloor_sim::SimKind;
use shopfloor_sim::server::SimMachine;
use shopfloor_sim::ua_server::{UaOptions, serve_opcua};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The Python asyncua test server; killed on drop.
#[derive(Debug)]
pub struct PyOpcua {
    pub port: u16,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl PyOpcua {
    /// Starts `tests/opcua/server.py` on a free port and waits until it accepts connections.
    pub fn start() -> PyOpcua {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("opcua/server.py");
        let port = crate::free_port();
        let peer = crate::python::start(
            &script,
            &[&port.to_string()],
            Stdio::inherit(),
            "the OPC UA tests need `pip install asyncua`",
        );
        let (child, lines) = (peer.child, peer.lines);
        PyOpcua { port, child, lines }
    }

    /// What the server reported on stdout since it started (`FILTER …`, `NOTIFY …`).
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("opc.tcp://127.0.0.1:{}/shopfloor/test/", self.port)
    }
}

impl Drop for PyOpcua {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A simulated machine served over OPC UA inside the test process.
#[derive(Debug)]
pub struct SimOpcua {
    pub port: u16,
    pub kind: SimKind,
    pub opts: UaOptions,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl SimOpcua {
    /// Serves a `kind` on a free port (anonymous, no security required, any client trusted).
    pub async fn start(kind: SimKind, pki_dir: PathBuf) -> SimOpcua {
        let opts = UaOptions {
            pki_dir,
            trust_client_certs: true,
            secure_only: false,
            users: Vec::new(),
        };
        SimOpcua::start_with(kind, crate::free_port(), opts).await
    }

    /// Serves a `kind` on `port` with `opts`.
    pub async fn start_with(kind: SimKind, port: u16, opts: UaOptions) -> SimOpcua {
        let mut s = SimOpcua {
            port,
            kind,
            opts,
            stop: CancellationToken::new(),
            task: None,
        };
        s.restart().await;
        s
    }

    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("opc.tcp://127.0.0.1:{}", self.port)
    }

    /// Stops serving; connected clients lose their connection.
    pub async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Serves again on the same port (a server restart: new sessions, new subscriptions).
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.stop = CancellationToken::new();
        let machine = SimMachine {
            kind: self.kind,
            seed: 7,
            speedup: 10.0,
            faults: Default::default(),
        };
        let (opts, token) = (self.opts.clone(), self.stop.clone());
        self.task = Some(tokio::spawn(async move {
            if let Err(e) = serve_opcua(listener, machine, opts, token).await {
                panic!("simulated OPC UA machine: {e}");
            }
        }));
    }
}

impl Drop for SimOpcua {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
