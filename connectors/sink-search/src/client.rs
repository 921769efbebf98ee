//! HTTP client for Elasticsearch 7/8 and OpenSearch 1/2+: `_bulk`, index existence and
//! creation, and clearing an index. rustls on ring (public web roots plus `ca_file`), basic
//! auth or `Authorization: ApiKey`. Requests send plain `application/json` and
//! `application/x-ndjson`, which every one of these versions accepts (Elasticsearch 8's
//! `compatible-with` media types are refused by OpenSearch, so they are never sent).
//!
//! Credentials are only ever in headers, never in URLs or error messages.

use std::sync::Arc;

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::Value as Json;

use crate::bulk::error_reason;
use crate::config::{SearchAuth, SearchSinkConfig};
use crate::error::SearchSinkError;

const JSON: &str = "application/json";
const NDJSON: &str = "application/x-ndjson";

/// A connection pool to one cluster.
#[derive(Clone)]
pub struct SearchClient {
    http: reqwest::Client,
    base: String,
    authorization: Option<HeaderValue>,
}

impl SearchClient {
    pub fn new(config: &SearchSinkConfig) -> Result<SearchClient, SearchSinkError> {
        let tls = tls_config(config.ca_file.as_deref())?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| SearchSinkError::Setup(without_url(&e)))?;
        let authorization = match &config.auth {
            SearchAuth::None => None,
            SearchAuth::Basic { username, password } => {
                use base64::Engine;
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()));
                Some(sensitive(&format!("Basic {token}"))?)
            }
            SearchAuth::ApiKey(key) => Some(sensitive(&format!("ApiKey {}", key.expose()))?),
        };
        Ok(SearchClient {
            http,
            base: config.url.clone(),
            authorization,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, format!("{}/{path}", self.base));
        if let Some(auth) = &self.authorization {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        request
    }

    /// POST one `_bulk` body; the response's `items`, one per action in order.
    pub async fn bulk(&self, body: Vec<u8>, actions: usize) -> Result<Vec<Json>, SearchSinkError> {
        let what = "bulk request";
        let request = self
            .request(reqwest::Method::POST, "_bulk")
            .header(CONTENT_TYPE, NDJSON)
            .body(body);
        let (status, json) = send(what, request).await?;
        if !status.is_success() {
            return Err(status_error(what, status, &json));
        }
        let items = json
            .get("items")
            .and_then(Json::as_array)
            .filter(|items| items.len() == actions)
            .ok_or_else(|| SearchSinkError::Malformed {
                what: what.into(),
                message: format!("expected {actions} items"),
            })?;
        Ok(items.clone())
    }

    /// True when `index` exists.
    pub async fn index_exists(&self, index: &str) -> Result<bool, SearchSinkError> {
        let what = format!("checking index {index}");
        let response = self
            .request(reqwest::Method::HEAD, &encode_path(index))
            .send()
            .await
            .map_err(|e| transport(&what, &e))?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(status_error(&what, s, &Json::Null)),
        }
    }

    /// Create `index` with `body` (settings and mappings); an index created meanwhile by
    /// someone else is fine.
    pub async fn create_index(&self, index: &str, body: &Json) -> Result<(), SearchSinkError> {
        let what = format!("creating index {index}");
        let request = self
            .request(reqwest::Method::PUT, &encode_path(index))
            .header(CONTENT_TYPE, JSON)
            .body(body.to_string());
        let (status, json) = send(&what, request).await?;
        let exists = json
            .pointer("/error/type")
            .and_then(Json::as_str)
            .is_some_and(|t| t == "resource_already_exists_exception");
        if status.is_success() || exists {
            Ok(())
        } else {
            Err(status_error(&what, status, &json))
        }
    }

    /// The first page of `index`'s document ids (a table's truncate deletes them): refresh so
    /// that documents written just before are visible, then open a scroll. `None` when the index
    /// does not exist; otherwise the scroll id for [`Self::next_ids`] and the page (empty at the
    /// end).
    pub async fn first_ids(
        &self,
        index: &str,
        page: usize,
    ) -> Result<Option<(String, Vec<String>)>, SearchSinkError> {
        let what = format!("reading the document ids of index {index}");
        let path = encode_path(index);
        let refresh = self.request(reqwest::Method::POST, &format!("{path}/_refresh"));
        let (status, json) = send(&what, refresh).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(status_error(&what, status, &json));
        }
        let body = serde_json::json!({
            "size": page, "_source": false, "sort": ["_doc"], "query": {"match_all": {}}
        });
        let request = self
            .request(
                reqwest::Method::POST,
                &format!("{path}/_search?scroll={SCROLL_KEEP_ALIVE}"),
            )
            .header(CONTENT_TYPE, JSON)
            .body(body.to_string());
        scroll_page(&what, request).await.map(Some)
    }

    /// The next page of a scroll opened by [`Self::first_ids`] (empty at the end).
    pub async fn next_ids(
        &self,
        scroll_id: &str,
    ) -> Result<(String, Vec<String>), SearchSinkError> {
        let body = serde_json::json!({"scroll": SCROLL_KEEP_ALIVE, "scroll_id": scroll_id});
        let request = self
            .request(reqwest::Method::POST, "_search/scroll")
            .header(CONTENT_TYPE, JSON)
            .body(body.to_string());
        scroll_page("reading document ids", request).await
    }

    /// Release a scroll; the server drops it after its keep-alive anyway.
    pub async fn close_scroll(&self, scroll_id: &str) {
        let body = serde_json::json!({ "scroll_id": [scroll_id] });
        let request = self
            .request(reqwest::Method::DELETE, "_search/scroll")
            .header(CONTENT_TYPE, JSON)
            .body(body.to_string());
        if let Err(error) = send("closing a scroll", request).await {
            tracing::debug!(%error, "closing a scroll");
        }
    }
}

