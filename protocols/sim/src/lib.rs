//! The simulated demo hall: machines that behave like the real ones when those are switched off.
//!
//! Every model is a deterministic state machine: given a seed and the same sequence of time
//! steps it produces the same values, so tests are reproducible. Time is passed in, never read,
//! and a speed-up factor makes minutes of production pass in seconds for a demo.
//!
//! Modules:
//! - [`model`]: the [`model::Model`] trait every simulated machine implements, and helpers
//!   (first-order lag, bounded random walk).
//! - [`cnc`]: a CNC machining centre.
//! - [`faults`]: outages, slow answers, exceptions and dropped connections on purpose.
//! - [`imm`]: an injection-moulding machine.
//! - [`energy`]: a three-phase energy meter.
//! - [`profile`]: each model's register map, as ready `[[machine.tag]]` entries.
//! - [`rtu_server`]: serves models as units of one Modbus RTU line (over TCP or a serial
//!   device), each under its own unit id.
//! - [`server`]: serves a model over Modbus TCP (tokio-modbus), ticking it in real time.
//! - [`ua_profile`]: the CNC's and moulding machine's OPC UA node lists (umati / EUROMAP 77
//!   style folders), as ready `[[machine.tag]]` entries.
//! - [`ua_server`]: serves a model over OPC UA (async-opcua), with secure endpoints.

pub mod cnc;
pub mod energy;
pub mod faults;
pub mod imm;
pub mod model;
pub mod profile;
pub mod rtu_server;
pub mod server;
pub mod ua_profile;
pub mod ua_server;

pub use faults::Faults;
pub use model::{Model, SimKind};
