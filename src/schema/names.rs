//! Avro names the way Debezium's schema name adjuster makes them: every character that may
//! not appear in an Avro name becomes `_`, and a name part may not start with a digit.

/// A full (dotted) Avro name: each dot-separated part sanitised with [`avro_name`].
pub fn avro_full_name(name: &str) -> String {
    name.split('.').map(avro_name).collect::<Vec<_>>().join(".")
}

/// One Avro name part (a record or field name): `[A-Za-z_][A-Za-z0-9_]*`. An invalid character,
/// or a leading digit, is replaced by `_`; an empty name becomes `_`.
pub fn avro_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len().max(1));
    for (i, c) in name.chars().enumerate() {
        let valid = c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit());
        out.push(if valid { c } else { '_' });
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_characters_and_leading_digits_become_underscores() {
        assert_eq!(avro_name("order-items"), "order_items");
        assert_eq!(avro_name("1st"), "_st");
        assert_eq!(avro_name("a1"), "a1");
        assert_eq!(avro_name("prix_€"), "prix__");
        assert_eq!(avro_name(""), "_");
    }

    #[test]
    fn every_part_of_a_full_name_is_sanitised() {
        assert_eq!(
            avro_full_name("my-app.public.2024 sales.Value"),
            "my_app.public._024_sales.Value"
        );
    }
}
