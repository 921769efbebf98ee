//! A throwaway PostgreSQL cluster: initdb in a temporary directory, a free loopback port,
//! logical replication enabled, removed on drop. It serves `sluice demo`, the integration tests
//! and the benchmark, so that none of them depends on a server that happens to be running.
//!
//! PostgreSQL refuses to run as root. When this process is root, every PostgreSQL binary runs
//! as the `postgres` OS user (`runuser -u postgres --`) on a directory handed to that user.

use std::net::TcpListener;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;

/// The superuser that initdb creates (`-U postgres`); trust authentication on loopback.
pub const SUPERUSER: &str = "postgres";

/// The database every cluster has from the start.
pub const DEFAULT_DATABASE: &str = "postgres";

/// The OS user PostgreSQL runs as when this process is root.
const RUN_AS_WHEN_ROOT: &str = "postgres";

/// Port collisions (another process took the port between probe and bind) are retried this
/// many times with a fresh port before giving up.
const START_ATTEMPTS: usize = 5;

/// `pg_ctl -w` already waits for the postmaster; the connection poll afterwards covers the
/// short window where the socket accepts but authentication is not ready yet. Generous
/// because CI machines have two cores shared with the build.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const READY_POLL: Duration = Duration::from_millis(50);

/// Settings every throwaway cluster gets: logical decoding on, durability off (the data is
/// thrown away), no logging collector so the log stays in one file we can show on failure.
const BASE_SETTINGS: &[&str] = &[
    "listen_addresses = '127.0.0.1'",
    "wal_level = logical",
    "max_replication_slots = 20",
    "max_wal_senders = 20",
    "fsync = off",
    "synchronous_commit = off",
    "logging_collector = off",
];

/// Trust on loopback for everything not matched by an earlier (extra) line.
const BASE_HBA: &[&str] = &[
    "host replication all 127.0.0.1/32 trust",
    "host all all 127.0.0.1/32 trust",
];

/// What can go wrong while creating, starting or querying a throwaway cluster.
#[derive(Debug, thiserror::Error)]
pub enum ThrowawayError {
    /// No PostgreSQL server binaries were found.
    #[error(
        "postgresql binaries not found: {0} (install the postgresql package or set SLUICE_PG_BIN)"
    )]
    BinariesNotFound(String),
    /// A file system operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A PostgreSQL program exited unsuccessfully.
    #[error("{command} failed ({status}): {output}")]
    CommandFailed {
        /// The program and its action (`pg_ctl start`).
        command: String,
        /// Its exit status.
        status: String,
        /// Its stdout and stderr.
        output: String,
    },
    /// The server did not come up; `log` is the server log.
    #[error("postgresql did not start: {reason}\n--- server log ---\n{log}")]
    StartFailed {
        /// Why the start is considered failed.
        reason: String,
        /// The server log at that moment.
        log: String,
    },
    /// A SQL statement against the cluster failed.
    #[error("sql against the throwaway cluster failed: {0}")]
    Sql(#[from] tokio_postgres::Error),
}

type Result<T> = std::result::Result<T, ThrowawayError>;

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ThrowawayError {
    let what = what.into();
    move |source| ThrowawayError::Io { what, source }
}

/// How a user's password is stored, which decides the auth methods that accept it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PasswordEncryption {
    /// `scram-sha-256` (PostgreSQL's default).
    #[default]
    Scram,
    /// `md5`: needed for `md5` pg_hba lines to authenticate with MD5 rather than SCRAM.
    Md5,
}

impl PasswordEncryption {
    fn as_str(self) -> &'static str {
        match self {
            PasswordEncryption::Scram => "scram-sha-256",
            PasswordEncryption::Md5 => "md5",
        }
    }
}

/// A login role created once the cluster is up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThrowawayUser {
    /// Role name.
    pub name: String,
    /// Password, if any (needed for md5/scram pg_hba lines).
    pub password: Option<String>,
    /// How the password is stored.
    pub encryption: PasswordEncryption,
    /// `REPLICATION` attribute: may open replication connections.
    pub replication: bool,
    /// `SUPERUSER` attribute.
    pub superuser: bool,
}

impl ThrowawayUser {
    /// A login role without password or special attributes.
    pub fn new(name: impl Into<String>) -> Self {
        ThrowawayUser {
            name: name.into(),
            password: None,
            encryption: PasswordEncryption::default(),
            replication: false,
            superuser: false,
        }
    }

    /// Give the role a password stored with `encryption`.
    pub fn with_password(
        mut self,
        password: impl Into<String>,
        encryption: PasswordEncryption,
    ) -> Self {
        self.password = Some(password.into());
        self.encryption = encryption;
        self
    }

