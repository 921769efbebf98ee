//! Test-only encoder of pgoutput messages: builds the payloads the server would send, so the
//! parser and the decoder are tested against hand-built binary messages.

/// One column value of a tuple to encode.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Col<'a> {
    Null,
    Toast,
    Text(&'a str),
    RawText(&'a [u8]),
    Binary(&'a [u8]),
}

/// A column of a Relation message: key flag, name, type OID, typmod.
pub(crate) type RelCol<'a> = (bool, &'a str, u32, i32);

struct Out(Vec<u8>);

impl Out {
    fn new(tag: u8) -> Self {
        Out(vec![tag])
    }
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn xid(self, xid: Option<u32>) -> Self {
        match xid {
            Some(x) => self.u32(x),
            None => self,
        }
    }
    fn cstr(mut self, s: &str) -> Self {
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
        self
    }
    fn tuple(mut self, cols: &[Col<'_>]) -> Self {
        self.0.extend_from_slice(&(cols.len() as i16).to_be_bytes());
        for col in cols {
            match col {
                Col::Null => self.0.push(b'n'),
                Col::Toast => self.0.push(b'u'),
                Col::Text(s) => self = self.value(b't', s.as_bytes()),
                Col::RawText(b) => self = self.value(b't', b),
                Col::Binary(b) => self = self.value(b'b', b),
            }
        }
        self
    }
    fn value(mut self, kind: u8, bytes: &[u8]) -> Self {
        self.0.push(kind);
        self.0
            .extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        self.0.extend_from_slice(bytes);
        self
    }
}

pub(crate) fn begin(final_lsn: u64, time: i64, xid: u32) -> Vec<u8> {
    Out::new(b'B').u64(final_lsn).u64(time as u64).u32(xid).0
}

pub(crate) fn commit(commit_lsn: u64, end_lsn: u64, time: i64) -> Vec<u8> {
    Out::new(b'C')
        .u8(0)
        .u64(commit_lsn)
        .u64(end_lsn)
        .u64(time as u64)
        .0
}

pub(crate) fn origin(lsn: u64, name: &str) -> Vec<u8> {
    Out::new(b'O').u64(lsn).cstr(name).0
}

pub(crate) fn relation(
    xid: Option<u32>,
    id: u32,
    namespace: &str,
    name: &str,
    identity: u8,
    cols: &[RelCol<'_>],
) -> Vec<u8> {
    let mut out = Out::new(b'R')
        .xid(xid)
        .u32(id)
        .cstr(namespace)
        .cstr(name)
        .u8(identity);
    out.0.extend_from_slice(&(cols.len() as i16).to_be_bytes());
    for (key, col_name, oid, typmod) in cols {
        out = out
            .u8(u8::from(*key))
            .cstr(col_name)
            .u32(*oid)
            .u32(*typmod as u32);
    }
    out.0
}

pub(crate) fn type_message(xid: Option<u32>, oid: u32, namespace: &str, name: &str) -> Vec<u8> {
    Out::new(b'Y')
        .xid(xid)
        .u32(oid)
        .cstr(namespace)
        .cstr(name)
        .0
}

pub(crate) fn insert(xid: Option<u32>, rel: u32, new: &[Col<'_>]) -> Vec<u8> {
    Out::new(b'I').xid(xid).u32(rel).u8(b'N').tuple(new).0
}

/// `old`: `Some((b'K' | b'O', columns))`.
pub(crate) fn update(
    xid: Option<u32>,
    rel: u32,
    old: Option<(u8, &[Col<'_>])>,
    new: &[Col<'_>],
) -> Vec<u8> {
    let mut out = Out::new(b'U').xid(xid).u32(rel);
    if let Some((kind, cols)) = old {
        out = out.u8(kind).tuple(cols);
    }
    out.u8(b'N').tuple(new).0
}

pub(crate) fn delete(xid: Option<u32>, rel: u32, kind: u8, old: &[Col<'_>]) -> Vec<u8> {
    Out::new(b'D').xid(xid).u32(rel).u8(kind).tuple(old).0
}

pub(crate) fn truncate(xid: Option<u32>, options: u8, rels: &[u32]) -> Vec<u8> {
    let mut out = Out::new(b'T').xid(xid).u32(rels.len() as u32).u8(options);
    for rel in rels {
        out = out.u32(*rel);
    }
    out.0
}

pub(crate) fn message(
    xid: Option<u32>,
    transactional: bool,
    lsn: u64,
    prefix: &str,
    content: &[u8],
) -> Vec<u8> {
    let out = Out::new(b'M')
        .xid(xid)
        .u8(u8::from(transactional))
        .u64(lsn)
        .cstr(prefix);
    out.u32(content.len() as u32)
        .0
        .into_iter()
        .chain(content.iter().copied())
        .collect()
}

pub(crate) fn stream_start(xid: u32, first_segment: bool) -> Vec<u8> {
    Out::new(b'S').u32(xid).u8(u8::from(first_segment)).0
}

pub(crate) fn stream_stop() -> Vec<u8> {
    vec![b'E']
}

pub(crate) fn stream_commit(xid: u32, commit_lsn: u64, end_lsn: u64, time: i64) -> Vec<u8> {
    Out::new(b'c')
        .u32(xid)
        .u8(0)
        .u64(commit_lsn)
        .u64(end_lsn)
        .u64(time as u64)
        .0
}

pub(crate) fn stream_abort(xid: u32, subxid: u32) -> Vec<u8> {
    Out::new(b'A').u32(xid).u32(subxid).0
}
