//! `shopfloor browse`: the address space of an independent server (Python asyncua) and of a
//! simulated machine as a tree, and `--toml` entries that `check` accepts as a config.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shopfloor_sim::SimKind;
use shopfloor_tests::gateway::run_to_end;
use shopfloor_tests::opcua::{PyOpcua, SimOpcua};

fn check_accepts(endpoint: &str, tags: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("browsed.toml");
    let config = format!(
        "[gateway]\nname = \"browsed\"\n\n[csv]\ndir = \"data\"\n\n[[machine]]\nid = \"m\"\n\
         kind = \"test\"\nprotocol = \"opcua\"\nendpoint = \"{endpoint}\"\n\n{tags}"
    );
    std::fs::write(&path, &config).unwrap();
    let (code, out, err) = run_to_end(&["check", "-c", &path.display().to_string()]);
    assert_eq!(code, 0, "{err}\n{config}");
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn browse_shows_an_independent_servers_tree_and_prints_tags_check_accepts() {
    let server = PyOpcua::start();
    let (code, tree, err) = run_to_end(&["browse", &server.endpoint()]);
    assert_eq!(code, 0, "{err}");
    for line in [
        "TestMachine  [ns=2;s=T]",
        "  Counter  [ns=2;i=5001]  UInt32 = ",
        "  String  [ns=2;s=T.String]  String = \"PA6-GF30\"",
        "  Double  [ns=2;s=T.Double]  Double = -2.25e300",
        "  Broken  [ns=2;s=T.Broken]  Double = (bad: BadSensorFailure)",
    ] {
        assert!(tree.contains(line), "{line:?} not in\n{tree}");
    }
    // The server's own nodes (namespace 0) stay out of the way.
    assert!(!tree.contains("ServerStatus"), "{tree}");

    let (code, toml, err) = run_to_end(&["browse", &server.endpoint(), "--toml"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(toml.matches("  [[machine.tag]]\n").count(), 20, "{toml}");
    assert!(
        toml.contains("node = \"nsu=urn:shopfloor:test;s=T.Boolean\""),
        "{toml}"
    );
    assert!(toml.contains("name = \"test_machine_counter\""), "{toml}");
    check_accepts(&server.endpoint(), &toml);

    // A root and a depth narrow the walk.
    let (code, part, err) = run_to_end(&[
        "browse",
        &server.endpoint(),
        "--root",
        "nsu=urn:shopfloor:test;s=T",
        "--depth",
        "1",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(part.starts_with("Boolean  [ns=2;s=T.Boolean]"), "{part}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_of_a_simulated_machine_gives_units_and_its_node_list() {
    let dir = tempfile::tempdir().unwrap();
    let server = SimOpcua::start(SimKind::Cnc, dir.path().to_owned()).await;
    let endpoint = server.endpoint();
    let (code, tree, toml) = tokio::task::spawn_blocking(move || {
        let (code, tree, err) = run_to_end(&["browse", &endpoint]);
        assert_eq!(code, 0, "{err}");
        let (_, toml, _) = run_to_end(&["browse", &endpoint, "--toml"]);
        (code, tree, toml)
    })
    .await
    .unwrap();
    assert_eq!(code, 0);
    assert!(
        tree.contains("      Speed  [ns=2;s=Monitoring.Spindle.Speed]  Float = "),
        "{tree}"
    );
    assert!(tree.contains(" rpm\n"), "{tree}");
    assert!(
        tree.contains(
            "Manufacturer  [ns=2;s=Identification.Manufacturer]  String = \"IQ BLVD fieldlab\""
        ),
        "{tree}"
    );
    assert!(toml.contains("name = \"machine_monitoring_spindle_speed\"\n  node = \"nsu=urn:iqblvd:sim:cnc;s=Monitoring.Spindle.Speed\"\n  unit = \"rpm\""), "{toml}");
    // Every variable of the node list is found (and the three identification strings).
    let listed = shopfloor_sim::ua_profile::ua_profile(SimKind::Cnc).len();
    assert_eq!(
        toml.matches("  [[machine.tag]]\n").count(),
        listed + 3,
        "{toml}"
    );
    check_accepts(&server.endpoint(), &toml);
}
