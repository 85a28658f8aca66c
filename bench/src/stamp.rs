//! The bench payload: an ASCII string of the configured size whose first 32 bytes carry, in hex, the
//! time the message was meant to be sent and its index. Every target carries it as a plain string, so no
//! target pays for a codec the others do not, and the receiver finds it at a fixed place in the frame.

use std::sync::OnceLock;
use std::time::Instant;

/// Bytes of the payload used by the stamp; the rest is filler.
pub const STAMP_LEN: usize = 32;

/// Filler byte after the stamp.
const FILLER: u8 = b'.';

/// The instant all stamps count from (first use in this process).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds from the stamp epoch to `at` (0 before it).
pub fn nanos_at(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

/// Nanoseconds from the stamp epoch to now.
pub fn now_nanos() -> u64 {
    nanos_at(Instant::now())
}

/// A payload of `len` bytes (at least [`STAMP_LEN`]) with an all-zero stamp.
pub fn blank(len: usize) -> Vec<u8> {
    let mut p = vec![FILLER; len.max(STAMP_LEN)];
    write(&mut p, 0, 0);
    p
}

/// Writes the send time (ns since the epoch) and the message index into the first 32 bytes of `out`.
pub fn write(out: &mut [u8], sent_nanos: u64, index: u64) {
    put_hex(&mut out[..16], sent_nanos);
    put_hex(&mut out[16..STAMP_LEN], index);
}

/// Reads the send time and index of a payload; `None` when it holds no stamp.
pub fn read(payload: &[u8]) -> Option<(u64, u64)> {
    let stamp = payload.get(..STAMP_LEN)?;
    Some((get_hex(&stamp[..16])?, get_hex(&stamp[16..])?))
}

fn put_hex(out: &mut [u8], mut v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
}

fn get_hex(digits: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &d in digits {
        let n = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u64::from(n);
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        let mut p = blank(64);
        assert_eq!(p.len(), 64);
        write(&mut p, 0x0123_4567_89ab_cdef, 42);
        assert_eq!(read(&p), Some((0x0123_4567_89ab_cdef, 42)));
        assert!(p[STAMP_LEN..].iter().all(|&b| b == FILLER));
        assert_eq!(read(b"not a stamp at all, not at all!!"), None);
        assert_eq!(read(b"short"), None);
    }
}
