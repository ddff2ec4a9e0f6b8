//! Starting a gateway from a validated configuration, and stopping it cleanly.
//!
//! Shutdown runs downstream: the drivers stop first (their ring lanes close), the dispatcher
//! drains what is left in the ring and closes the sinks' inputs, and each sink flushes what it
//! holds until the deadline. One [`CancellationToken`] starts it all, as in mini-redis.

use crate::config::{Config, ProtocolConfig};
use crate::dispatch::{self, SinkPort};
use crate::http::HttpState;
use crate::kpi::{KpiBoard, KpiEngine};
use crate::metrics::{Metrics, Reporter};
use crate::record::{Recorder, Storing};
use crate::sink::live::{LiveSink, LiveStore};
use crate::sink::mqtt::MqttError;
use crate::sink::{Build, Sink, SinkContext, SinkStats, csv, influx, mqtt, sparkplug};
use crate::status::StatusBoard;
use crate::tasks::{TaskPanic, Tasks};
use shopfloor_core::ring::{self, Consumer, Producer, RingError};
use shopfloor_core::{Catalog, CatalogError, SharedCatalog, StatusReporter};
use shopfloor_modbus::driver::ModbusMachine;
use shopfloor_opcua::OpcuaMachine;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Time from the stop signal until the gateway has exited, at most.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_secs(5);
/// Batches queued per sink before the dispatcher drops for that sink.
const SINK_QUEUE: usize = 256;
/// Points of history per tag at most, whatever the poll rate: the window in this many steps
/// (one reading a second for the default 10 minutes).
const LIVE_POINTS: usize = 600;

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
    /// Names behind sample ids.
    pub catalog: Arc<Catalog>,
    /// Machine states.
    pub status: Arc<StatusBoard>,
    /// Counters of each sink, by name.
    pub sinks: Vec<(&'static str, Arc<SinkStats>)>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Where the HTTP server listens, when it runs.
    pub http: Option<std::net::SocketAddr>,
    http_stop: CancellationToken,
    http_task: Tasks,
    drivers: Tasks,
    driver_stop: CancellationToken,
    dispatcher: Tasks,
    sink_tasks: Tasks,
}

/// Samples a machine's lane holds: its share of the ring, and at least two poll cycles (one
/// being written while the one before is drained), so that a large hall does not multiply the
/// configured capacity more than it must (the lanes are committed memory, 32 bytes a sample).
fn lane_capacity(config: &Config, tags: usize) -> usize {
    let share = config.buffer.capacity / config.machines.len().max(1);
    share.max(2 * tags).max(64)
}

/// Every sink the gateway can run from a config section, in start order. Adding a sink is its
/// folder under `sink/`, its config section and one line here. (The live store is the HTTP
/// server's, started with it.)
const SINKS: [Build; 4] = [mqtt::build, sparkplug::build, csv::build, influx::build];

/// The sinks started so far: their tasks, the dispatcher's ports and their counters.
#[derive(Debug, Default)]
struct Sinks {
    ports: Vec<SinkPort>,
    stats: Vec<(&'static str, Arc<SinkStats>)>,
    tasks: Tasks,
    /// What a recorder waits for before it acknowledges: the sinks of the table.
    storing: Storing,
}

impl Sinks {
    /// Builds every sink of the table whose section is in the config.
    fn from_table(ctx: &SinkContext<'_>) -> Result<Sinks, StartError> {
        let mut sinks = Sinks::default();
        for build in SINKS {
            let stats = Arc::new(SinkStats::with_progress(&sinks.storing.progress));
            if let Some(sink) = build(ctx, Arc::clone(&stats))? {
                sinks.storing.sinks.push(Arc::clone(&stats));
                sinks.start(sink, stats);
            }
        }
        Ok(sinks)
    }

