//! The keys of a Modbus machine (`modbus-tcp`, `modbus-rtu-tcp`, `modbus-rtu`): its link, unit,
//! timing, simulator and register map, and the rules of machines that share a bus.

use super::super::raw::{RawMachine, RawTag, S};
use super::{Duration, ModbusConfig, TagSpec, V, word};
use shopfloor_modbus::link::{Link, SerialLine};
use shopfloor_modbus::settings::{self as keys, BAUD_RATES, RTU_UNITS, TCP_UNITS};
use shopfloor_modbus::{Area, DataType, WordOrder};

/// A Modbus machine of `protocol` (one of the three Modbus words).
pub(super) fn modbus(v: &mut V<'_>, s: &S<RawMachine>, protocol: &str) -> Option<ModbusConfig> {
    let m = s.get_ref();
    let why = format!("is an OPC UA key; this machine's protocol is {protocol}");
    v.not_allowed(&m.endpoint, "endpoint", &why);
    v.not_allowed(&m.security_policy, "security_policy", &why);
    v.not_allowed(&m.security_mode, "security_mode", &why);
    v.not_allowed(&m.username, "username", &why);
    v.not_allowed(&m.password_env, "password_env", &why);
    v.not_allowed(
        &m.trust_server_certificate,
        "trust_server_certificate",
        &why,
    );
    v.not_allowed(&m.mode, "mode", &why);
    v.not_allowed(&m.publishing_interval, "publishing_interval", &why);
    let link = link(v, s, protocol);
    let rtu = protocol != "modbus-tcp";
    let unit_id = match &m.unit_id {
        None => keys::DEFAULT_UNIT_ID,
        Some(u) if rtu && RTU_UNITS.contains(u.get_ref()) => *u.get_ref() as u8,
        Some(u) if !rtu && TCP_UNITS.contains(u.get_ref()) => *u.get_ref() as u8,
        Some(u) => {
            let range = if rtu {
                "1..=247 on an RTU bus"
            } else {
                "0..=255"
            };
            v.err(u.span(), format!("unit_id must be in {range}"));
            keys::DEFAULT_UNIT_ID
        }
    };
    let poll_interval = v.duration(&m.poll_interval, keys::DEFAULT_POLL_INTERVAL);
    let timeout = v.duration(&m.timeout, keys::DEFAULT_TIMEOUT);
    let simulator = m.simulator.as_ref().and_then(|x| {
        let kind = shopfloor_sim::SimKind::parse(x.get_ref());
        if kind.is_none() {
            let names: Vec<&str> = shopfloor_sim::SimKind::ALL
                .iter()
                .map(|k| k.as_str())
                .collect();
            v.err(
                x.span(),
                format!("simulator {:?}: use {}", x.get_ref(), names.join(", ")),
            );
        }
        kind
    });
    let faults = m
        .faults
        .as_ref()
        .map(|f| sim_faults(v, f, simulator.is_some()))
        .unwrap_or_default();
    let mut specs = Vec::new();
    for t in &m.tag {
        if let Some(spec) = modbus_tag(v, t) {
            specs.push(spec);
        }
    }
    Some(ModbusConfig {
        link: link?,
        unit_id,
        poll_interval,
        timeout,
        tags: specs,
        simulator,
        faults,
    })
}

/// `address` (TCP links) or `port` with its line settings (serial).
fn link(v: &mut V<'_>, s: &S<RawMachine>, protocol: &str) -> Option<Link> {
    let m = s.get_ref();
    if protocol != "modbus-rtu" {
        let why = format!("is a serial line key; this machine's protocol is {protocol}");
        v.not_allowed(&m.port, "port", &why);
        v.not_allowed(&m.baud, "baud", &why);
        v.not_allowed(&m.parity, "parity", &why);
        v.not_allowed(&m.stop_bits, "stop_bits", &why);
        let address = v.required(&m.address, s.span(), "address")?;
        let address = tcp_address(v, &address)?;
        return Some(if protocol == "modbus-tcp" {
            Link::Tcp(address)
        } else {
            Link::RtuTcp(address)
        });
    }
    v.not_allowed(
        &m.address,
        "address",
        "is for modbus-tcp and modbus-rtu-tcp; a modbus-rtu machine names its serial `port`",
    );
    let port = v.required(&m.port, s.span(), "port");
    if let Some(p) = &port
        && p.get_ref().trim().is_empty()
    {
        v.err(
            p.span(),
            "port must name a serial device, e.g. /dev/ttyUSB0",
        );
    }
    let baud = match &m.baud {
        None => keys::DEFAULT_BAUD,
        Some(b) if BAUD_RATES.contains(b.get_ref()) => *b.get_ref() as u32,
        Some(b) => {
            v.err(
                b.span(),
                format!("baud must be a rate in {BAUD_RATES:?}, e.g. 9600 or 19200"),
            );
            keys::DEFAULT_BAUD
        }
    };
    let parity = m
        .parity
        .as_ref()
        .and_then(|p| word(v, "parity", p))
        .unwrap_or(keys::DEFAULT_PARITY);
    let stop_bits = match &m.stop_bits {
        None => 1,
        Some(b) if [1, 2].contains(b.get_ref()) => *b.get_ref() as u8,
        Some(b) => {
            v.err(
                b.span(),
                "stop_bits must be 1 or 2 (data bits are always 8)",
            );
            1
        }
    };
    Some(Link::Rtu(SerialLine {
        port: port?.into_inner(),
        baud,
        parity,
        stop_bits,
    }))
}

