//! OPC UA machines for the shopfloor gateway (client side of async-opcua).
//!
//! Modules:
//! - [`node`]: node ids as configs write them (`ns=`, `nsu=`), resolved per server. Pure.
//! - [`convert`]: OPC UA variants, status codes and data values into samples. Pure.
//! - [`settings`]: the config words of security policy, security mode and mode, and the
//!   defaults of a machine's keys, named once.
//! - [`security`]: the gateway's own certificate.
//! - [`driver`]: one task per machine: session, subscription or poll, rebuilt after any loss.
//! - [`exception`]: report by exception: deadband filters for the server, heartbeats here.
//! - [`publish`]: subscriptions and their Publish loop, without per-item state.
//! - [`browse`]: the address space as a tree, and ready `[[machine.tag]]` entries.

pub mod browse;
pub mod convert;
pub mod driver;
pub mod exception;
pub mod node;
pub mod publish;
pub mod security;
pub mod settings;

pub use driver::{Identity, Mode, OpcuaError, OpcuaMachine, run};
pub use node::{NodeError, NodeRef};
