//! `shopfloor scan`: a device's raw registers with their candidate decodings (u16, i16, f32 in
//! each order, text), for finding where a machine keeps its values; with `--units`, which unit
//! ids answer on a bus. Reads only, over Modbus TCP, RTU over TCP or a serial line.
//!
//! Modules: [`target`] parses the URL and the unit range.

mod target;

pub use target::{parse_target, parse_units};

use shopfloor_core::Value;
use shopfloor_modbus::connection::Connection;
use shopfloor_modbus::decode::decode_registers;
use shopfloor_modbus::driver::{ReadError, Reply};
use shopfloor_modbus::link::Link;
use shopfloor_modbus::plan::{MAX_BITS, MAX_REGISTERS, ReadRequest};
use shopfloor_modbus::{Area, DataType, TagSpec, WordOrder};
use std::fmt::Write as _;
use std::time::Duration;
use thiserror::Error;

/// What `scan` reads.
#[derive(Debug, Clone)]
pub struct ScanRequest {
    /// Where the device is.
    pub link: Link,
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
    let mut conn = Connection::open(&req.link, req.unit, timeout, &mut false)
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
        match conn.read(req.unit, &r, timeout).await {
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
        req.link,
        req.unit
    );
    Ok(if req.area.is_bits() {
        title + &bit_table(req.start, &bits)
    } else {
        title + &register_table(req.start, &regs)
    })
}

/// Which unit ids of `units` answer on `link`: one read of `area` at `start` each, under
/// `timeout`. An exception reply counts as present (the unit is there, it refuses the
/// address); silence or a broken frame as absent.
pub async fn scan_units(
    link: &Link,
    units: std::ops::RangeInclusive<u8>,
    area: Area,
    start: u16,
    timeout: Duration,
) -> Result<String, ScanError> {
    let probe = ReadRequest {
        area,
        start,
        count: 1,
        slots: Vec::new(),
    };
    let mut out = String::new();
    let (mut asked, mut present) = (0u32, 0u32);
    let mut conn: Option<Connection> = None;
    for unit in units {
        let c = match &mut conn {
            Some(c) => c,
            None => conn.insert(
                Connection::open(link, unit, timeout, &mut false)
                    .await
                    .map_err(|e| ScanError::Read(e.to_string()))?,
            ),
        };
        asked += 1;
        let answer = c.read(unit, &probe, timeout).await;
        match &answer {
            Ok(_) => {
                present += 1;
                let _ = writeln!(out, "unit {unit:>3}: answers");
            }
            Err(ReadError::Exception { code, .. }) => {
                present += 1;
                let _ = writeln!(out, "unit {unit:>3}: answers (exception: {code})");
            }
            Err(_) => {}
        }
        if let Err(e) = &answer
            && !c.survives(e)
        {
            conn = None;
        }
    }
    let _ = writeln!(out, "{present} of {asked} unit ids answer on {link}");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
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
