//! Benchmarks of the shopfloor gateway; each file in this folder is one `cargo bench --bench NAME`:
//! - `ring.rs`: the hot-path ring buffer beside crossbeam's `ArrayQueue` and tokio's `mpsc`.
//! - `line_protocol.rs`: line-protocol encoding beside the influxdb2 crate's.
//! - `dashboard_load.rs`: `/api/stream` and the dashboard page with 2,500 tags at 10 Hz.
