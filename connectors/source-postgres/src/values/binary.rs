//! Binary forms (tuple kind `b`, the types' `send` functions) and `bytea`'s two text forms.
//! Fixed-size built-ins, text-like types, `numeric`, `interval`, bit strings and arrays decode;
//! every other binary value is kept as `\x`-prefixed hex text.

use std::fmt::Write as _;

use sluice_api::{Decimal, Infinite, Numeric, PgInterval, Value};

use super::number::hex_value;
use super::{decode_scalar, MAX_NESTING};
use crate::types::{ResolvedType, ScalarType, TypeCatalog};

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS as i64 * 86_400_000_000;

/// `bytea` text: hex (`\x0a0b`, the default `bytea_output`) or escape (`a\\b\001`).
pub(super) fn parse_bytea(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if let Some(hex) = bytes.strip_prefix(b"\\x") {
        if hex.len() % 2 != 0 {
            return None;
        }
        return hex
            .chunks_exact(2)
            .map(|pair| Some(hex_value(pair[0])? << 4 | hex_value(pair[1])?))
            .collect();
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] != b'\\' {
            out.push(bytes[at]);
            at += 1;
        } else if bytes.get(at + 1) == Some(&b'\\') {
            out.push(b'\\');
            at += 2;
        } else {
            let octal = bytes.get(at + 1..at + 4)?;
            let mut value = 0u16;
            for &digit in octal {
                if !(b'0'..=b'7').contains(&digit) {
                    return None;
                }
                value = value * 8 + u16::from(digit - b'0');
            }
            out.push(u8::try_from(value).ok()?);
            at += 4;
        }
    }
    Some(out)
}

/// Bytes as `\x` and lowercase hex, the way `bytea` prints: the text of an undecodable binary
/// value.
pub(super) fn hex_text(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(2 + bytes.len() * 2);
    text.push_str("\\x");
    for byte in bytes {
        // Writing to a String cannot fail.
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// Decode a binary value of `type_oid`; `None` when the type has no binary decoder here or the
/// bytes do not fit it.
pub(super) fn decode(
    catalog: &TypeCatalog,
    type_oid: u32,
    bytes: &[u8],
    depth: usize,
) -> Option<Value> {
    if depth > MAX_NESTING {
        return None;
    }
    match catalog.resolve(type_oid) {
        ResolvedType::Scalar(scalar) => scalar_value(scalar, bytes),
        ResolvedType::Enum => Some(Value::Enum(std::str::from_utf8(bytes).ok()?.to_owned())),
        ResolvedType::Array { .. } => array(catalog, bytes, depth),
        ResolvedType::Range { .. } | ResolvedType::Unknown => None,
    }
}

fn scalar_value(scalar: ScalarType, bytes: &[u8]) -> Option<Value> {
    Some(match scalar {
        ScalarType::Bool => match bytes {
            [0] => Value::Bool(false),
            [1] => Value::Bool(true),
            _ => return None,
        },
        ScalarType::Int2 => Value::Int16(i16::from_be_bytes(bytes.try_into().ok()?)),
        ScalarType::Int4 => Value::Int32(i32::from_be_bytes(bytes.try_into().ok()?)),
        ScalarType::Int8 => Value::Int64(i64::from_be_bytes(bytes.try_into().ok()?)),
        ScalarType::Oid => Value::Int64(i64::from(u32::from_be_bytes(bytes.try_into().ok()?))),
        ScalarType::Float4 => Value::Float32(f32::from_be_bytes(bytes.try_into().ok()?)),
        ScalarType::Float8 => Value::Float64(f64::from_be_bytes(bytes.try_into().ok()?)),
        ScalarType::Numeric => Value::Numeric(numeric(bytes)?),
        ScalarType::Bytea => Value::Bytes(bytes.to_vec()),
        ScalarType::Uuid => Value::Uuid(bytes.try_into().ok()?),
        ScalarType::Date => Value::Date(match i32::from_be_bytes(bytes.try_into().ok()?) {
            i32::MAX => Infinite::PositiveInfinity,
            i32::MIN => Infinite::NegativeInfinity,
            days => Infinite::Finite(days.checked_add(PG_EPOCH_DAYS)?),
        }),
        ScalarType::Timestamp => Value::Timestamp(timestamp(bytes)?),
        ScalarType::TimestampTz => Value::TimestampTz(timestamp(bytes)?),
        ScalarType::Time => Value::Time(i64::from_be_bytes(bytes.try_into().ok()?)),
        ScalarType::TimeTz => {
            let micros = i64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
            // The wire carries the zone as seconds west of UTC.
            let west = i32::from_be_bytes(bytes.get(8..)?.try_into().ok()?);
            Value::TimeTz {
                micros,
                offset_seconds: west.checked_neg()?,
            }
        }
        ScalarType::Interval => Value::Interval(PgInterval {
            micros: i64::from_be_bytes(bytes.get(..8)?.try_into().ok()?),
            days: i32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?),
            months: i32::from_be_bytes(bytes.get(12..)?.try_into().ok()?),
        }),
        ScalarType::Bit | ScalarType::VarBit => {
            let len = u32::try_from(i32::from_be_bytes(bytes.get(..4)?.try_into().ok()?)).ok()?;
            let data = bytes.get(4..)?;
            if data.len() != (len as usize).div_ceil(8) {
                return None;
            }
            Value::Bits {
                len,
                data: data.to_vec(),
            }
        }
        ScalarType::MacAddr | ScalarType::MacAddr8 if matches!(bytes.len(), 6 | 8) => {
            let mut text = String::with_capacity(bytes.len() * 3);
            for (i, byte) in bytes.iter().enumerate() {
                let separator = if i == 0 { "" } else { ":" };
                let _ = write!(text, "{separator}{byte:02x}");
            }
            Value::MacAddr(text)
        }
        // `jsonb_send` prefixes its text with a format version, 1.
        ScalarType::Jsonb => match bytes.split_first() {
            Some((1, json)) => Value::Jsonb(std::str::from_utf8(json).ok()?.to_owned()),
            _ => return None,
        },
        // The remaining text-like types send their text; their text decoders do the rest.
        ScalarType::Text | ScalarType::Json | ScalarType::Xml => {
            decode_scalar(scalar, std::str::from_utf8(bytes).ok()?)?
        }
        _ => return None,
    })
}

fn timestamp(bytes: &[u8]) -> Option<Infinite<i64>> {
    Some(match i64::from_be_bytes(bytes.try_into().ok()?) {
        i64::MAX => Infinite::PositiveInfinity,
        i64::MIN => Infinite::NegativeInfinity,
        micros => Infinite::Finite(micros.checked_add(PG_EPOCH_MICROS)?),
    })
}

/// `numeric_send`: digit count, weight (of the first base-10000 digit), sign, display scale,
/// then the base-10000 digits.
fn numeric(bytes: &[u8]) -> Option<Numeric> {
    let word = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|w| u16::from_be_bytes([w[0], w[1]]))
    };
    let digit_count = usize::from(word(0)?);
    let weight = i32::from(word(2)? as i16);
    let sign = word(4)?;
    let scale = usize::from(word(6)?);
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Some(Numeric::NaN),
        0xD000 => return Some(Numeric::PositiveInfinity),
        0xF000 => return Some(Numeric::NegativeInfinity),
        _ => return None,
    }
    if bytes.len() != 8 + digit_count * 2 {
        return None;
    }
    let mut digits = Vec::with_capacity(digit_count);
    for i in 0..digit_count {
        let digit = word(8 + i * 2)?;
        if digit >= 10_000 {
            return None;
        }
        digits.push(digit);
    }
    // Digit `i` has weight `weight - i`: index of the digit with weight `w` is `weight - w`.
    let digit_at = |w: i32| {
        usize::try_from(weight - w)
            .ok()
            .and_then(|i| digits.get(i))
            .copied()
            .unwrap_or(0)
    };
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        let _ = write!(text, "{}", digit_at(weight));
        for w in (0..weight).rev() {
            let _ = write!(text, "{:04}", digit_at(w));
        }
    }
    if scale > 0 {
        text.push('.');
        let mut fraction = String::with_capacity(scale + 4);
        let mut w = -1;
        while fraction.len() < scale {
            let _ = write!(fraction, "{:04}", digit_at(w));
            w -= 1;
        }
        fraction.truncate(scale);
        text.push_str(&fraction);
    }
    Decimal::parse(&text).map(Numeric::Value)
}

