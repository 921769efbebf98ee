//! Typed values from PostgreSQL's text (and binary) forms: the hot path of change decoding.
//! Every column of every row passes through [`decode_text`] (or [`decode_binary`]), so parsers
//! read borrowed `&str` by hand, without regexes, and allocate only for the value they return.
//!
//! Decoding never fails: a type sluice does not know, or a text that does not parse as its type,
//! becomes [`Value::Unknown`] with the type's name and the text, so the stream never stops on a
//! value.

mod array;
mod binary;
mod geometry;
mod hstore;
mod number;
mod range;
mod temporal;

use sluice_api::Value;

use crate::types::{ResolvedType, ScalarType, TypeCatalog};

/// Containers nest (arrays of ranges, ranges of domains, ...) through catalog entries; a chain
/// deeper than this can only come from a cyclic catalog, and is kept as text.
const MAX_NESTING: usize = 8;

/// Decode a column's text form. Never fails: what cannot be typed arrives as
/// [`Value::Unknown`] with its text and type name.
pub fn decode_text(catalog: &TypeCatalog, type_oid: u32, text: &str) -> Value {
    match decode_typed(catalog, type_oid, text, 0) {
        Some(value) => value,
        None => {
            tracing::debug!(
                type_oid,
                text_len = text.len(),
                "value does not parse as its type, kept as text"
            );
            unknown(catalog, type_oid, text)
        }
    }
}

/// Decode a column's binary form (tuple kind `b`). Never fails, as [`decode_text`]: types
/// without a binary decoder arrive as [`Value::Unknown`] with `\x`-prefixed hex text.
pub fn decode_binary(catalog: &TypeCatalog, type_oid: u32, bytes: &[u8]) -> Value {
    binary::decode(catalog, type_oid, bytes, 0).unwrap_or_else(|| {
        tracing::debug!(type_oid, "binary value not decodable, kept as hex text");
        Value::Unknown {
            type_name: catalog.type_name(type_oid),
            text: binary::hex_text(bytes),
        }
    })
}

/// Decode a scalar type's text form, `None` when the text is malformed for the type.
pub fn decode_scalar(scalar: ScalarType, text: &str) -> Option<Value> {
    Some(match scalar {
        ScalarType::Bool => Value::Bool(number::parse_bool(text)?),
        ScalarType::Int2 => Value::Int16(text.parse().ok()?),
        ScalarType::Int4 => Value::Int32(text.parse().ok()?),
        ScalarType::Int8 => Value::Int64(text.parse().ok()?),
        ScalarType::Oid => Value::Int64(i64::from(text.parse::<u32>().ok()?)),
        ScalarType::Float4 => Value::Float32(number::parse_float(text)?),
        ScalarType::Float8 => Value::Float64(number::parse_float(text)?),
        ScalarType::Numeric => Value::Numeric(number::parse_numeric(text)?),
        ScalarType::Money => Value::Money(number::parse_money(text)?),
        ScalarType::Text => Value::Text(text.to_owned()),
        ScalarType::Bytea => Value::Bytes(binary::parse_bytea(text)?),
        ScalarType::Date => Value::Date(temporal::parse_date(text)?),
        ScalarType::Time => Value::Time(temporal::parse_time(text)?),
        ScalarType::TimeTz => {
            let (micros, offset_seconds) = temporal::parse_timetz(text)?;
            Value::TimeTz {
                micros,
                offset_seconds,
            }
        }
        ScalarType::Timestamp => Value::Timestamp(temporal::parse_timestamp(text)?),
        ScalarType::TimestampTz => Value::TimestampTz(temporal::parse_timestamptz(text)?),
        ScalarType::Interval => Value::Interval(temporal::parse_interval(text)?),
        ScalarType::Uuid => Value::Uuid(number::parse_uuid(text)?),
        ScalarType::Json => Value::Json(text.to_owned()),
        ScalarType::Jsonb => Value::Jsonb(text.to_owned()),
        ScalarType::Xml => Value::Xml(text.to_owned()),
        ScalarType::Inet => Value::Inet(text.to_owned()),
        ScalarType::Cidr => Value::Cidr(text.to_owned()),
        ScalarType::MacAddr | ScalarType::MacAddr8 => Value::MacAddr(text.to_owned()),
        ScalarType::Bit | ScalarType::VarBit => {
            let (len, data) = number::parse_bits(text)?;
            Value::Bits { len, data }
        }
        ScalarType::Point
        | ScalarType::Line
        | ScalarType::Lseg
        | ScalarType::Box
        | ScalarType::Path
        | ScalarType::Polygon
        | ScalarType::Circle => Value::Geometry(geometry::parse(scalar, text)?),
        ScalarType::Hstore => Value::Hstore(hstore::parse(text)?),
    })
}

