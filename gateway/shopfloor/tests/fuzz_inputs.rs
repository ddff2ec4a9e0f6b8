//! Fuzz targets for everything the gateway reads from outside besides Modbus replies (those are
//! in `protocols/modbus/tests`): config files, MQTT payloads a recorder receives, the bytes a
//! broker sends the MQTT sink, spool files found on disk, MQTT messages read back from the
//! spool, and line-protocol encoding of any names and text. Each runs as a test on stable (bolero), first over its committed corpus in
//! `tests/__fuzz__/TARGET/corpus` (real inputs), then on random inputs for
//! `BOLERO_RANDOM_TEST_TIME_MS` (1 s by default, 60 s in `tests/run`);
//! `cargo bolero test --package shopfloor --test fuzz_inputs TARGET` fuzzes it with coverage.

use shopfloor::config::Config;
use shopfloor::record::parse::{Parsed, parse};
use shopfloor::sink::influx::line;
use shopfloor::sink::mqtt::{record, wire};
use shopfloor::spool::{Spool, frame};
use shopfloor_core::{
    Catalog, MachineId, MachineInfo, Quality, Sample, TagId, TagInfo, Text, Value,
};
use std::path::Path;

#[test]
fn any_config_text_is_parsed_or_refused() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        let _ = Config::parse(Path::new("fuzz.toml"), &text);
    });
}

/// Input: the topic, a line break, the payload.
#[test]
fn any_mqtt_message_is_parsed_or_refused() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let (topic, payload) = match bytes.iter().position(|b| *b == b'\n') {
            Some(i) => (&bytes[..i], &bytes[i + 1..]),
            None => (bytes, &[][..]),
        };
        let topic = String::from_utf8_lossy(topic);
        if let Ok(Parsed::Readings(readings)) = parse(&topic, payload) {
            for r in readings {
                // The model's rule holds for whatever arrives.
                assert_eq!(r.value == Value::Null, r.quality == Quality::Bad, "{r:?}");
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

#[test]
fn any_names_and_text_encode_to_one_line_per_point() {
    bolero::check!()
        .with_type::<(String, String, String, String, f64, i64)>()
        .for_each(|(machine, kind, tag, text, f, i)| {
            let mut catalog = Catalog::new();
            let tags = ["f", "i", "t"]
                .iter()
                .map(|suffix| TagInfo {
                    name: format!("{tag}{suffix}"),
                    unit: None,
                })
                .collect();
            catalog
                .add(MachineInfo {
                    id: machine.clone(),
                    kind: kind.clone(),
                    protocol: "fuzz".into(),
                    tags,
                })
                .unwrap();
            let s = |t: u16, v: Value| Sample::new(MachineId(0), TagId(t), 1, 1, v, Quality::Good);
            let batch = [
                s(0, Value::F64(*f)),
                s(1, Value::I64(*i)),
                s(2, Value::Text(Text::from(text.as_str()))),
            ];
            let mut out = String::new();
            let lines = line::encode(&mut out, &catalog, "shopfloor", &batch);
            assert_eq!(lines, 1);
            assert!(out.ends_with('\n'));
            assert_eq!(out.matches('\n').count(), 1, "{out:?}");
        });
}
