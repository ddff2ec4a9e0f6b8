//! Raw configuration to [`Config`]: every rule of the contract, every problem reported with its
//! position, all of them at once rather than one per run.

use super::duration::parse_duration;
use super::error::{ConfigErrors, Reporter};
use super::raw::{RawConfig, RawMachine, S};
use super::*;
use shopfloor_core::word::Word;
use shopfloor_opcua::settings::{self as ua_keys, Policy, SecurityMode};
use std::collections::HashSet;
use std::ops::Range;

mod kpi;
mod modbus;
mod sparkplug;

const MQTT_SCHEMES: &[(&str, u16)] = &[("mqtt", 1883), ("mqtts", 8883)];
const HTTP_SCHEMES: &[(&str, u16)] = &[("http", 80), ("https", 443)];
const MAX_RING: i64 = 1 << 26;

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn is_tag_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn is_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Rewrites the TOML parser's messages where a hint helps.
fn parse_message(message: &str) -> String {
    let m = message.trim();
    for secret in ["password", "token", "secret"] {
        if m.contains(&format!("unknown field `{secret}`")) {
            return format!(
                "{m}\nsecrets never live in the file: put it in an environment variable and \
                 name that variable with `{secret}_env`"
            );
        }
    }
    m.to_owned()
}

struct V<'a> {
    r: Reporter<'a>,
    dir: PathBuf,
}

impl<'a> V<'a> {
    fn err(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.r.push(span, message);
    }

    fn required<T: Clone>(
        &mut self,
        v: &Option<S<T>>,
        table: Range<usize>,
        what: &str,
    ) -> Option<S<T>> {
        if v.is_none() {
            self.err(table, format!("missing key `{what}`"));
        }
        v.clone()
    }

    fn env(&mut self, v: &Option<S<String>>) -> Option<EnvRef> {
        let v = v.as_ref()?;
        if !is_env_name(v.get_ref()) {
            self.err(
                v.span(),
                format!(
                    "{:?} is not an environment variable name: a `*_env` key names the \
                     variable that holds the secret, not the secret itself",
                    v.get_ref()
                ),
            );
            return None;
        }
        Some(EnvRef {
            var: v.get_ref().clone(),
            at: self.r.at(v.span(), ""),
        })
    }

    fn duration(&mut self, v: &Option<S<String>>, default: Duration) -> Duration {
        match v {
            None => default,
            Some(d) => match parse_duration(d.get_ref()) {
                Ok(d) => d,
                Err(e) => {
                    self.err(d.span(), e);
                    default
                }
            },
        }
    }

