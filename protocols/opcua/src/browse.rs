//! `shopfloor browse`: an OPC UA server's address space as a tree (node id, browse name, data
//! type, current value, unit), and ready `[[machine.tag]]` entries for the variables found.
//!
//! The walk follows hierarchical references forward from Objects (or a given root) to a depth,
//! skipping the standard nodes of namespace 0 below the root (the Server object would bury the
//! machine). An `EngineeringUnits` property is shown as its variable's unit, not as a node.
//! Rendering is pure and separate from the walk.

use crate::convert;
use crate::driver::OpcuaError;
use crate::node::NodeRef;
use opcua::client::{ClientBuilder, IdentityToken, Session, SessionPollResult};
use opcua::crypto::SecurityPolicy;
use opcua::types::{
    AttributeId, BrowseDescription, BrowseDirection, DataTypeId, EUInformation, Identifier,
    MessageSecurityMode, NodeClass, NodeId, ObjectId, QualifiedName, ReadValueId, ReferenceTypeId,
    StatusCode, TimestampsToReturn, UserTokenPolicy, Variant,
};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;

/// One node found.
#[derive(Clone, Debug, PartialEq)]
pub struct Browsed {
    /// Depth below the root (the root's children are 1).
    pub depth: usize,
    /// Browse names from the root's child down to this node.
    pub path: Vec<String>,
    /// Its node id.
    pub node_id: NodeId,
    /// Object or variable.
    pub is_variable: bool,
    /// Data type name, for variables.
    pub data_type: Option<String>,
    /// Current value as text, for variables.
    pub value: Option<String>,
    /// Engineering unit, where the server gives one.
    pub unit: Option<String>,
}

/// The name of a well-known data type, else the data type's node id.
pub fn data_type_name(id: &NodeId) -> String {
    let known = [
        (DataTypeId::Boolean, "Boolean"),
        (DataTypeId::SByte, "SByte"),
        (DataTypeId::Byte, "Byte"),
        (DataTypeId::Int16, "Int16"),
        (DataTypeId::UInt16, "UInt16"),
        (DataTypeId::Int32, "Int32"),
        (DataTypeId::UInt32, "UInt32"),
        (DataTypeId::Int64, "Int64"),
        (DataTypeId::UInt64, "UInt64"),
        (DataTypeId::Float, "Float"),
        (DataTypeId::Double, "Double"),
        (DataTypeId::String, "String"),
        (DataTypeId::DateTime, "DateTime"),
        (DataTypeId::ByteString, "ByteString"),
        (DataTypeId::LocalizedText, "LocalizedText"),
        (DataTypeId::EUInformation, "EUInformation"),
    ];
    known
        .iter()
        .find(|(t, _)| id.namespace == 0 && id.identifier == Identifier::Numeric(*t as u32))
        .map_or_else(|| id.to_string(), |(_, n)| (*n).to_owned())
}

