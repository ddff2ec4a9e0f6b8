//! Fuzz target: any bytes taken as a Sparkplug B payload (what a host reads from any edge node,
//! what the edge node reads as an NCMD) or as a primary host's STATE are refused or decoded,
//! never a panic (a host's view that hears them as births, data and deaths included); a decoded payload
//! encodes back to bytes that decode to the same message, and every metric value reads as its
//! type says or as nothing. Runs as a test on stable (bolero), over its committed corpus in
//! `tests/__fuzz__/*/corpus` (real births, data and commands), then on random inputs for
//! `BOLERO_RANDOM_TEST_TIME_MS` (1 s by default, 60 s in `tests/run`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use prost::Message as _;
use shopfloor_contract::sparkplug::host::{Heard, HostView, Limits};
use shopfloor_contract::sparkplug::node::asks_rebirth;
use shopfloor_contract::sparkplug::proto::Payload;
use shopfloor_contract::sparkplug::{DataType, parse_state};

#[test]
fn any_sparkplug_payload_bytes_are_refused_or_read_consistently() {
    bolero::check!().for_each(|input: &[u8]| {
        if let Ok(state) = parse_state(input) {
            let again = format!(
                r#"{{"online":{},"timestamp":{}}}"#,
                state.online, state.timestamp
            );
            assert_eq!(parse_state(again.as_bytes()).ok(), Some(state));
        }
        hear_as_every_type(input);
        let rebirth = asks_rebirth(input);
        let Ok(payload) = Payload::decode(input) else {
            assert!(!rebirth, "a rebirth from bytes that do not decode");
            return;
        };
        let again = Payload::decode(payload.encode_to_vec().as_slice()).unwrap();
        assert!(
            again == payload || has_nan(&payload),
            "{payload:?} / {again:?}"
        );
        for m in &payload.metrics {
            let (Some(code), Some(value)) = (m.datatype, &m.value) else {
                continue;
            };
            if let Some(t) = DataType::from_code(code) {
                // A value in the wrong field for its type reads as nothing, never as garbage.
                let _ = t.read(value);
            }
        }
    });
}

/// The same bytes as every message a node sends, in the order of a session: the view's
/// bookkeeping must hold whatever they say.
fn hear_as_every_type(input: &[u8]) {
    let mut view = HostView::new(Limits {
        devices: 4,
        metrics: 16,
    });
    let mut heard = Heard::default();
    for topic in [
        "spBv1.0/g/NBIRTH/n",
        "spBv1.0/g/DBIRTH/n/d",
        "spBv1.0/g/DDATA/n/d",
        "spBv1.0/g/NDATA/n",
        "spBv1.0/g/DBIRTH/n/d",
        "spBv1.0/g/DDEATH/n/d",
        "spBv1.0/g/NBIRTH/n",
        "spBv1.0/g/NDEATH/n",
        "spBv1.0/g/DDATA/n/d",
    ] {
        let _ = view.hear(topic, input, 1, &mut heard);
    }
}

/// NaN never equals itself, so a payload holding one cannot compare equal after a round trip.
fn has_nan(p: &Payload) -> bool {
    use shopfloor_contract::sparkplug::proto::MetricValue as V;
    p.metrics.iter().any(|m| match m.value {
        Some(V::FloatValue(f)) => f.is_nan(),
        Some(V::DoubleValue(f)) => f.is_nan(),
        _ => false,
    }) || p.metrics.iter().any(|m| {
        m.properties.as_ref().is_some_and(|ps| {
            ps.values.iter().any(|v| {
                use shopfloor_contract::sparkplug::proto::PropertyKind as K;
                matches!(v.value, Some(K::FloatValue(f)) if f.is_nan())
                    || matches!(v.value, Some(K::DoubleValue(f)) if f.is_nan())
            })
        })
    })
}
