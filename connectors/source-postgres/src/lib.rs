//! PostgreSQL source: a replication client on the frontend/backend protocol, the pgoutput
//! decoder, typed value decoding, publication and slot management, and `sluice check`.

mod auth;
pub mod check;
pub mod client;
pub mod config;
pub mod connection;
pub mod decoder;
pub mod error;
pub mod ident;
pub mod pgoutput;
pub mod snapshot;
pub mod source;
pub mod spill;
pub mod tls;
pub mod toast;
pub mod types;
pub mod values;

pub use config::PostgresSourceConfig;
pub use connection::{ConnectionConfig, SslMode};
pub use error::SourceError;
