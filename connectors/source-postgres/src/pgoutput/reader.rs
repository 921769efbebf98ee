//! A bounds-checked cursor over a pgoutput message's bytes: every read checks the length, so
//! malformed input becomes a [`ParseError`], never a panic.

use std::borrow::Cow;

use super::tuple::{Tuple, TupleValue};
use super::ParseError;

/// A cursor over a message's bytes; every read checks the length.
#[derive(Clone, Debug)]
pub(super) struct Reader<'a> {
    tag: char,
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A cursor over `buf`, the body of a message tagged `tag` (named in errors).
    pub(super) fn new(tag: char, buf: &'a [u8]) -> Self {
        Reader { tag, buf }
    }

    /// Bytes not read yet.
    pub(super) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(super) fn bytes(
        &mut self,
        len: usize,
        field: &'static str,
    ) -> Result<&'a [u8], ParseError> {
        if self.buf.len() < len {
            return Err(ParseError::Truncated {
                tag: self.tag,
                field,
            });
        }
        let (head, tail) = self.buf.split_at(len);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ParseError> {
        let bytes = self.bytes(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(super) fn u8(&mut self, field: &'static str) -> Result<u8, ParseError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(super) fn u32(&mut self, field: &'static str) -> Result<u32, ParseError> {
        self.array(field).map(u32::from_be_bytes)
    }

    pub(super) fn i32(&mut self, field: &'static str) -> Result<i32, ParseError> {
        self.array(field).map(i32::from_be_bytes)
    }

    pub(super) fn u64(&mut self, field: &'static str) -> Result<u64, ParseError> {
        self.array(field).map(u64::from_be_bytes)
    }

    pub(super) fn i64(&mut self, field: &'static str) -> Result<i64, ParseError> {
        self.array(field).map(i64::from_be_bytes)
    }

    pub(super) fn count16(&mut self, field: &'static str) -> Result<usize, ParseError> {
        let value = i16::from_be_bytes(self.array(field)?);
        usize::try_from(value).map_err(|_| self.negative(field, value.into()))
    }

    pub(super) fn count32(&mut self, field: &'static str) -> Result<usize, ParseError> {
        let value = self.i32(field)?;
        usize::try_from(value).map_err(|_| self.negative(field, value.into()))
    }

    /// A NUL-terminated string; invalid UTF-8 (a non-UTF-8 server encoding) is replaced
    /// rather than refused, and borrows when valid.
    pub(super) fn cstr(&mut self, field: &'static str) -> Result<Cow<'a, str>, ParseError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or(ParseError::Truncated {
                tag: self.tag,
                field,
            })?;
        let text = String::from_utf8_lossy(&self.buf[..end]);
        self.buf = &self.buf[end + 1..];
        Ok(text)
    }

    pub(super) fn expect(&mut self, wanted: u8, field: &'static str) -> Result<(), ParseError> {
        match self.u8(field)? {
            found if found == wanted => Ok(()),
            found => Err(self.unexpected(field, found)),
        }
    }

    pub(super) fn unexpected(&self, field: &'static str, found: u8) -> ParseError {
        ParseError::Unexpected {
            tag: self.tag,
            field,
            found: char::from(found),
        }
    }

    fn negative(&self, field: &'static str, value: i64) -> ParseError {
        ParseError::Negative {
            tag: self.tag,
            field,
            value,
        }
    }

    /// TupleData: a column count, then each column's kind and value. Validates every column
    /// and keeps the bytes they span.
    pub(super) fn tuple(&mut self) -> Result<Tuple<'a>, ParseError> {
        let count = self.count16("tuple column count")?;
        let start = self.buf;
        for _ in 0..count {
            read_tuple_value(self)?;
        }
        let consumed = start.len() - self.buf.len();
        // `count16` refused negatives, so the count fits in u16.
        let column_count = u16::try_from(count).unwrap_or(u16::MAX);
        Ok(Tuple::new(column_count, &start[..consumed]))
    }
}

pub(super) fn read_tuple_value<'a>(r: &mut Reader<'a>) -> Result<TupleValue<'a>, ParseError> {
    Ok(match r.u8("column kind")? {
        b'n' => TupleValue::Null,
        b'u' => TupleValue::UnchangedToast,
        b't' => {
            let len = r.count32("column length")?;
            TupleValue::Text(r.bytes(len, "column value")?)
        }
        b'b' => {
            let len = r.count32("column length")?;
            TupleValue::Binary(r.bytes(len, "column value")?)
        }
        other => return Err(r.unexpected("column kind", other)),
    })
}
