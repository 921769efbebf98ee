//! Booleans, numbers (integers parse with `str::parse` in the dispatcher), exact numerics,
//! `money`, `uuid` and bit strings.

use std::str::FromStr;

use sluice_api::{Decimal, Numeric};

/// `t` / `f`, as `boolout` prints them (and the spelled-out forms, for hand-written input).
pub(super) fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "t" | "true" => Some(true),
        "f" | "false" => Some(false),
        _ => None,
    }
}

/// `float4` / `float8`: shortest round-trip digits, `NaN`, `Infinity`, `-Infinity`, which
/// Rust's float parser all accepts.
pub(super) fn parse_float<F: FromStr>(text: &str) -> Option<F> {
    text.parse().ok()
}

/// `numeric`: exact digits (never an exponent in `numeric_out`), or a special value.
pub(super) fn parse_numeric(text: &str) -> Option<Numeric> {
    match text {
        "NaN" => Some(Numeric::NaN),
        "Infinity" => Some(Numeric::PositiveInfinity),
        "-Infinity" => Some(Numeric::NegativeInfinity),
        _ => Decimal::parse(text).map(Numeric::Value),
    }
}

/// `money`, whose text depends on the server's `lc_monetary`: `$1,234.56`, `-$1,234.56`,
/// `($1,234.56)`, `1.234,56 €`, `-1 234,56 EUR`, `￥1,235`. Currency symbols, spaces and
/// grouping characters are dropped; a minus sign or parentheses make it negative.
///
/// The decimal separator is not announced, so it is inferred: with both `.` and `,` present the
/// last one is the separator; a single kind is a separator when it occurs once and is not
/// followed by exactly three digits (a locale with three fraction digits would be misread as
/// grouping, an accepted limit of reading `money` as text).
pub(super) fn parse_money(text: &str) -> Option<Decimal> {
    let bytes = text.as_bytes();
    let negative = bytes.iter().any(|&b| b == b'-' || b == b'(');
    let mut last_dot = None;
    let mut last_comma = None;
    let mut dot_count = 0usize;
    let mut comma_count = 0usize;
    let mut digit_count = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        // A `.` or `,` not followed by a digit is part of a symbol (`Fr.`), not of the number.
        let before_digit = bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
        match b {
            b'0'..=b'9' => digit_count += 1,
            b'.' if before_digit => {
                dot_count += 1;
                last_dot = Some(i);
            }
            b',' if before_digit => {
                comma_count += 1;
                last_comma = Some(i);
            }
            _ => {}
        }
    }
    if digit_count == 0 {
        return None;
    }
    let separator = match (last_dot, last_comma) {
        (Some(dot), Some(comma)) => Some(dot.max(comma)),
        (Some(at), None) if dot_count == 1 => Some(at),
        (None, Some(at)) if comma_count == 1 => Some(at),
        _ => None,
    }
    .filter(|&at| {
        let both_kinds = last_dot.is_some() && last_comma.is_some();
        both_kinds
            || bytes[at + 1..]
                .iter()
                .filter(|b| b.is_ascii_digit())
                .count()
                != 3
    });
    let mut canonical = String::with_capacity(digit_count + 2);
    if negative {
        canonical.push('-');
    }
    for (i, &b) in bytes.iter().enumerate() {
        if b.is_ascii_digit() {
            canonical.push(char::from(b));
        } else if Some(i) == separator {
            if canonical.len() == usize::from(negative) {
                canonical.push('0');
            }
            canonical.push('.');
        }
    }
    if canonical.ends_with('.') {
        canonical.pop();
    }
    Decimal::parse(&canonical)
}

/// `uuid`: the canonical `8-4-4-4-12` hex form `uuid_out` prints, or 32 bare hex digits.
pub(super) fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let bytes = text.as_bytes();
    let hyphenated = match bytes.len() {
        36 => true,
        32 => false,
        _ => return None,
    };
    let mut out = [0u8; 16];
    let mut pos = 0;
    for (i, byte) in out.iter_mut().enumerate() {
        if hyphenated && matches!(i, 4 | 6 | 8 | 10) {
            if bytes[pos] != b'-' {
                return None;
            }
            pos += 1;
        }
        *byte = hex_value(bytes[pos])? << 4 | hex_value(bytes[pos + 1])?;
        pos += 2;
    }
    Some(out)
}

