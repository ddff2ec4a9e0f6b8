//! The simulated machines of a config: each `[[machine]]` with a `simulator` key is served on
//! its own `address` by the matching model of `shopfloor-sim`.

use crate::config::{Config, ProtocolConfig};
use shopfloor_sim::SimKind;
use shopfloor_sim::server::{SimMachine, serve};
use std::net::SocketAddr;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

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
            let ProtocolConfig::ModbusTcp(mb) = &m.protocol else {
                continue;
            };
            let Some(kind) = mb.simulator else { continue };
            let listener =
                TcpListener::bind(&mb.address)
                    .await
                    .map_err(|source| SimulateError::Listen {
                        machine: m.id.clone(),
                        address: mb.address.clone(),
                        source,
                    })?;
            let addr = listener
                .local_addr()
                .map_err(|source| SimulateError::Listen {
                    machine: m.id.clone(),
                    address: mb.address.clone(),
                    source,
                })?;
            let machine = SimMachine {
                kind,
                seed: machine_seed(seed, &m.id),
                speedup,
                faults: mb.faults.clone(),
            };
            tasks.spawn(serve(listener, machine, stop.child_token()));
            machines.push(Started {
                id: m.id.clone(),
                kind,
                addr,
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