/// `host:port` (port 502 when left out); an IPv6 host in brackets.
fn tcp_address(v: &mut V<'_>, a: &S<String>) -> Option<String> {
    let text = a.get_ref();
    let host_port = match text.rsplit_once(':') {
        _ if text.starts_with('[') => text
            .split_once("]:")
            .filter(|(_, p)| p.parse::<u16>().is_ok())
            .map(|_| text.clone()),
        Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => {
            Some(text.clone())
        }
        Some(_) => None,
        None if !text.is_empty() => Some(format!("{text}:502")),
        None => None,
    };
    if host_port.is_none() {
        v.err(a.span(), format!("address {text:?} must be host:port"));
    }
    host_port
}

/// A machine on a bus, as the bus rules see it.
pub(super) struct OnBus<'a> {
    /// Where the machine's `address` or `port` is written, for the error.
    pub span: std::ops::Range<usize>,
    /// Its id.
    pub id: &'a str,
    /// Its link.
    pub link: &'a Link,
    /// Its unit.
    pub unit: u8,
}

/// The rules of machines that share a bus: one framing per address, one set of line settings
/// per serial device, and one unit id per RTU unit.
pub(super) fn bus_rules(v: &mut V<'_>, machines: &[OnBus<'_>]) {
    for (i, m) in machines.iter().enumerate() {
        let Some(first) = machines[..i].iter().find(|o| o.link.bus() == m.link.bus()) else {
            continue;
        };
        let bus = m.link.bus();
        if first.link.protocol() != m.link.protocol() {
            v.err(
                m.span.clone(),
                format!(
                    "{bus} is used by machine {:?} with protocol {}; machines on one address \
                     or port share one connection and one framing",
                    first.id,
                    first.link.protocol()
                ),
            );
        } else if first.link != m.link {
            v.err(
                m.span.clone(),
                format!(
                    "machine {:?} opens {bus} with other line settings ({}); machines on one \
                     port must use the same baud, parity and stop_bits",
                    first.id, first.link
                ),
            );
        }
        if m.link.is_rtu()
            && let Some(twin) = machines[..i]
                .iter()
                .find(|o| o.link.bus() == bus && o.unit == m.unit)
        {
            v.err(
                m.span.clone(),
                format!(
                    "unit_id {} is already machine {:?} on {bus}: two units on one RTU bus \
                     need different ids",
                    m.unit, twin.id
                ),
            );
        }
    }
}

fn sim_faults(
    v: &mut V<'_>,
    s: &S<super::raw::RawFaults>,
    simulated: bool,
) -> shopfloor_sim::Faults {
    if !simulated {
        v.err(
            s.span(),
            "[machine.faults] applies to simulated machines: set `simulator`",
        );
    }
    let f = s.get_ref();
    let mut out = shopfloor_sim::Faults {
        offline_every: f
            .offline_every
            .as_ref()
            .map(|_| v.duration(&f.offline_every, Duration::ZERO)),
        offline_for: v.duration(&f.offline_for, Duration::from_secs(10)),
        slow: f.slow.as_ref().map(|_| v.duration(&f.slow, Duration::ZERO)),
        ..Default::default()
    };
    if let Some(e) = &f.exception {
        match u8::try_from(*e.get_ref()) {
            Ok(code) if code >= 1 => out.exception = Some(code),
            _ => v.err(
                e.span(),
                "exception must be a Modbus exception code in 1..=255",
            ),
        }
    }
    if let Some(d) = &f.drop_every {
        match u32::try_from(*d.get_ref()) {
            Ok(n) if n >= 1 => out.drop_every = Some(n),
            _ => v.err(
                d.span(),
                "drop_every must be a number of requests, at least 1",
            ),
        }
    }
    if let Some(every) = out.offline_every
        && out.offline_for >= every
    {
        let span = f.offline_for.as_ref().map_or(s.span(), |x| x.span());
        v.err(
            span,
            format!(
                "offline_for ({:?}) must be shorter than offline_every",
                out.offline_for
            ),
        );
    }
    out
}

