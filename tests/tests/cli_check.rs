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

#[test]
fn the_plan_gives_each_serial_bus_its_wire_time_and_warns_when_it_is_overbooked() {
    let path = example("rs485-meters.toml");
    let (code, out, err) = run_to_end(&["check", "-c", &path, "--plan"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("meter-1 (modbus-rtu /dev/ttyUSB0, unit 1): 1 request every 1s"),
        "{out}"
    );
    // One read of 12 input registers: 8 + 29 characters of 11 bits at 9600 baud (42.4 ms) and
    // two silences of 3.5 characters (8.0 ms); two meters.
    assert!(
        out.contains(
            "bus /dev/ttyUSB0 at 9600 baud: meter-1, meter-2 (2 machines); one round of polls \
             takes 100.8 ms of wire time, 10 % of the line at their poll intervals"
        ),
        "{out}"
    );
    assert!(!out.contains("warning"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let fast = dir.path().join("fast.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &fast,
        text.replace("poll_interval = \"1s\"", "poll_interval = \"50ms\""),
    )
    .unwrap();
    let (code, out, err) = run_to_end(&["check", "-c", &fast.display().to_string(), "--plan"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("warning: bus /dev/ttyUSB0 is 202 % busy"),
        "{out}"
    );
}
