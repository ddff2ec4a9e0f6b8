use super::*;
use shopfloor_core::emit::Publish;

const GOOD: &str = r#"
[gateway]
name = "demo-hall"

[mqtt]
url = "mqtt://127.0.0.1:1883"
topic_prefix = "iqblvd/hardenberg/demo-hall"

[[machine]]
id = "cnc-1"
kind = "cnc"
protocol = "modbus-tcp"
address = "127.0.0.1:5020"
unit_id = 1
poll_interval = "100ms"
timeout = "500ms"

  [[machine.tag]]
  name = "spindle_speed"
  area = "holding"
  address = 0
  type = "f32"
  order = "CDAB"
  unit = "rpm"

  [[machine.tag]]
  name = "door_open"
  area = "holding"
  address = 10
  type = "bool"
  bit = 3

  [[machine.tag]]
  name = "program"
  area = "holding"
  address = 20
  type = "string"
  length = 8

  [[machine.tag]]
  name = "estop"
  area = "discrete"
  address = 0

[[machine]]
id = "imm-1"
kind = "injection-moulding"
protocol = "opcua"
endpoint = "opc.tcp://127.0.0.1:4840"
security_policy = "Basic256Sha256"
security_mode = "SignAndEncrypt"

  [[machine.tag]]
  name = "cycle_time"
  node = "ns=2;s=IMM1.CycleTime"
  unit = "s"
"#;

fn parse(src: &str) -> Result<Config, ConfigErrors> {
    Config::parse(Path::new("hall.toml"), src)
}

/// The single error of `src`, as `LINE:COL: message`.
fn error_of(src: &str) -> String {
    let errs = parse(src).expect_err("config should be refused").0;
    assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}");
    let e = &errs[0];
    format!("{}:{}: {}", e.line, e.col, e.message)
}

/// GOOD with one line replaced (1-based `line` of GOOD, whose first line is empty).
fn with_line(line: usize, text: &str) -> String {
    let mut lines: Vec<&str> = GOOD.lines().collect();
    lines[line - 1] = text;
    lines.join("\n")
}

fn line_of(needle: &str) -> usize {
    GOOD.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn the_contract_example_is_valid() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.gateway.name, "demo-hall");
    assert_eq!(c.machines.len(), 2);
    let ProtocolConfig::Modbus(m) = &c.machines[0].protocol else {
        panic!("modbus expected")
    };
    assert_eq!(m.poll_interval, Duration::from_millis(100));
    assert_eq!(m.tags[0].order, shopfloor_modbus::WordOrder::CDAB);
    assert_eq!(m.tags[1].bit, Some(3));
    assert_eq!(m.tags[2].length, 8);
    assert_eq!(m.tags[3].data_type, shopfloor_modbus::DataType::Bool);
    let mq = c.mqtt.as_ref().unwrap();
    assert_eq!((mq.qos, mq.layout), (1, Layout::Tag));
    let cat = c.catalog().unwrap();
    assert_eq!(
        cat.tag(shopfloor_core::MachineId(0), shopfloor_core::TagId(0))
            .unwrap()
            .unit
            .as_deref(),
        Some("rpm")
    );
    assert!(c.modbus_machine(0).is_some());
    assert!(c.modbus_machine(1).is_none());
}