fn modbus_tag(v: &mut V<'_>, s: &S<RawTag>) -> Option<TagSpec> {
    let t = s.get_ref();
    v.not_allowed(
        &t.node,
        "node",
        "is an OPC UA key; this machine's protocol is modbus-tcp",
    );
    let area_s = v.required(&t.area, s.span(), "area")?;
    let area: Area = word(v, "area", &area_s)?;
    let address_s = v.required(&t.address, s.span(), "address")?;
    let Ok(address) = u16::try_from(*address_s.get_ref()) else {
        v.err(
            address_s.span(),
            "address must be in 0..=65535 (0-based protocol address)",
        );
        return None;
    };
    let data_type = match &t.data_type {
        None if area.is_bits() => DataType::Bool,
        None => DataType::U16,
        Some(d) => word(v, "type", d)?,
    };
    let mut spec = TagSpec::new(area, address, data_type);
    if let Some(d) = &t.deadband
        && !data_type.is_number()
    {
        v.err(
            d.span(),
            format!("deadband applies only to numbers, not {data_type}"),
        );
    }
    if area.is_bits() {
        if data_type != DataType::Bool {
            let span = t.data_type.as_ref().map_or(s.span(), |d| d.span());
            v.err(
                span,
                format!("a {area} holds single bits: its type is bool"),
            );
        }
        let why = "does not apply to single bits (coil, discrete)";
        v.not_allowed(&t.order, "order", why);
        v.not_allowed(&t.bit, "bit", why);
        v.not_allowed(&t.length, "length", why);
        v.not_allowed(&t.scale, "scale", why);
        v.not_allowed(&t.offset, "offset", why);
        return Some(spec);
    }
    if let Some(o) = &t.order {
        let order: Option<WordOrder> = word(v, "order", o);
        match (data_type, order) {
            (DataType::Bool, Some(_)) => v.err(o.span(), "order does not apply to bool"),
            (DataType::String, Some(WordOrder::CDAB | WordOrder::DCBA)) => v.err(
                o.span(),
                "a string's order is ABCD (first character in the high byte) or BADC (swapped)",
            ),
            (_, Some(order)) => spec.order = order,
            (_, None) => {}
        }
    }
    match (&t.bit, data_type) {
        (Some(b), DataType::Bool) => match u8::try_from(*b.get_ref()) {
            Ok(bit) if bit <= 15 => spec.bit = Some(bit),
            _ => v.err(b.span(), "bit must be in 0..=15 (0 = least significant)"),
        },
        (Some(b), _) => v.err(b.span(), "bit applies only to type bool"),
        (None, _) => {}
    }
    match (&t.length, data_type) {
        (Some(l), DataType::String) => match u16::try_from(*l.get_ref()) {
            Ok(len) if (1..=shopfloor_modbus::plan::MAX_REGISTERS).contains(&len) => {
                spec.length = len
            }
            _ => v.err(
                l.span(),
                "length must be in 1..=125 registers (one read request)",
            ),
        },
        (None, DataType::String) => v.err(
            s.span(),
            "a string needs `length`, in registers (two characters each)",
        ),
        (Some(l), _) => v.err(l.span(), "length applies only to type string"),
        (None, _) => {}
    }
    for (key, val) in [("scale", &t.scale), ("offset", &t.offset)] {
        if let Some(x) = val {
            if !data_type.is_number() {
                v.err(
                    x.span(),
                    format!("{key} applies only to numbers, not {data_type}"),
                );
            } else if !x.get_ref().is_finite() {
                v.err(x.span(), format!("{key} must be a finite number"));
            }
        }
    }
    if let Some(x) = &t.scale {
        spec.scale = *x.get_ref();
    }
    if let Some(x) = &t.offset {
        spec.offset = *x.get_ref();
    }
    let end = u32::from(address) + u32::from(spec.width());
    if end > 65536 {
        v.err(
            address_s.span(),
            format!(
                "address {address} + {} registers runs past the last address 65535",
                spec.width()
            ),
        );
    }
    Some(spec)
}

#[cfg(test)]
mod tests;
