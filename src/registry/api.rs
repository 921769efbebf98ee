//! The HTTP face of the registry: Confluent's REST routes, request bodies and response shapes,
//! over the [`Store`]. Reads see the current state; writes are serialised, applied to a copy,
//! persisted, and only then made visible, so an answer always describes durable state.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use tokio::sync::{Mutex, RwLock};

use super::compat::CompatibilityLevel;
use super::error::RegistryError;
use super::persist::Backend;
use super::store::{Mode, Store, VersionSpec, VersionView};

/// The content type of every response, as Confluent's registry answers.
pub const RESPONSE_CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Request content types accepted for bodies (a missing one is accepted too).
const ACCEPTED_CONTENT_TYPES: [&str; 3] = [
    "application/vnd.schemaregistry.v1+json",
    "application/vnd.schemaregistry+json",
    "application/json",
];

/// The only schema type this registry serves.
const AVRO: &str = "AVRO";

/// State shared by the handlers.
pub(crate) struct Shared {
    store: RwLock<Store>,
    /// Held for the whole of a write: one change at a time reaches the storage.
    backend: Mutex<Backend>,
}

impl Shared {
    pub(crate) fn new(store: Store, backend: Backend) -> Shared {
        Shared {
            store: RwLock::new(store),
            backend: Mutex::new(backend),
        }
    }

    /// Apply `change` to a copy of the state; if it reports a change, persist the copy and
    /// publish it. A failure anywhere leaves the published state as it was.
    async fn write<T>(
        &self,
        change: impl FnOnce(&mut Store) -> Result<(T, bool), RegistryError>,
    ) -> Result<T, RegistryError> {
        let mut backend = self.backend.lock().await;
        let mut next = self.store.read().await.clone();
        let (value, changed) = change(&mut next)?;
        if changed {
            backend.save(&next.to_snapshot()).await.map_err(|e| {
                tracing::error!(error = %e, "registry change not persisted");
                RegistryError::Store(e.to_string())
            })?;
            *self.store.write().await = next;
        }
        Ok(value)
    }

    /// Apply a setting change. Settings are persisted even when the value is unchanged, so a
    /// `PUT` always leaves the stored state saying what was asked for.
    async fn set(&self, change: impl FnOnce(&mut Store)) -> Result<(), RegistryError> {
        self.write(|store| {
            change(store);
            Ok(((), true))
        })
        .await
    }
}

type AppState = State<Arc<Shared>>;
type Params = Query<HashMap<String, String>>;
type ApiResult = Result<Response, RegistryError>;

/// The router for every registry endpoint.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(|| async { reply(&json!({})) }))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route("/schemas/types", get(|| async { reply(&[AVRO]) }))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_of_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_of_id))
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_all_versions),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_version),
        )
        .route(
            "/config",
            get(get_global_config)
                .put(put_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .route("/mode", get(get_global_mode).put(put_global_mode))
        .route(
            "/mode/{subject}",
            get(get_subject_mode)
                .put(put_subject_mode)
                .delete(delete_subject_mode),
        )
        .fallback(|| async { RegistryError::NoSuchEndpoint })
        .layer(middleware::from_fn(log_request))
        .with_state(shared)
}

async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    tracing::debug!(%method, %path, status = response.status().as_u16(), "registry request");
    response
}

fn reply<T: Serialize + ?Sized>(body: &T) -> Response {
    reply_status(StatusCode::OK, body)
}

fn reply_status<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, RESPONSE_CONTENT_TYPE)
            .body(Body::from(bytes))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(error = %self, "registry request failed");
        }
        let body = json!({"error_code": self.error_code(), "message": self.to_string()});
        reply_status(status, &body)
    }
}

/// Query flags arrive as `true`/`false` (the Python client sends `True`/`False`).
fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn parse_body<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, RegistryError> {
    if let Some(value) = headers.get(header::CONTENT_TYPE) {
        let text = value.to_str().unwrap_or_default();
        let mime = text.split(';').next().unwrap_or_default().trim();
        if !ACCEPTED_CONTENT_TYPES
            .iter()
            .any(|accepted| accepted.eq_ignore_ascii_case(mime))
        {
            return Err(RegistryError::UnsupportedMediaType(text.to_owned()));
        }
    }
    serde_json::from_slice(body)
        .map_err(|e| RegistryError::BadRequest(format!("invalid request body: {e}")))
}

