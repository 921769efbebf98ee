//! Source columns and values in PostgreSQL's own terms: the target column type of each source
//! column, and each value in the text form PostgreSQL's input functions read. Every value is
//! sent as text and cast by the server (`$1::text::int4`), so one code path covers every type.
//!
//! Type mapping: built-in types keep their type (with length, precision and scale); types the
//! target may not have (enums, domains, extension types such as hstore, anything unknown)
//! become `text`, and arrays of them `text[]`.

use sluice_api::{civil_from_days, Column, Geometry, Infinite, Numeric, RangeValue, Value};

/// Built-in types created in the target under their own name.
const SAME_TYPES: &[&str] = &[
    "bool",
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "money",
    "text",
    "name",
    "bytea",
    "date",
    "time",
    "timetz",
    "timestamp",
    "timestamptz",
    "interval",
    "uuid",
    "json",
    "jsonb",
    "xml",
    "inet",
    "cidr",
    "macaddr",
    "macaddr8",
    "point",
    "line",
    "lseg",
    "box",
    "path",
    "polygon",
    "circle",
    "int4range",
    "int8range",
    "numrange",
    "daterange",
    "tsrange",
    "tstzrange",
    "oid",
    "tsvector",
    "tsquery",
];

/// The target column type for a source column.
pub fn target_type(column: &Column) -> String {
    match column.type_name.strip_prefix('_') {
        Some(element) => format!("{}[]", scalar_type(element, -1)),
        None => scalar_type(&column.type_name, column.type_modifier),
    }
}

fn scalar_type(name: &str, typmod: i32) -> String {
    match name {
        "varchar" | "bpchar" if typmod > 4 => format!("{}({})", name, typmod - 4),
        "varchar" => "varchar".into(),
        "bpchar" => "bpchar".into(),
        "numeric" if typmod > 4 => {
            let packed = typmod - 4;
            format!("numeric({},{})", (packed >> 16) & 0xffff, packed & 0xffff)
        }
        "numeric" => "numeric".into(),
        "bit" | "varbit" if typmod > 0 => format!("{name}({typmod})"),
        "bit" | "varbit" => name.into(),
        // `"char"`, a one-byte internal type: text holds it.
        "char" => "text".into(),
        known if SAME_TYPES.contains(&known) => known.into(),
        _ => "text".into(),
    }
}

/// A cell of a row to write: a value's text form, NULL, or "leave the target's value as is"
/// (an unchanged TOAST value the change did not carry).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Cell {
    Null,
    Text(String),
    Unchanged,
}

impl Cell {
    pub fn as_param(&self) -> Option<&str> {
        match self {
            Cell::Text(text) => Some(text),
            Cell::Null | Cell::Unchanged => None,
        }
    }
}

/// One value as a cell.
pub fn cell(value: &Value) -> Cell {
    match value {
        Value::Null => Cell::Null,
        Value::UnchangedToast => Cell::Unchanged,
        other => Cell::Text(text(other)),
    }
}

