//! The README's first command, `sluice demo`, run as the real binary: the compose demo's
//! pipeline on local programs. What it prints is checked event by event, the targets it could
//! start report contents equal to the source, and nothing it started is left running.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;
use sluice::demo::{CHANGES_PER_ROUND, LOAD_ROUNDS, SNAPSHOT_ROWS};

use crate::support::SluiceProcess;

/// `(table, op)` -> number of events.
fn tally(events: &[Json]) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for event in events {
        let table = event["source"]["table"].as_str().unwrap_or_default();
        let op = event["op"].as_str().unwrap_or_default();
        *counts.entry((table.to_owned(), op.to_owned())).or_default() += 1;
    }
    counts
}

/// The `host:port` or port number following `marker` in the demo's progress lines.
fn address_after<'a>(stderr: &'a str, marker: &str) -> Option<&'a str> {
    let rest = &stderr[stderr.find(marker)? + marker.len()..];
    rest.split(|c: char| c.is_whitespace() || c == ';').next()
}

#[tokio::test]
async fn the_demo_snapshots_the_sample_schema_delivers_a_bounded_load_and_cleans_up() {
    let mut demo = SluiceProcess::spawn(&["demo"], &[]);
    let status = demo.wait_exit(Duration::from_secs(300)).await;
    let stderr = demo.stderr();
    assert!(status.success(), "{stderr}");

    let events: Vec<Json> = demo
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert_eq!(
        events.len(),
        SNAPSHOT_ROWS + LOAD_ROUNDS * CHANGES_PER_ROUND
    );
    let rounds = LOAD_ROUNDS;
    let expected: BTreeMap<(String, String), usize> = [
        ("customers", "r", 3),
        ("customers", "c", rounds),
        ("products", "r", 3),
        ("products", "u", rounds),
        ("orders", "r", 2),
        ("orders", "c", 2 * rounds),
        ("orders", "u", rounds),
        ("orders", "d", rounds),
    ]
    .into_iter()
    .map(|(t, op, n)| ((t.to_owned(), op.to_owned()), n))
    .collect();
    assert_eq!(tally(&events), expected);
    assert!(
        events[..SNAPSHOT_ROWS].iter().all(|e| e["op"] == "r"),
        "the snapshot comes first"
    );
    let ada = events
        .iter()
        .find(|e| e["after"]["email"] == "ada@example.com")
        .expect("the seeded customer");
    assert_eq!(ada["after"]["name"], "Ada Lovelace");
    let book = events
        .iter()
        .find(|e| e["op"] == "r" && e["after"]["sku"] == "BK-001")
        .expect("the seeded book, snapshotted");
    assert_eq!(book["after"]["price"], "42.50", "numeric keeps its digits");
    let deleted = events.iter().find(|e| e["op"] == "d").expect("a delete");
    // Default replica identity: a delete carries the old row's key, the other columns null.
    assert!(deleted["before"]["id"].is_i64(), "{deleted}");
    assert!(deleted["before"]["status"].is_null(), "{deleted}");
    assert!(deleted["after"].is_null(), "{deleted}");

    assert!(
        stderr.contains("schema registry (embedded) at http://127.0.0.1:"),
        "{stderr}"
    );
    // The HTTP endpoint answered /health while the pipeline ran.
    let http = address_after(&stderr, "demo: HTTP endpoint at http://")
        .unwrap_or_else(|| panic!("the demo serves its HTTP endpoint: {stderr}"));
    // Each optional target either shows contents equal to the source or says why it is skipped.
    for (sink, verified) in [
        ("kafka", "demo: kafka: every event acknowledged"),
        ("search", "demo: search: documents in index"),
        ("warehouse", "demo: warehouse: rows in table"),
    ] {
        let skipped = format!("demo: skipped the {sink} sink: ");
        assert!(
            stderr.contains(verified) != stderr.contains(&skipped),
            "{sink} is either verified or skipped: {stderr}"
        );
    }
    // 3 + 10 customers; 3 products; 2 + 20 orders of which 10 deleted.
    let figures = "customers 13, products 3, orders 12, equal to the source tables";
    if stderr.contains("demo: search: documents in index") {
        assert!(
            stderr.contains(&format!("documents in index {figures}")),
            "{stderr}"
        );
    }
    if cfg!(feature = "sink-postgres") {
        assert!(
            stderr.contains(&format!("rows in table {figures}")),
            "{stderr}"
        );
    }
    assert!(stderr.contains("everything removed"), "{stderr}");

    // Nothing the demo started still listens.
    let source_port = address_after(&stderr, "from port ").expect("the source port");
    let mut addresses = vec![format!("127.0.0.1:{source_port}"), http.to_owned()];
    for marker in ["tansu broker at ", "osmem-server at "] {
        addresses.extend(address_after(&stderr, marker).map(str::to_owned));
    }
    for address in addresses {
        assert!(
            tokio::net::TcpStream::connect(&address).await.is_err(),
            "{address} still accepts connections after the demo"
        );
    }
}
