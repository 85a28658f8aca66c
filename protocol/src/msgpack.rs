//! MessagePack frame reader and writer, by hand over byte slices: the reader records payload fields as
//! zero-copy slices of the frame (so fan-out can forward the publisher's bytes as they are) and validates
//! them in the same pass.

use crate::codec::Codec;
use crate::codec::{DecodeError, Fields, FrameOut};
use crate::payload::{MAX_DEPTH, Payload, PayloadError};
use bytes::Bytes;

enum Fail {
    Truncated,
    Payload(PayloadError),
}

impl From<Fail> for PayloadError {
    fn from(f: Fail) -> Self {
        match f {
            Fail::Truncated => PayloadError::Malformed("truncated".into()),
            Fail::Payload(e) => e,
        }
    }
}

impl From<Fail> for DecodeError {
    fn from(f: Fail) -> Self {
        match f {
            Fail::Truncated => DecodeError::Malformed("truncated MessagePack".into()),
            Fail::Payload(PayloadError::Malformed(m)) => DecodeError::Malformed(m),
            Fail::Payload(e) => DecodeError::InvalidPayload(e),
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Fail> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or(Fail::Truncated)?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, Fail> {
        Ok(self.take(1)?[0])
    }

    fn peek(&self) -> Result<u8, Fail> {
        self.buf.get(self.pos).copied().ok_or(Fail::Truncated)
    }

    fn be(&mut self, n: usize) -> Result<u64, Fail> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// Length of a string starting at the current marker, or `None` if the value is not a string.
    fn str_len(&mut self) -> Result<Option<usize>, Fail> {
        Ok(Some(match self.peek()? {
            m @ 0xa0..=0xbf => {
                self.pos += 1;
                usize::from(m & 0x1f)
            }
            0xd9 => {
                self.pos += 1;
                self.be(1)? as usize
            }
            0xda => {
                self.pos += 1;
                self.be(2)? as usize
            }
            0xdb => {
                self.pos += 1;
                self.be(4)? as usize
            }
            _ => return Ok(None),
        }))
    }

    fn str_body(&mut self, len: usize) -> Result<&'a str, Fail> {
        std::str::from_utf8(self.take(len)?)
            .map_err(|_| Fail::Payload(PayloadError::Malformed("string is not UTF-8".into())))
    }

    /// Skips one value, checking it is representable in JSON.
    fn skip(&mut self, depth: usize) -> Result<(), Fail> {
        let m = self.byte()?;
        let (len, nested) = match m {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => return Ok(()),
            0xcc | 0xd0 => return self.take(1).map(drop),
            0xcd | 0xd1 => return self.take(2).map(drop),
            0xca | 0xce | 0xd2 => return self.take(4).map(drop),
            0xcb | 0xcf | 0xd3 => return self.take(8).map(drop),
            0xa0..=0xbf | 0xd9..=0xdb => {
                self.pos -= 1;
                let len = self.str_len()?.ok_or(Fail::Truncated)?;
                return self.str_body(len).map(drop);
            }
            0xc4 => return self.bin(1),
            0xc5 => return self.bin(2),
            0xc6 => return self.bin(4),
            0x90..=0x9f => (usize::from(m & 0x0f), Nested::Array),
            0xdc => (self.be(2)? as usize, Nested::Array),
            0xdd => (self.be(4)? as usize, Nested::Array),
            0x80..=0x8f => (usize::from(m & 0x0f), Nested::Map),
            0xde => (self.be(2)? as usize, Nested::Map),
            0xdf => (self.be(4)? as usize, Nested::Map),
            0xc7..=0xc9 | 0xd4..=0xd8 => {
                return Err(Fail::Payload(PayloadError::Unrepresentable("extension types are not supported")));
            }
            0xc1 => return Err(Fail::Payload(PayloadError::Malformed("reserved marker 0xc1".into()))),
        };
        if depth >= MAX_DEPTH {
            return Err(Fail::Payload(PayloadError::TooDeep));
        }
        for _ in 0..len {
            if nested == Nested::Map {
                let klen =
                    self.str_len()?.ok_or(Fail::Payload(PayloadError::Unrepresentable("map keys must be strings")))?;
                self.str_body(klen)?;
            }
            self.skip(depth + 1)?;
        }
        Ok(())
    }

    fn bin(&mut self, width: usize) -> Result<(), Fail> {
        let len = self.be(width)? as usize;
        self.take(len).map(drop)
    }

    fn opt_str(&mut self, field: &'static str) -> Result<Option<String>, DecodeError> {
        if self.peek()? == 0xc0 {
            self.pos += 1;
            return Ok(None);
        }
        match self.str_len()? {
            Some(len) => Ok(Some(self.str_body(len)?.to_owned())),
            None => Err(DecodeError::InvalidField { field, reason: "expected a string".into() }),
        }
    }

    fn opt_uint(&mut self, field: &'static str) -> Result<Option<u64>, DecodeError> {
        let wrong = || DecodeError::InvalidField { field, reason: "expected an unsigned integer".into() };
        let m = self.byte()?;
        Ok(match m {
            0xc0 => None,
            0x00..=0x7f => Some(u64::from(m)),
            0xcc..=0xcf => Some(self.be(1 << (m - 0xcc))?),
            0xd0..=0xd3 => {
                let width = 1usize << (m - 0xd0);
                let shift = 64 - 8 * width as u32;
                let v = ((self.be(width)? << shift) as i64) >> shift;
                Some(u64::try_from(v).map_err(|_| wrong())?)
            }
            _ => return Err(wrong()),
        })
    }
}

#[derive(PartialEq)]
enum Nested {
    Array,
    Map,
}

/// Checks that `raw` is exactly one representable MessagePack value.
pub(crate) fn validate_value(raw: &[u8]) -> Result<(), PayloadError> {
    let mut r = Reader { buf: raw, pos: 0 };
    r.skip(0)?;
    if r.pos != raw.len() {
        return Err(PayloadError::Malformed("trailing bytes after the value".into()));
    }
    Ok(())
}

pub(crate) fn read_fields(frame: &Bytes) -> Result<Fields, DecodeError> {
    let mut r = Reader { buf: frame, pos: 0 };
    let len = match r.byte()? {
        m @ 0x80..=0x8f => usize::from(m & 0x0f),
        0xde => r.be(2)? as usize,
        0xdf => r.be(4)? as usize,
        _ => return Err(DecodeError::Malformed("a frame must be a map".into())),
    };
    let mut f = Fields::default();
    for _ in 0..len {
        let klen = r.str_len()?.ok_or_else(|| DecodeError::Malformed("frame keys must be strings".into()))?;
        let key = r.str_body(klen)?;
        match key {
            "type" => f.ty = r.opt_str("type")?,
            "id" => f.id = r.opt_uint("id")?,
            "seq" => f.seq = r.opt_uint("seq")?,
            "code" => f.code = r.opt_uint("code")?,
            "conn_id" => f.conn_id = r.opt_uint("conn_id")?,
            "token" => f.token = r.opt_str("token")?,
            "topic" => f.topic = r.opt_str("topic")?,
            "method" => f.method = r.opt_str("method")?,
            "message" => f.message = r.opt_str("message")?,
            "reason" => f.reason = r.opt_str("reason")?,
            "since" | "payload" | "args" | "result" | "identity" | "limits" => {
                let start = r.pos;
                r.skip(0)?;
                let value = Some(Payload::validated(Codec::MsgPack, frame.slice(start..r.pos)));
                match key {
                    "since" => f.since = value.filter(|p| p.raw()[..] != [0xc0]),
                    "payload" => f.payload = value,
                    "args" => f.args = value,
                    "result" => f.result = value,
                    "identity" => f.identity = value,
                    _ => f.limits = value,
                }
            }
            _ => r.skip(0)?,
        }
    }
    if r.pos != frame.len() {
        return Err(DecodeError::Malformed("trailing bytes after the frame".into()));
    }
    Ok(f)
}

/// MessagePack frame writer.
pub(crate) struct Out {
    buf: Vec<u8>,
}

impl Out {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self { buf: Vec::with_capacity(capacity) }
    }

