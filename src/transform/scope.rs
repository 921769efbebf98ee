//! Which tables and columns a transform applies to: table patterns as in `[source] tables`
//! (`schema.table`, `*` matching any run of characters), and column selectors that are either a
//! bare column name (in every table of the transform's scope) or Debezium's fully-qualified
//! `schema.table.column`.

use sluice_api::TableSchema;
use sluice_source_postgres::config::table_included;

/// A transform's `tables` key: empty means every captured table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableScope(pub Vec<String>);

impl TableScope {
    /// Whether `table` is in scope.
    pub fn contains(&self, table: &TableSchema) -> bool {
        self.0.is_empty() || table_included(&self.0, &table.schema, &table.name)
    }
}

/// One entry of a `columns`, `include` or `exclude` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnSelector {
    /// `schema.table` pattern when the entry was fully qualified.
    pub table: Option<String>,
    pub column: String,
}

impl ColumnSelector {
    /// `column` or `schema.table.column`; anything else (one dot, empty parts) is refused.
    pub fn parse(text: &str) -> Result<ColumnSelector, String> {
        let parts: Vec<&str> = text.split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "{text:?} is not a column: write `column` or `schema.table.column`"
            ));
        }
        match parts.as_slice() {
            [column] => Ok(ColumnSelector {
                table: None,
                column: (*column).to_owned(),
            }),
            [schema, table, column] => Ok(ColumnSelector {
                table: Some(format!("{schema}.{table}")),
                column: (*column).to_owned(),
            }),
            _ => Err(format!(
                "{text:?} is not a column: write `column` or `schema.table.column`"
            )),
        }
    }

    /// Whether the selector names `column` of `table`.
    pub fn matches(&self, table: &TableSchema, column: &str) -> bool {
        self.column == column
            && self.table.as_ref().is_none_or(|pattern| {
                table_included(std::slice::from_ref(pattern), &table.schema, &table.name)
            })
    }
}

/// Whether any of `selectors` names `column` of `table`.
pub fn selected(selectors: &[ColumnSelector], table: &TableSchema, column: &str) -> bool {
    selectors.iter().any(|s| s.matches(table, column))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::test_events::customers;

    #[test]
    fn bare_and_qualified_columns_select_within_their_tables() {
        let table = customers();
        let bare = ColumnSelector::parse("email").unwrap();
        let qualified = ColumnSelector::parse("public.customers.email").unwrap();
        let other = ColumnSelector::parse("public.orders.email").unwrap();
        let glob = ColumnSelector::parse("public.cust*.email").unwrap();
        assert!(bare.matches(&table, "email"));
        assert!(qualified.matches(&table, "email"));
        assert!(glob.matches(&table, "email"));
        assert!(!other.matches(&table, "email"));
        assert!(!qualified.matches(&table, "name"));
        for bad in ["public.email", "", "a..b", "a.b.c.d"] {
            assert!(ColumnSelector::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_empty_scope_holds_every_table() {
        let table = customers();
        assert!(TableScope::default().contains(&table));
        assert!(TableScope(vec!["public.*".into()]).contains(&table));
        assert!(!TableScope(vec!["sales.*".into()]).contains(&table));
    }
}