    /// Grant `REPLICATION`.
    pub fn replication(mut self) -> Self {
        self.replication = true;
        self
    }

    /// Grant `SUPERUSER`.
    pub fn superuser(mut self) -> Self {
        self.superuser = true;
        self
    }

    fn create_sql(&self) -> String {
        let mut sql = format!(
            "SET password_encryption = '{}'; CREATE ROLE {} LOGIN",
            self.encryption.as_str(),
            quote_ident(&self.name)
        );
        if self.replication {
            sql.push_str(" REPLICATION");
        }
        if self.superuser {
            sql.push_str(" SUPERUSER");
        }
        if let Some(password) = &self.password {
            sql.push_str(" PASSWORD ");
            sql.push_str(&quote_literal(password));
        }
        sql.push_str("; RESET password_encryption;");
        sql
    }
}

/// What to add to the standard throwaway cluster.
#[derive(Clone, Debug, Default)]
pub struct ThrowawayOptions {
    /// Extra `postgresql.conf` lines, appended after the standard settings (so they win).
    pub extra_conf: Vec<String>,
    /// Extra `pg_hba.conf` lines, placed before the standard trust lines (so they win).
    pub extra_hba: Vec<String>,
    /// Roles to create once the server is up.
    pub users: Vec<ThrowawayUser>,
}

/// A running private PostgreSQL cluster; stopped and deleted on drop.
pub struct ThrowawayPostgres {
    bin_dir: PathBuf,
    /// Root of everything: `data/`, `log`, the unix socket. Deleted on drop.
    dir: tempfile::TempDir,
    port: u16,
    /// Some(user) when PostgreSQL binaries run through `runuser -u user --`.
    run_as: Option<&'static str>,
    running: bool,
}

