//! The `[source]` table of type `postgres`: raw TOML keys ([`RawPostgresSource`]) -> validated
//! [`PostgresSourceConfig`] in one step, without I/O, reporting every problem with its key.
//! The password file is read later, by [`PostgresSourceConfig::resolve_password`], when the
//! daemon starts; connectivity is `sluice check`'s job.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use sluice_api::{join_key, ConfigProblem, Secret};

use crate::ConnectionConfig;

/// `slot` and `publication` default to this prefix + the pipeline name.
pub const DEFAULT_NAME_PREFIX: &str = "sluice_";
/// Capture every table of the `public` schema unless told otherwise (as Debezium captures
/// everything by default, but limited to the schema where application tables usually live).
pub const DEFAULT_TABLES: &[&str] = &["public.*"];
/// 64 MiB of a streamed transaction stays in memory before it spills to disk.
pub const DEFAULT_STREAM_BUFFER_BYTES: u64 = 64 * 1024 * 1024;
/// Below 1 MiB nearly every streamed chunk would spill.
pub const MIN_STREAM_BUFFER_BYTES: u64 = 1024 * 1024;
/// PostgreSQL's own `wal_receiver_status_interval` default.
pub const DEFAULT_STATUS_INTERVAL_MS: u64 = 10_000;
/// Status updates more often than 100 ms only load the server; rarer than 10 minutes risks
/// `wal_sender_timeout` (default 60 s) unless the server is configured for it.
pub const STATUS_INTERVAL_MS_RANGE: std::ops::RangeInclusive<u64> = 100..=600_000;
/// Heartbeats are off unless asked for.
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 0;
/// A heartbeat more often than this would itself be a noticeable write load.
pub const MIN_HEARTBEAT_INTERVAL_MS: u64 = 100;
/// First wait before reconnecting: long enough not to hammer a restarting server.
pub const DEFAULT_RECONNECT_BACKOFF_INITIAL_MS: u64 = 500;
/// The longest wait between reconnect attempts.
pub const DEFAULT_RECONNECT_BACKOFF_MAX_MS: u64 = 30_000;
/// Rows per snapshot chunk: large enough that per-chunk costs (a range query, a progress
/// write) vanish against the rows, small enough that a crash re-reads little.
pub const DEFAULT_SNAPSHOT_CHUNK_ROWS: u64 = 50_000;
/// Chunks read in parallel, each on its own connection importing the same snapshot (Debezium's
/// `snapshot.max.threads`). Two keep a decoding core busy while the server reads the next chunk.
pub const DEFAULT_SNAPSHOT_MAX_THREADS: u64 = 2;
/// More connections than this would only contend on the server.
pub const MAX_SNAPSHOT_MAX_THREADS: u64 = 64;
/// Rows per incremental snapshot chunk (Debezium's `incremental.snapshot.chunk.size`): the
/// chunk is held in memory between its watermarks.
pub const DEFAULT_INCREMENTAL_CHUNK_ROWS: u64 = 1024;
/// Snapshot progress is kept under this directory (relative to the working directory).
pub const DEFAULT_STATE_DIR: &str = "sluice-state";
/// PostgreSQL's `NAMEDATALEN - 1`: the longest slot or publication name.
pub const MAX_NAME_BYTES: usize = 63;

/// How `[source] publication_autocreate` handles the publication (Debezium's
/// `publication.autocreate.mode`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum PublicationAutocreate {
    /// Create it for the included tables if missing, and keep its table list in step.
    #[default]
    Filtered,
    /// Create it `FOR ALL TABLES` if missing.
    AllTables,
    /// Use an existing publication; a missing one is an error.
    Disabled,
}

impl PublicationAutocreate {
    /// Every value, in the order documented.
    pub const ALL: [PublicationAutocreate; 3] = [Self::Filtered, Self::AllTables, Self::Disabled];

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Filtered => "filtered",
            Self::AllTables => "all_tables",
            Self::Disabled => "disabled",
        }
    }
}

