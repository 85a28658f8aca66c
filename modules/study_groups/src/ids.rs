//! Ids the module hands out. Session and round ids are random UUIDs (version 4), as the seed's
//! `"session-uuid"` / `"round-uuid"`. Chat messages and activity events get ids that sort by time, so an
//! id is also the paging cursor (`before`, `after`): the creation time in milliseconds, zero-padded to 13
//! digits, then 16 random hex digits.

use rand::Rng;

/// A random UUID v4, lower-case hyphenated.
pub fn uuid() -> String {
    let mut bytes: [u8; 16] = rand::rng().random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// A time-ordered id for something created at `at_ms`.
pub fn ordered(at_ms: u64) -> String {
    format!("{at_ms:013}-{:016x}", rand::rng().random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_order() {
        let id = uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert_ne!(uuid(), id);
        assert!(ordered(999) < ordered(1000));
        assert_eq!(ordered(5).len(), 30);
    }
}
