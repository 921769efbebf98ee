//! The registry's model, in memory: schemas by global id, subjects with their versions
//! (live or soft-deleted), compatibility levels and modes. Every rule of the API that does not
//! concern HTTP lives here: identical schema → same id, identical schema under a subject →
//! same version, ids global and never reused, soft delete before hard delete, compatibility
//! checked before a version is added, writes refused in read-only mode.
//!
//! The store is a plain value: the server clones it, applies a change, persists the clone and
//! only then swaps it in, so a failed write leaves nothing half-applied.

use std::collections::{BTreeMap, HashMap};

use apache_avro::Schema;
use serde::{Deserialize, Serialize};

use super::compat::{self, CompatibilityLevel, ExistingVersion};
use super::error::RegistryError;
pub use super::snapshot::{Snapshot, SnapshotSchema, SnapshotSubject, SnapshotVersion};

/// The registry's (or a subject's) mode: whether it accepts new schemas and deletes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Mode {
    /// Registrations and deletes allowed (the default).
    #[default]
    Readwrite,
    /// Registrations and deletes refused with 42205.
    Readonly,
    /// As READONLY; Confluent uses it to keep writes out even of its own tooling.
    ReadonlyOverride,
}

impl Mode {
    /// The wire name (`READWRITE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Readwrite => "READWRITE",
            Mode::Readonly => "READONLY",
            Mode::ReadonlyOverride => "READONLY_OVERRIDE",
        }
    }

    /// Parse a wire name, ignoring ASCII case. IMPORT is not offered: ids are always chosen by
    /// the registry.
    pub fn parse(name: &str) -> Option<Mode> {
        [Mode::Readwrite, Mode::Readonly, Mode::ReadonlyOverride]
            .into_iter()
            .find(|mode| mode.as_str().eq_ignore_ascii_case(name.trim()))
    }

    fn allows_writes(self) -> bool {
        self == Mode::Readwrite
    }
}

/// Which version of a subject a request names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionSpec {
    /// The highest version (among live ones, unless deleted ones are asked for).
    Latest,
    /// A version number, 1 or more.
    Number(u32),
}

impl VersionSpec {
    /// Parse `latest`, `-1` (Confluent's alias for latest) or a number in 1..=2^31-1.
    pub fn parse(text: &str) -> Result<VersionSpec, RegistryError> {
        if text == "latest" || text == "-1" {
            return Ok(VersionSpec::Latest);
        }
        match text.parse::<u32>() {
            Ok(n) if (1..=i32::MAX as u32).contains(&n) => Ok(VersionSpec::Number(n)),
            _ => Err(RegistryError::InvalidVersion(text.to_owned())),
        }
    }
}

/// One subject version as the API returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionView {
    /// The subject.
    pub subject: String,
    /// The version number within the subject.
    pub version: u32,
    /// The schema's global id.
    pub id: u32,
    /// The schema text, normalised (JSON without insignificant whitespace).
    pub schema: String,
}

/// The result of a registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registered {
    /// The schema's global id.
    pub id: u32,
    /// The subject version holding it.
    pub version: u32,
    /// False when the schema was already a live version of the subject (nothing changed).
    pub created: bool,
}

#[derive(Clone, Debug)]
pub(super) struct StoredSchema {
    pub(super) text: String,
    pub(super) parsed: Schema,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct VersionEntry {
    pub(super) version: u32,
    pub(super) id: u32,
    #[serde(default)]
    pub(super) deleted: bool,
}

#[derive(Clone, Debug, Default)]
pub(super) struct Subject {
    /// Ascending by version number.
    pub(super) versions: Vec<VersionEntry>,
    pub(super) compatibility: Option<CompatibilityLevel>,
    pub(super) mode: Option<Mode>,
}

impl Subject {
    fn has_versions(&self, include_deleted: bool) -> bool {
        self.versions.iter().any(|v| include_deleted || !v.deleted)
    }