/// Debezium's snapshot modes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum SnapshotMode {
    /// Snapshot the included tables when the slot is created, then stream.
    #[default]
    Initial,
    /// Stream only, from the slot's creation.
    Never,
    /// Snapshot when the slot is created, then stop.
    InitialOnly,
    /// Snapshot at every start, then stream.
    Always,
    /// Snapshot when the slot is missing (first start, or the slot was lost), then stream.
    WhenNeeded,
}

impl SnapshotMode {
    /// Every value, in the order documented.
    pub const ALL: [SnapshotMode; 5] = [
        Self::Initial,
        Self::Never,
        Self::InitialOnly,
        Self::Always,
        Self::WhenNeeded,
    ];

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Never => "never",
            Self::InitialOnly => "initial_only",
            Self::Always => "always",
            Self::WhenNeeded => "when_needed",
        }
    }
}

/// A validated PostgreSQL source.
#[derive(Clone, Debug)]
pub struct PostgresSourceConfig {
    /// Where and how to connect; the password (from the URL, `password`, or `password_file`
    /// once resolved) is a [`Secret`].
    pub connection: ConnectionConfig,
    /// File holding the password, read by [`Self::resolve_password`] at start (not during
    /// validation, which does no I/O).
    pub password_file: Option<PathBuf>,
    /// Replication slot name.
    pub slot: String,
    /// Publication name.
    pub publication: String,
    /// Whether and how the publication is created.
    pub publication_autocreate: PublicationAutocreate,
    /// Include list: `schema.table` patterns where `*` matches any run of characters.
    pub tables: Vec<String>,
    /// When to snapshot existing rows.
    pub snapshot_mode: SnapshotMode,
    /// Rows per snapshot chunk (a primary key range, or a page range without a key).
    pub snapshot_chunk_rows: u64,
    /// Chunks read in parallel.
    pub snapshot_max_threads: usize,
    /// Where snapshot progress is persisted (one file per slot).
    pub state_dir: PathBuf,
    /// The signal table (`schema.table`, Debezium's `signal.data.collection`): an
    /// `execute-snapshot` row written there starts an incremental snapshot. `None`: off.
    pub signal_table: Option<(String, String)>,
    /// Rows per incremental snapshot chunk.
    pub incremental_chunk_rows: u64,
    /// Memory for buffering streamed in-progress transactions before spilling to disk.
    pub stream_buffer_bytes: usize,
    /// Where spill files go (default: the system temp dir).
    pub spill_dir: Option<PathBuf>,
    /// Longest time between standby status updates.
    pub status_interval: Duration,
    /// Emit a logical decoding message at this interval so the slot advances when only
    /// uncaptured tables change; `None` is off.
    pub heartbeat_interval: Option<Duration>,
    /// First wait between reconnect attempts (doubling up to the max).
    pub reconnect_backoff_initial: Duration,
    /// Longest wait between reconnect attempts.
    pub reconnect_backoff_max: Duration,
    /// Fill unchanged TOAST values of updates by re-reading the row by key (only while the
    /// row still has the updated version); off leaves them marked as unavailable.
    pub reread_unchanged_toast: bool,
}

