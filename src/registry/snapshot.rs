//! The persisted form of the registry: a plain, serialisable copy of the [`Store`] (what the
//! storage file holds as JSON and the PostgreSQL tables hold as rows), and the conversions
//! that check it on the way back in.

use serde::{Deserialize, Serialize};

use super::compat::CompatibilityLevel;
use super::store::{parse_schema, Mode, Store, StoredSchema, Subject, VersionEntry};

/// The persisted form of the registry: what the file holds as JSON and the PostgreSQL tables
/// hold as rows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The next id to hand out; never decreases, so ids are never reused.
    pub next_id: u32,
    /// The global compatibility level.
    pub compatibility: CompatibilityLevel,
    /// The global mode.
    pub mode: Mode,
    /// Every schema ever registered.
    pub schemas: Vec<SnapshotSchema>,
    /// Every subject with versions or settings of its own.
    pub subjects: Vec<SnapshotSubject>,
}

/// A schema and its global id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotSchema {
    /// The global id.
    pub id: u32,
    /// The normalised schema text.
    pub schema: String,
}

/// A subject, its versions and its own settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotSubject {
    /// The subject name.
    pub name: String,
    /// Its own compatibility level, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<CompatibilityLevel>,
    /// Its own mode, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Its versions, live and soft-deleted.
    pub versions: Vec<SnapshotVersion>,
}

/// One version of a subject.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotVersion {
    /// The version number.
    pub version: u32,
    /// The schema id it holds.
    pub id: u32,
    /// Soft-deleted.
    #[serde(default)]
    pub deleted: bool,
}

impl Store {
    /// The persisted form of the whole state.
    pub fn to_snapshot(&self) -> Snapshot {
        Snapshot {
            next_id: self.next_id,
            compatibility: self.compatibility,
            mode: self.mode,
            schemas: self
                .schemas
                .iter()
                .map(|(id, s)| SnapshotSchema {
                    id: *id,
                    schema: s.text.clone(),
                })
                .collect(),
            subjects: self
                .subjects
                .iter()
                .map(|(name, s)| SnapshotSubject {
                    name: name.clone(),
                    compatibility: s.compatibility,
                    mode: s.mode,
                    versions: s
                        .versions
                        .iter()
                        .map(|v| SnapshotVersion {
                            version: v.version,
                            id: v.id,
                            deleted: v.deleted,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// Rebuild the state from its persisted form, checking that it is consistent (every
    /// schema parses, every version points at a known schema, versions ascend, ids stay below
    /// `next_id`).
    pub fn from_snapshot(snapshot: Snapshot) -> Result<Store, String> {
        let mut store = Store {
            next_id: snapshot.next_id.max(1),
            compatibility: snapshot.compatibility,
            mode: snapshot.mode,
            ..Store::default()
        };
        for s in snapshot.schemas {
            let (text, parsed) =
                parse_schema(&s.schema).map_err(|e| format!("schema {}: {e}", s.id))?;
            if s.id >= store.next_id {
                store.next_id = s.id.saturating_add(1);
            }
            store.ids_by_text.insert(text.clone(), s.id);
            store.schemas.insert(s.id, StoredSchema { text, parsed });
        }
        for subject in snapshot.subjects {
            let mut versions: Vec<VersionEntry> = Vec::with_capacity(subject.versions.len());
            for v in subject.versions {
                if !store.schemas.contains_key(&v.id) {
                    return Err(format!(
                        "subject '{}' version {} refers to unknown schema id {}",
                        subject.name, v.version, v.id
                    ));
                }
                versions.push(VersionEntry {
                    version: v.version,
                    id: v.id,
                    deleted: v.deleted,
                });
            }
            versions.sort_by_key(|v| v.version);
            store.subjects.insert(
                subject.name,
                Subject {
                    versions,
                    compatibility: subject.compatibility,
                    mode: subject.mode,
                },
            );
        }
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_pointing_at_an_unknown_schema_is_refused() {
        let snapshot = Snapshot {
            next_id: 2,
            subjects: vec![SnapshotSubject {
                name: "s".into(),
                compatibility: None,
                mode: None,
                versions: vec![SnapshotVersion {
                    version: 1,
                    id: 5,
                    deleted: false,
                }],
            }],
            ..Snapshot::default()
        };
        let error = Store::from_snapshot(snapshot).expect_err("refused");
        assert!(error.contains("unknown schema id 5"), "{error}");
    }
}
