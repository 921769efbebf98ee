//! The `[[sink]]` table of type `memory`.

use serde::Deserialize;
use sluice_api::ConfigProblem;

/// Raw keys of a memory sink, as written in TOML.
#[derive(Debug, Default, Deserialize)]
pub struct RawMemorySinkConfig {
    /// Keep every event (true, default) or only count them (false: the null sink).
    pub retain: Option<bool>,
}

/// A validated memory sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemorySinkConfig {
    pub retain: bool,
}

impl Default for MemorySinkConfig {
    fn default() -> Self {
        MemorySinkConfig { retain: true }
    }
}

impl RawMemorySinkConfig {
    /// Validate; a memory sink has no constraint beyond its types.
    pub fn validate(self, _prefix: &str) -> Result<MemorySinkConfig, Vec<ConfigProblem>> {
        Ok(MemorySinkConfig {
            retain: self.retain.unwrap_or(true),
        })
    }
}
