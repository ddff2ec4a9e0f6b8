//! The configuration file: TOML as the contract writes it, validated into typed settings.
//!
//! Modules:
//! - `raw`: the file as written (serde, spans kept, unknown keys refused);
//! - `validate`: raw to [`Config`], collecting every problem as `FILE:LINE:COL: message`;
//! - [`duration`]: `"250ms"`-style durations;
//! - [`error`]: the error types.
//!
//! Secrets never live in the file: a key ending in `_env` names an environment variable, read
//! when the gateway starts ([`EnvRef::resolve`]).

pub mod duration;
pub mod error;
mod raw;
mod url;
mod validate;

pub use error::{ConfigError, ConfigErrors};
pub use url::Url;

use shopfloor_core::emit::Publish;
use shopfloor_core::ring::WhenFull;
use shopfloor_core::{Catalog, CatalogError, MachineInfo, TagInfo};
use shopfloor_modbus::TagSpec;
use shopfloor_modbus::driver::ModbusMachine;
use shopfloor_modbus::link::Link;
use shopfloor_modbus::plan::PlanLimits;
use shopfloor_opcua::{Identity, Mode, OpcuaMachine};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The configuration a reload applied last, for the parts that learn what it added while they
/// run (the Sparkplug node's device types). Empty until the first reload: what a gateway starts
/// with, its parts know from the start. Only kept where something reads it, as a configuration
/// of a large hall is tens of megabytes.
#[derive(Debug, Default)]
pub struct Applied(std::sync::RwLock<Option<std::sync::Arc<Config>>>);

impl Applied {
    /// The configuration a reload applied, if any.
    pub fn load(&self) -> Option<std::sync::Arc<Config>> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A reload applied `config`: kept when a Sparkplug node will ask.
    pub fn store(&self, config: &Config) {
        let kept = config
            .sparkplug
            .is_some()
            .then(|| std::sync::Arc::new(config.clone()));
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = kept;
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// `[gateway]`.
    pub gateway: GatewayConfig,
    /// `[buffer]`.
    pub buffer: BufferConfig,
    /// `[mqtt]`, when present.
    pub mqtt: Option<MqttConfig>,
    /// `[sparkplug]`.
    pub sparkplug: Option<SparkplugConfig>,
    /// `[influx]`, when present.
    pub influx: Option<InfluxConfig>,
    /// `[record]`, when present.
    pub record: Option<RecordConfig>,
    /// `[csv]`, when present.
    pub csv: Option<CsvConfig>,
    /// `[kpi]`, when present or when any machine has a `[machine.kpi]` (defaults then).
    pub kpi: Option<KpiConfig>,
    /// `[[machine]]`, in file order.
    pub machines: Vec<MachineConfig>,
}

/// A reference to an environment variable holding a secret, with where the file named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvRef {
    /// The variable's name.
    pub var: String,
    /// Where the key is, for the error when the variable is missing.
    pub at: ConfigError,
}

impl EnvRef {
    /// The secret, or an error pointing at the key when the variable is unset or empty.
    pub fn resolve(&self) -> Result<String, ConfigError> {
        match std::env::var(&self.var) {
            Ok(v) if !v.is_empty() => Ok(v),
            _ => {
                let mut e = self.at.clone();
                e.message = format!(
                    "environment variable {} is not set (this key names the variable that \
                     holds the secret)",
                    self.var
                );
                Err(e)
            }
        }
    }
}

/// `[gateway]`.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// This gateway instance; used in client ids and status topics.
    pub name: String,
    /// Whether the file gave `name` (else it is the default, shared by every such gateway).
    pub named: bool,
    /// Where the HTTP server listens, if anywhere.
    pub http: Option<SocketAddr>,
    /// The bearer token's variable, required when `http` is not loopback.
    pub http_token_env: Option<EnvRef>,
    /// How much history per tag the HTTP API keeps (default 10 minutes).
    pub history: Duration,
    /// OPC UA certificates.
    pub pki_dir: PathBuf,
}

/// `[buffer]`.
#[derive(Debug, Clone)]
pub struct BufferConfig {
    /// Samples held in the in-memory ring.
    pub capacity: usize,
    /// What a full ring drops.
    pub when_full: WhenFull,
    /// Store-and-forward directory.
    pub spool_dir: Option<PathBuf>,
    /// Spool size limit.
    pub spool_max_mb: u64,
    /// How often the spool is forced to disk: the most a power cut can lose.
    pub fsync_interval: Duration,
}

