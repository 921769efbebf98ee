//! Tuple data of pgoutput's Insert, Update and Delete messages: validated once while the
//! message is parsed, then read again column by column from the payload without copying.

use super::reader::{read_tuple_value, Reader};

/// One column value of a tuple, borrowed from the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TupleValue<'a> {
    /// 'n': SQL NULL.
    Null,
    /// 'u': an unchanged TOASTed value that the server did not send.
    UnchangedToast,
    /// 't': the value's text form (in the server encoding, normally UTF-8).
    Text(&'a [u8]),
    /// 'b': the value's binary (send/recv) form.
    Binary(&'a [u8]),
}

/// A tuple's column values, validated at parse time and kept as the bytes holding them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple<'a> {
    column_count: u16,
    /// The columns' bytes, after the column count.
    data: &'a [u8],
}

impl<'a> Tuple<'a> {
    /// A tuple of `column_count` columns held in `data`, which the parser validated.
    pub(super) fn new(column_count: u16, data: &'a [u8]) -> Self {
        Tuple { column_count, data }
    }

    /// How many columns the tuple has.
    pub fn column_count(&self) -> usize {
        usize::from(self.column_count)
    }

    /// The column values in order. Parsing validated the bytes, so this yields exactly
    /// [`Tuple::column_count`] values.
    pub fn iter(&self) -> TupleIter<'a> {
        TupleIter {
            reader: Reader::new('t', self.data),
            remaining: self.column_count,
        }
    }
}

/// Iterator over a [`Tuple`]'s values.
#[derive(Clone, Debug)]
pub struct TupleIter<'a> {
    reader: Reader<'a>,
    remaining: u16,
}

impl<'a> Iterator for TupleIter<'a> {
    type Item = TupleValue<'a>;

    fn next(&mut self) -> Option<TupleValue<'a>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        // Cannot fail on validated bytes; ending early is the safe answer if it ever did.
        read_tuple_value(&mut self.reader).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.remaining)))
    }
}
