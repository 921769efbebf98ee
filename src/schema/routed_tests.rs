//! Routed table schemas and the envelope's `transaction` block, decoded back with apache-avro:
//! a merged topic names the schemas and ends the key with the physical table, while the
//! `source` block keeps naming the table itself.

use std::collections::HashSet;
use std::sync::Arc;

use apache_avro::types::Value as Avro;
use sluice_api::{
    ChangeEvent, Column, Lsn, Op, ReplicaIdentity, SourcePosition, TableSchema, Value,
};

use super::*;

fn orders_shard(name: &str) -> TableSchema {
    let column = |name: &str, type_name: &str, is_key: bool| Column {
        name: name.into(),
        type_oid: 0,
        type_name: type_name.into(),
        type_modifier: -1,
        is_key,
    };
    TableSchema {
        relation_id: 1,
        schema: "public".into(),
        name: name.into(),
        replica_identity: ReplicaIdentity::Default,
        columns: vec![column("id", "int4", true), column("note", "text", false)],
    }
}

fn routed_options() -> EnvelopeOptions {
    EnvelopeOptions {
        topics: TopicOptions {
            routes: vec![TopicRoute {
                topic_regex: anchored_regex(r"shop\.public\.orders_\d+").unwrap(),
                topic_replacement: "shop.orders".into(),
                key_enforce_uniqueness: true,
                key_field_name: DEFAULT_KEY_FIELD_NAME.into(),
            }],
            ..TopicOptions::default()
        },
        ..EnvelopeOptions::default()
    }
}

fn insert(table: &TableSchema) -> ChangeEvent {
    ChangeEvent {
        op: Op::Create,
        table: Some(Arc::new(table.clone())),
        before: None,
        before_is_key_only: false,
        after: Some(vec![Value::Int32(7), Value::Text("n".into())]),
        message: None,
        position: SourcePosition {
            lsn: Lsn(10),
            commit_lsn: Lsn(20),
            xid: Some(5),
            commit_time_us: 1_000_000,
            snapshot: sluice_api::SnapshotFlag::False,
        },
    }
}

fn decode(schema: &apache_avro::Schema, framed: &[u8]) -> Avro {
    let mut body = &framed[5..];
    let value = apache_avro::from_avro_datum(schema, &mut body, None).expect("decodes");
    assert!(body.is_empty(), "every byte read");
    value
}

fn field<'v>(value: &'v Avro, name: &str) -> &'v Avro {
    match value {
        Avro::Record(fields) => &fields.iter().find(|(n, _)| n == name).expect(name).1,
        Avro::Union(_, inner) => field(inner, name),
        other => panic!("not a record: {other:?}"),
    }
}

#[test]
fn shards_of_one_shape_share_the_routed_schemas_and_keys_name_their_table() {
    let options = routed_options();
    let build = |name: &str| {
        build_table_schemas(
            "shop",
            &orders_shard(name),
            &HashSet::new(),
            &options,
            &UserTypes::default(),
        )
        .expect("schemas build")
    };
    let (first, second) = (build("orders_1"), build("orders_2"));
    assert_eq!(first.topic, "shop.orders");
    assert_eq!(
        first.envelope_json, second.envelope_json,
        "one value schema for both shards"
    );
    assert_eq!(
        first.key_json, second.key_json,
        "one key schema for both shards"
    );
    assert_eq!(first.key_json.as_ref().unwrap()["name"], "Key");
    assert_eq!(first.key_json.as_ref().unwrap()["namespace"], "shop.orders");

    let source = SourceInfo {
        version: "v".into(),
        server_name: "shop".into(),
        database: "app".into(),
    };
    let encoder = TableEncoder::new(&second, &source, "?");
    let event = insert(&orders_shard("orders_2"));
    let mut key = Vec::new();
    assert!(encoder.encode_key(&event, 1, &mut key).unwrap());
    let key = decode(second.key_avro.as_ref().unwrap(), &key);
    assert_eq!(field(&key, "id"), &Avro::Int(7));
    assert_eq!(
        field(&key, "__dbz__physicalTableIdentifier"),
        &Avro::String("shop.public.orders_2".into())
    );

    let block = TransactionBlock {
        id: "5:20",
        total_order: 3,
        data_collection_order: 2,
    };
    let mut value = Vec::new();
    encoder
        .encode_value_in(&event, 2, 0, Some(&block), &mut value)
        .unwrap();
    let value = decode(&second.envelope_avro, &value);
    let source = field(&value, "source");
    assert_eq!(field(source, "table"), &Avro::String("orders_2".into()));
    assert_eq!(field(source, "schema"), &Avro::String("public".into()));
    let transaction = field(&value, "transaction");
    assert_eq!(field(transaction, "id"), &Avro::String("5:20".into()));
    assert_eq!(field(transaction, "total_order"), &Avro::Long(3));
    assert_eq!(field(transaction, "data_collection_order"), &Avro::Long(2));
}

#[test]
fn an_unrouted_table_keeps_its_own_topic_and_key() {
    let schemas = build_table_schemas(
        "shop",
        &orders_shard("items"),
        &HashSet::new(),
        &routed_options(),
        &UserTypes::default(),
    )
    .unwrap();
    assert_eq!(schemas.topic, "shop.public.items");
    let key_fields = schemas.key_json.as_ref().unwrap()["fields"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(key_fields, 1, "no identifier field");
}

#[test]
fn a_route_to_a_name_kafka_refuses_is_a_schema_error() {
    let mut options = routed_options();
    options.topics.routes[0].topic_replacement = "not a topic".into();
    let error = build_table_schemas(
        "shop",
        &orders_shard("orders_1"),
        &HashSet::new(),
        &options,
        &UserTypes::default(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("\"not a topic\""), "{error}");
}