#[test]
fn each_kind_of_error_names_its_line() {
    let cases: Vec<(String, usize, &str)> = vec![
        (
            with_line(line_of("unit_id = 1"), "unit_idd = 1"),
            line_of("unit_id = 1"),
            "unknown field `unit_idd`",
        ),
        (
            with_line(line_of("id = \"cnc-1\""), "id = \"CNC 1\""),
            line_of("id = \"cnc-1\""),
            "must match [a-z0-9_-]+",
        ),
        (
            with_line(
                line_of("name = \"door_open\""),
                "  name = \"spindle_speed\"",
            ),
            line_of("name = \"door_open\""),
            "used twice",
        ),
        (
            with_line(line_of("name = \"door_open\""), "  name = \"Door\""),
            line_of("name = \"door_open\""),
            "must match [a-z0-9_]+",
        ),
        (
            with_line(line_of("address = 20"), "  address = 65530"),
            line_of("address = 20"),
            "runs past the last address",
        ),
        (
            with_line(line_of("address = 20"), "  address = 70000"),
            line_of("address = 20"),
            "0..=65535",
        ),
        (
            with_line(line_of("bit = 3"), "  bit = 16"),
            line_of("bit = 3"),
            "0..=15",
        ),
        (
            with_line(line_of("order = \"CDAB\""), "  order = \"DBCA\""),
            line_of("order = \"CDAB\""),
            "use ABCD",
        ),
        (
            with_line(line_of("type = \"f32\""), "  type = \"float\""),
            line_of("type = \"f32\""),
            "type \"float\"",
        ),
        (
            with_line(line_of("length = 8"), "  length = 200"),
            line_of("length = 8"),
            "1..=125",
        ),
        (
            with_line(line_of("poll_interval"), "poll_interval = \"0s\""),
            line_of("poll_interval"),
            "above zero",
        ),
        (
            with_line(line_of("timeout = "), "timeout = \"fast\""),
            line_of("timeout = "),
            "does not start with a number",
        ),
        (
            with_line(line_of("url = "), "url = \"http://127.0.0.1:1883\""),
            line_of("url = "),
            "not supported",
        ),
        (
            with_line(line_of("topic_prefix"), "topic_prefix = \"a/#\""),
            line_of("topic_prefix"),
            "wildcards",
        ),
        (
            with_line(line_of("area = \"discrete\""), "  area = \"flags\""),
            line_of("area = \"discrete\""),
            "use holding",
        ),
        (
            with_line(line_of("node = "), "  node = \"IMM1.CycleTime\""),
            line_of("node = "),
            "not a node id",
        ),
        (
            with_line(line_of("address = \"127"), "address = \"127.0.0.1:5020:1\""),
            line_of("address = \"127"),
            "host:port",
        ),
        (
            with_line(line_of("topic_prefix"), "password = \"hunter2\""),
            line_of("topic_prefix"),
            "password_env",
        ),
        (
            with_line(line_of("unit_id = 1"), "unit_id = 300"),
            line_of("unit_id = 1"),
            "0..=255",
        ),
        (
            with_line(line_of("unit_id = 1"), "endpoint = \"opc.tcp://x:1\""),
            line_of("unit_id = 1"),
            "OPC UA key",
        ),
        (
            with_line(line_of("security_mode"), "security_mode = \"None\""),
            line_of("id = \"imm-1\"") - 1,
            "go together",
        ),
    ];
    for (src, line, needle) in cases {
        let e = error_of(&src);
        assert!(
            e.starts_with(&format!("{line}:")),
            "{needle}: wrong line in {e}"
        );
        assert!(e.contains(needle), "expected {needle:?} in {e}");
    }
}

#[test]
fn type_and_bit_consistency() {
    let bit_on_u16 = with_line(line_of("type = \"bool\""), "  type = \"u16\"");
    assert!(error_of(&bit_on_u16).contains("bit applies only to type bool"));
    let scale_on_string = with_line(line_of("length = 8"), "  length = 8\n  scale = 2.0");
    assert!(error_of(&scale_on_string).contains("scale applies only to numbers"));
    let string_without_length = with_line(line_of("length = 8"), "");
    assert!(error_of(&string_without_length).contains("needs `length`"));
    let coil_as_f32 = with_line(
        line_of("area = \"discrete\""),
        "  area = \"coil\"\n  type = \"f32\"",
    );
    assert!(error_of(&coil_as_f32).contains("single bits"));
    let string_cdab = with_line(line_of("length = 8"), "  length = 8\n  order = \"CDAB\"");
    assert!(error_of(&string_cdab).contains("a string's order"));
}

#[test]
fn errors_are_file_line_col() {
    let e = parse("[gateway]\nnmae = 1\n").unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with("hall.toml:2:1: "), "{text}");
}

#[test]
fn all_errors_are_reported_in_file_order() {
    let src = with_line(line_of("bit = 3"), "  bit = 99");
    let src = src.replace("unit_id = 1", "unit_id = -1");
    let errs = parse(&src).unwrap_err().0;
    assert_eq!(errs.len(), 2);
    assert!(errs[0].line < errs[1].line);
}

#[test]
fn duplicate_machine_ids_and_empty_configs() {
    let twice = GOOD.replace("id = \"imm-1\"", "id = \"cnc-1\"");
    assert!(error_of(&twice).contains("used twice"));
    assert!(error_of("").contains("nothing to read"));
}