/// `bit(n)` / `varbit`: a string of `0` and `1`, packed most significant bit first.
pub(super) fn parse_bits(text: &str) -> Option<(u32, Vec<u8>)> {
    let len = u32::try_from(text.len()).ok()?;
    let mut data = vec![0u8; text.len().div_ceil(8)];
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'0' => {}
            b'1' => data[i / 8] |= 0x80 >> (i % 8),
            _ => return None,
        }
    }
    Some((len, data))
}

/// The value of one hex digit, either case.
pub(super) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(text: &str) -> Option<String> {
        parse_money(text).map(|d| d.as_str().to_string())
    }

    #[test]
    fn money_in_the_c_locale_drops_the_symbol_and_grouping() {
        assert_eq!(money("$1,234.56").as_deref(), Some("1234.56"));
        assert_eq!(money("-$1,234.56").as_deref(), Some("-1234.56"));
        assert_eq!(money("($1,234.56)").as_deref(), Some("-1234.56"));
        assert_eq!(money("$0.01").as_deref(), Some("0.01"));
        assert_eq!(
            money("-$92,233,720,368,547,758.08").as_deref(),
            Some("-92233720368547758.08")
        );
    }

    #[test]
    fn money_in_european_locales_reads_the_comma_as_the_decimal_separator() {
        assert_eq!(money("1.234,56 €").as_deref(), Some("1234.56"));
        assert_eq!(money("-1 234,56 EUR").as_deref(), Some("-1234.56"));
        assert_eq!(money("Fr. 1'234.50").as_deref(), Some("1234.50"));
        assert_eq!(money("12,5 €").as_deref(), Some("12.5"));
    }

    #[test]
    fn money_without_fraction_digits_treats_three_digit_groups_as_grouping() {
        assert_eq!(money("￥1,235").as_deref(), Some("1235"));
        assert_eq!(money("￥1,234,567").as_deref(), Some("1234567"));
        assert_eq!(money("$.5").as_deref(), Some("0.5"));
    }

    #[test]
    fn money_without_digits_is_rejected() {
        assert_eq!(money(""), None);
        assert_eq!(money("$"), None);
        assert_eq!(money("(.)"), None);
    }

    #[test]
    fn numeric_special_values_are_recognised() {
        assert_eq!(parse_numeric("NaN"), Some(Numeric::NaN));
        assert_eq!(parse_numeric("Infinity"), Some(Numeric::PositiveInfinity));
        assert_eq!(parse_numeric("-Infinity"), Some(Numeric::NegativeInfinity));
        assert_eq!(parse_numeric("nan"), None);
        assert_eq!(parse_numeric("1e5"), None);
    }

    #[test]
    fn uuids_parse_in_canonical_and_bare_hex_form() {
        let expected = [
            0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
            0x0a, 0x11,
        ];
        assert_eq!(
            parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            Some(expected)
        );
        assert_eq!(
            parse_uuid("A0EEBC999C0B4EF8BB6D6BB9BD380A11"),
            Some(expected)
        );
        assert_eq!(parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g"), None);
        assert_eq!(parse_uuid("a0eebc99x9c0b-4ef8-bb6d-6bb9bd380a11"), None);
        assert_eq!(parse_uuid("a0eebc99"), None);
    }

    #[test]
    fn bit_strings_pack_most_significant_bit_first() {
        assert_eq!(parse_bits("0101"), Some((4, vec![0b0101_0000])));
        assert_eq!(
            parse_bits("1010101010"),
            Some((10, vec![0b1010_1010, 0b1000_0000]))
        );
        assert_eq!(parse_bits(""), Some((0, vec![])));
        assert_eq!(parse_bits("012"), None);
    }

    #[test]
    fn floats_accept_the_special_values_postgres_prints() {
        assert!(parse_float::<f64>("NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_float::<f64>("Infinity"), Some(f64::INFINITY));
        assert_eq!(parse_float::<f32>("-Infinity"), Some(f32::NEG_INFINITY));
        assert_eq!(parse_float::<f64>("1e+300"), Some(1e300));
        assert_eq!(parse_float::<f32>("0.1"), Some(0.1f32));
        assert_eq!(parse_float::<f64>("one"), None);
    }

    #[test]
    fn booleans_are_t_and_f() {
        assert_eq!(parse_bool("t"), Some(true));
        assert_eq!(parse_bool("f"), Some(false));
        assert_eq!(parse_bool("yes"), None);
    }
}