impl ThrowawayPostgres {
    /// Create, configure and start a cluster, then create `options.users`.
    pub async fn start(options: ThrowawayOptions) -> Result<Self> {
        let bin_dir = find_bin_dir()?;
        let run_as = if is_root() {
            Some(RUN_AS_WHEN_ROOT)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("sluice-pg-")
            .tempdir()
            .map_err(io_error("creating the cluster directory"))?;
        let mut pg = ThrowawayPostgres {
            bin_dir,
            dir,
            port: 0,
            run_as,
            running: false,
        };
        pg.hand_to_run_as_user(pg.dir.path())?;
        pg.initdb().await?;
        pg.write_config(&options)?;
        pg.start_on_free_port().await?;
        for user in &options.users {
            pg.execute(&user.create_sql()).await?;
        }
        Ok(pg)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for `user` on database `db` (trust or password auth per pg_hba).
    pub fn url(&self, user: &str, db: &str) -> String {
        format!(
            "postgres://{user}@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// Path of a PostgreSQL program (`pg_recvlogical`, `psql`, ...) of this cluster's version.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// The cluster's data directory (`PGDATA`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    /// A superuser connection to `db`; the connection task runs on the current tokio runtime.
    pub async fn client(&self, db: &str) -> Result<tokio_postgres::Client> {
        let config = format!(
            "host=127.0.0.1 port={} user={SUPERUSER} dbname={db}",
            self.port
        );
        let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            // The connection ends when the client is dropped or the server goes away (outage
            // tests); either is expected, so the error is only traced.
            if let Err(error) = connection.await {
                tracing::debug!(%error, "throwaway postgres connection ended");
            }
        });
        Ok(client)
    }

    /// Run one or more statements on the default database as the superuser.
    pub async fn execute(&self, sql: &str) -> Result<()> {
        self.execute_in(DEFAULT_DATABASE, sql).await
    }

    /// Run one or more statements on `db` as the superuser.
    pub async fn execute_in(&self, db: &str, sql: &str) -> Result<()> {
        self.client(db).await?.batch_execute(sql).await?;
        Ok(())
    }

    /// Create database `name`.
    pub async fn create_database(&self, name: &str) -> Result<()> {
        self.execute(&format!("CREATE DATABASE {}", quote_ident(name)))
            .await
    }

    /// Restart the server (fast shutdown: existing connections are cut, as in a failover or
    /// maintenance restart) and wait until it accepts connections again. The shutdown waits
    /// until replication clients confirmed all WAL sent to them, which behind a backlog takes
    /// as long as they take to catch up: `pg_ctl` waits up to 10 minutes, not its 60 s.
    pub async fn restart(&mut self) -> Result<()> {
        let data = self.data_dir();
        let log = self.log_path();
        self.run_pg_ctl(&[
            "restart".as_ref(),
            "-D".as_ref(),
            data.as_os_str(),
            "-l".as_ref(),
            log.as_os_str(),
            "-m".as_ref(),
            "fast".as_ref(),
            "-w".as_ref(),
            "-t".as_ref(),
            "600".as_ref(),
        ])
        .await?;
        self.running = true;
        self.wait_until_ready().await
    }

    /// Stop the server (fast shutdown) and leave it down until [`Self::start_again`].
    pub async fn stop_fast(&mut self) -> Result<()> {
        self.pg_ctl_stop_fast("-w").await?;
        self.running = false;
        Ok(())
    }

    /// Ask for a fast shutdown without waiting for it: the server may stay up a while (its
    /// replication clients must first confirm what they were sent). [`Self::is_stopped`] says
    /// when it is down; [`Self::start_again`] starts it after.
    pub async fn request_fast_stop(&self) -> Result<()> {
        self.pg_ctl_stop_fast("--no-wait").await
    }

    /// Crash the server: an immediate shutdown, where every server process quits at once
    /// without a checkpoint and connections drop mid-transaction. It stays down until
    /// [`Self::start_again`], which then runs crash recovery.
    pub async fn crash(&mut self) -> Result<()> {
        self.pg_ctl_stop("immediate", "-w").await?;
        self.running = false;
        Ok(())
    }

    async fn pg_ctl_stop_fast(&self, wait: &str) -> Result<()> {
        self.pg_ctl_stop("fast", wait).await
    }

    async fn pg_ctl_stop(&self, mode: &str, wait: &str) -> Result<()> {
        let data = self.data_dir();
        self.run_pg_ctl(&[
            "stop".as_ref(),
            "-D".as_ref(),
            data.as_os_str(),
            "-m".as_ref(),
            mode.as_ref(),
            wait.as_ref(),
        ])
        .await
    }

    /// True once the server has shut down (its `postmaster.pid` is gone).
    pub fn is_stopped(&self) -> bool {
        !self.data_dir().join("postmaster.pid").exists()
    }

    /// Start the server again on the same port after [`Self::stop_fast`] or [`Self::crash`].
    pub async fn start_again(&mut self) -> Result<()> {
        self.pg_ctl_start().await?;
        self.wait_until_ready().await
    }

    /// Stop the cluster now (immediate shutdown) and delete its directory.
    pub fn stop(mut self) {
        self.stop_immediately();
    }

    // ------------------------------------------------------------------ setup

    async fn initdb(&self) -> Result<()> {
        let data = self.data_dir();
        let mut cmd = self.command("initdb");
        cmd.arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync"]);
        run(cmd, "initdb").await
    }

    /// Append the standard settings and `options` to the generated files. The port lives in
    /// its own included file so a collision retry only rewrites that file.
    fn write_config(&self, options: &ThrowawayOptions) -> Result<()> {
        let data = self.data_dir();
        let socket_dir = self.dir.path().display().to_string();
        let mut conf = String::from("\n# throwaway cluster settings\n");
        for line in BASE_SETTINGS {
            conf.push_str(line);
            conf.push('\n');
        }
        conf.push_str(&format!(
            "unix_socket_directories = {}\n",
            quote_literal(&socket_dir)
        ));
        conf.push_str("include 'port.conf'\n");
        for line in &options.extra_conf {
            conf.push_str(line);
            conf.push('\n');
        }
        self.append(&data.join("postgresql.conf"), &conf)?;

        // initdb's own lines come last so that ours (extra first, then trust) are matched first.
        let hba_path = data.join("pg_hba.conf");
        let generated =
            std::fs::read_to_string(&hba_path).map_err(io_error("reading pg_hba.conf"))?;
        let mut hba = String::new();
        for line in options
            .extra_hba
            .iter()
            .map(String::as_str)
            .chain(BASE_HBA.iter().copied())
        {
            hba.push_str(line);
            hba.push('\n');
        }
        hba.push_str(&generated);
        self.write_owned(&hba_path, &hba)
    }

    async fn start_on_free_port(&mut self) -> Result<()> {
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            self.port = free_port()?;
            self.write_owned(
                &self.data_dir().join("port.conf"),
                &format!("port = {}\n", self.port),
            )?;
            match self.pg_ctl_start().await {
                Ok(()) => return self.wait_until_ready().await,
                Err(error) if self.log_says_port_taken() => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| ThrowawayError::StartFailed {
            reason: "no free port".into(),
            log: self.log_text(),
        }))
    }

    async fn pg_ctl_start(&mut self) -> Result<()> {
        let data = self.data_dir();
        let log = self.log_path();
        let result = self
            .run_pg_ctl(&[
                "start".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
            ])
            .await;
        match result {
            Ok(()) => {
                self.running = true;
                Ok(())
            }
            Err(error) => {
                // A start that timed out may have left a postmaster behind: stop it on drop.
                self.running = self.data_dir().join("postmaster.pid").exists();
                Err(ThrowawayError::StartFailed {
                    reason: error.to_string(),
                    log: self.log_text(),
                })
            }
        }
    }

    /// Poll until a superuser connection succeeds, bounded by [`READY_TIMEOUT`].
    async fn wait_until_ready(&self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.probe().await {
                Ok(()) => return Ok(()),
                Err(error) if Instant::now() >= deadline => return Err(self.not_ready(error)),
                Err(_) => tokio::time::sleep(READY_POLL).await,
            }
        }
    }

