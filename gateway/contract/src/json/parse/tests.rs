use super::*;
use crate::json as encode;
use proptest::prelude::*;
use shopfloor_core::{MachineId, Sample, TagId};

fn one(topic: &str, payload: &str) -> Reading {
    match parse(topic, payload.as_bytes()) {
        Ok(Parsed::Readings(mut r)) if r.len() == 1 => r.remove(0),
        other => panic!("{topic} {payload}: {other:?}"),
    }
}

#[test]
fn tag_layout_payloads() {
    let r = one(
        "iqblvd/hall/cnc-1/spindle_speed",
        r#"{"timestamp_ms":1795379533423,"value":1200.5,"quality":"good","seq":42,"unit":"rpm"}"#,
    );
    assert_eq!(
        r,
        Reading {
            machine: "cnc-1".into(),
            tag: "spindle_speed".into(),
            timestamp_ms: 1_795_379_533_423,
            seq: 42,
            value: Value::F64(1200.5),
            quality: Quality::Good,
            unit: Some("rpm".into()),
        }
    );
    for (payload, value, quality) in [
        (
            r#"{"timestamp_ms":1,"value":1200.0,"quality":"good","seq":1}"#,
            Value::F64(1200.0),
            Quality::Good,
        ),
        (
            r#"{"timestamp_ms":1,"value":1200,"quality":"good","seq":1}"#,
            Value::U64(1200),
            Quality::Good,
        ),
        (
            r#"{"timestamp_ms":1,"value":-3,"quality":"uncertain","seq":1}"#,
            Value::I64(-3),
            Quality::Uncertain,
        ),
        (
            r#"{"timestamp_ms":1,"value":true,"quality":"good","seq":1}"#,
            Value::Bool(true),
            Quality::Good,
        ),
        (
            r#"{"timestamp_ms":1,"value":"P-7","quality":"good","seq":1}"#,
            Value::Text(Text::from("P-7")),
            Quality::Good,
        ),
        (
            r#"{"timestamp_ms":1,"value":null,"quality":"bad","seq":1}"#,
            Value::Null,
            Quality::Bad,
        ),
        // The model's rule holds whatever the sender says.
        (
            r#"{"timestamp_ms":1,"value":5,"quality":"bad","seq":1}"#,
            Value::Null,
            Quality::Bad,
        ),
        (
            r#"{"timestamp_ms":1,"value":null,"quality":"good","seq":1}"#,
            Value::Null,
            Quality::Bad,
        ),
    ] {
        let r = one("p/m/t", payload);
        assert_eq!((r.value, r.quality), (value, quality), "{payload}");
    }
}

