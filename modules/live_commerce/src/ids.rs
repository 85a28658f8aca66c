//! Ids: UUIDs (version 7) for sessions, products, chat messages and views — the seed's ids are UUID
//! strings.
//!
//! A version-7 UUID starts with its creation time in milliseconds, so its text sorts by creation time:
//! rows keyed by it are listed newest first by a reversed scan. Within one millisecond this process
//! counts up in the 12 `rand_a` bits, so ids made here are strictly increasing even when the (test) clock
//! stands still.

use parking_lot::Mutex;

/// Makes version-7 UUIDs that increase strictly within this process.
#[derive(Debug, Default)]
pub struct IdMaker {
    /// The last (millisecond, counter) handed out.
    last: Mutex<(u64, u16)>,
}

/// Largest value of the 12-bit `rand_a` counter; past it the id borrows the next millisecond.
const COUNTER_MAX: u16 = 0x0fff;

impl IdMaker {
    /// A new id for time `now_ms`.
    pub fn next(&self, now_ms: u64) -> String {
        let (ms, counter) = {
            let mut last = self.last.lock();
            let next = if now_ms > last.0 {
                (now_ms, 0)
            } else if last.1 < COUNTER_MAX {
                (last.0, last.1 + 1)
            } else {
                (last.0 + 1, 0)
            };
            *last = next;
            next
        };
        format_v7(ms, counter, rand::random::<u64>())
    }
}

/// The text of a version-7 UUID: 48 bits of `ms`, version 7, 12 bits of `counter`, variant `10`, 62
/// random bits.
fn format_v7(ms: u64, counter: u16, random: u64) -> String {
    let ms = ms & 0xffff_ffff_ffff;
    let rand_b = (random & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        ms >> 16,
        ms & 0xffff,
        0x7000 | (counter & COUNTER_MAX),
        rand_b >> 48,
        rand_b & 0xffff_ffff_ffff
    )
}

/// Whether `text` looks like a UUID (8-4-4-4-12 hex digits); ids from clients are checked before they
/// address a row.
pub fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.bytes().enumerate().all(|(at, b)| match at {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_count_up_within_a_millisecond() {
        let maker = IdMaker::default();
        let a = maker.next(1_700_000_000_000);
        let b = maker.next(1_700_000_000_000);
        let c = maker.next(1_700_000_000_001);
        assert!(a < b && b < c, "{a} {b} {c}");
        assert!(is_uuid(&a) && a.as_bytes()[14] == b'7');
        assert_eq!(format_v7(0x0123_4567_89ab, 5, 0), "01234567-89ab-7005-8000-000000000000");
        assert!(!is_uuid("not-a-uuid") && !is_uuid("01234567-89ab-7005-8000-00000000000g"));
        assert!(!is_uuid("") && !is_uuid("01234567-89ab7-005-8000-000000000000"));
        assert!(!is_uuid("01234567-89ab-7005-8000-0000000000000") && !is_uuid("01234567-89ab-7005-8000-00000000000é"));
    }

    #[test]
    fn a_full_millisecond_borrows_the_next() {
        let maker = IdMaker::default();
        let ids: Vec<String> = (0..=u32::from(COUNTER_MAX) + 1).map(|_| maker.next(10)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.last().is_some_and(|id| id.starts_with("00000000-000b-7000")));
    }
}
