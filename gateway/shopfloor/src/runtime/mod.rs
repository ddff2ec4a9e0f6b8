//! Starting a gateway from a validated configuration, and stopping it cleanly.
//!
//! Shutdown runs downstream: the drivers stop first (their ring lanes close), the dispatcher
//! drains what is left in the ring and closes the sinks' inputs, and each sink flushes what it
//! holds until the deadline. One [`CancellationToken`] starts it all, as in mini-redis.
//!
//! Modules:
//! - [`hall`]: the machines' drivers by unit, started and stopped one by one (live
//!   reconfiguration changes only what a new file changes).
//! - [`sinks`]: the sinks by config section, each started, restarted or stopped on its own
//!   when a reload adds, changes or removes its section.
//! - [`producers`]: the producers that are not machines (a recorder, the KPI engine).
//! - [`serving`]: the HTTP server and its live store, listening anew when `[gateway] http`
//!   changes.
//! - [`reporter`]: where drivers report states and poll times, and what passes from a stopped
//!   driver to the next one of its machine (`seq`).

mod hall;
mod producers;
pub mod reporter;
mod serving;
pub mod sinks;

use crate::config::Config;
use crate::dispatch;
use crate::metrics::Metrics;
use crate::sink::SinkContext;
use crate::sink::mqtt::MqttError;
use crate::status::StatusBoard;
use crate::tasks::{TaskPanic, Tasks};
use hall::Hall;
use producers::{Producers, Wiring};
use reporter::Reporter;
use serving::{Serving, Shown};
use shopfloor_core::ring::{RingError, Rings};
use shopfloor_core::{CatalogError, SharedCatalog};
use sinks::Sinks;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

/// Time from the stop signal until the gateway has exited, at most.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_secs(5);