#[test]
fn machine_layout_payloads() {
    let Ok(Parsed::Readings(r)) = parse(
        "iqblvd/hall/imm-1",
        br#"{"timestamp_ms":7,"seq":3,"values":{"cycle_time":31.5,"shots":12,"heater":null}}"#,
    ) else {
        panic!("not readings")
    };
    let got: Vec<(&str, &str, Value, Quality, u64)> = r
        .iter()
        .map(|r| {
            (
                r.machine.as_str(),
                r.tag.as_str(),
                r.value.clone(),
                r.quality,
                r.seq,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("imm-1", "cycle_time", Value::F64(31.5), Quality::Good, 3),
            ("imm-1", "heater", Value::Null, Quality::Bad, 3),
            ("imm-1", "shots", Value::U64(12), Quality::Good, 3),
        ]
    );
}

#[test]
fn statuses_are_not_readings_and_junk_is_refused() {
    assert_eq!(
        parse("p/cnc-1/_status", br#"{"state":"online"}"#),
        Ok(Parsed::Status)
    );
    assert_eq!(parse("p/_gateway/gw", b"anything"), Ok(Parsed::Status));
    for (topic, payload) in [
        ("p/m/t", "not json"),
        ("p/m/t", "[1,2]"),
        ("p/m/t", r#"{"value":1,"quality":"good","seq":1}"#),
        (
            "p/m/t",
            r#"{"timestamp_ms":1,"value":1,"quality":"fine","seq":1}"#,
        ),
        (
            "p/m/t",
            r#"{"timestamp_ms":1,"value":[1],"quality":"good","seq":1}"#,
        ),
        ("p/m/t", r#"{"timestamp_ms":1,"value":1,"quality":"good"}"#),
        (
            "t",
            r#"{"timestamp_ms":1,"value":1,"quality":"good","seq":1}"#,
        ),
        ("p/m", r#"{"timestamp_ms":1,"seq":1,"values":[1]}"#),
    ] {
        assert!(
            parse(topic, payload.as_bytes()).is_err(),
            "{topic} {payload}"
        );
    }
}

fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|v| if v < 0 {
            Value::I64(v)
        } else {
            Value::U64(v as u64)
        }),
        any::<u64>().prop_map(Value::U64),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(Value::F64),
        "[ -~é\"\\\\\n]{0,12}".prop_map(|s| Value::Text(Text::from(s.as_str()))),
    ]
}

proptest! {
    /// What the gateway publishes in layout `tag` comes back as the same reading, type included.
    #[test]
    fn tag_payloads_round_trip(v in any_value(), ts in 0i64..=4_102_444_800_000, seq in 1u64.., bad in any::<bool>()) {
        let q = if bad { Quality::Bad } else { Quality::Good };
        let s = Sample::new(MachineId(0), TagId(0), ts, seq, v.clone(), q);
        let mut out = Vec::new();
        encode::tag_payload(&mut out, &s, &encode::unit_suffix(Some("°C")));
        let r = one("hall/m-1/t_1", std::str::from_utf8(&out).unwrap());
        prop_assert_eq!(r.value, s.to_value());
        prop_assert_eq!(r.quality, s.quality());
        prop_assert_eq!((r.timestamp_ms, r.seq), (ts, seq));
        prop_assert_eq!(r.unit.as_deref(), Some("°C"));
    }

    /// And in layout `machine`.
    #[test]
    fn machine_payloads_round_trip(values in proptest::collection::vec(any_value(), 1..8), ts in 0i64..=4_102_444_800_000, seq in 1u64..) {
        let names: Vec<String> = (0..values.len()).map(|i| format!("t{i}")).collect();
        let samples: Vec<Sample> = values
            .iter()
            .map(|v| Sample::new(MachineId(0), TagId(0), ts, seq, v.clone(), Quality::Good))
            .collect();
        let mut out = Vec::new();
        encode::machine_payload(
            &mut out,
            ts,
            seq,
            names.iter().zip(&samples).map(|(n, s)| (n.as_str(), s.value(), s.quality())),
        );
        let Ok(Parsed::Readings(r)) = parse("hall/m-1", &out) else { panic!("not readings") };
        prop_assert_eq!(r.len(), values.len());
        for reading in r {
            let i: usize = reading.tag[1..].parse().unwrap();
            prop_assert_eq!(reading.value, samples[i].to_value());
            prop_assert_eq!((reading.timestamp_ms, reading.seq), (ts, seq));
        }
    }

    /// No bytes make the parser panic.
    #[test]
    fn any_bytes_are_parsed_or_refused(topic in "[a-z_/]{0,12}", payload in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse(&topic, &payload);
    }
}

#[test]
fn names_learnt_from_the_network_keep_the_rule() {
    let long = "m".repeat(MAX_NAME + 1);
    let max = "m".repeat(MAX_NAME);
    let cases: [(&str, bool); 14] = [
        ("cnc-1", true),
        ("CNC_1.spindle:rpm", true),
        (&max, true),
        ("", false),
        (".", false),
        ("..", false),
        ("...", true),
        (&long, false),
        ("a/b", false),
        ("a\\b", false),
        ("a b", false),
        ("ä", false),
        ("a\0", false),
        ("%2e%2e", false),
    ];
    for (name, ok) in cases {
        assert_eq!(name_ok(name), ok, "{name:?}");
    }
}

#[test]
fn a_topic_that_climbs_out_of_its_directory_is_refused() {
    let payload = br#"{"timestamp_ms":1,"value":1,"quality":"good","seq":1}"#;
    for topic in ["iqblvd/../x", "iqblvd/./x", "iqblvd/a b/x", "iqblvd/m/.."] {
        assert!(
            matches!(parse(topic, payload), Err(ParseError::Name(_))),
            "{topic}"
        );
    }
    let machine = br#"{"timestamp_ms":1,"seq":1,"values":{"..":1}}"#;
    assert!(matches!(
        parse("iqblvd/m", machine),
        Err(ParseError::Name(_))
    ));
    assert!(matches!(
        parse(
            "iqblvd/..",
            br#"{"timestamp_ms":1,"seq":1,"values":{"a":1}}"#
        ),
        Err(ParseError::Name(_))
    ));
}