fn parse_id(text: &str) -> Result<u32, RegistryError> {
    text.parse()
        .map_err(|_| RegistryError::SchemaNotFound(format!("Schema {text} not found")))
}

/// The body of a registration, lookup or compatibility check.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    #[serde(default)]
    schema: Option<String>,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Json>,
    /// Choosing the id is IMPORT mode's privilege, which this registry does not offer.
    #[serde(default)]
    id: Option<Json>,
}

impl SchemaRequest {
    /// The schema text, after refusing what this registry cannot serve.
    fn avro_text(&self) -> Result<&str, RegistryError> {
        if let Some(kind) = &self.schema_type {
            if !kind.eq_ignore_ascii_case(AVRO) {
                return Err(RegistryError::InvalidSchema(format!(
                    "schema type {kind} is not supported: this registry serves AVRO schemas only"
                )));
            }
        }
        if !self.references.is_empty() {
            return Err(RegistryError::InvalidSchema(
                "schema references are not supported: inline the referenced types".to_owned(),
            ));
        }
        match self.schema.as_deref() {
            Some(text) if !text.trim().is_empty() => Ok(text),
            _ => Err(RegistryError::InvalidSchema("Empty schema".to_owned())),
        }
    }
}

fn version_body(view: &VersionView) -> Json {
    // schemaType is omitted for AVRO, as Confluent's registry does.
    json!({
        "subject": view.subject,
        "version": view.version,
        "id": view.id,
        "schema": view.schema,
    })
}

/// The schema text as JSON (for the `/schema` endpoints, which return the schema itself).
fn raw_schema(text: &str) -> ApiResult {
    let value: Json = serde_json::from_str(text)
        .map_err(|e| RegistryError::Store(format!("stored schema is not JSON: {e}")))?;
    Ok(reply(&value))
}

async fn list_subjects(State(shared): AppState, Query(params): Params) -> ApiResult {
    let store = shared.store.read().await;
    Ok(reply(&store.subjects(flag(&params, "deleted"))))
}

async fn list_versions(
    State(shared): AppState,
    Path(subject): Path<String>,
    Query(params): Params,
) -> ApiResult {
    let store = shared.store.read().await;
    Ok(reply(&store.versions(&subject, flag(&params, "deleted"))?))
}

async fn register(
    State(shared): AppState,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let request: SchemaRequest = parse_body(&headers, &body)?;
    if request.id.is_some() {
        return Err(RegistryError::OperationNotPermitted(
            "registering a schema under a chosen id needs IMPORT mode, which this registry does not offer".to_owned(),
        ));
    }
    let text = request.avro_text()?;
    let registered = shared
        .write(|store| {
            let registered = store.register(&subject, text)?;
            Ok((registered, registered.created))
        })
        .await?;
    if registered.created {
        tracing::info!(
            subject,
            id = registered.id,
            version = registered.version,
            "schema registered"
        );
    }
    Ok(reply(&json!({"id": registered.id})))
}

async fn lookup(
    State(shared): AppState,
    Path(subject): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let request: SchemaRequest = parse_body(&headers, &body)?;
    let text = request.avro_text()?;
    let store = shared.store.read().await;
    let view = store.lookup(&subject, text, flag(&params, "deleted"))?;
    Ok(reply(&version_body(&view)))
}

async fn get_version(
    State(shared): AppState,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    let store = shared.store.read().await;
    let view = store.version(&subject, spec, flag(&params, "deleted"))?;
    Ok(reply(&version_body(&view)))
}

async fn get_version_schema(
    State(shared): AppState,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    let store = shared.store.read().await;
    raw_schema(
        &store
            .version(&subject, spec, flag(&params, "deleted"))?
            .schema,
    )
}