/// A tag name (`[a-z0-9_]+`) from a browse path: words joined by `_`, camel case split.
pub fn tag_name(path: &[String]) -> String {
    let mut out = String::new();
    for part in path {
        let mut prev_lower = false;
        if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
        for c in part.chars() {
            if c.is_ascii_uppercase() && prev_lower && !out.ends_with('_') {
                out.push('_');
            }
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            match c {
                'a'..='z' | '0'..='9' => out.push(c),
                'A'..='Z' => out.push(c.to_ascii_lowercase()),
                _ if !out.ends_with('_') && !out.is_empty() => out.push('_'),
                _ => {}
            }
        }
    }
    let trimmed = out.trim_matches('_');
    if trimmed.is_empty() {
        "tag".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// A node id as a config writes it: by namespace URI where the server gives one.
pub fn config_node(id: &NodeId, namespaces: &[String]) -> String {
    let text = id.to_string();
    match namespaces.get(usize::from(id.namespace)) {
        Some(uri) if id.namespace > 0 && !uri.is_empty() => {
            let rest = text.split_once(';').map_or(text.as_str(), |(_, r)| r);
            format!("nsu={uri};{rest}")
        }
        _ => text,
    }
}

/// The tree, one node per line, indented by depth.
pub fn render_tree(nodes: &[Browsed]) -> String {
    let mut out = String::new();
    for n in nodes {
        let indent = "  ".repeat(n.depth.saturating_sub(1));
        let name = n.path.last().map_or("", String::as_str);
        let _ = write!(out, "{indent}{name}  [{}]", n.node_id);
        if let Some(t) = &n.data_type {
            let _ = write!(out, "  {t}");
        }
        if let Some(v) = &n.value {
            let _ = write!(out, " = {v}");
        }
        if let Some(u) = &n.unit {
            let _ = write!(out, " {u}");
        }
        out.push('\n');
    }
    out
}

/// `[[machine.tag]]` entries for every variable, names made valid and unique.
pub fn render_toml(nodes: &[Browsed], namespaces: &[String]) -> String {
    let mut out = String::from(
        "# [[machine.tag]] entries from shopfloor browse: paste under an opcua [[machine]].\n",
    );
    let mut used = HashSet::new();
    for n in nodes.iter().filter(|n| n.is_variable) {
        let base = tag_name(&n.path);
        let mut name = base.clone();
        let mut i = 2;
        while !used.insert(name.clone()) {
            name = format!("{base}_{i}");
            i += 1;
        }
        out.push('\n');
        if let Some(t) = &n.data_type {
            let _ = writeln!(
                out,
                "  # {t}{}",
                n.value
                    .as_ref()
                    .map(|v| format!(", now {v}"))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(out, "  [[machine.tag]]\n  name = \"{name}\"");
        let node = config_node(&n.node_id, namespaces)
            .replace('\\', "\\\\")
            .replace('"', "\\\"");
        let _ = writeln!(out, "  node = \"{node}\"");
        if let Some(u) = &n.unit {
            let _ = writeln!(out, "  unit = \"{}\"", u.replace('"', "\\\""));
        }
    }
    out
}

fn read_id(node: NodeId, attribute: AttributeId) -> ReadValueId {
    ReadValueId {
        node_id: node,
        attribute_id: attribute as u32,
        index_range: Default::default(),
        data_encoding: QualifiedName::null(),
    }
}

fn service(what: &'static str) -> impl Fn(opcua::types::Error) -> OpcuaError {
    move |e| OpcuaError::Service {
        what,
        status: e.status(),
    }
}

/// Children of `node` over hierarchical references: (node id, browse name, class).
async fn children(
    session: &Session,
    node: &NodeId,
) -> Result<Vec<(NodeId, String, NodeClass)>, OpcuaError> {
    let description = BrowseDescription {
        node_id: node.clone(),
        browse_direction: BrowseDirection::Forward,
        reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
        include_subtypes: true,
        node_class_mask: (NodeClass::Object as u32) | (NodeClass::Variable as u32),
        result_mask: 0x3f,
    };
    let mut results = session
        .browse(&[description], 1000, None)
        .await
        .map_err(service("browse"))?;
    let mut out = Vec::new();
    let mut result = results.pop();
    while let Some(r) = result.take() {
        for reference in r.references.unwrap_or_default() {
            out.push((
                reference.node_id.node_id,
                reference
                    .browse_name
                    .name
                    .value()
                    .clone()
                    .unwrap_or_default(),
                reference.node_class,
            ));
        }
        if !r.continuation_point.is_null() {
            result = session
                .browse_next(false, &[r.continuation_point])
                .await
                .map_err(service("browse next"))?
                .pop();
        }
    }
    Ok(out)
}

/// What to browse.
#[derive(Clone, Debug)]
pub struct BrowseRequest {
    /// `opc.tcp://host:port[/path]`.
    pub endpoint: String,
    /// Where to start; Objects when `None`.
    pub root: Option<NodeRef>,
    /// How many levels below the root.
    pub depth: usize,
    /// Limit on connecting and each request.
    pub timeout: Duration,
}

/// Walks the server's address space (anonymous, no security) and returns the nodes found, in
/// tree order, with the server's namespace array.
pub async fn browse(req: &BrowseRequest) -> Result<(Vec<Browsed>, Vec<String>), OpcuaError> {
    let mut client = ClientBuilder::new()
        .application_name("shopfloor browse")
        .application_uri("urn:iqblvd:shopfloor:browse")
        .session_retry_limit(0)
        .request_timeout(req.timeout)
        .client()
        .map_err(|e| OpcuaError::Setup(e.join("; ")))?;
    let endpoint = (
        req.endpoint.as_str(),
        SecurityPolicy::None.to_uri(),
        MessageSecurityMode::None,
        UserTokenPolicy::anonymous(),
    );
    let (session, event_loop) = timeout(
        req.timeout,
        client.connect_to_matching_endpoint(endpoint, IdentityToken::Anonymous),
    )
    .await
    .map_err(|_| OpcuaError::Timeout {
        what: "get endpoints",
        limit: req.timeout,
    })?
    .map_err(|e| OpcuaError::Connect {
        endpoint: req.endpoint.clone(),
        message: e.to_string(),
    })?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let looper = tokio::spawn(async move {
        use futures_util::StreamExt;
        let events = event_loop.enter();
        futures_util::pin_mut!(events);
        let mut tx = Some(tx);
        while let Some(e) = events.next().await {
            match e {
                Ok(SessionPollResult::Reconnected(_)) => {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(Ok(()));
                    }
                }
                Err(c) | Ok(SessionPollResult::ReconnectFailed(c)) => {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(Err(c));
                    }
                    return;
                }
                _ => {}
            }
        }
    });
    let opened = timeout(req.timeout * 2, rx).await;
    let result = match opened {
        Ok(Ok(Ok(()))) => walk(&session, req).await,
        Ok(Ok(Err(c))) => Err(OpcuaError::Connect {
            endpoint: req.endpoint.clone(),
            message: c.to_string(),
        }),
        _ => Err(OpcuaError::Timeout {
            what: "open session",
            limit: req.timeout * 2,
        }),
    };
    let _ = timeout(Duration::from_secs(1), session.disconnect()).await;
    looper.abort();
    result
}

async fn walk(
    session: &Arc<Session>,
    req: &BrowseRequest,
) -> Result<(Vec<Browsed>, Vec<String>), OpcuaError> {
    let namespaces = namespaces(session).await?;
    let root = match &req.root {
        Some(r) => r.resolve(&namespaces).map_err(|e| OpcuaError::Connect {
            endpoint: req.endpoint.clone(),
            message: e.to_string(),
        })?,
        None => ObjectId::ObjectsFolder.into(),
    };
    let mut out = Vec::new();
    // Depth-first with an explicit stack, so the output is in tree order.
    let mut stack = vec![(root, 0usize, Vec::<String>::new())];
    let mut seen = HashSet::new();
    while let Some((node, depth, path)) = stack.pop() {
        if depth >= req.depth || !seen.insert(node.clone()) {
            continue;
        }
        let kids = children(session, &node).await?;
        let mut found = Vec::new();
        for (id, name, class) in kids {
            if id.namespace == 0 || name == "EngineeringUnits" {
                continue;
            }
            let mut p = path.clone();
            p.push(name);
            found.push((id, p, class == NodeClass::Variable));
        }
        let mut entries = Vec::new();
        for (id, p, is_variable) in found {
            let mut b = Browsed {
                depth: depth + 1,
                path: p.clone(),
                node_id: id.clone(),
                is_variable,
                data_type: None,
                value: None,
                unit: None,
            };
            if is_variable {
                describe(session, &mut b).await?;
            }
            entries.push(b);
        }
        // Children are pushed in reverse so they come off the stack in the server's order.
        for b in entries.iter().rev() {
            stack.push((b.node_id.clone(), b.depth, b.path.clone()));
        }
        // Emit this level's nodes right after their parent.
        let at = out
            .iter()
            .position(|x: &Browsed| x.node_id == node)
            .map_or(out.len(), |i| i + 1);
        out.splice(at..at, entries);
    }
    Ok((out, namespaces))
}

async fn describe(session: &Session, b: &mut Browsed) -> Result<(), OpcuaError> {
    let values = session
        .read(
            &[
                read_id(b.node_id.clone(), AttributeId::DataType),
                read_id(b.node_id.clone(), AttributeId::Value),
            ],
            TimestampsToReturn::Neither,
            0.0,
        )
        .await
        .map_err(service("read"))?;
    if let Some(Variant::NodeId(t)) = values.first().and_then(|v| v.value.as_ref()) {
        b.data_type = Some(data_type_name(t));
    }
    if let Some(dv) = values.get(1) {
        let (_, v, q) = convert::reading(dv, || 0);
        b.value = Some(match (q, v) {
            (shopfloor_core::Quality::Bad, _) => {
                format!("(bad: {})", dv.status.unwrap_or(StatusCode::Bad))
            }
            (_, v) => match v {
                shopfloor_core::Value::Text(t) => format!("{:?}", t.as_str()),
                other => other
                    .as_f64()
                    .map(|_| display_number(&other))
                    .unwrap_or_else(|| format!("{other:?}")),
            },
        });
    }
    b.unit = unit(session, &b.node_id).await;
    Ok(())
}

fn display_number(v: &shopfloor_core::Value) -> String {
    match v {
        shopfloor_core::Value::Bool(b) => b.to_string(),
        shopfloor_core::Value::I64(i) => i.to_string(),
        shopfloor_core::Value::U64(u) => u.to_string(),
        shopfloor_core::Value::F64(f) => format!("{f:?}"),
        other => format!("{other:?}"),
    }
}

/// The display name of a variable's EngineeringUnits property, if it has one.
async fn unit(session: &Session, node: &NodeId) -> Option<String> {
    let description = BrowseDescription {
        node_id: node.clone(),
        browse_direction: BrowseDirection::Forward,
        reference_type_id: ReferenceTypeId::HasProperty.into(),
        include_subtypes: true,
        node_class_mask: NodeClass::Variable as u32,
        result_mask: 0x3f,
    };
    let results = session.browse(&[description], 100, None).await.ok()?;
    let property = results
        .into_iter()
        .flat_map(|r| r.references.unwrap_or_default())
        .find(|r| r.browse_name.name.value().as_deref() == Some("EngineeringUnits"))?;
    let values = session
        .read(
            &[read_id(property.node_id.node_id, AttributeId::Value)],
            TimestampsToReturn::Neither,
            0.0,
        )
        .await
        .ok()?;
    match values.into_iter().next()?.value? {
        Variant::ExtensionObject(o) => {
            let eu = o.into_inner_as::<EUInformation>()?;
            eu.display_name
                .text
                .value()
                .clone()
                .filter(|t| !t.is_empty())
        }
        _ => None,
    }
}

async fn namespaces(session: &Session) -> Result<Vec<String>, OpcuaError> {
    let values = session
        .read(
            &[read_id(
                opcua::types::VariableId::Server_NamespaceArray.into(),
                AttributeId::Value,
            )],
            TimestampsToReturn::Neither,
            0.0,
        )
        .await
        .map_err(service("read namespace array"))?;
    Ok(match values.into_iter().next().and_then(|v| v.value) {
        Some(Variant::Array(a)) => a
            .values
            .into_iter()
            .map(|v| match v {
                Variant::String(s) => s.value().clone().unwrap_or_default(),
                _ => String::new(),
            })
            .collect(),
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn tag_names_are_valid() {
        let table = [
            (
                p(&["Monitoring", "Spindle", "Speed"]),
                "monitoring_spindle_speed",
            ),
            (p(&["TestMachine", "UInt16"]), "test_machine_uint16"),
            (p(&["Zone_1", "Temperature"]), "zone_1_temperature"),
            (p(&["Barrel Zone (1)", "°C"]), "barrel_zone_1_c"),
            (p(&["***"]), "tag"),
            (p(&["CycleTime"]), "cycle_time"),
        ];
        for (path, want) in table {
            assert_eq!(tag_name(&path), want, "{path:?}");
        }
    }

    #[test]
    fn nodes_are_written_with_their_namespace_uri() {
        let ns = vec![
            "http://opcfoundation.org/UA/".to_owned(),
            "urn:a".into(),
            "urn:m".into(),
        ];
        assert_eq!(config_node(&NodeId::new(2, "X.Y"), &ns), "nsu=urn:m;s=X.Y");
        assert_eq!(config_node(&NodeId::new(1, 5u32), &ns), "nsu=urn:a;i=5");
        assert_eq!(config_node(&NodeId::new(7, 5u32), &ns), "ns=7;i=5");
    }

    #[test]
    fn toml_names_are_unique() {
        let b = |path: Vec<String>| Browsed {
            depth: 1,
            path,
            node_id: NodeId::new(2, "a"),
            is_variable: true,
            data_type: Some("Double".into()),
            value: Some("1".into()),
            unit: Some("mm".into()),
        };
        let out = render_toml(&[b(p(&["A b"])), b(p(&["a_b"]))], &[]);
        assert!(out.contains("name = \"a_b\""), "{out}");
        assert!(out.contains("name = \"a_b_2\""), "{out}");
        assert!(out.contains("unit = \"mm\""), "{out}");
    }
}
