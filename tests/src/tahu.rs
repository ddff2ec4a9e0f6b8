//! Eclipse Tahu's JavaScript payload library (`tests/sparkplug/tahu.js`, npm
//! `sparkplug-payload`) as a second independent decoder of the bytes a host captured: what it
//! decodes must equal what pysparkplug decoded, message by message and metric by metric.

use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Where `tests/run` installs the npm packages of the tests: `SHOPFLOOR_NPM_DIR`, or
/// `shopfloor-tests/npm` in the user's cache folder.
pub fn npm_dir() -> PathBuf {
    crate::cache_dir("SHOPFLOOR_NPM_DIR", "shopfloor-tests/npm")
}

/// Tahu's decoding of every captured message that carries its bytes (`raw`), in order.
pub fn decode(captured: &[&Value]) -> Vec<Value> {
    let modules = npm_dir().join("node_modules");
    assert!(
        modules.join("sparkplug-payload").exists(),
        "{} lacks sparkplug-payload: run tests/run, which installs it",
        modules.display()
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sparkplug/tahu.js");
    let mut child = Command::new("node")
        .arg(script)
        .env("NODE_PATH", &modules)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start node (the Sparkplug tests need Node.js): {e}"));
    let input: String = captured
        .iter()
        .map(|m| {
            format!(
                "{}\n",
                serde_json::json!({"topic": m["topic"], "raw": m["raw"]})
            )
        })
        .collect();
    let mut stdin = child.stdin.take().expect("piped stdin");
    // Written apart from the read, so that neither pipe fills while the other waits.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("node ran");
    writer.join().expect("writer").expect("node read its input");
    assert!(
        output.status.success(),
        "tahu.js failed: {:?}",
        output.status
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// Numbers equal by value (1000.0 from Python is 1000 from JavaScript), everything else as is.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Panics unless Tahu decodes every message of `log` (a host's lines) as pysparkplug did:
/// the same seq, and for each metric the same name, alias, datatype, value, null flag,
/// historical flag and timestamp; NDEATH's bdSeq the same. Returns how many it compared.
pub fn assert_agrees(log: &[Value]) -> usize {
    let captured: Vec<&Value> = log.iter().filter(|m| m.get("raw").is_some()).collect();
    let tahu = decode(&captured);
    assert_eq!(tahu.len(), captured.len(), "one decoding per message");
    for (py, js) in captured.iter().zip(&tahu) {
        assert!(js.get("error").is_none(), "Tahu cannot decode {py}: {js}");
        let js_metrics = js["metrics"].as_array().cloned().unwrap_or_default();
        if py["type"] == "NDEATH" {
            let bd_seq = js_metrics.iter().find(|m| m["name"] == "bdSeq");
            assert!(
                bd_seq.is_some_and(|m| same_value(&m["value"], &py["bd_seq"])),
                "NDEATH bdSeq: pysparkplug {py}, Tahu {js}"
            );
            continue;
        }
        assert!(same_value(&js["seq"], &py["seq"]), "seq: {py} / {js}");
        let py_metrics = py["metrics"].as_array().cloned().unwrap_or_default();
        assert_eq!(py_metrics.len(), js_metrics.len(), "metrics: {py} / {js}");
        for (p, j) in py_metrics.iter().zip(&js_metrics) {
            for field in [
                "name",
                "alias",
                "datatype",
                "value",
                "is_null",
                "historical",
                "timestamp",
            ] {
                assert!(
                    same_value(&p[field], &j[field]),
                    "{field} differs in {}: pysparkplug {p}, Tahu {j}",
                    py["topic"]
                );
            }
        }
    }
    captured.len()
}
