//! Delivery to one sink, written once for every sink: take batches in order, write each until
//! it is durable (retrying transient errors with backoff), then report the ack. A pipelined
//! sink has a bounded window of batches in flight, acknowledged in order. A fatal error stops
//! the driver without acknowledging the batch.

mod driver;
mod window;

pub use driver::{drive_sink, DeliveryError};
