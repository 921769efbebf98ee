//! Authentication and TLS against a real server: SCRAM-SHA-256 and MD5 password users, a wrong
//! password (a clear error that never shows the password), and TLS with `require` and
//! `verify-full`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sluice::config::Config;

use crate::harness;
use crate::support::{
    PasswordEncryption, ThrowawayOptions, ThrowawayPostgres, ThrowawayUser, DEFAULT_DATABASE,
};

const PASSWORD: &str = "s3cret-pässword";

fn user(name: &str, encryption: PasswordEncryption) -> ThrowawayUser {
    ThrowawayUser::new(name)
        .with_password(PASSWORD, encryption)
        .replication()
        .superuser()
}

pub(crate) fn password_hba(user: &str, method: &str) -> Vec<String> {
    vec![
        format!("host all {user} 127.0.0.1/32 {method}"),
        format!("host replication {user} 127.0.0.1/32 {method}"),
    ]
}

/// A test config connecting as `user`, its password given through the environment.
fn config_as(pg: &ThrowawayPostgres, user: &str, query: &str, password: &str) -> Config {
    config_with(pg, user, query, password, "")
}

/// [`config_as`] with extra `[source]` lines.
fn config_with(
    pg: &ThrowawayPostgres,
    user: &str,
    query: &str,
    password: &str,
    extra_source: &str,
) -> Config {
    let url = format!(
        "postgres://{user}@127.0.0.1:{}/{DEFAULT_DATABASE}?{query}",
        pg.port()
    );
    let text = toml_as(pg, &url, extra_source);
    let env = vec![("SLUICE__SOURCE__PASSWORD".to_string(), password.to_string())];
    Config::from_toml_str(&text, env).unwrap_or_else(|p| panic!("{p}"))
}

