//! The sluice daemon: configuration, the connector catalog, the pipeline that moves change
//! events from the source through every sink, delivery with retries, and the checkpoint that
//! decides what may be confirmed to PostgreSQL. Per-pipeline transforms reshape events on the
//! way.

pub mod catalog;
pub mod checkpoint;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod embedded;
pub mod metrics;
pub mod pipeline;
pub mod registry;
pub mod runtime;
pub mod schema;
pub mod transform;
