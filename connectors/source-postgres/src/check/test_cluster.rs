//! A private PostgreSQL cluster for this crate's unit tests: initdb into a temp dir, start on a
//! free loopback port, stop on drop. (The daemon's integration tests have their own support in
//! `tests/support/`.) As root, the server runs as the `postgres` OS user, since initdb refuses
//! root.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A running cluster; stopped (immediate shutdown) and deleted on drop.
pub struct TestCluster {
    dir: tempfile::TempDir,
    /// The loopback port it listens on.
    pub port: u16,
}

impl TestCluster {
    /// Start a cluster whose `postgresql.conf` gets `extra_conf` appended (e.g.
    /// `wal_level = replica`). Panics with the server log when it cannot start: a test
    /// without its server cannot say anything.
    pub fn start(extra_conf: &str) -> TestCluster {
        assert!(
            Path::new(PG_BIN).join("initdb").exists(),
            "PostgreSQL 15 binaries missing at {PG_BIN}: apt-get install -y postgresql"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let as_root = is_root();
        if as_root {
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path()));
        }
        let data = dir.path().join("data");
        run(pg_command(as_root, "initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]));
        let port = free_port();
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             max_replication_slots = 20\nmax_wal_senders = 20\nfsync = off\n{extra_conf}\n",
            data.display()
        );
        append(&data.join("postgresql.conf"), &conf);
        append(
            &data.join("pg_hba.conf"),
            "host replication all 127.0.0.1/32 trust\n",
        );
        let log = dir.path().join("server.log");
        let started = pg_command(as_root, "pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "start"])
            .output()
            .expect("run pg_ctl");
        if !started.status.success() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("postgres did not start:\n{text}");
        }
        TestCluster { dir, port }
    }

    /// A tokio-postgres connection string for `user` on database `postgres`.
    pub fn url(&self, user: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname=postgres",
            self.port
        )
    }

    /// Connect as `user`, driving the connection on the current runtime.
    pub async fn connect(&self, user: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(user), tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let _ = pg_command(is_root(), "pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

fn pg_command(as_root: bool, tool: &str) -> Command {
    let program = Path::new(PG_BIN).join(tool);
    if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command) {
    let out = command.output().expect("spawn");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open conf");
    file.write_all(text.as_bytes()).expect("write conf");
}

/// A port the OS just handed out; free unless someone races for it in the next instant.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}
