//! Samples to InfluxDB line protocol, as the contract's time-series schema says:
//! `{measurement},machine={id},kind={kind} {tag}={value}[,{tag}={value}…] {timestamp}` with one
//! point per machine and timestamp, bad-quality tags left out, floats as floats, signed integers
//! with `i`, unsigned with `u`, bools as `true`/`false`, text as quoted strings; timestamps in
//! milliseconds (write with `precision=ms`). Pure: no I/O.
//!
//! Escaping (line protocol reference): measurement: comma, space; tag keys, tag values and field
//! keys: comma, equals sign, space, and in all names the backslash itself; string field values:
//! double quote and backslash. A newline ends a line and has no escape, so CR and LF are written
//! as spaces in text, and every control character (newlines, tabs, NUL) as a space in names.
//!
//! Names come from configs and, in a recorder, from any MQTT publisher, so any text must give a
//! line the store takes (one it refuses costs the whole batch). A backslash in a name is escaped
//! (`\\`: InfluxDB 3 reads one backslash back, InfluxDB 1.x/2.x frame the line right and keep
//! both); one at the end of a name is dropped, since every parser takes it for the escape of
//! the separator after it; an empty name is written `-`.

use shopfloor_core::{Catalog, Quality, Sample, ValueRef};

#[inline]
fn push_escaped(out: &mut String, s: &str, specials: &[char]) {
    let s = s.trim_end_matches('\\');
    if s.is_empty() {
        out.push('-');
        return;
    }
    for c in s.chars() {
        // No escape exists for these: a space, which is then escaped like any other.
        let c = if c.is_control() { ' ' } else { c };
        if c == '\\' || specials.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Appends a measurement name.
pub fn measurement(out: &mut String, s: &str) {
    push_escaped(out, s, &[',', ' ']);
}

/// Appends a tag key, tag value or field key.
#[inline]
pub fn key(out: &mut String, s: &str) {
    push_escaped(out, s, &[',', '=', ' ']);
}

/// Appends a string field value, quoted.
pub fn string_value(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a field value of the sample's type; false when it has none (bad quality).
#[inline]
pub fn field_value(out: &mut String, s: &Sample) -> bool {
    if s.quality() == Quality::Bad {
        return false;
    }
    match s.value() {
        ValueRef::Null => return false,
        ValueRef::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        ValueRef::I64(v) => {
            out.push_str(itoa::Buffer::new().format(v));
            out.push('i');
        }
        ValueRef::U64(v) => {
            out.push_str(itoa::Buffer::new().format(v));
            out.push('u');
        }
        ValueRef::F64(v) if v.is_finite() => out.push_str(ryu::Buffer::new().format_finite(v)),
        ValueRef::F64(_) => return false,
        ValueRef::Text(t) => string_value(out, t),
    }
    true
}

/// Appends the points of `batch`, one line per machine and timestamp (samples of one poll cycle
/// arrive together and share their timestamp). Returns how many lines were written; a point
/// whose every tag is bad is left out.
pub fn encode(
    out: &mut String,
    catalog: &Catalog,
    measurement_name: &str,
    batch: &[Sample],
) -> usize {
    let mut lines = 0;
    for group in batch.chunk_by(|a, b| a.machine == b.machine && a.timestamp_ms == b.timestamp_ms) {
        let Some(m) = catalog.machine(group[0].machine) else {
            continue;
        };
        let start = out.len();
        measurement(out, measurement_name);
        out.push_str(",machine=");
        key(out, &m.id);
        out.push_str(",kind=");
        key(out, &m.kind);
        let mut fields = 0;
        for s in group {
            let Some(t) = m.tags.get(s.tag.index()) else {
                continue;
            };
            let mark = out.len();
            out.push(if fields == 0 { ' ' } else { ',' });
            key(out, &t.name);
            out.push('=');
            if field_value(out, s) {
                fields += 1;
            } else {
                out.truncate(mark);
            }
        }
        if fields == 0 {
            out.truncate(start);
            continue;
        }
        out.push(' ');
        out.push_str(itoa::Buffer::new().format(group[0].timestamp_ms));
        out.push('\n');
        lines += 1;
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use shopfloor_core::{MachineId, MachineInfo, TagId, TagInfo, Text, Value};

    fn catalog(machine: &str, kind: &str, tags: &[&str]) -> Catalog {
        let mut c = Catalog::new();
        c.add(MachineInfo {
            id: machine.into(),
            kind: kind.into(),
            protocol: "modbus-tcp".into(),
            tags: tags
                .iter()
                .map(|t| TagInfo {
                    name: (*t).into(),
                    unit: None,
                })
                .collect(),
        })
        .unwrap();
        c
    }

    fn s(tag: u16, ts: i64, v: Value, q: Quality) -> Sample {
        Sample::new(MachineId(0), TagId(tag), ts, 1, v, q)
    }

    #[test]
    fn a_point_per_machine_and_timestamp_with_typed_fields() {
        let c = catalog(
            "cnc-1",
            "cnc",
            &["speed", "count", "delta", "door", "program", "broken"],
        );
        let batch = [
            s(0, 1000, Value::F64(1200.5), Quality::Good),
            s(1, 1000, Value::U64(42), Quality::Good),
            s(2, 1000, Value::I64(-3), Quality::Uncertain),
            s(3, 1000, Value::Bool(true), Quality::Good),
            s(4, 1000, Value::Text(Text::from("PRG \"7\"")), Quality::Good),
            s(5, 1000, Value::Null, Quality::Bad),
            s(0, 2000, Value::F64(3.0), Quality::Good),
        ];
        let mut out = String::new();
        assert_eq!(encode(&mut out, &c, "shopfloor", &batch), 2);
        assert_eq!(
            out,
            "shopfloor,machine=cnc-1,kind=cnc speed=1200.5,count=42u,delta=-3i,door=true,program=\"PRG \\\"7\\\"\" 1000\n\
             shopfloor,machine=cnc-1,kind=cnc speed=3.0 2000\n"
        );
    }

    #[test]
    fn a_point_of_only_bad_tags_is_left_out() {
        let c = catalog("m", "k", &["a"]);
        let mut out = String::new();
        assert_eq!(
            encode(&mut out, &c, "x", &[s(0, 1, Value::Null, Quality::Bad)]),
            0
        );
        assert!(out.is_empty());
    }

    #[test]
    fn newlines_never_end_a_line_early() {
        let c = catalog("m\nx", "k", &["t"]);
        let mut out = String::new();
        encode(
            &mut out,
            &c,
            "x",
            &[s(0, 5, Value::Text(Text::from("a\nb\rc")), Quality::Good)],
        );
        assert_eq!(out, "x,machine=m\\ x,kind=k t=\"a b c\" 5\n");
    }

    /// What InfluxDB's own parser (the `influxdb-line-protocol` crate) reads back from one line:
    /// measurement, tags, fields (typed, as text) and timestamp.
    type Pairs = Vec<(String, String)>;

    fn parse(line: &str) -> (String, Pairs, Pairs, Option<i64>) {
        let mut lines = influxdb_line_protocol::parse_lines(line);
        let parsed = match lines.next() {
            Some(Ok(p)) => p,
            other => panic!("{line:?} does not parse: {other:?}"),
        };
        assert!(lines.next().is_none(), "{line:?} is more than one line");
        let tags = parsed
            .series
            .tag_set
            .iter()
            .flatten()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let fields = parsed
            .field_set
            .iter()
            .map(|(k, v)| (k.to_string(), format!("{v:?}")))
            .collect();
        (
            parsed.series.measurement.to_string(),
            tags,
            fields,
            parsed.timestamp,
        )
    }

    #[test]
    fn names_read_back_as_written() {
        let c = catalog("m 1,a=b", "line\\ 3\\", &["t", ""]);
        let mut out = String::new();
        encode(
            &mut out,
            &c,
            "my meas,x\\",
            &[
                s(0, 5, Value::F64(1.0), Quality::Good),
                s(1, 5, Value::U64(2), Quality::Good),
            ],
        );
        assert_eq!(
            out,
            "my\\ meas\\,x,machine=m\\ 1\\,a\\=b,kind=line\\\\\\ 3 t=1.0,-=2u 5\n"
        );
        let (meas, tags, fields, ts) = parse(out.trim_end());
        assert_eq!(meas, "my meas,x", "a trailing backslash is dropped");
        assert_eq!(
            tags,
            vec![
                ("machine".to_owned(), "m 1,a=b".to_owned()),
                ("kind".to_owned(), "line\\ 3".to_owned())
            ]
        );
        assert_eq!(
            fields,
            vec![
                ("t".to_owned(), "F64(1.0)".to_owned()),
                ("-".to_owned(), "U64(2)".to_owned())
            ]
        );
        assert_eq!(ts, Some(5));
    }

    #[test]
    fn control_characters_in_names_are_spaces() {
        let c = catalog("m", "a\tb\0c", &["t"]);
        let mut out = String::new();
        encode(
            &mut out,
            &c,
            "x",
            &[s(0, 5, Value::Bool(true), Quality::Good)],
        );
        assert_eq!(out, "x,machine=m,kind=a\\ b\\ c t=true 5\n");
    }

    proptest! {
        /// Any text survives as a string field: quotes and backslashes escaped, nothing lost.
        #[test]
        fn string_fields_round_trip(text in "[ -~]{0,40}") {
            let mut out = String::new();
            string_value(&mut out, &text);
            prop_assert!(out.starts_with('"') && out.ends_with('"'));
            let inner = &out[1..out.len() - 1];
            let mut back = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    back.push(chars.next().unwrap());
                } else {
                    prop_assert!(c != '"', "an unescaped quote in {}", out);
                    back.push(c);
                }
            }
            prop_assert_eq!(back, text);
        }

        /// Machine ids and tag names of the config's alphabets give lines InfluxDB's parser
        /// reads back exactly, every finite value in its type.
        #[test]
        fn lines_parse_back(
            id in "[a-z0-9_-]{1,12}",
            tag in "[a-z0-9_]{1,12}",
            v in any::<f64>().prop_filter("finite", |v| v.is_finite()),
            ts in 0i64..4_000_000_000_000,
        ) {
            let c = catalog(&id, "cnc", &[&tag]);
            let mut out = String::new();
            encode(&mut out, &c, "shopfloor", &[s(0, ts, Value::F64(v), Quality::Good)]);
            let (meas, tags, fields, t) = parse(out.trim_end_matches('\n'));
            prop_assert_eq!(meas, "shopfloor");
            prop_assert_eq!(tags, vec![("machine".to_owned(), id), ("kind".to_owned(), "cnc".to_owned())]);
            prop_assert_eq!(fields, vec![(tag, format!("F64({v:?})"))]);
            prop_assert_eq!(t, Some(ts));
        }
    }
}