    pub(crate) fn finish(self) -> Bytes {
        Bytes::from(self.buf)
    }

    fn len_header(&mut self, len: usize, fix: u8, fix_max: usize, m16: u8, m32: u8) {
        if len <= fix_max {
            self.buf.push(fix | len as u8);
        } else if let Ok(len) = u16::try_from(len) {
            self.buf.push(m16);
            self.buf.extend_from_slice(&len.to_be_bytes());
        } else {
            self.buf.push(m32);
            self.buf.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
}

impl FrameOut for Out {
    fn map(&mut self, len: usize) {
        self.len_header(len, 0x80, 15, 0xde, 0xdf);
    }

    fn end_map(&mut self) {}

    fn key(&mut self, key: &str) {
        self.str(key);
    }

    fn str(&mut self, value: &str) {
        let len = value.len();
        if len < 32 {
            self.buf.push(0xa0 | len as u8);
        } else if len < 256 {
            self.buf.extend_from_slice(&[0xd9, len as u8]);
        } else {
            self.len_header(len, 0, 0, 0xda, 0xdb);
        }
        self.buf.extend_from_slice(value.as_bytes());
    }

    fn uint(&mut self, v: u64) {
        if v < 128 {
            self.buf.push(v as u8);
        } else if v < 256 {
            self.buf.extend_from_slice(&[0xcc, v as u8]);
        } else if v < 65_536 {
            self.buf.push(0xcd);
            self.buf.extend_from_slice(&(v as u16).to_be_bytes());
        } else if v < 1 << 32 {
            self.buf.push(0xce);
            self.buf.extend_from_slice(&(v as u32).to_be_bytes());
        } else {
            self.buf.push(0xcf);
            self.buf.extend_from_slice(&v.to_be_bytes());
        }
    }

    fn bool(&mut self, v: bool) {
        self.buf.push(if v { 0xc3 } else { 0xc2 });
    }

    fn payload(&mut self, payload: &Payload) -> Result<(), PayloadError> {
        self.buf.extend_from_slice(&payload.encoded(Codec::MsgPack)?);
        Ok(())
    }
}