/// The gateway could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// Too many machines or tags.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The ring could not be built.
    #[error(transparent)]
    Ring(#[from] RingError),
    /// The MQTT sink could not be set up.
    #[error("[mqtt]: {0}")]
    Mqtt(#[from] MqttError),
    /// The HTTP server could not start.
    #[error("[gateway] http: {0}")]
    Http(String),
    /// The spool directory could not be opened.
    #[error("[buffer] spool_dir: cannot open {0}")]
    Spool(String),
    /// The recorder could not be set up.
    #[error(transparent)]
    Record(#[from] crate::record::RecordError),
    /// The time-series sink could not be set up.
    #[error("[influx]: {0}")]
    Influx(#[from] crate::sink::influx::client::ClientError),
    /// The HTTP token variable is missing.
    #[error(transparent)]
    Secret(#[from] crate::config::ConfigError),
}

/// Makes (or finds) the gateway's OPC UA certificate and says where it is: a server that
/// wants signed or encrypted sessions must be told to trust it.
fn own_certificate(config: &Config) {
    let dir = &config.gateway.pki_dir;
    match shopfloor_opcua::security::prepare(dir, &config.gateway.name) {
        Ok(c) if c.created => info!(
            thumbprint = %c.thumbprint,
            path = %c.path.display(),
            "OPC UA: created this gateway's certificate; a server that requires security must trust it"
        ),
        Ok(c) => info!(thumbprint = %c.thumbprint, path = %c.path.display(), "OPC UA certificate"),
        Err(e) => {
            warn!(error = %e, "OPC UA: no certificate, only security_policy = \"None\" will work")
        }
    }
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    /// Names behind sample ids, growing as machines are added.
    pub catalog: Arc<SharedCatalog>,
    /// Machine states.
    pub status: Arc<StatusBoard>,
    /// Counters of each sink, by name.
    pub sinks: crate::sink::SinkBoard,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Where the HTTP server listens, when it runs.
    pub http: Option<std::net::SocketAddr>,
    serving: Serving,
    hall: Hall,
    /// The recorder and the KPI engine: producers that are not machines.
    producers: Producers,
    dispatcher: Tasks,
    /// The configuration as applied, for sinks that learn machines a reload adds.
    applied: Arc<crate::config::Applied>,
    sinks_running: Sinks,
}

impl Gateway {
    /// Starts drivers, dispatcher and sinks. Must run inside a tokio runtime.
    pub fn start(config: &Config) -> Result<Gateway, StartError> {
        let catalog = Arc::new(config.catalog()?);
        // What sinks read names from: it grows as machines are added by a new configuration
        // or learnt by a recorder.
        let shared = Arc::new(SharedCatalog::from_arc(Arc::clone(&catalog)));
        let status = Arc::new(StatusBoard::new(catalog.len()));
        let metrics = Arc::new(Metrics::new(catalog.len()));
        let applied = Arc::new(crate::config::Applied::default());
        let ctx = SinkContext {
            config,
            catalog: &catalog,
            shared: &shared,
            applied: &applied,
            status: &status,
        };
        let (rings, joiner) = Rings::new();
        let (control, controlled) = mpsc::unbounded_channel();
        let mut sinks = Sinks::from_table(&ctx, control.clone())?;
        let wiring = Wiring {
            shared: &shared,
            metrics: &metrics,
            storing: &sinks.storing,
            dispatcher: &control,
            joiner: &joiner,
        };
        let producers = Producers::start(config, &wiring)?;
        let shown = Shown {
            status: &status,
            metrics: &metrics,
            kpi: producers.kpi_board.clone(),
        };
        let serving = Serving::start(&ctx, shown, &mut sinks)?;
        if sinks.is_empty() {
            warn!(
                "no sink configured: samples are read but go nowhere (add [mqtt], [influx], [csv] or http)"
            );
        }
        let mut dispatcher = Tasks::new();
        dispatcher.spawn(
            "the dispatcher",
            dispatch::run(rings, Arc::clone(&metrics), controlled),
        );
        let reporter = Arc::new(Reporter {
            board: Arc::clone(&status),
            metrics: Arc::clone(&metrics),
            lineage: reporter::Lineage::default(),
        });
        let mut hall = Hall::new(joiner, reporter, Arc::clone(&shared));
        hall.start(config, &[])?;
        info!(
            machines = config.machines.len(),
            gateway = %config.gateway.name,
            "gateway started"
        );
        Ok(Gateway {
            catalog: shared,
            status,
            sinks: sinks.stats.clone(),
            metrics,
            http: serving.addr,
            serving,
            hall,
            producers,
            dispatcher,
            applied,
            sinks_running: sinks,
        })
    }

    /// Takes a new configuration that [`crate::reload::in_place`] allows: the units of
    /// machines it removes or changes stop, those it adds or changes start, every other keeps
    /// running untouched; then each sink whose section changed restarts on its own.
    /// A file whose machines cannot start (a password variable missing) changes nothing.
    pub async fn apply(
        &mut self,
        old: &Config,
        config: &Config,
        plan: &crate::reload::Plan,
    ) -> Result<(), StartError> {
        hall::check(config)?;
        self.applied.store(config);
        self.hall
            .stop_changed(config, &plan.changed, &plan.removed)
            .await;
        self.hall.start(config, &plan.changed)?;
        if let Some(kpi) = &self.producers.kpi_changes {
            let catalog = self.catalog.load();
            // Every machine of the file runs by now, so each has its id.
            let ids: Option<Vec<_>> = config
                .machines
                .iter()
                .map(|m| catalog.find(&m.id))
                .collect();
            if let Some(ids) = ids {
                let _ = kpi.send((Arc::new(config.clone()), ids));
            }
        }
        if plan.sections.contains(&"[gateway] http") {
            self.serve_as(config).await?;
        }
        if plan.sections.contains(&"[gateway] history") {
            self.serving.keep_history(config);
        }
        for section in &plan.sections {
            self.sinks_running
                .apply(
                    section,
                    (old, config),
                    (&self.catalog, &self.applied, &self.status),
                )
                .await?;
        }
        Ok(())
    }

    /// Brings the HTTP server to `config`'s `[gateway] http`: listening anew, started with a
    /// live store of its own, or stopped with it. A server that cannot start changes nothing.
    async fn serve_as(&mut self, config: &Config) -> Result<(), StartError> {
        match (self.serving.addr.is_some(), config.gateway.http.is_some()) {
            (true, true) => self.serving.rebind(config).await?,
            (false, true) => {
                let catalog = self.catalog.load();
                let ctx = SinkContext {
                    config,
                    catalog: &catalog,
                    shared: &self.catalog,
                    applied: &self.applied,
                    status: &self.status,
                };
                let shown = Shown {
                    status: &self.status,
                    metrics: &self.metrics,
                    kpi: self.producers.kpi_board.clone(),
                };
                self.serving = Serving::start(&ctx, shown, &mut self.sinks_running)?;
            }
            (true, false) => {
                for p in self.serving.stop().await {
                    tracing::error!("{p}");
                }
                self.sinks_running.stop(crate::sink::live::NAME);
                self.serving = Serving::default();
                info!("HTTP API stopped: [gateway] http was removed");
            }
            (false, false) => {}
        }
        self.http = self.serving.addr;
        Ok(())
    }

    /// Waits until a part of the gateway panicked (a bug) and says which. The caller should
    /// then stop the gateway and exit non-zero: a gateway missing a sink or a driver must not
    /// look healthy. Cancel-safe.
    pub async fn failed(&mut self) -> TaskPanic {
        tokio::select! {
            p = self.hall.panicked() => p,
            p = self.producers.tasks.panicked() => p,
            p = self.dispatcher.panicked() => p,
            p = self.sinks_running.tasks.panicked() => p,
            p = self.serving.task.panicked() => p,
        }
    }

    /// Stops the drivers, drains the ring into the sinks and lets them flush, within
    /// [`SHUTDOWN_BUDGET`].
    pub async fn stop(mut self) {
        let deadline = Instant::now() + SHUTDOWN_BUDGET;
        self.producers.stop.cancel();
        let mut panics = self.hall.stop().await;
        panics.extend(self.producers.tasks.join_all().await);
        match tokio::time::timeout_at(deadline, self.dispatcher.join_all()).await {
            Ok(p) => panics.extend(p),
            Err(_) => warn!("the ring was not drained in time"),
        }
        match tokio::time::timeout_at(deadline, self.sinks_running.tasks.join_all()).await {
            Ok(p) => panics.extend(p),
            Err(_) => {
                warn!("sinks did not finish flushing in time");
                self.sinks_running.tasks.abort_all();
            }
        }
        // Open event streams would hold a graceful shutdown forever: they get a moment.
        panics.extend(self.serving.stop().await);
        for p in panics {
            tracing::error!("{p}");
        }
        info!("gateway stopped");
    }
}
