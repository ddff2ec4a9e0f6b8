//! The MQTT 3.1.1 client the gateway's own publishing is built on: what measured well (a loop
//! turn's messages in one write) with no runtime of its own; the sink drives it.
//!
//! Modules:
//! - [`wire`]: the packets written and read (pure);
//! - [`connection`]: one TCP or TLS connection, CONNECT to CONNACK, whole writes;
//! - [`link`]: the connection over time (reconnects with backoff, keep-alive, write buffer),
//!   reporting its ups and downs to a [`link::LinkHealth`];
//! - [`outbox`]: every message until the broker acknowledged it (pure protocol state);
//! - [`tls`]: rustls setup for `mqtts://`, for every part that speaks MQTT (the recorder and
//!   the Sparkplug node as well);
//! - [`session`]: rumqttc's connection settings for the parts that subscribe (the recorder,
//!   the Sparkplug node), from the same TLS and credentials.

pub mod connection;
pub mod link;
pub mod outbox;
pub mod session;
pub mod tls;
pub mod wire;
