//! Modbus TCP machines for the shopfloor gateway.
//!
//! Modules:
//! - [`register`]: what a tag is on a Modbus device: area, address, data type, register order,
//!   bit, string length, scale and offset.
//! - [`decode`]: registers and bits to a [`shopfloor_core::Value`]; pure, no I/O.
//! - [`encode`]: the inverse, for simulators and round-trip tests; pure, no I/O.
//! - [`plan`]: merges a machine's tags into as few read requests as the protocol allows.
//! - [`driver`]: the polling task of one machine: connect, read the plan under a timeout, turn
//!   replies into samples, publish bad quality and reconnect with backoff on failure.
//!
//! Nothing in this crate writes to a machine.

pub mod decode;
pub mod driver;
pub mod encode;
pub mod plan;
pub mod register;

pub use register::{Area, DataType, TagSpec, WordOrder};
