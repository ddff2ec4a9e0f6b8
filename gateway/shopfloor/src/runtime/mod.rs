//! Starting a gateway from a validated configuration, and stopping it cleanly.
//!
//! Shutdown runs downstream: the drivers stop first (their ring lanes close), the dispatcher
//! drains what is left in the ring and closes the sinks' inputs, and each sink flushes what it
//! holds until the deadline. One [`CancellationToken`] starts it all, as in mini-redis.
//!
//! Modules:
//! - [`hall`]: the machines' drivers by unit, started and stopped one by one (live
//!   reconfiguration changes only what a new file changes).
//! - [`sinks`]: the sinks by config section, each restarted on its own when a reload changes
//!   its section.
//! - [`serving`]: the HTTP server and its live store, listening anew when `[gateway] http`
//!   changes.
//! - [`reporter`]: where drivers report states and poll times, and what passes from a stopped
//!   driver to the next one of its machine (`seq`).

mod hall;
pub mod reporter;
mod serving;
pub mod sinks;

use crate::config::Config;
use crate::dispatch::{self, Control, SinkPort};
use crate::kpi::KpiEngine;
use crate::metrics::Metrics;
use crate::record::Recorder;
use crate::sink::SinkContext;
use crate::sink::intake::intake;
use crate::sink::mqtt::MqttError;
use crate::status::StatusBoard;
use crate::tasks::{TaskPanic, Tasks};
use hall::Hall;
use reporter::Reporter;
use serving::{Serving, Shown};
use shopfloor_core::ring::{self, Consumer, Producer, RingError, Rings};
use shopfloor_core::{CatalogError, SharedCatalog};
use sinks::Sinks;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
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
    drivers: Tasks,
    driver_stop: CancellationToken,
    dispatcher: Tasks,
    /// The configuration as applied, for sinks that learn machines a reload adds.
    applied: Arc<crate::config::Applied>,
    /// New configurations for the KPI engine, when it runs.
    kpi_changes: Option<mpsc::UnboundedSender<crate::kpi::Reconfigure>>,
    /// The KPIs the HTTP server shows, when the engine runs.
    kpi_board: Option<Arc<crate::kpi::KpiBoard>>,
    sinks_running: Sinks,
}

/// The ring's lanes by owner: a machine's id, or [`RECORDER_LANE`].
type Lanes = HashMap<String, Producer>;

/// The lane of the recorder (no machine id can be this: ids are `[a-z0-9_-]+`).
const RECORDER_LANE: &str = "[record]";
/// The lane of the KPI engine.
const KPI_LANE: &str = "[kpi]";

/// The ring of the producers that are not machines (a recorder, the KPI engine), if any.
fn ring_lanes(config: &Config) -> Result<Option<(Lanes, Consumer)>, StartError> {
    let mut owners: Vec<(String, usize)> = Vec::new();
    if config.record.is_some() {
        // A recorder's one lane takes the whole stream of every gateway it records.
        owners.push((RECORDER_LANE.into(), config.buffer.capacity.max(1024)));
    }
    if config.kpi.is_some() {
        // A few intervals of every machine's KPI tags.
        let tags: usize = config.machines.iter().filter(|m| m.kpi.is_some()).count() * 16;
        owners.push((KPI_LANE.into(), (4 * tags).max(1024)));
    }
    if owners.is_empty() {
        return Ok(None);
    }
    let capacities: Vec<usize> = owners.iter().map(|(_, c)| *c).collect();
    let (producers, consumer) = ring::with_lanes(&capacities, config.buffer.when_full)?;
    let lanes = owners.into_iter().map(|(o, _)| o).zip(producers).collect();
    Ok(Some((lanes, consumer)))
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
        let (mut lanes, first) = match ring_lanes(config)? {
            Some((lanes, consumer)) => (lanes, Some(consumer)),
            None => (Lanes::new(), None),
        };
        let (rings, joiner) = Rings::new();
        if let Some(c) = first {
            joiner.join(c);
        }
        let applied = Arc::new(crate::config::Applied::default());
        let ctx = SinkContext {
            config,
            catalog: &catalog,
            shared: &shared,
            applied: &applied,
            status: &status,
        };
        let (control, controlled) = mpsc::unbounded_channel();
        let mut sinks = Sinks::from_table(&ctx, control.clone())?;
        let kpi = lanes
            .remove(KPI_LANE)
            .and_then(|lane| KpiEngine::new(config, lane));
        let kpi_board = kpi.as_ref().map(KpiEngine::board);
        let shown = Shown {
            status: &status,
            metrics: &metrics,
            kpi: kpi_board.clone(),
        };
        let serving = Serving::start(&ctx, shown, &mut sinks)?;
        if sinks.is_empty() {
            warn!(
                "no sink configured: samples are read but go nowhere (add [mqtt], [influx], [csv] or http)"
            );
        }
        let kpi = kpi.map(|engine| {
            let (feed, rx) = intake(crate::sink::bound(&config.buffer, None));
            let _ = control.send(Control::Resume(SinkPort {
                name: "kpi",
                feed,
                stats: Arc::default(),
            }));
            (engine, rx)
        });
        let mut dispatcher = Tasks::new();
        dispatcher.spawn(
            "the dispatcher",
            dispatch::run(rings, Arc::clone(&metrics), controlled),
        );
        let driver_stop = CancellationToken::new();
        let mut drivers = Tasks::new();
        if let (Some(record), Some(lane)) = (&config.record, lanes.remove(RECORDER_LANE)) {
            let recorder = Recorder::new(
                record,
                &config.gateway.name,
                Arc::clone(&shared),
                lane,
                Arc::clone(&metrics),
            )?
            .acknowledging_after(sinks.storing.clone());
            drivers.spawn("the recorder", recorder.run(driver_stop.child_token()));
            info!(broker = %record.url, topics = ?record.topics, "recorder started");
        }
        let kpi_changes = kpi.map(|(engine, input)| {
            let (tx, changes) = mpsc::unbounded_channel();
            // Among the drivers: it stops with them, so the ring can drain.
            drivers.spawn(
                "the KPI engine",
                engine.run(input, changes, driver_stop.child_token()),
            );
            tx
        });
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
            drivers,
            driver_stop,
            dispatcher,
            applied,
            kpi_changes,
            kpi_board,
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
        if let Some(kpi) = &self.kpi_changes {
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
                    kpi: self.kpi_board.clone(),
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
            p = self.drivers.panicked() => p,
            p = self.dispatcher.panicked() => p,
            p = self.sinks_running.tasks.panicked() => p,
            p = self.serving.task.panicked() => p,
        }
    }

    /// Stops the drivers, drains the ring into the sinks and lets them flush, within
    /// [`SHUTDOWN_BUDGET`].
    pub async fn stop(mut self) {
        let deadline = Instant::now() + SHUTDOWN_BUDGET;
        self.driver_stop.cancel();
        let mut panics = self.hall.stop().await;
        panics.extend(self.drivers.join_all().await);
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
