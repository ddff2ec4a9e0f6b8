//! `[sparkplug]`: the edge node's brokers, ids and options.

use super::super::raw::{RawSparkplug, S};
use super::{AuthKeys, MQTT_SCHEMES, SparkplugConfig, Url, V, broker_auth};
use shopfloor_contract::sparkplug::topic::id_ok;

/// The section, checked; `gateway` is the default edge node id.
pub(super) fn section(
    v: &mut V<'_>,
    s: &S<RawSparkplug>,
    gateway: &str,
) -> Option<SparkplugConfig> {
    let raw = s.get_ref();
    let urls = urls(v, s);
    let group_id = v
        .required(&raw.group_id, s.span(), "group_id")
        .and_then(|g| id(v, &g, "group_id"));
    let edge_node_id = match &raw.edge_node_id {
        Some(e) => id(v, e, "edge_node_id"),
        None => Some(gateway.to_owned()),
    };
    let primary_host_id = match &raw.primary_host_id {
        Some(p) => Some(id(v, p, "primary_host_id")?),
        None => None,
    };
    let keys = AuthKeys {
        username: &raw.username,
        password_env: &raw.password_env,
        ca_file: &raw.ca_file,
        client_cert: &raw.client_cert,
        client_key: &raw.client_key,
    };
    let tls = urls.iter().find(|u| u.scheme == "mqtts");
    let auth = broker_auth(v, s.span(), tls.or(urls.first()), &keys);
    if urls.is_empty() {
        return None;
    }
    Some(SparkplugConfig {
        urls,
        group_id: group_id?,
        edge_node_id: edge_node_id?,
        primary_host_id,
        aliases: raw.aliases.as_ref().is_none_or(|a| *a.get_ref()),
        auth,
        when_full: super::when_full(v, &raw.when_full),
    })
}

/// `url`, or `urls` (one of them, not both).
fn urls(v: &mut V<'_>, s: &S<RawSparkplug>) -> Vec<Url> {
    let raw = s.get_ref();
    match (&raw.url, &raw.urls) {
        (Some(u), None) => v.url(u, MQTT_SCHEMES).into_iter().collect(),
        (None, Some(list)) if list.get_ref().is_empty() => {
            v.err(list.span(), "urls must name at least one broker");
            Vec::new()
        }
        (None, Some(list)) => list
            .get_ref()
            .iter()
            .filter_map(|u| v.url(u, MQTT_SCHEMES))
            .collect(),
        (Some(u), Some(_)) => {
            v.err(u.span(), "give either `url` or `urls`, not both");
            Vec::new()
        }
        (None, None) => {
            v.err(s.span(), "missing key `url` (or `urls`)");
            Vec::new()
        }
    }
}

/// A Sparkplug id: it becomes a topic level.
fn id(v: &mut V<'_>, s: &S<String>, key: &str) -> Option<String> {
    let text = s.get_ref();
    if id_ok(text) {
        return Some(text.clone());
    }
    v.err(
        s.span(),
        format!("{key} {text:?} must not be empty or hold `/`, `+` or `#`: it is a topic level"),
    );
    None
}
