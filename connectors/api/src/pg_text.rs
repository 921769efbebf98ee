//! PostgreSQL's text form of any [`Value`]: what a column whose type the envelope carries as a
//! plain string (ranges, geometric types other than `point`, unknown types) holds, and how a
//! value of a different type than its column's schema expects is still written without loss.

use std::fmt::Write as _;

use crate::calendar as temporal;
use crate::{Geometry, Infinite, Numeric, RangeValue, Value};

/// Append the PostgreSQL text form of `value` to `out`. `Null` and unchanged TOAST values have
/// no text form and append nothing.
pub fn push_pg_text(out: &mut String, value: &Value) {
    match value {
        Value::Null | Value::UnchangedToast => {}
        Value::Bool(b) => out.push(if *b { 't' } else { 'f' }),
        Value::Int16(v) => push_display(out, v),
        Value::Int32(v) => push_display(out, v),
        Value::Int64(v) => push_display(out, v),
        Value::Float32(v) => push_float(out, *v),
        Value::Float64(v) => push_float(out, *v),
        Value::Numeric(n) => out.push_str(numeric_text(n)),
        Value::Money(d) => out.push_str(d.as_str()),
        Value::Text(s)
        | Value::Json(s)
        | Value::Jsonb(s)
        | Value::Xml(s)
        | Value::Inet(s)
        | Value::Cidr(s)
        | Value::MacAddr(s)
        | Value::Enum(s) => out.push_str(s),
        Value::Unknown { text, .. } => out.push_str(text),
        Value::Bytes(bytes) => {
            out.push_str("\\x");
            for b in bytes {
                let _ = write!(out, "{b:02x}");
            }
        }
        Value::Date(d) => push_infinite(out, d, |out, days| {
            out.push_str(&temporal::pg_date(i64::from(days)))
        }),
        Value::Time(micros) => out.push_str(&temporal::pg_time(*micros)),
        Value::TimeTz {
            micros,
            offset_seconds,
        } => out.push_str(&temporal::pg_timetz(*micros, *offset_seconds)),
        Value::Timestamp(ts) => push_infinite(out, ts, |out, us| {
            out.push_str(&temporal::pg_timestamp(us, false))
        }),
        Value::TimestampTz(ts) => push_infinite(out, ts, |out, us| {
            out.push_str(&temporal::pg_timestamp(us, true))
        }),
        Value::Interval(iv) => out.push_str(&temporal::pg_interval(*iv)),
        Value::Uuid(bytes) => out.push_str(&uuid_text(bytes)),
        Value::Bits { len, data } => {
            for i in 0..*len as usize {
                let bit = data.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0);
                out.push(if bit { '1' } else { '0' });
            }
        }
        Value::Array(items) => push_array(out, items),
        Value::Range(range) => push_range(out, range),
        Value::Hstore(pairs) => {
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_quoted(out, k);
                out.push_str("=>");
                match v {
                    Some(v) => push_quoted(out, v),
                    None => out.push_str("NULL"),
                }
            }
        }
        Value::Geometry(g) => push_geometry(out, g),
    }
}

/// The PostgreSQL text form of `value` as a new string.
pub fn pg_text(value: &Value) -> String {
    let mut out = String::new();
    push_pg_text(&mut out, value);
    out
}

/// A `numeric`'s text, with PostgreSQL's spelling of its special values.
pub fn numeric_text(n: &Numeric) -> &str {
    match n {
        Numeric::Value(d) => d.as_str(),
        Numeric::NaN => "NaN",
        Numeric::PositiveInfinity => "Infinity",
        Numeric::NegativeInfinity => "-Infinity",
    }
}

