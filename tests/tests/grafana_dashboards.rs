//! The Grafana dashboards in `dashboards/grafana`: valid JSON, their data sources are variables
//! (nothing tied to one Grafana's uids), and every query names a field or metric that the
//! simulated hall really produces (`config/demo-hall.toml`), so no panel stays empty for want of
//! a typo.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use regex::Regex;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Tag names (the KPI tags with them) and machine kinds of the demo hall.
fn hall() -> (BTreeSet<String>, BTreeSet<String>) {
    let path = root().join("config/demo-hall.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = shopfloor::config::Config::parse(&path, &text).unwrap();
    let catalog = config.catalog().unwrap();
    let tags = catalog
        .machines()
        .flat_map(|(_, m)| m.tags.iter().map(|t| t.name.clone()))
        .collect();
    let kinds = config.machines.iter().map(|m| m.kind.clone()).collect();
    (tags, kinds)
}

fn dashboards() -> Vec<(String, Value)> {
    let dir = root().join("dashboards/grafana");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), json)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every value under a key named `key`, anywhere in `v`.
fn find<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == key {
                    out.push(x);
                }
                find(x, key, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| find(x, key, out)),
        _ => {}
    }
}

/// The queries of every panel target.
fn queries(dash: &Value) -> Vec<String> {
    let mut targets = Vec::new();
    find(&dash["panels"], "targets", &mut targets);
    targets
        .iter()
        .flat_map(|t| t.as_array().unwrap().iter())
        .map(|t| {
            t.get("expr")
                .or_else(|| t.get("query"))
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("a target without a query: {t}"))
                .to_owned()
        })
        .collect()
}

fn matches_some(pattern: &str, names: &BTreeSet<String>, whole: bool) -> bool {
    let re = if whole {
        Regex::new(&format!("^(?:{pattern})$")).unwrap()
    } else {
        Regex::new(pattern).unwrap()
    };
    names.iter().any(|n| re.is_match(n))
}

#[test]
fn there_is_a_flux_and_a_prometheus_dashboard() {
    let names: Vec<String> = dashboards().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["hall-influxdb-flux.json", "hall-victoriametrics.json"]
    );
    for (name, d) in dashboards() {
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "{name}");
        assert!(d["uid"].as_str().is_some_and(|t| !t.is_empty()), "{name}");
        let panels = d["panels"].as_array().unwrap();
        assert!(panels.len() >= 8, "{name}: {} panels", panels.len());
        let vars: Vec<&str> = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert!(vars.contains(&"machine"), "{name}: no machine variable");
    }
}

#[test]
fn data_sources_are_variables() {
    for (name, d) in dashboards() {
        let ds = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "ds")
            .unwrap_or_else(|| panic!("{name}: no ds variable"));
        assert_eq!(ds["type"], "datasource", "{name}");
        let mut sources = Vec::new();
        find(&d, "datasource", &mut sources);
        assert!(sources.len() > 10, "{name}");
        for s in sources {
            assert_eq!(
                s["uid"], "${ds}",
                "{name}: a data source not through $ds: {s}"
            );
        }
    }
}

#[test]
fn every_query_names_what_the_hall_produces() {
    let (tags, kinds) = hall();
    let metrics: BTreeSet<String> = tags.iter().map(|t| format!("shopfloor_{t}")).collect();
    let metric = Regex::new(r"\bshopfloor_[a-z0-9_]+").unwrap();
    let name_regex = Regex::new(r#"__name__=~"([^"]+)""#).unwrap();
    let kind = Regex::new(r#"kind\s*=?=\s*"([^"]+)""#).unwrap();
    let field_eq = Regex::new(r#"r\._field == "([^"]+)""#).unwrap();
    let field_re = Regex::new(r"r\._field =~ /([^/]+)/").unwrap();
    let mut checked = 0;
    for (name, d) in dashboards() {
        let flux = name.contains("flux");
        for q in queries(&d) {
            for k in kind.captures_iter(&q) {
                assert!(
                    kinds.contains(&k[1]),
                    "{name}: no machine of kind {:?}",
                    &k[1]
                );
            }
            if flux {
                assert!(
                    q.contains(r#"r._measurement == "${measurement}""#),
                    "{name}: {q}"
                );
                let named: Vec<_> = field_eq.captures_iter(&q).collect();
                let patterns: Vec<_> = field_re.captures_iter(&q).collect();
                assert!(
                    !named.is_empty() || !patterns.is_empty(),
                    "{name}: a query that names no field: {q}"
                );
                for f in named {
                    assert!(
                        tags.contains(&f[1]),
                        "{name}: no tag {:?} in the hall",
                        &f[1]
                    );
                    checked += 1;
                }
                for p in patterns {
                    assert!(
                        matches_some(&p[1], &tags, false),
                        "{name}: /{}/ matches no tag",
                        &p[1]
                    );
                    checked += 1;
                }
            } else {
                let patterns: Vec<_> = name_regex.captures_iter(&q).collect();
                let without: String = name_regex.replace_all(&q, "").into_owned();
                let named: Vec<_> = metric.find_iter(&without).collect();
                assert!(
                    !named.is_empty() || !patterns.is_empty(),
                    "{name}: a query that names no metric: {q}"
                );
                for m in named {
                    assert!(
                        metrics.contains(m.as_str()),
                        "{name}: no metric {}",
                        m.as_str()
                    );
                    checked += 1;
                }
                for p in patterns {
                    assert!(
                        matches_some(&p[1], &metrics, true),
                        "{name}: {} matches no metric",
                        &p[1]
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 30, "only {checked} names checked");
}
