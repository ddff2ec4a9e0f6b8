//! Node ids as a config writes them: `ns=2;s=IMM1.CycleTime`, `ns=2;i=1001`, `i=2258`, and
//! `nsu=urn:vendor:imm;s=CycleTime`, whose namespace is named by URI so a config survives a
//! server that renumbers its namespaces. Parsing is pure; the index of a URI is looked up on
//! every (re)connect, since a restarted server may hand out other indexes.

use opcua::types::NodeId;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// Which namespace a node lives in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// By index (`ns=`), as the server numbers it today.
    Index(u16),
    /// By URI (`nsu=`), resolved against the server's namespace array.
    Uri(String),
}

/// A node id from a config, not yet tied to a server.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeRef {
    /// The namespace.
    pub namespace: Namespace,
    /// The identifier part as written: `s=…`, `i=…`, `g=…` or `b=…`.
    pub identifier: String,
}

/// Why a node id does not parse, or cannot be tied to a server.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum NodeError {
    /// Not of any of the accepted forms.
    #[error("{0:?} is not a node id: write ns=2;s=Name, ns=2;i=1001 or nsu=urn:vendor;s=Name")]
    Syntax(String),
    /// The server does not know the namespace URI.
    #[error("namespace {0:?} is not in the server's namespace array")]
    UnknownNamespace(String),
}

fn identifier_ok(id: &str) -> bool {
    match id.split_once('=') {
        Some(("i", n)) => n.parse::<u32>().is_ok(),
        Some(("s", s)) => !s.is_empty(),
        Some(("g" | "b", x)) => NodeId::from_str(&format!("ns=0;{}={x}", &id[..1])).is_ok(),
        _ => false,
    }
}

impl NodeRef {
    /// Parses the config form.
    pub fn parse(text: &str) -> Result<NodeRef, NodeError> {
        let bad = || NodeError::Syntax(text.to_owned());
        let (namespace, identifier) = if let Some(rest) = text.strip_prefix("nsu=") {
            // A URI may itself hold ';' (rare), so split at the last ";x=" that starts an id.
            let at = ["s=", "i=", "g=", "b="]
                .iter()
                .filter_map(|k| rest.find(&format!(";{k}")))
                .min()
                .ok_or_else(bad)?;
            let uri = &rest[..at];
            if uri.is_empty() {
                return Err(bad());
            }
            (Namespace::Uri(uri.to_owned()), &rest[at + 1..])
        } else if let Some(rest) = text.strip_prefix("ns=") {
            let (index, id) = rest.split_once(';').ok_or_else(bad)?;
            let index = index.parse::<u16>().map_err(|_| bad())?;
            (Namespace::Index(index), id)
        } else {
            (Namespace::Index(0), text)
        };
        if !identifier_ok(identifier) {
            return Err(bad());
        }
        Ok(NodeRef {
            namespace,
            identifier: identifier.to_owned(),
        })
    }

    /// The node id on a server whose namespace array is `namespaces` (index = position).
    pub fn resolve(&self, namespaces: &[String]) -> Result<NodeId, NodeError> {
        let index = match &self.namespace {
            Namespace::Index(i) => *i,
            Namespace::Uri(uri) => namespaces
                .iter()
                .position(|n| n == uri)
                .and_then(|i| u16::try_from(i).ok())
                .ok_or_else(|| NodeError::UnknownNamespace(uri.clone()))?,
        };
        match self.identifier.split_once('=') {
            // Built directly: the library's parser stops at line breaks inside a name.
            Some(("s", name)) => Ok(NodeId::new(index, name)),
            Some(("i", n)) => n
                .parse::<u32>()
                .map(|n| NodeId::new(index, n))
                .map_err(|_| NodeError::Syntax(self.to_string())),
            _ => NodeId::from_str(&format!("ns={index};{}", self.identifier))
                .map_err(|_| NodeError::Syntax(self.to_string())),
        }
    }
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Namespace::Index(0) => write!(f, "{}", self.identifier),
            Namespace::Index(i) => write!(f, "ns={i};{}", self.identifier),
            Namespace::Uri(u) => write!(f, "nsu={u};{}", self.identifier),
        }
    }
}

/// The config form of a server's node id: `ns=N;s=…` (or `i=…` in namespace 0).
pub fn config_form(node: &NodeId) -> String {
    node.to_string()
}

#[cfg(test)]
mod tests;
