//! The tokio-free core of the shopfloor gateway: what a reading is and how it travels.
//!
//! Modules:
//! - [`sample`]: the [`Sample`] every driver produces and every sink consumes: value, quality,
//!   timestamp, per-tag sequence number, and interned machine and tag ids.
//! - [`emit`]: the [`Emitter`], the one place where a reading becomes a sample (`seq`, bad
//!   once, status changes in their place among the samples).
//! - [`catalog`]: the interned names behind those ids (machines, their kinds and tags), fixed
//!   when the configuration loads, or grown by a recorder as it learns them.
//! - [`ring`]: the bounded multi-producer, single-consumer ring buffer between drivers and the
//!   dispatcher, with batch push, batch drain and a counted [`ring::WhenFull`] policy.
//! - [`status`]: the connection state a driver reports for its machine, and the tracker that
//!   passes on (and logs) only its changes.
//! - [`backoff`]: exponential backoff with jitter for every reconnect loop.
//! - [`phase`]: each machine's place in its poll interval, spread across the hall.
//! - [`time`]: wall-clock milliseconds, the one timestamp unit of the model.
//! - [`word`]: the [`word::Word`] trait of settings a config file names by a word.

pub mod backoff;
pub mod catalog;
pub mod emit;
pub mod phase;
pub mod ring;
pub mod sample;
pub mod status;
pub mod time;
pub mod word;

pub use catalog::{Catalog, CatalogError, MachineInfo, SharedCatalog, TagInfo};
pub use emit::Emitter;
pub use sample::{MachineId, Quality, Sample, TagId, Text, Value, ValueRef};
pub use status::{MachineState, MachineStatus, StatusReporter, StatusTracker};