#[test]
fn non_loopback_http_needs_a_token() {
    let src = GOOD.replace(
        "name = \"demo-hall\"",
        "name = \"x\"\nhttp = \"0.0.0.0:8080\"",
    );
    assert!(error_of(&src).contains("http_token_env"));
    let ok = GOOD.replace(
        "name = \"demo-hall\"",
        "name = \"x\"\nhttp = \"0.0.0.0:8080\"\nhttp_token_env = \"SHOPFLOOR_TOKEN\"",
    );
    assert!(parse(&ok).is_ok());
}

#[test]
fn env_references_resolve_or_point_at_their_key() {
    let src = GOOD.replace(
        "topic_prefix = \"iqblvd/hardenberg/demo-hall\"",
        "username = \"gw\"\npassword_env = \"SHOPFLOOR_TEST_SURELY_UNSET_VAR\"",
    );
    let c = parse(&src).unwrap();
    let env = c.mqtt.unwrap().auth.password_env.unwrap();
    let e = env.resolve().unwrap_err();
    assert_eq!(e.line, line_of("topic_prefix") + 1);
    assert!(e.message.contains("SHOPFLOOR_TEST_SURELY_UNSET_VAR"));
    let not_a_name = GOOD.replace(
        "topic_prefix = \"iqblvd/hardenberg/demo-hall\"",
        "username = \"gw\"\npassword_env = \"hunter2!\"",
    );
    assert!(error_of(&not_a_name).contains("not an environment variable name"));
}

#[test]
fn defaults_are_sane() {
    let src = "[[machine]]\nid = \"m\"\nprotocol = \"modbus-tcp\"\naddress = \"plc.local\"\n\
               [[machine.tag]]\nname = \"t\"\narea = \"input\"\naddress = 3\n";
    let c = parse(src).unwrap();
    let ProtocolConfig::Modbus(m) = &c.machines[0].protocol else {
        panic!()
    };
    assert_eq!(m.link, Link::Tcp("plc.local:502".into()));
    assert_eq!(m.unit_id, 1);
    assert_eq!(m.tags[0].data_type, shopfloor_modbus::DataType::U16);
    assert_eq!(c.buffer.capacity, 65536);
    assert_eq!(c.gateway.name, "shopfloor");
}

#[test]
fn simulator_names_a_known_model_on_a_modbus_machine() {
    let ok = with_line(line_of("unit_id = 1"), "unit_id = 1\nsimulator = \"cnc\"");
    let c = parse(&ok).unwrap();
    let ProtocolConfig::Modbus(m) = &c.machines[0].protocol else {
        panic!()
    };
    assert_eq!(m.simulator, Some(shopfloor_sim::SimKind::Cnc));
    let unknown = with_line(line_of("unit_id = 1"), "simulator = \"lathe\"");
    let e = error_of(&unknown);
    assert!(
        e.starts_with(&format!("{}:", line_of("unit_id = 1"))),
        "{e}"
    );
    assert!(
        e.contains("use cnc, injection-moulding, energy-meter"),
        "{e}"
    );
    let on_opcua = with_line(
        line_of("security_mode"),
        "security_mode = \"SignAndEncrypt\"\nsimulator = \"energy-meter\"",
    );
    assert!(
        error_of(&on_opcua).contains("energy-meter is served over modbus-tcp only"),
        "{}",
        error_of(&on_opcua)
    );
}

#[test]
fn faults_belong_to_simulated_machines_and_are_checked() {
    let base = with_line(line_of("unit_id = 1"), "unit_id = 1\nsimulator = \"cnc\"");
    let ok = base.replace(
        "  [[machine.tag]]\n  name = \"spindle_speed\"",
        "  [machine.faults]\n  offline_every = \"5m\"\n  offline_for = \"30s\"\n  slow = \"200ms\"\n  \
         exception = 4\n  drop_every = 100\n\n  [[machine.tag]]\n  name = \"spindle_speed\"",
    );
    let c = parse(&ok).unwrap();
    let ProtocolConfig::Modbus(m) = &c.machines[0].protocol else {
        panic!()
    };
    assert_eq!(m.faults.offline_every, Some(Duration::from_secs(300)));
    assert_eq!(m.faults.offline_for, Duration::from_secs(30));
    assert_eq!(m.faults.slow, Some(Duration::from_millis(200)));
    assert_eq!(
        (m.faults.exception, m.faults.drop_every),
        (Some(4), Some(100))
    );
    let not_simulated = ok.replace("simulator = \"cnc\"\n", "");
    assert!(error_of(&not_simulated).contains("set `simulator`"));
    let too_long = ok.replace("offline_for = \"30s\"", "offline_for = \"10m\"");
    assert!(error_of(&too_long).contains("shorter than offline_every"));
    let zero = ok.replace("drop_every = 100", "drop_every = 0");
    assert!(error_of(&zero).contains("at least 1"));
    let unknown = ok.replace("slow = \"200ms\"", "slowness = \"200ms\"");
    assert!(error_of(&unknown).contains("unknown field `slowness`"));
}