    async fn probe(&self) -> Result<()> {
        self.client(DEFAULT_DATABASE)
            .await?
            .simple_query("SELECT 1")
            .await?;
        Ok(())
    }

    fn not_ready(&self, error: ThrowawayError) -> ThrowawayError {
        ThrowawayError::StartFailed {
            reason: format!("no connection within {READY_TIMEOUT:?}: {error}"),
            log: self.log_text(),
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    fn log_says_port_taken(&self) -> bool {
        let log = self.log_text();
        log.contains("Address already in use")
            || log.contains("could not create any TCP/IP sockets")
    }

    // ------------------------------------------------------------------ processes and files

    /// A command for PostgreSQL program `name`, run as the right OS user, in the cluster
    /// directory (so a root working directory the postgres user cannot read does no harm).
    fn command(&self, name: &str) -> Command {
        let program = self.bin(name);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        cmd.current_dir(self.dir.path()).stdin(Stdio::null());
        cmd
    }

    async fn run_pg_ctl(&self, args: &[&std::ffi::OsStr]) -> Result<()> {
        let mut cmd = self.command("pg_ctl");
        cmd.args(args);
        let what = format!(
            "pg_ctl {}",
            args.first().and_then(|a| a.to_str()).unwrap_or("")
        );
        run(cmd, &what).await
    }

    /// Immediate shutdown, synchronous: used from `Drop`, where no runtime may be available.
    fn stop_immediately(&mut self) {
        if !self.running {
            return;
        }
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut cmd = std::process::Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(self.bin("pg_ctl"));
                cmd
            }
            None => std::process::Command::new(self.bin("pg_ctl")),
        };
        let status = cmd
            .arg("stop")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            tracing::warn!(dir = %self.dir.path().display(), "could not stop the throwaway postgres cleanly");
        }
        self.running = false;
    }

    fn append(&self, path: &Path, text: &str) -> Result<()> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io_error(format!("opening {}", path.display())))?;
        file.write_all(text.as_bytes())
            .map_err(io_error(format!("writing {}", path.display())))
    }

    /// Write a file the server will read, owned by the server's OS user.
    fn write_owned(&self, path: &Path, text: &str) -> Result<()> {
        std::fs::write(path, text).map_err(io_error(format!("writing {}", path.display())))?;
        self.hand_to_run_as_user(path)
    }

    fn hand_to_run_as_user(&self, path: &Path) -> Result<()> {
        let Some(user) = self.run_as else {
            return Ok(());
        };
        let (uid, gid) = os_user_ids(user)?;
        chown(path, Some(uid), Some(gid))
            .map_err(io_error(format!("chown {} to {user}", path.display())))
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        self.stop_immediately();
        // The TempDir field then removes the directory.
    }
}

