//! The daemon's HTTP endpoint (one port, `[http] listen`): liveness and readiness probes,
//! Prometheus metrics, the status document, and the admin actions (pause, resume, incremental
//! snapshot). With `[http] admin_token`, `/admin/*` and every POST need
//! `Authorization: Bearer <token>`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sluice_api::Secret;
use sluice_source_postgres::PostgresSourceConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::error_chain;
use super::snapshot_signal::request_snapshot;
use super::status::Status;
use crate::metrics::text::{render, CONTENT_TYPE};
use crate::pipeline::PipelineControl;

/// What every handler reads.
pub struct HttpState {
    /// `[pipeline] name`, shown by `/status`.
    pub pipeline: String,
    pub control: PipelineControl,
    /// Where `POST /admin/snapshot` writes its signal.
    pub source: PostgresSourceConfig,
    pub admin_token: Option<Secret>,
}

/// The routes over `state`.
pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/admin/pause", post(pause))
        .route("/admin/resume", post(resume))
        .route("/admin/snapshot", post(snapshot))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Serve `state` on `listener` until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

/// `/admin/*` and POSTs need the bearer token when one is configured.
async fn guard(State(state): State<Arc<HttpState>>, request: Request, next: Next) -> Response {
    let guarded = request.method() == Method::POST || request.uri().path().starts_with("/admin/");
    if let (true, Some(token)) = (guarded, &state.admin_token) {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !presented.is_some_and(|p| same_secret(p.trim().as_bytes(), token.expose().as_bytes())) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(json!({"error": "missing or wrong bearer token"})),
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// Compare without stopping at the first difference, so timing does not reveal a prefix.
fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    let mut difference = presented.len() ^ expected.len();
    for (i, byte) in expected.iter().enumerate() {
        difference |= usize::from(byte ^ presented.get(i).copied().unwrap_or(0));
    }
    difference == 0
}

/// 200 while the source streams (or snapshots) and no sink is failing; 503 with the reason.
async fn ready(State(state): State<Arc<HttpState>>) -> Response {
    let metrics = state.control.metrics();
    let failing = metrics.failing_sinks();
    let reason = if !failing.is_empty() {
        Some(format!("sink(s) failing: {}", failing.join(", ")))
    } else if !state.control.is_streaming() && !metrics.snapshot().running {
        Some("the source is not connected".to_owned())
    } else {
        None
    };
    match reason {
        None => Json(json!({"ready": true})).into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": reason})),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        render(state.control.metrics()),
    )
        .into_response()
}

async fn status(State(state): State<Arc<HttpState>>) -> Json<Status> {
    Json(Status::read(&state.pipeline, &state.control))
}

async fn pause(State(state): State<Arc<HttpState>>) -> Json<serde_json::Value> {
    state.control.pause();
    Json(json!({"paused": true}))
}

async fn resume(State(state): State<Arc<HttpState>>) -> Json<serde_json::Value> {
    state.control.resume();
    Json(json!({"paused": false}))
}

/// `POST /admin/snapshot` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotRequest {
    /// `schema.table`.
    table: String,
    /// Only rows matching this SQL condition.
    filter: Option<String>,
}

async fn snapshot(State(state): State<Arc<HttpState>>, body: axum::body::Bytes) -> Response {
    let request: SnapshotRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("expected {{\"table\": \"schema.table\", \"filter\": \"optional SQL\"}}: {e}")})),
            )
                .into_response()
        }
    };
    match request_snapshot(&state.source, &request.table, request.filter.as_deref()).await {
        Ok(()) => {
            tracing::info!(table = %request.table, "incremental snapshot requested over HTTP");
            (
                StatusCode::ACCEPTED,
                Json(json!({"requested": request.table})),
            )
                .into_response()
        }
        Err(error) => {
            let status = if error.is_invalid_request() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            tracing::warn!(table = %request.table, error = %error_chain(&error), "snapshot request failed");
            (status, Json(json!({"error": error_chain(&error)}))).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"abcd", b"abc"));
        assert!(!same_secret(b"", b"abc"));
    }
}
