//! The [`Store`] trait, the types of its requests and answers, and the limits every backend
//! enforces with the same checks (so a module that works on the embedded store does not start
//! failing on ScyllaDB or Redis).

use std::ops::Bound;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::StoreError;

/// Longest table name, in bytes. Mirrors ScyllaDB's table-name limit so a module's table could
/// become a real CQL table later without renaming.
pub const MAX_TABLE_NAME_LEN: usize = 48;

/// Longest partition key, in bytes. Far above any id or topic name a module builds, small enough
/// that keys keep redb's B-tree pages dense, and far under ScyllaDB's 64 KiB key limit.
pub const MAX_PARTITION_KEY_LEN: usize = 1024;

/// Longest clustering key, in bytes. Same reasoning as [`MAX_PARTITION_KEY_LEN`].
pub const MAX_CLUSTERING_KEY_LEN: usize = 1024;

/// Largest value, in bytes. ScyllaDB reports cells above 1 MiB as "large cells" that hurt
/// latency; a module storing more than that should split it.
pub const MAX_VALUE_LEN: usize = 1024 * 1024;

/// Most rows one [`Store::scan`] call returns. Bounds the memory of one page and the time one
/// call holds a read transaction; callers page on with [`Page::next`].
pub const MAX_SCAN_LIMIT: usize = 1000;

/// Most operations in one [`Store::batch`]. A batch of 500 small rows (≈ 50 bytes of key and
/// value each) stays under Cassandra's default 50 KiB `batch_size_fail_threshold`; ScyllaDB's
/// default threshold is 1 MiB.
pub const MAX_BATCH_OPS: usize = 500;

/// Time to live of a row, in whole seconds (the unit of CQL `USING TTL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ttl(u32);

impl Ttl {
    /// Longest TTL: 20 years, the maximum CQL accepts. (On Cassandra before 5.0 the expiry must
    /// also fall before 2038-01-19.)
    pub const MAX_SECS: u32 = 630_720_000;

    /// A TTL of `secs` seconds, `1..=MAX_SECS`.
    pub fn from_secs(secs: u32) -> Result<Self, StoreError> {
        if secs == 0 || secs > Self::MAX_SECS {
            return Err(StoreError::InvalidArgument(format!("ttl must be 1..={} seconds, got {secs}", Self::MAX_SECS)));
        }
        Ok(Self(secs))
    }

    /// The TTL in seconds.
    pub fn as_secs(self) -> u32 {
        self.0
    }

    /// The TTL as a duration.
    pub fn as_duration(self) -> Duration {
        Duration::from_secs(u64::from(self.0))
    }
}

/// One row of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Clustering key.
    pub ck: Bytes,
    /// Value, as the module wrote it.
    pub value: Bytes,
}

/// An opaque position in a scan, returned in [`Page::next`] and passed back in [`Scan::after`]
/// to fetch the following page.
///
/// A token is only meaningful for the same table, partition, bounds and direction it came from,
/// and only for the backend that issued it (a token from the other backend is rejected as
/// [`StoreError::InvalidArgument`]). Its bytes may be handed to a client and brought back later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken(Bytes);

impl PageToken {
    /// Rebuilds a token from bytes previously taken from [`PageToken::as_bytes`].
    pub fn from_bytes(bytes: Bytes) -> Self {
        Self(bytes)
    }

    /// The token's bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// A token made of a one-byte backend tag and the backend's position.
    pub(crate) fn tagged(tag: u8, position: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(1 + position.len());
        bytes.push(tag);
        bytes.extend_from_slice(position);
        Self(Bytes::from(bytes))
    }

    /// The backend's position, if the token carries `tag`.
    pub(crate) fn position(&self, tag: u8) -> Result<&[u8], StoreError> {
        match self.0.split_first() {
            Some((&t, position)) if t == tag => Ok(position),
            _ => Err(StoreError::InvalidArgument("page token was not issued by this store backend".into())),
        }
    }
}

/// A range scan within one partition: which clustering keys, how many, which direction, and
/// where to resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Lower bound on the clustering key.
    pub start: Bound<Bytes>,
    /// Upper bound on the clustering key.
    pub end: Bound<Bytes>,
    /// Most rows to return, `1..=MAX_SCAN_LIMIT`.
    pub limit: usize,
    /// Descending clustering-key order instead of ascending.
    pub reverse: bool,
    /// Resume after the page that returned this token.
    pub after: Option<PageToken>,
}