/// Decode `text` as a value of `type_oid`: `None` when the text is malformed for a type sluice
/// knows; a type it does not know is `Some(Unknown)`, so arrays and ranges of unknown types keep
/// their structure.
fn decode_typed(catalog: &TypeCatalog, type_oid: u32, text: &str, depth: usize) -> Option<Value> {
    if depth > MAX_NESTING {
        return None;
    }
    match catalog.resolve(type_oid) {
        ResolvedType::Scalar(scalar) => decode_scalar(scalar, text),
        ResolvedType::Enum => Some(Value::Enum(text.to_owned())),
        ResolvedType::Array { element, delimiter } => {
            array::parse(catalog, element, delimiter, text, depth)
        }
        ResolvedType::Range { subtype } => range::parse(catalog, subtype, text, depth),
        ResolvedType::Unknown => Some(unknown(catalog, type_oid, text)),
    }
}

fn unknown(catalog: &TypeCatalog, type_oid: u32, text: &str) -> Value {
    Value::Unknown {
        type_name: catalog.type_name(type_oid),
        text: text.to_owned(),
    }
}

#[cfg(test)]
mod live;
#[cfg(test)]
mod properties;

/// The built-in catalog plus user types of every kind, as `TypeCatalog::load` would add them.
#[cfg(test)]
fn test_catalog() -> TypeCatalog {
    use crate::types::{TypeInfo, TypeKind};
    let mut catalog = TypeCatalog::builtin();
    let mut add = |oid: u32, name: &str, kind: TypeKind| {
        catalog.insert(TypeInfo {
            oid,
            schema: "public".to_string(),
            name: format!("public.{name}"),
            kind,
        })
    };
    add(16_385, "mood", TypeKind::Enum);
    add(
        16_386,
        "_mood",
        TypeKind::Array {
            element: 16_385,
            delimiter: b',',
        },
    );
    add(16_390, "posint", TypeKind::Domain { base: 23 });
    add(
        16_391,
        "_posint",
        TypeKind::Array {
            element: 16_390,
            delimiter: b',',
        },
    );
    add(16_392, "small_posint", TypeKind::Domain { base: 16_390 });
    add(16_395, "floatrange", TypeKind::Range { subtype: 701 });
    add(
        16_396,
        "moodrange_like",
        TypeKind::Range { subtype: 16_392 },
    );
    add(16_400, "hstore", TypeKind::Base);
    add(16_401, "citext", TypeKind::Base);
    add(16_402, "loop_a", TypeKind::Domain { base: 16_403 });
    add(16_403, "loop_b", TypeKind::Domain { base: 16_402 });
    add(16_410, "pair", TypeKind::Other);
    add(
        16_411,
        "_pair",
        TypeKind::Array {
            element: 16_410,
            delimiter: b',',
        },
    );
    add(16_412, "ltree", TypeKind::Base);
    catalog
}

#[cfg(test)]
mod tests {
    use sluice_api::{Decimal, Geometry, Infinite, Numeric, PgInterval, RangeValue};

    use super::*;

    fn decode(oid: u32, text: &str) -> Value {
        decode_text(&test_catalog(), oid, text)
    }

    fn unknown(type_name: &str, text: &str) -> Value {
        Value::Unknown {
            type_name: type_name.to_string(),
            text: text.to_string(),
        }
    }

    fn text(s: &str) -> Value {
        Value::Text(s.to_string())
    }

    fn ints(values: &[i32]) -> Value {
        Value::Array(values.iter().map(|&v| Value::Int32(v)).collect())
    }

    #[test]
    fn integers_decode_across_their_full_range() {
        assert_eq!(decode(21, "-32768"), Value::Int16(i16::MIN));
        assert_eq!(decode(21, "32767"), Value::Int16(i16::MAX));
        assert_eq!(decode(23, "-2147483648"), Value::Int32(i32::MIN));
        assert_eq!(decode(20, "9223372036854775807"), Value::Int64(i64::MAX));
        assert_eq!(decode(20, "-9223372036854775808"), Value::Int64(i64::MIN));
        assert_eq!(decode(26, "4294967295"), Value::Int64(4_294_967_295));
        assert_eq!(decode(21, "32768"), unknown("int2", "32768"));
        assert_eq!(decode(23, "1.5"), unknown("int4", "1.5"));
    }