    /// Starts `sink` as its own task, fed by a port of the dispatcher.
    fn start(&mut self, sink: Box<dyn Sink>, stats: Arc<SinkStats>) {
        let name = sink.name();
        let (tx, rx) = mpsc::channel(SINK_QUEUE);
        self.tasks.spawn(
            format!("the {name} sink"),
            sink.run(rx, SHUTDOWN_BUDGET - Duration::from_secs(1)),
        );
        self.ports.push(SinkPort {
            name,
            tx,
            stats: Arc::clone(&stats),
        });
        self.stats.push((name, stats));
    }
}

/// The ring's lanes by owner: a machine's id, or [`RECORDER_LANE`].
type Lanes = HashMap<String, Producer>;

/// The lane of the recorder (no machine id can be this: ids are `[a-z0-9_-]+`).
const RECORDER_LANE: &str = "[record]";
/// The lane of the KPI engine.
const KPI_LANE: &str = "[kpi]";

/// The ring with a lane per machine (and one for a recorder), and its consumer.
fn ring_lanes(config: &Config) -> Result<(Lanes, Consumer), StartError> {
    let mut owners: Vec<(String, usize)> = config
        .machines
        .iter()
        .map(|m| (m.id.clone(), lane_capacity(config, m.tags.len())))
        .collect();
    if config.record.is_some() || owners.is_empty() {
        // A recorder's one lane takes the whole stream of every gateway it records (and a
        // ring needs a lane).
        owners.push((RECORDER_LANE.into(), config.buffer.capacity.max(1024)));
    }
    if config.kpi.is_some() {
        // A few intervals of every machine's KPI tags.
        let tags: usize = config.machines.iter().filter(|m| m.kpi.is_some()).count() * 16;
        owners.push((KPI_LANE.into(), (4 * tags).max(64)));
    }
    let capacities: Vec<usize> = owners.iter().map(|(_, c)| *c).collect();
    let (producers, consumer) = ring::with_lanes(&capacities, config.buffer.when_full)?;
    let lanes = owners.into_iter().map(|(o, _)| o).zip(producers).collect();
    Ok((lanes, consumer))
}

/// What the HTTP server shows and how it is stopped.
#[derive(Debug)]
struct Http {
    addr: Option<std::net::SocketAddr>,
    stop: CancellationToken,
    task: Tasks,
}

/// Starts the HTTP server and its live store (a sink), when `[gateway] http` is set.
fn start_http(
    ctx: &SinkContext<'_>,
    status: &Arc<StatusBoard>,
    metrics: &Arc<Metrics>,
    kpi: Option<Arc<KpiBoard>>,
    sinks: &mut Sinks,
) -> Result<Http, StartError> {
    let mut http = Http {
        addr: None,
        stop: CancellationToken::new(),
        task: Tasks::new(),
    };
    let config = ctx.config;
    let Some(addr) = config.gateway.http else {
        return Ok(http);
    };
    let token = match &config.gateway.http_token_env {
        Some(env) => Some(env.resolve()?),
        None => None,
    };
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(tokio::net::TcpListener::from_std)
        .map_err(|e| {
            StartError::Http(format!(
                "cannot listen on {addr}: {e}; change [gateway] http"
            ))
        })?;
    http.addr = listener.local_addr().ok();
    let store = Arc::new(RwLock::new(LiveStore::new(
        ctx.catalog,
        config.gateway.history,
        LIVE_POINTS,
    )));
    let (events, _) = broadcast::channel(256);
    let stats = Arc::new(SinkStats::default());
    let live = LiveSink {
        catalog: Arc::clone(ctx.shared),
        store: Arc::clone(&store),
        events: events.clone(),
        stats: Arc::clone(&stats),
    };
    sinks.start(Box::new(live), stats);
    let state = Arc::new(HttpState {
        gateway: config.gateway.name.clone(),
        catalog: Arc::clone(ctx.shared),
        store,
        status: Arc::clone(status),
        metrics: Arc::clone(metrics),
        sinks: sinks.stats.clone(),
        events,
        token,
        started: std::time::Instant::now(),
        kpi,
    });
    let served = crate::http::serve(listener, state, http.stop.clone());
    http.task.spawn("the HTTP server", served);
    info!(address = ?http.addr, "HTTP API listening");
    Ok(http)
}

/// Every machine's driver settings, resolved before anything runs (a missing password
/// variable stops the start).
enum DriverSettings {
    Modbus(ModbusMachine),
    Opcua(OpcuaMachine),
}

fn driver_settings(config: &Config) -> Result<Vec<(String, DriverSettings)>, StartError> {
    let mut out = Vec::with_capacity(config.machines.len());
    for (index, m) in config.machines.iter().enumerate() {
        let settings = match &m.protocol {
            ProtocolConfig::Modbus(_) => config.modbus_machine(index).map(DriverSettings::Modbus),
            ProtocolConfig::Opcua(_) => match config.opcua_machine(index) {
                Some(ua) => Some(DriverSettings::Opcua(ua?)),
                None => None,
            },
        };
        if let Some(s) = settings {
            out.push((m.id.clone(), s));
        }
    }
    if out
        .iter()
        .any(|(_, s)| matches!(s, DriverSettings::Opcua(_)))
    {
        own_certificate(config);
    }
    Ok(out)
}

/// Starts each OPC UA machine's driver, and each Modbus bus's (its machines' lanes beside it).
fn start_drivers(
    settings: Vec<(String, DriverSettings)>,
    lanes: &mut Lanes,
    reporter: &Arc<dyn StatusReporter>,
    stop: &CancellationToken,
    drivers: &mut Tasks,
) {
    let mut modbus = Vec::new();
    for (id, s) in settings {
        match s {
            DriverSettings::Modbus(m) => modbus.push(m),
            DriverSettings::Opcua(m) => {
                let Some(lane) = lanes.remove(&id) else {
                    continue;
                };
                let (reporter, stop) = (Arc::clone(reporter), stop.child_token());
                let name = format!("the driver of machine {id}");
                drivers.spawn(name, shopfloor_opcua::run(m, lane, reporter, stop));
            }
        }
    }
    for bus in shopfloor_modbus::bus::buses(modbus) {
        let lanes: Option<Vec<Producer>> =
            bus.machines.iter().map(|m| lanes.remove(&m.name)).collect();
        let Some(lanes) = lanes else {
            continue;
        };
        let (reporter, stop) = (Arc::clone(reporter), stop.child_token());
        let name = format!("the driver of bus {}", bus.link);
        drivers.spawn(name, shopfloor_modbus::bus::run(bus, lanes, reporter, stop));
    }
}

impl Gateway {
    /// Starts drivers, dispatcher and sinks. Must run inside a tokio runtime.
    pub fn start(config: &Config) -> Result<Gateway, StartError> {
        let catalog = Arc::new(config.catalog()?);
        let settings = driver_settings(config)?;
        // What the sinks that can take recorded samples read: it grows as a recorder learns
        // machines and tags; a gateway's own machines are all in it from the start.
        let shared = Arc::new(SharedCatalog::from_arc(Arc::clone(&catalog)));
        let status = Arc::new(StatusBoard::new(catalog.len()));
        let metrics = Arc::new(Metrics::new(catalog.len()));
        let (mut lanes, consumer) = ring_lanes(config)?;
        let ctx = SinkContext {
            config,
            catalog: &catalog,
            shared: &shared,
        };
        let mut sinks = Sinks::from_table(&ctx)?;
        let kpi = lanes
            .remove(KPI_LANE)
            .and_then(|lane| KpiEngine::new(config, lane));
        let board = kpi.as_ref().map(KpiEngine::board);
        let http = start_http(&ctx, &status, &metrics, board, &mut sinks)?;
        if sinks.ports.is_empty() {
            warn!(
                "no sink configured: samples are read but go nowhere (add [mqtt], [influx], [csv] or http)"
            );
        }
        let mut dispatcher = Tasks::new();
        let mut ports = std::mem::take(&mut sinks.ports);
        let kpi = kpi.map(|engine| {
            let (tx, rx) = mpsc::channel(SINK_QUEUE);
            ports.push(SinkPort {
                name: "kpi",
                tx,
                stats: Arc::default(),
            });
            (engine, rx)
        });
        dispatcher.spawn(
            "the dispatcher",
            dispatch::run(consumer, ports, Arc::clone(&metrics)),
        );

        let reporter: Arc<dyn StatusReporter> = Arc::new(Reporter {
            board: Arc::clone(&status),
            metrics: Arc::clone(&metrics),
        });
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
        if let Some((engine, input)) = kpi {
            // Among the drivers: it stops with them, so the ring can drain.
            drivers.spawn(
                "the KPI engine",
                engine.run(input, driver_stop.child_token()),
            );
        }
        start_drivers(settings, &mut lanes, &reporter, &driver_stop, &mut drivers);
        info!(
            machines = config.machines.len(),
            gateway = %config.gateway.name,
            "gateway started"
        );
        Ok(Gateway {
            catalog,
            status,
            sinks: sinks.stats,
            metrics,
            http: http.addr,
            http_stop: http.stop,
            http_task: http.task,
            drivers,
            driver_stop,
            dispatcher,
            sink_tasks: sinks.tasks,
        })
    }

