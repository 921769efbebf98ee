//! Property tests: values rendered the way the server's output functions print them decode back
//! to the same value, and no text or byte string ever makes a decoder panic.

use proptest::prelude::*;
use sluice_api::{civil_from_days, Decimal, Infinite, Numeric, PgInterval, Value};

use super::{decode_binary, decode_text, test_catalog};

const MICROS_PER_DAY: i64 = 86_400_000_000;
/// `4713-11-24 BC`, the first day the server accepts, in days since 1970-01-01.
const FIRST_DAY: i64 = -2_440_222;
/// `5874897-12-31`, the last date.
const LAST_DAY: i64 = 2_145_042_905;

/// `YYYY-MM-DD` and whether the era suffix ` BC` is due.
fn render_date(days: i64) -> (String, bool) {
    let (year, month, day) = civil_from_days(days);
    let bc = year <= 0;
    let shown = if bc { 1 - year } else { year };
    (format!("{shown:04}-{month:02}-{day:02}"), bc)
}

/// `HH:MM:SS[.ffffff]` with trailing zeros of the fraction trimmed, as `AppendSeconds` does.
fn render_time(micros: u64) -> String {
    let seconds = micros / 1_000_000;
    let fraction = micros % 1_000_000;
    let mut text = format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    if fraction != 0 {
        text.push_str(format!(".{fraction:06}").trim_end_matches('0'));
    }
    text
}

/// `+HH`, `+HH:MM` or `+HH:MM:SS`, the shortest that is exact.
fn render_offset(offset: i32) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let abs = offset.unsigned_abs();
    let (hours, minutes, seconds) = (abs / 3600, abs / 60 % 60, abs % 60);
    match (minutes, seconds) {
        (0, 0) => format!("{sign}{hours:02}"),
        (_, 0) => format!("{sign}{hours:02}:{minutes:02}"),
        _ => format!("{sign}{hours:02}:{minutes:02}:{seconds:02}"),
    }
}

fn render_timestamp(micros: i64, offset: Option<i32>) -> String {
    let local = micros + i64::from(offset.unwrap_or(0)) * 1_000_000;
    let days = local.div_euclid(MICROS_PER_DAY);
    let (date, bc) = render_date(days);
    let time = render_time(local.rem_euclid(MICROS_PER_DAY) as u64);
    let zone = offset.map(render_offset).unwrap_or_default();
    let era = if bc { " BC" } else { "" };
    format!("{date} {time}{zone}{era}")
}

