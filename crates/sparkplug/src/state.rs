//! Host STATE payloads: Sparkplug 3.0 JSON `{"online":bool,"timestamp":<ms>}` and the 2.2
//! strings `ONLINE` / `OFFLINE`.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::topic::StateVersion;

/// A host application's STATE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostState {
    pub online: bool,
    /// UTC ms; absent in the 2.2 form.
    #[serde(default)]
    pub timestamp: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum StateError {
    #[error("STATE payload is not the 3.0 JSON {{\"online\":bool,\"timestamp\":int}}: {0}")]
    Json(String),
    #[error("3.0 STATE payload has no timestamp")]
    MissingTimestamp,
    #[error("2.2 STATE payload is neither ONLINE nor OFFLINE")]
    Legacy,
}

impl HostState {
    /// Parses a STATE payload of the given version.
    pub fn parse(payload: &[u8], version: StateVersion) -> Result<HostState, StateError> {
        match version {
            StateVersion::V3 => {
                let state: HostState =
                    serde_json::from_slice(payload).map_err(|e| StateError::Json(e.to_string()))?;
                if state.timestamp.is_none() {
                    return Err(StateError::MissingTimestamp);
                }
                Ok(state)
            }
            StateVersion::Legacy => match payload {
                b"ONLINE" => Ok(HostState {
                    online: true,
                    timestamp: None,
                }),
                b"OFFLINE" => Ok(HostState {
                    online: false,
                    timestamp: None,
                }),
                _ => Err(StateError::Legacy),
            },
        }
    }

    /// The 3.0 JSON payload, with the timestamp as a JSON integer.
    pub fn to_json(online: bool, timestamp: u64) -> String {
        format!("{{\"online\":{online},\"timestamp\":{timestamp}}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_json_round_trips() {
        let json = HostState::to_json(true, 1_718_900_000_123);
        assert_eq!(json, r#"{"online":true,"timestamp":1718900000123}"#);
        assert_eq!(
            HostState::parse(json.as_bytes(), StateVersion::V3),
            Ok(HostState {
                online: true,
                timestamp: Some(1_718_900_000_123)
            })
        );
    }

    #[test]
    fn bad_state_payloads_are_errors() {
        assert!(HostState::parse(b"{\"online\":true}", StateVersion::V3).is_err());
        assert!(
            HostState::parse(b"{\"online\":\"yes\",\"timestamp\":1}", StateVersion::V3).is_err()
        );
        assert!(
            HostState::parse(b"{\"online\":true,\"timestamp\":1.5}", StateVersion::V3).is_err()
        );
        assert!(HostState::parse(b"ONLINE", StateVersion::V3).is_err());
        assert!(HostState::parse(b"online", StateVersion::Legacy).is_err());
        assert_eq!(
            HostState::parse(b"OFFLINE", StateVersion::Legacy),
            Ok(HostState {
                online: false,
                timestamp: None
            })
        );
    }
}
