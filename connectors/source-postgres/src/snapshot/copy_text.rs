//! PostgreSQL's COPY text format, parsed: one row per line, columns separated by tabs, `\N`
//! for NULL, backslash escapes inside values. Each column's text is the same output form
//! pgoutput sends, so it goes through the stream's own decoding ([`decode_text`]) and snapshot
//! rows have exactly the values streamed rows would have.
//!
//! Hot path: a value without a backslash is decoded from a borrowed slice of the line.

use std::borrow::Cow;

use sluice_api::{Row, Value};

use crate::types::TypeCatalog;
use crate::values::decode_text;

/// Decode one line (without its newline) into a row of `type_oids.len()` values. `None` when
/// the line has the wrong column count. A value that is not UTF-8 (a `SQL_ASCII` database
/// passes bytes through unchecked) becomes [`Value::Unknown`] with U+FFFD for what cannot be
/// read, exactly as the stream decodes it.
pub fn parse_row(catalog: &TypeCatalog, type_oids: &[u32], line: &[u8]) -> Option<Row> {
    let mut row = Vec::with_capacity(type_oids.len());
    let mut fields = line.split(|b| *b == b'\t');
    for &oid in type_oids {
        let field = fields.next()?;
        if field == b"\\N" {
            row.push(Value::Null);
            continue;
        }
        row.push(match unescape(field) {
            Ok(text) => decode_text(catalog, oid, &text),
            Err(bytes) => Value::Unknown {
                type_name: catalog.type_name(oid),
                text: String::from_utf8_lossy(&bytes).into_owned(),
            },
        });
    }
    if fields.next().is_some() {
        return None;
    }
    Some(row)
}

/// A field's text with COPY's backslash escapes resolved; its bytes when they are not UTF-8.
fn unescape(field: &[u8]) -> Result<Cow<'_, str>, Cow<'_, [u8]>> {
    if !field.contains(&b'\\') {
        return std::str::from_utf8(field)
            .map(Cow::Borrowed)
            .map_err(|_| Cow::Borrowed(field));
    }
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' || i + 1 == field.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let next = field[i + 1];
        i += 2;
        match next {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut value = u32::from(next - b'0');
                let mut digits = 1;
                while digits < 3 && i < field.len() && (b'0'..=b'7').contains(&field[i]) {
                    value = value * 8 + u32::from(field[i] - b'0');
                    i += 1;
                    digits += 1;
                }
                out.push((value & 0xff) as u8);
            }
            b'x' if i < field.len() && field[i].is_ascii_hexdigit() => {
                let mut value = 0u32;
                let mut digits = 0;
                while digits < 2 && i < field.len() && field[i].is_ascii_hexdigit() {
                    value = value * 16 + (field[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    digits += 1;
                }
                out.push(value as u8);
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|e| Cow::Owned(e.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_nulls_are_resolved() {
        let catalog = TypeCatalog::builtin();
        let row = parse_row(&catalog, &[23, 25, 25], b"7\ta\\tb\\\\c\\nd\t\\N").unwrap();
        assert_eq!(
            row,
            vec![
                Value::Int32(7),
                Value::Text("a\tb\\c\nd".into()),
                Value::Null
            ]
        );
    }

    #[test]
    fn octal_and_hex_escapes_give_bytes() {
        assert_eq!(unescape(b"\\101\\x42").unwrap(), "AB");
    }

    #[test]
    fn a_line_with_the_wrong_column_count_is_refused() {
        let catalog = TypeCatalog::builtin();
        assert_eq!(parse_row(&catalog, &[23, 23], b"1"), None);
        assert_eq!(parse_row(&catalog, &[23], b"1\t2"), None);
    }
}
