//! Benchmarks of the shopfloor gateway; each file in this folder is one `cargo bench --bench NAME`:
//! - `ring.rs`: the hot-path ring buffer beside crossbeam's `ArrayQueue` and tokio's `mpsc`.
//! - `line_protocol.rs`: line-protocol encoding beside the influxdb2 crate's.
//! - `dashboard_load.rs`: `/api/stream` and the dashboard page with 2,500 tags at 10 Hz.
//! - `end_to_end.rs`: devices → gateway → mosquitto → subscriber: rate, CPU, RSS, latency.
//! - `opcua_subscriptions.rs`: 10,000 OPC UA monitored items at 10 Hz through the gateway to
//!   MQTT: CPU per sample, RSS per item.
//! - `store_throughput.rs`: samples per second stored in VictoriaMetrics by a gateway and by a
//!   recorder.
//!
//! This library holds what the process-level benchmarks share: CPU time read from `/proc`, and
//! the simulated devices they poll; [`node_red`], the Node-RED peer of `end_to_end`; and
//! [`reload`], its job of machines added and removed by a reload every 10 s.

pub mod node_red;
pub mod reload;

use shopfloor_modbus::{Area, DataType, WordOrder};
use shopfloor_tests::device::{Behaviour, Device, Memory};
use std::time::{Duration, Instant};

/// True when run by `cargo bench` (which passes `--bench`); `cargo test --benches` runs the
/// process-level benchmarks too, and they must not take minutes there.
pub fn asked_to_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The runtime the devices of a benchmark serve on: one worker, so that they take at most one
/// of the machine's cores from the processes measured.
pub fn device_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
}

/// `n` Modbus TCP devices on free ports, each with holding registers `0..registers` holding
/// their own address as a u16.
pub fn u16_devices(rt: &tokio::runtime::Runtime, n: usize, registers: usize) -> Vec<Device> {
    let mut memory = Memory::default();
    for r in 0..registers {
        memory.put(
            Area::Holding,
            r as u16,
            DataType::U16,
            WordOrder::ABCD,
            shopfloor_core::Value::U64(r as u64),
        );
    }
    (0..n)
        .map(|_| rt.block_on(Device::start(memory.clone(), Behaviour::Healthy, 0)))
        .collect()
}

/// CPU seconds (user + system) process `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

/// Process `pid`'s CPU over `span`, as a fraction of one core.
pub fn cpu_share(pid: u32, span: Duration) -> f64 {
    let (c0, t0) = (cpu_seconds(pid), Instant::now());
    std::thread::sleep(span);
    (cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64()
}

/// Resident memory of process `pid`, in bytes (0 when it is gone).
pub fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