impl Scan {
    /// The whole partition in ascending order, at most `limit` rows per page.
    pub fn all(limit: usize) -> Self {
        Self { start: Bound::Unbounded, end: Bound::Unbounded, limit, reverse: false, after: None }
    }

    /// Sets the clustering-key bounds.
    pub fn range(mut self, start: Bound<Bytes>, end: Bound<Bytes>) -> Self {
        self.start = start;
        self.end = end;
        self
    }

    /// Scans in descending clustering-key order.
    pub fn reversed(mut self) -> Self {
        self.reverse = true;
        self
    }

    /// Resumes after the page that returned `token` (`None` starts from the beginning).
    pub fn after(mut self, token: Option<PageToken>) -> Self {
        self.after = token;
        self
    }

    /// For backends whose page token is the last clustering key returned (tagged `tag`): the same
    /// scan with the token folded into its bounds — it starts (or, reversed, ends) just past that key.
    pub(crate) fn resumed_after_key(&self, tag: u8) -> Result<Scan, StoreError> {
        let mut scan = self.clone();
        if let Some(token) = scan.after.take() {
            let last = Bytes::copy_from_slice(token.position(tag)?);
            if scan.reverse {
                scan.end = Bound::Excluded(last);
            } else {
                scan.start = Bound::Excluded(last);
            }
        }
        Ok(scan)
    }

    /// Whether no key can satisfy both bounds (start above end, or equal with one side
    /// excluded). Backends answer such a scan with an empty page without asking the engine.
    pub(crate) fn is_empty_range(&self) -> bool {
        let (Bound::Included(s) | Bound::Excluded(s)) = &self.start else {
            return false;
        };
        let (Bound::Included(e) | Bound::Excluded(e)) = &self.end else {
            return false;
        };
        s > e || (s == e && !(matches!(self.start, Bound::Included(_)) && matches!(self.end, Bound::Included(_))))
    }
}

/// One page of a scan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// Rows in the requested order. May hold fewer than the limit even when more follow (a
    /// backend caps a page's bytes); only `next` says whether the scan is complete.
    pub rows: Vec<Row>,
    /// `None`: the scan is complete. `Some`: pass it to [`Scan::after`] for the next page, which
    /// may turn out empty.
    pub next: Option<PageToken>,
}

/// Result of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasOutcome {
    /// Whether the condition held and the write was made.
    pub applied: bool,
    /// The row's value after the operation: the value written if applied (`None` after a
    /// delete), otherwise the value that made the condition fail (`None`: no live row).
    pub current: Option<Bytes>,
}

/// One write of a [`Store::batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Same as [`Store::put`].
    Put {
        /// Table name.
        table: String,
        /// Partition key.
        pk: String,
        /// Clustering key.
        ck: Bytes,
        /// Value.
        value: Bytes,
        /// Expiry.
        ttl: Option<Ttl>,
    },
    /// Same as [`Store::delete`].
    Delete {
        /// Table name.
        table: String,
        /// Partition key.
        pk: String,
        /// Clustering key.
        ck: Bytes,
    },
    /// Same as [`Store::counter_add`].
    CounterAdd {
        /// Table name.
        table: String,
        /// Partition key.
        pk: String,
        /// Clustering key.
        ck: Bytes,
        /// Amount to add (negative to subtract).
        delta: i64,
    },
}

