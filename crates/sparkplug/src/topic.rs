//! Sparkplug topic parsing (specification §4.1): `spBv1.0/<group>/<verb>/<edge node>[/<device>]`,
//! the 3.0 host STATE topic `spBv1.0/STATE/<host id>` and the 2.2 form `STATE/<host id>`.

use std::fmt;

use thiserror::Error;

/// The Sparkplug B namespace token.
pub const NAMESPACE: &str = "spBv1.0";

/// The verb of a node- or device-level message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    NBirth,
    NDeath,
    NData,
    NCmd,
    DBirth,
    DDeath,
    DData,
    DCmd,
}

impl MessageType {
    pub fn from_verb(verb: &str) -> Option<Self> {
        Some(match verb {
            "NBIRTH" => MessageType::NBirth,
            "NDEATH" => MessageType::NDeath,
            "NDATA" => MessageType::NData,
            "NCMD" => MessageType::NCmd,
            "DBIRTH" => MessageType::DBirth,
            "DDEATH" => MessageType::DDeath,
            "DDATA" => MessageType::DData,
            "DCMD" => MessageType::DCmd,
            _ => return None,
        })
    }

    pub fn verb(self) -> &'static str {
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

    /// Whether the topic of this verb carries a device id.
    pub fn is_device(self) -> bool {
        matches!(
            self,
            MessageType::DBirth | MessageType::DDeath | MessageType::DData | MessageType::DCmd
        )
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.verb())
    }
}

/// Which STATE convention a host STATE topic follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateVersion {
    /// Sparkplug 3.0: `spBv1.0/STATE/<host id>`, JSON payload.
    V3,
    /// Sparkplug 2.2: `STATE/<host id>`, payload `ONLINE` / `OFFLINE`.
    Legacy,
}

/// A parsed topic, borrowing from the topic string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic<'a> {
    /// A node- or device-level message.
    Message {
        group: &'a str,
        message_type: MessageType,
        edge_node: &'a str,
        /// Present exactly when `message_type.is_device()`.
        device: Option<&'a str>,
    },
    /// A host application's STATE.
    State {
        host_id: &'a str,
        version: StateVersion,
    },
}