/// How samples map to MQTT messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A message per sample, topic `{prefix}/{machine}/{tag}`.
    Tag,
    /// A message per machine and poll cycle, topic `{prefix}/{machine}`.
    Machine,
}

/// `[mqtt]`.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// Broker URL: `mqtt://` or `mqtts://`.
    pub url: Url,
    /// Topic prefix, without a trailing slash.
    pub topic_prefix: String,
    /// 0 or 1.
    pub qos: u8,
    /// Message layout.
    pub layout: Layout,
    /// QoS 1 messages written and not yet acknowledged, at most (`inflight`).
    pub inflight: usize,
    /// How often the broker must hear from the gateway (`keep_alive`; a PINGREQ when idle).
    pub keep_alive: Duration,
    /// Credentials and trust.
    pub auth: BrokerAuth,
    /// What a full intake of the sink drops; `[buffer] when_full` unless set.
    pub when_full: Option<WhenFull>,
}

/// How a client proves itself to a broker and which broker it trusts: `[mqtt]` and `[record]`.
#[derive(Debug, Clone, Default)]
pub struct BrokerAuth {
    /// Username, if any.
    pub username: Option<String>,
    /// Password variable, if any.
    pub password_env: Option<EnvRef>,
    /// CA file for `mqtts://` instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate for `mqtts://`.
    pub client_cert: Option<PathBuf>,
    /// Client key for `mqtts://`.
    pub client_key: Option<PathBuf>,
}

impl BrokerAuth {
    /// How client `client_id` reaches the broker at `url` with these credentials and TLS
    /// files (TLS for `mqtts://`), taking packets up to `max_packet` bytes. Reads the
    /// password variable now.
    pub fn session<'a>(
        &'a self,
        url: &'a Url,
        client_id: String,
        max_packet: usize,
    ) -> Result<shopfloor_mqtt::session::Settings<'a>, ConfigError> {
        Ok(shopfloor_mqtt::session::Settings {
            client_id,
            host: &url.host,
            port: url.port,
            tls: (url.scheme == "mqtts").then(|| self.tls_files()),
            credentials: self.username.as_deref().zip(self.password()?),
            max_packet,
        })
    }

    /// Its TLS files, for `shopfloor_mqtt::tls::client_config`.
    pub fn tls_files(&self) -> shopfloor_mqtt::tls::TlsFiles<'_> {
        shopfloor_mqtt::tls::TlsFiles {
            ca_file: self.ca_file.as_deref(),
            client_cert: self.client_cert.as_deref(),
            client_key: self.client_key.as_deref(),
        }
    }

    /// The password, read from its variable now (empty for a username without one); `None`
    /// without a username.
    pub fn password(&self) -> Result<Option<String>, ConfigError> {
        match (&self.username, &self.password_env) {
            (Some(_), Some(env)) => env.resolve().map(Some),
            (Some(_), None) => Ok(Some(String::new())),
            (None, _) => Ok(None),
        }
    }
}

/// `[sparkplug]`: the gateway as a Sparkplug B edge node.
#[derive(Debug, Clone)]
pub struct SparkplugConfig {
    /// Brokers, tried in turn (`url`, or `urls`).
    pub urls: Vec<Url>,
    /// `group_id`.
    pub group_id: String,
    /// `edge_node_id`: `[gateway] name` unless set.
    pub edge_node_id: String,
    /// The host application whose STATE gates the births, if any.
    pub primary_host_id: Option<String>,
    /// Data by alias (births carry names and aliases).
    pub aliases: bool,
    /// Credentials and trust.
    pub auth: BrokerAuth,
    /// What a full intake of the sink drops; `[buffer] when_full` unless set.
    pub when_full: Option<WhenFull>,
}

/// `[influx]`.
#[derive(Debug, Clone)]
pub struct InfluxConfig {
    /// Base URL of the store.
    pub url: Url,
    /// Organisation.
    pub org: String,
    /// Bucket.
    pub bucket: String,
    /// Token variable.
    pub token_env: Option<EnvRef>,
    /// Measurement name.
    pub measurement: String,
    /// Points per write request at most.
    pub batch_size: usize,
    /// The longest a point waits before its batch is written.
    pub flush_interval: Duration,
    /// For each write request.
    pub timeout: Duration,
    /// What a full intake of the sink drops; `[buffer] when_full` unless set.
    pub when_full: Option<WhenFull>,
}

/// `[record]`.
#[derive(Debug, Clone)]
pub struct RecordConfig {
    /// Broker URL.
    pub url: Url,
    /// Topic filters.
    pub topics: Vec<String>,
    /// Shared-subscription group.
    pub share_group: Option<String>,
    /// Machines learnt at most; messages naming more are skipped and counted.
    pub max_machines: usize,
    /// Tags learnt at most, over all machines.
    pub max_tags: usize,
    /// Credentials and trust.
    pub auth: BrokerAuth,
}

