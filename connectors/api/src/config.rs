//! Config problems shared by every connector's validation.
//! (Stub: replaced by the full helpers.)

/// One problem in the configuration: the TOML key and the constraint broken, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}
