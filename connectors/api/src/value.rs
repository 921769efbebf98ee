//! Typed column values, decoded from PostgreSQL's text (or binary) form by the source and
//! encoded by each sink. A value the source cannot type arrives as [`Value::Unknown`] with its
//! text, never as an error that stops the stream.

/// A finite value, or one of PostgreSQL's infinities (dates, timestamps, numerics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Infinite<T> {
    Finite(T),
    PositiveInfinity,
    NegativeInfinity,
}

/// Days since 1970-01-01, or `infinity` / `-infinity`.
pub type PgDate = Infinite<i32>;

/// Microseconds since 1970-01-01 00:00:00 (UTC for `timestamptz`), or an infinity.
pub type PgTimestamp = Infinite<i64>;

/// An exact decimal kept in canonical text form: optional `-`, digits, optional `.` and digits.
/// No precision is lost, whatever the number of digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Decimal(String);

impl Decimal {
    /// Accepts `[-|+]digits[.digits]`; returns `None` for anything else.
    pub fn parse(text: &str) -> Option<Decimal> {
        let body = text.strip_prefix(['-', '+']).unwrap_or(text);
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() && frac.is_empty() || !digits_ok(int) || !digits_ok(frac) {
            return None;
        }
        if text.contains('.') && frac.is_empty() {
            return None;
        }
        let negative = text.starts_with('-');
        let mut canonical = String::with_capacity(text.len());
        if negative {
            canonical.push('-');
        }
        canonical.push_str(if int.is_empty() { "0" } else { int });
        if !frac.is_empty() {
            canonical.push('.');
            canonical.push_str(frac);
        }
        Some(Decimal(canonical))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Digits after the decimal point.
    pub fn scale(&self) -> u32 {
        self.0.split_once('.').map_or(0, |(_, f)| f.len() as u32)
    }

    pub fn is_negative(&self) -> bool {
        self.0.starts_with('-')
    }

    /// The digits without sign or point: the unscaled integer, as decimal text.
    pub fn unscaled_digits(&self) -> String {
        self.0.chars().filter(|c| c.is_ascii_digit()).collect()
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `numeric`: exact, or one of its special values.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Numeric {
    Value(Decimal),
    NaN,
    PositiveInfinity,
    NegativeInfinity,
}

/// `interval` as PostgreSQL stores it: months, days and microseconds are independent fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PgInterval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

/// A range value; `None` bounds are unbounded.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeValue {
    pub empty: bool,
    pub lower: Option<Value>,
    pub upper: Option<Value>,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
}

/// PostgreSQL's geometric types.
#[derive(Clone, Debug, PartialEq)]
pub enum Geometry {
    Point {
        x: f64,
        y: f64,
    },
    /// `line`: the coefficients of `ax + by + c = 0`.
    Line {
        a: f64,
        b: f64,
        c: f64,
    },
    LineSegment([(f64, f64); 2]),
    Box([(f64, f64); 2]),
    Path {
        closed: bool,
        points: Vec<(f64, f64)>,
    },
    Polygon(Vec<(f64, f64)>),
    Circle {
        x: f64,
        y: f64,
        radius: f64,
    },
}

/// One column's value in a change event.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    /// An unchanged TOASTed value: the update did not touch it and PostgreSQL did not send it.
    /// Never the same as NULL.
    UnchangedToast,
    Bool(bool),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    Numeric(Numeric),
    /// `money`, in currency units, with the server's fraction digits.
    Money(Decimal),
    /// `text`, `varchar`, `char(n)`, `name`, `"char"` and other character types.
    Text(String),
    Bytes(Vec<u8>),
    Date(PgDate),
    /// `time`: microseconds since midnight.
    Time(i64),
    /// `timetz`: microseconds since midnight, and the zone offset in seconds east of UTC.
    TimeTz {
        micros: i64,
        offset_seconds: i32,
    },
    Timestamp(PgTimestamp),
    TimestampTz(PgTimestamp),
    Interval(PgInterval),
    Uuid([u8; 16]),
    Json(String),
    Jsonb(String),
    Xml(String),
    Inet(String),
    Cidr(String),
    MacAddr(String),
    /// `bit(n)` and `varbit`: `len` bits, most significant bit of `data[0]` first.
    Bits {
        len: u32,
        data: Vec<u8>,
    },
    /// A value of an enum type, with the type's name.
    Enum(String),
    /// A (possibly multi-dimensional, then nested) array; elements may be `Null`.
    Array(Vec<Value>),
    Range(Box<RangeValue>),
    Hstore(Vec<(String, Option<String>)>),
    Geometry(Geometry),
    /// A type sluice does not know: its text form and the type's name.
    Unknown {
        type_name: String,
        text: String,
    },
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_every_digit_and_know_their_scale() {
        let d = Decimal::parse("-12345678901234567890.000100").unwrap();
        assert_eq!(d.as_str(), "-12345678901234567890.000100");
        assert_eq!(d.scale(), 6);
        assert!(d.is_negative());
        assert_eq!(d.unscaled_digits(), "12345678901234567890000100");
        assert_eq!(Decimal::parse(".5").unwrap().as_str(), "0.5");
        assert_eq!(Decimal::parse("+7").unwrap().as_str(), "7");
    }

    #[test]
    fn malformed_decimals_are_rejected() {
        for bad in ["", "-", "1.", "1.2.3", "1e5", "abc", "."] {
            assert!(Decimal::parse(bad).is_none(), "{bad:?} accepted");
        }
    }
}
