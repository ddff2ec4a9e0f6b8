//! Values to registers: the inverse of [`crate::decode`], for the simulated machines and for
//! round-trip tests. Pure. Scale and offset are not applied: this writes raw values.

use crate::decode::reorder;
use crate::register::{DataType, TagSpec, WordOrder};
use shopfloor_core::Value;
use thiserror::Error;

/// A value cannot be written as the tag's type.
#[derive(Debug, Error, PartialEq)]
pub enum EncodeError {
    /// The value is of another kind than the tag's type (text for a number, ...).
    #[error("a {value} cannot be written as {data_type}")]
    WrongKind {
        /// The tag's type.
        data_type: DataType,
        /// What was given.
        value: &'static str,
    },
    /// The number does not fit the type.
    #[error("{value} does not fit {data_type}")]
    OutOfRange {
        /// The tag's type.
        data_type: DataType,
        /// The number, printed.
        value: String,
    },
    /// The text has a character that is not ASCII, or is longer than the tag.
    #[error("text {0:?} is not ASCII or is too long for the tag")]
    BadText(String),
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::I64(_) | Value::U64(_) | Value::F64(_) => "number",
        Value::Text(_) => "text",
    }
}

fn as_i128(spec: &TagSpec, v: &Value) -> Result<i128, EncodeError> {
    match *v {
        Value::I64(x) => Ok(i128::from(x)),
        Value::U64(x) => Ok(i128::from(x)),
        Value::F64(x) if x.fract() == 0.0 && x.abs() < 1.8e19 => Ok(x as i128),
        Value::F64(x) => Err(EncodeError::OutOfRange {
            data_type: spec.data_type,
            value: x.to_string(),
        }),
        _ => Err(EncodeError::WrongKind {
            data_type: spec.data_type,
            value: kind_name(v),
        }),
    }
}

fn int_in(spec: &TagSpec, v: &Value, lo: i128, hi: i128) -> Result<i128, EncodeError> {
    let x = as_i128(spec, v)?;
    if x < lo || x > hi {
        return Err(EncodeError::OutOfRange {
            data_type: spec.data_type,
            value: x.to_string(),
        });
    }
    Ok(x)
}

fn as_float(spec: &TagSpec, v: &Value) -> Result<f64, EncodeError> {
    v.as_f64()
        .filter(|_| !matches!(v, Value::Bool(_)))
        .ok_or(EncodeError::WrongKind {
            data_type: spec.data_type,
            value: kind_name(v),
        })
}

fn to_registers(be: &[u8], order: WordOrder) -> Vec<u16> {
    let mut wire = vec![0u8; be.len()];
    reorder(be, order, &mut wire);
    wire.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

/// Encodes `value` as the registers of `spec` (its [`TagSpec::width`] of them). A bool with a
/// `bit` sets only that bit.
pub fn encode_registers(spec: &TagSpec, value: &Value) -> Result<Vec<u16>, EncodeError> {
    let o = spec.order;
    let regs = match spec.data_type {
        DataType::Bool => {
            let on = match *value {
                Value::Bool(b) => b,
                _ => {
                    return Err(EncodeError::WrongKind {
                        data_type: spec.data_type,
                        value: kind_name(value),
                    });
                }
            };
            let word = match (on, spec.bit) {
                (false, _) => 0,
                (true, Some(bit)) => 1u16 << (bit & 15),
                (true, None) => 1,
            };
            vec![word]
        }
        DataType::U16 => to_registers(&(int_in(spec, value, 0, 0xFFFF)? as u16).to_be_bytes(), o),
        DataType::I16 => to_registers(
            &(int_in(spec, value, i16::MIN.into(), i16::MAX.into())? as i16).to_be_bytes(),
            o,
        ),
        DataType::U32 => to_registers(
            &(int_in(spec, value, 0, u32::MAX.into())? as u32).to_be_bytes(),
            o,
        ),
        DataType::I32 => to_registers(
            &(int_in(spec, value, i32::MIN.into(), i32::MAX.into())? as i32).to_be_bytes(),
            o,
        ),
        DataType::U64 => to_registers(
            &(int_in(spec, value, 0, u64::MAX.into())? as u64).to_be_bytes(),
            o,
        ),
        DataType::I64 => to_registers(
            &(int_in(spec, value, i64::MIN.into(), i64::MAX.into())? as i64).to_be_bytes(),
            o,
        ),
        DataType::F32 => to_registers(&(as_float(spec, value)? as f32).to_be_bytes(), o),
        DataType::F64 => to_registers(&as_float(spec, value)?.to_be_bytes(), o),
        DataType::String => {
            let text = match value {
                Value::Text(t) => t.as_str(),
                _ => {
                    return Err(EncodeError::WrongKind {
                        data_type: spec.data_type,
                        value: kind_name(value),
                    });
                }
            };
            let n = usize::from(spec.length) * 2;
            if !text.is_ascii() || text.len() > n {
                return Err(EncodeError::BadText(text.to_owned()));
            }
            let mut bytes = text.as_bytes().to_vec();
            bytes.resize(n, 0);
            bytes
                .chunks_exact(2)
                .map(|c| match o {
                    WordOrder::BADC | WordOrder::DCBA => u16::from_be_bytes([c[1], c[0]]),
                    WordOrder::ABCD | WordOrder::CDAB => u16::from_be_bytes([c[0], c[1]]),
                })
                .collect()
        }
    };
    Ok(regs)
}