impl PostgresSourceConfig {
    /// Read `password_file` (if set) into the connection's password. Called by the daemon at
    /// start and by `sluice check`. One trailing newline is stripped; the error never contains
    /// the file's content.
    pub fn resolve_password(&mut self) -> Result<(), String> {
        let Some(path) = &self.password_file else {
            return Ok(());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read password_file {}: {e}", path.display()))?;
        let password = text.strip_suffix('\n').unwrap_or(&text);
        let password = password.strip_suffix('\r').unwrap_or(password);
        if password.is_empty() {
            return Err(format!("password_file {} is empty", path.display()));
        }
        self.connection.password = Some(Secret::new(password));
        Ok(())
    }
}

/// The `[source]` keys as written. Every field is optional so that validation reports every
/// missing key at once. It has no `Debug`: it holds the password in clear.
#[derive(Default, Deserialize)]
pub struct RawPostgresSource {
    /// `"postgres"` (the default; the only source type).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// libpq-style URL. Required.
    pub connection: Option<String>,
    /// Overrides the URL's password; meant for `SLUICE__SOURCE__PASSWORD`.
    pub password: Option<String>,
    /// A file holding the password (e.g. a mounted secret).
    pub password_file: Option<String>,
    /// Replication slot; default `sluice_<pipeline name>`.
    pub slot: Option<String>,
    /// Publication; default `sluice_<pipeline name>`.
    pub publication: Option<String>,
    /// `filtered` (default), `all_tables` or `disabled`.
    pub publication_autocreate: Option<String>,
    /// `schema.table` patterns; default `["public.*"]`.
    pub tables: Option<Vec<String>>,
    /// `initial` (default), `never`, `initial_only`, `always`, `when_needed`.
    pub snapshot_mode: Option<String>,
    /// Default 50000, at least 1.
    pub snapshot_chunk_rows: Option<u64>,
    /// Default 2, 1..=64.
    pub snapshot_max_threads: Option<u64>,
    /// Default `sluice-state`.
    pub state_dir: Option<String>,
    /// `schema.table`; default none (incremental snapshots off).
    pub signal_table: Option<String>,
    /// Default 1024, at least 1.
    pub incremental_chunk_rows: Option<u64>,
    /// Default 64 MiB, at least 1 MiB.
    pub stream_buffer_bytes: Option<u64>,
    /// Default: the system temp dir.
    pub spill_dir: Option<String>,
    /// Default 10000, 100..=600000.
    pub status_interval_ms: Option<u64>,
    /// Default 0 (off); otherwise at least 100.
    pub heartbeat_interval_ms: Option<u64>,
    /// Default 500.
    pub reconnect_backoff_initial_ms: Option<u64>,
    /// Default 30000, at least the initial backoff.
    pub reconnect_backoff_max_ms: Option<u64>,
    /// Default true.
    pub reread_unchanged_toast: Option<bool>,
}

/// Validate `[source]` (at key path `prefix`) for the pipeline `pipeline_name`, reporting
/// every problem. No I/O: `password_file` is only recorded.
pub fn validate(
    raw: RawPostgresSource,
    pipeline_name: &str,
    prefix: &str,
) -> Result<PostgresSourceConfig, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    let key = |k: &str| join_key(prefix, k);

    if let Some(kind) = raw.kind.as_deref() {
        if kind != "postgres" {
            problems.push(ConfigProblem::new(
                key("type"),
                format!("unsupported source type {kind:?}; supported: postgres"),
            ));
        }
    }

    let connection = match raw.connection.as_deref() {
        None => {
            problems.push(ConfigProblem::missing(
                key("connection"),
                "a URL like postgres://user@host:5432/dbname",
            ));
            None
        }
        Some(url) => match ConnectionConfig::parse(url) {
            Ok(c) => Some(c),
            Err(message) => {
                problems.push(ConfigProblem::new(
                    key("connection"),
                    redact_url_password(&message, url),
                ));
                None
            }
        },
    };

    let password = match raw.password {
        Some(p) if p.is_empty() => {
            problems.push(ConfigProblem::new(key("password"), "must not be empty"));
            None
        }
        other => other.map(Secret::new),
    };
    let password_file = non_empty_path(raw.password_file, &key("password_file"), &mut problems);
    if password.is_some() && password_file.is_some() {
        problems.push(ConfigProblem::new(
            key("password_file"),
            "set either password or password_file, not both",
        ));
    }

