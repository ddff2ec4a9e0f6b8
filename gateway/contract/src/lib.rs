//! The parts of shopfloor's wire contract (INTERFACE.md) that more than one side speaks, with
//! no I/O: the gateway encodes them, the recorder decodes them, the tests and fuzzers drive
//! them with bytes.
//!
//! Modules:
//! - [`json`]: MQTT topics and the JSON payloads of both layouts and of statuses, written per
//!   sample by hand; [`json::parse`] reads them back (the recorder), names checked.
//! - [`line`]: samples to InfluxDB line protocol, as the time-series schema says.
//! - [`sparkplug`]: Sparkplug B 3.0: the payload messages of the specification's
//!   `sparkplug_b.proto`, topics, and the edge node's session rules (births, deaths, `seq`,
//!   `bdSeq`, aliases, report by exception) as a pure state machine.

pub mod json;
pub mod line;
pub mod sparkplug;