/// Why a topic is not a Sparkplug B topic.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TopicError {
    #[error("topic does not start with the {NAMESPACE} namespace (found {0:?})")]
    Namespace(String),
    #[error("unknown Sparkplug verb {0:?}")]
    UnknownVerb(String),
    #[error("{verb} topics have {expected} levels, this one has {found}")]
    TokenCount {
        verb: String,
        expected: usize,
        found: usize,
    },
    #[error("STATE topics have the form {NAMESPACE}/STATE/<host id>")]
    StateShape,
    #[error("empty {0} in topic")]
    EmptyId(&'static str),
    #[error("{0} contains a wildcard character (+ or #)")]
    Wildcard(&'static str),
}

impl<'a> Topic<'a> {
    /// Parses a topic. Group, edge node, device and host ids must be non-empty and free of `+`
    /// and `#` (the `/` separator cannot occur inside a level by construction).
    pub fn parse(topic: &'a str) -> Result<Topic<'a>, TopicError> {
        let mut levels = topic.split('/');
        let first = levels.next().unwrap_or_default();
        if first == "STATE" {
            return match (levels.next(), levels.next()) {
                (Some(host_id), None) => Ok(Topic::State {
                    host_id: id(host_id, "host id")?,
                    version: StateVersion::Legacy,
                }),
                _ => Err(TopicError::StateShape),
            };
        }
        if first != NAMESPACE {
            return Err(TopicError::Namespace(first.to_string()));
        }
        let tokens: Vec<&str> = levels.collect();
        if tokens.first() == Some(&"STATE") {
            return match tokens.as_slice() {
                [_, host_id] => Ok(Topic::State {
                    host_id: id(host_id, "host id")?,
                    version: StateVersion::V3,
                }),
                _ => Err(TopicError::StateShape),
            };
        }
        let verb = tokens.get(1).copied().unwrap_or_default();
        let message_type = MessageType::from_verb(verb)
            .ok_or_else(|| TopicError::UnknownVerb(verb.to_string()))?;
        let expected = if message_type.is_device() { 5 } else { 4 };
        if tokens.len() + 1 != expected {
            return Err(TopicError::TokenCount {
                verb: verb.to_string(),
                expected,
                found: tokens.len() + 1,
            });
        }
        Ok(Topic::Message {
            group: id(tokens[0], "group id")?,
            message_type,
            edge_node: id(tokens[2], "edge node id")?,
            device: tokens.get(3).map(|d| id(d, "device id")).transpose()?,
        })
    }
}

fn id<'a>(s: &'a str, what: &'static str) -> Result<&'a str, TopicError> {
    if s.is_empty() {
        Err(TopicError::EmptyId(what))
    } else if s.contains(['+', '#']) {
        Err(TopicError::Wildcard(what))
    } else {
        Ok(s)
    }
}

/// Builds a message topic, for commands the host sends and for the simulator.
pub fn message_topic(
    group: &str,
    message_type: MessageType,
    edge_node: &str,
    device: Option<&str>,
) -> String {
    match device {
        Some(d) => format!("{NAMESPACE}/{group}/{message_type}/{edge_node}/{d}"),
        None => format!("{NAMESPACE}/{group}/{message_type}/{edge_node}"),
    }
}

/// The 3.0 STATE topic of a host.
pub fn state_topic(host_id: &str) -> String {
    format!("{NAMESPACE}/STATE/{host_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_and_device_topics_parse() {
        assert_eq!(
            Topic::parse("spBv1.0/Plant7/NBIRTH/Gateway-A"),
            Ok(Topic::Message {
                group: "Plant7",
                message_type: MessageType::NBirth,
                edge_node: "Gateway-A",
                device: None
            })
        );
        assert_eq!(
            Topic::parse("spBv1.0/Plant7/DDATA/Gateway-A/Filler"),
            Ok(Topic::Message {
                group: "Plant7",
                message_type: MessageType::DData,
                edge_node: "Gateway-A",
                device: Some("Filler")
            })
        );
        for verb in ["NBIRTH", "NDEATH", "NDATA", "NCMD"] {
            let t = format!("spBv1.0/G/{verb}/E");
            assert!(Topic::parse(&t).is_ok(), "{t}");
            assert!(Topic::parse(&format!("{t}/D")).is_err(), "{t}/D");
        }
        for verb in ["DBIRTH", "DDEATH", "DDATA", "DCMD"] {
            let t = format!("spBv1.0/G/{verb}/E/D");
            assert!(Topic::parse(&t).is_ok(), "{t}");
            assert!(Topic::parse(&format!("spBv1.0/G/{verb}/E")).is_err());
        }
    }

    #[test]
    fn state_topics_parse_in_both_versions() {
        assert_eq!(
            Topic::parse("spBv1.0/STATE/scada-1"),
            Ok(Topic::State {
                host_id: "scada-1",
                version: StateVersion::V3
            })
        );
        assert_eq!(
            Topic::parse("STATE/scada-1"),
            Ok(Topic::State {
                host_id: "scada-1",
                version: StateVersion::Legacy
            })
        );
        assert_eq!(
            Topic::parse("spBv1.0/STATE/a/b"),
            Err(TopicError::StateShape)
        );
        assert_eq!(Topic::parse("STATE"), Err(TopicError::StateShape));
        assert_eq!(
            Topic::parse("spBv1.0/STATE/"),
            Err(TopicError::EmptyId("host id"))
        );
    }

    #[test]
    fn bad_topics_are_typed_errors() {
        assert_eq!(
            Topic::parse("spAv1.0/G/NDATA/E"),
            Err(TopicError::Namespace("spAv1.0".into()))
        );
        assert_eq!(
            Topic::parse("spBv1.0/G/NFOO/E"),
            Err(TopicError::UnknownVerb("NFOO".into()))
        );
        assert_eq!(
            Topic::parse("spBv1.0"),
            Err(TopicError::UnknownVerb(String::new()))
        );
        assert_eq!(
            Topic::parse("spBv1.0/G/DDATA/E/D/x"),
            Err(TopicError::TokenCount {
                verb: "DDATA".into(),
                expected: 5,
                found: 6
            })
        );
        assert_eq!(
            Topic::parse("spBv1.0//NDATA/E"),
            Err(TopicError::EmptyId("group id"))
        );
        assert_eq!(
            Topic::parse("spBv1.0/G/NDATA/E+"),
            Err(TopicError::Wildcard("edge node id"))
        );
        assert_eq!(Topic::parse(""), Err(TopicError::Namespace(String::new())));
    }

    #[test]
    fn built_topics_parse_back() {
        let t = message_topic("G", MessageType::NCmd, "E", None);
        assert_eq!(t, "spBv1.0/G/NCMD/E");
        assert!(matches!(
            Topic::parse(&t),
            Ok(Topic::Message {
                message_type: MessageType::NCmd,
                ..
            })
        ));
        assert_eq!(state_topic("h"), "spBv1.0/STATE/h");
    }
}