    let default_name = default_object_name(pipeline_name);
    let slot = raw.slot.unwrap_or_else(|| default_name.clone());
    if !is_valid_slot_name(&slot) {
        problems.push(ConfigProblem::new(
            key("slot"),
            format!(
                "invalid slot name {slot:?}: 1 to {MAX_NAME_BYTES} characters of a-z, 0-9 and _"
            ),
        ));
    }
    let publication = raw.publication.unwrap_or(default_name);
    if publication.is_empty()
        || publication.len() > MAX_NAME_BYTES
        || publication.chars().any(|c| c.is_control() || c == '"')
    {
        problems.push(ConfigProblem::new(
            key("publication"),
            format!(
                "invalid publication name {publication:?}: 1 to {MAX_NAME_BYTES} bytes, no quotes or control characters"
            ),
        ));
    }

    let publication_autocreate = parse_choice(
        raw.publication_autocreate.as_deref(),
        &PublicationAutocreate::ALL,
        PublicationAutocreate::as_str,
        &key("publication_autocreate"),
        &mut problems,
    );
    let snapshot_mode = parse_choice(
        raw.snapshot_mode.as_deref(),
        &SnapshotMode::ALL,
        SnapshotMode::as_str,
        &key("snapshot_mode"),
        &mut problems,
    );

