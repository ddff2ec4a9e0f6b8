//! The simulated machines of a config: each `[[machine]]` with a `simulator` key is served by
//! the matching model of `shopfloor-sim`: on its `address` over Modbus TCP or RTU over TCP, on
//! its serial `port` over RTU, or on its `endpoint` over OPC UA. Simulated machines on one RTU
//! line are units of one server, each under its own unit id.

use crate::config::{Config, MachineConfig, ProtocolConfig};
use shopfloor_modbus::link::{Link, SerialLine};
use shopfloor_sim::SimKind;
use shopfloor_sim::rtu_server::{SimUnit, serve_rtu_serial, serve_rtu_tcp};
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
    /// Where it is served: `ip:port`, or a serial device.
    pub at: String,
    /// Which protocol it speaks there.
    pub protocol: SimProtocol,
}

/// The protocol a simulated machine is served over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimProtocol {
    /// Modbus TCP.
    Modbus,
    /// Modbus RTU frames over TCP.
    ModbusRtuTcp,
    /// Modbus RTU on a serial device.
    ModbusRtu,
    /// OPC UA.
    Opcua,
}

impl Started {
    /// The URL a client uses: `modbus-tcp://…`, `modbus-rtu-tcp://…`, `modbus-rtu://…` or
    /// `opc.tcp://…`.
    pub fn url(&self) -> String {
        let scheme = match self.protocol {
            SimProtocol::Modbus => "modbus-tcp://",
            SimProtocol::ModbusRtuTcp => "modbus-rtu-tcp://",
            SimProtocol::ModbusRtu => "modbus-rtu://",
            SimProtocol::Opcua => "opc.tcp://",
        };
        format!("{scheme}{}", self.at)
    }
}

/// Where simulated machines listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    /// On the addresses of the config.
    AsConfigured,
    /// On free loopback ports, one per configured address (what `demo` does, so that it runs
    /// beside anything); serial devices as configured.
    Free,
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

/// The simulated machines of one place (an address or a serial device), in file order.
struct Place<'a> {
    /// The configured address, endpoint's `host:port` or serial device.
    key: String,
    protocol: SimProtocol,
    machines: Vec<&'a MachineConfig>,
}

/// What `m` simulates and where, if it is simulated.
fn simulated(m: &MachineConfig) -> Option<(SimKind, String, SimProtocol)> {
    match &m.protocol {
        ProtocolConfig::Modbus(mb) => {
            let kind = mb.simulator?;
            Some(match &mb.link {
                Link::Tcp(a) => (kind, a.clone(), SimProtocol::Modbus),
                Link::RtuTcp(a) => (kind, a.clone(), SimProtocol::ModbusRtuTcp),
                Link::Rtu(line) => (kind, line.port.clone(), SimProtocol::ModbusRtu),
            })
        }
        ProtocolConfig::Opcua(ua) => Some((
            ua.simulator?,
            endpoint_address(&ua.endpoint),
            SimProtocol::Opcua,
        )),
    }
}

/// The config's simulated machines by place: the units of one RTU line together.
fn places(config: &Config) -> Vec<Place<'_>> {
    let mut out: Vec<Place<'_>> = Vec::new();
    for m in &config.machines {
        let Some((_, key, protocol)) = simulated(m) else {
            continue;
        };
        let shared = matches!(protocol, SimProtocol::ModbusRtu | SimProtocol::ModbusRtuTcp);
        match out.iter_mut().find(|p| shared && p.key == key) {
            Some(p) => p.machines.push(m),
            None => out.push(Place {
                key,
                protocol,
                machines: vec![m],
            }),
        }
    }
    out
}

impl Simulation {
    /// Binds every simulated machine's place and starts serving.
    pub async fn start(
        config: &Config,
        seed: u64,
        speedup: f64,
        ports: Ports,
    ) -> Result<Simulation, SimulateError> {
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut machines = Vec::new();
        for place in places(config) {
            let first = &place.machines[0].id;
            let listen = |source| SimulateError::Listen {
                machine: first.clone(),
                address: place.key.clone(),
                source,
            };
            let sim = |m: &MachineConfig| {
                let (kind, _, _) = simulated(m)?;
                let faults = match &m.protocol {
                    ProtocolConfig::Modbus(mb) => mb.faults.clone(),
                    ProtocolConfig::Opcua(_) => Default::default(),
                };
                Some(SimMachine {
                    kind,
                    seed: machine_seed(seed, &m.id),
                    speedup,
                    faults,
                })
            };
            let at = if place.protocol == SimProtocol::ModbusRtu {
                let units = rtu_units(&place, sim);
                let line = serial_line(&place).ok_or_else(|| listen(not_serial()))?;
                // Opened here, so that a missing device is an error of the start.
                shopfloor_modbus::serial::open(&line).map_err(listen)?;
                let token = stop.child_token();
                let id = first.clone();
                tasks.spawn(async move {
                    if let Err(e) = serve_rtu_serial(line, units, token).await {
                        warn!(machine = %id, error = %e, "simulated RTU line stopped");
                    }
                });
                place.key.clone()
            } else {
                let bind = match ports {
                    Ports::AsConfigured => place.key.clone(),
                    Ports::Free => "127.0.0.1:0".to_owned(),
                };
                let listener = TcpListener::bind(&bind).await.map_err(listen)?;
                let addr: SocketAddr = listener.local_addr().map_err(listen)?;
                let token = stop.child_token();
                match place.protocol {
                    SimProtocol::ModbusRtuTcp => {
                        let units = rtu_units(&place, sim);
                        tasks.spawn(serve_rtu_tcp(listener, units, token));
                    }
                    SimProtocol::Opcua => {
                        let m = place.machines[0];
                        let opts = UaOptions {
                            pki_dir: config.gateway.pki_dir.join("simulated").join(&m.id),
                            trust_client_certs: true,
                            secure_only: false,
                            users: Vec::new(),
                        };
                        let (id, machine) = (m.id.clone(), sim(m));
                        tasks.spawn(async move {
                            let Some(machine) = machine else { return };
                            if let Err(e) = serve_opcua(listener, machine, opts, token).await {
                                warn!(machine = %id, error = %e, "simulated OPC UA machine stopped");
                            }
                        });
                    }
                    _ => {
                        if let Some(machine) = sim(place.machines[0]) {
                            tasks.spawn(serve(listener, machine, token));
                        }
                    }
                }
                addr.to_string()
            };
            for m in &place.machines {
                if let Some((kind, _, protocol)) = simulated(m) {
                    machines.push(Started {
                        id: m.id.clone(),
                        kind,
                        at: at.clone(),
                        protocol,
                    });
                }
            }
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

/// The units of an RTU place, each under its machine's unit id.
fn rtu_units(
    place: &Place<'_>,
    sim: impl Fn(&MachineConfig) -> Option<SimMachine>,
) -> Vec<SimUnit> {
    place
        .machines
        .iter()
        .filter_map(|m| {
            let ProtocolConfig::Modbus(mb) = &m.protocol else {
                return None;
            };
            Some(SimUnit {
                unit: mb.unit_id,
                machine: sim(m)?,
            })
        })
        .collect()
}

/// The serial line of an RTU place (its first machine's: the others share it).
fn serial_line(place: &Place<'_>) -> Option<SerialLine> {
    match &place.machines.first()?.protocol {
        ProtocolConfig::Modbus(mb) => match &mb.link {
            Link::Rtu(line) => Some(line.clone()),
            _ => None,
        },
        ProtocolConfig::Opcua(_) => None,
    }
}

fn not_serial() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a serial line")
}
