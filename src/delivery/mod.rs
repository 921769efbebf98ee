//! Delivery to one sink, written once for every sink: take batches in order, write each until
//! it is durable (retrying transient errors with backoff), then report the ack. A fatal error
//! stops the driver without acknowledging the batch.

mod driver;

pub use driver::{drive_sink, DeliveryError};