impl RecordConfig {
    /// `max_machines` when the file does not say.
    pub const DEFAULT_MAX_MACHINES: usize = 1000;
    /// `max_tags` when the file does not say.
    pub const DEFAULT_MAX_TAGS: usize = 100_000;
}

/// `[csv]`.
#[derive(Debug, Clone)]
pub struct CsvConfig {
    /// Directory of the files.
    pub dir: PathBuf,
    /// What a full intake of the sink drops; `[buffer] when_full` unless set.
    pub when_full: Option<WhenFull>,
}

/// One `[[machine]]`.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    /// `[a-z0-9_-]+`, unique.
    pub id: String,
    /// Free text.
    pub kind: String,
    /// Protocol and its settings.
    pub protocol: ProtocolConfig,
    /// Tag names and units, in file order.
    pub tags: Vec<TagInfo>,
    /// Every reading, or report by exception with its heartbeat and per-tag deadbands.
    pub publish: Publish,
    /// `[machine.kpi]`, when present.
    pub kpi: Option<MachineKpi>,
}

/// `[kpi]`.
#[derive(Debug, Clone)]
pub struct KpiConfig {
    /// KPIs over this rolling window.
    pub window: Duration,
    /// Shift starts in their time zone, when given: KPIs of the current shift too.
    pub shifts: Option<shopfloor_kpi::Shifts>,
    /// How often KPIs are computed and published.
    pub interval: Duration,
    /// Grid emission factor, for CO2 per part.
    pub co2_kg_per_kwh: Option<f64>,
}

impl KpiConfig {
    /// `window` when the file does not say.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(3600);
    /// `interval` when the file does not say.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

    /// The KPI tags of machine `m`, in catalog order after its own tags: each figure with
    /// whether it is the shift's.
    pub fn tags(&self, m: &MachineKpi) -> Vec<(shopfloor_kpi::Figure, bool)> {
        let figures =
            shopfloor_kpi::tags::figures(m.energy.is_some(), self.co2_kg_per_kwh.is_some());
        let mut tags: Vec<_> = figures.iter().map(|&f| (f, false)).collect();
        if self.shifts.is_some() {
            tags.extend(figures.iter().map(|&f| (f, true)));
        }
        tags
    }
}

/// A machine's `[machine.kpi]`, its tags resolved to indices.
#[derive(Debug, Clone)]
pub struct MachineKpi {
    /// The tag that says what the machine is doing.
    pub state: usize,
    /// Which of its values are running and planned stops.
    pub states: shopfloor_kpi::States,
    /// The counter of good parts.
    pub good: usize,
    /// The counter of rejected parts.
    pub reject: Option<usize>,
    /// The ideal time for one part.
    pub ideal_cycle: Duration,
    /// The kWh counter of the meter feeding this machine.
    pub energy: Option<TagRef>,
}

/// A tag of a machine of this file, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagRef {
    /// The machine's index in `machines`.
    pub machine: usize,
    /// The tag's index in its machine.
    pub tag: usize,
}

/// A machine's protocol settings.
#[derive(Debug, Clone)]
pub enum ProtocolConfig {
    /// `protocol = "modbus-tcp"`, `"modbus-rtu-tcp"` or `"modbus-rtu"`.
    Modbus(ModbusConfig),
    /// `protocol = "opcua"`.
    Opcua(OpcuaConfig),
}

impl ProtocolConfig {
    /// The configuration word.
    pub fn name(&self) -> &'static str {
        match self {
            ProtocolConfig::Modbus(mb) => mb.link.protocol(),
            ProtocolConfig::Opcua(_) => "opcua",
        }
    }
}

/// A Modbus machine's settings.
#[derive(Debug, Clone)]
pub struct ModbusConfig {
    /// Where it is reached: `address` or `port`; machines with one link share a bus.
    pub link: Link,
    /// Unit identifier.
    pub unit_id: u8,
    /// Poll interval.
    pub poll_interval: Duration,
    /// Request timeout.
    pub timeout: Duration,
    /// Register map, one per tag, in file order.
    pub tags: Vec<TagSpec>,
    /// For `simulate` and `demo`: which simulated machine serves this address.
    pub simulator: Option<shopfloor_sim::SimKind>,
    /// For `simulate` and `demo`: the faults that machine shows on purpose.
    pub faults: shopfloor_sim::Faults,
}

