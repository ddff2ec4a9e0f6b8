#![allow(clippy::unwrap_used)]

use super::*;
use opcua::types::{ByteString, LocalizedText, UAString};
use proptest::prelude::*;

fn t(s: &str) -> Value {
    Value::Text(Text::from(s.to_owned()))
}

#[test]
fn every_listed_type_converts() {
    let dt = DateTime::ymd_hms(2026, 11, 23, 8, 30, 0);
    let table: Vec<(Variant, Value)> = vec![
        (Variant::Boolean(true), Value::Bool(true)),
        (Variant::SByte(-8), Value::I64(-8)),
        (Variant::Byte(200), Value::U64(200)),
        (Variant::Int16(-300), Value::I64(-300)),
        (Variant::UInt16(65535), Value::U64(65535)),
        (Variant::Int32(i32::MIN), Value::I64(i64::from(i32::MIN))),
        (Variant::UInt32(u32::MAX), Value::U64(u64::from(u32::MAX))),
        (Variant::Int64(i64::MIN), Value::I64(i64::MIN)),
        (Variant::UInt64(u64::MAX), Value::U64(u64::MAX)),
        (Variant::Float(1.5), Value::F64(1.5)),
        (Variant::Double(-2.25e300), Value::F64(-2.25e300)),
        (Variant::String(UAString::from("PA6-GF30")), t("PA6-GF30")),
        (Variant::String(UAString::null()), t("")),
        (
            Variant::LocalizedText(Box::new(LocalizedText::new("nl", "Gereed"))),
            t("Gereed"),
        ),
        (
            Variant::ByteString(ByteString::from(vec![1u8, 2, 255])),
            t("AQL/"),
        ),
        (
            Variant::DateTime(Box::new(dt)),
            t("2026-11-23T08:30:00+00:00"),
        ),
        (Variant::Empty, Value::Null),
    ];
    for (variant, want) in table {
        assert_eq!(value(&variant), want, "{variant:?}");
    }
}

#[test]
fn arrays_become_text_rather_than_vanish() {
    let v = Variant::from(vec![1i32, 2, 3]);
    assert!(matches!(value(&v), Value::Text(_)));
}

#[test]
fn status_grades_quality() {
    assert_eq!(quality(StatusCode::Good), Quality::Good);
    assert_eq!(
        quality(StatusCode::UncertainLastUsableValue),
        Quality::Uncertain
    );
    assert_eq!(quality(StatusCode::BadNodeIdUnknown), Quality::Bad);
    assert_eq!(quality(StatusCode::BadCommunicationError), Quality::Bad);
}

#[test]
fn a_reading_takes_the_source_timestamp_and_drops_bad_values() {
    let unasked =
        || -> i64 { panic!("the gateway's clock is asked only when the server gives no time") };
    let src = DateTime::ymd_hms(2026, 1, 2, 3, 4, 5);
    let srv = DateTime::ymd_hms(2026, 1, 2, 3, 4, 6);
    let mut dv = DataValue {
        value: Some(Variant::Double(7.0)),
        status: Some(StatusCode::Good),
        source_timestamp: Some(src),
        server_timestamp: Some(srv),
        ..Default::default()
    };
    assert_eq!(
        reading(&dv, unasked),
        (millis(&src).unwrap(), Value::F64(7.0), Quality::Good)
    );
    dv.source_timestamp = None;
    assert_eq!(reading(&dv, unasked).0, millis(&srv).unwrap());
    dv.server_timestamp = None;
    assert_eq!(reading(&dv, || 42).0, 42);
    dv.status = Some(StatusCode::UncertainSensorNotAccurate);
    assert_eq!(
        reading(&dv, || 42),
        (42, Value::F64(7.0), Quality::Uncertain)
    );
    dv.status = Some(StatusCode::BadSensorFailure);
    assert_eq!(reading(&dv, || 42), (42, Value::Null, Quality::Bad));
    dv.status = None; // an absent status is Good
    assert_eq!(reading(&dv, || 42).2, Quality::Good);
}

#[test]
fn unix_epoch_is_zero_and_null_time_is_none() {
    assert_eq!(millis(&DateTime::ymd(1970, 1, 1)), Some(0));
    assert_eq!(millis(&DateTime::null()), None);
}

proptest! {
    #[test]
    fn integers_keep_their_value(x in any::<i64>(), u in any::<u64>()) {
        prop_assert_eq!(value(&Variant::Int64(x)), Value::I64(x));
        prop_assert_eq!(value(&Variant::UInt64(u)), Value::U64(u));
    }
}
