//! Array literals as `array_out` prints them: `{1,2}`, `{{1,2},{3,4}}`, `{"a b",NULL,"x\"y"}`,
//! `[0:1]={1,2}`, and `{(3,4),(1,2);(1,1),(0,0)}` for `box`, whose delimiter is `;`.
//! Elements decode as the element type (domains, enums and user types included); the nesting
//! of dimensions becomes nested [`Value::Array`]s.

use std::borrow::Cow;

use sluice_api::Value;

use super::decode_typed;
use crate::types::TypeCatalog;

/// PostgreSQL's limit on array dimensions (`MAXDIM`); deeper nesting is malformed.
const MAX_DIMENSIONS: usize = 6;

/// Parse an array literal of `element` values split on `delimiter`.
pub(super) fn parse(
    catalog: &TypeCatalog,
    element: u32,
    delimiter: u8,
    text: &str,
    depth: usize,
) -> Option<Value> {
    let mut parser = ArrayParser {
        catalog,
        element,
        delimiter,
        depth,
        text,
        pos: 0,
    };
    parser.skip_dimensions()?;
    parser.skip_whitespace();
    let value = parser.level(1)?;
    parser.skip_whitespace();
    (parser.pos == text.len()).then_some(value)
}

struct ArrayParser<'a> {
    catalog: &'a TypeCatalog,
    element: u32,
    delimiter: u8,
    depth: usize,
    text: &'a str,
    pos: usize,
}

impl<'a> ArrayParser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(is_array_space) {
            self.pos += 1;
        }
    }

    /// The optional `[lower:upper]...=` decoration, printed when a lower bound is not 1. The
    /// bounds are not part of the value: the elements are.
    fn skip_dimensions(&mut self) -> Option<()> {
        if self.peek() != Some(b'[') {
            return Some(());
        }
        let bytes = self.text.as_bytes();
        let equals = bytes.iter().position(|&b| b == b'=')?;
        let decoration = &bytes[..equals];
        let well_formed = decoration.iter().all(|&b| {
            b.is_ascii_digit() || matches!(b, b'[' | b']' | b':' | b'-' | b'+') || is_array_space(b)
        });
        if !well_formed {
            return None;
        }
        self.pos = equals + 1;
        Some(())
    }

    /// One `{...}` level; `dimension` counts from 1.
    fn level(&mut self, dimension: usize) -> Option<Value> {
        if dimension > MAX_DIMENSIONS || self.peek() != Some(b'{') {
            return None;
        }
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Some(Value::Array(items));
        }
        loop {
            self.skip_whitespace();
            let item = match self.peek()? {
                b'{' => self.level(dimension + 1)?,
                b'"' => {
                    let text = self.quoted()?;
                    decode_typed(self.catalog, self.element, &text, self.depth + 1)?
                }
                _ => match self.unquoted()? {
                    None => Value::Null,
                    Some(text) => decode_typed(self.catalog, self.element, &text, self.depth + 1)?,
                },
            };
            items.push(item);
            self.skip_whitespace();
            match self.peek()? {
                b'}' => {
                    self.pos += 1;
                    return Some(Value::Array(items));
                }
                b if b == self.delimiter => self.pos += 1,
                _ => return None,
            }
        }
    }

    /// A `"..."` element; `\` escapes the next character. Borrowed unless it has escapes.
    fn quoted(&mut self) -> Option<Cow<'a, str>> {
        let bytes = self.text.as_bytes();
        let start = self.pos + 1;
        let mut at = start;
        let mut escaped = false;
        loop {
            match *bytes.get(at)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    at += 2;
                }
                _ => at += 1,
            }
        }
        self.pos = at + 1;
        let raw = &self.text[start..at];
        Some(if escaped {
            Cow::Owned(unescape(raw))
        } else {
            Cow::Borrowed(raw)
        })
    }

    /// An unquoted element up to the delimiter or `}`, surrounding whitespace dropped;
    /// `None` inside for a `NULL` element (any case, not quoted, not escaped).
    fn unquoted(&mut self) -> Option<Option<Cow<'a, str>>> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let mut at = start;
        let mut escaped = false;
        loop {
            match *bytes.get(at)? {
                b'\\' => {
                    escaped = true;
                    at += 2;
                }
                b'}' | b'{' | b'"' => break,
                b if b == self.delimiter => break,
                _ => at += 1,
            }
        }
        // `at` can step past the end only through a trailing backslash, caught by `get` above.
        self.pos = at;
        let raw = &self.text[start..at];
        if raw.trim_end_matches(is_space_char).is_empty() || bytes[at] == b'{' || bytes[at] == b'"'
        {
            return None;
        }
        if escaped {
            return Some(Some(Cow::Owned(unescape_unquoted(raw))));
        }
        let raw = raw.trim_end_matches(is_space_char);
        if raw.eq_ignore_ascii_case("NULL") {
            return Some(None);
        }
        Some(Some(Cow::Borrowed(raw)))
    }
}

/// An unquoted element's text: escaping backslashes dropped, and trailing whitespace too unless
/// it was escaped (as `array_in` reads it).
fn unescape_unquoted(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut kept_len = 0;
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(escaped) = chars.next() {
                out.push(escaped);
                kept_len = out.len();
            }
        } else {
            out.push(c);
            if !is_space_char(c) {
                kept_len = out.len();
            }
        }
    }
    out.truncate(kept_len);
    out
}

/// Drop each escaping backslash, keeping the character it escapes.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(escaped) = chars.next() {
                out.push(escaped);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn is_space_char(c: char) -> bool {
    c.is_ascii() && is_array_space(c as u8)
}

/// Whitespace as `array_in` skips it.
fn is_array_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}
