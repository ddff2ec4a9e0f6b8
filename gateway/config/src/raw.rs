//! The configuration file as written, before validation: every key optional where the file may
//! leave it out, unknown keys refused, positions kept for error messages.

use serde::Deserialize;
use toml::Spanned;

/// A value with the byte range it came from.
pub(crate) type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub gateway: Option<S<RawGateway>>,
    pub buffer: Option<S<RawBuffer>>,
    pub mqtt: Option<S<RawMqtt>>,
    pub sparkplug: Option<S<RawSparkplug>>,
    pub influx: Option<S<RawInflux>>,
    pub record: Option<S<RawRecord>>,
    pub csv: Option<S<RawCsv>>,
    pub kpi: Option<S<RawKpi>>,
    #[serde(default)]
    pub machine: Vec<S<RawMachine>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGateway {
    pub name: Option<S<String>>,
    pub http: Option<S<String>>,
    pub http_token_env: Option<S<String>>,
    pub history: Option<S<String>>,
    pub pki_dir: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBuffer {
    pub capacity: Option<S<i64>>,
    pub when_full: Option<S<String>>,
    pub spool_dir: Option<S<String>>,
    pub spool_max_mb: Option<S<i64>>,
    pub fsync_interval: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMqtt {
    pub url: Option<S<String>>,
    pub topic_prefix: Option<S<String>>,
    pub qos: Option<S<i64>>,
    pub layout: Option<S<String>>,
    pub inflight: Option<S<i64>>,
    pub keep_alive: Option<S<String>>,
    pub username: Option<S<String>>,
    pub password_env: Option<S<String>>,
    pub ca_file: Option<S<String>>,
    pub client_cert: Option<S<String>>,
    pub client_key: Option<S<String>>,
    pub when_full: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSparkplug {
    pub url: Option<S<String>>,
    pub urls: Option<S<Vec<S<String>>>>,
    pub group_id: Option<S<String>>,
    pub edge_node_id: Option<S<String>>,
    pub primary_host_id: Option<S<String>>,
    pub aliases: Option<S<bool>>,
    pub username: Option<S<String>>,
    pub password_env: Option<S<String>>,
    pub ca_file: Option<S<String>>,
    pub client_cert: Option<S<String>>,
    pub client_key: Option<S<String>>,
    pub when_full: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInflux {
    pub url: Option<S<String>>,
    pub org: Option<S<String>>,
    pub bucket: Option<S<String>>,
    pub token_env: Option<S<String>>,
    pub measurement: Option<S<String>>,
    pub batch_size: Option<S<i64>>,
    pub flush_interval: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub when_full: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRecord {
    pub url: Option<S<String>>,
    pub topics: Option<S<Vec<S<String>>>>,
    pub share_group: Option<S<String>>,
    pub max_machines: Option<S<i64>>,
    pub max_tags: Option<S<i64>>,
    pub username: Option<S<String>>,
    pub password_env: Option<S<String>>,
    pub ca_file: Option<S<String>>,
    pub client_cert: Option<S<String>>,
    pub client_key: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCsv {
    pub dir: Option<S<String>>,
    pub when_full: Option<S<String>>,
}

/// `[kpi]`: how KPIs are computed for every machine with a `[machine.kpi]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKpi {
    pub window: Option<S<String>>,
    pub shifts: Option<S<Vec<S<String>>>>,
    pub timezone: Option<S<String>>,
    pub interval: Option<S<String>>,
    pub co2_kg_per_kwh: Option<S<f64>>,
}

/// `[machine.kpi]`: which of a machine's tags say what it does and makes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMachineKpi {
    pub state: Option<S<String>>,
    pub running: Option<S<Vec<S<toml::Value>>>>,
    pub planned_stop: Option<S<Vec<S<toml::Value>>>>,
    pub good: Option<S<String>>,
    pub reject: Option<S<String>>,
    pub ideal_cycle: Option<S<String>>,
    pub energy: Option<S<String>>,
}

/// A machine of any protocol; the keys of the other protocol are refused in validation, with a
/// message that names the protocol they belong to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMachine {
    pub id: Option<S<String>>,
    pub kind: Option<S<String>>,
    pub protocol: Option<S<String>>,
    pub publish: Option<S<String>>,
    pub heartbeat: Option<S<String>>,
    // modbus-tcp, modbus-rtu-tcp
    pub address: Option<S<String>>,
    // modbus-rtu
    pub port: Option<S<String>>,
    pub baud: Option<S<i64>>,
    pub parity: Option<S<String>>,
    pub stop_bits: Option<S<i64>>,
    // every Modbus protocol
    pub unit_id: Option<S<i64>>,
    pub poll_interval: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub simulator: Option<S<String>>,
    pub faults: Option<S<RawFaults>>,
    // opcua
    pub endpoint: Option<S<String>>,
    pub security_policy: Option<S<String>>,
    pub security_mode: Option<S<String>>,
    pub username: Option<S<String>>,
    pub password_env: Option<S<String>>,
    pub trust_server_certificate: Option<S<bool>>,
    pub mode: Option<S<String>>,
    pub publishing_interval: Option<S<String>>,
    pub kpi: Option<S<RawMachineKpi>>,
    #[serde(default)]
    pub tag: Vec<S<RawTag>>,
}

/// `[machine.faults]` of a simulated machine.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFaults {
    pub offline_every: Option<S<String>>,
    pub offline_for: Option<S<String>>,
    pub slow: Option<S<String>>,
    pub exception: Option<S<i64>>,
    pub drop_every: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTag {
    pub name: Option<S<String>>,
    pub unit: Option<S<String>>,
    pub deadband: Option<S<f64>>,
    // modbus-tcp
    pub area: Option<S<String>>,
    pub address: Option<S<i64>>,
    #[serde(rename = "type")]
    pub data_type: Option<S<String>>,
    pub order: Option<S<String>>,
    pub scale: Option<S<f64>>,
    pub offset: Option<S<f64>>,
    pub bit: Option<S<i64>>,
    pub length: Option<S<i64>>,
    // opcua
    pub node: Option<S<String>>,
}