    fn is_empty(&self) -> bool {
        self.versions.is_empty() && self.compatibility.is_none() && self.mode.is_none()
    }
}

/// The whole registry state.
#[derive(Clone, Debug)]
pub struct Store {
    /// Every schema ever registered, by id. Kept after hard deletes so that the same text
    /// registered again gets its old id back and no id is ever handed out twice.
    pub(super) schemas: BTreeMap<u32, StoredSchema>,
    pub(super) ids_by_text: HashMap<String, u32>,
    pub(super) subjects: BTreeMap<String, Subject>,
    pub(super) next_id: u32,
    pub(super) compatibility: CompatibilityLevel,
    pub(super) mode: Mode,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            schemas: BTreeMap::new(),
            ids_by_text: HashMap::new(),
            subjects: BTreeMap::new(),
            next_id: 1,
            compatibility: CompatibilityLevel::default(),
            mode: Mode::default(),
        }
    }
}

/// Parse an Avro schema and normalise its text for identity: the JSON re-serialised without
/// insignificant whitespace (keys keep their order). Unlike Avro's parsing canonical form this
/// keeps defaults, docs and logical types, which matter to readers and to compatibility.
pub fn parse_schema(text: &str) -> Result<(String, Schema), RegistryError> {
    let json: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| RegistryError::InvalidSchema(format!("not valid JSON: {e}")))?;
    let parsed = Schema::parse(&json).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    Ok((json.to_string(), parsed))
}