/// A value in PostgreSQL's text input form. `Null` and `UnchangedToast` never reach here
/// through [`cell`]; inside arrays and ranges `Null` is written as the element `NULL`.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null | Value::UnchangedToast => "NULL".into(),
        Value::Bool(b) => if *b { "t" } else { "f" }.into(),
        Value::Int16(v) => v.to_string(),
        Value::Int32(v) => v.to_string(),
        Value::Int64(v) => v.to_string(),
        Value::Float32(v) => float_text(f64::from(*v), v.to_string()),
        Value::Float64(v) => float_text(*v, v.to_string()),
        Value::Numeric(Numeric::Value(d)) | Value::Money(d) => d.as_str().into(),
        Value::Numeric(Numeric::NaN) => "NaN".into(),
        Value::Numeric(Numeric::PositiveInfinity) => "Infinity".into(),
        Value::Numeric(Numeric::NegativeInfinity) => "-Infinity".into(),
        Value::Text(s)
        | Value::Json(s)
        | Value::Jsonb(s)
        | Value::Xml(s)
        | Value::Inet(s)
        | Value::Cidr(s)
        | Value::MacAddr(s)
        | Value::Enum(s) => s.clone(),
        Value::Bytes(bytes) => {
            let mut out = String::with_capacity(2 + bytes.len() * 2);
            out.push_str("\\x");
            for b in bytes {
                out.push_str(&format!("{b:02x}"));
            }
            out
        }
        Value::Date(d) => infinite(d, |days| date_text(i64::from(*days))),
        Value::Time(micros) => time_text(*micros),
        Value::TimeTz {
            micros,
            offset_seconds,
        } => format!("{}{}", time_text(*micros), offset_text(*offset_seconds)),
        Value::Timestamp(ts) => infinite(ts, |m| timestamp_text(*m)),
        Value::TimestampTz(ts) => infinite(ts, |m| format!("{}+00", timestamp_text(*m))),
        Value::Interval(i) => format!(
            "{} mons {} days {} microseconds",
            i.months, i.days, i.micros
        ),
        Value::Uuid(b) => uuid_text(b),
        Value::Bits { len, data } => (0..*len as usize)
            .map(|i| {
                let byte = data.get(i / 8).copied().unwrap_or(0);
                if byte & (0x80 >> (i % 8)) != 0 {
                    '1'
                } else {
                    '0'
                }
            })
            .collect(),
        Value::Array(items) => array_text(items),
        Value::Range(range) => range_text(range),
        Value::Hstore(pairs) => pairs
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{}=>{}", quoted(k), quoted(v)),
                None => format!("{}=>NULL", quoted(k)),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Value::Geometry(g) => geometry_text(g),
        Value::Unknown { text, .. } => text.clone(),
    }
}

fn float_text(v: f64, shortest: String) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        shortest
    }
}

fn infinite<T>(v: &Infinite<T>, finite: impl Fn(&T) -> String) -> String {
    match v {
        Infinite::Finite(t) => finite(t),
        Infinite::PositiveInfinity => "infinity".into(),
        Infinite::NegativeInfinity => "-infinity".into(),
    }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// `YYYY-MM-DD`, or `YYYY-MM-DD BC` for years before 1 (PostgreSQL has no year 0).
fn date_text(days: i64) -> String {
    let (year, month, day) = civil_from_days(days);
    if year <= 0 {
        format!("{:04}-{month:02}-{day:02} BC", 1 - year)
    } else {
        format!("{year:04}-{month:02}-{day:02}")
    }
}

fn time_text(micros: i64) -> String {
    let secs = micros / 1_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        micros % 1_000_000
    )
}