    let snapshot_chunk_rows = raw
        .snapshot_chunk_rows
        .unwrap_or(DEFAULT_SNAPSHOT_CHUNK_ROWS);
    if snapshot_chunk_rows == 0 {
        problems.push(ConfigProblem::new(
            key("snapshot_chunk_rows"),
            "must be at least 1",
        ));
    }
    let snapshot_max_threads = raw
        .snapshot_max_threads
        .unwrap_or(DEFAULT_SNAPSHOT_MAX_THREADS);
    if !(1..=MAX_SNAPSHOT_MAX_THREADS).contains(&snapshot_max_threads) {
        problems.push(ConfigProblem::new(
            key("snapshot_max_threads"),
            format!("must be between 1 and {MAX_SNAPSHOT_MAX_THREADS}, got {snapshot_max_threads}"),
        ));
    }
    let signal_table = match raw.signal_table.as_deref() {
        None => None,
        Some(text) => match text.split_once('.') {
            Some((schema, table))
                if !schema.is_empty() && !table.is_empty() && !text.contains('*') =>
            {
                Some((schema.to_owned(), table.to_owned()))
            }
            _ => {
                problems.push(ConfigProblem::new(
                    key("signal_table"),
                    format!("invalid table {text:?}: expected schema.table, e.g. \"public.sluice_signal\""),
                ));
                None
            }
        },
    };
    let incremental_chunk_rows = raw
        .incremental_chunk_rows
        .unwrap_or(DEFAULT_INCREMENTAL_CHUNK_ROWS);
    if incremental_chunk_rows == 0 {
        problems.push(ConfigProblem::new(
            key("incremental_chunk_rows"),
            "must be at least 1",
        ));
    }
    let state_dir = non_empty_path(raw.state_dir, &key("state_dir"), &mut problems)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));

    let tables = raw
        .tables
        .unwrap_or_else(|| DEFAULT_TABLES.iter().map(|t| (*t).to_owned()).collect());
    if tables.is_empty() {
        problems.push(ConfigProblem::new(
            key("tables"),
            "must list at least one schema.table pattern",
        ));
    }
    for (i, pattern) in tables.iter().enumerate() {
        if let Err(message) = check_table_pattern(pattern) {
            problems.push(ConfigProblem::new(
                format!("{}[{i}]", key("tables")),
                message,
            ));
        }
    }

    let stream_buffer_bytes = raw
        .stream_buffer_bytes
        .unwrap_or(DEFAULT_STREAM_BUFFER_BYTES);
    if stream_buffer_bytes < MIN_STREAM_BUFFER_BYTES {
        problems.push(ConfigProblem::new(
            key("stream_buffer_bytes"),
            format!(
                "must be at least {MIN_STREAM_BUFFER_BYTES} (1 MiB), got {stream_buffer_bytes}"
            ),
        ));
    }
    let stream_buffer_bytes = usize::try_from(stream_buffer_bytes).unwrap_or(usize::MAX);
    let spill_dir = non_empty_path(raw.spill_dir, &key("spill_dir"), &mut problems);

    let status_ms = raw.status_interval_ms.unwrap_or(DEFAULT_STATUS_INTERVAL_MS);
    if !STATUS_INTERVAL_MS_RANGE.contains(&status_ms) {
        problems.push(ConfigProblem::new(
            key("status_interval_ms"),
            format!(
                "must be between {} and {}, got {status_ms}",
                STATUS_INTERVAL_MS_RANGE.start(),
                STATUS_INTERVAL_MS_RANGE.end()
            ),
        ));
    }
    let heartbeat_ms = raw
        .heartbeat_interval_ms
        .unwrap_or(DEFAULT_HEARTBEAT_INTERVAL_MS);
    if heartbeat_ms != 0 && heartbeat_ms < MIN_HEARTBEAT_INTERVAL_MS {
        problems.push(ConfigProblem::new(
            key("heartbeat_interval_ms"),
            format!("must be 0 (off) or at least {MIN_HEARTBEAT_INTERVAL_MS}, got {heartbeat_ms}"),
        ));
    }
    let backoff_initial_ms = raw
        .reconnect_backoff_initial_ms
        .unwrap_or(DEFAULT_RECONNECT_BACKOFF_INITIAL_MS);
    if backoff_initial_ms == 0 {
        problems.push(ConfigProblem::new(
            key("reconnect_backoff_initial_ms"),
            "must be at least 1",
        ));
    }
    let backoff_max_ms = raw
        .reconnect_backoff_max_ms
        .unwrap_or(DEFAULT_RECONNECT_BACKOFF_MAX_MS);
    if backoff_max_ms < backoff_initial_ms {
        problems.push(ConfigProblem::new(
            key("reconnect_backoff_max_ms"),
            format!(
                "must be at least reconnect_backoff_initial_ms ({backoff_initial_ms}), got {backoff_max_ms}"
            ),
        ));
    }

    match connection {
        Some(mut connection) if problems.is_empty() => {
            if password.is_some() {
                connection.password = password;
            }
            Ok(PostgresSourceConfig {
                connection,
                password_file,
                slot,
                publication,
                publication_autocreate,
                tables,
                snapshot_mode,
                snapshot_chunk_rows,
                snapshot_max_threads: snapshot_max_threads as usize,
                state_dir,
                signal_table,
                incremental_chunk_rows,
                stream_buffer_bytes,
                spill_dir,
                status_interval: Duration::from_millis(status_ms),
                heartbeat_interval: (heartbeat_ms > 0).then(|| Duration::from_millis(heartbeat_ms)),
                reconnect_backoff_initial: Duration::from_millis(backoff_initial_ms),
                reconnect_backoff_max: Duration::from_millis(backoff_max_ms),
                reread_unchanged_toast: raw.reread_unchanged_toast.unwrap_or(true),
            })
        }
        _ => Err(problems),
    }
}

/// `sluice_<pipeline name>` made a valid slot name: lowercased, other characters as `_`,
/// cut to 63 bytes.
pub fn default_object_name(pipeline_name: &str) -> String {
    DEFAULT_NAME_PREFIX
        .chars()
        .chain(pipeline_name.chars().map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_') => c,
            _ => '_',
        }))
        .take(MAX_NAME_BYTES)
        .collect()
}

