//! `sluice demo`: a self-contained tour. It starts a throwaway PostgreSQL, captures a small
//! `public.orders` table into a file sink on stdout, makes a few changes, waits until they are
//! confirmed to the server, and shuts everything down, so a new user sees real change events
//! without setting up a database.

use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::embedded::{ThrowawayOptions, ThrowawayPostgres, DEFAULT_DATABASE, SUPERUSER};
use crate::runtime;

/// The captured table, with a few types worth seeing in the events (numeric, timestamptz,
/// arrays, nulls).
const CREATE_TABLE: &str = "CREATE TABLE public.orders (
    id serial PRIMARY KEY,
    customer text NOT NULL,
    amount numeric(10,2),
    status text,
    placed_at timestamptz DEFAULT now(),
    tags text[]
)";

/// The demo's changes, each its own transaction: 3 inserts, 1 update, 1 delete.
const CHANGES: &[&str] = &[
    "INSERT INTO public.orders (customer, amount, status, tags) \
     VALUES ('ada', 42.50, 'new', ARRAY['books'])",
    "INSERT INTO public.orders (customer, amount, status, tags) \
     VALUES ('grace', 1999.99, 'new', ARRAY['hardware', 'priority'])",
    "INSERT INTO public.orders (customer, amount, status) VALUES ('linus', NULL, 'new')",
    "UPDATE public.orders SET status = 'shipped' WHERE customer = 'ada'",
    "DELETE FROM public.orders WHERE customer = 'linus'",
];

/// How long the pipeline may take to confirm the demo's few changes. Far above what they
/// need; it only bounds a demo that would otherwise hang on a broken pipeline.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// The demo pipeline's configuration: stream `public.orders` from now on to stdout.
fn demo_config(connection: &str) -> String {
    format!(
        r#"[pipeline]
name = "demo"

[source]
type = "postgres"
connection = "{connection}"
tables = ["public.orders"]
snapshot_mode = "never"

[[sink]]
name = "stdout"
type = "file"
path = "-"
"#
    )
}

/// Run the demo: events go to stdout as JSON lines, progress and the summary to stderr.
pub async fn run_demo() -> anyhow::Result<()> {
    eprintln!("demo: starting a throwaway PostgreSQL cluster");
    let pg = ThrowawayPostgres::start(ThrowawayOptions::default())
        .await
        .context("starting the demo's throwaway postgresql")?;
    pg.execute(CREATE_TABLE)
        .await
        .context("creating public.orders")?;

    let text = demo_config(&pg.url(SUPERUSER, DEFAULT_DATABASE));
    let config = Config::from_toml_str(&text, std::iter::empty())
        .map_err(|e| anyhow::anyhow!("the demo configuration is invalid: {e}"))?;
    let pipeline = runtime::start(config, Vec::new())
        .await
        .context("starting the demo pipeline")?;
    if !pipeline.wait_streaming(CONFIRM_TIMEOUT).await {
        let error = pipeline.shutdown().await.err();
        anyhow::bail!("the demo pipeline did not start streaming: {error:?}");
    }
    eprintln!(
        "demo: capturing public.orders on port {}; writing 5 changes",
        pg.port()
    );

    let written = write_changes(&pg).await;
    let confirmed = match written {
        Ok(end) => {
            // The watch sees every confirmation; waiting on it needs no polling.
            let mut watch = pipeline.confirmed_watch();
            let reached =
                tokio::time::timeout(CONFIRM_TIMEOUT, watch.wait_for(|lsn| *lsn >= end)).await;
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
        Err(e) => Err(e),
    };
    // Shut down in order whatever happened, then report the first problem.
    let shutdown = pipeline
        .shutdown()
        .await
        .context("stopping the demo pipeline");
    pg.stop();
    confirmed?;
    shutdown?;
    eprintln!(
        "demo: captured {} changes from public.orders; events above are JSON lines",
        CHANGES.len()
    );
    Ok(())
}

/// Apply [`CHANGES`] and return the server's WAL position after the last one.
async fn write_changes(pg: &ThrowawayPostgres) -> anyhow::Result<sluice_api::Lsn> {
    let client = pg
        .client(DEFAULT_DATABASE)
        .await
        .context("connecting to the demo database")?;
    for sql in CHANGES {
        client
            .batch_execute(sql)
            .await
            .with_context(|| format!("running {sql}"))?;
    }
    let row = client
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await?;
    let text: String = row.get(0);
    text.parse().context("reading the server's wal position")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_config_names_the_pipeline_table_and_stdout_sink() {
        let text = demo_config("postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable");
        let parsed: toml::Value = toml::from_str(&text).expect("valid toml");
        assert_eq!(parsed["pipeline"]["name"].as_str(), Some("demo"));
        assert_eq!(
            parsed["source"]["tables"][0].as_str(),
            Some("public.orders")
        );
        assert_eq!(parsed["source"]["snapshot_mode"].as_str(), Some("never"));
        assert_eq!(parsed["sink"][0]["path"].as_str(), Some("-"));
    }
}