impl Store {
    /// Names of subjects with a live version (or any version when `include_deleted`).
    pub fn subjects(&self, include_deleted: bool) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(_, s)| s.has_versions(include_deleted))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// A subject's version numbers, ascending.
    pub fn versions(
        &self,
        subject: &str,
        include_deleted: bool,
    ) -> Result<Vec<u32>, RegistryError> {
        let entries = self.visible_entries(subject, include_deleted)?;
        Ok(entries.iter().map(|v| v.version).collect())
    }

    /// One version of a subject.
    pub fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        include_deleted: bool,
    ) -> Result<VersionView, RegistryError> {
        let entry = self.find_version(subject, spec, include_deleted)?;
        self.view(subject, entry)
    }

    /// Register `text` under `subject`: the existing version if the same schema is live there,
    /// otherwise a new version after the compatibility check (the id is reused if the same
    /// schema is registered anywhere, else a new id).
    pub fn register(&mut self, subject: &str, text: &str) -> Result<Registered, RegistryError> {
        self.ensure_writable(subject)?;
        let (normalised, parsed) = parse_schema(text)?;
        let existing_id = self.ids_by_text.get(&normalised).copied();
        if let (Some(id), Some(s)) = (existing_id, self.subjects.get(subject)) {
            if let Some(entry) = s.versions.iter().rev().find(|v| !v.deleted && v.id == id) {
                return Ok(Registered {
                    id,
                    version: entry.version,
                    created: false,
                });
            }
        }
        let messages = self.check_all(subject, &parsed);
        if !messages.is_empty() {
            return Err(RegistryError::IncompatibleSchema {
                subject: subject.to_owned(),
                messages,
            });
        }
        let id = match existing_id {
            Some(id) => id,
            None => {
                let id = self.next_id;
                self.next_id = id
                    .checked_add(1)
                    .ok_or_else(|| RegistryError::Store("schema ids exhausted".to_owned()))?;
                self.ids_by_text.insert(normalised.clone(), id);
                self.schemas.insert(
                    id,
                    StoredSchema {
                        text: normalised,
                        parsed,
                    },
                );
                id
            }
        };
        let entry = self.subjects.entry(subject.to_owned()).or_default();
        let version = entry.versions.last().map_or(1, |v| v.version + 1);
        entry.versions.push(VersionEntry {
            version,
            id,
            deleted: false,
        });
        Ok(Registered {
            id,
            version,
            created: true,
        })
    }

    /// Is `text` registered under `subject`? The matching version, if so.
    pub fn lookup(
        &self,
        subject: &str,
        text: &str,
        include_deleted: bool,
    ) -> Result<VersionView, RegistryError> {
        let entries = self.visible_entries(subject, include_deleted)?;
        let (normalised, _) = parse_schema(text)?;
        let id = self.ids_by_text.get(&normalised).copied();
        let entry = entries
            .iter()
            .rev()
            .find(|v| Some(v.id) == id)
            .ok_or_else(|| RegistryError::SchemaNotFound("Schema not found".to_owned()))?;
        self.view(subject, *entry)
    }

    /// The schema text with this id, if any subject version (live or soft-deleted) holds it.
    pub fn schema_by_id(&self, id: u32) -> Result<&str, RegistryError> {
        let referenced = self
            .subjects
            .values()
            .any(|s| s.versions.iter().any(|v| v.id == id));
        match self.schemas.get(&id) {
            Some(stored) if referenced => Ok(&stored.text),
            _ => Err(RegistryError::SchemaNotFound(format!(
                "Schema {id} not found"
            ))),
        }
    }

    /// Every (subject, version) holding the schema with this id.
    pub fn versions_of_id(
        &self,
        id: u32,
        include_deleted: bool,
    ) -> Result<Vec<(String, u32)>, RegistryError> {
        self.schema_by_id(id)?;
        Ok(self
            .subjects
            .iter()
            .flat_map(|(name, s)| {
                s.versions
                    .iter()
                    .filter(move |v| v.id == id && (include_deleted || !v.deleted))
                    .map(move |v| (name.clone(), v.version))
            })
            .collect())
    }

    /// Soft-delete every live version of a subject, or (`permanent`) remove a soft-deleted
    /// subject for good. Returns the version numbers deleted.
    pub fn delete_subject(
        &mut self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<u32>, RegistryError> {
        self.ensure_writable(subject)?;
        let not_found = || RegistryError::SubjectNotFound(subject.to_owned());
        let entry = self.subjects.get_mut(subject).ok_or_else(not_found)?;
        if entry.versions.is_empty() {
            return Err(not_found());
        }
        let has_live = entry.versions.iter().any(|v| !v.deleted);
        if permanent {
            if has_live {
                return Err(RegistryError::SubjectNotSoftDeleted(subject.to_owned()));
            }
            let deleted = entry.versions.iter().map(|v| v.version).collect();
            // A subject deleted for good takes its own settings with it.
            self.subjects.remove(subject);
            return Ok(deleted);
        }
        if !has_live {
            return Err(RegistryError::SubjectSoftDeleted(subject.to_owned()));
        }
        let mut deleted = Vec::new();
        for v in entry.versions.iter_mut().filter(|v| !v.deleted) {
            v.deleted = true;
            deleted.push(v.version);
        }
        Ok(deleted)
    }

    /// Soft-delete one live version, or (`permanent`) remove a soft-deleted one for good.
    pub fn delete_version(
        &mut self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<u32, RegistryError> {
        self.ensure_writable(subject)?;
        // A numbered version is found even when soft-deleted (to say so); `latest` means the
        // latest live version for a soft delete, the latest of all for a permanent one.
        let include_deleted = permanent || matches!(spec, VersionSpec::Number(_));
        let version = self.find_version(subject, spec, include_deleted)?.version;
        let entry = self
            .subjects
            .get_mut(subject)
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_owned()))?;
        let index = entry
            .versions
            .iter()
            .position(|v| v.version == version)
            .ok_or_else(|| RegistryError::VersionNotFound(version.to_string()))?;
        let deleted = entry.versions[index].deleted;
        match (permanent, deleted) {
            (false, true) => Err(RegistryError::VersionSoftDeleted(
                subject.to_owned(),
                version,
            )),
            (false, false) => {
                entry.versions[index].deleted = true;
                Ok(version)
            }
            (true, false) => Err(RegistryError::VersionNotSoftDeleted(
                subject.to_owned(),
                version,
            )),
            (true, true) => {
                entry.versions.remove(index);
                if entry.is_empty() {
                    self.subjects.remove(subject);
                }
                Ok(version)
            }
        }
    }

    /// Check `text` against one version of `subject` (when `spec` is given) or against what
    /// registration would check. Returns the broken rules; empty means compatible. A subject
    /// without versions accepts anything when no version is named.
    pub fn check_compatibility(
        &self,
        subject: &str,
        spec: Option<VersionSpec>,
        text: &str,
    ) -> Result<Vec<String>, RegistryError> {
        let (_, parsed) = parse_schema(text)?;
        let Some(spec) = spec else {
            return Ok(self.check_all(subject, &parsed));
        };
        let entry = self.find_version(subject, spec, false)?;
        let target = ExistingVersion {
            version: entry.version,
            schema: &self.stored(entry.id)?.parsed,
        };
        Ok(compat::check_pair(
            self.effective_compatibility(subject),
            &parsed,
            &target,
        ))
    }

    /// The global compatibility level.
    pub fn compatibility(&self) -> CompatibilityLevel {
        self.compatibility
    }

    /// The subject's own level, if one is set.
    pub fn subject_compatibility(&self, subject: &str) -> Option<CompatibilityLevel> {
        self.subjects.get(subject).and_then(|s| s.compatibility)
    }

    /// The level registration under `subject` uses: its own, else the global one.
    pub fn effective_compatibility(&self, subject: &str) -> CompatibilityLevel {
        self.subject_compatibility(subject)
            .unwrap_or(self.compatibility)
    }

    /// Set the global level (`subject` None) or a subject's level.
    pub fn set_compatibility(&mut self, subject: Option<&str>, level: CompatibilityLevel) {
        match subject {
            None => self.compatibility = level,
            Some(name) => {
                self.subjects
                    .entry(name.to_owned())
                    .or_default()
                    .compatibility = Some(level)
            }
        }
    }

    /// Reset the global level to the default; returns the previous one.
    pub fn reset_compatibility(&mut self) -> CompatibilityLevel {
        std::mem::take(&mut self.compatibility)
    }

    /// Remove a subject's own level (it follows the global one again); returns the removed one.
    pub fn delete_subject_compatibility(
        &mut self,
        subject: &str,
    ) -> Result<CompatibilityLevel, RegistryError> {
        let entry = self.subjects.get_mut(subject);
        let removed = entry.and_then(|s| s.compatibility.take());
        let removed = removed
            .ok_or_else(|| RegistryError::SubjectCompatibilityNotConfigured(subject.to_owned()))?;
        self.drop_if_empty(subject);
        Ok(removed)
    }

    /// The global mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The subject's own mode, if one is set.
    pub fn subject_mode(&self, subject: &str) -> Option<Mode> {
        self.subjects.get(subject).and_then(|s| s.mode)
    }

    /// Set the global mode (`subject` None) or a subject's mode.
    pub fn set_mode(&mut self, subject: Option<&str>, mode: Mode) {
        match subject {
            None => self.mode = mode,
            Some(name) => self.subjects.entry(name.to_owned()).or_default().mode = Some(mode),
        }
    }

    /// Remove a subject's own mode; returns the removed one.
    pub fn delete_subject_mode(&mut self, subject: &str) -> Result<Mode, RegistryError> {
        let removed = self.subjects.get_mut(subject).and_then(|s| s.mode.take());
        let removed =
            removed.ok_or_else(|| RegistryError::SubjectModeNotConfigured(subject.to_owned()))?;
        self.drop_if_empty(subject);
        Ok(removed)
    }

    fn ensure_writable(&self, subject: &str) -> Result<(), RegistryError> {
        let mode = self.subject_mode(subject).unwrap_or(self.mode);
        if mode.allows_writes() {
            Ok(())
        } else {
            Err(RegistryError::OperationNotPermitted(format!(
                "Subject {subject} is in read-only mode"
            )))
        }
    }

    fn check_all(&self, subject: &str, candidate: &Schema) -> Vec<String> {
        let level = self.effective_compatibility(subject);
        let Some(s) = self.subjects.get(subject) else {
            return Vec::new();
        };
        let existing: Vec<ExistingVersion<'_>> = s
            .versions
            .iter()
            .filter(|v| !v.deleted)
            .filter_map(|v| {
                let stored = self.schemas.get(&v.id)?;
                Some(ExistingVersion {
                    version: v.version,
                    schema: &stored.parsed,
                })
            })
            .collect();
        compat::check_against_subject(level, candidate, &existing)
    }

    fn visible_entries(
        &self,
        subject: &str,
        include_deleted: bool,
    ) -> Result<Vec<VersionEntry>, RegistryError> {
        let entries: Vec<VersionEntry> = self
            .subjects
            .get(subject)
            .map(|s| {
                s.versions
                    .iter()
                    .filter(|v| include_deleted || !v.deleted)
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        if entries.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        Ok(entries)
    }

    fn find_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        include_deleted: bool,
    ) -> Result<VersionEntry, RegistryError> {
        let entries = self.visible_entries(subject, include_deleted)?;
        let found = match spec {
            VersionSpec::Latest => entries.last().copied(),
            VersionSpec::Number(n) => entries.iter().find(|v| v.version == n).copied(),
        };
        found.ok_or_else(|| {
            RegistryError::VersionNotFound(match spec {
                VersionSpec::Latest => "latest".to_owned(),
                VersionSpec::Number(n) => n.to_string(),
            })
        })
    }

    fn stored(&self, id: u32) -> Result<&StoredSchema, RegistryError> {
        self.schemas
            .get(&id)
            .ok_or_else(|| RegistryError::SchemaNotFound(format!("Schema {id} not found")))
    }

    fn view(&self, subject: &str, entry: VersionEntry) -> Result<VersionView, RegistryError> {
        Ok(VersionView {
            subject: subject.to_owned(),
            version: entry.version,
            id: entry.id,
            schema: self.stored(entry.id)?.text.clone(),
        })
    }

    fn drop_if_empty(&mut self, subject: &str) {
        if self.subjects.get(subject).is_some_and(Subject::is_empty) {
            self.subjects.remove(subject);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"Row","fields":[{"name":"id","type":"long"}]}"#;
    const V2: &str = r#"{"type":"record","name":"Row","fields":[{"name":"id","type":"long"},{"name":"note","type":["null","string"],"default":null}]}"#;
    const REQUIRED: &str = r#"{"type":"record","name":"Row","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"}]}"#;

    fn error_code<T: std::fmt::Debug>(result: Result<T, RegistryError>) -> u32 {
        result.expect_err("expected an error").error_code()
    }

    #[test]
    fn the_same_schema_under_the_same_subject_keeps_its_version_and_id() {
        let mut store = Store::default();
        let first = store.register("orders-value", V1).expect("register");
        assert_eq!((first.id, first.version, first.created), (1, 1, true));
        let again = store.register("orders-value", V1).expect("register again");
        assert_eq!((again.id, again.version, again.created), (1, 1, false));
        assert_eq!(
            store.versions("orders-value", false).expect("versions"),
            [1]
        );
    }

    #[test]
    fn whitespace_does_not_change_a_schemas_identity() {
        let mut store = Store::default();
        let compact = store.register("a", V1).expect("register");
        let spaced = V1.replace(',', " ,\n  ").replace(':', " : ");
        let other = store.register("b", &spaced).expect("register spaced");
        assert_eq!(compact.id, other.id);
        assert_eq!(store.schema_by_id(compact.id).expect("schema"), V1);
    }

    #[test]
    fn the_same_schema_under_another_subject_gets_the_same_global_id() {
        let mut store = Store::default();
        let a = store.register("a-value", V1).expect("a");
        let b = store.register("b-value", V1).expect("b");
        assert_eq!((a.id, b.id, b.version), (1, 1, 1));
        let versions = store.versions_of_id(1, false).expect("versions");
        assert_eq!(
            versions,
            [("a-value".to_owned(), 1), ("b-value".to_owned(), 1)]
        );
    }

    #[test]
    fn new_schemas_get_new_increasing_ids_and_versions() {
        let mut store = Store::default();
        store.register("s", V1).expect("v1");
        let second = store.register("s", V2).expect("v2");
        assert_eq!((second.id, second.version), (2, 2));
        let latest = store
            .version("s", VersionSpec::Latest, false)
            .expect("latest");
        assert_eq!((latest.version, latest.id), (2, 2));
        assert_eq!(
            store
                .version("s", VersionSpec::Number(1), false)
                .expect("v1")
                .schema,
            V1
        );
    }

    #[test]
    fn an_incompatible_schema_is_refused_with_409_and_nothing_changes() {
        let mut store = Store::default();
        store.register("s", V1).expect("v1");
        let before = store.to_snapshot();
        assert_eq!(error_code(store.register("s", REQUIRED)), 409);
        assert_eq!(store.to_snapshot(), before);
        store.set_compatibility(Some("s"), CompatibilityLevel::None);
        assert_eq!(
            store
                .register("s", REQUIRED)
                .expect("accepted under NONE")
                .version,
            2
        );
    }

    #[test]
    fn invalid_schemas_and_versions_have_their_own_codes() {
        let mut store = Store::default();
        assert_eq!(error_code(store.register("s", "{not json")), 42201);
        assert_eq!(
            error_code(store.register("s", r#"{"type":"nonsense"}"#)),
            42201
        );
        assert_eq!(error_code(VersionSpec::parse("0")), 42202);
        assert_eq!(error_code(VersionSpec::parse("two")), 42202);
        assert_eq!(
            VersionSpec::parse("-1").expect("alias"),
            VersionSpec::Latest
        );
    }

    #[test]
    fn missing_subjects_versions_and_ids_have_their_own_codes() {
        let mut store = Store::default();
        assert_eq!(error_code(store.versions("nope", false)), 40401);
        store.register("s", V1).expect("v1");
        assert_eq!(
            error_code(store.version("s", VersionSpec::Number(7), false)),
            40402
        );
        assert_eq!(error_code(store.schema_by_id(9)), 40403);
        assert_eq!(error_code(store.lookup("nope", V1, false)), 40401);
        assert_eq!(error_code(store.lookup("s", V2, false)), 40403);
        assert_eq!(store.lookup("s", V1, false).expect("found").version, 1);
    }

    #[test]
    fn a_soft_deleted_subject_is_hidden_but_its_schemas_stay_readable_by_id() {
        let mut store = Store::default();
        store.register("s", V1).expect("v1");
        store.register("s", V2).expect("v2");
        assert_eq!(store.delete_subject("s", false).expect("soft"), [1, 2]);
        assert!(store.subjects(false).is_empty());
        assert_eq!(store.subjects(true), ["s"]);
        assert_eq!(error_code(store.versions("s", false)), 40401);
        assert_eq!(store.versions("s", true).expect("with deleted"), [1, 2]);
        assert_eq!(store.schema_by_id(1).expect("still readable"), V1);
        assert_eq!(error_code(store.delete_subject("s", false)), 40404);
    }

    #[test]
    fn a_permanent_delete_needs_a_soft_delete_first() {
        let mut store = Store::default();
        store.register("s", V1).expect("v1");
        assert_eq!(error_code(store.delete_subject("s", true)), 40405);
        store.delete_subject("s", false).expect("soft");
        assert_eq!(store.delete_subject("s", true).expect("hard"), [1]);
        assert_eq!(store.subjects(true), Vec::<String>::new());
        assert_eq!(error_code(store.schema_by_id(1)), 40403);
        assert_eq!(error_code(store.delete_subject("s", true)), 40401);
    }

    #[test]
    fn versions_are_soft_then_hard_deleted_one_at_a_time() {
        let mut store = Store::default();
        store.register("s", V1).expect("v1");
        store.register("s", V2).expect("v2");
        let one = VersionSpec::Number(1);
        assert_eq!(error_code(store.delete_version("s", one, true)), 40407);
        assert_eq!(store.delete_version("s", one, false).expect("soft"), 1);
        assert_eq!(error_code(store.delete_version("s", one, false)), 40406);
        assert_eq!(store.versions("s", false).expect("live"), [2]);
        assert_eq!(store.version("s", one, true).expect("deleted=true").id, 1);
        assert_eq!(store.delete_version("s", one, true).expect("hard"), 1);
        assert_eq!(store.versions("s", true).expect("all"), [2]);
    }

    #[test]
    fn ids_are_never_reused_and_a_schema_registered_again_keeps_its_id() {
        let mut store = Store::default();
        store.register("s", V1).expect("v1");
        store.delete_subject("s", false).expect("soft");
        store.delete_subject("s", true).expect("hard");
        let other = store.register("t", V2).expect("another schema");
        assert_eq!(other.id, 2, "id 1 is not handed out again");
        let back = store.register("s", V1).expect("v1 again");
        assert_eq!((back.id, back.version), (1, 1));
    }

    #[test]
    fn registering_after_a_soft_delete_adds_a_new_version() {
        let mut store = Store::default();
        store.register("s", V1).expect("v1");
        store.delete_subject("s", false).expect("soft");
        let again = store.register("s", V1).expect("again");
        assert_eq!((again.id, again.version, again.created), (1, 2, true));
    }

    #[test]
    fn compatibility_is_checked_against_live_versions_only() {
        let mut store = Store::default();
        store.register("s", REQUIRED).expect("v1");
        // V1 drops `name`: fine for BACKWARD; FULL would refuse it while v1 is live.
        store.set_compatibility(Some("s"), CompatibilityLevel::Full);
        assert_eq!(error_code(store.register("s", V1)), 409);
        store
            .delete_version("s", VersionSpec::Number(1), false)
            .expect("soft");
        assert_eq!(
            store.register("s", V1).expect("no live versions").version,
            2
        );
    }

    #[test]
    fn a_named_version_is_checked_alone_and_no_version_means_what_registration_checks() {
        let mut store = Store::default();
        store.register("s", V1).expect("v1");
        let messages = store
            .check_compatibility("s", Some(VersionSpec::Latest), REQUIRED)
            .expect("checked");
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(store
            .check_compatibility("s", None, V2)
            .expect("checked")
            .is_empty());
        assert!(store
            .check_compatibility("new", None, REQUIRED)
            .expect("checked")
            .is_empty());
        assert_eq!(
            error_code(store.check_compatibility("new", Some(VersionSpec::Latest), V1)),
            40401
        );
    }

    #[test]
    fn subject_levels_override_the_global_level_until_deleted() {
        let mut store = Store::default();
        assert_eq!(
            store.effective_compatibility("s"),
            CompatibilityLevel::Backward
        );
        store.set_compatibility(None, CompatibilityLevel::Forward);
        store.set_compatibility(Some("s"), CompatibilityLevel::FullTransitive);
        assert_eq!(
            store.effective_compatibility("s"),
            CompatibilityLevel::FullTransitive
        );
        assert_eq!(
            store.effective_compatibility("t"),
            CompatibilityLevel::Forward
        );
        assert_eq!(
            store.delete_subject_compatibility("s").expect("removed"),
            CompatibilityLevel::FullTransitive
        );
        assert_eq!(
            store.effective_compatibility("s"),
            CompatibilityLevel::Forward
        );
        assert_eq!(error_code(store.delete_subject_compatibility("s")), 40408);
        assert_eq!(store.reset_compatibility(), CompatibilityLevel::Forward);
        assert_eq!(store.compatibility(), CompatibilityLevel::Backward);
    }

    #[test]
    fn read_only_mode_refuses_registrations_and_deletes() {
        let mut store = Store::default();
        store.register("s", V1).expect("v1");
        store.set_mode(None, Mode::Readonly);
        assert_eq!(error_code(store.register("s", V2)), 42205);
        assert_eq!(error_code(store.delete_subject("s", false)), 42205);
        // A subject may be opened for writes on its own.
        store.set_mode(Some("s"), Mode::Readwrite);
        assert_eq!(
            store
                .register("s", V2)
                .expect("subject is writable")
                .version,
            2
        );
        assert_eq!(
            store.delete_subject_mode("s").expect("removed"),
            Mode::Readwrite
        );
        assert_eq!(error_code(store.delete_subject_mode("s")), 40409);
        assert_eq!(Mode::parse("readonly"), Some(Mode::Readonly));
        assert_eq!(Mode::parse("IMPORT"), None);
    }

    #[test]
    fn a_snapshot_round_trip_restores_everything() {
        let mut store = Store::default();
        store.register("a", V1).expect("a");
        store.register("a", V2).expect("a2");
        store.register("b", REQUIRED).expect("b");
        store
            .delete_version("a", VersionSpec::Number(1), false)
            .expect("soft");
        store.set_compatibility(Some("b"), CompatibilityLevel::None);
        store.set_mode(Some("c"), Mode::Readonly);
        store.set_compatibility(None, CompatibilityLevel::Full);
        let snapshot = store.to_snapshot();
        let json = serde_json::to_string(&snapshot).expect("serialise");
        let restored =
            Store::from_snapshot(serde_json::from_str(&json).expect("parse")).expect("load");
        assert_eq!(restored.to_snapshot(), snapshot);
        assert_eq!(restored.subject_mode("c"), Some(Mode::Readonly));
        let mut restored = restored;
        assert_eq!(restored.register("d", r#""int""#).expect("new").id, 4);
    }
}
