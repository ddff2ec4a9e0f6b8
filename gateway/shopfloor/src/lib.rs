//! The shopfloor gateway.
pub mod config;