#[test]
fn a_recorder_stands_alone_and_has_its_influx_settings() {
    let recorder = r#"
[gateway]
name = "recorder-1"

[record]
url = "mqtt://127.0.0.1:1883"
topics = ["iqblvd/hardenberg/#"]
share_group = "recorders"

[influx]
url = "http://127.0.0.1:8428"
org = "iqblvd"
bucket = "fieldlab"
batch_size = 1000
flush_interval = "250ms"
"#;
    let c = parse(recorder).unwrap();
    let r = c.record.as_ref().unwrap();
    assert_eq!(r.share_group.as_deref(), Some("recorders"));
    let i = c.influx.as_ref().unwrap();
    assert_eq!(
        (i.batch_size, i.flush_interval),
        (1000, Duration::from_millis(250))
    );
    assert_eq!(i.timeout, Duration::from_secs(10));
    let with_mqtt =
        format!("{recorder}\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\ntopic_prefix = \"x\"\n");
    assert!(
        error_of(&with_mqtt).contains("[mqtt] in a recorder"),
        "{}",
        error_of(&with_mqtt)
    );
    let with_machine = format!("{recorder}{}", &GOOD[GOOD.find("[[machine]]").unwrap()..]);
    let errs = parse(&with_machine).unwrap_err().0;
    assert!(
        errs.iter()
            .any(|e| e.message.contains("[record] and [[machine]]")),
        "{errs:?}"
    );
    let bad_batch = recorder.replace("batch_size = 1000", "batch_size = 0");
    assert_eq!(
        error_of(&bad_batch),
        "14:14: batch_size must be in 1..=1000000 (points)"
    );
    for measurement in ["", "#hall", "hall\\\\"] {
        let named = recorder.replace(
            "bucket = \"fieldlab\"",
            &format!("bucket = \"fieldlab\"\nmeasurement = \"{measurement}\""),
        );
        assert!(
            error_of(&named).starts_with("14:15: measurement must not"),
            "{measurement:?}: {}",
            error_of(&named)
        );
    }
    // Credentials and trust as [mqtt] takes them.
    let secured = recorder.replace(
        "share_group = \"recorders\"",
        "share_group = \"recorders\"\nusername = \"recorder\"\npassword_env = \"REC_PASSWORD\"",
    );
    let auth = parse(&secured).unwrap().record.unwrap().auth;
    assert_eq!(auth.username.as_deref(), Some("recorder"));
    assert_eq!(
        auth.password_env.map(|e| e.var).as_deref(),
        Some("REC_PASSWORD")
    );
    let cases = [
        (
            recorder.replace("share_group", "ca_file = \"ca.pem\"\nshare_group"),
            "`ca_file` needs an mqtts:// url",
        ),
        (
            recorder.replace("share_group", "password_env = \"P\"\nshare_group"),
            "password_env without username",
        ),
    ];
    for (src, want) in cases {
        let errs = parse(&src).unwrap_err().0;
        assert!(
            errs.iter().any(|e| e.message.contains(want)),
            "{errs:?} should say {want}"
        );
    }
}