async fn referenced_by(
    State(shared): AppState,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    // Without schema references nothing refers to anything; the version must still exist.
    let spec = VersionSpec::parse(&version)?;
    shared.store.read().await.version(&subject, spec, false)?;
    Ok(reply(&[] as &[u32]))
}

async fn delete_subject(
    State(shared): AppState,
    Path(subject): Path<String>,
    Query(params): Params,
) -> ApiResult {
    let permanent = flag(&params, "permanent");
    let deleted = shared
        .write(|store| Ok((store.delete_subject(&subject, permanent)?, true)))
        .await?;
    tracing::info!(subject, permanent, versions = ?deleted, "subject deleted");
    Ok(reply(&deleted))
}

async fn delete_version(
    State(shared): AppState,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    let permanent = flag(&params, "permanent");
    let deleted = shared
        .write(|store| Ok((store.delete_version(&subject, spec, permanent)?, true)))
        .await?;
    tracing::info!(
        subject,
        permanent,
        version = deleted,
        "schema version deleted"
    );
    Ok(reply(&deleted))
}

async fn schema_by_id(State(shared): AppState, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let store = shared.store.read().await;
    Ok(reply(&json!({"schema": store.schema_by_id(id)?})))
}

async fn raw_schema_by_id(State(shared): AppState, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let store = shared.store.read().await;
    raw_schema(store.schema_by_id(id)?)
}

async fn versions_of_id(
    State(shared): AppState,
    Path(id): Path<String>,
    Query(params): Params,
) -> ApiResult {
    let id = parse_id(&id)?;
    let store = shared.store.read().await;
    let pairs = store.versions_of_id(id, flag(&params, "deleted"))?;
    let body: Vec<Json> = pairs
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    Ok(reply(&body))
}

async fn subjects_of_id(
    State(shared): AppState,
    Path(id): Path<String>,
    Query(params): Params,
) -> ApiResult {
    let id = parse_id(&id)?;
    let store = shared.store.read().await;
    let mut subjects: Vec<String> = store
        .versions_of_id(id, flag(&params, "deleted"))?
        .into_iter()
        .map(|(subject, _)| subject)
        .collect();
    subjects.dedup();
    Ok(reply(&subjects))
}

fn compatibility_reply(messages: Vec<String>, verbose: bool) -> Response {
    let compatible = messages.is_empty();
    if verbose {
        reply(&json!({"is_compatible": compatible, "messages": messages}))
    } else {
        reply(&json!({"is_compatible": compatible}))
    }
}

async fn check_version(
    State(shared): AppState,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    let request: SchemaRequest = parse_body(&headers, &body)?;
    let text = request.avro_text()?;
    let store = shared.store.read().await;
    let messages = store.check_compatibility(&subject, Some(spec), text)?;
    Ok(compatibility_reply(messages, flag(&params, "verbose")))
}

async fn check_all_versions(
    State(shared): AppState,
    Path(subject): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let request: SchemaRequest = parse_body(&headers, &body)?;
    let text = request.avro_text()?;
    let store = shared.store.read().await;
    let messages = store.check_compatibility(&subject, None, text)?;
    Ok(compatibility_reply(messages, flag(&params, "verbose")))
}

/// A subject's own setting (compatibility level or mode); without one, the global setting when
/// the request asks for `defaultToGlobal`, else the error saying the subject has none.
fn subject_or_global<T>(
    own: Option<T>,
    global: T,
    params: &HashMap<String, String>,
    not_configured: impl FnOnce() -> RegistryError,
) -> Result<T, RegistryError> {
    match own {
        Some(value) => Ok(value),
        None if flag(params, "defaultToGlobal") => Ok(global),
        None => Err(not_configured()),
    }
}

/// `PUT /config` bodies: `{"compatibility": "FULL"}`.
#[derive(Deserialize)]
struct ConfigRequest {
    compatibility: Option<String>,
}

fn parse_level(headers: &HeaderMap, body: &Bytes) -> Result<CompatibilityLevel, RegistryError> {
    let request: ConfigRequest = parse_body(headers, body)?;
    request
        .compatibility
        .as_deref()
        .and_then(CompatibilityLevel::parse)
        .ok_or(RegistryError::InvalidCompatibilityLevel)
}

