//! `[csv]`: a file per machine and UTC day with the contract's header, a row per sample, flushed
//! while running, readable by Python's csv module as it is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shopfloor_core::{Text, Value};
use shopfloor_modbus::{Area, DataType, WordOrder};
use shopfloor_tests::device::{Behaviour, Device, Memory};
use shopfloor_tests::gateway::GatewayProcess;
use std::process::Command;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_land_in_a_daily_file_per_machine() {
    let mut m = Memory::default();
    m.put(
        Area::Holding,
        0,
        DataType::F32,
        WordOrder::ABCD,
        Value::F64(1200.5),
    );
    m.put(
        Area::Holding,
        2,
        DataType::String,
        WordOrder::ABCD,
        Value::Text(Text::from("A,\"B\"")),
    );
    let dev = Device::start(m, Behaviour::Healthy, 0).await;
    let data = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[csv]
dir = "{}"

[[machine]]
id = "cnc-1"
protocol = "modbus-tcp"
address = "{}"
poll_interval = "100ms"

  [[machine.tag]]
  name = "spindle_speed"
  area = "holding"
  address = 0
  type = "f32"
  unit = "rpm"

  [[machine.tag]]
  name = "program"
  area = "holding"
  address = 2
  type = "string"
  length = 4
"#,
        data.path().display(),
        dev.addr
    );
    let gw = GatewayProcess::start(&config);
    let dir = data.path().join("cnc-1");
    // Flushed every second while running: wait (bounded) for ten rows to be on disk.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (file, text) = loop {
        let found = std::fs::read_dir(&dir)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(Result::ok);
        if let Some(entry) = found {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            if text.lines().count() > 10 {
                break (entry.path(), text);
            }
        }
        assert!(Instant::now() < deadline, "no CSV rows\n{}", gw.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let name = file.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        name.len() == 14 && name.ends_with(".csv") && name.starts_with("20"),
        "{name}"
    );
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("timestamp_ms,machine,tag,value,quality,unit")
    );
    let speed = lines
        .clone()
        .find(|l| l.contains(",spindle_speed,"))
        .unwrap();
    assert!(
        speed.ends_with(",cnc-1,spindle_speed,1200.5,good,rpm"),
        "{speed}"
    );
    let program = lines.find(|l| l.contains(",program,")).unwrap();
    assert!(
        program.ends_with(",cnc-1,program,\"A,\"\"B\"\"\",good,"),
        "{program}"
    );

    // Python's csv module (what pandas' reader follows) reads it back as written.
    let script = "import csv,sys\nrows=list(csv.DictReader(open(sys.argv[1])))\n\
                  p=[r for r in rows if r['tag']=='program'][0]\n\
                  s=[r for r in rows if r['tag']=='spindle_speed'][0]\n\
                  print(p['value'], float(s['value']), s['unit'], len(rows[0]))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "A,\"B\" 1200.5 rpm 6"
    );
}
