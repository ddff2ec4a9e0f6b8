//! `shopfloor demo`: the whole demo hall on one machine, with no other software: the simulated
//! machines of `config/demo-hall.toml` (embedded in the binary), an embedded MQTT broker
//! (rumqttd) and the gateway reading the machines and publishing to it, as shopfloor JSON and
//! as a Sparkplug B edge node.

use crate::config::{Config, ConfigError, ConfigErrors, EnvRef, InfluxConfig, ProtocolConfig, Url};
use crate::runtime::{Gateway, StartError};
use crate::simulate::{Ports, SimulateError, Simulation};
use shopfloor_modbus::link::Link;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use thiserror::Error;

/// The demo hall's configuration, as shipped in `config/demo-hall.toml`.
pub const DEMO_HALL: &str = include_str!("../../../config/demo-hall.toml");

/// What `demo` is asked to do.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Port of the embedded broker on 127.0.0.1.
    pub mqtt_port: u16,
    /// Seed of the simulated machines.
    pub seed: u64,
    /// Machine seconds per real second.
    pub speedup: f64,
    /// Where the HTTP API listens.
    pub http: SocketAddr,
    /// A time-series store to write to as well (InfluxDB v2 write API), with the token from
    /// `INFLUX_TOKEN` when that is set.
    pub influx: Option<Url>,
}

/// The environment variable `demo --influx` takes the store's token from.
pub const INFLUX_TOKEN_ENV: &str = "INFLUX_TOKEN";

/// `[influx]` for `demo --influx URL`: org `iqblvd`, bucket `fieldlab`, the defaults otherwise.
fn demo_influx(url: Url) -> InfluxConfig {
    let token_env = std::env::var_os(INFLUX_TOKEN_ENV).map(|_| EnvRef {
        var: INFLUX_TOKEN_ENV.into(),
        at: ConfigError {
            file: "--influx".into(),
            line: 1,
            col: 1,
            message: format!("{INFLUX_TOKEN_ENV} is empty"),
        },
    });
    InfluxConfig {
        url,
        org: "iqblvd".into(),
        bucket: "fieldlab".into(),
        token_env,
        measurement: "shopfloor".into(),
        batch_size: 5000,
        flush_interval: std::time::Duration::from_secs(1),
        timeout: std::time::Duration::from_secs(10),
        when_full: None,
    }
}

