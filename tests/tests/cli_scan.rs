//! `shopfloor scan` against a real Modbus device: candidate decodings, bits, a refused range with
//! its hint, and usage errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shopfloor_core::{Text, Value};
use shopfloor_modbus::{Area, DataType, WordOrder};
use shopfloor_tests::device::{Behaviour, Device, Memory};
use shopfloor_tests::gateway::run_to_end;

async fn run(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_to_end(&args)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_shows_registers_with_their_candidate_decodings() {
    let mut m = Memory::default();
    m.put(
        Area::Holding,
        0,
        DataType::F32,
        WordOrder::CDAB,
        Value::F64(1200.5),
    );
    m.put(
        Area::Holding,
        2,
        DataType::String,
        WordOrder::ABCD,
        Value::Text(Text::from("OK")),
    );
    m.put(
        Area::Holding,
        3,
        DataType::I16,
        WordOrder::ABCD,
        Value::I64(-40),
    );
    m.put(
        Area::Coil,
        1,
        DataType::Bool,
        WordOrder::ABCD,
        Value::Bool(true),
    );
    let dev = Device::start(m, Behaviour::Healthy, 0).await;
    let target = format!("modbus-tcp://{}", dev.addr);

    let (code, out, err) = run(vec![
        "scan".into(),
        target.clone(),
        "--range".into(),
        "0..4".into(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("holding 0..=3 of"), "{out}");
    // The f32 was written word-swapped: the CDAB column of address 0 shows it.
    let row0 = lines[2];
    let cols: Vec<&str> = row0.split_whitespace().collect();
    assert_eq!(cols[0], "0");
    assert_eq!(cols[5], "1200.5", "{row0}");
    assert!(lines[4].ends_with("OK"), "{out}");
    assert!(lines[5].contains(" -40 "), "{out}");

    let (code, out, _) = run(vec![
        "scan".into(),
        target.clone(),
        "--area".into(),
        "coil".into(),
        "--range".into(),
        "0..=3".into(),
    ])
    .await;
    assert_eq!(code, 0);
    assert!(out.contains("0  0 1 0 0"), "{out}");

    // Past the end of the device's memory: a device exception, with a hint.
    let (code, _, err) = run(vec![
        "scan".into(),
        target.clone(),
        "--range".into(),
        "65530..65536".into(),
    ])
    .await;
    assert_eq!(code, 0, "{err}"); // this device has all 65536 registers
    let exc = Device::start(
        Memory::default(),
        Behaviour::Exception(tokio_modbus::ExceptionCode::IllegalDataAddress),
        0,
    )
    .await;
    let (code, _, err) = run(vec!["scan".into(), format!("modbus-tcp://{}", exc.addr)]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("Illegal data address") && err.contains("try a smaller --range"),
        "{err}"
    );

    let (code, _, err) = run(vec!["scan".into(), "tcp://x".into()]).await;
    assert_eq!(code, 2);
    assert!(err.contains("modbus-tcp://HOST:PORT"), "{err}");
    let (code, _, _) = run(vec!["scan".into(), target, "--range".into(), "9..2".into()]).await;
    assert_eq!(code, 2);
}