/// Start a pipeline, write a row, and check it arrives.
async fn streams_a_row(pg: &ThrowawayPostgres, config: Config, id: i32) {
    let (pipeline, handle) = harness::start(config).await;
    harness::wait_streaming(pg).await;
    pg.execute(&format!("INSERT INTO items VALUES ({id})"))
        .await
        .unwrap();
    let events = harness::wait_events(&handle, 1).await;
    assert_eq!(harness::id_of(&events[0]), Some(i64::from(id)));
    pipeline.shutdown().await.unwrap();
    pg.execute(&format!(
        "SELECT pg_drop_replication_slot('{}')",
        harness::SLOT
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn scram_and_md5_password_users_stream_changes() {
    let mut hba = password_hba("scram_user", "scram-sha-256");
    hba.extend(password_hba("md5_user", "md5"));
    let options = ThrowawayOptions {
        extra_hba: hba,
        users: vec![
            user("scram_user", PasswordEncryption::Scram),
            user("md5_user", PasswordEncryption::Md5),
        ],
        ..ThrowawayOptions::default()
    };
    let pg = ThrowawayPostgres::start(options).await.unwrap();
    pg.execute("CREATE TABLE items (id int PRIMARY KEY)")
        .await
        .unwrap();
    streams_a_row(
        &pg,
        config_as(&pg, "scram_user", "sslmode=disable", PASSWORD),
        1,
    )
    .await;
    streams_a_row(
        &pg,
        config_as(&pg, "md5_user", "sslmode=disable", PASSWORD),
        2,
    )
    .await;
}

#[tokio::test]
async fn a_wrong_password_stops_the_pipeline_without_showing_the_password() {
    let options = ThrowawayOptions {
        extra_hba: password_hba("scram_user", "scram-sha-256"),
        users: vec![user("scram_user", PasswordEncryption::Scram)],
        ..ThrowawayOptions::default()
    };
    let pg = ThrowawayPostgres::start(options).await.unwrap();
    pg.execute("CREATE TABLE items (id int PRIMARY KEY)")
        .await
        .unwrap();
    let wrong = "not-the-password-42";
    let (pipeline, _handle) =
        harness::start(config_as(&pg, "scram_user", "sslmode=disable", wrong)).await;
    let result = tokio::time::timeout(Duration::from_secs(30), pipeline.wait())
        .await
        .expect("the pipeline stops");
    let error = format!("{:#}", result.expect_err("authentication fails"));
    assert!(
        error.contains("28P01") || error.contains("password"),
        "{error}"
    );
    assert!(!error.contains(wrong), "the password leaked into: {error}");
}

/// A self-signed certificate for 127.0.0.1, readable by the server's OS user.
pub(crate) fn make_certificate(dir: &Path) {
    crate::support::tls::make_self_signed(
        &dir.join("server.key"),
        &dir.join("server.crt"),
        "/CN=127.0.0.1",
        &["-addext", "subjectAltName=IP:127.0.0.1"],
    );
    // The server refuses a key others can read; as root the server runs as `postgres`.
    let chown = |path: &Path| {
        if unsafe { libc::geteuid() } == 0 {
            let ok = Command::new("chown")
                .arg("postgres")
                .arg(path)
                .status()
                .expect("chown")
                .success();
            assert!(ok, "chown {}", path.display());
        }
    };
    chown(dir);
    for file in ["server.key", "server.crt"] {
        chown(&dir.join(file));
    }
    std::fs::set_permissions(
        dir.join("server.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn tls_require_and_verify_full_stream_changes() {
    let certs = tempfile::tempdir().unwrap();
    make_certificate(certs.path());
    let options = ThrowawayOptions {
        extra_conf: vec![
            "ssl = on".into(),
            format!(
                "ssl_cert_file = '{}'",
                certs.path().join("server.crt").display()
            ),
            format!(
                "ssl_key_file = '{}'",
                certs.path().join("server.key").display()
            ),
        ],
        // Password users must come over TLS: `hostssl` refuses plain connections.
        extra_hba: vec![
            "hostssl all tls_user 127.0.0.1/32 scram-sha-256".into(),
            "hostssl replication tls_user 127.0.0.1/32 scram-sha-256".into(),
            "host all tls_user 127.0.0.1/32 reject".into(),
            "host replication tls_user 127.0.0.1/32 reject".into(),
        ],
        users: vec![user("tls_user", PasswordEncryption::Scram)],
    };
    let pg = ThrowawayPostgres::start(options).await.unwrap();
    pg.execute("CREATE TABLE items (id int PRIMARY KEY)")
        .await
        .unwrap();
    streams_a_row(
        &pg,
        config_as(&pg, "tls_user", "sslmode=require", PASSWORD),
        1,
    )
    .await;
    let root = certs.path().join("server.crt");
    let verify = format!("sslmode=verify-full&sslrootcert={}", root.display());
    streams_a_row(&pg, config_as(&pg, "tls_user", &verify, PASSWORD), 2).await;
    streams_a_row(
        &pg,
        config_as(&pg, "tls_user", "sslmode=prefer", PASSWORD),
        3,
    )
    .await;
}

/// The harness's TOML for `public.items` connecting to `url`; `extra_source` may set its own
/// `snapshot_mode`.
fn toml_as(pg: &ThrowawayPostgres, url: &str, extra_source: &str) -> String {
    let mut text = harness::config_toml(pg, &["public.items"], extra_source)
        .replace(&pg.url(crate::support::SUPERUSER, DEFAULT_DATABASE), url);
    if extra_source.contains("snapshot_mode") {
        text = text.replacen("snapshot_mode = \"never\"\n", "", 1);
    }
    text
}

/// `sluice check` as `user` (password from the environment): exit code and report.
async fn check_as(pg: &ThrowawayPostgres, user: &str, extra_source: &str) -> (Option<i32>, String) {
    let url = format!(
        "postgres://{user}@127.0.0.1:{}/{DEFAULT_DATABASE}?sslmode=disable",
        pg.port()
    );
    let config = crate::support::write_config(&toml_as(pg, &url, extra_source));
    let mut check = crate::support::SluiceProcess::spawn(
        &["check", "--config", config.path().to_str().unwrap()],
        &[("SLUICE__SOURCE__PASSWORD", PASSWORD)],
    );
    let status = check.wait_exit(Duration::from_secs(60)).await;
    (status.code(), check.stdout() + &check.stderr())
}

/// The README's "Permissions" grants, exactly: a REPLICATION LOGIN role that is not a
/// superuser, SELECT on the captured table, and a publication created by the table's owner.
#[tokio::test]
async fn a_replication_role_with_only_the_documented_grants_snapshots_and_streams() {
    let role = ThrowawayUser::new("sluice_cdc")
        .with_password(PASSWORD, PasswordEncryption::Scram)
        .replication();
    let options = ThrowawayOptions {
        extra_hba: password_hba("sluice_cdc", "scram-sha-256"),
        users: vec![role],
        ..ThrowawayOptions::default()
    };
    let pg = ThrowawayPostgres::start(options).await.unwrap();
    pg.execute(&format!(
        "CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1);
         CREATE PUBLICATION {} FOR TABLE items;",
        harness::SLOT
    ))
    .await
    .unwrap();
    let extra = "snapshot_mode = \"initial\"\npublication_autocreate = \"disabled\"";
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "{extra}\nstate_dir = {:?}",
        dir.path().display().to_string()
    );

    // Without SELECT, check names the grant to run.
    let (code, report) = check_as(&pg, "sluice_cdc", &extra).await;
    assert_eq!(code, Some(3), "{report}");
    assert!(
        report.contains("GRANT SELECT ON public.items TO sluice_cdc;"),
        "{report}"
    );

    pg.execute("GRANT SELECT ON public.items TO sluice_cdc")
        .await
        .unwrap();
    let (code, report) = check_as(&pg, "sluice_cdc", &extra).await;
    assert_eq!(code, Some(0), "{report}");
    assert!(
        report.contains("role sluice_cdc has REPLICATION"),
        "{report}"
    );

    let config = config_with(&pg, "sluice_cdc", "sslmode=disable", PASSWORD, &extra);
    let (pipeline, handle) = harness::start(config).await;
    harness::wait_streaming(&pg).await;
    pg.execute("INSERT INTO items VALUES (2)").await.unwrap();
    let events = harness::wait_events(&handle, 2).await;
    let ops: Vec<(&str, Option<i64>)> = events
        .iter()
        .map(|e| (e.op.as_str(), harness::id_of(e)))
        .collect();
    assert_eq!(ops, [("r", Some(1)), ("c", Some(2))]);
    pipeline.shutdown().await.unwrap();
}
