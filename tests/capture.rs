//! Changes of every type and replica identity reach the sink in commit order, typed.

use sluice_api::{Decimal, Geometry, Infinite, Numeric, Op, PgInterval, RangeValue, Value};

use crate::harness::{self, summary};
use crate::support::{self, DEFAULT_DATABASE};

const DAY_US: i64 = 86_400_000_000;
/// 2024-02-29, in days since 1970-01-01.
const LEAP_DAY: i32 = 19_782;

fn column<'a>(event: &'a sluice_api::ChangeEvent, row: &'a [Value], name: &str) -> &'a Value {
    let table = event.table.as_ref().expect("a row event has a table");
    let index = table
        .columns
        .iter()
        .position(|c| c.name == name)
        .unwrap_or_else(|| panic!("no column {name}"));
    &row[index]
}

#[tokio::test]
async fn every_builtin_type_arrives_typed_and_unknown_types_as_text() {
    let pg = support::start_postgres_with(
        "CREATE EXTENSION hstore;
         CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
         CREATE TYPE pair AS (a int, b text);
         CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
         CREATE TABLE all_types (
           id int PRIMARY KEY, c_bool bool, c_int2 int2, c_int4 int4, c_int8 int8,
           c_float4 float4, c_float8 float8, c_numeric numeric(12,3), c_numeric_free numeric,
           c_text text, c_varchar varchar(10), c_char char(3), c_name name, c_bytea bytea,
           c_date date, c_time time, c_timetz timetz, c_ts timestamp, c_tstz timestamptz,
           c_interval interval, c_uuid uuid, c_json json, c_jsonb jsonb, c_inet inet, c_cidr cidr,
           c_macaddr macaddr, c_bit bit(4), c_varbit varbit, c_money money, c_xml xml,
           c_mood mood, c_posint posint, c_int_arr int[], c_text_arr text[], c_ts_arr timestamptz[],
           c_int4range int4range, c_tstzrange tstzrange, c_hstore hstore, c_point point,
           c_box box, c_circle circle, c_polygon polygon, c_pair pair, c_tsvector tsvector)",
    )
    .await;
    let (pipeline, handle) = harness::start(harness::config(&pg, &["public.all_types"], "")).await;
    harness::wait_streaming(&pg).await;
    pg.execute(
        r#"SET TIME ZONE 'UTC';
        INSERT INTO all_types VALUES (
          1, true, -32768, 2147483647, -9223372036854775808, 1.5, 'NaN', 123456789.123, 'NaN',
          'héllo', 'varchar', 'ab', 'a_name', '\xdeadbeef',
          '2024-02-29', '12:34:56.789', '12:34:56+02', '2024-02-29 12:34:56.789',
          '2024-02-29 12:34:56.789+02', '1 year 2 mons 3 days 04:05:06.5',
          'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": 1}', '{"b": [1, 2]}',
          '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', B'1010', B'101', 12.34,
          '<a>x</a>', 'happy', 5, '{1,NULL,3}', '{{a,b},{c,"d e"}}',
          '{"2024-01-01 00:00:00+00",infinity}', '[1,10)',
          '["2024-01-01 00:00:00+00",infinity)', 'a=>1, b=>NULL', '(1.5,2)', '((3,4),(1,2))',
          '<(1,2),3>', '((0,0),(1,0),(1,1))', ROW(1, 'x'), 'fat cat');
        INSERT INTO all_types (id, c_float8, c_numeric_free, c_date, c_ts, c_tstz, c_int4range)
          VALUES (2, '-Infinity', 'Infinity', '-infinity', 'infinity', '-infinity', 'empty');"#,
    )
    .await
    .unwrap();
    // Full identity: update, delete and truncate carry every typed value as the before image.
    pg.execute(
        "ALTER TABLE all_types REPLICA IDENTITY FULL;
         UPDATE all_types SET c_text = 'changed' WHERE id = 1;
         DELETE FROM all_types WHERE id = 1;
         TRUNCATE all_types;",
    )
    .await
    .unwrap();
    let events = harness::wait_events(&handle, 5).await;
    pipeline.shutdown().await.unwrap();
    let ops: Vec<&str> = events.iter().map(|e| e.op.as_str()).collect();
    assert_eq!(ops, ["c", "c", "u", "d", "t"]);
    // NaN is not equal to itself, so rows are compared by their debug form.
    let same = |a: &Option<sluice_api::Row>, b: &Option<sluice_api::Row>| {
        format!("{a:?}") == format!("{b:?}")
    };
    assert!(
        same(&events[2].before, &events[0].after),
        "update before = inserted row: {:?}",
        events[2].before
    );
    let mut updated = events[0].after.clone().unwrap();
    let text_index = events[0]
        .table
        .as_ref()
        .unwrap()
        .columns
        .iter()
        .position(|c| c.name == "c_text")
        .unwrap();
    updated[text_index] = Value::Text("changed".into());
    assert!(
        same(&events[2].after, &Some(updated.clone())),
        "update after: {:?}",
        events[2].after
    );
    assert!(
        same(&events[3].before, &Some(updated)),
        "delete before = updated row"
    );
    assert_eq!(events[3].after, None);
    assert_eq!(events[4].table.as_ref().unwrap().name, "all_types");

    let first = &events[0];
    assert_eq!(first.op, Op::Create);
    let row = first.after.as_ref().unwrap();
    let col = |name| column(first, row, name);
    let ts_micros = i64::from(LEAP_DAY) * DAY_US + ((12 * 60 + 34) * 60 + 56) * 1_000_000 + 789_000;
    assert_eq!(col("c_bool"), &Value::Bool(true));
    assert_eq!(col("c_int2"), &Value::Int16(i16::MIN));
    assert_eq!(col("c_int4"), &Value::Int32(i32::MAX));
    assert_eq!(col("c_int8"), &Value::Int64(i64::MIN));
    assert_eq!(col("c_float4"), &Value::Float32(1.5));
    assert!(matches!(col("c_float8"), Value::Float64(v) if v.is_nan()));
    assert_eq!(
        col("c_numeric"),
        &Value::Numeric(Numeric::Value(Decimal::parse("123456789.123").unwrap()))
    );
    assert_eq!(col("c_numeric_free"), &Value::Numeric(Numeric::NaN));
    assert_eq!(col("c_text"), &Value::Text("héllo".into()));
    assert_eq!(col("c_varchar"), &Value::Text("varchar".into()));
    assert_eq!(
        col("c_char"),
        &Value::Text("ab ".into()),
        "char(n) keeps its padding"
    );
    assert_eq!(col("c_name"), &Value::Text("a_name".into()));
    assert_eq!(col("c_bytea"), &Value::Bytes(vec![0xde, 0xad, 0xbe, 0xef]));
    assert_eq!(col("c_date"), &Value::Date(Infinite::Finite(LEAP_DAY)));
    assert_eq!(
        col("c_time"),
        &Value::Time(ts_micros - i64::from(LEAP_DAY) * DAY_US)
    );
    assert_eq!(
        col("c_timetz"),
        &Value::TimeTz {
            micros: 45_296_000_000,
            offset_seconds: 7200
        }
    );
    assert_eq!(col("c_ts"), &Value::Timestamp(Infinite::Finite(ts_micros)));
    assert_eq!(
        col("c_tstz"),
        &Value::TimestampTz(Infinite::Finite(ts_micros - 2 * 3_600_000_000))
    );
    assert_eq!(
        col("c_interval"),
        &Value::Interval(PgInterval {
            months: 14,
            days: 3,
            micros: (4 * 3600 + 5 * 60 + 6) * 1_000_000 + 500_000
        })
    );
    assert_eq!(
        col("c_uuid"),
        &Value::Uuid([
            0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
            0x0a, 0x11
        ])
    );
    assert_eq!(col("c_json"), &Value::Json(r#"{"a": 1}"#.into()));
    assert_eq!(col("c_jsonb"), &Value::Jsonb(r#"{"b": [1, 2]}"#.into()));
    assert_eq!(col("c_inet"), &Value::Inet("192.168.0.1/24".into()));
    assert_eq!(col("c_cidr"), &Value::Cidr("10.0.0.0/8".into()));
    assert_eq!(
        col("c_macaddr"),
        &Value::MacAddr("08:00:2b:01:02:03".into())
    );
    assert_eq!(
        col("c_bit"),
        &Value::Bits {
            len: 4,
            data: vec![0b1010_0000]
        }
    );
    assert_eq!(
        col("c_varbit"),
        &Value::Bits {
            len: 3,
            data: vec![0b1010_0000]
        }
    );
    assert_eq!(
        col("c_money"),
        &Value::Money(Decimal::parse("12.34").unwrap())
    );
    assert_eq!(col("c_xml"), &Value::Xml("<a>x</a>".into()));
    assert_eq!(col("c_mood"), &Value::Enum("happy".into()));
    assert_eq!(
        col("c_posint"),
        &Value::Int32(5),
        "a domain decodes as its base type"
    );
    assert_eq!(
        col("c_int_arr"),
        &Value::Array(vec![Value::Int32(1), Value::Null, Value::Int32(3)])
    );
    let text = |s: &str| Value::Text(s.into());
    assert_eq!(
        col("c_text_arr"),
        &Value::Array(vec![
            Value::Array(vec![text("a"), text("b")]),
            Value::Array(vec![text("c"), text("d e")])
        ])
    );
    assert_eq!(
        col("c_ts_arr"),
        &Value::Array(vec![
            Value::TimestampTz(Infinite::Finite(19_723 * DAY_US)),
            Value::TimestampTz(Infinite::PositiveInfinity)
        ])
    );
    assert_eq!(
        col("c_int4range"),
        &Value::Range(Box::new(RangeValue {
            empty: false,
            lower: Some(Value::Int32(1)),
            upper: Some(Value::Int32(10)),
            lower_inclusive: true,
            upper_inclusive: false,
        }))
    );
    let Value::Range(tstz) = col("c_tstzrange") else {
        panic!("{:?}", col("c_tstzrange"))
    };
    assert_eq!(
        tstz.lower,
        Some(Value::TimestampTz(Infinite::Finite(19_723 * DAY_US)))
    );
    assert_eq!(
        tstz.upper,
        Some(Value::TimestampTz(Infinite::PositiveInfinity))
    );
    let Value::Hstore(pairs) = col("c_hstore") else {
        panic!("{:?}", col("c_hstore"))
    };
    let mut pairs = pairs.clone();
    pairs.sort();
    assert_eq!(
        pairs,
        vec![("a".into(), Some("1".into())), ("b".into(), None)]
    );
    assert_eq!(
        col("c_point"),
        &Value::Geometry(Geometry::Point { x: 1.5, y: 2.0 })
    );
    assert_eq!(
        col("c_box"),
        &Value::Geometry(Geometry::Box([(3.0, 4.0), (1.0, 2.0)]))
    );
    assert_eq!(
        col("c_circle"),
        &Value::Geometry(Geometry::Circle {
            x: 1.0,
            y: 2.0,
            radius: 3.0
        })
    );
    assert_eq!(
        col("c_polygon"),
        &Value::Geometry(Geometry::Polygon(vec![(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)]))
    );
    assert!(
        matches!(col("c_pair"), Value::Unknown { type_name, text } if type_name.ends_with("pair") && text == "(1,x)"),
        "a composite type falls back to its text: {:?}",
        col("c_pair")
    );
    assert!(
        matches!(col("c_tsvector"), Value::Unknown { text, .. } if text == "'cat' 'fat'"),
        "{:?}",
        col("c_tsvector")
    );

    let second = &events[1];
    let row = second.after.as_ref().unwrap();
    let col = |name| column(second, row, name);
    assert_eq!(col("c_float8"), &Value::Float64(f64::NEG_INFINITY));
    assert_eq!(
        col("c_numeric_free"),
        &Value::Numeric(Numeric::PositiveInfinity)
    );
    assert_eq!(col("c_date"), &Value::Date(Infinite::NegativeInfinity));
    assert_eq!(col("c_ts"), &Value::Timestamp(Infinite::PositiveInfinity));
    assert_eq!(
        col("c_tstz"),
        &Value::TimestampTz(Infinite::NegativeInfinity)
    );
    assert!(matches!(col("c_int4range"), Value::Range(r) if r.empty));
    assert_eq!(col("c_text"), &Value::Null);
    assert_eq!(col("c_int_arr"), &Value::Null);
}

#[tokio::test]
async fn row_changes_arrive_in_commit_order_with_before_images_by_replica_identity() {
    let pg = support::start_postgres_with(
        "CREATE TABLE t_default (id int PRIMARY KEY, v text, big text);
         CREATE TABLE t_full (id int PRIMARY KEY, v text);
         ALTER TABLE t_full REPLICA IDENTITY FULL;
         CREATE TABLE t_nothing (id int, v text);
         ALTER TABLE t_nothing REPLICA IDENTITY NOTHING;
         CREATE TABLE t_other (id int PRIMARY KEY);",
    )
    .await;
    let tables = ["public.t_default", "public.t_full", "public.t_nothing"];
    // Re-reading is off here: this test shows what PostgreSQL itself sends.
    let config = harness::config(&pg, &tables, "reread_unchanged_toast = false");
    let (pipeline, handle) = harness::start(config).await;
    harness::wait_streaming(&pg).await;
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    for sql in [
        // An out-of-line (TOASTed) value: 12,800 random hex characters do not compress enough
        // to stay inline.
        "INSERT INTO t_default SELECT 1, 'a', string_agg(md5(random()::text), '') FROM generate_series(1, 400)",
        "INSERT INTO t_full VALUES (1, 'a'); INSERT INTO t_nothing VALUES (1, 'a'); INSERT INTO t_other VALUES (1)",
        "UPDATE t_default SET v = 'b' WHERE id = 1",
        "UPDATE t_default SET id = 2 WHERE id = 1",
        "BEGIN; UPDATE t_full SET v = 'b'; DELETE FROM t_full; DELETE FROM t_default; COMMIT",
        "TRUNCATE t_default",
    ] {
        client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let events = harness::wait_events(&handle, 9).await;
    pipeline.shutdown().await.unwrap();

    let order: Vec<(String, &str)> = summary(&events)
        .into_iter()
        .map(|(t, op, _)| (t, op))
        .collect();
    let expected = [
        ("t_default", "c"),
        ("t_full", "c"),
        ("t_nothing", "c"),
        ("t_default", "u"),
        ("t_default", "u"),
        ("t_full", "u"),
        ("t_full", "d"),
        ("t_default", "d"),
        ("t_default", "t"),
    ];
    let expected: Vec<(String, &str)> = expected
        .iter()
        .map(|(t, op)| (t.to_string(), *op))
        .collect();
    assert_eq!(
        order, expected,
        "uncaptured t_other stays out; commit order holds"
    );

    let text = |s: &str| Value::Text(s.into());
    // Default identity, key unchanged: no before image; the untouched big value is marked.
    let update = &events[3];
    assert_eq!(update.before, None);
    let after = update.after.as_ref().unwrap();
    assert_eq!(&after[..2], &[Value::Int32(1), text("b")]);
    assert_eq!(
        after[2],
        Value::UnchangedToast,
        "an unchanged TOAST value is marked, not null"
    );
    // Default identity, key changed: the old key only.
    let key_change = &events[4];
    assert!(key_change.before_is_key_only);
    assert_eq!(key_change.before.as_ref().unwrap()[0], Value::Int32(1));
    assert_eq!(key_change.after.as_ref().unwrap()[0], Value::Int32(2));
    // Full identity: whole old rows.
    assert_eq!(events[5].before, Some(vec![Value::Int32(1), text("a")]));
    assert!(!events[5].before_is_key_only);
    assert_eq!(events[6].before, Some(vec![Value::Int32(1), text("b")]));
    assert_eq!(events[6].after, None);
    // Default identity delete: the key, other columns null.
    let delete = &events[7];
    assert!(delete.before_is_key_only);
    assert_eq!(
        delete.before,
        Some(vec![Value::Int32(2), Value::Null, Value::Null])
    );
    // Nothing identity: inserts flow; no before image exists at all.
    assert_eq!(events[2].before, None);
    // Every event of a transaction carries its commit position and xid.
    assert!(events
        .iter()
        .all(|e| e.position.xid.is_some() && e.position.commit_lsn >= e.position.lsn));
    assert_eq!(
        events[5].position.xid, events[7].position.xid,
        "one transaction, one xid"
    );

    // Under REPLICA IDENTITY NOTHING the server itself refuses updates of a published table.
    let err = client
        .batch_execute("UPDATE t_nothing SET v = 'b'")
        .await
        .unwrap_err();
    let message = err
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    assert!(message.contains("replica identity"), "{err:?}");
}

#[tokio::test]
async fn unchanged_toast_values_are_reread_only_while_the_row_keeps_that_version() {
    let pg =
        support::start_postgres_with("CREATE TABLE docs (id int PRIMARY KEY, v int, body text)")
            .await;
    // A first run creates the slot; the changes below are then read back in one go, after all
    // of them committed, so the row has moved on from the first update's version.
    let (pipeline, _) = harness::start(harness::config(&pg, &["public.docs"], "")).await;
    harness::wait_streaming(&pg).await;
    pipeline.shutdown().await.unwrap();
    // Three transactions (one statement each).
    for sql in [
        "INSERT INTO docs SELECT 1, 0, string_agg(md5(random()::text), '') FROM generate_series(1, 400)",
        "UPDATE docs SET v = 1",
        "UPDATE docs SET v = 2",
    ] {
        pg.execute(sql).await.unwrap();
    }
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    let body: String = client
        .query_one("SELECT body FROM docs", &[])
        .await
        .unwrap()
        .get(0);

    let (pipeline, handle) = harness::start(harness::config(&pg, &["public.docs"], "")).await;
    let events = harness::wait_events(&handle, 3).await;
    pipeline.shutdown().await.unwrap();
    let after = |i: usize| events[i].after.clone().unwrap();
    // Large values are compared without printing them.
    let is_body = |v: &Value| matches!(v, Value::Text(t) if *t == body);
    assert!(is_body(&after(0)[2]), "the insert carries the value");
    assert!(
        after(1)[2] == Value::UnchangedToast,
        "the row no longer has the first update's version: the value stays unavailable"
    );
    assert_eq!(after(2)[1], Value::Int32(2));
    assert!(is_body(&after(2)[2]), "the current version is re-read");
}