/// How long the server keeps a scroll between pages.
const SCROLL_KEEP_ALIVE: &str = "1m";

/// One scroll page: the scroll id and the documents' ids.
async fn scroll_page(
    what: &str,
    request: reqwest::RequestBuilder,
) -> Result<(String, Vec<String>), SearchSinkError> {
    let (status, json) = send(what, request).await?;
    if !status.is_success() {
        return Err(status_error(what, status, &json));
    }
    let scroll_id = json
        .get("_scroll_id")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    let ids = json
        .pointer("/hits/hits")
        .and_then(Json::as_array)
        .map(|hits| {
            hits.iter()
                .filter_map(|hit| hit.get("_id").and_then(Json::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok((scroll_id, ids))
}

/// Send and read the JSON body (`Null` when there is none).
async fn send(
    what: &str,
    request: reqwest::RequestBuilder,
) -> Result<(StatusCode, Json), SearchSinkError> {
    let response = request.send().await.map_err(|e| transport(what, &e))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| transport(what, &e))?;
    let json = if bytes.is_empty() {
        Json::Null
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(json) => json,
            Err(_) if !status.is_success() => {
                Json::from(String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned())
            }
            Err(e) => {
                return Err(SearchSinkError::Malformed {
                    what: what.into(),
                    message: e.to_string(),
                })
            }
        }
    };
    Ok((status, json))
}

fn status_error(what: &str, status: StatusCode, json: &Json) -> SearchSinkError {
    let reason = match json {
        Json::Null => status.canonical_reason().unwrap_or("").to_owned(),
        Json::String(text) => text.clone(),
        other => error_reason(other.get("error")),
    };
    SearchSinkError::Status {
        what: what.into(),
        status: status.as_u16(),
        reason,
    }
}

fn transport(what: &str, error: &reqwest::Error) -> SearchSinkError {
    SearchSinkError::Transport {
        what: what.into(),
        message: without_url(error),
    }
}

/// A header value marked sensitive (never printed by reqwest's debug output).
fn sensitive(text: &str) -> Result<HeaderValue, SearchSinkError> {
    let mut value = HeaderValue::from_str(text).map_err(|_| {
        SearchSinkError::Setup("credentials contain characters a header cannot hold".into())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// A reqwest error's text with its source chain but without the request URL.
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(start) = text.find(" for url (") {
        text.truncate(start);
    }
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Percent-encode an index name for a URL path segment.
fn encode_path(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// rustls on ring with the public web roots plus `ca_file`.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, SearchSinkError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let unreadable = |e: &dyn std::fmt::Display| {
            SearchSinkError::Setup(format!("cannot read {}: {e}", path.display()))
        };
        let file = std::fs::File::open(path).map_err(|e| unreadable(&e))?;
        let mut count = 0;
        for cert in rustls_pemfile::certs(&mut std::io::BufReader::new(file)) {
            let cert = cert.map_err(|e| unreadable(&e))?;
            roots.add(cert).map_err(|e| {
                SearchSinkError::Setup(format!("bad certificate in {}: {e}", path.display()))
            })?;
            count += 1;
        }
        if count == 0 {
            return Err(SearchSinkError::Setup(format!(
                "no PEM certificate in {}",
                path.display()
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SearchSinkError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawSearchSinkConfig;

    fn client(extra: impl FnOnce(&mut RawSearchSinkConfig)) -> SearchClient {
        let mut raw = RawSearchSinkConfig {
            url: Some("https://127.0.0.1:9200".into()),
            ..RawSearchSinkConfig::default()
        };
        extra(&mut raw);
        SearchClient::new(&raw.validate("sink[0]").unwrap()).unwrap()
    }

    #[test]
    fn credentials_become_a_sensitive_authorization_header() {
        let basic = client(|raw| {
            raw.username = Some("sluice".into());
            raw.password = Some("hunter2".into());
        });
        let header = basic.authorization.unwrap();
        assert!(header.is_sensitive());
        // base64("sluice:hunter2")
        assert_eq!(header, "Basic c2x1aWNlOmh1bnRlcjI=");
        let api_key = client(|raw| raw.api_key = Some("aWQ6a2V5".into()));
        assert_eq!(api_key.authorization.unwrap(), "ApiKey aWQ6a2V5");
        assert!(client(|_| {}).authorization.is_none());
    }

    #[test]
    fn a_missing_ca_file_is_a_setup_error_naming_the_file() {
        let raw = RawSearchSinkConfig {
            url: Some("https://127.0.0.1:9200".into()),
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..RawSearchSinkConfig::default()
        };
        let config = raw.validate("sink[0]").unwrap();
        let Err(error) = SearchClient::new(&config) else {
            panic!("a missing CA file is an error");
        };
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }

    #[test]
    fn index_names_are_percent_encoded_in_paths() {
        assert_eq!(encode_path("shop.public.orders"), "shop.public.orders");
        assert_eq!(encode_path("a%b"), "a%25b");
    }
}
