//! Search sink: every captured row as one document in Elasticsearch or OpenSearch, written with
//! `_bulk`, addressed by the row's primary key and versioned by its transaction's commit LSN
//! (`version_type=external_gte`), so that redelivered or reordered older changes never overwrite
//! newer ones. One index per table (`<prefix>.<schema>.<table>`, created on first use with a
//! mapping derived from the columns), truncates clear the index, and documents the server
//! rejects for good are set aside in a dead-letter destination with the server's reason.

mod bulk;
mod client;
mod config;
mod encode;
mod error;
mod naming;
mod sink;

pub use bulk::{classify_item, split_requests, Action, ItemOutcome};
pub use client::SearchClient;
pub use config::{RawSearchSinkConfig, SearchAuth, SearchSinkConfig};
pub use encode::{create_index_body, document, field_mapping, index_mapping};
pub use error::SearchSinkError;
pub use naming::{document_id, index_name, index_name_problem, sanitize_index_name};
pub use sink::SearchSink;