#[test]
fn report_by_exception_is_checked_and_defaults_to_a_minute_heartbeat() {
    let spindle = "  unit = \"rpm\"";
    let change = with_line(line_of("unit_id = 1"), "unit_id = 1\npublish = \"change\"");
    let with_deadband = change.replace(spindle, "  unit = \"rpm\"\n  deadband = 5.0");
    let c = parse(&with_deadband).unwrap();
    assert_eq!(
        c.machines[0].publish,
        Publish::Change {
            heartbeat: Some(Duration::from_secs(60)),
            deadbands: vec![5.0, 0.0, 0.0, 0.0],
        }
    );
    assert_eq!(c.machines[1].publish, Publish::Every);
    assert_eq!(c.modbus_machine(0).unwrap().publish, c.machines[0].publish);
    let never = change.replace(
        "publish = \"change\"",
        "publish = \"change\"\nheartbeat = \"0s\"",
    );
    assert!(matches!(
        parse(&never).unwrap().machines[0].publish,
        Publish::Change {
            heartbeat: None,
            ..
        }
    ));
    let cases = [
        (
            GOOD.replace(spindle, "  unit = \"rpm\"\n  deadband = 5.0"),
            "deadband applies with publish = \"change\" only",
        ),
        (
            with_deadband.replace("deadband = 5.0", "deadband = -1.0"),
            "deadband must be a number of 0 or more",
        ),
        (
            change.replace("  bit = 3", "  bit = 3\n  deadband = 1.0"),
            "deadband applies only to numbers, not bool",
        ),
        (
            change.replace("  length = 8", "  length = 8\n  deadband = 1.0"),
            "deadband applies only to numbers, not string",
        ),
        (
            change.replace("publish = \"change\"", "publish = \"sometimes\""),
            "publish \"sometimes\": use \"every\" or \"change\"",
        ),
        (
            with_line(line_of("unit_id = 1"), "unit_id = 1\nheartbeat = \"10s\""),
            "heartbeat applies with publish = \"change\" only",
        ),
    ];
    for (src, want) in cases {
        let e = error_of(&src);
        assert!(e.contains(want), "{e} should say {want}");
    }
}

/// GOOD with a counter on cnc-1, KPIs for it, and `[kpi]` as given.
fn with_kpi(section: &str, machine_kpi: &str) -> String {
    let counter = "  [[machine.tag]]\n  name = \"good_parts\"\n  area = \"holding\"\n  \
                   address = 30\n  type = \"u32\"\n";
    let estop = "  name = \"estop\"\n  area = \"discrete\"\n  address = 0\n";
    GOOD.replace(
        estop,
        &format!("{estop}\n{counter}\n  [machine.kpi]\n{machine_kpi}\n"),
    ) + section
}

const CNC_KPI: &str = "  state = \"program\"\n  running = [\"run\", 2, true]\n  \
                       planned_stop = [\"setup\"]\n  good = \"good_parts\"\n  \
                       ideal_cycle = \"60s\"\n  energy = \"imm-1.cycle_time\"";

#[test]
fn kpis_resolve_their_tags_and_add_kpi_tags_to_the_catalog() {
    let shifts = "\n[kpi]\nshifts = [\"06:00\", \"14:00\", \"22:00\"]\nco2_kg_per_kwh = 0.27\n";
    let c = parse(&with_kpi(shifts, CNC_KPI)).unwrap();
    let kpi = c.kpi.as_ref().unwrap();
    assert_eq!(kpi.window, KpiConfig::DEFAULT_WINDOW);
    assert_eq!(kpi.interval, KpiConfig::DEFAULT_INTERVAL);
    assert!(kpi.shifts.is_some());
    let mk = c.machines[0].kpi.as_ref().unwrap();
    assert_eq!((mk.state, mk.good, mk.reject), (2, 4, None));
    assert_eq!(mk.energy, Some(TagRef { machine: 1, tag: 0 }));
    assert_eq!(mk.states.running.len(), 3);
    let cat = c.catalog().unwrap();
    let cnc = cat.machine(shopfloor_core::MachineId(0)).unwrap();
    let names: Vec<&str> = cnc.tags.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), 5 + 2 * 8, "{names:?}");
    assert_eq!(names[5], "kpi_oee");
    assert!(names.contains(&"kpi_shift_co2_per_part_kg"));
    // Without [kpi], a machine's KPIs take the defaults; without a meter, no energy tags.
    let plain = with_kpi("", &CNC_KPI.replace("  energy = \"imm-1.cycle_time\"", ""));
    let c = parse(&plain).unwrap();
    assert!(c.kpi.as_ref().is_some_and(|k| k.shifts.is_none()));
    assert_eq!(
        c.catalog()
            .unwrap()
            .machine(shopfloor_core::MachineId(0))
            .unwrap()
            .tags
            .len(),
        11
    );
}