/// `array_send`: dimension count, has-nulls flag, element type, (length, lower bound) per
/// dimension, then each element as a length (-1 for NULL) and its bytes.
fn array(catalog: &TypeCatalog, bytes: &[u8], depth: usize) -> Option<Value> {
    let int = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|w| i32::from_be_bytes([w[0], w[1], w[2], w[3]]))
    };
    let dimension_count = usize::try_from(int(0)?).ok()?;
    if dimension_count > 6 {
        return None;
    }
    let element = int(8)? as u32;
    let mut lengths = Vec::with_capacity(dimension_count);
    for d in 0..dimension_count {
        lengths.push(usize::try_from(int(12 + d * 8)?).ok()?);
    }
    let mut reader = ElementReader {
        catalog,
        element,
        bytes,
        pos: 12 + dimension_count * 8,
        depth,
    };
    if dimension_count == 0 {
        return Some(Value::Array(Vec::new()));
    }
    let value = reader.level(&lengths)?;
    (reader.pos == bytes.len()).then_some(value)
}

struct ElementReader<'a> {
    catalog: &'a TypeCatalog,
    element: u32,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

impl ElementReader<'_> {
    fn level(&mut self, lengths: &[usize]) -> Option<Value> {
        let (&length, inner) = lengths.split_first()?;
        // A length larger than the remaining bytes could ask for a huge allocation.
        let mut items = Vec::with_capacity(length.min(self.bytes.len() / 4));
        for _ in 0..length {
            items.push(if inner.is_empty() {
                self.element()?
            } else {
                self.level(inner)?
            });
        }
        Some(Value::Array(items))
    }

    fn element(&mut self) -> Option<Value> {
        let header = self.bytes.get(self.pos..self.pos + 4)?;
        let length = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        self.pos += 4;
        if length == -1 {
            return Some(Value::Null);
        }
        let length = usize::try_from(length).ok()?;
        let body = self.bytes.get(self.pos..self.pos.checked_add(length)?)?;
        self.pos += length;
        Some(
            decode(self.catalog, self.element, body, self.depth + 1).unwrap_or_else(|| {
                Value::Unknown {
                    type_name: self.catalog.type_name(self.element),
                    text: hex_text(body),
                }
            }),
        )
    }
}