    fn url(&mut self, v: &S<String>, schemes: &[(&str, u16)]) -> Option<Url> {
        match Url::parse(v.get_ref(), schemes) {
            Ok(u) => Some(u),
            Err(e) => {
                self.err(v.span(), e);
                None
            }
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    fn existing_file(&mut self, v: &Option<S<String>>) -> Option<PathBuf> {
        let v = v.as_ref()?;
        let p = self.path(v.get_ref());
        if !p.is_file() {
            self.err(v.span(), format!("file {} does not exist", p.display()));
        }
        Some(p)
    }

    fn not_allowed<T>(&mut self, v: &Option<S<T>>, key: &str, why: &str) {
        if let Some(v) = v {
            self.err(v.span(), format!("`{key}` {why}"));
        }
    }
}

pub(super) fn validate(path: &Path, source: &str) -> Result<Config, ConfigErrors> {
    let r = Reporter::new(path, source);
    let raw: RawConfig = match toml::from_str(source) {
        Ok(raw) => raw,
        Err(e) => {
            let at = r.at(e.span().unwrap_or(0..0), parse_message(e.message()));
            return Err(ConfigErrors(vec![at]));
        }
    };
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut v = V { r, dir };

    let gateway = gateway(&mut v, &raw);
    let buffer = buffer(&mut v, &raw);
    let mqtt = raw
        .mqtt
        .as_ref()
        .and_then(|m| mqtt(&mut v, m, &gateway.name));
    let sparkplug = raw
        .sparkplug
        .as_ref()
        .and_then(|s| sparkplug::section(&mut v, s, &gateway.name));
    let influx = raw.influx.as_ref().and_then(|i| influx(&mut v, i));
    let record = raw.record.as_ref().and_then(|x| record(&mut v, x));
    let csv = raw.csv.as_ref().and_then(|c| {
        let dir = v.required(&c.get_ref().dir, c.span(), "dir")?;
        Some(CsvConfig {
            dir: v.path(dir.get_ref()),
            when_full: when_full(&mut v, &c.get_ref().when_full),
        })
    });

    let mut machines = Vec::new();
    let mut link_spans = Vec::new();
    let mut ids = HashSet::new();
    let mut energy = Vec::new();
    for m in &raw.machine {
        if let Some((mc, meter)) = machine(&mut v, m) {
            let raw = m.get_ref();
            let at = raw.address.as_ref().or(raw.port.as_ref());
            link_spans.push(at.map_or(m.span(), |a| a.span()));
            if !ids.insert(mc.id.clone()) {
                let span = m.get_ref().id.as_ref().map_or(m.span(), |s| s.span());
                v.err(span, format!("machine id {:?} is used twice", mc.id));
            }
            if let Some(meter) = meter {
                energy.push((machines.len(), meter));
            }
            machines.push(mc);
        }
    }
    let on_bus: Vec<modbus::OnBus<'_>> = machines
        .iter()
        .zip(link_spans)
        .filter_map(|(m, span)| match &m.protocol {
            ProtocolConfig::Modbus(mb) => Some(modbus::OnBus {
                span,
                id: &m.id,
                link: &mb.link,
                unit: mb.unit_id,
            }),
            ProtocolConfig::Opcua(_) => None,
        })
        .collect();
    modbus::bus_rules(&mut v, &on_bus);
    kpi::resolve_energy(&mut v, &mut machines, energy);
    let wanted = machines.iter().any(|m| m.kpi.is_some());
    let kpi = kpi::section(&mut v, raw.kpi.as_ref(), wanted);
    // A recorder stores what gateways publish; reading machines or publishing itself in the
    // same process would mix two roles (and publishing what it records can loop).
    if let Some(r) = &raw.record {
        if !raw.machine.is_empty() {
            v.err(
                r.span(),
                "[record] and [[machine]] do not go together: run the recorder as its own \
                 process, beside the gateways it records",
            );
        }
        if let Some(m) = &raw.mqtt {
            v.err(
                m.span(),
                "[mqtt] in a recorder would publish what it records: a recorder writes to \
                 [influx] or [csv]",
            );
        }
        if let Some(s) = &raw.sparkplug {
            v.err(
                s.span(),
                "[sparkplug] in a recorder would publish what it records: a recorder writes \
                 to [influx] or [csv]",
            );
        }
    }
    if raw.machine.is_empty() && raw.record.is_none() {
        v.err(
            0..0,
            "nothing to read: add a [[machine]] (or a [record] section to store what other \
             gateways publish)",
        );
    }
    if machines.len() > usize::from(u16::MAX) {
        v.err(0..0, "more than 65535 machines");
    }
    v.r.finish()?;
    Ok(Config {
        path: path.to_path_buf(),
        gateway,
        buffer,
        mqtt,
        sparkplug,
        influx,
        record,
        csv,
        kpi,
        machines,
    })
}

fn gateway(v: &mut V<'_>, raw: &RawConfig) -> GatewayConfig {
    let mut g = GatewayConfig {
        name: "shopfloor".into(),
        named: false,
        http: None,
        http_token_env: None,
        history: Duration::from_secs(600),
        pki_dir: v.path("pki"),
    };
    let Some(s) = &raw.gateway else { return g };
    let rg = s.get_ref();
    if let Some(n) = &rg.name {
        if is_id(n.get_ref()) {
            g.name = n.get_ref().clone();
            g.named = true;
        } else {
            v.err(
                n.span(),
                format!("gateway name {:?} must match [a-z0-9_-]+", n.get_ref()),
            );
        }
    }
    g.http_token_env = v.env(&rg.http_token_env);
    g.history = v.duration(&rg.history, g.history);
    if let Some(h) = &rg.http {
        match h.get_ref().parse::<SocketAddr>() {
            Ok(addr) => {
                if !addr.ip().is_loopback() && rg.http_token_env.is_none() {
                    v.err(
                        h.span(),
                        format!(
                            "http {addr} is reachable from other hosts: set http_token_env to \
                             the variable holding the bearer token, or bind 127.0.0.1"
                        ),
                    );
                }
                g.http = Some(addr);
            }
            Err(_) => v.err(
                h.span(),
                format!(
                    "http {:?} is not an address like 127.0.0.1:8080",
                    h.get_ref()
                ),
            ),
        }
    }
    if let Some(p) = &rg.pki_dir {
        g.pki_dir = v.path(p.get_ref());
    }
    g
}

/// The setting a word of `key` names, or an error at its span (and `None`).
fn word<T: Word>(v: &mut V<'_>, key: &str, value: &S<String>) -> Option<T> {
    let found = T::from_word(value.get_ref());
    if found.is_none() {
        v.err(
            value.span(),
            format!("{key} {:?}: use {}", value.get_ref(), T::choices()),
        );
    }
    found
}

/// The setting of an optional word key: its default when absent or wrong (wrong is reported).
fn word_or_default<T: Word + Default>(v: &mut V<'_>, value: &Option<S<String>>, key: &str) -> T {
    value
        .as_ref()
        .and_then(|w| word(v, key, w))
        .unwrap_or_default()
}

/// A `when_full` key: `drop_oldest` or `drop_newest`.
fn when_full(v: &mut V<'_>, key: &Option<S<String>>) -> Option<WhenFull> {
    key.as_ref().and_then(|w| word(v, "when_full", w))
}

fn buffer(v: &mut V<'_>, raw: &RawConfig) -> BufferConfig {
    let mut b = BufferConfig {
        capacity: 65536,
        when_full: WhenFull::DropOldest,
        spool_dir: None,
        spool_max_mb: 256,
        fsync_interval: Duration::from_secs(1),
    };
    let Some(s) = &raw.buffer else { return b };
    let rb = s.get_ref();
    if let Some(c) = &rb.capacity {
        if (1..=MAX_RING).contains(c.get_ref()) {
            b.capacity = *c.get_ref() as usize;
        } else {
            v.err(
                c.span(),
                format!("capacity must be in 1..={MAX_RING} samples"),
            );
        }
    }
    if let Some(w) = when_full(v, &rb.when_full) {
        b.when_full = w;
    }
    b.spool_dir = rb.spool_dir.as_ref().map(|d| v.path(d.get_ref()));
    if let Some(m) = &rb.spool_max_mb {
        if *m.get_ref() >= 1 {
            b.spool_max_mb = *m.get_ref() as u64;
        } else {
            v.err(m.span(), "spool_max_mb must be at least 1");
        }
    }
    b.fsync_interval = v.duration(&rb.fsync_interval, Duration::from_secs(1));
    b
}

fn topic_ok(t: &str) -> bool {
    !t.is_empty()
        && !t.starts_with('/')
        && !t.ends_with('/')
        && !t.contains("//")
        && !t.contains(['+', '#', '\0'])
}

fn mqtt(v: &mut V<'_>, s: &S<super::raw::RawMqtt>, gateway: &str) -> Option<MqttConfig> {
    let m = s.get_ref();
    let url_s = v.required(&m.url, s.span(), "url");
    let url = url_s.as_ref().and_then(|u| v.url(u, MQTT_SCHEMES));
    let topic_prefix = match &m.topic_prefix {
        Some(t) if topic_ok(t.get_ref()) => t.get_ref().clone(),
        Some(t) => {
            v.err(
                t.span(),
                "topic_prefix must be topic levels without wildcards (+ #), empty levels or \
                 leading or trailing /",
            );
            String::new()
        }
        None => format!("shopfloor/{gateway}"),
    };
    let qos = match &m.qos {
        None => 1,
        Some(q) if matches!(q.get_ref(), 0 | 1) => *q.get_ref() as u8,
        Some(q) => {
            v.err(q.span(), "qos must be 0 or 1");
            1
        }
    };
    let layout = match m.layout.as_ref().map(|l| (l.get_ref().as_str(), l.span())) {
        None | Some(("tag", _)) => Layout::Tag,
        Some(("machine", _)) => Layout::Machine,
        Some((other, span)) => {
            v.err(
                span,
                format!("layout {other:?}: use \"tag\" or \"machine\""),
            );
            Layout::Tag
        }
    };
    let inflight = match &m.inflight {
        None => shopfloor_mqtt::outbox::WINDOW,
        Some(n) => match usize::try_from(*n.get_ref()) {
            Ok(n @ 1..=MAX_INFLIGHT) => n,
            _ => {
                v.err(
                    n.span(),
                    format!("inflight must be 1 to {MAX_INFLIGHT} (messages awaiting PUBACK)"),
                );
                shopfloor_mqtt::outbox::WINDOW
            }
        },
    };
    let keep_alive = v.duration(&m.keep_alive, shopfloor_mqtt::link::KEEP_ALIVE);
    if let Some(k) = &m.keep_alive
        && !(Duration::from_secs(1)..=Duration::from_secs(u64::from(u16::MAX)))
            .contains(&keep_alive)
    {
        v.err(
            k.span(),
            "keep_alive must be 1s to 65535s (whole seconds, as MQTT counts it)",
        );
    }
    let keys = AuthKeys {
        username: &m.username,
        password_env: &m.password_env,
        ca_file: &m.ca_file,
        client_cert: &m.client_cert,
        client_key: &m.client_key,
    };
    let auth = broker_auth(v, s.span(), url.as_ref(), &keys);
    Some(MqttConfig {
        url: url?,
        topic_prefix,
        qos,
        layout,
        inflight,
        keep_alive,
        auth,
        when_full: when_full(v, &m.when_full),
    })
}

/// Packet ids are 16 bits and 0 is not one; some are left for the goodbye's statuses.
const MAX_INFLIGHT: usize = 65_000;

/// The credential and trust keys of a section that talks to a broker.
struct AuthKeys<'a> {
    username: &'a Option<S<String>>,
    password_env: &'a Option<S<String>>,
    ca_file: &'a Option<S<String>>,
    client_cert: &'a Option<S<String>>,
    client_key: &'a Option<S<String>>,
}

/// Checks `keys` of the section at `section` whose broker is `url`.
fn broker_auth(
    v: &mut V<'_>,
    section: Range<usize>,
    url: Option<&Url>,
    keys: &AuthKeys<'_>,
) -> BrokerAuth {
    let tls = url.is_some_and(|u| u.scheme == "mqtts");
    if !tls {
        for (key, val) in [
            ("ca_file", keys.ca_file),
            ("client_cert", keys.client_cert),
            ("client_key", keys.client_key),
        ] {
            v.not_allowed(val, key, "needs an mqtts:// url");
        }
    }
    if keys.client_cert.is_some() != keys.client_key.is_some() {
        v.err(
            section.clone(),
            "client_cert and client_key go together: set both or neither",
        );
    }
    let password_env = v.env(keys.password_env);
    if password_env.is_some() && keys.username.is_none() {
        v.err(section, "password_env without username");
    }
    BrokerAuth {
        username: keys.username.as_ref().map(|u| u.get_ref().clone()),
        password_env,
        ca_file: v.existing_file(keys.ca_file),
        client_cert: v.existing_file(keys.client_cert),
        client_key: v.existing_file(keys.client_key),
    }
}

fn influx(v: &mut V<'_>, s: &S<super::raw::RawInflux>) -> Option<InfluxConfig> {
    let i = s.get_ref();
    let url_s = v.required(&i.url, s.span(), "url");
    let url = url_s.as_ref().and_then(|u| v.url(u, HTTP_SCHEMES));
    let org = v.required(&i.org, s.span(), "org");
    let bucket = v.required(&i.bucket, s.span(), "bucket");
    let measurement = match &i.measurement {
        Some(m) if m.get_ref().is_empty() => {
            v.err(m.span(), "measurement must not be empty");
            String::new()
        }
        // Line protocol has no escape for either: a line starting with `#` is a comment, and a
        // trailing backslash would escape the separator after it.
        Some(m) if m.get_ref().starts_with('#') || m.get_ref().ends_with('\\') => {
            v.err(
                m.span(),
                "measurement must not start with '#' or end with a backslash",
            );
            String::new()
        }
        Some(m) => m.get_ref().clone(),
        None => "shopfloor".into(),
    };
    let token_env = v.env(&i.token_env);
    let batch_size = match &i.batch_size {
        None => 5000,
        Some(n) => match usize::try_from(*n.get_ref()) {
            Ok(n) if (1..=1_000_000).contains(&n) => n,
            _ => {
                v.err(n.span(), "batch_size must be in 1..=1000000 (points)");
                5000
            }
        },
    };
    let flush_interval = v.duration(&i.flush_interval, Duration::from_secs(1));
    let timeout = v.duration(&i.timeout, Duration::from_secs(10));
    Some(InfluxConfig {
        url: url?,
        org: org?.into_inner(),
        bucket: bucket?.into_inner(),
        token_env,
        measurement,
        batch_size,
        flush_interval,
        timeout,
        when_full: when_full(v, &i.when_full),
    })
}

fn record(v: &mut V<'_>, s: &S<super::raw::RawRecord>) -> Option<RecordConfig> {
    let x = s.get_ref();
    let url_s = v.required(&x.url, s.span(), "url");
    let url = url_s.as_ref().and_then(|u| v.url(u, MQTT_SCHEMES));
    let topics: Vec<String> = match &x.topics {
        Some(t) if !t.get_ref().is_empty() => {
            t.get_ref().iter().map(|t| t.get_ref().clone()).collect()
        }
        Some(t) => {
            v.err(t.span(), "topics must name at least one topic filter");
            Vec::new()
        }
        None => {
            v.err(s.span(), "missing key `topics`");
            Vec::new()
        }
    };
    if let Some(g) = &x.share_group
        && (g.get_ref().is_empty() || g.get_ref().contains(['/', '+', '#']))
    {
        v.err(
            g.span(),
            "share_group must be one topic level without wildcards",
        );
    }
    // Machine ids are 16-bit, and a catalog must leave room for its own bookkeeping.
    let max_machines = bounded(
        v,
        &x.max_machines,
        1..=60_000,
        RecordConfig::DEFAULT_MAX_MACHINES,
        "max_machines",
    );
    let max_tags = bounded(
        v,
        &x.max_tags,
        1..=10_000_000,
        RecordConfig::DEFAULT_MAX_TAGS,
        "max_tags",
    );
    let keys = AuthKeys {
        username: &x.username,
        password_env: &x.password_env,
        ca_file: &x.ca_file,
        client_cert: &x.client_cert,
        client_key: &x.client_key,
    };
    let auth = broker_auth(v, s.span(), url.as_ref(), &keys);
    Some(RecordConfig {
        url: url?,
        topics,
        share_group: x.share_group.as_ref().map(|g| g.get_ref().clone()),
        max_machines,
        max_tags,
        auth,
    })
}

/// A count within `range`, or `default` when the key is absent (or wrong, with an error).
fn bounded(
    v: &mut V<'_>,
    raw: &Option<S<i64>>,
    range: std::ops::RangeInclusive<i64>,
    default: usize,
    key: &str,
) -> usize {
    let Some(n) = raw else { return default };
    match usize::try_from(*n.get_ref()) {
        Ok(ok) if range.contains(n.get_ref()) => ok,
        _ => {
            v.err(
                n.span(),
                format!("{key} must be in {}..={}", range.start(), range.end()),
            );
            default
        }
    }
}

/// One machine, and the `energy` of its `[machine.kpi]` to resolve once all are read.
fn machine(v: &mut V<'_>, s: &S<RawMachine>) -> Option<(MachineConfig, Option<S<String>>)> {
    let m = s.get_ref();
    let id = v.required(&m.id, s.span(), "id");
    if let Some(id) = &id
        && !is_id(id.get_ref())
    {
        v.err(
            id.span(),
            format!("machine id {:?} must match [a-z0-9_-]+", id.get_ref()),
        );
    }
    let kind = m
        .kind
        .as_ref()
        .map_or_else(|| "machine".to_owned(), |k| k.get_ref().clone());
    let protocol = v.required(&m.protocol, s.span(), "protocol")?;
    if m.tag.is_empty() {
        v.err(s.span(), "this machine has no [[machine.tag]]");
    }
    let mut names = HashSet::new();
    let mut tags = Vec::new();
    for t in &m.tag {
        let rt = t.get_ref();
        let Some(name) = v.required(&rt.name, t.span(), "name") else {
            continue;
        };
        if !is_tag_name(name.get_ref()) {
            v.err(
                name.span(),
                format!("tag name {:?} must match [a-z0-9_]+", name.get_ref()),
            );
        } else if name.get_ref().starts_with(shopfloor_kpi::tags::PREFIX) {
            v.err(
                name.span(),
                format!(
                    "tag name {:?}: names starting with {:?} are the gateway's KPI tags",
                    name.get_ref(),
                    shopfloor_kpi::tags::PREFIX
                ),
            );
        } else if !names.insert(name.get_ref().clone()) {
            v.err(
                name.span(),
                format!(
                    "tag name {:?} is used twice in this machine",
                    name.get_ref()
                ),
            );
        }
        tags.push(TagInfo {
            name: name.get_ref().clone(),
            unit: rt.unit.as_ref().map(|u| u.get_ref().clone()),
        });
    }
    if tags.len() > usize::from(u16::MAX) {
        v.err(s.span(), "more than 65535 tags on one machine");
    }
    let publish = publish(v, m);
    let (kpi, energy) = match m.kpi.as_ref().and_then(|k| kpi::machine(v, k, &tags)) {
        Some((k, e)) => (Some(k), e),
        None => (None, None),
    };
    let protocol = match protocol.get_ref().as_str() {
        word @ ("modbus-tcp" | "modbus-rtu-tcp" | "modbus-rtu") => {
            ProtocolConfig::Modbus(modbus::modbus(v, s, word)?)
        }
        "opcua" => ProtocolConfig::Opcua(opcua(v, s)?),
        other => {
            v.err(
                protocol.span(),
                format!(
                    "protocol {other:?}: use \"modbus-tcp\", \"modbus-rtu\", \"modbus-rtu-tcp\" \
                     or \"opcua\""
                ),
            );
            return None;
        }
    };
    let machine = MachineConfig {
        id: id?.into_inner(),
        kind,
        protocol,
        tags,
        publish,
        kpi,
    };
    Some((machine, energy))
}

/// `publish`, `heartbeat` and the tags' `deadband`: report by exception.
fn publish(v: &mut V<'_>, m: &RawMachine) -> Publish {
    let change = match &m.publish {
        None => false,
        Some(p) => match p.get_ref().as_str() {
            "every" => false,
            "change" => true,
            other => {
                v.err(
                    p.span(),
                    format!("publish {other:?}: use \"every\" or \"change\""),
                );
                false
            }
        },
    };
    let why = "applies with publish = \"change\" only";
    let mut deadbands = Vec::with_capacity(m.tag.len());
    for t in &m.tag {
        let Some(d) = &t.get_ref().deadband else {
            deadbands.push(0.0);
            continue;
        };
        if !change {
            v.err(d.span(), format!("deadband {why}"));
        } else if !(d.get_ref().is_finite() && *d.get_ref() >= 0.0) {
            v.err(d.span(), "deadband must be a number of 0 or more");
        }
        deadbands.push(d.get_ref().max(0.0));
    }
    if !change {
        if let Some(h) = &m.heartbeat {
            v.err(h.span(), format!("heartbeat {why}"));
        }
        return Publish::Every;
    }
    let heartbeat = match &m.heartbeat {
        Some(h) if ["0", "0s", "0ms", "0m", "0h"].contains(&h.get_ref().as_str()) => None,
        h => Some(v.duration(h, Duration::from_secs(60))),
    };
    Publish::Change {
        heartbeat,
        deadbands,
    }
}

fn opcua(v: &mut V<'_>, s: &S<RawMachine>) -> Option<OpcuaConfig> {
    let m = s.get_ref();
    let why = "is a Modbus key; this machine's protocol is opcua";
    v.not_allowed(&m.address, "address", why);
    v.not_allowed(&m.port, "port", why);
    v.not_allowed(&m.baud, "baud", why);
    v.not_allowed(&m.parity, "parity", why);
    v.not_allowed(&m.stop_bits, "stop_bits", why);
    v.not_allowed(&m.unit_id, "unit_id", why);
    v.not_allowed(&m.poll_interval, "poll_interval", why);
    let simulator = m.simulator.as_ref().and_then(|x| {
        match shopfloor_sim::SimKind::parse(x.get_ref()) {
            Some(k) if shopfloor_sim::ua_profile::serves_opcua(k) => Some(k),
            Some(k) => {
                v.err(
                    x.span(),
                    format!("the simulated {k} is served over modbus-tcp only; use cnc or injection-moulding"),
                );
                None
            }
            None => {
                v.err(
                    x.span(),
                    format!("simulator {:?}: use cnc or injection-moulding", x.get_ref()),
                );
                None
            }
        }
    });
    v.not_allowed(
        &m.faults,
        "faults",
        "apply to simulated Modbus machines; stop an OPC UA simulator to see an outage",
    );
    let endpoint = v.required(&m.endpoint, s.span(), "endpoint");
    if let Some(e) = &endpoint
        && !e.get_ref().starts_with("opc.tcp://")
    {
        v.err(e.span(), "endpoint must be opc.tcp://host:port");
    }
    let security_policy: Policy = word_or_default(v, &m.security_policy, "security_policy");
    let security_mode: SecurityMode = word_or_default(v, &m.security_mode, "security_mode");
    if (security_policy == Policy::None) != (security_mode == SecurityMode::None) {
        v.err(
            s.span(),
            "security_policy and security_mode go together: both None, or a policy with Sign or \
             SignAndEncrypt",
        );
    }
    let mode = word_or_default(v, &m.mode, "mode");
    let publishing_interval =
        v.duration(&m.publishing_interval, ua_keys::DEFAULT_PUBLISHING_INTERVAL);
    let timeout = v.duration(&m.timeout, ua_keys::DEFAULT_TIMEOUT);
    let password_env = v.env(&m.password_env);
    let mut nodes = Vec::new();
    for t in &m.tag {
        let rt = t.get_ref();
        let why = "is a Modbus key; this machine's protocol is opcua";
        v.not_allowed(&rt.area, "area", why);
        v.not_allowed(&rt.address, "address", why);
        v.not_allowed(&rt.data_type, "type", why);
        v.not_allowed(&rt.order, "order", why);
        v.not_allowed(&rt.bit, "bit", why);
        v.not_allowed(&rt.length, "length", why);
        if let Some(node) = v.required(&rt.node, t.span(), "node") {
            match shopfloor_opcua::NodeRef::parse(node.get_ref()) {
                Ok(n) => nodes.push(n),
                Err(e) => v.err(node.span(), format!("node {e}")),
            }
        }
    }
    Some(OpcuaConfig {
        endpoint: endpoint?.into_inner(),
        security_policy,
        security_mode,
        username: m.username.as_ref().map(|u| u.get_ref().clone()),
        password_env,
        trust_server_certificate: m
            .trust_server_certificate
            .as_ref()
            .is_some_and(|t| *t.get_ref()),
        mode,
        publishing_interval,
        timeout,
        nodes,
        simulator,
    })
}
