//! OPC UA values into the sample model: a [`Variant`] becomes a [`Value`], a status code a
//! [`Quality`], and a [`DataValue`] a timestamped reading. Pure; no session, no I/O.
//!
//! Numbers keep their kind (Float/Double as floats, signed and unsigned integers apart), so the
//! time-series store gets integer fields for integer nodes. DateTime becomes RFC 3339 text,
//! LocalizedText its text, ByteString base64; any other type (arrays, structures, node ids)
//! becomes its text form, so a tag never silently disappears.

use opcua::types::{DataValue, DateTime, StatusCode, Variant};
use shopfloor_core::{Quality, Text, Value};

/// How far a reading with this status can be trusted.
pub fn quality(status: StatusCode) -> Quality {
    if status.is_good() {
        Quality::Good
    } else if status.is_uncertain() {
        Quality::Uncertain
    } else {
        Quality::Bad
    }
}

/// The sample value of a variant.
pub fn value(v: &Variant) -> Value {
    match v {
        Variant::Empty => Value::Null,
        Variant::Boolean(b) => Value::Bool(*b),
        Variant::SByte(x) => Value::I64(i64::from(*x)),
        Variant::Int16(x) => Value::I64(i64::from(*x)),
        Variant::Int32(x) => Value::I64(i64::from(*x)),
        Variant::Int64(x) => Value::I64(*x),
        Variant::Byte(x) => Value::U64(u64::from(*x)),
        Variant::UInt16(x) => Value::U64(u64::from(*x)),
        Variant::UInt32(x) => Value::U64(u64::from(*x)),
        Variant::UInt64(x) => Value::U64(*x),
        Variant::Float(x) => Value::F64(f64::from(*x)),
        Variant::Double(x) => Value::F64(*x),
        Variant::String(s) => text(s.value().as_deref().unwrap_or("")),
        Variant::LocalizedText(t) => text(t.text.value().as_deref().unwrap_or("")),
        Variant::ByteString(b) => text(&if b.is_null() {
            String::new()
        } else {
            b.as_base64()
        }),
        Variant::DateTime(d) => text(&d.to_string()),
        Variant::StatusCode(s) => text(&s.to_string()),
        other => text(&other.to_string()),
    }
}

fn text(s: &str) -> Value {
    Value::Text(Text::from(s.to_owned()))
}

/// Milliseconds since the Unix epoch of an OPC UA time; `None` for the null time.
pub fn millis(t: &DateTime) -> Option<i64> {
    (!t.is_null()).then(|| t.as_chrono().timestamp_millis())
}

/// A data value as (timestamp, value, quality): the source timestamp where the server gives
/// one, else its server timestamp, else the time `now` gives (asked only then); a bad status
/// carries no value.
pub fn reading(dv: &DataValue, now: impl FnOnce() -> i64) -> (i64, Value, Quality) {
    let q = quality(dv.status.unwrap_or(StatusCode::Good));
    let ts = dv
        .source_timestamp
        .as_ref()
        .and_then(millis)
        .or_else(|| dv.server_timestamp.as_ref().and_then(millis))
        .unwrap_or_else(now);
    let v = match (&dv.value, q) {
        (_, Quality::Bad) | (None, _) => Value::Null,
        (Some(v), _) => value(v),
    };
    (ts, v, q)
}

#[cfg(test)]
mod tests;