    /// Waits until a part of the gateway panicked (a bug) and says which. The caller should
    /// then stop the gateway and exit non-zero: a gateway missing a sink or a driver must not
    /// look healthy. Cancel-safe.
    pub async fn failed(&mut self) -> TaskPanic {
        tokio::select! {
            p = self.drivers.panicked() => p,
            p = self.dispatcher.panicked() => p,
            p = self.sink_tasks.panicked() => p,
            p = self.http_task.panicked() => p,
        }
    }

    /// Stops the drivers, drains the ring into the sinks and lets them flush, within
    /// [`SHUTDOWN_BUDGET`].
    pub async fn stop(mut self) {
        let deadline = Instant::now() + SHUTDOWN_BUDGET;
        self.driver_stop.cancel();
        let mut panics = self.drivers.join_all().await;
        match tokio::time::timeout_at(deadline, self.dispatcher.join_all()).await {
            Ok(p) => panics.extend(p),
            Err(_) => warn!("the ring was not drained in time"),
        }
        match tokio::time::timeout_at(deadline, self.sink_tasks.join_all()).await {
            Ok(p) => panics.extend(p),
            Err(_) => {
                warn!("sinks did not finish flushing in time");
                self.sink_tasks.abort_all();
            }
        }
        self.http_stop.cancel();
        // Open event streams would hold a graceful shutdown forever: give them a moment.
        match tokio::time::timeout(Duration::from_millis(500), self.http_task.join_all()).await {
            Ok(p) => panics.extend(p),
            Err(_) => warn!("HTTP connections still open at shutdown"),
        }
        for p in panics {
            tracing::error!("{p}");
        }
        info!("gateway stopped");
    }
}
