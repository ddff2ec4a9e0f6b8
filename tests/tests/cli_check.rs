//! `shopfloor check`: exit 0 for a valid config, 2 with `FILE:LINE:COL: message` lines for an
//! invalid one, and `--plan` prints the read requests; the shipped example configs are valid.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shopfloor_tests::gateway::run_to_end;
use std::path::Path;

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/examples")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn the_example_config_is_valid_and_its_plan_is_printed() {
    let (code, out, err) = run_to_end(&["check", "-c", &example("first-machine.toml"), "--plan"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": ok (1 machine, 6 tags)"), "{out}");
    assert!(out.contains("2 requests every 100ms"), "{out}");
    assert!(
        out.contains("holding      0..=27      28 registers"),
        "{out}"
    );
    assert!(out.contains("coil         0..=0        1 bits"), "{out}");
}

#[test]
fn an_invalid_config_exits_2_with_file_line_col() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[machine]]\nid = \"m\"\nprotocol = \"modbus-tcp\"\naddress = \"127.0.0.1:502\"\n\
         [[machine.tag]]\nname = \"t\"\narea = \"holding\"\naddress = 0\ntype = \"bool\"\nbit = 16\n",
    )
    .unwrap();
    let p = path.display().to_string();
    let (code, _, err) = run_to_end(&["check", "-c", &p]);
    assert_eq!(code, 2);
    assert_eq!(
        err.trim(),
        format!("{p}:10:7: bit must be in 0..=15 (0 = least significant)")
    );
    let (code, _, err) = run_to_end(&["check", "-c", "/nonexistent/x.toml"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("/nonexistent/x.toml:1:1: cannot read the file"),
        "{err}"
    );
}

#[test]
fn bad_usage_exits_2() {
    let (code, _, _) = run_to_end(&["check"]);
    assert_eq!(code, 2);
    let (code, _, _) = run_to_end(&["frobnicate"]);
    assert_eq!(code, 2);
}
