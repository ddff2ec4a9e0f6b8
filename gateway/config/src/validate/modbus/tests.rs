#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::{Config, ConfigErrors, ProtocolConfig};
use shopfloor_modbus::link::{Link, SerialLine};
use shopfloor_modbus::rtu::Parity;
use std::path::Path;

fn parse(src: &str) -> Result<Config, ConfigErrors> {
    Config::parse(Path::new("bus.toml"), src)
}

/// A machine `id` with `keys`, and one tag.
fn machine(id: &str, keys: &str) -> String {
    format!(
        "[[machine]]\nid = \"{id}\"\n{keys}\n[[machine.tag]]\nname = \"p\"\narea = \"input\"\naddress = 0\n"
    )
}

/// Every error of `src` as `LINE:COL: message`.
fn errors(src: &str) -> Vec<String> {
    parse(src)
        .expect_err("config should be refused")
        .0
        .iter()
        .map(|e| format!("{}:{}: {}", e.line, e.col, e.message))
        .collect()
}

fn link_of(c: &Config, i: usize) -> (&Link, u8) {
    let ProtocolConfig::Modbus(m) = &c.machines[i].protocol else {
        panic!("not modbus")
    };
    (&m.link, m.unit_id)
}

#[test]
fn a_serial_machine_takes_the_contract_defaults() {
    let c = parse(&machine(
        "meter-1",
        "protocol = \"modbus-rtu\"\nport = \"/dev/ttyUSB0\"\nunit_id = 3",
    ))
    .unwrap();
    let want = Link::Rtu(SerialLine {
        port: "/dev/ttyUSB0".into(),
        baud: 19200,
        parity: Parity::Even,
        stop_bits: 1,
    });
    assert_eq!(link_of(&c, 0), (&want, 3));
    assert_eq!(
        c.catalog()
            .unwrap()
            .machine(shopfloor_core::MachineId(0))
            .unwrap()
            .protocol,
        "modbus-rtu"
    );
}

#[test]
fn rtu_over_tcp_takes_an_address() {
    let c = parse(&machine(
        "meter-2",
        "protocol = \"modbus-rtu-tcp\"\naddress = \"192.168.1.50:4001\"\nunit_id = 4",
    ))
    .unwrap();
    assert_eq!(
        link_of(&c, 0),
        (&Link::RtuTcp("192.168.1.50:4001".into()), 4)
    );
}

#[test]
fn wrong_serial_keys_are_refused_where_they_are_written() {
    let table = [
        (
            "protocol = \"modbus-rtu\"\nport = \"/dev/ttyS0\"\nparity = \"mark\"",
            "5:10: parity \"mark\": use even, odd or none",
        ),
        (
            "protocol = \"modbus-rtu\"\nport = \"/dev/ttyS0\"\nstop_bits = 3",
            "5:13: stop_bits must be 1 or 2 (data bits are always 8)",
        ),
        (
            "protocol = \"modbus-rtu\"\nport = \"/dev/ttyS0\"\nbaud = 12",
            "5:8: baud must be a rate in 300..=4000000, e.g. 9600 or 19200",
        ),
        (
            "protocol = \"modbus-rtu\"\nport = \"/dev/ttyS0\"\nunit_id = 0",
            "5:11: unit_id must be in 1..=247 on an RTU bus",
        ),
        (
            "protocol = \"modbus-rtu\"\naddress = \"10.0.0.1:502\"\nport = \"/dev/ttyS0\"",
            "4:11: `address` is for modbus-tcp and modbus-rtu-tcp; a modbus-rtu machine names its serial `port`",
        ),
        (
            "protocol = \"modbus-tcp\"\naddress = \"10.0.0.1:502\"\nbaud = 9600",
            "5:8: `baud` is a serial line key; this machine's protocol is modbus-tcp",
        ),
        (
            "protocol = \"modbus-rtu\"\nbaud = 9600",
            "1:1: missing key `port`",
        ),
    ];
    for (keys, want) in table {
        let got = errors(&machine("m", keys));
        assert!(
            got.iter().any(|e| e == want),
            "{keys}: expected {want:?}, got {got:?}"
        );
    }
}

#[test]
fn machines_on_one_bus_must_agree() {
    let line = |id: &str, unit: u8, baud: u32| {
        machine(
            id,
            &format!(
                "protocol = \"modbus-rtu\"\nport = \"/dev/ttyS0\"\nbaud = {baud}\nunit_id = {unit}"
            ),
        )
    };
    let ok = format!("{}{}", line("a", 1, 9600), line("b", 2, 9600));
    parse(&ok).unwrap();
    let twin = errors(&format!("{}{}", line("a", 1, 9600), line("b", 1, 9600)));
    assert_eq!(twin.len(), 1, "{twin:?}");
    assert!(twin[0].ends_with(
        "unit_id 1 is already machine \"a\" on /dev/ttyS0: two units on one RTU bus need different ids"
    ), "{twin:?}");
    let baud = errors(&format!("{}{}", line("a", 1, 9600), line("b", 2, 19200)));
    assert_eq!(baud.len(), 1, "{baud:?}");
    assert!(
        baud[0].starts_with("14:8: machine \"a\" opens /dev/ttyS0 with other line settings"),
        "{baud:?}"
    );
    let tcp = |id: &str, protocol: &str, unit: u8| {
        machine(
            id,
            &format!("protocol = \"{protocol}\"\naddress = \"10.0.0.9:4001\"\nunit_id = {unit}"),
        )
    };
    let mixed = errors(&format!(
        "{}{}",
        tcp("a", "modbus-tcp", 1),
        tcp("b", "modbus-rtu-tcp", 2)
    ));
    assert!(
        mixed[0].contains("share one connection and one framing"),
        "{mixed:?}"
    );
    // Modbus TCP machines on one address may read one unit (two views of one PLC).
    parse(&format!(
        "{}{}",
        tcp("a", "modbus-tcp", 1),
        tcp("b", "modbus-tcp", 1)
    ))
    .unwrap();
}
