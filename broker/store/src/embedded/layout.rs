//! On-disk layout of the embedded store: the redb tables and how keys and values are encoded.
//!
//! - `rows`: row key → `expires_at_ms` (u64 big-endian, 0 = never) ‖ value.
//! - `counters`: row key → i64.
//! - `expiry`: `expires_at_ms` (u64 big-endian) ‖ row key → (), an index of rows with a TTL in
//!   expiry order, so a purge reads only what has expired.
//!
//! A row key is `len(table)` (u8) ‖ table ‖ `len(pk)` (u16 big-endian) ‖ pk ‖ ck. The lengths make
//! the partition prefix unambiguous: every key that starts with a partition's prefix belongs to
//! that partition, and within it keys sort by `ck` bytewise — exactly the order of a CQL `blob`
//! clustering column.

use redb::TableDefinition;

use crate::StoreError;

/// Rows, keyed by row key.
pub(super) const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rows");
/// Counters, keyed by row key.
pub(super) const COUNTERS: TableDefinition<&[u8], i64> = TableDefinition::new("counters");
/// Expiry index, keyed by expiry time then row key.
pub(super) const EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("expiry");

/// Bytes of the expiry header in front of every stored value.
const EXPIRES_LEN: usize = 8;

/// The key prefix shared by every row of a partition. The caller has validated the lengths
/// (table ≤ 48 bytes, pk ≤ 1024 bytes), so they fit their length fields.
pub(super) fn partition_prefix(table: &str, pk: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(3 + table.len() + pk.len() + 16);
    key.push(table.len() as u8);
    key.extend_from_slice(table.as_bytes());
    key.extend_from_slice(&(pk.len() as u16).to_be_bytes());
    key.extend_from_slice(pk.as_bytes());
    key
}

/// The key of one row.
pub(super) fn row_key(table: &str, pk: &str, ck: &[u8]) -> Vec<u8> {
    let mut key = partition_prefix(table, pk);
    key.extend_from_slice(ck);
    key
}

/// The smallest key above every key that starts with `prefix`. Exists because a prefix starts
/// with a table length ≤ 48, so it is never all `0xFF`.
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != u8::MAX {
            end.push(last + 1);
            break;
        }
    }
    end
}

/// A stored row value: expiry header then the module's bytes.
pub(super) fn encode_value(expires_at_ms: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(EXPIRES_LEN + value.len());
    out.extend_from_slice(&expires_at_ms.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// Splits a stored row value into its expiry (0 = never) and the module's bytes.
pub(super) fn decode_value(stored: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    let (head, value) = stored.split_first_chunk::<EXPIRES_LEN>().ok_or_else(|| {
        StoreError::Corrupt(format!("row value of {} bytes is shorter than its expiry header", stored.len()))
    })?;
    Ok((u64::from_be_bytes(*head), value))
}

/// Whether a row with this expiry is dead at `now_ms`.
pub(super) fn is_expired(expires_at_ms: u64, now_ms: u64) -> bool {
    expires_at_ms != 0 && now_ms >= expires_at_ms
}

/// The expiry-index key of a row.
pub(super) fn expiry_key(expires_at_ms: u64, row_key: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(EXPIRES_LEN + row_key.len());
    key.extend_from_slice(&expires_at_ms.to_be_bytes());
    key.extend_from_slice(row_key);
    key
}

/// Splits an expiry-index key into the expiry and the row key.
pub(super) fn decode_expiry_key(key: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    decode_value(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_do_not_overlap() {
        let a = partition_prefix("t", "a");
        let ab = partition_prefix("t", "ab");
        let row_in_a = row_key("t", "a", b"b");
        assert!(!row_in_a.starts_with(&ab));
        assert!(row_in_a.starts_with(&a));
        assert!(row_in_a.as_slice() < prefix_end(&a).as_slice());
    }

    #[test]
    fn prefix_end_carries() {
        assert_eq!(prefix_end(&[1, 0xFF, 0xFF]), vec![2]);
        assert_eq!(prefix_end(&[1, 2]), vec![1, 3]);
    }

    #[test]
    fn values_round_trip() -> Result<(), StoreError> {
        let stored = encode_value(42, b"v");
        assert_eq!(decode_value(&stored)?, (42, &b"v"[..]));
        assert!(decode_value(b"short").is_err());
        assert!(is_expired(10, 10) && !is_expired(10, 9) && !is_expired(0, u64::MAX));
        Ok(())
    }
}
