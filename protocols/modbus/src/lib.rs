//! Modbus TCP and RTU machines for the shopfloor gateway.
//!
//! Modules:
//! - [`register`]: what a tag is on a Modbus device: area, address, data type, register order,
//!   bit, string length, scale and offset.
//! - [`decode`]: registers and bits to a [`shopfloor_core::Value`]; pure, no I/O.
//! - [`encode`]: the inverse, for simulators and round-trip tests; pure, no I/O.
//! - [`plan`]: merges a machine's tags into as few read requests as the protocol allows.
//! - [`rtu`]: RTU frames (unit, PDU, CRC) and line timing; pure, no I/O.
//! - [`settings`]: the config words of area, type, order and parity, and every default and
//!   range of a machine's keys, named once.
//! - [`link`]: where a machine is reached (TCP, RTU over TCP, serial line); one link, one bus.
//! - [`driver`]: a machine's settings, read errors, and a Modbus TCP read under a timeout.
//! - [`rtu_line`]: an RTU connection: silence before each request, drained line, whole-frame
//!   replies.
//! - [`serial`]: opening a serial line (and one that refuses its parity).
//! - [`connection`]: a bus's one connection, TCP or RTU.
//! - [`poller`]: one machine's poll cycle on a bus connection, its samples and status.
//! - [`schedule`]: which machine of a bus polls next; pure.
//! - [`bus`]: the task of one bus: the connection, its machines in turn, backoff of dead units.
//!
//! Nothing in this crate writes to a machine.

pub mod bus;
pub mod connection;
pub mod decode;
pub mod driver;
pub mod encode;
pub mod link;
pub mod plan;
pub(crate) mod poller;
pub mod register;
pub mod rtu;
pub mod rtu_line;
pub mod schedule;
pub mod serial;
pub mod settings;

pub use register::{Area, DataType, TagSpec, WordOrder};
