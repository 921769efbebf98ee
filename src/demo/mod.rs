//! `sluice demo`: the pipeline of docker-compose.yml on local programs, without Docker. It
//! starts a throwaway PostgreSQL with the compose demo's sample schema (docker/init.sql),
//! snapshots it, runs a bounded load generator (docker/loadgen.sql), and delivers every change
//! through the embedded schema registry to the JSON-lines output on stdout and, when this build
//! has the connector and its server program is installed, to Kafka (tansu), a search server
//! (osmem-server) and a warehouse (a second throwaway PostgreSQL). It waits until everything is
//! confirmed, checks what the targets hold, prints a summary to stderr, and removes everything.

mod local;
mod targets;

use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::embedded::{free_port, ThrowawayOptions, ThrowawayPostgres, SUPERUSER};
use crate::runtime;
use targets::Targets;

/// The sample schema and its first rows, shared with docker-compose.yml.
const SAMPLE_SCHEMA: &str = include_str!("../../docker/init.sql");
/// One round of the load generator, shared with docker-compose.yml's `loadgen` service.
const LOAD_ROUND: &str = include_str!("../../docker/loadgen.sql");
/// The database the sample schema lives in, as in docker-compose.yml.
const DATABASE: &str = "app";
/// The pipeline name, as in docker/sluice-full.toml: topics and indexes are `shop.public.*`.
const PIPELINE: &str = "shop";
/// The sample tables, in the order the summary lists them.
pub const TABLES: &[&str] = &["customers", "products", "orders"];
/// Rows docker/init.sql inserts: the snapshot reads them as `r` events.
pub const SNAPSHOT_ROWS: usize = 8;
/// Rounds of load: enough to show inserts, updates and deletes of every table, few enough to
/// read on one screen. Each round is one transaction.
pub const LOAD_ROUNDS: usize = 10;
/// Row changes per round of docker/loadgen.sql (it says so, and the demo's test checks it).
pub const CHANGES_PER_ROUND: usize = 6;

/// How long the pipeline may take to start streaming and to confirm the load. Far above what
/// they need; it only bounds a demo that would otherwise hang on a broken pipeline.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(60);

/// What the demo pipeline's configuration is made of.
struct DemoSettings<'a> {
    source_url: &'a str,
    state_dir: &'a str,
    /// The HTTP endpoint's address, when this build has one.
    http_listen: Option<&'a str>,
    /// `[[sink]]` tables beyond the JSON-lines output.
    extra_sinks: &'a str,
}

/// The demo pipeline's configuration: the sample tables, snapshotted then streamed, to stdout
/// and the extra sinks, with the embedded registry on a free port.
fn demo_config(settings: &DemoSettings<'_>) -> String {
    let http = settings
        .http_listen
        .map(|listen| format!("\n[http]\nlisten = \"{listen}\"\n"))
        .unwrap_or_default();
    format!(
        r#"[pipeline]
name = "{PIPELINE}"
max_batch_wait_ms = 20

[source]
type = "postgres"
connection = "{source_url}"
tables = ["public.*"]
snapshot_mode = "initial"
state_dir = "{state_dir}"
status_interval_ms = 500

[registry]
listen = "127.0.0.1:0"
storage = "{state_dir}/registry.json"

[[sink]]
name = "stdout"
type = "file"
path = "-"
fsync = false
{extra_sinks}{http}"#,
        source_url = settings.source_url,
        state_dir = settings.state_dir,
        extra_sinks = settings.extra_sinks,
    )
}

/// Validate the demo configuration. A build whose configuration has no `[http]` table runs
/// the demo without the HTTP endpoint, saying so.
fn load_config(settings: &DemoSettings<'_>) -> anyhow::Result<Config> {
    let invalid = |e| anyhow::anyhow!("the demo configuration is invalid: {e}");
    let text = demo_config(settings);
    match Config::from_toml_str(&text, std::iter::empty()) {
        Ok(config) => Ok(config),
        Err(problems) if problems.0.iter().all(|p| p.key == "http") => {
            eprintln!("demo: skipped the HTTP endpoint: this build has no [http] configuration");
            let without = DemoSettings {
                http_listen: None,
                ..*settings
            };
            Config::from_toml_str(&demo_config(&without), std::iter::empty()).map_err(invalid)
        }
        Err(problems) => Err(invalid(problems)),
    }
}

/// Run the demo: events go to stdout as JSON lines, progress and the summary to stderr.
pub async fn run_demo() -> anyhow::Result<()> {
    eprintln!("demo: starting a throwaway PostgreSQL with the sample schema (docker/init.sql)");
    let pg = ThrowawayPostgres::start(ThrowawayOptions::default())
        .await
        .context("starting the demo's throwaway postgresql")?;
    pg.create_database(DATABASE).await?;
    pg.execute_in(DATABASE, SAMPLE_SCHEMA)
        .await
        .context("creating the sample schema")?;
    let targets = Targets::start().await?;

    let state = tempfile::Builder::new()
        .prefix("sluice-demo-")
        .tempdir()
        .context("creating the demo's state directory")?;
    let http_listen = format!("127.0.0.1:{}", free_port()?);
    let source_url = pg.url(SUPERUSER, DATABASE);
    let settings = DemoSettings {
        source_url: &source_url,
        state_dir: &state.path().display().to_string(),
        http_listen: Some(&http_listen),
        extra_sinks: &targets.sink_tables(),
    };
    let config = load_config(&settings)?;
    let bound = runtime::BoundHttp::bind(&config).await?;
    let pipeline = runtime::start(config, Vec::new())
        .await
        .context("starting the demo pipeline")?;
    let serving = bound.map(|bound| bound.serve(&pipeline));
    let outcome = run_load(
        &pg,
        &pipeline,
        serving.is_some().then_some(http_listen.as_str()),
    )
    .await;
    // Shut down in order whatever happened, then report the first problem.
    if let Some(serving) = serving {
        serving.stop().await;
    }
    let shutdown = pipeline
        .shutdown()
        .await
        .context("stopping the demo pipeline");
    let checked = match (&outcome, &shutdown) {
        (Ok(()), Ok(())) => targets.check(&pg).await,
        _ => Ok(()),
    };
    drop(targets);
    pg.stop();
    outcome?;
    shutdown?;
    checked?;
    eprintln!(
        "demo: done: {SNAPSHOT_ROWS} snapshot rows and {} changes delivered and confirmed; \
         everything removed",
        LOAD_ROUNDS * CHANGES_PER_ROUND
    );
    Ok(())
}