/// The persistence API modules use, shaped like ScyllaDB's data model so every backend means the
/// same thing.
///
/// Data lives in named tables (`[a-z0-9_]{1,48}`, chosen by modules at run time). A row is
/// addressed by a partition key `pk` and a clustering key `ck`; rows of one partition are ordered
/// by `ck` compared bytewise (see [`crate::ClusteringKey`]) and can be range-scanned. Values are
/// opaque bytes (MessagePack written by modules). Counters live beside rows under the same kind
/// of address but in their own namespace: a counter and a row with the same address are
/// unrelated.
///
/// Every acknowledged write is durable (embedded: fsynced; ScyllaDB: acknowledged at the
/// configured consistency; Redis: as far as the server's AOF settings make it — see the crate
/// README). Conditional writes are linearizable per row. An error is always
/// returned to the caller, never swallowed; after [`StoreError::Timeout`] a write's outcome is
/// unknown.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Backend name, the `backend` label of the store metrics: `"embedded"`, `"scylla"` or
    /// `"redis"`.
    fn backend(&self) -> &'static str;

    /// Writes a row, replacing any previous value. With a TTL the row disappears that long after
    /// this write; without, it never expires (any earlier TTL is dropped).
    async fn put(&self, table: &str, pk: &str, ck: &[u8], value: Bytes, ttl: Option<Ttl>) -> Result<(), StoreError>;

    /// Reads a live row's value.
    async fn get(&self, table: &str, pk: &str, ck: &[u8]) -> Result<Option<Bytes>, StoreError>;

    /// Deletes a row (deleting a missing row is not an error).
    async fn delete(&self, table: &str, pk: &str, ck: &[u8]) -> Result<(), StoreError>;

    /// Reads one page of live rows of a partition.
    async fn scan(&self, table: &str, pk: &str, scan: &Scan) -> Result<Page, StoreError>;

    /// Writes a row only if no live row has this address.
    async fn insert_if_absent(
        &self,
        table: &str,
        pk: &str,
        ck: &[u8],
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<CasOutcome, StoreError>;

    /// Replaces a live row's value only if it equals `expected`. `ttl` applies to the new value
    /// as in [`Store::put`].
    async fn update_if_equal(
        &self,
        table: &str,
        pk: &str,
        ck: &[u8],
        expected: &[u8],
        new: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<CasOutcome, StoreError>;

    /// Deletes a live row only if its value equals `expected`.
    async fn delete_if_equal(
        &self,
        table: &str,
        pk: &str,
        ck: &[u8],
        expected: &[u8],
    ) -> Result<CasOutcome, StoreError>;

    /// Adds `delta` to a counter (a missing counter counts from 0). Counters have no TTL: CQL
    /// counters cannot expire.
    async fn counter_add(&self, table: &str, pk: &str, ck: &[u8], delta: i64) -> Result<(), StoreError>;

    /// Reads a counter (0 if it was never added to).
    async fn counter_get(&self, table: &str, pk: &str, ck: &[u8]) -> Result<i64, StoreError>;

    /// Applies up to [`MAX_BATCH_OPS`] writes as one unit, for flushes. Either all row writes
    /// (`Put`, `Delete`) or all counter writes (`CounterAdd`): CQL cannot batch both together,
    /// so a mixed batch is [`StoreError::InvalidArgument`]. Row batches are all-or-nothing on
    /// every backend (ScyllaDB: a logged batch; Redis: one script). Counter batches are
    /// all-or-nothing on the embedded store and on Redis; on ScyllaDB a failed counter batch may
    /// be partly applied.
    async fn batch(&self, ops: Vec<WriteOp>) -> Result<(), StoreError>;

    /// Physically removes expired rows and returns how many. Expired rows are already invisible;
    /// this reclaims their space. The embedded store also runs it periodically by itself;
    /// ScyllaDB purges through compaction, so there it returns 0. Redis drops a partition whose
    /// rows have all expired by itself (those rows are not counted here), and writes trim
    /// expired rows of the partition they write to; this removes the rest.
    async fn purge_expired(&self) -> Result<u64, StoreError>;

    /// Finishes acknowledged work and releases the backend (the embedded database file, network
    /// connections), so the same data can be opened again at once. Later operations fail with
    /// [`StoreError::Unavailable`]. Closing twice is harmless.
    async fn close(&self) -> Result<(), StoreError>;
}

/// Checks a table name against `[a-z0-9_]{1,48}`.
pub(crate) fn check_table(table: &str) -> Result<(), StoreError> {
    let ok = !table.is_empty()
        && table.len() <= MAX_TABLE_NAME_LEN
        && table.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidArgument(format!("table name {table:?} must match [a-z0-9_]{{1,{MAX_TABLE_NAME_LEN}}}")))
    }
}

/// Checks a table name and partition key.
pub(crate) fn check_partition(table: &str, pk: &str) -> Result<(), StoreError> {
    check_table(table)?;
    if pk.is_empty() || pk.len() > MAX_PARTITION_KEY_LEN {
        return Err(StoreError::InvalidArgument(format!(
            "partition key must be 1..={MAX_PARTITION_KEY_LEN} bytes, got {}",
            pk.len()
        )));
    }
    Ok(())
}