fn level_body(level: CompatibilityLevel) -> Json {
    json!({"compatibilityLevel": level.as_str()})
}

async fn get_global_config(State(shared): AppState) -> ApiResult {
    Ok(reply(&level_body(
        shared.store.read().await.compatibility(),
    )))
}

async fn put_global_config(State(shared): AppState, headers: HeaderMap, body: Bytes) -> ApiResult {
    let level = parse_level(&headers, &body)?;
    shared
        .set(|store| store.set_compatibility(None, level))
        .await?;
    tracing::info!(%level, "global compatibility level set");
    Ok(reply(&json!({"compatibility": level.as_str()})))
}

async fn delete_global_config(State(shared): AppState) -> ApiResult {
    let previous = shared
        .write(|store| Ok((store.reset_compatibility(), true)))
        .await?;
    Ok(reply(&level_body(previous)))
}

async fn get_subject_config(
    State(shared): AppState,
    Path(subject): Path<String>,
    Query(params): Params,
) -> ApiResult {
    let store = shared.store.read().await;
    let level = subject_or_global(
        store.subject_compatibility(&subject),
        store.compatibility(),
        &params,
        || RegistryError::SubjectCompatibilityNotConfigured(subject),
    )?;
    Ok(reply(&level_body(level)))
}

async fn put_subject_config(
    State(shared): AppState,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let level = parse_level(&headers, &body)?;
    shared
        .set(|store| store.set_compatibility(Some(&subject), level))
        .await?;
    tracing::info!(subject, %level, "subject compatibility level set");
    Ok(reply(&json!({"compatibility": level.as_str()})))
}

async fn delete_subject_config(State(shared): AppState, Path(subject): Path<String>) -> ApiResult {
    let removed = shared
        .write(|store| Ok((store.delete_subject_compatibility(&subject)?, true)))
        .await?;
    Ok(reply(&level_body(removed)))
}

/// `PUT /mode` bodies: `{"mode": "READONLY"}`.
#[derive(Deserialize)]
struct ModeRequest {
    mode: Option<String>,
}

fn parse_mode(headers: &HeaderMap, body: &Bytes) -> Result<Mode, RegistryError> {
    let request: ModeRequest = parse_body(headers, body)?;
    let text = request.mode.unwrap_or_default();
    Mode::parse(&text).ok_or(RegistryError::InvalidMode(text))
}

fn mode_body(mode: Mode) -> Json {
    json!({"mode": mode.as_str()})
}

async fn get_global_mode(State(shared): AppState) -> ApiResult {
    Ok(reply(&mode_body(shared.store.read().await.mode())))
}

async fn put_global_mode(State(shared): AppState, headers: HeaderMap, body: Bytes) -> ApiResult {
    let mode = parse_mode(&headers, &body)?;
    shared.set(|store| store.set_mode(None, mode)).await?;
    tracing::info!(mode = mode.as_str(), "global mode set");
    Ok(reply(&mode_body(mode)))
}

async fn get_subject_mode(
    State(shared): AppState,
    Path(subject): Path<String>,
    Query(params): Params,
) -> ApiResult {
    let store = shared.store.read().await;
    let mode = subject_or_global(store.subject_mode(&subject), store.mode(), &params, || {
        RegistryError::SubjectModeNotConfigured(subject)
    })?;
    Ok(reply(&mode_body(mode)))
}

async fn put_subject_mode(
    State(shared): AppState,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let mode = parse_mode(&headers, &body)?;
    shared
        .set(|store| store.set_mode(Some(&subject), mode))
        .await?;
    tracing::info!(subject, mode = mode.as_str(), "subject mode set");
    Ok(reply(&mode_body(mode)))
}

async fn delete_subject_mode(State(shared): AppState, Path(subject): Path<String>) -> ApiResult {
    let removed = shared
        .write(|store| Ok((store.delete_subject_mode(&subject)?, true)))
        .await?;
    Ok(reply(&mode_body(removed)))
}
