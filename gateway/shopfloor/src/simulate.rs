//! The simulated machines of a config: each `[[machine]]` with a `simulator` key is served by
//! the matching model of `shopfloor-sim`, on its `address` over Modbus TCP or on its `endpoint`
//! over OPC UA.

use crate::config::{Config, ProtocolConfig};
use shopfloor_sim::SimKind;
use shopfloor_sim::server::{SimMachine, serve};
use shopfloor_sim::ua_server::{UaOptions, serve_opcua};
use std::net::SocketAddr;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// The simulation could not start.
#[derive(Debug, Error)]
pub enum SimulateError {
    /// No machine of the config is simulated.
    #[error("no [[machine]] has a `simulator` key (cnc, injection-moulding or energy-meter)")]
    Nothing,
    /// A machine's address could not be served.
    #[error("machine {machine}: cannot listen on {address}: {source}")]
    Listen {
        /// The machine.
        machine: String,
        /// Its address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
}

/// One simulated machine as started.
#[derive(Debug, Clone)]
pub struct Started {
    /// The machine's id.
    pub id: String,
    /// Its model.
    pub kind: SimKind,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Which protocol it speaks there.
    pub protocol: SimProtocol,
}

/// The protocol a simulated machine is served over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimProtocol {
    /// Modbus TCP.
    Modbus,
    /// OPC UA.
    Opcua,
}

impl Started {
    /// The URL a client uses: `modbus-tcp://…` or `opc.tcp://…`.
    pub fn url(&self) -> String {
        match self.protocol {
            SimProtocol::Modbus => format!("modbus-tcp://{}", self.addr),
            SimProtocol::Opcua => format!("opc.tcp://{}", self.addr),
        }
    }
}

/// `host:port` of an `opc.tcp://host:port/path` endpoint.
pub fn endpoint_address(endpoint: &str) -> String {
    let rest = endpoint.strip_prefix("opc.tcp://").unwrap_or(endpoint);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// Running simulated machines; stopped by [`Simulation::stop`] or on drop of the runtime.
#[derive(Debug)]
pub struct Simulation {
    /// What runs where.
    pub machines: Vec<Started>,
    tasks: JoinSet<()>,
    stop: CancellationToken,
}

/// A stable per-machine seed, so that two simulated machines of one kind differ.
fn machine_seed(seed: u64, id: &str) -> u64 {
    // FNV-1a: stable across builds and platforms, unlike the std hasher.
    id.bytes().fold(0xcbf2_9ce4_8422_2325_u64 ^ seed, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Simulation {
    /// Binds every simulated machine's address and starts serving.
    pub async fn start(
        config: &Config,
        seed: u64,
        speedup: f64,
    ) -> Result<Simulation, SimulateError> {
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut machines = Vec::new();
        for m in &config.machines {
            let (kind, address, protocol) = match &m.protocol {
                ProtocolConfig::ModbusTcp(mb) => match mb.simulator {
                    Some(k) => (k, mb.address.clone(), SimProtocol::Modbus),
                    None => continue,
                },
                ProtocolConfig::Opcua(ua) => match ua.simulator {
                    Some(k) => (k, endpoint_address(&ua.endpoint), SimProtocol::Opcua),
                    None => continue,
                },
            };
            let listen = |source| SimulateError::Listen {
                machine: m.id.clone(),
                address: address.clone(),
                source,
            };
            let listener = TcpListener::bind(&address).await.map_err(listen)?;
            let addr = listener.local_addr().map_err(listen)?;
            let faults = match &m.protocol {
                ProtocolConfig::ModbusTcp(mb) => mb.faults.clone(),
                ProtocolConfig::Opcua(_) => Default::default(),
            };
            let machine = SimMachine {
                kind,
                seed: machine_seed(seed, &m.id),
                speedup,
                faults,
            };
            match protocol {
                SimProtocol::Modbus => {
                    tasks.spawn(serve(listener, machine, stop.child_token()));
                }
                SimProtocol::Opcua => {
                    let opts = UaOptions {
                        pki_dir: config.gateway.pki_dir.join("simulated").join(&m.id),
                        trust_client_certs: true,
                        secure_only: false,
                        users: Vec::new(),
                    };
                    let id = m.id.clone();
                    let token = stop.child_token();
                    tasks.spawn(async move {
                        if let Err(e) = serve_opcua(listener, machine, opts, token).await {
                            warn!(machine = %id, error = %e, "simulated OPC UA machine stopped");
                        }
                    });
                }
            }
            machines.push(Started {
                id: m.id.clone(),
                kind,
                addr,
                protocol,
            });
        }
        if machines.is_empty() {
            return Err(SimulateError::Nothing);
        }
        Ok(Simulation {
            machines,
            tasks,
            stop,
        })
    }

    /// Stops every simulated machine.
    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}
