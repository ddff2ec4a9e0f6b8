//! A shopfloor gateway's MQTT messages back into readings. Pure: no I/O.
//!
//! Layout `tag`: topic `{prefix}/{machine}/{tag}`, payload
//! `{"timestamp_ms","value","quality","seq"[,"unit"]}`. Layout `machine`: topic
//! `{prefix}/{machine}`, payload `{"timestamp_ms","seq","values":{tag: value}}` (a `null` value
//! is a bad reading; the layout carries no other quality). The payload tells the layouts apart,
//! so one subscription may take both. Statuses (`…/_status`, `…/_gateway/…`) are not readings.
//!
//! Names learnt from a topic or payload obey [`name_ok`] or the message is refused
//! ([`ParseError::Name`]): they become file names and labels downstream.
//!
//! Types come back as they went out: the gateway writes floats with a decimal point or an
//! exponent, so `1200.0` is a float and `1200` an integer (unsigned unless negative).

use shopfloor_core::{Quality, Text, Value};
use thiserror::Error;

/// One reading recovered from a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Machine id (the topic's machine segment).
    pub machine: String,
    /// Tag name.
    pub tag: String,
    /// UTC milliseconds.
    pub timestamp_ms: i64,
    /// The sender's sequence number (per tag, or per machine in layout `machine`).
    pub seq: u64,
    /// The value; `Null` when bad.
    pub value: Value,
    /// Its quality.
    pub quality: Quality,
    /// The unit, when the message names one.
    pub unit: Option<String>,
}

/// What a message held.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// Readings (one in layout `tag`, one per tag in layout `machine`).
    Readings(Vec<Reading>),
    /// A machine or gateway status: nothing to store.
    Status,
}

/// A message that is not a shopfloor payload.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON.
    #[error("payload is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not shaped like either layout.
    #[error("not a shopfloor payload: {0}")]
    Shape(&'static str),
    /// The topic has no machine (and tag) segment.
    #[error("topic {0:?} names no machine")]
    Topic(String),
    /// A machine or tag name breaks the name rule ([`name_ok`]).
    #[error(
        "{0:?} is not a name: at most {MAX_NAME} characters of A-Z a-z 0-9 _ . : -, not . or .."
    )]
    Name(String),
}

/// Longest machine or tag name learnt from the network.
pub const MAX_NAME: usize = 64;

/// The contract's rule for a name learnt from a topic or payload: 1 to [`MAX_NAME`] characters
/// of `[A-Za-z0-9_.:-]`, and not `.` or `..`, so that it can never be a path of its own.
pub fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

fn checked(name: &str) -> Result<&str, ParseError> {
    if name_ok(name) {
        Ok(name)
    } else {
        Err(ParseError::Name(name.chars().take(MAX_NAME + 1).collect()))
    }
}

fn value(v: &serde_json::Value) -> Result<Value, ParseError> {
    Ok(match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::U64(u)
            } else if let Some(i) = n.as_i64() {
                Value::I64(i)
            } else {
                Value::F64(
                    n.as_f64()
                        .ok_or(ParseError::Shape("a number out of range"))?,
                )
            }
        }
        serde_json::Value::String(s) => Value::Text(Text::from(s.as_str())),
        _ => return Err(ParseError::Shape("a value that is an array or object")),
    })
}

fn quality(q: Option<&serde_json::Value>) -> Result<Quality, ParseError> {
    q.and_then(serde_json::Value::as_str)
        .and_then(Quality::parse)
        .ok_or(ParseError::Shape("quality must be good, uncertain or bad"))
}

fn int_field(
    o: &serde_json::Map<String, serde_json::Value>,
    key: &'static str,
) -> Result<u64, ParseError> {
    o.get(key)
        .and_then(serde_json::Value::as_u64)
        .ok_or(ParseError::Shape(key))
}

/// Parses one message.
pub fn parse(topic: &str, payload: &[u8]) -> Result<Parsed, ParseError> {
    let mut segments = topic.rsplit('/');
    let last = segments.next().unwrap_or_default();
    let before = segments.next();
    if last == "_status" || before == Some("_gateway") {
        return Ok(Parsed::Status);
    }
    let json: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let o = json
        .as_object()
        .ok_or(ParseError::Shape("the payload is not an object"))?;
    let timestamp_ms = o
        .get("timestamp_ms")
        .and_then(serde_json::Value::as_i64)
        .ok_or(ParseError::Shape("timestamp_ms"))?;
    let seq = int_field(o, "seq")?;
    if let Some(values) = o.get("values") {
        let values = values
            .as_object()
            .ok_or(ParseError::Shape("values is not an object"))?;
        if last.is_empty() {
            return Err(ParseError::Topic(topic.into()));
        }
        let machine = checked(last)?;
        let readings = values
            .iter()
            .map(|(tag, v)| {
                checked(tag)?;
                let value = value(v)?;
                let quality = if value == Value::Null {
                    Quality::Bad
                } else {
                    Quality::Good
                };
                Ok(Reading {
                    machine: machine.into(),
                    tag: tag.clone(),
                    timestamp_ms,
                    seq,
                    value,
                    quality,
                    unit: None,
                })
            })
            .collect::<Result<Vec<_>, ParseError>>()?;
        return Ok(Parsed::Readings(readings));
    }
    let raw = o.get("value").ok_or(ParseError::Shape("value"))?;
    let machine = before
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ParseError::Topic(topic.into()))?;
    if last.is_empty() {
        return Err(ParseError::Topic(topic.into()));
    }
    let machine = checked(machine)?;
    let tag = checked(last)?;
    let mut quality = quality(o.get("quality"))?;
    let mut value = value(raw)?;
    // The model's rule: the value is null exactly when the quality is bad.
    if quality == Quality::Bad {
        value = Value::Null;
    } else if value == Value::Null {
        quality = Quality::Bad;
    }
    Ok(Parsed::Readings(vec![Reading {
        machine: machine.into(),
        tag: tag.into(),
        timestamp_ms,
        seq,
        value,
        quality,
        unit: o
            .get("unit")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned),
    }]))
}

#[cfg(test)]
mod tests;
