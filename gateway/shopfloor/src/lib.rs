//! The shopfloor gateway: configuration, runtime, sinks and the command line.
//!
//! Modules:
//! - [`config`]: the TOML configuration, validated with `FILE:LINE:COL` errors (the crate
//!   `shopfloor-config`, under its old name).
//! - [`demo`]: the whole demo hall in one process, with an embedded MQTT broker.
//! - [`status`]: the status board where drivers report machine states and sinks watch them.
//! - [`dispatch`]: the ring's consumer, fanning batches out to the sinks.
//! - [`health`]: what `/health` says, `ok` or `degraded` with each problem named.
//! - [`http`]: the read-only HTTP API, Server-Sent Events and `/metrics`.
//! - [`dashboard`]: the live dashboard page, embedded from `dashboards/web`.
//! - [`metrics`]: counters and histograms, in the Prometheus text format.
//! - [`kpi`]: the KPI engine, OEE and energy per part as samples of their machines.
//! - [`record`]: the recorder, MQTT messages of other gateways back into samples.
//! - [`sink`]: the sinks: MQTT, CSV files, the live store (and the line-protocol encoder).
//! - [`runtime`]: starting a gateway from a config and stopping it cleanly.
//! - [`reload`]: what a new config file changes, and the requests (SIGHUP, `--watch`) to read it.
//! - [`tasks`]: the gateway's tasks under names, a panic in one noticed at once.
//! - [`scan`]: a device's raw registers with candidate decodings.
//! - [`simulate`]: serving a config's simulated machines.
//! - [`cli`]: the `shopfloor` command line.

pub mod cli;
pub mod dashboard;
pub mod demo;
pub mod dispatch;
pub mod health;
pub mod http;
pub mod kpi;
pub mod metrics;
pub mod record;
pub mod reload;
pub mod runtime;
pub mod scan;
pub mod simulate;
pub mod sink;
pub mod status;
pub mod tasks;

/// The configuration, from its own crate: `shopfloor::config` as the binary, tests and benches
/// have always named it.
pub use shopfloor_config as config;
