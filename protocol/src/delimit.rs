//! Length-prefixed framing for byte streams (QUIC streams carry frames this way).
//!
//! Each frame is a 4-byte big-endian unsigned length `n` followed by `n` bytes of MessagePack.
//! `n` of 0 is refused (no frame is empty); `n` above the receiver's `max_frame_bytes` is refused before any
//! of the body is buffered, so a peer cannot make the receiver allocate more than its limit.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

/// Size of the length prefix in bytes.
pub const PREFIX_LEN: usize = 4;

/// Why a length prefix was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DelimitError {
    /// The announced length exceeds the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// The receiver's limit.
        max: usize,
    },
    /// The announced length is zero.
    #[error("empty frame")]
    Empty,
}

/// Takes one complete frame body off the front of `buf`. `Ok(None)` means "not enough bytes yet": read more
/// and call again. On error the stream cannot be resynchronised and should be closed.
pub fn split_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, DelimitError> {
    if buf.len() < PREFIX_LEN {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len == 0 {
        return Err(DelimitError::Empty);
    }
    if len > max {
        return Err(DelimitError::TooLarge { len, max });
    }
    if buf.len() < PREFIX_LEN + len {
        buf.reserve(PREFIX_LEN + len - buf.len());
        return Ok(None);
    }
    buf.advance(PREFIX_LEN);
    Ok(Some(buf.split_to(len).freeze()))
}

/// Writes the length prefix for a body of `len` bytes.
pub fn put_prefix(out: &mut impl BufMut, len: usize) {
    let len = u32::try_from(len).expect("frame bodies are bounded far below 4 GiB");
    out.put_u32(len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_across_partial_reads() {
        let mut wire = BytesMut::new();
        put_prefix(&mut wire, 3);
        wire.extend_from_slice(b"abc");
        put_prefix(&mut wire, 1);
        wire.extend_from_slice(b"z");
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            while let Some(frame) = split_frame(&mut buf, 16).unwrap() {
                out.push(frame);
            }
        }
        assert_eq!(out, vec![Bytes::from_static(b"abc"), Bytes::from_static(b"z")]);
        assert!(buf.is_empty());
    }

    #[test]
    fn refuses_oversize_and_empty() {
        let mut buf = BytesMut::from(&[0, 0, 1, 0][..]);
        assert_eq!(split_frame(&mut buf, 255), Err(DelimitError::TooLarge { len: 256, max: 255 }));
        let mut buf = BytesMut::from(&[0, 0, 0, 0][..]);
        assert_eq!(split_frame(&mut buf, 255), Err(DelimitError::Empty));
        let mut buf = BytesMut::from(&[0, 0][..]);
        assert_eq!(split_frame(&mut buf, 255), Ok(None));
    }
}