#[test]
fn kpi_settings_are_checked_with_their_line() {
    let cases = [
        (
            with_kpi(
                "",
                &CNC_KPI.replace("state = \"program\"", "state = \"nope\""),
            ),
            "state = \"nope\" is no tag of this machine",
        ),
        (
            with_kpi(
                "",
                &CNC_KPI.replace("good = \"good_parts\"", "good = \"parts\""),
            ),
            "good = \"parts\" is no tag of this machine",
        ),
        (
            with_kpi("", &CNC_KPI.replace("imm-1.cycle_time", "meter-9.energy")),
            "energy = \"meter-9.energy\" names no tag of a machine here",
        ),
        (
            with_kpi("", &CNC_KPI.replace("[\"run\", 2, true]", "[]")),
            "running must name at least one value",
        ),
        (
            with_kpi("", &CNC_KPI.replace("  ideal_cycle = \"60s\"\n", "")),
            "missing key `ideal_cycle`",
        ),
        (
            with_kpi("\n[kpi]\nshifts = [\"6:00\"]\n", CNC_KPI),
            "\"6:00\" is no time of day",
        ),
        (
            with_kpi("\n[kpi]\ntimezone = \"Mars/Olympus\"\n", CNC_KPI),
            "no time zone known here",
        ),
        (
            with_kpi("\n[kpi]\nwindow = \"0s\"\n", CNC_KPI),
            "duration \"0s\" must be above zero",
        ),
        (
            GOOD.replace("name = \"door_open\"", "name = \"kpi_oee\""),
            "names starting with \"kpi_\" are the gateway's KPI tags",
        ),
    ];
    for (src, want) in cases {
        let e = error_of(&src);
        assert!(e.contains(want), "{e} should say {want}");
    }
}

#[test]
fn mqtt_inflight_and_keep_alive_are_checked() {
    let prefix = "topic_prefix = \"iqblvd/hardenberg/demo-hall\"";
    let line = line_of(prefix);
    let with = |extra: &str| GOOD.replace(prefix, &format!("{prefix}\n{extra}"));
    let c = parse(&with("inflight = 20\nkeep_alive = \"30s\"")).unwrap();
    let mqtt = c.mqtt.unwrap();
    assert_eq!(
        (mqtt.inflight, mqtt.keep_alive),
        (20, Duration::from_secs(30))
    );
    let defaults = parse(GOOD).unwrap().mqtt.unwrap();
    assert_eq!(
        (defaults.inflight, defaults.keep_alive),
        (1000, Duration::from_secs(15))
    );
    for (extra, message) in [
        ("inflight = 0", "inflight must be 1 to 65000"),
        ("inflight = 70000", "inflight must be 1 to 65000"),
        ("keep_alive = \"500ms\"", "keep_alive must be 1s to 65535s"),
        ("keep_alive = \"20h\"", "keep_alive must be 1s to 65535s"),
    ] {
        let e = error_of(&with(extra));
        assert!(e.starts_with(&format!("{}:", line + 1)), "{extra}: {e}");
        assert!(e.contains(message), "{extra}: {e}");
    }
}

#[test]
fn a_sinks_when_full_is_its_own_or_the_buffers() {
    use shopfloor_core::ring::WhenFull;
    let src = GOOD.replace(
        "topic_prefix = \"iqblvd/hardenberg/demo-hall\"",
        "topic_prefix = \"iqblvd/hardenberg/demo-hall\"\nwhen_full = \"drop_newest\"\n\n[buffer]\nwhen_full = \"drop_oldest\"\n\n[csv]\ndir = \"data\"",
    );
    let c = parse(&src).unwrap();
    assert_eq!(
        c.mqtt.as_ref().unwrap().when_full,
        Some(WhenFull::DropNewest)
    );
    assert_eq!(c.csv.as_ref().unwrap().when_full, None);
    assert_eq!(c.buffer.when_full, WhenFull::DropOldest);
    let bad = GOOD.replace(
        "topic_prefix = \"iqblvd/hardenberg/demo-hall\"",
        "topic_prefix = \"iqblvd/hardenberg/demo-hall\"\nwhen_full = \"block\"",
    );
    let line = line_of("topic_prefix") + 1;
    assert_eq!(
        error_of(&bad),
        format!("{line}:13: when_full \"block\": use drop_oldest or drop_newest")
    );
}