/// The demo could not start.
#[derive(Debug, Error)]
pub enum DemoError {
    /// The embedded config does not validate (a build problem, never a user's).
    #[error("the embedded demo-hall config is invalid:\n{0}")]
    Config(#[from] ConfigErrors),
    /// The broker port is taken.
    #[error(
        "127.0.0.1:{port} is in use (another MQTT broker?): choose a free port with --mqtt-port, \
         e.g. --mqtt-port 1884"
    )]
    BrokerPortInUse {
        /// The port.
        port: u16,
    },
    /// The HTTP port is taken.
    #[error("{addr} is in use: choose another address with --http, e.g. --http 127.0.0.1:8081")]
    HttpPortInUse {
        /// The address.
        addr: SocketAddr,
    },
    /// The broker could not start.
    #[error("embedded MQTT broker: {0}")]
    Broker(String),
    /// The simulated machines could not start.
    #[error(transparent)]
    Simulate(#[from] SimulateError),
    /// The gateway could not start.
    #[error(transparent)]
    Gateway(#[from] StartError),
}

/// A running demo hall.
#[derive(Debug)]
pub struct Demo {
    /// The configuration the gateway runs, with the real machine addresses.
    pub config: Config,
    /// The simulated machines.
    pub simulation: Simulation,
    /// The gateway.
    pub gateway: Gateway,
    /// The broker's address.
    pub broker: SocketAddr,
}

fn broker_config(addr: SocketAddr) -> rumqttd::Config {
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: 1 << 20,
        max_inflight_count: 1000,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "demo".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    rumqttd::Config {
        router: rumqttd::RouterConfig {
            max_connections: 1000,
            max_outgoing_packet_count: 1000,
            max_segment_size: 16 << 20,
            max_segment_count: 10,
            ..Default::default()
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..Default::default()
    }
}

/// Starts the embedded broker on `addr` in its own threads; it ends with the process.
fn start_broker(addr: SocketAddr) -> Result<(), DemoError> {
    // rumqttd reports a failed bind only in its log: find out first, with a message that
    // names the flag to change.
    drop(TcpListener::bind(addr).map_err(|_| DemoError::BrokerPortInUse { port: addr.port() })?);
    let mut broker = rumqttd::Broker::new(broker_config(addr));
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(|e| DemoError::Broker(e.to_string()))?;
    // Ready when it answers an MQTT CONNECT (a bare TCP probe would log an error there).
    for _ in 0..200 {
        if mqtt_ping(addr) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err(DemoError::Broker(format!("not answering on {addr}")))
}

/// CONNECT, CONNACK, DISCONNECT: true when an MQTT 3.1.1 broker accepted us at `addr`.
fn mqtt_ping(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    const CONNECT: [u8; 19] = [
        0x10, 17, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 10, 0, 5, b'p', b'r', b'o', b'b', b'e',
    ];
    let timeout = std::time::Duration::from_millis(500);
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let mut connack = [0u8; 4];
    let ok = s.write_all(&CONNECT).is_ok()
        && s.read_exact(&mut connack).is_ok()
        && connack == [0x20, 2, 0, 0];
    let _ = s.write_all(&[0xE0, 0]);
    ok
}

impl Demo {
    /// Starts broker, simulated machines and gateway.
    pub async fn start(options: &DemoOptions) -> Result<Demo, DemoError> {
        let mut config = Config::parse(Path::new("demo-hall.toml"), DEMO_HALL)?;
        // Checked before anything starts, with a message that names the flag.
        drop(
            TcpListener::bind(options.http)
                .map_err(|_| DemoError::HttpPortInUse { addr: options.http })?,
        );
        config.gateway.http = Some(options.http);
        config.influx = options.influx.clone().map(demo_influx);
        let broker: SocketAddr = SocketAddr::from(([127, 0, 0, 1], options.mqtt_port));
        start_broker(broker)?;
        let embedded = Url {
            scheme: "mqtt".into(),
            host: "127.0.0.1".into(),
            port: options.mqtt_port,
            path: String::new(),
        };
        if let Some(mqtt) = config.mqtt.as_mut() {
            mqtt.url = embedded.clone();
        }
        if let Some(sparkplug) = config.sparkplug.as_mut() {
            sparkplug.urls = vec![embedded];
        }
        // The simulated machines take free ports: the demo must run beside anything.
        // Certificates of the simulated OPC UA machines and the gateway, kept between runs so
        // the demo does not make new keys every time, and out of the working directory.
        config.gateway.pki_dir = std::env::temp_dir().join("shopfloor-demo-pki");
        // The machines' time runs `speedup` times faster than the gateway's clock, which the
        // KPIs are measured by: an ideal cycle in machine seconds is that much shorter here.
        for kpi in config.machines.iter_mut().filter_map(|m| m.kpi.as_mut()) {
            kpi.ideal_cycle = kpi.ideal_cycle.div_f64(options.speedup);
        }
        let simulation =
            Simulation::start(&config, options.seed, options.speedup, Ports::Free).await?;
        for started in &simulation.machines {
            if let Some(m) = config.machines.iter_mut().find(|m| m.id == started.id) {
                match &mut m.protocol {
                    ProtocolConfig::Modbus(mb) => match &mut mb.link {
                        Link::Tcp(a) | Link::RtuTcp(a) => a.clone_from(&started.at),
                        Link::Rtu(_) => {}
                    },
                    ProtocolConfig::Opcua(ua) => ua.endpoint = started.url(),
                }
            }
        }
        let gateway = Gateway::start(&config)?;
        Ok(Demo {
            config,
            simulation,
            gateway,
            broker,
        })
    }

    /// What runs where, for the console.
    pub fn banner(&self) -> String {
        let prefix = self
            .config
            .mqtt
            .as_ref()
            .map_or("", |m| m.topic_prefix.as_str());
        let mut out = String::from("shopfloor demo: the IQ BLVD demo hall on this machine\n\n");
        for m in &self.simulation.machines {
            out.push_str(&format!(
                "  machine   {:<10} {:<20} {}\n",
                m.id,
                m.kind,
                m.url()
            ));
        }
        out.push_str(&format!(
            "  broker    mqtt://{} (embedded)\n  watch     mosquitto_sub -h {} -p {} -t '{prefix}/#' -v\n",
            self.broker,
            self.broker.ip(),
            self.broker.port()
        ));
        if let Some(spb) = &self.config.sparkplug {
            out.push_str(&format!(
                "  sparkplug spBv1.0/{}/+/{}/# (Sparkplug B edge node, protobuf payloads)\n",
                spb.group_id, spb.edge_node_id
            ));
        }
        if let Some(influx) = &self.config.influx {
            out.push_str(&format!(
                "  store     {} (org {}, bucket {}, measurement {})\n",
                influx.url, influx.org, influx.bucket, influx.measurement
            ));
        }
        if let Some(http) = self.gateway.http {
            out.push_str(&format!(
                "  dashboard http://{http}/\n  api       http://{http}/api/machines   live stream: http://{http}/api/stream   \
                 metrics: http://{http}/metrics\n"
            ));
        }
        out.push_str("\nCtrl-C stops everything.\n");
        out
    }

    /// Waits until a part of the gateway panicked; see [`Gateway::failed`].
    pub async fn failed(&mut self) -> crate::tasks::TaskPanic {
        self.gateway.failed().await
    }

    /// Stops the gateway (flushing to the broker), then the machines.
    pub async fn stop(self) {
        self.gateway.stop().await;
        self.simulation.stop().await;
    }
}
