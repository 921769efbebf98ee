//! The checkpoint: which position every sink has durably taken, and so what may be confirmed
//! to PostgreSQL. Sinks report acks in their own order; the confirmed LSN is the minimum over
//! sinks and never moves backwards.

mod tracker;

pub use tracker::{Ack, AckTracker};