/// PostgreSQL's rule for replication slot names.
pub fn is_valid_slot_name(name: &str) -> bool {
    (1..=MAX_NAME_BYTES).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Whether `schema.table` is captured: some pattern's schema part matches `schema` and its
/// table part matches `table`. Each pattern is split at its first `.`; `*` matches any run of
/// characters (never across the split). Names are compared as stored in the catalog, so an
/// unquoted `Public` in a pattern does not match the schema `public`.
pub fn table_included(patterns: &[String], schema: &str, table: &str) -> bool {
    patterns
        .iter()
        .any(|pattern| match pattern.split_once('.') {
            Some((schema_glob, table_glob)) => {
                glob_match(schema_glob, schema) && glob_match(table_glob, table)
            }
            None => false,
        })
}

/// `*`-only glob matching, linear backtracking over the last star.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star_pi, star_ti)) = star {
            pi = star_pi + 1;
            ti = star_ti + 1;
            star = Some((star_pi, star_ti + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

fn check_table_pattern(pattern: &str) -> Result<(), String> {
    match pattern.split_once('.') {
        Some((schema, table)) if !schema.is_empty() && !table.is_empty() => Ok(()),
        _ => Err(format!(
            "invalid table pattern {pattern:?}: expected schema.table, e.g. \"public.orders\" or \"public.*\""
        )),
    }
}

fn parse_choice<T: Copy + Default>(
    value: Option<&str>,
    all: &[T],
    name: fn(T) -> &'static str,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> T {
    let Some(value) = value else {
        return T::default();
    };
    match all.iter().copied().find(|v| name(*v) == value) {
        Some(v) => v,
        None => {
            let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
            problems.push(ConfigProblem::new(
                key,
                format!(
                    "unknown value {value:?}; expected one of: {}",
                    names.join(", ")
                ),
            ));
            T::default()
        }
    }
}

fn non_empty_path(
    value: Option<String>,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<PathBuf> {
    match value {
        Some(s) if s.is_empty() => {
            problems.push(ConfigProblem::new(key, "must not be empty"));
            None
        }
        other => other.map(PathBuf::from),
    }
}

/// The URL parser's message with the URL's password (if any) replaced by `***`, so that a
/// config error never prints a secret.
fn redact_url_password(message: &str, url: &str) -> String {
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = authority.split(['/', '?']).next().unwrap_or_default();
    let password = authority
        .rsplit_once('@')
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password)
        .unwrap_or_default();
    if password.is_empty() {
        message.to_owned()
    } else {
        message.replace(password, "***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(connection: &str) -> RawPostgresSource {
        RawPostgresSource {
            connection: Some(connection.to_owned()),
            ..Default::default()
        }
    }

    fn patterns(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn star_patterns_match_within_schema_and_table_parts() {
        let p = patterns(&["public.*", "sales.order_*"]);
        assert!(table_included(&p, "public", "users"));
        assert!(table_included(&p, "sales", "order_items"));
        assert!(!table_included(&p, "sales", "customers"));
        assert!(!table_included(&p, "publicity", "x"));
        assert!(table_included(&patterns(&["*.*"]), "any", "thing"));
        assert!(table_included(&patterns(&["a*c.t"]), "abbbc", "t"));
        assert!(!table_included(&patterns(&["a*c.t"]), "abbbd", "t"));
    }

    #[test]
    fn names_are_matched_case_sensitively_as_stored() {
        let p = patterns(&["public.Orders"]);
        assert!(table_included(&p, "public", "Orders"));
        assert!(!table_included(&p, "public", "orders"));
    }

    #[test]
    fn a_pattern_without_a_dot_matches_nothing() {
        assert!(!table_included(&patterns(&["*"]), "public", "t"));
    }

    #[test]
    fn slot_and_publication_default_to_the_pipeline_name() {
        let slot = default_object_name("Inventory-EU.v2");
        assert_eq!(slot, "sluice_inventory_eu_v2");
        assert!(is_valid_slot_name(&slot));
        assert_eq!(default_object_name(&"x".repeat(100)).len(), MAX_NAME_BYTES);
    }

    #[test]
    fn slot_names_follow_postgres_rules() {
        assert!(is_valid_slot_name("sluice_1"));
        assert!(!is_valid_slot_name("Sluice"));
        assert!(!is_valid_slot_name("a-b"));
        assert!(!is_valid_slot_name(""));
        assert!(!is_valid_slot_name(&"a".repeat(64)));
    }

    #[test]
    fn every_source_problem_is_reported_at_once() {
        let r = RawPostgresSource {
            kind: Some("mysql".into()),
            slot: Some("Bad-Slot".into()),
            snapshot_mode: Some("sometimes".into()),
            tables: Some(vec!["orders".into()]),
            stream_buffer_bytes: Some(10),
            status_interval_ms: Some(5),
            reconnect_backoff_initial_ms: Some(1000),
            reconnect_backoff_max_ms: Some(10),
            ..Default::default()
        };
        let problems = validate(r, "inv", "source").unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "source.type",
                "source.connection",
                "source.slot",
                "source.snapshot_mode",
                "source.tables[0]",
                "source.stream_buffer_bytes",
                "source.status_interval_ms",
                "source.reconnect_backoff_max_ms",
            ]
        );
        assert_eq!(
            problems[3].message,
            "unknown value \"sometimes\"; expected one of: initial, never, initial_only, always, when_needed"
        );
    }

    #[test]
    fn an_empty_table_list_is_rejected() {
        let r = RawPostgresSource {
            tables: Some(vec![]),
            ..raw("postgres://u@h/db")
        };
        let problems = validate(r, "p", "source").unwrap_err();
        assert!(problems.iter().any(|p| p.key == "source.tables"));
    }

    #[test]
    fn password_and_password_file_are_exclusive() {
        let r = RawPostgresSource {
            password: Some("pw".into()),
            password_file: Some("/run/secrets/pg".into()),
            ..raw("postgres://u@h/db")
        };
        let problems = validate(r, "p", "source").unwrap_err();
        assert!(problems.iter().any(|p| p.key == "source.password_file"));
    }

    #[test]
    fn url_passwords_are_redacted_from_parser_messages() {
        let url = "postgres://app:s3cret@db:5432/x";
        let shown = redact_url_password(&format!("bad url {url:?}"), url);
        assert!(!shown.contains("s3cret"));
        assert!(shown.contains("app:***@db"));
    }

    #[test]
    fn a_password_file_is_read_with_its_trailing_newline_stripped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "hunter2\n").unwrap();
        let mut cfg = PostgresSourceConfig {
            connection: ConnectionConfig {
                host: "h".into(),
                port: 5432,
                user: "u".into(),
                dbname: "d".into(),
                password: None,
                sslmode: crate::SslMode::Disable,
                sslrootcert: None,
                application_name: "sluice".into(),
                connect_timeout: Duration::from_secs(1),
            },
            password_file: Some(path),
            slot: "s".into(),
            publication: "p".into(),
            publication_autocreate: PublicationAutocreate::Filtered,
            tables: patterns(DEFAULT_TABLES),
            snapshot_mode: SnapshotMode::Initial,
            snapshot_chunk_rows: DEFAULT_SNAPSHOT_CHUNK_ROWS,
            snapshot_max_threads: 2,
            state_dir: DEFAULT_STATE_DIR.into(),
            signal_table: None,
            incremental_chunk_rows: 1024,
            stream_buffer_bytes: 1 << 20,
            spill_dir: None,
            status_interval: Duration::from_secs(10),
            heartbeat_interval: None,
            reread_unchanged_toast: true,
            reconnect_backoff_initial: Duration::from_millis(500),
            reconnect_backoff_max: Duration::from_secs(30),
        };
        cfg.resolve_password().unwrap();
        assert_eq!(
            cfg.connection.password.as_ref().map(Secret::expose),
            Some("hunter2")
        );
        assert!(!format!("{cfg:?}").contains("hunter2"));
        cfg.password_file = Some(dir.path().join("missing"));
        let err = cfg.resolve_password().unwrap_err();
        assert!(err.contains("cannot read password_file"));
    }
}
