//! Debezium's representations of values that are not plain primitives, shared by the Avro and
//! JSON encoders: decimals as unscaled two's-complement bytes (any number of digits), bit
//! strings as little-endian bytes, points as WKB, hstore as a JSON object, and the text of every
//! semantic string type. Each function writes into a caller's buffer where it can.

use std::borrow::Cow;

use sluice_api::{Decimal, Infinite, Value};

use super::column_type::StringKind;
use super::temporal;
use sluice_api::pg_text::{numeric_text, pg_text, uuid_text};

/// Debezium's `ZonedTimestamp` text for PostgreSQL's infinities.
const POSITIVE_INFINITY_TEXT: &str = "infinity";
const NEGATIVE_INFINITY_TEXT: &str = "-infinity";

/// Write the unscaled value of `decimal` at `scale` as minimal big-endian two's-complement
/// bytes (Java's `BigInteger.toByteArray`) into `out`, replacing its contents. Extra fraction
/// digits are rounded half away from zero.
pub fn unscaled_bytes(decimal: &Decimal, scale: u32, out: &mut Vec<u8>) {
    out.clear();
    let text = decimal.as_str();
    let negative = decimal.is_negative();
    let body = text.trim_start_matches('-');
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let scale = scale as usize;
    let kept_frac = &frac[..frac.len().min(scale)];
    let round_up = frac.as_bytes().get(scale).is_some_and(|d| *d >= b'5');

    // Magnitude, big-endian base 256, built digit by digit: works for any digit count.
    let mut magnitude: Vec<u8> = Vec::with_capacity((int.len() + scale) / 2 + 1);
    let digits = int
        .bytes()
        .chain(kept_frac.bytes())
        .chain(std::iter::repeat_n(b'0', scale - kept_frac.len()));
    for digit in digits {
        mul_add(&mut magnitude, 10, u32::from(digit - b'0'));
    }
    if round_up {
        mul_add(&mut magnitude, 1, 1);
    }
    let is_zero = magnitude.iter().all(|b| *b == 0);
    if is_zero {
        out.push(0);
        return;
    }
    if negative {
        // Two's complement: invert and add one, then make sure the sign bit is set.
        for b in magnitude.iter_mut() {
            *b = !*b;
        }
        for b in magnitude.iter_mut().rev() {
            let (sum, carry) = b.overflowing_add(1);
            *b = sum;
            if !carry {
                break;
            }
        }
        if magnitude[0] & 0x80 == 0 {
            out.push(0xff);
        }
        // Drop redundant leading 0xff bytes (keep the sign bit).
        let skip = magnitude
            .windows(2)
            .take_while(|w| w[0] == 0xff && w[1] & 0x80 != 0)
            .count();
        out.extend_from_slice(&magnitude[skip..]);
    } else {
        if magnitude[0] & 0x80 != 0 {
            out.push(0);
        }
        out.extend_from_slice(&magnitude);
    }
}

/// `magnitude = magnitude * mul + add`, big-endian base 256; leading zero bytes trimmed.
fn mul_add(magnitude: &mut Vec<u8>, mul: u32, add: u32) {
    let mut carry = add;
    for b in magnitude.iter_mut().rev() {
        let v = u32::from(*b) * mul + carry;
        *b = (v & 0xff) as u8;
        carry = v >> 8;
    }
    while carry > 0 {
        magnitude.insert(0, (carry & 0xff) as u8);
        carry >>= 8;
    }
    while magnitude.len() > 1 && magnitude[0] == 0 {
        magnitude.remove(0);
    }
}

/// `io.debezium.data.Bits`: the bit string read as an unsigned integer (first bit most
/// significant), written as minimal little-endian bytes (Java's `BitSet.toByteArray`).
pub fn bits_bytes(len: u32, data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let len = len as usize;
    out.resize(len.div_ceil(8), 0);
    for i in 0..len {
        let set = data.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0);
        if set {
            let index = len - 1 - i;
            out[index / 8] |= 1 << (index % 8);
        }
    }
    while out.last() == Some(&0) {
        out.pop();
    }
}

/// The 21-byte little-endian WKB of a 2-D point, as Debezium's `Point.wkb` holds it.
pub fn point_wkb(x: f64, y: f64) -> [u8; 21] {
    let mut wkb = [0u8; 21];
    wkb[0] = 1; // little-endian
    wkb[1..5].copy_from_slice(&1u32.to_le_bytes()); // geometry type 1: point
    wkb[5..13].copy_from_slice(&x.to_le_bytes());
    wkb[13..21].copy_from_slice(&y.to_le_bytes());
    wkb
}

/// An hstore as the JSON object Debezium's json mode writes.
pub fn hstore_json(pairs: &[(String, Option<String>)]) -> String {
    let object: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.clone().map_or(serde_json::Value::Null, Into::into),
            )
        })
        .collect();
    serde_json::Value::Object(object).to_string()
}

