//! Topics and JSON payloads of the MQTT contract, and ([`parse`]) their inverse. Pure: no I/O.
//!
//! Written by hand rather than through serde: a payload is a handful of fixed keys, and the
//! per-sample cost is what the end-to-end benchmark measures. Text goes through serde_json so
//! that its escaping is exactly JSON's. What runs per sample is `#[inline]`: it is called from
//! the sinks' crate, and inlined there as it was when it lived beside them.

use shopfloor_core::{MachineStatus, Quality, Sample, ValueRef};

pub mod parse;

/// Appends a JSON string literal.
#[inline]
pub fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail; serde_json escapes quotes, backslashes and controls.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends the JSON for a value: a number, `true`/`false`, a string, or `null`.
#[inline]
pub fn push_value(out: &mut Vec<u8>, v: ValueRef<'_>) {
    match v {
        ValueRef::Null => out.extend_from_slice(b"null"),
        ValueRef::Bool(true) => out.extend_from_slice(b"true"),
        ValueRef::Bool(false) => out.extend_from_slice(b"false"),
        ValueRef::I64(x) => out.extend_from_slice(itoa::Buffer::new().format(x).as_bytes()),
        ValueRef::U64(x) => out.extend_from_slice(itoa::Buffer::new().format(x).as_bytes()),
        ValueRef::F64(x) if x.is_finite() => {
            out.extend_from_slice(ryu::Buffer::new().format_finite(x).as_bytes())
        }
        ValueRef::F64(_) => out.extend_from_slice(b"null"),
        ValueRef::Text(t) => push_json_str(out, t),
    }
}

#[inline]
fn push_u64(out: &mut Vec<u8>, x: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(x).as_bytes());
}

#[inline]
fn push_i64(out: &mut Vec<u8>, x: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(x).as_bytes());
}

/// The pre-escaped `,"unit":"…"` suffix of a tag, or empty.
pub fn unit_suffix(unit: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(u) = unit {
        out.extend_from_slice(b",\"unit\":");
        push_json_str(&mut out, u);
    }
    out
}

/// Layout `tag`: `{"timestamp_ms":T,"value":V,"quality":"good","seq":S[,"unit":"…"]}`.
#[inline]
pub fn tag_payload(out: &mut Vec<u8>, s: &Sample, unit_suffix: &[u8]) {
    out.push(b'{');
    tag_fields(out, s, unit_suffix);
    out.push(b'}');
}

/// The members of the `tag` payload without its braces, for objects that add their own.
#[inline]
pub fn tag_fields(out: &mut Vec<u8>, s: &Sample, unit_suffix: &[u8]) {
    out.extend_from_slice(b"\"timestamp_ms\":");
    push_i64(out, s.timestamp_ms);
    out.extend_from_slice(b",\"value\":");
    push_value(out, s.value());
    out.extend_from_slice(b",\"quality\":\"");
    out.extend_from_slice(s.quality().as_str().as_bytes());
    out.extend_from_slice(b"\",\"seq\":");
    push_u64(out, s.seq);
    out.extend_from_slice(unit_suffix);
}

/// Layout `machine`: `{"timestamp_ms":T,"seq":S,"values":{"tag":V,…}}`; `null` for bad.
pub fn machine_payload<'a>(
    out: &mut Vec<u8>,
    timestamp_ms: i64,
    seq: u64,
    values: impl Iterator<Item = (&'a str, ValueRef<'a>, Quality)>,
) {
    out.extend_from_slice(b"{\"timestamp_ms\":");
    push_i64(out, timestamp_ms);
    out.extend_from_slice(b",\"seq\":");
    push_u64(out, seq);
    out.extend_from_slice(b",\"values\":{");
    for (i, (name, v, q)) in values.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_json_str(out, name);
        out.push(b':');
        if q == Quality::Bad {
            out.extend_from_slice(b"null");
        } else {
            push_value(out, v);
        }
    }
    out.extend_from_slice(b"}}");
}

/// A machine's retained `_status`: `{"state":…,"timestamp_ms":T[,"error":"…"]}`.
///
/// `kind` (the machine's configured kind) is on top of the contract: it lets a recorder, which
/// sees the retained status before any sample, store the machine under its kind.
pub fn status_payload(status: &MachineStatus, kind: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"{\"state\":\"");
    out.extend_from_slice(status.state.as_str().as_bytes());
    out.extend_from_slice(b"\",\"timestamp_ms\":");
    push_i64(&mut out, status.since_ms);
    if let Some(e) = &status.error {
        out.extend_from_slice(b",\"error\":");
        push_json_str(&mut out, e);
    }
    if !kind.is_empty() {
        out.extend_from_slice(b",\"kind\":");
        push_json_str(&mut out, kind);
    }
    out.push(b'}');
    out
}

