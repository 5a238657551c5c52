//! The control protocol: one JSON object per line each way over a Unix socket. Field names
//! are stable and documented in docs/cli.md; `version` lets a client detect a daemon that
//! speaks another dialect.

use serde::{Deserialize, Serialize};

pub const PROTOCOL_VERSION: u32 = 1;
/// A request line longer than this is refused and the client dropped.
pub const MAX_REQUEST_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Command {
    ShowRoutes,
    ShowReceived {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
    },
    ShowPeers,
    ShowServices,
    /// `service: None` means every service.
    Drain {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
    },
    Undrain {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
    },
    Reload,
    /// An operator vouches for this host's server as the service's primary (docs/safety.md).
    Confirm {
        service: String,
    },
    /// Check now; announce before answering if the check passes and the rules allow it
    /// (`service: None`: every service).
    Check {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    #[serde(flatten)]
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub version: u32,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl Response {
    pub fn ok(data: serde_json::Value) -> Self {
        Response {
            version: PROTOCOL_VERSION,
            ok: true,
            error: None,
            data: Some(data),
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Response {
            version: PROTOCOL_VERSION,
            ok: false,
            error: Some(message.into()),
            data: None,
        }
    }
}

/// Parses one request line; the error text goes back to the client.
pub fn parse_request(line: &str) -> Result<Request, String> {
    let request: Request =
        serde_json::from_str(line).map_err(|e| format!("invalid request: {e}"))?;
    if request.version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {} is not supported (this daemon speaks {PROTOCOL_VERSION})",
            request.version
        ));
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_with_kebab_case_commands() {
        let r = Request {
            version: 1,
            command: Command::ShowReceived {
                peer: Some("tor1".into()),
            },
        };
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"version":1,"command":"show-received","peer":"tor1"}"#
        );
        assert_eq!(parse_request(&line).unwrap(), r);
        let drain_all = parse_request(r#"{"version":1,"command":"drain"}"#).unwrap();
        assert_eq!(drain_all.command, Command::Drain { service: None });
    }

    #[test]
    fn garbage_and_other_versions_are_refused() {
        assert!(parse_request("hello")
            .unwrap_err()
            .starts_with("invalid request"));
        assert!(parse_request(r#"{"version":1,"command":"rm -rf"}"#).is_err());
        let e = parse_request(r#"{"version":2,"command":"show-peers"}"#).unwrap_err();
        assert!(e.contains("version 2"), "{e}");
    }
}
