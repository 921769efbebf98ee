//! The `[http]` table: the daemon's one HTTP port for probes (`/health`, `/ready`), Prometheus
//! `/metrics`, `/status` and the admin endpoints, and the token that guards the admin ones.

use std::net::SocketAddr;

use serde::Deserialize;
use sluice_api::{join_key, ConfigProblem, Secret};

/// Where the endpoint listens unless told otherwise: loopback only, so nothing is exposed
/// beyond the host without a deliberate choice.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8085";
/// The endpoint is on unless turned off: probes and metrics are what operators expect first.
pub const DEFAULT_HTTP_ENABLED: bool = true;

/// The `[http]` keys as written.
#[derive(Debug, Default, Deserialize)]
pub struct RawHttp {
    /// `ip:port`; default [`DEFAULT_HTTP_LISTEN`]; `""` turns the endpoint off.
    pub listen: Option<String>,
    /// Default [`DEFAULT_HTTP_ENABLED`]; `false` turns the endpoint off.
    pub enabled: Option<bool>,
    /// When set, `/admin/*` and every POST need `Authorization: Bearer <token>`.
    pub admin_token: Option<String>,
}

/// The validated `[http]` table. Its `Debug` never shows the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// Where to serve; `None` when the endpoint is off.
    pub listen: Option<SocketAddr>,
    /// The bearer token the admin endpoints require; `None` leaves them open.
    pub admin_token: Option<Secret>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        validate(RawHttp::default(), "http").expect("the defaults are valid")
    }
}

/// Validate `[http]` (absent means the defaults), reporting every problem with its key.
pub fn validate(raw: RawHttp, prefix: &str) -> Result<HttpConfig, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    let enabled = raw.enabled.unwrap_or(DEFAULT_HTTP_ENABLED);
    let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_HTTP_LISTEN).trim();
    let listen = if !enabled || listen_text.is_empty() {
        None
    } else {
        match listen_text.parse::<SocketAddr>() {
            Ok(address) => Some(address),
            Err(_) => {
                problems.push(ConfigProblem::new(
                    join_key(prefix, "listen"),
                    format!(
                        "not an ip:port address: {listen_text:?} (\"\" turns the endpoint off)"
                    ),
                ));
                None
            }
        }
    };
    let admin_token = match raw.admin_token {
        None => None,
        Some(token) if token.trim().is_empty() => {
            // An empty token would make the guard look on while accepting `Bearer ` alone.
            problems.push(ConfigProblem::new(
                join_key(prefix, "admin_token"),
                "must not be empty; remove the key to leave the admin endpoints open",
            ));
            None
        }
        Some(token) => Some(Secret::new(token)),
    };
    if problems.is_empty() {
        Ok(HttpConfig {
            listen,
            admin_token,
        })
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_http_table_listens_on_the_default_port_without_a_token() {
        let config = HttpConfig::default();
        assert_eq!(config.listen, Some(DEFAULT_HTTP_LISTEN.parse().unwrap()));
        assert_eq!(config.admin_token, None);
    }

    #[test]
    fn an_empty_listen_or_enabled_false_turns_the_endpoint_off() {
        for raw in [
            RawHttp {
                listen: Some(String::new()),
                ..RawHttp::default()
            },
            RawHttp {
                enabled: Some(false),
                listen: Some("0.0.0.0:9000".into()),
                ..RawHttp::default()
            },
        ] {
            assert_eq!(validate(raw, "http").unwrap().listen, None);
        }
    }

    #[test]
    fn bad_listen_and_empty_token_are_reported_with_their_keys() {
        let raw = RawHttp {
            listen: Some("localhost".into()),
            enabled: None,
            admin_token: Some(" ".into()),
        };
        let keys: Vec<String> = validate(raw, "http")
            .unwrap_err()
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(keys, ["http.listen", "http.admin_token"]);
    }

    #[test]
    fn the_admin_token_never_shows_in_debug_output() {
        let raw = RawHttp {
            admin_token: Some("s3cret-token".into()),
            ..RawHttp::default()
        };
        let config = validate(raw, "http").unwrap();
        assert!(!format!("{config:?}").contains("s3cret-token"));
        assert_eq!(config.admin_token.unwrap().expose(), "s3cret-token");
    }
}
