//! The chain as a whole: transforms compose in file order, and record transforms are found per
//! table.

use sluice_api::Value;

use super::test_events::{customers, insert, row};
use super::*;

fn transforms(text: &str) -> Transforms {
    super::config::tests::parse(text).unwrap_or_else(|p| panic!("{p:?}"))
}

#[test]
fn each_transform_sees_the_output_of_the_one_before() {
    let transforms = transforms(
        r#"
        [[transforms]]
        type = "columns"
        exclude = ["ssn"]
        [[transforms]]
        type = "mask"
        columns = ["email"]
        [[transforms]]
        type = "filter"
        condition = "email = '***' and ssn is null"
        "#,
    );
    let mut chain = TransformChain::new(&transforms);
    let table = customers();
    let kept = chain
        .apply_event(insert(&table, row(1, "ann", Some("a@x"), 1)))
        .expect("the filter sees the masked email and no ssn column");
    assert_eq!(
        kept.after.unwrap(),
        [
            Value::Int32(1),
            Value::Text("ann".into()),
            Value::Text("***".into()),
            Value::Int32(1)
        ]
    );
    assert!(
        chain
            .apply_event(insert(&table, row(2, "bob", None, 1)))
            .is_none(),
        "a null email stays null, so the filter drops it"
    );
}

#[test]
fn the_outbox_table_gets_the_router_and_other_tables_the_scoped_unwrap() {
    let transforms = transforms(
        r#"
        [[transforms]]
        type = "unwrap"
        tables = ["public.*"]
        [[transforms]]
        type = "outbox"
        table = "public.outbox"
        "#,
    );
    let mut outbox = (*customers()).clone();
    outbox.name = "outbox".into();
    assert!(matches!(
        transforms.record_transform(&outbox),
        Some(RecordTransform::Outbox(_))
    ));
    assert!(matches!(
        transforms.record_transform(&customers()),
        Some(RecordTransform::Unwrap(_))
    ));
    let mut elsewhere = (*customers()).clone();
    elsewhere.schema = "sales".into();
    assert!(transforms.record_transform(&elsewhere).is_none());
    assert!(TransformChain::new(&transforms).is_empty());
}
