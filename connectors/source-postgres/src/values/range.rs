//! Range literals as `range_out` prints them: `[1,10)`, `empty`, `(,5]`,
//! `["2024-01-01 00:00:00+00",infinity)`. Bounds decode as the range's subtype.

use std::borrow::Cow;

use sluice_api::{RangeValue, Value};

use super::decode_typed;
use crate::types::TypeCatalog;

/// Parse a range literal over `subtype`.
pub(super) fn parse(
    catalog: &TypeCatalog,
    subtype: u32,
    text: &str,
    depth: usize,
) -> Option<Value> {
    let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed.eq_ignore_ascii_case("empty") {
        return Some(Value::Range(Box::new(RangeValue {
            empty: true,
            lower: None,
            upper: None,
            lower_inclusive: false,
            upper_inclusive: false,
        })));
    }
    let bytes = trimmed.as_bytes();
    let lower_inclusive = match bytes.first()? {
        b'[' => true,
        b'(' => false,
        _ => return None,
    };
    let upper_inclusive = match bytes.last()? {
        b']' => true,
        b')' => false,
        _ => return None,
    };
    let mut pos = 1;
    let lower = bound(trimmed, &mut pos)?;
    if bytes.get(pos) != Some(&b',') {
        return None;
    }
    pos += 1;
    let upper = bound(trimmed, &mut pos)?;
    if pos != bytes.len() - 1 {
        return None;
    }
    let decode = |bound: Option<Cow<'_, str>>| match bound {
        None => Some(None),
        Some(text) => decode_typed(catalog, subtype, &text, depth + 1).map(Some),
    };
    Some(Value::Range(Box::new(RangeValue {
        empty: false,
        lower: decode(lower)?,
        upper: decode(upper)?,
        lower_inclusive,
        upper_inclusive,
    })))
}

/// One bound, read as `range_parse_bound` does: up to an unquoted `,`, `]` or `)`; `"` toggles
/// quoting, `""` inside quotes is a quote, `\` escapes the next character. Nothing at all is an
/// unbounded side (`None`); `""` is an empty-string bound. Borrowed unless quoted or escaped.
fn bound<'a>(text: &'a str, pos: &mut usize) -> Option<Option<Cow<'a, str>>> {
    let bytes = text.as_bytes();
    let start = *pos;
    let mut at = start;
    let mut in_quotes = false;
    let mut plain = true;
    loop {
        match *bytes.get(at)? {
            b'\\' => {
                plain = false;
                at += 2;
                continue;
            }
            b'"' => {
                plain = false;
                if in_quotes && bytes.get(at + 1) == Some(&b'"') {
                    at += 2;
                    continue;
                }
                in_quotes = !in_quotes;
            }
            b',' | b']' | b')' if !in_quotes => break,
            _ => {}
        }
        at += 1;
    }
    *pos = at;
    let raw = &text[start..at];
    if raw.is_empty() {
        return Some(None);
    }
    if plain {
        return Some(Some(Cow::Borrowed(raw)));
    }
    Some(Some(Cow::Owned(unquote(raw))))
}

/// The bound's characters with quoting and escapes removed.
fn unquote(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(escaped) = chars.next() {
                    out.push(escaped);
                }
            }
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                chars.next();
                out.push('"');
            }
            '"' => in_quotes = !in_quotes,
            _ => out.push(c),
        }
    }
    out
}
