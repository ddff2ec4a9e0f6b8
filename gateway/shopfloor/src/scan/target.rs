//! The URL `scan` takes: `modbus-tcp://HOST:PORT`, `modbus-rtu-tcp://HOST:PORT` or
//! `modbus-rtu:///dev/ttyUSB0?baud=19200&parity=even&stop_bits=1`.

use super::ScanError;
use shopfloor_core::word::Word;
use shopfloor_modbus::link::{Link, SerialLine};
use shopfloor_modbus::rtu::Parity;

/// Parses a scan target (port 502 when a TCP URL leaves it out; a serial line's defaults are
/// the config's: 19200 baud, even parity, one stop bit).
pub fn parse_target(target: &str) -> Result<Link, ScanError> {
    let usage = || {
        ScanError::Usage(format!(
            "{target:?}: write modbus-tcp://HOST:PORT, modbus-rtu-tcp://HOST:PORT or \
             modbus-rtu:///dev/ttyUSB0?baud=19200&parity=even&stop_bits=1"
        ))
    };
    if let Some(rest) = target.strip_prefix("modbus-tcp://") {
        return Ok(Link::Tcp(host_port(target, rest)?));
    }
    if let Some(rest) = target.strip_prefix("modbus-rtu-tcp://") {
        return Ok(Link::RtuTcp(host_port(target, rest)?));
    }
    let rest = target.strip_prefix("modbus-rtu://").ok_or_else(usage)?;
    let (port, query) = rest.split_once('?').unwrap_or((rest, ""));
    if port.is_empty() {
        return Err(ScanError::Usage(format!(
            "{target:?} names no serial device"
        )));
    }
    let mut line = SerialLine {
        port: port.to_owned(),
        baud: 19200,
        parity: Parity::Even,
        stop_bits: 1,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let bad = || ScanError::Usage(format!("{target:?}: {pair:?} is not a serial setting"));
        let (key, value) = pair.split_once('=').ok_or_else(bad)?;
        match key {
            "baud" => line.baud = value.parse().ok().filter(|b| *b >= 300).ok_or_else(bad)?,
            "parity" => line.parity = Parity::from_word(value).ok_or_else(bad)?,
            "stop_bits" => {
                line.stop_bits = value
                    .parse()
                    .ok()
                    .filter(|s| [1, 2].contains(s))
                    .ok_or_else(bad)?
            }
            _ => return Err(bad()),
        }
    }
    Ok(Link::Rtu(line))
}

fn host_port(target: &str, rest: &str) -> Result<String, ScanError> {
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return Err(ScanError::Usage(format!("{target:?} has no host")));
    }
    Ok(
        if rest
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            rest.to_owned()
        } else {
            format!("{rest}:502")
        },
    )
}

/// Parses `A..=B` or `A..B` (B excluded) into the unit ids it names.
pub fn parse_units(text: &str) -> Result<std::ops::RangeInclusive<u8>, ScanError> {
    let bad = || ScanError::Usage(format!("--units {text:?}: write e.g. 1..=247"));
    let (a, b, inclusive) = match text.split_once("..=") {
        Some((a, b)) => (a, b, true),
        None => {
            let (a, b) = text.split_once("..").ok_or_else(bad)?;
            (a, b, false)
        }
    };
    let a: u16 = a.trim().parse().map_err(|_| bad())?;
    let b: u16 = b.trim().parse().map_err(|_| bad())?;
    let last = if inclusive {
        b
    } else {
        b.checked_sub(1).ok_or_else(bad)?
    };
    if last < a || last > 255 {
        return Err(bad());
    }
    Ok(a as u8..=last as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_target_parses() {
        let table = [
            ("modbus-tcp://plc:5020", Link::Tcp("plc:5020".into())),
            ("modbus-tcp://plc", Link::Tcp("plc:502".into())),
            (
                "modbus-rtu-tcp://10.0.0.5:4001",
                Link::RtuTcp("10.0.0.5:4001".into()),
            ),
            (
                "modbus-rtu:///dev/ttyUSB0?baud=9600&parity=none&stop_bits=2",
                Link::Rtu(SerialLine {
                    port: "/dev/ttyUSB0".into(),
                    baud: 9600,
                    parity: Parity::None,
                    stop_bits: 2,
                }),
            ),
            (
                "modbus-rtu:///dev/ttyS1",
                Link::Rtu(SerialLine {
                    port: "/dev/ttyS1".into(),
                    baud: 19200,
                    parity: Parity::Even,
                    stop_bits: 1,
                }),
            ),
        ];
        for (text, want) in table {
            assert_eq!(parse_target(text).unwrap(), want, "{text}");
        }
        for bad in [
            "tcp://x",
            "modbus-rtu://",
            "modbus-rtu:///dev/x?baud=fast",
            "modbus-rtu:///dev/x?parity=mark",
            "modbus-rtu:///dev/x?speed=1",
            "modbus-tcp://",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unit_ranges() {
        assert_eq!(parse_units("1..=247").unwrap(), 1..=247);
        assert_eq!(parse_units("1..5").unwrap(), 1..=4);
        for bad in ["5..=2", "0..0", "1..=256", "x", "3"] {
            assert!(parse_units(bad).is_err(), "{bad}");
        }
    }
}