/// Wait for streaming, run the load generator, and wait until the pipeline confirmed all of it.
async fn run_load(
    pg: &ThrowawayPostgres,
    pipeline: &runtime::RunningPipeline,
    http_listen: Option<&str>,
) -> anyhow::Result<()> {
    if !pipeline.wait_streaming(CONFIRM_TIMEOUT).await {
        anyhow::bail!("the demo pipeline did not start streaming");
    }
    if let Some(url) = pipeline.embedded_registry_url() {
        eprintln!("demo: schema registry (embedded) at {url}");
    }
    if let Some(listen) = http_listen {
        describe_http(listen).await;
    }
    eprintln!(
        "demo: capturing public.{{{}}} from port {}; {LOAD_ROUNDS} rounds of load (docker/loadgen.sql)",
        TABLES.join(","),
        pg.port()
    );
    let client = pg
        .client(DATABASE)
        .await
        .context("connecting to the demo database")?;
    for round in 1..=LOAD_ROUNDS {
        client
            .batch_execute(LOAD_ROUND)
            .await
            .with_context(|| format!("load round {round}"))?;
    }
    let row = client
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await?;
    let end: sluice_api::Lsn = row
        .get::<_, String>(0)
        .parse()
        .context("reading the server's wal position")?;
    // The watch sees every confirmation; waiting on it needs no polling.
    let mut watch = pipeline.confirmed_watch();
    let reached = tokio::time::timeout(CONFIRM_TIMEOUT, watch.wait_for(|lsn| *lsn >= end)).await;
    match reached {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(anyhow::anyhow!(
            "the pipeline stopped before confirming {end}"
        )),
        Err(_) => Err(anyhow::anyhow!(
            "the pipeline did not confirm {end} within {CONFIRM_TIMEOUT:?} (confirmed: {})",
            pipeline.confirmed_lsn()
        )),
    }
}

/// Say where the HTTP endpoint is, if it answers.
async fn describe_http(listen: &str) {
    match local::http_request(listen, "GET", "/health").await {
        Ok((200, _)) => {
            eprintln!("demo: HTTP endpoint at http://{listen} (/health, /ready, /metrics, /status)")
        }
        Ok((status, _)) => {
            eprintln!("demo: skipped the HTTP endpoint: /health on {listen} answered {status}")
        }
        Err(e) => eprintln!("demo: skipped the HTTP endpoint: nothing answers on {listen} ({e:#})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings<'a>(extra_sinks: &'a str, http_listen: Option<&'a str>) -> DemoSettings<'a> {
        DemoSettings {
            source_url: "postgres://postgres@127.0.0.1:5432/app?sslmode=disable",
            state_dir: "/tmp/sluice-demo",
            http_listen,
            extra_sinks,
        }
    }

    #[test]
    fn the_demo_config_snapshots_the_sample_tables_to_stdout_with_the_embedded_registry() {
        let text = demo_config(&settings("", Some("127.0.0.1:8085")));
        let parsed: toml::Value = toml::from_str(&text).expect("valid toml");
        assert_eq!(parsed["pipeline"]["name"].as_str(), Some("shop"));
        assert_eq!(parsed["source"]["tables"][0].as_str(), Some("public.*"));
        assert_eq!(parsed["source"]["snapshot_mode"].as_str(), Some("initial"));
        assert_eq!(parsed["sink"][0]["path"].as_str(), Some("-"));
        assert!(parsed["registry"].get("url").is_none(), "the embedded one");
        assert_eq!(parsed["http"]["listen"].as_str(), Some("127.0.0.1:8085"));
    }

    #[test]
    fn the_demo_config_passes_the_config_loader() {
        let extra = "\n[[sink]]\nname = \"count\"\ntype = \"memory\"\nretain = false\n";
        let config = load_config(&settings(extra, Some("127.0.0.1:8085"))).expect("valid");
        let names: Vec<&str> = config.sinks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["stdout", "count"]);
        assert!(config.registry.is_some_and(|r| r.url.is_none()));
    }

    #[test]
    fn the_sample_schema_creates_every_table_the_demo_names() {
        for table in TABLES {
            assert!(
                SAMPLE_SCHEMA.contains(&format!("CREATE TABLE public.{table} (")),
                "{table}"
            );
        }
        let statements = LOAD_ROUND
            .split(";\n")
            .filter(|s| {
                s.lines()
                    .any(|l| !l.trim().is_empty() && !l.starts_with("--"))
            })
            .count();
        assert_eq!(
            statements, CHANGES_PER_ROUND,
            "one row change per statement"
        );
    }
}