/// Checks a clustering key's length (also used for scan bounds).
fn check_ck(ck: &[u8]) -> Result<(), StoreError> {
    if ck.is_empty() || ck.len() > MAX_CLUSTERING_KEY_LEN {
        return Err(StoreError::InvalidArgument(format!(
            "clustering key must be 1..={MAX_CLUSTERING_KEY_LEN} bytes, got {}",
            ck.len()
        )));
    }
    Ok(())
}

/// Checks a full row address.
pub(crate) fn check_key(table: &str, pk: &str, ck: &[u8]) -> Result<(), StoreError> {
    check_partition(table, pk)?;
    check_ck(ck)
}

/// Checks a value's length.
pub(crate) fn check_value(value: &[u8]) -> Result<(), StoreError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(StoreError::InvalidArgument(format!(
            "value must be at most {MAX_VALUE_LEN} bytes, got {}",
            value.len()
        )));
    }
    Ok(())
}

/// Checks a scan's partition, limit and bounds.
pub(crate) fn check_scan(table: &str, pk: &str, scan: &Scan) -> Result<(), StoreError> {
    check_partition(table, pk)?;
    if scan.limit == 0 || scan.limit > MAX_SCAN_LIMIT {
        return Err(StoreError::InvalidArgument(format!(
            "scan limit must be 1..={MAX_SCAN_LIMIT}, got {}",
            scan.limit
        )));
    }
    for bound in [&scan.start, &scan.end] {
        if let Bound::Included(ck) | Bound::Excluded(ck) = bound {
            check_ck(ck)?;
        }
    }
    Ok(())
}

/// What a valid batch holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BatchKind {
    /// No operations.
    Empty,
    /// Only `Put` and `Delete`.
    Rows,
    /// Only `CounterAdd`.
    Counters,
}

/// Checks every operation of a batch and that it does not mix rows and counters.
pub(crate) fn check_batch(ops: &[WriteOp]) -> Result<BatchKind, StoreError> {
    if ops.len() > MAX_BATCH_OPS {
        return Err(StoreError::InvalidArgument(format!(
            "batch must hold at most {MAX_BATCH_OPS} operations, got {}",
            ops.len()
        )));
    }
    let mut kind = BatchKind::Empty;
    for op in ops {
        let op_kind = match op {
            WriteOp::Put { table, pk, ck, value, .. } => {
                check_key(table, pk, ck)?;
                check_value(value)?;
                BatchKind::Rows
            }
            WriteOp::Delete { table, pk, ck } => {
                check_key(table, pk, ck)?;
                BatchKind::Rows
            }
            WriteOp::CounterAdd { table, pk, ck, .. } => {
                check_key(table, pk, ck)?;
                BatchKind::Counters
            }
        };
        if kind != BatchKind::Empty && kind != op_kind {
            return Err(StoreError::InvalidArgument(
                "a batch holds either row writes or counter writes, not both".into(),
            ));
        }
        kind = op_kind;
    }
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn table_names() {
        assert!(check_table("votes_2024").is_ok());
        assert!(check_table(&"a".repeat(48)).is_ok());
        for bad in ["", "Votes", "a-b", "a b", "é", &"a".repeat(49)] {
            assert!(matches!(check_table(bad), Err(StoreError::InvalidArgument(_))), "{bad:?}");
        }
    }

    #[test]
    fn empty_ranges() {
        use Bound::*;
        let r = |s, e| Scan::all(1).range(s, e).is_empty_range();
        assert!(!r(Unbounded, Unbounded));
        assert!(!r(Included(b("a")), Included(b("a"))));
        assert!(r(Included(b("a")), Excluded(b("a"))));
        assert!(r(Excluded(b("a")), Included(b("a"))));
        assert!(r(Included(b("b")), Included(b("a"))));
        assert!(!r(Excluded(b("a")), Excluded(b("b"))));
    }

    #[test]
    fn page_token_tags() {
        let t = PageToken::tagged(b'e', b"pos");
        assert_eq!(t.position(b'e'), Ok(&b"pos"[..]));
        assert!(t.position(b's').is_err());
        assert!(PageToken::from_bytes(Bytes::new()).position(b'e').is_err());
    }

    #[test]
    fn ttl_bounds() {
        assert!(Ttl::from_secs(0).is_err());
        assert!(Ttl::from_secs(Ttl::MAX_SECS + 1).is_err());
        assert_eq!(Ttl::from_secs(5).map(Ttl::as_duration), Ok(Duration::from_secs(5)));
    }
}
