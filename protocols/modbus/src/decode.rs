//! Registers and bits to values. Pure: no I/O, no allocation except for text.

use crate::register::{DataType, TagSpec, WordOrder};
use shopfloor_core::Value;
use thiserror::Error;

/// The registers given do not match the tag.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// A reply carried another number of registers than the tag spans.
    #[error("expected {expected} registers, got {got}")]
    WrongLength {
        /// Registers the tag spans.
        expected: usize,
        /// Registers given.
        got: usize,
    },
}

/// Puts the 2N wire bytes of `regs` (each register high byte first) into `out` in the order of
/// a big-endian value, per `order`. Every order is its own inverse, so [`crate::encode`] uses
/// the same function the other way round.
pub(crate) fn reorder(wire: &[u8], order: WordOrder, out: &mut [u8]) {
    let n = wire.len();
    debug_assert_eq!(n, out.len());
    debug_assert_eq!(n % 2, 0);
    match order {
        WordOrder::ABCD => out.copy_from_slice(wire),
        WordOrder::CDAB => {
            for (i, chunk) in wire.chunks_exact(2).rev().enumerate() {
                out[2 * i..2 * i + 2].copy_from_slice(chunk);
            }
        }
        WordOrder::BADC => {
            for (dst, src) in out.chunks_exact_mut(2).zip(wire.chunks_exact(2)) {
                dst[0] = src[1];
                dst[1] = src[0];
            }
        }
        WordOrder::DCBA => {
            for (dst, src) in out.iter_mut().zip(wire.iter().rev()) {
                *dst = *src;
            }
        }
    }
}

fn wire_bytes(regs: &[u16], out: &mut [u8]) {
    for (dst, r) in out.chunks_exact_mut(2).zip(regs) {
        dst.copy_from_slice(&r.to_be_bytes());
    }
}

fn scaled(spec: &TagSpec, raw: f64) -> Value {
    Value::F64(raw * spec.scale + spec.offset)
}

/// Decodes the registers of one tag; `regs` must be exactly [`TagSpec::width`] long.
///
/// Numbers with a scale or offset become [`Value::F64`]; unscaled unsigned integers
/// [`Value::U64`], signed ones [`Value::I64`], floats [`Value::F64`] (NaN and infinities are
/// turned into bad quality by [`shopfloor_core::Sample::new`]). Strings end at the first NUL,
/// lose trailing spaces, and read bytes above 0x7F as Latin-1 so that no reply is ever an error.
pub fn decode_registers(spec: &TagSpec, regs: &[u16]) -> Result<Value, DecodeError> {
    let expected = usize::from(spec.width());
    if regs.len() != expected {
        return Err(DecodeError::WrongLength {
            expected,
            got: regs.len(),
        });
    }
    if spec.data_type == DataType::String {
        return Ok(decode_string(regs, spec.order));
    }
    if spec.data_type == DataType::Bool {
        let r = regs[0];
        let on = match spec.bit {
            Some(bit) => (r >> (bit & 15)) & 1 == 1,
            None => r != 0,
        };
        return Ok(Value::Bool(on));
    }
    let mut wire = [0u8; 8];
    let mut be = [0u8; 8];
    let n = 2 * regs.len();
    wire_bytes(regs, &mut wire[..n]);
    reorder(&wire[..n], spec.order, &mut be[..n]);
    let b = &be[..n];
    let value = match spec.data_type {
        DataType::U16 => unsigned(spec, u64::from(u16::from_be_bytes([b[0], b[1]]))),
        DataType::I16 => signed(spec, i64::from(i16::from_be_bytes([b[0], b[1]]))),
        DataType::U32 => unsigned(
            spec,
            u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        ),
        DataType::I32 => signed(
            spec,
            i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        ),
        DataType::U64 => unsigned(spec, u64::from_be_bytes(be)),
        DataType::I64 => signed(spec, i64::from_be_bytes(be)),
        DataType::F32 => {
            let v = f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            if spec.is_scaled() {
                scaled(spec, v)
            } else {
                Value::F64(v)
            }
        }
        DataType::F64 => {
            let v = f64::from_be_bytes(be);
            if spec.is_scaled() {
                scaled(spec, v)
            } else {
                Value::F64(v)
            }
        }
        DataType::Bool | DataType::String => Value::Null,
    };
    Ok(value)
}

fn unsigned(spec: &TagSpec, v: u64) -> Value {
    if spec.is_scaled() {
        scaled(spec, v as f64)
    } else {
        Value::U64(v)
    }
}

fn signed(spec: &TagSpec, v: i64) -> Value {
    if spec.is_scaled() {
        scaled(spec, v as f64)
    } else {
        Value::I64(v)
    }
}

fn decode_string(regs: &[u16], order: WordOrder) -> Value {
    let mut text = String::with_capacity(regs.len() * 2);
    'regs: for r in regs {
        let [hi, lo] = r.to_be_bytes();
        let pair = match order {
            WordOrder::BADC | WordOrder::DCBA => [lo, hi],
            WordOrder::ABCD | WordOrder::CDAB => [hi, lo],
        };
        for b in pair {
            if b == 0 {
                break 'regs;
            }
            text.push(char::from(b));
        }
    }
    let trimmed = text.trim_end_matches([' ', '\0']).len();
    text.truncate(trimmed);
    Value::Text(text.into())
}

/// Decodes one coil or discrete input.
pub fn decode_bit(bit: bool) -> Value {
    Value::Bool(bit)
}

#[cfg(test)]
mod tests;