/// Run a command to completion; a failure carries its stdout and stderr.
async fn run(mut cmd: Command, what: &str) -> Result<()> {
    let output = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(io_error(format!("running {what}")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(ThrowawayError::CommandFailed {
        command: what.to_string(),
        status: output.status.to_string(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

/// `SLUICE_PG_BIN`, else `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`;
/// whichever is chosen must contain `initdb`.
fn find_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("SLUICE_PG_BIN") {
        let dir = PathBuf::from(dir);
        if dir.join("initdb").is_file() {
            return Ok(dir);
        }
        return Err(ThrowawayError::BinariesNotFound(format!(
            "no initdb in SLUICE_PG_BIN={}",
            dir.display()
        )));
    }
    if let Ok(output) = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if output.status.success() && dir.join("initdb").is_file() {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        ThrowawayError::BinariesNotFound("no pg_config and no /usr/lib/postgresql/*/bin".into())
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Numeric uid and gid of an OS user, via `id` (no NSS bindings needed).
fn os_user_ids(user: &str) -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let output = std::process::Command::new("id")
            .args([flag, user])
            .output()
            .map_err(io_error("running id"))?;
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .map_err(|_| {
                ThrowawayError::BinariesNotFound(format!(
                    "running as root needs an OS user {user:?} to run postgresql as: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                ))
            })
    };
    Ok((id("-u")?, id("-g")?))
}

/// A port nobody listens on right now (the OS picks it). Another process may take it before
/// the server binds; `start_on_free_port` retries in that case.
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io_error("finding a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io_error("finding a free port"))?
        .port();
    Ok(port)
}

/// `"name"` with embedded quotes doubled.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with embedded quotes doubled (standard_conforming_strings is on).
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cluster_starts_answers_queries_survives_a_restart_and_is_removed_on_drop() {
        let mut pg =
            ThrowawayPostgres::start(ThrowawayOptions {
                users: vec![
                    ThrowawayUser::new("app").with_password("s3cr'et", PasswordEncryption::Md5)
                ],
                ..Default::default()
            })
            .await
            .expect("start");
        let client = pg.client(DEFAULT_DATABASE).await.expect("client");
        let row = client
            .query_one("SELECT current_setting('wal_level')", &[])
            .await
            .expect("query");
        assert_eq!(row.get::<_, String>(0), "logical");
        let row = client
            .query_one(
                "SELECT rolpassword LIKE 'md5%' FROM pg_authid WHERE rolname = 'app'",
                &[],
            )
            .await
            .expect("role");
        assert!(row.get::<_, bool>(0), "the md5 user has an md5 password");

        pg.create_database("shop").await.expect("create database");
        pg.execute_in(
            "shop",
            "CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1)",
        )
        .await
        .expect("execute");

        pg.restart().await.expect("restart");
        let client = pg.client("shop").await.expect("client after restart");
        let row = client
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .expect("query after restart");
        assert_eq!(row.get::<_, i64>(0), 1);

        pg.stop_fast().await.expect("stop");
        assert!(
            pg.client("shop").await.is_err(),
            "a stopped cluster refuses connections"
        );
        pg.start_again().await.expect("start again");
        pg.client("shop").await.expect("client after start again");

        let dir = pg.data_dir();
        assert!(dir.join("PG_VERSION").is_file());
        drop(pg);
        assert!(!dir.exists(), "drop removes the cluster directory");
    }

    #[tokio::test]
    async fn extra_hba_lines_take_precedence_over_the_trust_lines() {
        let pg = ThrowawayPostgres::start(ThrowawayOptions {
            extra_conf: vec!["max_connections = 30".into()],
            extra_hba: vec!["host all locked 127.0.0.1/32 scram-sha-256".into()],
            users: vec![
                ThrowawayUser::new("locked").with_password("right", PasswordEncryption::Scram)
            ],
        })
        .await
        .expect("start");
        let url = pg.url("locked", DEFAULT_DATABASE);
        let denied = tokio_postgres::connect(&url, tokio_postgres::NoTls).await;
        assert!(denied.is_err(), "without a password the scram line refuses");
        let with_password = url.replace("locked@", "locked:right@");
        let (client, connection) = tokio_postgres::connect(&with_password, tokio_postgres::NoTls)
            .await
            .expect("password accepted");
        tokio::spawn(connection);
        let row = client
            .query_one("SHOW max_connections", &[])
            .await
            .expect("show");
        assert_eq!(row.get::<_, String>(0), "30");
    }

    #[tokio::test]
    async fn a_failed_start_reports_the_server_log() {
        let error = ThrowawayPostgres::start(ThrowawayOptions {
            extra_conf: vec!["no_such_setting_anywhere = 1".into()],
            ..Default::default()
        })
        .await
        .err()
        .expect("an unknown setting stops the server from starting");
        let message = error.to_string();
        assert!(
            matches!(error, ThrowawayError::StartFailed { .. }),
            "{message}"
        );
        assert!(
            message.contains("no_such_setting_anywhere"),
            "the log is in the error: {message}"
        );
    }

    #[test]
    fn identifiers_and_literals_are_quoted_for_sql() {
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        let sql = ThrowawayUser::new("r")
            .replication()
            .with_password("p", PasswordEncryption::Md5)
            .create_sql();
        assert!(sql.contains(
            "SET password_encryption = 'md5'; CREATE ROLE \"r\" LOGIN REPLICATION PASSWORD 'p'"
        ));
    }
}
