//! The client side of the HTTP endpoint, for `sluice status`, `sluice pause` and
//! `sluice resume`: find the running daemon from its config (or a URL), call it, and say
//! clearly what went wrong when it cannot be reached.

use std::net::SocketAddr;
use std::time::Duration;

use sluice_api::Secret;

use super::status::Status;
use crate::config::HttpConfig;

/// How long a call to the local daemon may take: it answers from memory.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `[http]` turns the endpoint off and no `--url` was given.
    #[error("the HTTP endpoint is off in this config ([http] enabled = false or listen = \"\"); pass --url")]
    Disabled,
    #[error("cannot reach the daemon at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url} answered something that is not a status document: {message}")]
    Malformed { url: String, message: String },
}

/// The daemon's base URL: `url` when given, else `[http] listen` (an unspecified address such
/// as 0.0.0.0 is reached on loopback).
pub fn base_url(http: &HttpConfig, url: Option<&str>) -> Result<String, ClientError> {
    if let Some(url) = url {
        return Ok(url.trim_end_matches('/').to_owned());
    }
    let listen = http.listen.ok_or(ClientError::Disabled)?;
    let reachable = if listen.ip().is_unspecified() {
        let loopback: std::net::IpAddr = if listen.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        SocketAddr::new(loopback, listen.port())
    } else {
        listen
    };
    Ok(format!("http://{reachable}"))
}

/// An HTTP client for the daemon's endpoint (`https` URLs trust the web roots). reqwest is
/// built without a default TLS crypto provider, so one is given.
pub fn http_client() -> Result<reqwest::Client, ClientError> {
    let unreachable = |message: String| ClientError::Unreachable {
        url: String::new(),
        message,
    };
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unreachable(e.to_string()))?
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| unreachable(e.to_string()))
}

/// `GET /status`.
pub async fn fetch_status(base: &str) -> Result<Status, ClientError> {
    let url = format!("{base}/status");
    let response = send(http_client()?.get(&url), &url).await?;
    response.json().await.map_err(|e| ClientError::Malformed {
        url,
        message: e.to_string(),
    })
}

/// `POST /admin/<action>` with the token when one is configured.
pub async fn admin(base: &str, action: &str, token: Option<&Secret>) -> Result<(), ClientError> {
    let url = format!("{base}/admin/{action}");
    let mut request = http_client()?.post(&url);
    if let Some(token) = token {
        request = request.bearer_auth(token.expose());
    }
    send(request, &url).await.map(drop)
}

async fn send(
    request: reqwest::RequestBuilder,
    url: &str,
) -> Result<reqwest::Response, ClientError> {
    let response = request.send().await.map_err(|e| ClientError::Unreachable {
        url: url.to_owned(),
        message: e.to_string(),
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    Err(ClientError::Status {
        url: url.to_owned(),
        status: status.as_u16(),
        body: response.text().await.unwrap_or_default(),
    })
}