fn offset_text(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.unsigned_abs();
    format!("{sign}{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// `YYYY-MM-DD HH:MM:SS.ffffff[ BC]` for microseconds since the epoch.
fn timestamp_text(micros: i64) -> String {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let tod = time_text(micros.rem_euclid(MICROS_PER_DAY));
    let date = date_text(days);
    match date.strip_suffix(" BC") {
        Some(date) => format!("{date} {tod} BC"),
        None => format!("{date} {tod}"),
    }
}

fn uuid_text(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A double-quoted element with `"` and `\` escaped: valid in arrays, ranges and hstore.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn array_text(items: &[Value]) -> String {
    let elements: Vec<String> = items
        .iter()
        .map(|item| match item {
            Value::Null | Value::UnchangedToast => "NULL".into(),
            Value::Array(inner) => array_text(inner),
            other => quoted(&text(other)),
        })
        .collect();
    format!("{{{}}}", elements.join(","))
}

fn range_text(range: &RangeValue) -> String {
    if range.empty {
        return "empty".into();
    }
    let bound = |v: &Option<Value>| v.as_ref().map_or(String::new(), |v| quoted(&text(v)));
    format!(
        "{}{},{}{}",
        if range.lower_inclusive { '[' } else { '(' },
        bound(&range.lower),
        bound(&range.upper),
        if range.upper_inclusive { ']' } else { ')' }
    )
}

fn geometry_text(g: &Geometry) -> String {
    let point = |(x, y): &(f64, f64)| format!("({x},{y})");
    let points = |ps: &[(f64, f64)]| ps.iter().map(point).collect::<Vec<_>>().join(",");
    match g {
        Geometry::Point { x, y } => format!("({x},{y})"),
        Geometry::Line { a, b, c } => format!("{{{a},{b},{c}}}"),
        Geometry::LineSegment(p) => format!("[{}]", points(p)),
        Geometry::Box(p) => points(p),
        Geometry::Path { closed, points: ps } if *closed => format!("({})", points(ps)),
        Geometry::Path { points: ps, .. } => format!("[{}]", points(ps)),
        Geometry::Polygon(ps) => format!("({})", points(ps)),
        Geometry::Circle { x, y, radius } => format!("<({x},{y}),{radius}>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_api::{Decimal, PgInterval};

    fn column(type_name: &str, type_modifier: i32) -> Column {
        Column {
            name: "c".into(),
            type_oid: 0,
            type_name: type_name.into(),
            type_modifier,
            is_key: false,
        }
    }

    #[test]
    fn built_in_types_keep_their_type_and_modifiers() {
        assert_eq!(target_type(&column("int8", -1)), "int8");
        assert_eq!(target_type(&column("varchar", 24)), "varchar(20)");
        assert_eq!(
            target_type(&column("numeric", (12 << 16 | 2) + 4)),
            "numeric(12,2)"
        );
        assert_eq!(target_type(&column("numeric", -1)), "numeric");
        assert_eq!(target_type(&column("_int4", -1)), "int4[]");
        assert_eq!(target_type(&column("timestamptz", 6)), "timestamptz");
    }

    #[test]
    fn types_the_target_may_lack_fall_back_to_text() {
        assert_eq!(target_type(&column("mood", -1)), "text");
        assert_eq!(target_type(&column("hstore", -1)), "text");
        assert_eq!(target_type(&column("_mood", -1)), "text[]");
    }

    #[test]
    fn values_are_written_in_postgres_input_syntax() {
        assert_eq!(text(&Value::Bool(true)), "t");
        assert_eq!(text(&Value::Float64(f64::NEG_INFINITY)), "-Infinity");
        assert_eq!(
            text(&Value::Numeric(Numeric::Value(
                Decimal::parse("-1.50").unwrap()
            ))),
            "-1.50"
        );
        assert_eq!(text(&Value::Bytes(vec![0xde, 0xad])), "\\xdead");
        assert_eq!(text(&Value::Date(Infinite::Finite(0))), "1970-01-01");
        assert_eq!(
            text(&Value::Date(Infinite::Finite(-719_163))),
            "0001-12-31 BC"
        );
        assert_eq!(
            text(&Value::TimestampTz(Infinite::Finite(1_500_001))),
            "1970-01-01 00:00:01.500001+00"
        );
        assert_eq!(
            text(&Value::TimeTz {
                micros: 3_600_000_000,
                offset_seconds: -5400
            }),
            "01:00:00.000000-01:30:00"
        );
        assert_eq!(
            text(&Value::Interval(PgInterval {
                months: 1,
                days: -2,
                micros: 3
            })),
            "1 mons -2 days 3 microseconds"
        );
        assert_eq!(
            text(&Value::Array(vec![
                Value::Text("a\"b".into()),
                Value::Null,
                Value::Text("c,d".into())
            ])),
            r#"{"a\"b",NULL,"c,d"}"#
        );
        assert_eq!(
            text(&Value::Array(vec![
                Value::Array(vec![Value::Int32(1)]),
                Value::Array(vec![Value::Int32(2)])
            ])),
            r#"{{"1"},{"2"}}"#
        );
    }

    #[test]
    fn unchanged_toast_is_not_null() {
        assert_eq!(cell(&Value::UnchangedToast), Cell::Unchanged);
        assert_eq!(cell(&Value::Null), Cell::Null);
        assert_eq!(cell(&Value::Int32(3)), Cell::Text("3".into()));
    }
}