/// `interval_out` in the `postgres` style (`EncodeInterval`, `INTSTYLE_POSTGRES`).
fn render_interval(interval: PgInterval) -> String {
    let mut text = String::new();
    let mut is_before = false;
    let mut is_zero = true;
    let fields = [
        (i64::from(interval.months / 12), "year"),
        (i64::from(interval.months % 12), "mon"),
        (i64::from(interval.days), "day"),
    ];
    for (value, unit) in fields {
        if value == 0 {
            continue;
        }
        let space = if is_zero { "" } else { " " };
        let plus = if is_before && value > 0 { "+" } else { "" };
        let plural = if value != 1 { "s" } else { "" };
        text.push_str(&format!("{space}{plus}{value} {unit}{plural}"));
        is_before = value < 0;
        is_zero = false;
    }
    if is_zero || interval.micros != 0 {
        let space = if is_zero { "" } else { " " };
        let sign = if interval.micros < 0 {
            "-"
        } else if is_before {
            "+"
        } else {
            ""
        };
        let abs = interval.micros.unsigned_abs();
        let seconds = abs / 1_000_000;
        let fraction = abs % 1_000_000;
        text.push_str(&format!(
            "{space}{sign}{:02}:{:02}:{:02}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        ));
        if fraction != 0 {
            text.push_str(format!(".{fraction:06}").trim_end_matches('0'));
        }
    }
    text
}

/// `float8out` with shortest round-trip digits: `%g`-like exponent form outside 1e-4..1e15.
fn render_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let abs = value.abs();
    if abs != 0.0 && !(1e-4..1e15).contains(&abs) {
        let scientific = format!("{value:e}");
        let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    } else {
        format!("{value}")
    }
}

/// An element as `array_out` writes it: quoted when empty, `NULL`-like, or holding a
/// delimiter, brace, quote, backslash or whitespace; `"` and `\` escaped inside quotes.
fn render_array_element(element: &Option<String>) -> String {
    let Some(text) = element else {
        return "NULL".into();
    };
    let needs_quotes = text.is_empty()
        || text.eq_ignore_ascii_case("NULL")
        || text.chars().any(|c| {
            matches!(
                c,
                '{' | '}' | ',' | '"' | '\\' | ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'
            )
        });
    if !needs_quotes {
        return text.clone();
    }
    let mut out = String::from("\"");
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn text_array(elements: &[Option<String>]) -> Value {
    Value::Array(
        elements
            .iter()
            .map(|e| e.clone().map_or(Value::Null, Value::Text))
            .collect(),
    )
}

fn decode(oid: u32, text: &str) -> Value {
    decode_text(&test_catalog(), oid, text)
}

/// Every OID whose decoder the no-panic properties exercise: each scalar, arrays (including
/// `box`'s `;`), ranges, enums, domains (and a cyclic one), hstore, unknown types.
const DECODED_OIDS: &[u32] = &[
    16, 17, 18, 19, 20, 21, 23, 25, 26, 114, 142, 600, 601, 602, 603, 604, 628, 650, 700, 701, 718,
    774, 790, 829, 869, 1042, 1043, 1082, 1083, 1114, 1184, 1186, 1266, 1560, 1562, 1700, 2950,
    3802, 3904, 3906, 3908, 3910, 3912, 3926, 3220, 3614, 1000, 1007, 1009, 1017, 1020, 1115, 1185,
    1187, 1231, 2951, 3907, 16_385, 16_386, 16_390, 16_391, 16_392, 16_395, 16_396, 16_400, 16_401,
    16_402, 16_411, 99_999,
];

proptest! {
    #[test]
    fn integers_round_trip(a in any::<i16>(), b in any::<i32>(), c in any::<i64>(), o in any::<u32>()) {
        prop_assert_eq!(decode(21, &a.to_string()), Value::Int16(a));
        prop_assert_eq!(decode(23, &b.to_string()), Value::Int32(b));
        prop_assert_eq!(decode(20, &c.to_string()), Value::Int64(c));
        prop_assert_eq!(decode(26, &o.to_string()), Value::Int64(i64::from(o)));
    }

    #[test]
    fn floats_round_trip_bit_for_bit(value in any::<f64>(), single in any::<f32>()) {
        match decode(701, &render_float(value)) {
            Value::Float64(back) => prop_assert!(back.to_bits() == value.to_bits() || (back.is_nan() && value.is_nan())),
            other => prop_assert!(false, "decoded {:?}", other),
        }
        match decode(700, &render_float(f64::from(single))) {
            Value::Float32(back) => prop_assert!(back.to_bits() == single.to_bits() || (back.is_nan() && single.is_nan())),
            other => prop_assert!(false, "decoded {:?}", other),
        }
    }

    #[test]
    fn numerics_round_trip_exactly(negative in any::<bool>(), int in "0|[1-9][0-9]{0,40}", frac in "[0-9]{0,30}") {
        let mut text = String::new();
        if negative { text.push('-'); }
        text.push_str(&int);
        if !frac.is_empty() { text.push('.'); text.push_str(&frac); }
        let expected = Decimal::parse(&text).map(Numeric::Value).map(Value::Numeric);
        prop_assert_eq!(Some(decode(1700, &text)), expected.clone());
        let Some(Value::Numeric(Numeric::Value(decimal))) = expected else { unreachable!() };
        prop_assert_eq!(decimal.as_str(), text.as_str());
    }

    #[test]
    fn dates_round_trip(days in FIRST_DAY..=LAST_DAY) {
        let (date, bc) = render_date(days);
        let text = if bc { format!("{date} BC") } else { date };
        prop_assert_eq!(decode(1082, &text), Value::Date(Infinite::Finite(days as i32)));
    }

    #[test]
    fn timestamps_round_trip(micros in (FIRST_DAY * MICROS_PER_DAY)..=i64::MAX) {
        let text = render_timestamp(micros, None);
        prop_assert_eq!(decode(1114, &text), Value::Timestamp(Infinite::Finite(micros)), "{}", text);
    }

    #[test]
    fn timestamptz_round_trips_through_any_offset(
        micros in (FIRST_DAY * MICROS_PER_DAY + MICROS_PER_DAY)..=(i64::MAX - MICROS_PER_DAY),
        offset in -57_599i32..=57_599,
    ) {
        let text = render_timestamp(micros, Some(offset));
        prop_assert_eq!(decode(1184, &text), Value::TimestampTz(Infinite::Finite(micros)), "{}", text);
    }

    #[test]
    fn times_round_trip(micros in 0u64..=86_400_000_000, offset in -57_599i32..=57_599) {
        prop_assert_eq!(decode(1083, &render_time(micros)), Value::Time(micros as i64));
        let text = format!("{}{}", render_time(micros), render_offset(offset));
        prop_assert_eq!(decode(1266, &text), Value::TimeTz { micros: micros as i64, offset_seconds: offset });
    }

    #[test]
    fn intervals_round_trip(months in any::<i32>(), days in any::<i32>(), micros in any::<i64>()) {
        let interval = PgInterval { months, days, micros };
        let text = render_interval(interval);
        prop_assert_eq!(decode(1186, &text), Value::Interval(interval), "{}", text);
    }

    #[test]
    fn uuids_round_trip(bytes in any::<[u8; 16]>()) {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let text = format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]);
        prop_assert_eq!(decode(2950, &text), Value::Uuid(bytes));
    }

    #[test]
    fn text_arrays_round_trip(elements in proptest::collection::vec(proptest::option::of(any::<String>()), 0..8)) {
        let text = format!("{{{}}}", elements.iter().map(render_array_element).collect::<Vec<_>>().join(","));
        prop_assert_eq!(decode(1009, &text), text_array(&elements), "{}", text);
    }

    #[test]
    fn two_dimensional_text_arrays_round_trip(
        rows in proptest::collection::vec(proptest::collection::vec(proptest::option::of("[a-z\" ,{}\\\\]{0,6}"), 2), 1..4),
    ) {
        let text = format!(
            "{{{}}}",
            rows.iter()
                .map(|row| format!("{{{}}}", row.iter().map(render_array_element).collect::<Vec<_>>().join(",")))
                .collect::<Vec<_>>()
                .join(",")
        );
        let expected = Value::Array(rows.iter().map(|row| text_array(row)).collect());
        prop_assert_eq!(decode(1009, &text), expected, "{}", text);
    }

    #[test]
    fn arbitrary_text_never_panics(index in 0..DECODED_OIDS.len(), text in any::<String>()) {
        let _ = decode(DECODED_OIDS[index], &text);
    }

    #[test]
    fn near_miss_text_never_panics(
        index in 0..DECODED_OIDS.len(),
        text in "[-0-9:+. a-zA-Z{}()<>\\[\\]\",;=>\\\\]{0,40}",
    ) {
        let _ = decode(DECODED_OIDS[index], &text);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_binary_decoder(
        index in 0..DECODED_OIDS.len(),
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let _ = decode_binary(&test_catalog(), DECODED_OIDS[index], &bytes);
    }
}
