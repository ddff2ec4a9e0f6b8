//! The register maps: every value fits its tag and reads back through the gateway's decoder,
//! and `config/profiles/*.toml` are exactly the maps in the code (run with SHOPFLOOR_BLESS=1 to
//! rewrite them after changing a profile).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shopfloor_core::Value;
use shopfloor_modbus::Area;
use shopfloor_modbus::decode::{decode_bit, decode_registers};
use shopfloor_sim::SimKind;
use shopfloor_sim::profile::{Deadbands, profile, to_toml};
use shopfloor_sim::server::Registers;
use std::collections::HashSet;
use std::path::PathBuf;

fn close(a: &Value, b: &Value, tolerance: f64) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= tolerance.max(y.abs() * 1e-6),
        _ => a == b,
    }
}

#[test]
fn values_survive_the_trip_through_registers() {
    for kind in SimKind::ALL {
        let tags = profile(kind);
        let mut m = kind.build(11);
        for _ in 0..50 {
            m.step(37.0);
            let values = m.values();
            let mut regs = Registers::default();
            regs.write(&tags, &values);
            for (t, v) in tags.iter().zip(&values) {
                let s = &t.spec;
                let a = usize::from(s.address);
                let back = match s.area {
                    Area::Coil => decode_bit(regs.coils[a]),
                    Area::Discrete => decode_bit(regs.discrete[a]),
                    Area::Holding => {
                        decode_registers(s, &regs.holding[a..a + usize::from(s.width())]).unwrap()
                    }
                    Area::Input => {
                        decode_registers(s, &regs.input[a..a + usize::from(s.width())]).unwrap()
                    }
                };
                // f32 registers keep ~7 digits; scaled integers keep one step of their scale.
                let tolerance = if s.scale != 1.0 {
                    s.scale / 2.0 + 1e-9
                } else {
                    1e-3
                };
                assert!(
                    close(&back, v, tolerance),
                    "{kind}/{}: wrote {v:?}, read {back:?}",
                    t.name
                );
            }
        }
    }
}

#[test]
fn tags_are_unique_and_registers_do_not_overlap() {
    for kind in SimKind::ALL {
        let mut names = HashSet::new();
        let mut used = HashSet::new();
        for t in profile(kind) {
            assert!(names.insert(t.name), "{kind}: {} twice", t.name);
            if t.spec.bit.is_some() {
                continue; // bits share their register on purpose
            }
            for r in t.spec.address..t.spec.address + t.spec.width() {
                assert!(
                    used.insert((t.spec.area, r)),
                    "{kind}: {} overlaps at {r}",
                    t.name
                );
            }
        }
    }
}

/// `config/profiles/NAME` holds exactly `want` (rewritten when SHOPFLOOR_BLESS is set).
fn profile_file_is(name: &str, want: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../config/profiles")
        .join(name);
    if std::env::var_os("SHOPFLOOR_BLESS").is_some() {
        std::fs::write(&path, want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        have,
        want,
        "{} is out of date: run with SHOPFLOOR_BLESS=1",
        path.display()
    );
}

#[test]
fn profile_files_match_the_code() {
    for kind in SimKind::ALL {
        profile_file_is(
            &format!("{}.toml", kind.as_str()),
            &to_toml(kind, Deadbands::Suggested),
        );
    }
}

#[test]
fn opcua_node_list_files_match_the_code() {
    for kind in SimKind::ALL
        .into_iter()
        .filter(|k| shopfloor_sim::ua_profile::serves_opcua(*k))
    {
        let want = shopfloor_sim::ua_profile::to_toml(kind, Deadbands::Suggested);
        profile_file_is(&format!("{}-opcua.toml", kind.as_str()), &want);
    }
}

#[test]
fn large_integers_are_written_exactly() {
    use shopfloor_modbus::{DataType, TagSpec, WordOrder};
    use shopfloor_sim::profile::raw_value;
    let spec = TagSpec::new(Area::Holding, 0, DataType::I64);
    assert_eq!(
        raw_value(&spec, &Value::I64(i64::MIN + 1)),
        Value::I64(i64::MIN + 1)
    );
    let mut regs = Registers::default();
    regs.put(
        Area::Holding,
        0,
        DataType::U64,
        WordOrder::ABCD,
        Value::U64(u64::MAX - 1),
    );
    let spec = TagSpec::new(Area::Holding, 0, DataType::U64);
    assert_eq!(
        decode_registers(&spec, &regs.holding[..4]),
        Ok(Value::U64(u64::MAX - 1))
    );
}
