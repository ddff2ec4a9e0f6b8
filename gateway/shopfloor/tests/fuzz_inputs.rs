//! Fuzz targets for everything the gateway reads from outside besides Modbus replies (those are
//! in `protocols/modbus/tests`): config files, MQTT payloads a recorder receives, the bytes a
//! broker sends the MQTT sink, spool files found on disk, MQTT messages read back from the
//! spool, and line-protocol encoding of any point, read back by InfluxDB's own parser. Each runs
//! as a test on stable (bolero), first over its committed corpus in
//! `tests/__fuzz__/TARGET/corpus` (real inputs), then on random inputs for
//! `BOLERO_RANDOM_TEST_TIME_MS` (1 s by default, 60 s in `tests/run`);
//! `cargo bolero test --package shopfloor --test fuzz_inputs TARGET` fuzzes it with coverage.

use shopfloor::config::Config;
use shopfloor::sink::csv;
use shopfloor::sink::mqtt::record;
use shopfloor_contract::json::parse::{Parsed, name_ok, parse};
use shopfloor_contract::line;
use shopfloor_core::{
    Catalog, MachineId, MachineInfo, Quality, Sample, TagId, TagInfo, Text, Value,
};
use shopfloor_mqtt::wire;
use shopfloor_spool::{Spool, frame};
use std::path::{Component, Path};

#[test]
fn any_config_text_is_parsed_or_refused() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        let _ = Config::parse(Path::new("fuzz.toml"), &text);
    });
}

/// A fuzz input as an MQTT message: the topic, a line break, the payload.
fn message(bytes: &[u8]) -> (std::borrow::Cow<'_, str>, &[u8]) {
    let (topic, payload) = match bytes.iter().position(|b| *b == b'\n') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &[][..]),
    };
    (String::from_utf8_lossy(topic), payload)
}

/// Input: the topic, a line break, the payload.
#[test]
fn any_mqtt_message_is_parsed_or_refused() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let (topic, payload) = message(bytes);
        if let Ok(Parsed::Readings(readings)) = parse(&topic, payload) {
            for r in readings {
                // The model's rule holds for whatever arrives.
                assert_eq!(r.value == Value::Null, r.quality == Quality::Bad, "{r:?}");
            }
        }
    });
}

/// Input as above. No machine name a recorder accepts makes a sink write outside its
/// directory: the CSV file of any accepted reading is two plain components under it.
#[test]
fn any_recorded_name_stays_inside_the_sink_directory() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let (topic, payload) = message(bytes);
        let dir = Path::new("/data/csv");
        if let Ok(Parsed::Readings(readings)) = parse(&topic, payload) {
            for r in readings {
                let path = csv::day_file(dir, &r.machine, "2026-12-01");
                let rest = path.strip_prefix(dir).expect("under the directory");
                let parts: Vec<_> = rest.components().collect();
                assert_eq!(parts.len(), 2, "{path:?}");
                assert!(
                    parts.iter().all(|c| matches!(c, Component::Normal(_))),
                    "{path:?}"
                );
                assert!(name_ok(&r.tag), "{:?}", r.tag);
            }
        }
    });
}

/// Whatever a broker sends is framed packet by packet, each taking at least its two header
/// bytes and no more than is there, until the rest is incomplete or refused.
#[test]
fn any_broker_bytes_are_framed_or_refused() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let mut rest = bytes;
        while let Ok(Some((_, used))) = wire::decode(rest, 64 * 1024) {
            assert!(used >= 2 && used <= rest.len(), "{used} of {}", rest.len());
            rest = &rest[used..];
        }
    });
}

#[test]
fn any_spooled_message_is_decoded_back_to_its_bytes_or_refused() {
    bolero::check!().for_each(|bytes: &[u8]| {
        if let Some(m) = record::decode(bytes) {
            let mut again = Vec::new();
            record::encode(&mut again, &m.topic, &m.payload, m.qos, m.retain);
            assert_eq!(again, bytes);
        }
    });
}

#[test]
fn any_spool_file_opens_and_drains_without_panic() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let _ = frame::decode(bytes);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("0000000000000000.seg"), bytes).unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        let mut n = 0;
        while let Ok(Some(_)) = spool.peek() {
            spool.ack().unwrap();
            n += 1;
            assert!(n <= bytes.len(), "more records than bytes");
        }
    });
}

