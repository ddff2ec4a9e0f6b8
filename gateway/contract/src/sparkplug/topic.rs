//! Sparkplug topics: `spBv1.0/{group}/{type}/{edge node}[/{device}]`.

/// The first level of every Sparkplug B topic.
pub const NAMESPACE: &str = "spBv1.0";

/// What a Sparkplug message is, from its topic's third level.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// An edge node's birth certificate.
    NBirth,
    /// An edge node's death certificate (its will).
    NDeath,
    /// An edge node's own data.
    NData,
    /// A command to an edge node (Rebirth).
    NCmd,
    /// A device's birth certificate.
    DBirth,
    /// A device's death certificate.
    DDeath,
    /// A device's data.
    DData,
    /// A command to a device.
    DCmd,
}

impl MessageType {
    /// Every type, in the specification's order.
    pub const ALL: [MessageType; 8] = [
        MessageType::NBirth,
        MessageType::NDeath,
        MessageType::NData,
        MessageType::NCmd,
        MessageType::DBirth,
        MessageType::DDeath,
        MessageType::DData,
        MessageType::DCmd,
    ];

    /// The word in the topic.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::NBirth => "NBIRTH",
            MessageType::NDeath => "NDEATH",
            MessageType::NData => "NDATA",
            MessageType::NCmd => "NCMD",
            MessageType::DBirth => "DBIRTH",
            MessageType::DDeath => "DDEATH",
            MessageType::DData => "DDATA",
            MessageType::DCmd => "DCMD",
        }
    }

    /// True for the device-level types, whose topics name a device.
    pub fn is_device(self) -> bool {
        matches!(
            self,
            MessageType::DBirth | MessageType::DDeath | MessageType::DData | MessageType::DCmd
        )
    }
}

/// A parsed Sparkplug topic.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Topic<'a> {
    /// The group id.
    pub group: &'a str,
    /// The message type.
    pub kind: MessageType,
    /// The edge node id.
    pub edge_node: &'a str,
    /// The device id, for device-level types.
    pub device: Option<&'a str>,
}

impl<'a> Topic<'a> {
    /// Reads `topic`, or `None` when it is not a well-formed Sparkplug B message topic
    /// (`STATE` topics included: they are not messages of a node).
    pub fn parse(topic: &'a str) -> Option<Topic<'a>> {
        let mut levels = topic.split('/');
        if levels.next()? != NAMESPACE {
            return None;
        }
        let group = levels.next().filter(|g| id_ok(g))?;
        let word = levels.next()?;
        let kind = MessageType::ALL.into_iter().find(|k| k.as_str() == word)?;
        let edge_node = levels.next().filter(|e| id_ok(e))?;
        let device = levels.next();
        if levels.next().is_some() || device.is_some() != kind.is_device() {
            return None;
        }
        if device.is_some_and(|d| !id_ok(d)) {
            return None;
        }
        Some(Topic {
            group,
            kind,
            edge_node,
            device,
        })
    }
}

impl std::fmt::Display for Topic<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Topic {
            group,
            kind,
            edge_node,
            ..
        } = self;
        write!(f, "{NAMESPACE}/{group}/{}/{edge_node}", kind.as_str())?;
        match self.device {
            Some(d) => write!(f, "/{d}"),
            None => Ok(()),
        }
    }
}

/// True for an id the specification allows as a group, edge node or device id: not empty,
/// and none of `/`, `+`, `#`.
pub fn id_ok(id: &str) -> bool {
    !id.is_empty() && !id.contains(['/', '+', '#'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_read_back_as_written() {
        for kind in MessageType::ALL {
            let device = kind.is_device().then_some("cnc-1");
            let t = Topic {
                group: "iqblvd",
                kind,
                edge_node: "demo-hall",
                device,
            };
            let s = t.to_string();
            assert_eq!(Topic::parse(&s), Some(t), "{s}");
        }
    }

    #[test]
    fn malformed_topics_are_refused() {
        for bad in [
            "spBv1.0/iqblvd/DDATA/demo-hall",
            "spBv1.0/iqblvd/NDATA/demo-hall/cnc-1",
            "spBv1.0/iqblvd/DDATA/demo-hall/cnc-1/x",
            "spBv1.0/STATE/scada",
            "spBv1.0//NBIRTH/demo-hall",
            "spAv1.0/iqblvd/NBIRTH/demo-hall",
            "spBv1.0/iqblvd/NOPE/demo-hall",
        ] {
            assert_eq!(Topic::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_refuse_mqtt_wildcards_and_levels() {
        assert!(id_ok("demo-hall"));
        for bad in ["", "a/b", "a+", "#"] {
            assert!(!id_ok(bad), "{bad}");
        }
    }
}
