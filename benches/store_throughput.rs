//! `cargo bench --bench store_throughput`: samples per second stored in a real VictoriaMetrics,
//! by one gateway writing `[influx]` itself, and by one recorder taking what a gateway publishes
//! on a real mosquitto (layout `machine`, QoS 1). Stored means counted by the store
//! (`vm_rows_inserted_total{type="influx"}`: one row per field).
//!
//! Load: 20 Modbus TCP devices (in this process) × 100 registers, polled every 10 ms: 200,000
//! samples/s offered. Everything shares this machine's two cores: the devices, the gateway, the
//! broker, the recorder and the store; the figures are what the whole chain sustains here.

use shopfloor_benches::{asked_to_run, cpu_share, device_runtime, u16_devices};
use shopfloor_tests::device::Device;
use shopfloor_tests::gateway::GatewayProcess;
use shopfloor_tests::http::get;
use shopfloor_tests::mosquitto::Mosquitto;
use shopfloor_tests::victoria::Victoria;
use std::time::{Duration, Instant};

const DEVICES: usize = 20;
const TAGS: usize = 100;
const MEASURE: Duration = Duration::from_secs(15);

fn machines(devices: &[Device]) -> String {
    let mut c = String::new();
    for (i, d) in devices.iter().enumerate() {
        c.push_str(&format!(
            "\n[[machine]]\nid = \"m{i:02}\"\nkind = \"bench\"\nprotocol = \"modbus-tcp\"\n\
             address = \"{}\"\npoll_interval = \"10ms\"\n",
            d.addr
        ));
        for t in 0..TAGS {
            c.push_str(&format!(
                "  [[machine.tag]]\n  name = \"t{t:03}\"\n  area = \"holding\"\n  address = {t}\n  type = \"u16\"\n"
            ));
        }
    }
    c
}

/// Rows the store has taken over the line protocol so far.
fn rows(store: &Victoria) -> f64 {
    get(store.addr, "/metrics", None)
        .body
        .lines()
        .filter(|l| l.starts_with("vm_rows_inserted_total{type=\"influx\"}"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Stored rows per second and the process's CPU share over [`MEASURE`].
fn measure(store: &Victoria, pid: u32) -> (f64, f64) {
    std::thread::sleep(Duration::from_secs(5));
    let (r0, t0) = (rows(store), Instant::now());
    let cpu = cpu_share(pid, MEASURE);
    let rate = (rows(store) - r0) / t0.elapsed().as_secs_f64();
    (rate, cpu)
}

fn report(what: &str, rate: f64, cpu: f64) {
    println!(
        "  {what:<32} {rate:>9.0} samples/s stored, {:5.1} % of a core, {:.2} µs CPU per sample",
        cpu * 100.0,
        cpu * 1e6 / rate.max(1.0)
    );
}

fn main() {
    if !asked_to_run() {
        return;
    }
    let rt = device_runtime();
    let devices = u16_devices(&rt, DEVICES, TAGS);
    println!(
        "store_throughput: {DEVICES} devices × {TAGS} tags every 10 ms = {} samples/s offered",
        DEVICES * TAGS * 100
    );
    let quiet = [("RUST_LOG", "warn")];

    let store = Victoria::start();
    let influx = format!(
        "[influx]\nurl = \"{}\"\norg = \"iqblvd\"\nbucket = \"fieldlab\"\n",
        store.url()
    );
    let direct = format!(
        "[gateway]\nname = \"direct\"\n{influx}{}",
        machines(&devices)
    );
    let gw = GatewayProcess::start_with_env(&direct, &quiet);
    let pid = gw.pid().unwrap_or_else(|| panic!("gateway gone"));
    let (rate, cpu) = measure(&store, pid);
    report("gateway → store", rate, cpu);
    drop(gw);

    let broker = Mosquitto::start();
    let recorder_config = format!(
        "[gateway]\nname = \"rec\"\n[record]\nurl = \"{}\"\ntopics = [\"bench/#\"]\n{influx}",
        broker.url()
    );
    let rec = GatewayProcess::start_with_env(&recorder_config, &quiet);
    let publisher = format!(
        "[gateway]\nname = \"pub\"\n[mqtt]\nurl = \"{}\"\ntopic_prefix = \"bench\"\nlayout = \"machine\"\n{}",
        broker.url(),
        machines(&devices)
    );
    let gw = GatewayProcess::start_with_env(&publisher, &quiet);
    let pid = rec.pid().unwrap_or_else(|| panic!("recorder gone"));
    let gw_pid = gw.pid().unwrap_or_else(|| panic!("gateway gone"));
    let (c0, t0) = (shopfloor_benches::cpu_seconds(gw_pid), Instant::now());
    let (rate, cpu) = measure(&store, pid);
    let gw_cpu = (shopfloor_benches::cpu_seconds(gw_pid) - c0) / t0.elapsed().as_secs_f64();
    report("recorder (gateway → mosquitto →)", rate, cpu);
    println!(
        "  {:<32} publishing gateway: {:5.1} % of a core",
        "",
        gw_cpu * 100.0
    );
    drop((gw, rec, devices));
}