/// An OPC UA machine's settings (read by the OPC UA driver).
#[derive(Debug, Clone)]
pub struct OpcuaConfig {
    /// `opc.tcp://host:port`.
    pub endpoint: String,
    /// `security_policy`.
    pub security_policy: shopfloor_opcua::settings::Policy,
    /// `security_mode`.
    pub security_mode: shopfloor_opcua::settings::SecurityMode,
    /// Username, if any.
    pub username: Option<String>,
    /// Password variable, if any.
    pub password_env: Option<EnvRef>,
    /// Trust whatever certificate the server shows.
    pub trust_server_certificate: bool,
    /// `subscribe` or `poll`.
    pub mode: Mode,
    /// Publishing or poll interval.
    pub publishing_interval: Duration,
    /// Limit on connecting and on every request.
    pub timeout: Duration,
    /// Node ids, one per tag, in file order.
    pub nodes: Vec<shopfloor_opcua::NodeRef>,
    /// For `simulate` and `demo`: which simulated machine serves this endpoint.
    pub simulator: Option<shopfloor_sim::SimKind>,
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let source = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: 1,
                col: 1,
                message: format!("cannot read the file: {e}"),
            }])
        })?;
        Config::parse(path, &source)
    }

    /// Validates `source` as if read from `path`.
    pub fn parse(path: &Path, source: &str) -> Result<Config, ConfigErrors> {
        validate::validate(path, source)
    }

    /// The catalog of machine and tag names behind sample ids, in file order; a machine's KPI
    /// tags follow its own.
    pub fn catalog(&self) -> Result<Catalog, CatalogError> {
        let mut c = Catalog::new();
        for m in &self.machines {
            c.add(self.machine_info(m))?;
        }
        Ok(c)
    }

    /// The catalog entry of machine `m`: its tags, then its KPI tags.
    pub fn machine_info(&self, m: &MachineConfig) -> MachineInfo {
        let mut tags = m.tags.clone();
        if let (Some(kpi), Some(mk)) = (&self.kpi, &m.kpi) {
            tags.extend(kpi.tags(mk).into_iter().map(|(f, shift)| TagInfo {
                name: f.tag(shift),
                unit: f.unit().map(str::to_owned),
            }));
        }
        MachineInfo {
            id: m.id.clone(),
            kind: m.kind.clone(),
            protocol: m.protocol.name().to_owned(),
            tags,
        }
    }

    /// The OPC UA driver settings of machine `index`, if it is an OPC UA machine; the password
    /// is read from its environment variable now.
    pub fn opcua_machine(&self, index: usize) -> Option<Result<OpcuaMachine, ConfigError>> {
        let m = self.machines.get(index)?;
        let ProtocolConfig::Opcua(ua) = &m.protocol else {
            return None;
        };
        let identity = match (&ua.username, &ua.password_env) {
            (Some(user), Some(env)) => match env.resolve() {
                Ok(p) => Identity::UserName(user.clone(), p),
                Err(e) => return Some(Err(e)),
            },
            (Some(user), None) => Identity::UserName(user.clone(), String::new()),
            _ => Identity::Anonymous,
        };
        Some(Ok(OpcuaMachine {
            id: shopfloor_core::MachineId(u16::try_from(index).ok()?),
            name: m.id.clone(),
            gateway: self.gateway.name.clone(),
            endpoint: ua.endpoint.clone(),
            policy: ua.security_policy.security(),
            security_mode: ua.security_mode.message_mode(),
            identity,
            trust_server_certificate: ua.trust_server_certificate,
            pki_dir: self.gateway.pki_dir.clone(),
            mode: ua.mode,
            interval: ua.publishing_interval,
            timeout: ua.timeout,
            nodes: ua.nodes.clone(),
            publish: m.publish.clone(),
        }))
    }

    /// The Modbus driver settings of machine `index`, if it is a Modbus machine.
    pub fn modbus_machine(&self, index: usize) -> Option<ModbusMachine> {
        let m = self.machines.get(index)?;
        let ProtocolConfig::Modbus(mb) = &m.protocol else {
            return None;
        };
        Some(ModbusMachine {
            id: shopfloor_core::MachineId(u16::try_from(index).ok()?),
            name: m.id.clone(),
            link: mb.link.clone(),
            unit_id: mb.unit_id,
            poll_interval: mb.poll_interval,
            timeout: mb.timeout,
            tags: mb.tags.clone(),
            limits: PlanLimits::default(),
            publish: m.publish.clone(),
        })
    }
}

#[cfg(test)]
mod tests;
