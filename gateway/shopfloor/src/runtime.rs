//! Starting a gateway from a validated configuration, and stopping it cleanly.
//!
//! Shutdown runs downstream: the drivers stop first (their ring lanes close), the dispatcher
//! drains what is left in the ring and closes the sinks' inputs, and each sink flushes what it
//! holds until the deadline. One [`CancellationToken`] starts it all, as in mini-redis.

use crate::config::{Config, ProtocolConfig};
use crate::dispatch::{self, SinkPort};
use crate::http::HttpState;
use crate::metrics::{Metrics, Reporter};
use crate::record::Recorder;
use crate::sink::SinkStats;
use crate::sink::csv::CsvSink;
use crate::sink::influx::InfluxSink;
use crate::sink::influx::client::{Token, WriteClient};
use crate::sink::live::{self, LiveStore};
use crate::sink::mqtt::{MqttError, MqttSink};
use crate::spool::Spool;
use crate::status::StatusBoard;
use crate::tasks::{TaskPanic, Tasks};
use shopfloor_core::ring::{self, RingError};
use shopfloor_core::{Catalog, CatalogError, SharedCatalog, StatusReporter};
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

/// The spool of sink `name` under `[buffer] spool_dir`, if set. The sinks that spool (MQTT,
/// the store) share `spool_max_mb` equally, so the directory as a whole stays within it.
fn open_spool(config: &Config, name: &str) -> Result<Option<Spool>, StartError> {
    let Some(dir) = &config.buffer.spool_dir else {
        return Ok(None);
    };
    let sinks = u64::from(config.mqtt.is_some()) + u64::from(config.influx.is_some());
    let max = config.buffer.spool_max_mb.saturating_mul(1 << 20) / sinks.max(1);
    let dir = dir.join(name);
    Spool::open(&dir, max)
        .map(Some)
        .map_err(|e| StartError::Spool(format!("{}: {e}", dir.display())))
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

impl Gateway {
    /// Starts drivers, dispatcher and sinks. Must run inside a tokio runtime.
    pub fn start(config: &Config) -> Result<Gateway, StartError> {
        let catalog = Arc::new(config.catalog()?);
        // OPC UA settings first: a missing password variable stops the start before anything runs.
        let mut opcua = Vec::new();
        for index in 0..config.machines.len() {
            if let Some(m) = config.opcua_machine(index) {
                opcua.push(m?);
            }
        }
        if !opcua.is_empty() {
            own_certificate(config);
        }
        let mut opcua = opcua.into_iter();
        // What the sinks that can take recorded samples read: it grows as a recorder learns
        // machines and tags; a gateway's own machines are all in it from the start.
        let shared = Arc::new(SharedCatalog::from_arc(Arc::clone(&catalog)));
        let status = Arc::new(StatusBoard::new(catalog.len()));
        let mut capacities: Vec<usize> = config
            .machines
            .iter()
            .map(|m| lane_capacity(config, m.tags.len()))
            .collect();
        if config.record.is_some() {
            // A recorder's one lane takes the whole stream of every gateway it records.
            capacities.push(config.buffer.capacity.max(1024));
        } else if capacities.is_empty() {
            capacities.push(64); // a ring needs a lane
        }
        let (producers, consumer) = ring::with_lanes(&capacities, config.buffer.when_full)?;

        let mut ports = Vec::new();
        let mut sinks = Vec::new();
        let mut sink_tasks = Tasks::new();
        if let Some(mqtt) = &config.mqtt {
            let stats = Arc::new(SinkStats::default());
            let sink = MqttSink::new(
                mqtt.clone(),
                &config.gateway.name,
                Arc::clone(&catalog),
                Arc::clone(&stats),
                open_spool(config, "mqtt")?,
            )?;
            let (tx, rx) = mpsc::channel(SINK_QUEUE);
            sink_tasks.spawn(
                "the mqtt sink",
                sink.run(
                    rx,
                    SHUTDOWN_BUDGET - Duration::from_secs(1),
                    config.buffer.fsync_interval,
                ),
            );
            ports.push(SinkPort {
                name: "mqtt",
                tx,
                stats: Arc::clone(&stats),
            });
            sinks.push(("mqtt", stats));
            info!(broker = %mqtt.url, prefix = %mqtt.topic_prefix, "publishing to MQTT");
        }
        if let Some(csv) = &config.csv {
            let stats = Arc::new(SinkStats::default());
            let sink = CsvSink::new(csv.dir.clone(), Arc::clone(&shared), Arc::clone(&stats));
            let (tx, rx) = mpsc::channel(SINK_QUEUE);
            sink_tasks.spawn("the csv sink", sink.run(rx));
            ports.push(SinkPort {
                name: "csv",
                tx,
                stats: Arc::clone(&stats),
            });
            sinks.push(("csv", stats));
            info!(dir = %csv.dir.display(), "writing CSV files");
        }
        if let Some(influx) = &config.influx {
            let token = match &influx.token_env {
                Some(env) => Some(Token::new(env.resolve()?)),
                None => None,
            };
            let client = WriteClient::new(influx, token)?;
            let stats = Arc::new(SinkStats::default());
            let rejected_dir = config
                .buffer
                .spool_dir
                .as_ref()
                .map(|d| d.join("influx-rejected"));
            let spool = open_spool(config, "influx")?;
            let sink = InfluxSink::new(
                influx,
                client,
                Arc::clone(&shared),
                Arc::clone(&stats),
                rejected_dir,
                spool,
            );
            let (tx, rx) = mpsc::channel(SINK_QUEUE);
            sink_tasks.spawn(
                "the influx sink",
                sink.run(
                    rx,
                    SHUTDOWN_BUDGET - Duration::from_secs(1),
                    config.buffer.fsync_interval,
                ),
            );
            ports.push(SinkPort {
                name: "influx",
                tx,
                stats: Arc::clone(&stats),
            });
            sinks.push(("influx", stats));
        }
        let metrics = Arc::new(Metrics::new(catalog.len()));
        let http_stop = CancellationToken::new();
        let mut http_task = Tasks::new();
        let mut http = None;
        if let Some(addr) = config.gateway.http {
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
            http = listener.local_addr().ok();
            let store = Arc::new(RwLock::new(LiveStore::new(
                &catalog,
                config.gateway.history,
                LIVE_POINTS,
            )));
            let (events, _) = broadcast::channel(256);
            let stats = Arc::new(SinkStats::default());
            let (tx, rx) = mpsc::channel(SINK_QUEUE);
            sink_tasks.spawn(
                "the live store",
                live::run(
                    Arc::clone(&shared),
                    Arc::clone(&store),
                    events.clone(),
                    Arc::clone(&stats),
                    rx,
                ),
            );
            ports.push(SinkPort {
                name: "live",
                tx,
                stats: Arc::clone(&stats),
            });
            sinks.push(("live", stats));
            let state = Arc::new(HttpState {
                gateway: config.gateway.name.clone(),
                catalog: Arc::clone(&shared),
                store,
                status: Arc::clone(&status),
                metrics: Arc::clone(&metrics),
                sinks: sinks.clone(),
                events,
                token,
                started: std::time::Instant::now(),
            });
            http_task.spawn(
                "the HTTP server",
                crate::http::serve(listener, state, http_stop.clone()),
            );
            info!(address = ?http, "HTTP API listening");
        }
        if ports.is_empty() {
            warn!(
                "no sink configured: samples are read but go nowhere (add [mqtt], [influx], [csv] or http)"
            );
        }
        let mut dispatcher = Tasks::new();
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
        let mut producers = producers.into_iter();
        if let Some(record) = &config.record
            && let Some(producer) = producers.next()
        {
            let recorder = Recorder::new(
                record,
                &config.gateway.name,
                Arc::clone(&shared),
                producer,
                Arc::clone(&metrics),
            )?;
            drivers.spawn("the recorder", recorder.run(driver_stop.child_token()));
            info!(broker = %record.url, topics = ?record.topics, "recorder started");
        }
        for (index, producer) in producers.enumerate() {
            let Some(m) = config.machines.get(index) else {
                continue;
            };
            match &m.protocol {
                ProtocolConfig::ModbusTcp(_) => {
                    if let Some(machine) = config.modbus_machine(index) {
                        drivers.spawn(
                            format!("the driver of machine {}", m.id),
                            shopfloor_modbus::driver::run(
                                machine,
                                producer,
                                Arc::clone(&reporter),
                                driver_stop.child_token(),
                            ),
                        );
                    }
                }
                ProtocolConfig::Opcua(_) => {
                    if let Some(machine) = opcua.next() {
                        drivers.spawn(
                            format!("the driver of machine {}", m.id),
                            shopfloor_opcua::run(
                                machine,
                                producer,
                                Arc::clone(&reporter),
                                driver_stop.child_token(),
                            ),
                        );
                    }
                }
            }
        }
        info!(
            machines = config.machines.len(),
            gateway = %config.gateway.name,
            "gateway started"
        );
        Ok(Gateway {
            catalog,
            status,
            sinks,
            metrics,
            http,
            http_stop,
            http_task,
            drivers,
            driver_stop,
            dispatcher,
            sink_tasks,
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
