//! The `shopfloor` command line: argument parsing and the `check` report.

use crate::config::{Config, ProtocolConfig};
use clap::{Parser, Subcommand};
use shopfloor_modbus::driver::plan_for;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Shop-floor data gateway: Modbus TCP and OPC UA machines to MQTT.
#[derive(Debug, Parser)]
#[command(name = "shopfloor", version, about)]
pub struct Cli {
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole demo hall on this machine: simulated machines, the gateway and an embedded
    /// MQTT broker.
    Demo {
        /// Port of the embedded MQTT broker on 127.0.0.1.
        #[arg(long, default_value_t = 1883)]
        mqtt_port: u16,
        /// Seed of the simulated machines.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Machine seconds per real second.
        #[arg(long, default_value_t = 10.0, value_parser = parse_speedup)]
        speedup: f64,
        /// Address of the dashboard and HTTP API.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        http: std::net::SocketAddr,
        /// Also write to this time-series store over the InfluxDB v2 write API (org iqblvd,
        /// bucket fieldlab; the token from INFLUX_TOKEN), e.g. http://127.0.0.1:8428 for
        /// VictoriaMetrics.
        #[arg(long, value_name = "URL", value_parser = parse_store_url)]
        influx: Option<crate::config::Url>,
    },
    /// Run the gateway from a config file (read again on SIGHUP).
    Run {
        /// The config file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Read the file again whenever it has changed and then stayed unchanged for 500 ms.
        #[arg(long)]
        watch: bool,
    },
    /// Serve only the simulated machines of a config (those with a `simulator` key), on the
    /// config's addresses, for trying a tool against them.
    Simulate {
        /// The config file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Seed of the simulated machines: the same seed, the same machines.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Machine seconds per real second (60 makes a minute of production pass in a second).
        #[arg(long, default_value_t = 1.0, value_parser = parse_speedup)]
        speedup: f64,
    },
    /// A Modbus device's raw registers with their candidate decodings (u16, i16, f32 in each
    /// order, text), for finding a machine's values. Reads only.
    Scan {
        /// The device: modbus-tcp://HOST:PORT, modbus-rtu-tcp://HOST:PORT or
        /// modbus-rtu:///dev/ttyUSB0?baud=19200&parity=even&stop_bits=1.
        target: String,
        /// Unit id.
        #[arg(long, default_value_t = 1)]
        unit: u8,
        /// List the unit ids of A..=B that answer on the bus, instead of reading registers.
        #[arg(long, value_name = "A..=B")]
        units: Option<String>,
        /// holding, input, coil or discrete.
        #[arg(long, default_value = "holding")]
        area: String,
        /// Addresses: A..B (B excluded) or A..=B.
        #[arg(long, default_value = "0..100")]
        range: String,
        /// Time to wait for each answer, in milliseconds (default 1000, with --units 200).
        #[arg(long)]
        timeout_ms: Option<u64>,
    },
    /// An OPC UA server's address space as a tree: node id, browse name, data type, current
    /// value and unit. `--toml` prints ready `[[machine.tag]]` entries instead. Reads only.
    Browse {
        /// The server: opc.tcp://HOST:PORT[/PATH].
        endpoint: String,
        /// Levels below the root to walk.
        #[arg(long, default_value_t = 6)]
        depth: usize,
        /// Start here instead of Objects (ns=2;s=..., nsu=URI;s=...).
        #[arg(long, value_name = "NODE")]
        root: Option<String>,
        /// Print `[[machine.tag]]` entries for the variables found.
        #[arg(long)]
        toml: bool,
        /// Time to wait for each answer, in milliseconds.
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
    },
    /// Validate a config file: exit 0 when valid, 2 when not.
    Check {
        /// The config file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Print, per Modbus machine, the read requests of one poll cycle.
        #[arg(long)]
        plan: bool,
    },
}

fn parse_speedup(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x <= 10_000.0 => Ok(x),
        _ => Err(format!("{s:?} is not a speed-up in (0, 10000]")),
    }
}

/// The summary `check` prints for a valid config, and with `plan` the read plan.
pub fn check_report(config: &Config, plan: bool) -> String {
    let tags: usize = config.machines.iter().map(|m| m.tags.len()).sum();
    let mut out = format!(
        "{}: ok ({} machine{}, {} tag{})\n",
        config.path.display(),
        config.machines.len(),
        if config.machines.len() == 1 { "" } else { "s" },
        tags,
        if tags == 1 { "" } else { "s" },
    );
    if !plan {
        return out;
    }
    let mut modbus = Vec::new();
    for (i, m) in config.machines.iter().enumerate() {
        let ProtocolConfig::Modbus(mb) = &m.protocol else {
            continue;
        };
        let Some(machine) = config.modbus_machine(i) else {
            continue;
        };
        let requests = plan_for(&machine);
        modbus.push(machine);
        let _ = writeln!(
            out,
            "\n{} ({} {}, unit {}): {} request{} every {:?}",
            m.id,
            mb.link.protocol(),
            mb.link.bus(),
            mb.unit_id,
            requests.len(),
            if requests.len() == 1 { "" } else { "s" },
            mb.poll_interval,
        );
        for r in &requests {
            let names: Vec<&str> = r
                .slots
                .iter()
                .filter_map(|s| m.tags.get(s.tag).map(|t| t.name.as_str()))
                .collect();
            let _ = writeln!(out, "  {r}: {}", names.join(", "));
        }
    }
    for bus in shopfloor_modbus::bus::buses(modbus) {
        bus_report(&mut out, &bus);
    }
    out
}

/// A serial bus's machines and how busy their polls keep its wire.
fn bus_report(out: &mut String, bus: &shopfloor_modbus::bus::Bus) {
    let Some(load) = shopfloor_modbus::bus::wire_load(bus) else {
        return;
    };
    let names: Vec<&str> = bus.machines.iter().map(|m| m.name.as_str()).collect();
    let baud = bus.link.timing().map_or(0, |t| t.baud);
    let percent = load.share * 100.0;
    let _ = writeln!(
        out,
        "\nbus {} at {baud} baud: {} ({} machine{}); one round of polls takes {:.1} ms of wire \
         time, {percent:.0} % of the line at their poll intervals",
        bus.link.bus(),
        names.join(", "),
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        load.round.as_secs_f64() * 1000.0,
    );
    if load.share > 1.0 {
        let _ = writeln!(
            out,
            "warning: bus {} is {percent:.0} % busy: its machines cannot keep their poll_interval \
             (raise the intervals, read fewer registers or raise the baud rate)",
            bus.link.bus(),
        );
    }
}

fn parse_store_url(text: &str) -> Result<crate::config::Url, String> {
    crate::config::Url::parse(text, &[("http", 80), ("https", 443)])
}