    #[test]
    fn floats_and_numerics_keep_special_values() {
        assert!(matches!(decode(701, "NaN"), Value::Float64(v) if v.is_nan()));
        assert_eq!(decode(701, "-Infinity"), Value::Float64(f64::NEG_INFINITY));
        assert_eq!(decode(700, "Infinity"), Value::Float32(f32::INFINITY));
        assert_eq!(decode(1700, "NaN"), Value::Numeric(Numeric::NaN));
        assert_eq!(
            decode(1700, "-Infinity"),
            Value::Numeric(Numeric::NegativeInfinity)
        );
        let exact = "-123456789012345678901234567890.000000000000000000001";
        assert_eq!(
            decode(1700, exact),
            Value::Numeric(Numeric::Value(Decimal::parse(exact).unwrap()))
        );
    }

    #[test]
    fn money_decodes_the_locale_text_to_a_decimal() {
        assert_eq!(
            decode(790, "-$1,234.56"),
            Value::Money(Decimal::parse("-1234.56").unwrap())
        );
        assert_eq!(
            decode(790, "($1,234.56)"),
            Value::Money(Decimal::parse("-1234.56").unwrap())
        );
    }

    #[test]
    fn character_types_keep_their_text_and_padding() {
        assert_eq!(decode(1042, "ab   "), text("ab   "));
        assert_eq!(decode(1043, "é"), text("é"));
        assert_eq!(decode(19, "pg_class"), text("pg_class"));
        assert_eq!(decode(18, "x"), text("x"));
        assert_eq!(decode(16_401, "MiXeD"), text("MiXeD"));
        assert_eq!(
            decode(114, r#"{"a": 1}"#),
            Value::Json(r#"{"a": 1}"#.to_string())
        );
        assert_eq!(
            decode(3802, r#"{"a": 1}"#),
            Value::Jsonb(r#"{"a": 1}"#.to_string())
        );
        assert_eq!(decode(142, "<a/>"), Value::Xml("<a/>".to_string()));
        assert_eq!(
            decode(869, "192.168.0.1/24"),
            Value::Inet("192.168.0.1/24".to_string())
        );
        assert_eq!(
            decode(650, "10.0.0.0/8"),
            Value::Cidr("10.0.0.0/8".to_string())
        );
        assert_eq!(
            decode(774, "08:00:2b:01:02:03:04:05"),
            Value::MacAddr("08:00:2b:01:02:03:04:05".to_string())
        );
    }

    #[test]
    fn bytea_decodes_hex_and_escape_forms() {
        assert_eq!(
            decode(17, "\\x0a0bFF"),
            Value::Bytes(vec![0x0a, 0x0b, 0xff])
        );
        assert_eq!(decode(17, "\\x"), Value::Bytes(vec![]));
        assert_eq!(
            decode(17, "a\\\\b\\001\\377"),
            Value::Bytes(vec![b'a', b'\\', b'b', 1, 255])
        );
        assert_eq!(decode(17, "\\x0"), unknown("bytea", "\\x0"));
        assert_eq!(decode(17, "\\400"), unknown("bytea", "\\400"));
        assert_eq!(decode(17, "\\9"), unknown("bytea", "\\9"));
    }

    #[test]
    fn temporal_types_decode_through_the_catalog() {
        assert_eq!(
            decode(1082, "2024-02-29"),
            Value::Date(Infinite::Finite(19_782))
        );
        assert_eq!(decode(1083, "24:00:00"), Value::Time(86_400_000_000));
        assert_eq!(
            decode(1266, "12:00:00+05:30"),
            Value::TimeTz {
                micros: 43_200_000_000,
                offset_seconds: 19_800
            }
        );
        assert_eq!(
            decode(1114, "infinity"),
            Value::Timestamp(Infinite::PositiveInfinity)
        );
        assert_eq!(
            decode(1184, "2024-01-01 12:00:00.5+02"),
            Value::TimestampTz(Infinite::Finite(1_704_103_200_500_000))
        );
        assert_eq!(
            decode(1186, "-1 days +02:00:00"),
            Value::Interval(PgInterval {
                months: 0,
                days: -1,
                micros: 7_200_000_000
            })
        );
        assert_eq!(decode(1082, "2023-02-29"), unknown("date", "2023-02-29"));
    }

    #[test]
    fn uuid_bits_and_geometry_decode() {
        let Value::Uuid(bytes) = decode(2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11") else {
            panic!("uuid not decoded");
        };
        assert_eq!(bytes[0], 0xa0);
        assert_eq!(
            decode(1560, "0101"),
            Value::Bits {
                len: 4,
                data: vec![0x50]
            }
        );
        assert_eq!(
            decode(1562, ""),
            Value::Bits {
                len: 0,
                data: vec![]
            }
        );
        assert_eq!(
            decode(718, "<(1,2),3>"),
            Value::Geometry(Geometry::Circle {
                x: 1.0,
                y: 2.0,
                radius: 3.0
            })
        );
    }

    #[test]
    fn enums_and_domains_decode_as_their_label_and_base_type() {
        assert_eq!(decode(16_385, "happy"), Value::Enum("happy".to_string()));
        assert_eq!(decode(16_390, "42"), Value::Int32(42));
        assert_eq!(decode(16_392, "7"), Value::Int32(7));
        assert_eq!(decode(16_392, "x"), unknown("public.small_posint", "x"));
    }

    #[test]
    fn cyclic_domains_and_unknown_types_keep_their_text() {
        assert_eq!(decode(16_402, "1"), unknown("public.loop_a", "1"));
        assert_eq!(decode(3220, "0/16B3748"), unknown("pg_lsn", "0/16B3748"));
        assert_eq!(decode(3614, "'a' 'cat'"), unknown("tsvector", "'a' 'cat'"));
        assert_eq!(decode(16_412, "a.b"), unknown("public.ltree", "a.b"));
        assert_eq!(decode(99_999, "?"), unknown("oid:99999", "?"));
    }

    #[test]
    fn hstore_decodes_by_extension_name() {
        assert_eq!(
            decode(16_400, r#""a"=>"1", "b"=>NULL"#),
            Value::Hstore(vec![
                ("a".to_string(), Some("1".to_string())),
                ("b".to_string(), None)
            ])
        );
    }

    #[test]
    fn text_arrays_handle_quoting_escapes_and_null() {
        // The exact text the server printed for this array.
        let printed = r#"{"a b","","NULL",NULL,"x\"y","back\\slash","{}","a,b",plain}"#;
        assert_eq!(
            decode(1009, printed),
            Value::Array(vec![
                text("a b"),
                text(""),
                text("NULL"),
                Value::Null,
                text("x\"y"),
                text("back\\slash"),
                text("{}"),
                text("a,b"),
                text("plain"),
            ])
        );
        assert_eq!(decode(1015, r#"{" x "}"#), Value::Array(vec![text(" x ")]));
        // Unescaped whitespace around an unquoted element is dropped, escaped whitespace kept.
        assert_eq!(
            decode(1009, "{null, a\\,b , c\\  }"),
            Value::Array(vec![Value::Null, text("a,b"), text("c ")])
        );
        assert_eq!(decode(1007, "{ 1 , 2 }"), ints(&[1, 2]));
    }

    #[test]
    fn multi_dimensional_and_decorated_arrays_nest() {
        assert_eq!(
            decode(1007, "{{1,2},{3,4}}"),
            Value::Array(vec![ints(&[1, 2]), ints(&[3, 4])])
        );
        assert_eq!(decode(1007, "[0:1]={1,2}"), ints(&[1, 2]));
        assert_eq!(
            decode(1007, "[2:3][1:1]={{1},{2}}"),
            Value::Array(vec![ints(&[1]), ints(&[2])])
        );
        assert_eq!(decode(1007, "{}"), ints(&[]));
        assert_eq!(
            decode(1007, "{{{{{{{1}}}}}}}"),
            unknown("_int4", "{{{{{{{1}}}}}}}")
        );
    }

    #[test]
    fn box_arrays_split_on_semicolons() {
        assert_eq!(
            decode(1020, "{(3,4),(1,2);(1,1),(0,0)}"),
            Value::Array(vec![
                Value::Geometry(Geometry::Box([(3.0, 4.0), (1.0, 2.0)])),
                Value::Geometry(Geometry::Box([(1.0, 1.0), (0.0, 0.0)])),
            ])
        );
        assert_eq!(
            decode(1017, r#"{"(1,2)","(3,4)"}"#),
            Value::Array(vec![
                Value::Geometry(Geometry::Point { x: 1.0, y: 2.0 }),
                Value::Geometry(Geometry::Point { x: 3.0, y: 4.0 }),
            ])
        );
    }

    #[test]
    fn arrays_of_user_types_decode_their_elements() {
        assert_eq!(
            decode(16_386, "{happy,sad}"),
            Value::Array(vec![Value::Enum("happy".into()), Value::Enum("sad".into())])
        );
        assert_eq!(
            decode(16_391, "{1,NULL}"),
            Value::Array(vec![Value::Int32(1), Value::Null])
        );
        assert_eq!(
            decode(16_411, r#"{"(1,x)"}"#),
            Value::Array(vec![unknown("public.pair", "(1,x)")])
        );
        assert_eq!(
            decode(3907, r#"{"[1.5,2)",empty}"#),
            Value::Array(vec![
                range(Some(numeric("1.5")), Some(numeric("2")), true, false),
                Value::Range(Box::new(empty_range())),
            ])
        );
    }

    #[test]
    fn malformed_arrays_become_unknown() {
        for bad in [
            "{1,2", "1,2}", "{1,,2}", "{1,2}x", "{\"1}", "{1\\", "{a}", "[1:2]{1}", "{1 2}",
        ] {
            assert_eq!(decode(1007, bad), unknown("_int4", bad), "{bad:?}");
        }
    }

    fn numeric(s: &str) -> Value {
        Value::Numeric(Numeric::Value(Decimal::parse(s).unwrap()))
    }

    fn empty_range() -> RangeValue {
        RangeValue {
            empty: true,
            lower: None,
            upper: None,
            lower_inclusive: false,
            upper_inclusive: false,
        }
    }

    fn range(lower: Option<Value>, upper: Option<Value>, li: bool, ui: bool) -> Value {
        Value::Range(Box::new(RangeValue {
            empty: false,
            lower,
            upper,
            lower_inclusive: li,
            upper_inclusive: ui,
        }))
    }

    #[test]
    fn ranges_decode_bounds_as_their_subtype() {
        assert_eq!(
            decode(3904, "[1,10)"),
            range(Some(Value::Int32(1)), Some(Value::Int32(10)), true, false)
        );
        assert_eq!(decode(3904, "empty"), Value::Range(Box::new(empty_range())));
        assert_eq!(
            decode(3904, "(,6)"),
            range(None, Some(Value::Int32(6)), false, false)
        );
        assert_eq!(
            decode(3906, "[1.5,)"),
            range(Some(numeric("1.5")), None, true, false)
        );
        assert_eq!(
            decode(3910, r#"["2024-01-01 00:00:00+00",infinity)"#),
            range(
                Some(Value::TimestampTz(Infinite::Finite(1_704_067_200_000_000))),
                Some(Value::TimestampTz(Infinite::PositiveInfinity)),
                true,
                false
            )
        );
        assert_eq!(
            decode(3912, "[2024-01-01,)"),
            range(
                Some(Value::Date(Infinite::Finite(19_723))),
                None,
                true,
                false
            )
        );
        assert_eq!(
            decode(16_396, "[1,5]"),
            range(Some(Value::Int32(1)), Some(Value::Int32(5)), true, true)
        );
    }

    #[test]
    fn range_bounds_unquote_doubled_quotes_and_escapes() {
        let mut catalog = test_catalog();
        catalog.insert(crate::types::TypeInfo {
            oid: 16_420,
            schema: "public".into(),
            name: "public.textrange".into(),
            kind: crate::types::TypeKind::Range { subtype: 25 },
        });
        assert_eq!(
            decode_text(&catalog, 16_420, r#"["a""b","c\\d"]"#),
            range(Some(text("a\"b")), Some(text("c\\d")), true, true)
        );
        assert_eq!(
            decode_text(&catalog, 16_420, r#"["",)"#),
            range(Some(text("")), None, true, false)
        );
    }

    #[test]
    fn malformed_ranges_become_unknown() {
        for bad in [
            "[1,10", "1,10)", "[1;10)", "[1,10)x", "[a,10)", "[1,2,3)", "[\"1,10)",
        ] {
            assert_eq!(decode(3904, bad), unknown("int4range", bad), "{bad:?}");
        }
    }

    #[test]
    fn binary_fixed_size_values_decode() {
        let catalog = test_catalog();
        let bin = |oid: u32, bytes: &[u8]| decode_binary(&catalog, oid, bytes);
        assert_eq!(bin(16, &[1]), Value::Bool(true));
        assert_eq!(bin(21, &[0xff, 0xfe]), Value::Int16(-2));
        assert_eq!(bin(23, &[0, 0, 1, 0]), Value::Int32(256));
        assert_eq!(bin(20, &i64::MIN.to_be_bytes()), Value::Int64(i64::MIN));
        assert_eq!(bin(701, &1.5f64.to_be_bytes()), Value::Float64(1.5));
        assert_eq!(bin(700, &(-2.5f32).to_be_bytes()), Value::Float32(-2.5));
        assert_eq!(bin(2950, &[7; 16]), Value::Uuid([7; 16]));
        assert_eq!(bin(17, &[0, 255]), Value::Bytes(vec![0, 255]));
        assert_eq!(bin(25, "é".as_bytes()), text("é"));
        assert_eq!(bin(16_385, b"happy"), Value::Enum("happy".into()));
        assert_eq!(bin(16_390, &[0, 0, 0, 42]), Value::Int32(42));
        assert_eq!(bin(23, &[0, 0, 1]), unknown("int4", "\\x000001"));
        assert_eq!(bin(3220, &[0xab]), unknown("pg_lsn", "\\xab"));
    }

    /// Hex of a value as the server's `*_send` function produced it.
    fn sent(hex: &str) -> Vec<u8> {
        match binary::parse_bytea(hex) {
            Some(bytes) => bytes,
            None => panic!("bad hex {hex}"),
        }
    }

    #[test]
    fn binary_temporal_values_shift_to_the_unix_epoch() {
        let catalog = test_catalog();
        let bin = |oid: u32, hex: &str| decode_binary(&catalog, oid, &sent(hex));
        assert_eq!(bin(1082, "\\xffffd533"), Value::Date(Infinite::Finite(0)));
        assert_eq!(
            bin(1082, "\\x7fffffff"),
            Value::Date(Infinite::PositiveInfinity)
        );
        assert_eq!(
            bin(1184, "\\x0002b0de36b54920"),
            Value::TimestampTz(Infinite::Finite(1_704_103_200_500_000))
        );
        assert_eq!(
            bin(1186, "\\x000000036c97ca88000000030000000e"),
            Value::Interval(PgInterval {
                months: 14,
                days: 3,
                micros: 14_706_789_000
            })
        );
        assert_eq!(
            bin(1266, "\\x0000000a0eebb000ffffb2a8"),
            Value::TimeTz {
                micros: 43_200_000_000,
                offset_seconds: 19_800
            }
        );
    }

    #[test]
    fn binary_numerics_arrays_and_others_match_server_output() {
        let catalog = test_catalog();
        let bin = |oid: u32, hex: &str| decode_binary(&catalog, oid, &sent(hex));
        assert_eq!(
            bin(1700, "\\x0003000100000003000109291a7c"),
            numeric("12345.678")
        );
        assert_eq!(bin(1700, "\\x0001ffff40000004000c"), numeric("-0.0012"));
        assert_eq!(
            bin(1700, "\\x00000000c0000000"),
            Value::Numeric(Numeric::NaN)
        );
        assert_eq!(bin(1700, "\\x0000000000000000"), numeric("0"));
        assert_eq!(bin(1700, "\\x00010002000000000001"), numeric("100000000"));
        assert_eq!(
            bin(1007, "\\x000000020000000100000017000000020000000100000002000000010000000400000001ffffffff00000004000000030000000400000004"),
            Value::Array(vec![
                Value::Array(vec![Value::Int32(1), Value::Null]),
                ints(&[3, 4]),
            ])
        );
        assert_eq!(bin(1007, "\\x000000000000000000000017"), ints(&[]));
        assert_eq!(
            bin(3802, "\\x017b2261223a20317d"),
            Value::Jsonb(r#"{"a": 1}"#.into())
        );
        assert_eq!(
            bin(1562, "\\x0000000aaa80"),
            Value::Bits {
                len: 10,
                data: vec![0xaa, 0x80]
            }
        );
        assert_eq!(
            bin(829, "\\x08002b010203"),
            Value::MacAddr("08:00:2b:01:02:03".into())
        );
    }
}
