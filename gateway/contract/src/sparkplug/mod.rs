//! Sparkplug B 3.0 (Eclipse Sparkplug specification): the gateway is one edge node, each
//! machine one device.
//!
//! - [`proto`]: the payload messages of `sparkplug_b.proto`, derived with prost;
//! - [`datatype`]: metric types and how a value travels in each;
//! - [`topic`]: `spBv1.0/…` topics, written and read;
//! - [`host`]: a host application's view of the edge nodes it hears (the recorder's);
//! - [`node`]: the edge node's session rules as a pure state machine;
//! - [`state`]: the primary host's STATE messages and the rule for following them.

pub mod datatype;
pub mod host;
pub mod node;
pub mod proto;
pub mod state;
pub mod topic;

#[cfg(test)]
mod host_tests;
#[cfg(test)]
mod tests;

pub use datatype::DataType;
pub use node::{DeviceSpec, MetricSpec, Node, NodeSpec, Outgoing};
pub use state::{HostState, PrimaryHost, parse_state, state_topic};
pub use topic::{MessageType, NAMESPACE, Topic};