/// The canonical lowercase, hyphenated form of a UUID.
pub fn uuid_text(bytes: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn push_display(out: &mut String, v: impl std::fmt::Display) {
    let _ = write!(out, "{v}");
}

/// Shortest round-trip digits of the value's own width (a `real` prints as `0.1`, not as the
/// widened double), with PostgreSQL's spelling of the special values.
fn push_float<F: Into<f64> + Copy + std::fmt::Display>(out: &mut String, v: F) {
    let wide: f64 = v.into();
    if wide.is_nan() {
        out.push_str("NaN");
    } else if wide.is_infinite() {
        out.push_str(if wide > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        push_display(out, v);
    }
}

fn push_infinite<T: Copy>(out: &mut String, v: &Infinite<T>, finite: impl FnOnce(&mut String, T)) {
    match v {
        Infinite::Finite(t) => finite(out, *t),
        Infinite::PositiveInfinity => out.push_str("infinity"),
        Infinite::NegativeInfinity => out.push_str("-infinity"),
    }
}

/// Double-quoted with `"` and `\` escaped, as array elements, range bounds and hstore use.
fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// An element or bound is quoted when empty, `NULL`, or holding a delimiter, quote or space.
fn push_element(out: &mut String, value: &Value, specials: &[char]) {
    let text = pg_text(value);
    let needs_quotes = text.is_empty()
        || text.eq_ignore_ascii_case("null")
        || text
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\\' || specials.contains(&c));
    if needs_quotes {
        push_quoted(out, &text);
    } else {
        out.push_str(&text);
    }
}

fn push_array(out: &mut String, items: &[Value]) {
    out.push('{');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match item {
            Value::Null => out.push_str("NULL"),
            Value::Array(inner) => push_array(out, inner),
            other => push_element(out, other, &['{', '}', ',']),
        }
    }
    out.push('}');
}

fn push_range(out: &mut String, range: &RangeValue) {
    if range.empty {
        out.push_str("empty");
        return;
    }
    out.push(if range.lower_inclusive { '[' } else { '(' });
    if let Some(lower) = &range.lower {
        push_element(out, lower, &['(', ')', '[', ']', ',']);
    }
    out.push(',');
    if let Some(upper) = &range.upper {
        push_element(out, upper, &['(', ')', '[', ']', ',']);
    }
    out.push(if range.upper_inclusive { ']' } else { ')' });
}

fn push_point(out: &mut String, (x, y): (f64, f64)) {
    out.push('(');
    push_float(out, x);
    out.push(',');
    push_float(out, y);
    out.push(')');
}

fn push_points(out: &mut String, points: &[(f64, f64)]) {
    for (i, p) in points.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_point(out, *p);
    }
}

fn push_geometry(out: &mut String, g: &Geometry) {
    match g {
        Geometry::Point { x, y } => push_point(out, (*x, *y)),
        Geometry::Line { a, b, c } => {
            out.push('{');
            push_float(out, *a);
            out.push(',');
            push_float(out, *b);
            out.push(',');
            push_float(out, *c);
            out.push('}');
        }
        Geometry::LineSegment(ends) => {
            out.push('[');
            push_points(out, ends);
            out.push(']');
        }
        Geometry::Box(corners) => push_points(out, corners),
        Geometry::Path { closed, points } => {
            out.push(if *closed { '(' } else { '[' });
            push_points(out, points);
            out.push(if *closed { ')' } else { ']' });
        }
        Geometry::Polygon(points) => {
            out.push('(');
            push_points(out, points);
            out.push(')');
        }
        Geometry::Circle { x, y, radius } => {
            out.push('<');
            push_point(out, (*x, *y));
            out.push(',');
            push_float(out, *radius);
            out.push('>');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_arrays_render_as_the_server_prints_them() {
        let range = RangeValue {
            empty: false,
            lower: Some(Value::Int32(1)),
            upper: None,
            lower_inclusive: true,
            upper_inclusive: false,
        };
        assert_eq!(pg_text(&Value::Range(Box::new(range))), "[1,)");
        let array = Value::Array(vec![
            Value::Text("a b".into()),
            Value::Null,
            Value::Text("c".into()),
        ]);
        assert_eq!(pg_text(&array), "{\"a b\",NULL,c}");
    }

    #[test]
    fn bits_bytes_and_uuids_have_their_text_forms() {
        assert_eq!(
            pg_text(&Value::Bits {
                len: 5,
                data: vec![0b1010_1000]
            }),
            "10101"
        );
        assert_eq!(pg_text(&Value::Bytes(vec![0xde, 0xad])), "\\xdead");
        let mut uuid = [0u8; 16];
        uuid[15] = 1;
        assert_eq!(uuid_text(&uuid), "00000000-0000-0000-0000-000000000001");
    }

    #[test]
    fn geometry_and_hstore_render_as_text() {
        let circle = Value::Geometry(Geometry::Circle {
            x: 1.0,
            y: 2.5,
            radius: 3.0,
        });
        assert_eq!(pg_text(&circle), "<(1,2.5),3>");
        let hstore = Value::Hstore(vec![("k".into(), Some("v".into())), ("n".into(), None)]);
        assert_eq!(pg_text(&hstore), "\"k\"=>\"v\", \"n\"=>NULL");
    }
}
