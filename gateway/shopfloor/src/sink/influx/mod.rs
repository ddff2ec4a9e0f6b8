//! The InfluxDB v2 write API sink (InfluxDB 2.x/3.x, VictoriaMetrics).
//!
//! - [`line`]: the line-protocol encoding of samples, pure and tested.
//!
//! The writer (batching, gzip, retries, spool) is not built yet; `[influx]` is parsed and
//! validated, and `run` says that it ignores it.

pub mod line;