/// The text a string field of `kind` holds for `value`; `None` when the value has no text
/// form for it (a `Null`, or an unchanged TOAST value, handled by the caller).
pub fn string_text(kind: StringKind, value: &Value) -> Option<Cow<'_, str>> {
    Some(match (kind, value) {
        (_, Value::Null | Value::UnchangedToast) => return None,
        (
            _,
            Value::Text(s)
            | Value::Json(s)
            | Value::Jsonb(s)
            | Value::Xml(s)
            | Value::Enum(s)
            | Value::Inet(s)
            | Value::Cidr(s)
            | Value::MacAddr(s),
        ) => Cow::Borrowed(s.as_str()),
        (_, Value::Unknown { text, .. }) => Cow::Borrowed(text.as_str()),
        (StringKind::Json, Value::Hstore(pairs)) => Cow::Owned(hstore_json(pairs)),
        (_, Value::Uuid(bytes)) => Cow::Owned(uuid_text(bytes)),
        (_, Value::Numeric(n)) => Cow::Borrowed(numeric_text(n)),
        (_, Value::Money(d)) => Cow::Borrowed(d.as_str()),
        (StringKind::ZonedTimestamp, Value::TimestampTz(ts) | Value::Timestamp(ts)) => match ts {
            Infinite::Finite(us) => Cow::Owned(temporal::zoned_timestamp(*us)),
            Infinite::PositiveInfinity => Cow::Borrowed(POSITIVE_INFINITY_TEXT),
            Infinite::NegativeInfinity => Cow::Borrowed(NEGATIVE_INFINITY_TEXT),
        },
        (
            StringKind::ZonedTime,
            Value::TimeTz {
                micros,
                offset_seconds,
            },
        ) => Cow::Owned(temporal::zoned_time(*micros, *offset_seconds)),
        (StringKind::ZonedTime, Value::Time(micros)) => {
            Cow::Owned(temporal::zoned_time(*micros, 0))
        }
        (StringKind::Interval, Value::Interval(iv)) => Cow::Owned(temporal::interval_iso(*iv)),
        (_, other) => Cow::Owned(pg_text(other)),
    })
}

/// A timestamp in microseconds with Debezium's infinity sentinels.
pub fn timestamp_micros(ts: &Infinite<i64>) -> i64 {
    match ts {
        Infinite::Finite(us) => *us,
        Infinite::PositiveInfinity => temporal::TIMESTAMP_POSITIVE_INFINITY,
        Infinite::NegativeInfinity => temporal::TIMESTAMP_NEGATIVE_INFINITY,
    }
}

/// A timestamp in milliseconds; the infinity sentinels are kept as they are.
pub fn timestamp_millis(ts: &Infinite<i64>) -> i64 {
    match ts {
        Infinite::Finite(us) => us.div_euclid(1000),
        _ => timestamp_micros(ts),
    }
}

/// Days since the epoch; infinities saturate to the int range.
pub fn date_days(date: &Infinite<i32>) -> i32 {
    match date {
        Infinite::Finite(days) => *days,
        Infinite::PositiveInfinity => i32::MAX,
        Infinite::NegativeInfinity => i32::MIN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unscaled(text: &str, scale: u32) -> Vec<u8> {
        let mut out = Vec::new();
        unscaled_bytes(&Decimal::parse(text).expect("decimal"), scale, &mut out);
        out
    }

    #[test]
    fn decimals_become_minimal_twos_complement_bytes() {
        assert_eq!(unscaled("0", 2), [0]);
        assert_eq!(unscaled("1.27", 2), [0x7f]);
        assert_eq!(unscaled("1.28", 2), [0x00, 0x80]);
        assert_eq!(unscaled("-1.28", 2), [0x80]);
        assert_eq!(unscaled("-1.29", 2), [0xff, 0x7f]);
        assert_eq!(unscaled("-0.01", 2), [0xff]);
        assert_eq!(unscaled("2.5", 3), 2500i32.to_be_bytes()[2..]);
        assert_eq!(unscaled("1.005", 2), [101]);
    }

    #[test]
    fn decimals_wider_than_128_bits_keep_every_digit() {
        let digits = "123456789012345678901234567890123456789012345678901234567890";
        let bytes = unscaled(digits, 0);
        // Compare against a slow independent conversion: repeated division by 256.
        let mut n: Vec<u32> = digits.bytes().map(|b| u32::from(b - b'0')).collect();
        let mut expected = Vec::new();
        while n.iter().any(|d| *d != 0) {
            let mut rem = 0;
            for d in n.iter_mut() {
                let cur = rem * 10 + *d;
                *d = cur / 256;
                rem = cur % 256;
            }
            expected.insert(0, rem as u8);
        }
        if expected[0] & 0x80 != 0 {
            expected.insert(0, 0);
        }
        assert_eq!(bytes, expected);
    }

    #[test]
    fn bit_strings_become_little_endian_integers() {
        let mut out = Vec::new();
        bits_bytes(3, &[0b1010_0000], &mut out);
        assert_eq!(out, [0b101]);
        bits_bytes(9, &[0b1000_0000, 0b1000_0000], &mut out);
        assert_eq!(out, [0b0000_0001, 0b0000_0001]);
        bits_bytes(4, &[0], &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn timestamp_infinities_use_debeziums_sentinels() {
        assert_eq!(
            timestamp_micros(&Infinite::PositiveInfinity),
            9_223_372_036_825_200_000
        );
        assert_eq!(
            timestamp_micros(&Infinite::NegativeInfinity),
            -9_223_372_036_832_400_000
        );
        assert_eq!(
            string_text(
                StringKind::ZonedTimestamp,
                &Value::TimestampTz(Infinite::NegativeInfinity)
            )
            .as_deref(),
            Some("-infinity")
        );
    }
}
