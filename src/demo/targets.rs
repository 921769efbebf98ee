//! The demo's delivery targets beyond stdout: each one runs when this build has its connector
//! and its server program is found, and is otherwise skipped with one line saying why. After
//! the load, the targets that can be read back are compared with the source tables.

use anyhow::Context;

use super::{local, DATABASE, PIPELINE, TABLES};
use crate::embedded::ThrowawayPostgres;

/// The demo's warehouse schema in the target PostgreSQL, as in docker/sluice-full.toml.
const WAREHOUSE_SCHEMA: &str = "shop";

/// The servers the demo started; all stopped on drop.
pub struct Targets {
    kafka: Option<local::LocalServer>,
    search: Option<local::LocalServer>,
    warehouse: Option<ThrowawayPostgres>,
}

/// Print why a target is skipped.
fn skipped(sink: &str, why: &str) {
    eprintln!("demo: skipped the {sink} sink: {why}");
}

/// Why a connector is missing from this build.
fn not_built(feature: &str) -> String {
    format!("this binary was built without the {feature} feature (cargo run --release --features {feature} -- demo)")
}

/// Start `program` for its sink when this build has the sink's `feature` (`built`) and the
/// program is installed; otherwise say why not.
async fn start_local(
    program: &local::LocalProgram,
    feature: &str,
    built: bool,
) -> anyhow::Result<Option<local::LocalServer>> {
    if !built {
        skipped(program.sink, &not_built(feature));
        return Ok(None);
    }
    match program.locate() {
        Ok(path) => {
            let server = program.start(path).await?;
            eprintln!(
                "demo: {} sink -> {} at {}",
                program.sink,
                program.name,
                server.address()
            );
            Ok(Some(server))
        }
        Err(why) => {
            skipped(program.sink, &why);
            Ok(None)
        }
    }
}

/// A second throwaway PostgreSQL as the warehouse, when this build has the postgres sink.
async fn start_warehouse() -> anyhow::Result<Option<ThrowawayPostgres>> {
    if !cfg!(feature = "sink-postgres") {
        skipped("warehouse", &not_built("sink-postgres"));
        return Ok(None);
    }
    let warehouse = ThrowawayPostgres::start(crate::embedded::ThrowawayOptions::default())
        .await
        .context("starting the warehouse postgresql")?;
    eprintln!(
        "demo: warehouse sink -> a second throwaway PostgreSQL on port {}",
        warehouse.port()
    );
    Ok(Some(warehouse))
}

impl Targets {
    /// Start every target this build and machine allow.
    pub async fn start() -> anyhow::Result<Targets> {
        let kafka = start_local(
            &local::KAFKA_BROKER,
            "sink-kafka",
            cfg!(feature = "sink-kafka"),
        )
        .await?;
        let search = start_local(
            &local::SEARCH_SERVER,
            "sink-search",
            cfg!(feature = "sink-search"),
        )
        .await?;
        Ok(Targets {
            kafka,
            search,
            warehouse: start_warehouse().await?,
        })
    }

    /// The `[[sink]]` tables of the started targets.
    pub fn sink_tables(&self) -> String {
        let mut text = String::new();
        if let Some(broker) = &self.kafka {
            text.push_str(&format!(
                "\n[[sink]]\nname = \"kafka\"\ntype = \"kafka\"\nbrokers = \"{}\"\n",
                broker.address()
            ));
        }
        if let Some(server) = &self.search {
            text.push_str(&format!(
                "\n[[sink]]\nname = \"search\"\ntype = \"search\"\nurl = \"http://{}\"\n",
                server.address()
            ));
        }
        if let Some(warehouse) = &self.warehouse {
            text.push_str(&format!(
                "\n[[sink]]\nname = \"warehouse\"\ntype = \"postgres\"\nconnection = \"{}\"\n\
                 schema = \"{}\"\n",
                warehouse.url(
                    crate::embedded::SUPERUSER,
                    crate::embedded::DEFAULT_DATABASE
                ),
                WAREHOUSE_SCHEMA
            ));
        }
        text
    }

    /// Compare what the targets hold with the source tables, after everything is confirmed.
    pub async fn check(&self, source: &ThrowawayPostgres) -> anyhow::Result<()> {
        let client = source.client(DATABASE).await?;
        let mut counts = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            let row = client
                .query_one(&format!("SELECT count(*) FROM public.{table}"), &[])
                .await?;
            counts.push(row.get::<_, i64>(0));
        }
        if let Some(broker) = &self.kafka {
            eprintln!(
                "demo: kafka: every event acknowledged by the broker at {} on topics {}",
                broker.address(),
                topics()
            );
        }
        if let Some(server) = &self.search {
            let mut found = Vec::with_capacity(TABLES.len());
            for table in TABLES {
                found.push(search_count(&server.address(), table).await?);
            }
            compare("search", "documents in index", &counts, &found)?;
        }
        if let Some(warehouse) = &self.warehouse {
            let target = warehouse.client(crate::embedded::DEFAULT_DATABASE).await?;
            let mut found = Vec::with_capacity(TABLES.len());
            for table in TABLES {
                let sql = format!("SELECT count(*) FROM {}.{table}", WAREHOUSE_SCHEMA);
                let row = target
                    .query_one(&sql, &[])
                    .await
                    .with_context(|| format!("reading the warehouse: {sql}"))?;
                found.push(row.get::<_, i64>(0));
            }
            compare("warehouse", "rows in table", &counts, &found)?;
        }
        Ok(())
    }
}

/// `shop.public.customers, ...`: the topics and indexes of the sample tables.
fn topics() -> String {
    let names: Vec<String> = TABLES
        .iter()
        .map(|t| format!("{PIPELINE}.public.{t}"))
        .collect();
    names.join(", ")
}

/// Documents in the sample table's index, after a refresh makes every write visible.
async fn search_count(address: &str, table: &str) -> anyhow::Result<i64> {
    let index = format!("{PIPELINE}.public.{table}");
    local::http_request(address, "POST", &format!("/{index}/_refresh")).await?;
    let (status, body) = local::http_request(address, "GET", &format!("/{index}/_count")).await?;
    anyhow::ensure!(
        status == 200,
        "GET /{index}/_count answered {status}: {body}"
    );
    let answer: serde_json::Value =
        serde_json::from_str(&body).with_context(|| format!("GET /{index}/_count: {body}"))?;
    answer["count"]
        .as_i64()
        .with_context(|| format!("GET /{index}/_count: no count in {body}"))
}

/// Print a target's figures per table; an error when they differ from the source's.
fn compare(target: &str, what: &str, source: &[i64], found: &[i64]) -> anyhow::Result<()> {
    let figures: Vec<String> = TABLES
        .iter()
        .zip(found)
        .map(|(table, n)| format!("{table} {n}"))
        .collect();
    anyhow::ensure!(
        source == found,
        "{target}: {what} {} differ from the source's rows {source:?}",
        figures.join(", ")
    );
    eprintln!(
        "demo: {target}: {what} {}, equal to the source tables",
        figures.join(", ")
    );
    Ok(())
}
