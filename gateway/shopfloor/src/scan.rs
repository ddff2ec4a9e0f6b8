//! `shopfloor scan`: a device's raw registers with their candidate decodings (u16, i16, f32 in
//! each order, text), for finding where a machine keeps its values. Reads only.

use shopfloor_core::Value;
use shopfloor_modbus::decode::decode_registers;
use shopfloor_modbus::driver::{Reply, connect, read};
use shopfloor_modbus::plan::{MAX_BITS, MAX_REGISTERS, ReadRequest};
use shopfloor_modbus::{Area, DataType, TagSpec, WordOrder};
use std::fmt::Write as _;
use std::time::Duration;
use thiserror::Error;

/// What `scan` reads.
#[derive(Debug, Clone)]
pub struct ScanRequest {
    /// `host:port`.
    pub address: String,
    /// Unit id.
    pub unit: u8,
    /// Area.
    pub area: Area,
    /// First address.
    pub start: u16,
    /// Count.
    pub count: u16,
}

/// The scan could not be done.
#[derive(Debug, Error)]
pub enum ScanError {
    /// The target or a flag is malformed.
    #[error("{0}")]
    Usage(String),
    /// The device did not answer as asked.
    #[error("{0}")]
    Read(String),
}

/// Parses `modbus-tcp://host:port` (port 502 when left out).
pub fn parse_target(target: &str) -> Result<String, ScanError> {
    let rest = target
        .strip_prefix("modbus-tcp://")
        .ok_or_else(|| ScanError::Usage(format!("{target:?}: write modbus-tcp://HOST:PORT")))?;
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

/// Parses `A..B` (B excluded) or `A..=B` into start and count.
pub fn parse_range(text: &str) -> Result<(u16, u16), ScanError> {
    let bad = || ScanError::Usage(format!("range {text:?}: write e.g. 0..100 or 0..=99"));
    let (a, b, inclusive) = if let Some((a, b)) = text.split_once("..=") {
        (a, b, true)
    } else {
        let (a, b) = text.split_once("..").ok_or_else(bad)?;
        (a, b, false)
    };
    let a: u32 = a.trim().parse().map_err(|_| bad())?;
    let b: u32 = b.trim().parse().map_err(|_| bad())?;
    let end = if inclusive { b + 1 } else { b };
    if end <= a || end > 65536 {
        return Err(bad());
    }
    let count = u16::try_from(end - a).map_err(|_| bad())?;
    Ok((u16::try_from(a).map_err(|_| bad())?, count))
}

fn f32_text(regs: &[u16], order: WordOrder) -> String {
    let mut spec = TagSpec::new(Area::Holding, 0, DataType::F32);
    spec.order = order;
    match decode_registers(&spec, regs) {
        Ok(Value::F64(v)) if v.is_finite() && (v == 0.0 || (1e-6..1e12).contains(&v.abs())) => {
            format!("{v:.6}")
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_owned()
        }
        _ => "-".into(),
    }
}

fn text_of(r: u16) -> String {
    r.to_be_bytes()
        .iter()
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                char::from(*b)
            } else {
                '.'
            }
        })
        .collect()
}

/// The table `scan` prints for registers read from `start`.
pub fn register_table(start: u16, regs: &[u16]) -> String {
    let mut out = format!(
        "{:>5}  {:<6} {:>6} {:>6}  {:>14} {:>14} {:>14} {:>14}  text\n",
        "addr", "hex", "u16", "i16", "f32 ABCD", "f32 CDAB", "f32 BADC", "f32 DCBA"
    );
    for (i, r) in regs.iter().enumerate() {
        let pair = regs.get(i..i + 2);
        let f = |o| pair.map_or_else(|| "-".to_owned(), |p| f32_text(p, o));
        let _ = writeln!(
            out,
            "{:>5}  {:#06x} {:>6} {:>6}  {:>14} {:>14} {:>14} {:>14}  {}",
            u32::from(start) + i as u32,
            r,
            r,
            *r as i16,
            f(WordOrder::ABCD),
            f(WordOrder::CDAB),
            f(WordOrder::BADC),
            f(WordOrder::DCBA),
            text_of(*r)
        );
    }
    out
}

/// The table `scan` prints for bits read from `start`.
pub fn bit_table(start: u16, bits: &[bool]) -> String {
    let mut out = String::new();
    for (row, chunk) in bits.chunks(16).enumerate() {
        let first = u32::from(start) + (row * 16) as u32;
        let cells: Vec<&str> = chunk.iter().map(|b| if *b { "1" } else { "0" }).collect();
        let _ = writeln!(out, "{first:>5}  {}", cells.join(" "));
    }
    out
}

/// Reads the request, in as many requests as the protocol needs, and renders it.
pub async fn scan(req: &ScanRequest, timeout: Duration) -> Result<String, ScanError> {
    let mut ctx = connect(&req.address, req.unit, timeout)
        .await
        .map_err(|e| ScanError::Read(e.to_string()))?;
    let max = if req.area.is_bits() {
        MAX_BITS
    } else {
        MAX_REGISTERS
    };
    let mut regs = Vec::new();
    let mut bits = Vec::new();
    let end = u32::from(req.start) + u32::from(req.count);
    let mut at = u32::from(req.start);
    while at < end {
        let count = (end - at).min(u32::from(max)) as u16;
        let r = ReadRequest {
            area: req.area,
            start: at as u16,
            count,
            slots: Vec::new(),
        };
        match read(&mut ctx, &r, timeout).await {
            Ok(Reply::Registers(v)) => regs.extend(v),
            Ok(Reply::Bits(v)) => bits.extend(v.into_iter().take(usize::from(count))),
            Err(e) => {
                let hint = if e.needs_reconnect() {
                    ""
                } else {
                    " (the device refuses this range: try a smaller --range or another --area)"
                };
                return Err(ScanError::Read(format!("{e}{hint}")));
            }
        }
        at += u32::from(count);
    }
    let title = format!(
        "{} {}..={} of {} unit {}\n",
        req.area,
        req.start,
        end - 1,
        req.address,
        req.unit
    );
    Ok(if req.area.is_bits() {
        title + &bit_table(req.start, &bits)
    } else {
        title + &register_table(req.start, &regs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_ranges() {
        assert_eq!(parse_target("modbus-tcp://plc:5020").unwrap(), "plc:5020");
        assert_eq!(parse_target("modbus-tcp://plc").unwrap(), "plc:502");
        assert!(parse_target("tcp://plc").is_err());
        assert_eq!(parse_range("0..100").unwrap(), (0, 100));
        assert_eq!(parse_range("10..=19").unwrap(), (10, 10));
        assert_eq!(parse_range("65530..65536").unwrap(), (65530, 6));
        for bad in ["5..5", "9..2", "0..65537", "x..2", "3"] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_table_shows_every_candidate() {
        let t = register_table(0, &[0x4496, 0x1000, 0x4142]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].contains("f32 CDAB"));
        assert!(
            lines[1].contains("0x4496") && lines[1].contains("1200.5"),
            "{}",
            lines[1]
        );
        assert!(lines[3].ends_with("AB"), "{}", lines[3]);
        assert!(lines[3].contains(" -"), "a lone last register has no f32");
        let b = bit_table(0, &[true, false, true]);
        assert_eq!(b.trim(), "0  1 0 1");
    }
}
