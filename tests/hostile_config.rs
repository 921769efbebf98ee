//! Hostile configuration and secrets, through the real binary: broken and malicious config files
//! are refused with the config exit code and a message naming the problem, never a panic; and
//! passwords given through the environment, a file or the URL never reach any output, whatever
//! fails (wrong password, unreachable database, unreachable registry), even at debug level.

use std::time::Duration;

use crate::daemon::WAIT;
use crate::harness;
use crate::support::{
    self, PasswordEncryption, SluiceProcess, ThrowawayOptions, ThrowawayPostgres, ThrowawayUser,
    DEFAULT_DATABASE, SUPERUSER,
};

/// The exit code of an unreadable or invalid config (see `src/main.rs`).
const EXIT_CONFIG: i32 = 2;

/// A config that is valid apart from what a case changes.
const VALID: &str = r#"
[pipeline]
name = "test"

[source]
connection = "postgres://sluice@127.0.0.1:1/app"

[[sink]]
name = "audit"
type = "file"
path = "/dev/null"
"#;

/// One hostile input: the config file's bytes (None: the path is a directory), extra
/// environment, and what the error must say.
struct Case {
    name: &'static str,
    file: Option<Vec<u8>>,
    env: Vec<(&'static str, String)>,
    expect: Vec<String>,
}

fn case(name: &'static str, file: impl Into<Vec<u8>>, expect: &[&str]) -> Case {
    Case {
        name,
        file: Some(file.into()),
        env: Vec::new(),
        expect: expect.iter().map(|s| s.to_string()).collect(),
    }
}

#[tokio::test]
async fn hostile_config_files_exit_with_the_config_code_naming_the_problem_never_panicking() {
    let url_secret = "pw-in-the-url-7731";
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let cases = vec![
        case(
            "broken syntax",
            "[pipeline\nname = \"x\"\n",
            &["invalid TOML", ":1:"],
        ),
        case(
            "not UTF-8",
            b"[pipeline]\nname = \"caf\xe9\"\n".to_vec(),
            &["cannot read", "UTF-8"],
        ),
        case(
            "integer overflow",
            VALID.replace(
                "name = \"test\"",
                "name = \"test\"\nmax_batch_events = 99999999999999999999999",
            ),
            &["invalid TOML"],
        ),
        case(
            "negative size",
            VALID.replace("name = \"test\"", "name = \"test\"\nmax_batch_events = -5"),
            &["pipeline.max_batch_events"],
        ),
        case(
            "deeply nested arrays",
            VALID.replace("[source]", &format!("[source]\ntables = {deep}")),
            &["invalid TOML"],
        ),
        case(
            "a megabyte name",
            VALID.replace("\"test\"", &format!("\"{}\"", "x".repeat(1 << 20))),
            &["pipeline.name"],
        ),
        case(
            "a NUL byte",
            VALID.replace("\"test\"", "\"te\0st\""),
            &["invalid TOML"],
        ),
        case(
            "a password in a malformed URL",
            VALID.replace(
                "postgres://sluice@127.0.0.1:1/app",
                &format!("postgres://sluice:{url_secret}@127.0.0.1:notaport/app"),
            ),
            &["source.connection"],
        ),
        case(
            "a sink of an unknown type",
            VALID.replace("\"file\"", "\"ftp\""),
            &["sink[0].type"],
        ),
        case(
            "an empty file",
            "",
            &["pipeline.name", "source.connection", "sink"],
        ),
        Case {
            name: "a sink index past every sink",
            file: Some(VALID.into()),
            env: vec![("SLUICE__SINK__18446744073709551616__PATH", "x".into())],
            expect: vec!["SLUICE__SINK__18446744073709551616__PATH".into()],
        },
        Case {
            name: "a directory",
            file: None,
            env: Vec::new(),
            expect: vec!["cannot read".into()],
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    for case in cases {
        let path = dir.path().join(case.name.replace(' ', "_"));
        match &case.file {
            Some(bytes) => std::fs::write(&path, bytes).unwrap(),
            None => std::fs::create_dir(&path).unwrap(),
        }
        let env: Vec<(&str, &str)> = case.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut daemon = SluiceProcess::spawn(&["run", "--config", path.to_str().unwrap()], &env);
        let status = tokio::time::timeout(Duration::from_secs(30), daemon.wait_exit(WAIT))
            .await
            .unwrap_or_else(|_| panic!("{}: the daemon did not exit", case.name));
        let output = daemon.stderr() + &daemon.stdout();
        let shown = &output[..output.len().min(2000)];
        assert_eq!(status.code(), Some(EXIT_CONFIG), "{}: {shown}", case.name);
        assert!(!output.contains("panicked"), "{}: {shown}", case.name);
        assert!(!output.contains(url_secret), "{}: secret shown", case.name);
        for expected in &case.expect {
            assert!(
                output.contains(expected.as_str()),
                "{}: no {expected:?} in {shown}",
                case.name
            );
        }
    }
}

/// Every secret of the secrets test: none may appear in any output.
const DATABASE_PASSWORD: &str = "db-s3cret-Zq81";
const WRONG_PASSWORD: &str = "wrong-s3cret-Kp27";
const REGISTRY_PASSWORD: &str = "registry-s3cret-Wm90";

/// Run `sluice run` with `toml` and `env` at debug level until `until` shows in its output (or
/// it exits), stop it, and return everything it printed, checked for every secret.
async fn output_of(toml: &str, env: &[(&str, &str)], until: &str) -> String {
    let config = support::write_config(&format!("{toml}\n[log]\nlevel = \"debug\"\n"));
    let mut daemon =
        SluiceProcess::spawn(&["run", "--config", config.path().to_str().unwrap()], env);
    // Longer than the daemon tests' wait: the registry step retries with backoff, and under a
    // full test run's load its message took over 120 s once.
    let logged = WAIT * 3;
    support::wait_until(&format!("the daemon logs {until:?}"), logged, || async {
        daemon.stderr().contains(until)
    })
    .await;
    daemon.terminate();
    daemon.wait_exit(WAIT).await;
    let output = daemon.stderr() + &daemon.stdout();
    for secret in [DATABASE_PASSWORD, WRONG_PASSWORD, REGISTRY_PASSWORD] {
        assert!(
            !output.contains(secret),
            "{secret} reached the output:\n{output}"
        );
    }
    assert!(!output.contains("panicked"), "{output}");
    output
}

#[tokio::test]
async fn secrets_from_the_environment_a_file_or_the_url_never_reach_the_output_whatever_fails() {
    let options = ThrowawayOptions {
        extra_hba: crate::auth::password_hba("app_user", "scram-sha-256"),
        users: vec![ThrowawayUser::new("app_user")
            .with_password(DATABASE_PASSWORD, PasswordEncryption::Scram)
            .replication()
            .superuser()],
        ..ThrowawayOptions::default()
    };
    let pg = ThrowawayPostgres::start(options).await.unwrap();
    pg.execute("CREATE TABLE items (id int PRIMARY KEY)")
        .await
        .unwrap();
    let superuser_url = pg.url(SUPERUSER, DEFAULT_DATABASE);
    let app_url = superuser_url.replace("postgres://postgres@", "postgres://app_user@");
    let base = harness::config_toml(&pg, &["public.items"], "");
    // A registry with credentials that nobody serves: every encode attempt fails and retries.
    let closed = support::free_port();
    let registry =
        format!("\n[registry]\nurl = \"http://127.0.0.1:{closed}\"\nusername = \"reg\"\n");

    // A wrong password from the environment: authentication fails, the daemon stops.
    let toml = base.replace(&superuser_url, &app_url);
    let output = output_of(
        &toml,
        &[("SLUICE__SOURCE__PASSWORD", WRONG_PASSWORD)],
        "pipeline failed",
    )
    .await;
    assert!(
        output.contains("28P01") || output.contains("password"),
        "{output}"
    );

    // The right password from a file, the registry's from the environment; the registry is
    // unreachable when the first change is encoded.
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("pgpass");
    std::fs::write(&password_file, format!("{DATABASE_PASSWORD}\n")).unwrap();
    let toml = base.replace(&superuser_url, &app_url).replace(
        "[source]\n",
        &format!(
            "[source]\npassword_file = {:?}\n",
            password_file.display().to_string()
        ),
    ) + &registry;
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    let writer = async {
        harness::wait_streaming(&pg).await;
        client
            .batch_execute("INSERT INTO items VALUES (1)")
            .await
            .unwrap();
    };
    let registry_address = format!("127.0.0.1:{closed}");
    let (output, ()) = tokio::join!(
        output_of(
            &toml,
            &[("SLUICE__REGISTRY__PASSWORD", REGISTRY_PASSWORD)],
            &registry_address,
        ),
        writer
    );
    assert!(output.contains("registry"), "{output}");
    pg.execute(&format!(
        "SELECT pg_drop_replication_slot('{}')",
        harness::SLOT
    ))
    .await
    .unwrap();

    // The password inside the URL, the database unreachable: the daemon retries until stopped.
    let unreachable = app_url
        .replace("app_user@", &format!("app_user:{DATABASE_PASSWORD}@"))
        .replace(&format!(":{}/", pg.port()), &format!(":{closed}/"));
    let toml = base.replace(&superuser_url, &unreachable);
    let output = output_of(&toml, &[], "reconnecting").await;
    assert!(output.contains("connection"), "{output}");
}
