//! The embedded schema registry: a Confluent-compatible REST API for Avro schemas, so that
//! consumers (Confluent's serializers and deserializers, tools) can fetch the writer schemas of
//! sluice's events without a separate JVM registry. Runs as `sluice registry serve`, or inside
//! the daemon when no external registry is configured (through [`serve`]).
//!
//! Layout: [`store`] holds the model and its rules, [`compat`] the compatibility levels,
//! [`persist`] the file and PostgreSQL storage of a [`snapshot`], `api` the HTTP routes, [`error`] Confluent's
//! error codes, `command` the `sluice registry` command line.

mod api;
mod command;
pub mod compat;
pub mod error;
pub mod persist;
pub mod snapshot;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use command::{run_command, RegistryCommand};
pub use compat::{can_read, CompatibilityLevel};
pub use error::RegistryError;
pub use persist::{PersistError, Storage};
pub use store::{Mode, Store};

/// Why the registry server could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The storage could not be opened or loaded.
    #[error("cannot open the registry storage ({storage}): {source}")]
    Storage {
        /// The storage, described without secrets.
        storage: String,
        /// What failed.
        #[source]
        source: PersistError,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server failed while running.
    #[error("registry server failed: {0}")]
    Server(#[source] std::io::Error),
}

/// Serve the registry API on `listener` with state loaded from `storage` until `shutdown` is
/// cancelled; then stop accepting, finish the requests in flight and return. Every change is
/// persisted before it is answered, so nothing is lost on shutdown.
pub async fn serve(
    listener: TcpListener,
    storage: Storage,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    if matches!(storage, Storage::Memory) {
        tracing::warn!(
            "schema registry storage is in memory: schema ids will not survive a restart \
             (pass --storage FILE or --storage postgres://...)"
        );
    }
    let (backend, store) =
        persist::Backend::open(&storage)
            .await
            .map_err(|source| ServeError::Storage {
                storage: storage.describe(),
                source,
            })?;
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(
        %addr,
        storage = %storage.describe(),
        subjects = store.subjects(false).len(),
        "schema registry listening"
    );
    let router = api::router(Arc::new(api::Shared::new(store, backend)));
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(ServeError::Server)?;
    tracing::info!("schema registry stopped");
    Ok(())
}

/// Bind `listen` and [`serve`] until SIGTERM or SIGINT (the `sluice registry serve` command).
pub async fn serve_until_signal(listen: SocketAddr, storage: Storage) -> Result<(), ServeError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen.to_string(),
            source,
        })?;
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        crate::runtime::wait_for_signal().await;
        tracing::info!("stop requested: finishing requests in flight");
        trigger.cancel();
    });
    serve(listener, storage, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn serve_answers_until_its_shutdown_token_is_cancelled() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, Storage::Memory, shutdown.clone()));

        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET /schemas/types HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with(r#"["AVRO"]"#), "{response}");

        shutdown.cancel();
        let result = tokio::time::timeout(std::time::Duration::from_secs(5), server)
            .await
            .expect("stops promptly")
            .expect("no panic");
        assert!(result.is_ok(), "{result:?}");
    }
}
