//! Checks against a live server (ignored by default; the integration tests cover the real
//! pipeline): for thousands of server-generated values, the text form the server prints and its
//! binary form must decode to the same value. The binary decoders are pinned to exact server
//! bytes by unit tests, so agreement checks the text parsers on output they did not choose.
//!
//! Run with `cargo test -p sluice-source-postgres -- --ignored live` against a server on
//! `SLUICE_TEST_POSTGRES` (default `host=127.0.0.1 user=postgres dbname=postgres`). Read-only.

use sluice_api::{Decimal, Value};
use tokio_postgres::{Client, NoTls};

use super::{decode_binary, decode_text};
use crate::types::TypeCatalog;

async fn connect() -> Client {
    let config = std::env::var("SLUICE_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 user=postgres dbname=postgres".to_string());
    let (client, connection) = tokio_postgres::connect(&config, NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

/// Every row of `query` is `(value::text, <type>_send(value))` of type `oid`.
async fn assert_text_matches_binary(client: &Client, catalog: &TypeCatalog, oid: u32, query: &str) {
    let rows = client.query(query, &[]).await.expect(query);
    assert!(!rows.is_empty(), "{query} returned nothing");
    for row in rows {
        let text: String = row.get(0);
        let bytes: Vec<u8> = row.get(1);
        let from_text = decode_text(catalog, oid, &text);
        let from_binary = decode_binary(catalog, oid, &bytes);
        assert!(
            !matches!(from_text, Value::Unknown { .. }),
            "{text:?} not decoded"
        );
        // Debug form compares NaN equal to NaN.
        assert_eq!(
            format!("{from_text:?}"),
            format!("{from_binary:?}"),
            "text {text:?}"
        );
    }
}

const SERIES: &str = "FROM generate_series(1, 3000)";

#[tokio::test]
#[ignore = "needs a PostgreSQL server"]
async fn live_temporal_text_matches_binary_in_several_time_zones() {
    let client = connect().await;
    let catalog = TypeCatalog::load(&client).await.expect("load catalog");
    // Seconds from 4713 BC to the last timestamp that fits microseconds since 1970.
    let instant = "to_timestamp(random() * 9.4e12 - 2.108e11)";
    for zone in [
        "UTC",
        "America/New_York",
        "Asia/Kolkata",
        "Europe/Amsterdam",
        "Australia/Eucla",
    ] {
        client
            .batch_execute(&format!("SET TimeZone = '{zone}'"))
            .await
            .expect("set zone");
        let query =
            format!("SELECT t::text, timestamptz_send(t) FROM (SELECT {instant} AS t {SERIES}) s");
        assert_text_matches_binary(&client, &catalog, 1184, &query).await;
        let query = format!(
            "SELECT t::text, timetz_send(t) FROM (SELECT ({instant})::timetz AS t {SERIES}) s"
        );
        assert_text_matches_binary(&client, &catalog, 1266, &query).await;
    }
    let query = format!("SELECT t::text, timestamp_send(t) FROM (SELECT {instant} AT TIME ZONE 'UTC' AS t {SERIES}) s");
    assert_text_matches_binary(&client, &catalog, 1114, &query).await;
    let query = format!(
        "SELECT d::text, date_send(d) FROM (SELECT date '4713-11-24 BC' + (random() * 2147483000)::int AS d {SERIES}) s"
    );
    assert_text_matches_binary(&client, &catalog, 1082, &query).await;
    let query =
        format!("SELECT t::text, time_send(t) FROM (SELECT ({instant})::time AS t {SERIES}) s");
    assert_text_matches_binary(&client, &catalog, 1083, &query).await;
    let query = format!(
        "SELECT i::text, interval_send(i) FROM (SELECT \
           ((random() * 2e9 - 1e9)::int * interval '1 mon') \
           + ((random() * 2e9 - 1e9)::int * interval '1 day') \
           + ((random() * 2e15 - 1e15)::bigint * interval '1 microsecond') AS i {SERIES}) s"
    );
    assert_text_matches_binary(&client, &catalog, 1186, &query).await;
}

#[tokio::test]
#[ignore = "needs a PostgreSQL server"]
async fn live_numbers_and_arrays_text_matches_binary() {
    let client = connect().await;
    let catalog = TypeCatalog::load(&client).await.expect("load catalog");
    let query = format!(
        "SELECT n::text, numeric_send(n) FROM (SELECT round(((random() - 0.5) * 10 ^ (random() * 60 - 20))::numeric, (random() * 30)::int) AS n {SERIES} \
         UNION ALL SELECT 'NaN' UNION ALL SELECT '-Infinity') s"
    );
    assert_text_matches_binary(&client, &catalog, 1700, &query).await;
    let query = format!(
        "SELECT f::text, float8send(f) FROM (SELECT (random() - 0.5) * 10 ^ (random() * 600 - 300) AS f {SERIES}) s"
    );
    assert_text_matches_binary(&client, &catalog, 701, &query).await;
    let query = format!("SELECT f::text, float4send(f) FROM (SELECT ((random() - 0.5) * 10 ^ (random() * 70 - 35))::float4 AS f {SERIES}) s");
    assert_text_matches_binary(&client, &catalog, 700, &query).await;
    // Text arrays of random strings drawn from characters that need quoting or escaping.
    let query =
        "SELECT a::text, array_send(a) FROM (SELECT ARRAY(SELECT CASE WHEN random() < 0.1 THEN NULL ELSE \
           (SELECT string_agg(substr(E'ab \\\\\"{},NUL\\t;é', (random() * 15)::int + 1, 1), '') \
            FROM generate_series(0, (random() * 6)::int + e * 0)) END \
           FROM generate_series(1, (random() * 5)::int + g * 0) e) AS a FROM generate_series(1, 3000) g) s";
    assert_text_matches_binary(&client, &catalog, 1009, query).await;
    let query = "SELECT a::text, array_send(a) FROM (VALUES ('[0:1]={1,2}'::int[]), ('{{1,NULL},{3,4}}'), ('{}')) v(a)";
    assert_text_matches_binary(&client, &catalog, 1007, query).await;
}

#[tokio::test]
#[ignore = "needs a PostgreSQL server"]
async fn live_money_text_matches_its_numeric_value() {
    let client = connect().await;
    let catalog = TypeCatalog::builtin();
    let rows = client
        .query(
            "SELECT m::text, m::numeric::text FROM (SELECT ((random() - 0.5) * 1e15)::numeric(20,2)::money AS m FROM generate_series(1, 3000)) s",
            &[],
        )
        .await
        .expect("money");
    for row in rows {
        let text: String = row.get(0);
        let numeric: String = row.get(1);
        let expected = Decimal::parse(&numeric).expect("numeric text");
        assert_eq!(
            decode_text(&catalog, 790, &text),
            Value::Money(expected),
            "{text}"
        );
    }
}

#[tokio::test]
#[ignore = "needs a PostgreSQL server"]
async fn live_catalog_loads_every_type_with_names() {
    let client = connect().await;
    let catalog = TypeCatalog::load(&client).await.expect("load catalog");
    assert!(catalog.len() > TypeCatalog::builtin().len());
    assert_eq!(catalog.type_name(1009), "_text");
    assert_eq!(catalog.type_name(4451), "int4multirange");
}