/// The gateway's retained status, `{"state":"online"}` or `{"state":"offline"}`.
pub fn gateway_payload(online: bool) -> Vec<u8> {
    if online {
        b"{\"state\":\"online\"}".to_vec()
    } else {
        b"{\"state\":\"offline\"}".to_vec()
    }
}

/// Topic of a sample in layout `tag`.
pub fn tag_topic(prefix: &str, machine: &str, tag: &str) -> String {
    format!("{prefix}/{machine}/{tag}")
}

/// Topic of a machine's messages in layout `machine`.
pub fn machine_topic(prefix: &str, machine: &str) -> String {
    format!("{prefix}/{machine}")
}

/// Topic of a machine's retained status.
pub fn status_topic(prefix: &str, machine: &str) -> String {
    format!("{prefix}/{machine}/_status")
}

/// Topic of the gateway's retained status and last will.
pub fn gateway_topic(prefix: &str, gateway: &str) -> String {
    format!("{prefix}/_gateway/{gateway}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use shopfloor_core::{MachineId, MachineState, TagId, Text, Value};

    fn sample(v: Value, q: Quality) -> Sample {
        Sample::new(MachineId(0), TagId(0), 1_795_379_533_423, 42, v, q)
    }

    fn tag_json(v: Value, q: Quality, unit: Option<&str>) -> serde_json::Value {
        let mut out = Vec::new();
        tag_payload(&mut out, &sample(v, q), &unit_suffix(unit));
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn tag_payloads_match_the_contract() {
        let j = tag_json(Value::F64(1200.5), Quality::Good, Some("rpm"));
        assert_eq!(
            j,
            serde_json::json!({"timestamp_ms": 1_795_379_533_423_i64, "value": 1200.5,
                "quality": "good", "seq": 42, "unit": "rpm"})
        );
        let cases = [
            (Value::Bool(true), serde_json::json!(true)),
            (Value::I64(-7), serde_json::json!(-7)),
            (Value::U64(u64::MAX), serde_json::json!(u64::MAX)),
            (
                Value::Text(Text::from("a\"b\\c\n")),
                serde_json::json!("a\"b\\c\n"),
            ),
            (Value::F64(1e-7), serde_json::json!(1e-7)),
        ];
        for (v, want) in cases {
            let j = tag_json(v, Quality::Uncertain, None);
            assert_eq!(j["value"], want);
            assert_eq!(j["quality"], "uncertain");
            assert!(j.get("unit").is_none());
        }
    }

    #[test]
    fn bad_and_non_finite_values_are_null_and_bad() {
        for v in [
            Value::F64(f64::NAN),
            Value::F64(f64::INFINITY),
            Value::I64(3),
        ] {
            let j = tag_json(v, Quality::Bad, None);
            assert_eq!(j["value"], serde_json::Value::Null);
            assert_eq!(j["quality"], "bad");
        }
        let j = tag_json(Value::F64(f64::NEG_INFINITY), Quality::Good, None);
        assert_eq!(
            (j["value"].clone(), j["quality"].clone()),
            (serde_json::Value::Null, "bad".into())
        );
    }

    #[test]
    fn machine_payload_nulls_bad_tags() {
        let mut out = Vec::new();
        let values = vec![
            ("spindle_speed", ValueRef::F64(1200.5), Quality::Good),
            ("door_open", ValueRef::Bool(false), Quality::Good),
            ("program", ValueRef::Null, Quality::Bad),
        ];
        machine_payload(&mut out, 5, 7, values.into_iter());
        let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"timestamp_ms": 5, "seq": 7,
                "values": {"spindle_speed": 1200.5, "door_open": false, "program": null}})
        );
    }

    #[test]
    fn status_payloads() {
        let online = MachineStatus {
            state: MachineState::Online,
            since_ms: 9,
            error: None,
        };
        let j: serde_json::Value = serde_json::from_slice(&status_payload(&online, "cnc")).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"state": "online", "timestamp_ms": 9, "kind": "cnc"})
        );
        let j: serde_json::Value = serde_json::from_slice(&status_payload(&online, "")).unwrap();
        assert_eq!(j, serde_json::json!({"state": "online", "timestamp_ms": 9}));
        let offline = MachineStatus {
            state: MachineState::Offline,
            since_ms: 9,
            error: Some("connect 1.2.3.4:502: refused".into()),
        };
        let j: serde_json::Value =
            serde_json::from_slice(&status_payload(&offline, "cnc")).unwrap();
        assert_eq!(j["error"], "connect 1.2.3.4:502: refused");
        assert_eq!(gateway_payload(false), br#"{"state":"offline"}"#.to_vec());
        assert_eq!(gateway_topic("p", "gw"), "p/_gateway/gw");
        assert_eq!(status_topic("p", "m"), "p/m/_status");
    }
}