/// The encoder against InfluxDB's own parser: any names (a recorder learns machine ids and tag
/// names from any publisher), any text, any values: one line that reads back as exactly what
/// was written, but for the documented changes (control characters in names and CR/LF in text
/// as spaces, a trailing backslash of a name dropped, an empty name as `-`).
#[test]
fn any_point_reads_back_through_influxdbs_parser() {
    // Names and text are drawn from the characters line protocol treats specially (and a few
    // others): random Unicode would almost never end a name in a backslash.
    const CHARS: [char; 16] = [
        'a', 'Z', '0', '_', ' ', ',', '=', '\\', '"', '#', '\n', '\r', '\t', '\0', 'é', '✓',
    ];
    let text = |bytes: &[u8]| -> String {
        bytes
            .iter()
            .map(|b| CHARS[usize::from(*b) % CHARS.len()])
            .collect()
    };
    type Bytes = Vec<u8>;
    type Point = (Bytes, Bytes, Bytes, Bytes, Bytes, f64, i64, u64, bool, i64);
    bolero::check!().with_type::<Point>().for_each(
        |(measurement, kind, id, tag, value, f, i, u, b, ts)| {
            let (measurement, kind, id, tag, text) = (
                &text(measurement),
                &text(kind),
                &text(id),
                &text(tag),
                &text(value),
            );
            // The config refuses a measurement that is empty, a comment or ends in a backslash.
            if measurement.is_empty() || measurement.starts_with('#') || measurement.ends_with('\\')
            {
                return;
            }
            let name = |s: &str| -> String {
                let s = s.trim_end_matches('\\');
                if s.is_empty() {
                    return "-".into();
                }
                s.chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect()
            };
            let mut catalog = Catalog::new();
            let tags = ["f", "i", "u", "b", "x"]
                .iter()
                .map(|suffix| TagInfo {
                    name: format!("{tag}{suffix}"),
                    unit: None,
                })
                .collect();
            catalog
                .add(MachineInfo {
                    id: id.clone(),
                    kind: kind.clone(),
                    protocol: "fuzz".into(),
                    tags,
                })
                .unwrap();
            let s =
                |t: u16, v: Value| Sample::new(MachineId(0), TagId(t), *ts, 1, v, Quality::Good);
            let batch = [
                s(0, Value::F64(*f)),
                s(1, Value::I64(*i)),
                s(2, Value::U64(*u)),
                s(3, Value::Bool(*b)),
                s(4, Value::Text(Text::from(text.as_str()))),
            ];
            let mut out = String::new();
            assert_eq!(line::encode(&mut out, &catalog, measurement, &batch), 1);
            assert!(out.ends_with('\n'));
            let mut lines = influxdb_line_protocol::parse_lines(out.trim_end_matches('\n'));
            let p = match lines.next() {
                Some(Ok(p)) => p,
                other => panic!("{out:?} does not parse: {other:?}"),
            };
            assert!(lines.next().is_none(), "{out:?} is more than one line");

            assert_eq!(p.series.measurement.to_string(), name(measurement));
            let got_tags: Vec<(String, String)> = p
                .series
                .tag_set
                .iter()
                .flatten()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(
                got_tags,
                vec![("machine".into(), name(id)), ("kind".into(), name(kind))],
                "{out:?}"
            );
            use influxdb_line_protocol::FieldValue as F;
            let field = |suffix: &str| p.field_value(&name(&format!("{tag}{suffix}")));
            match field("f") {
                Some(F::F64(v)) => assert_eq!(*v, *f, "{out:?}"),
                None => assert!(!f.is_finite(), "{out:?}: {f} missing"),
                other => panic!("{out:?}: {other:?}"),
            }
            assert!(matches!(field("i"), Some(F::I64(v)) if v == i), "{out:?}");
            assert!(matches!(field("u"), Some(F::U64(v)) if v == u), "{out:?}");
            assert!(
                matches!(field("b"), Some(F::Boolean(v)) if v == b),
                "{out:?}"
            );
            let text = text.replace(['\n', '\r'], " ");
            assert!(
                matches!(field("x"), Some(F::String(v)) if v.as_str() == text),
                "{out:?}: {:?}",
                field("x")
            );
            assert_eq!(p.timestamp, Some(*ts));
        },
    );
}
