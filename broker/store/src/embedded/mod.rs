//! The embedded backend: one redb database file, `<data_dir>/store.redb`.
//!
//! Why redb: it is pure Rust, maintained, a single file with no background threads of its own,
//! and its commits are fsynced copy-on-write B-tree swaps — an acknowledged write survives
//! `kill -9` and power loss with no write-ahead log to replay. Its ordered byte keys and range
//! iterators map directly onto partitions of ordered clustering keys, and its serialized write
//! transactions give conditional writes linearizability for free. (fjall, an LSM tree, would write
//! faster under heavy load but brings background compaction threads and a journal whose fsync
//! policy must be managed separately; the broker's write volume does not need it.)
//!
//! Reads run in [`tokio::task::spawn_blocking`] on their own read transaction (MVCC: they never
//! wait for the writer). Writes go to the single writer thread in [`writer`], which group-commits.
//! Expired rows are invisible from the moment they expire (every read compares the expiry with the
//! store's [`Clock`]); a sweep task removes them every [`PURGE_INTERVAL`], and
//! [`Store::purge_expired`] does it on demand. A database that failed on an I/O error (a full
//! disk) is closed and opened again by the writer ([`handle`]), so the store recovers by itself.

mod handle;
mod layout;
mod writer;

use handle::Handle;
use parking_lot::{Mutex, RwLock};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, ReadableDatabase};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::store::{BatchKind, check_batch, check_key, check_scan, check_value};
use crate::{CasOutcome, Clock, Page, PageToken, Row, Scan, Store, StoreError, Ttl, WriteOp};
use layout::{COUNTERS, EXPIRY, ROWS, decode_value, is_expired, partition_prefix, prefix_end};
use writer::{Cas, Job, PURGE_BATCH_ROWS, Write};

/// File name of the database inside the data directory.
pub(crate) const DB_FILE_NAME: &str = "store.redb";

/// How often the sweep task purges expired rows. Expired rows are already invisible, so this
/// only bounds how long their disk space stays claimed; once a minute keeps a sweep's work small.
pub(crate) const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// Most bytes of row values one scan page carries, so a page of large values stays bounded even
/// at [`crate::MAX_SCAN_LIMIT`] rows. Matches the order of ScyllaDB's own 1 MiB page cap.
const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// Most reads running on blocking threads at once. A read is a short B-tree walk, mostly in the
/// page cache: beyond a few per core, more threads add only context switches, and a burst of
/// reads (1,000 racing tasks in the conformance suite) would otherwise take up to tokio's 512
/// blocking threads, which the rest of the broker shares.
const MAX_CONCURRENT_READS: usize = 16;

/// Tag of this backend's page tokens.
const PAGE_TOKEN_TAG: u8 = b'e';

/// The redb-backed [`Store`].
pub(crate) struct EmbeddedStore {
    /// The database file, shared with the writer.
    db: Arc<Handle>,
    clock: Arc<dyn Clock>,
    /// `None` once closed; dropping the last sender stops the writer thread.
    jobs: RwLock<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Permits for reads in flight on blocking threads (see [`MAX_CONCURRENT_READS`]).
    reads: Semaphore,
}

fn closed() -> StoreError {
    StoreError::Unavailable("embedded store is closed".into())
}

impl EmbeddedStore {
    /// Opens (creating if needed) `<data_dir>/store.redb`, starts the writer thread and the purge
    /// sweep. Must be called inside a tokio runtime.
    pub(crate) async fn open(data_dir: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let dir = data_dir.to_path_buf();
        let db = tokio::task::spawn_blocking(move || open_db(&dir))
            .await
            .map_err(|e| StoreError::Backend(format!("embedded store open task failed: {e}")))??;
        let db = Arc::new(Handle::new(data_dir.to_path_buf(), db));
        let (jobs, writer) = writer::spawn(db.clone(), clock.clone())?;
        spawn_sweeper(jobs.downgrade());
        Ok(Self {
            db,
            clock,
            jobs: RwLock::new(Some(jobs)),
            writer: Mutex::new(Some(writer)),
            reads: Semaphore::new(MAX_CONCURRENT_READS),
        })
    }

    /// Runs a read transaction on a blocking thread.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database, u64) -> Result<T, StoreError> + Send + 'static,
    {
        // The semaphore is never closed, so acquiring only waits.
        let _permit =
            self.reads.acquire().await.map_err(|e| StoreError::Backend(format!("embedded store read gate: {e}")))?;
        let db = self.db.get()?;
        let clock = self.clock.clone();
        tokio::task::spawn_blocking(move || f(&db, clock.now_ms()))
            .await
            .map_err(|e| StoreError::Backend(format!("embedded store read task failed: {e}")))?
    }

    /// Hands a job to the writer and waits for its answer.
    async fn submit<T>(&self, job: Job, answer: oneshot::Receiver<Result<T, StoreError>>) -> Result<T, StoreError> {
        // The writer thread lives as long as this store holds its queue, so a closed queue or a
        // dropped answer means it panicked: a bug, not an outage.
        let jobs = self.jobs.read().clone().ok_or_else(closed)?;
        jobs.send(job).await.map_err(|_| StoreError::Backend("embedded store writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Backend("embedded store writer stopped before answering".into()))?
    }

    async fn write(&self, write: Write) -> Result<(), StoreError> {
        let (done, answer) = oneshot::channel();
        self.submit(Job::Write { write, done }, answer).await
    }

    async fn cas(&self, cas: Cas) -> Result<CasOutcome, StoreError> {
        let (done, answer) = oneshot::channel();
        self.submit(Job::Cas { cas, done }, answer).await
    }
}

fn open_db(dir: &Path) -> Result<Database, StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        StoreError::Unavailable(format!("embedded store: cannot create data dir {}: {e}", dir.display()))
    })?;
    let path = dir.join(DB_FILE_NAME);
    let db = Database::create(&path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Unavailable(format!(
            "embedded store: {} is already open in another process or handle",
            path.display()
        )),
        other => match engine_error(other) {
            StoreError::Unavailable(m) => StoreError::Unavailable(format!("cannot open {}: {m}", path.display())),
            err => err,
        },
    })?;
    // Create the tables once so read transactions can always open them.
    let txn = db.begin_write().map_err(engine_error)?;
    txn.open_table(ROWS).map_err(engine_error)?;
    txn.open_table(COUNTERS).map_err(engine_error)?;
    txn.open_table(EXPIRY).map_err(engine_error)?;
    txn.commit().map_err(engine_error)?;
    Ok(db)
}

/// Purges expired rows every [`PURGE_INTERVAL`] until the store is dropped. Holds only a weak
/// handle on the writer queue between sweeps so it never keeps the store alive.
fn spawn_sweeper(jobs: mpsc::WeakSender<Job>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(jobs) = jobs.upgrade() else { return };
            loop {
                let (done, answer) = oneshot::channel();
                if jobs.send(Job::Purge { done }).await.is_err() {
                    return;
                }
                match answer.await {
                    // A full batch means more may be due: go on right away.
                    Ok(Ok(PURGE_BATCH_ROWS)) => continue,
                    Ok(Ok(_)) => break,
                    Ok(Err(err)) => {
                        tracing::warn!(error = %err, "embedded store purge failed");
                        break;
                    }
                    Err(_) => return,
                }
            }
        }
    });
}

/// Maps a redb error to a [`StoreError`]: I/O and locking problems are `Unavailable`, detected
/// corruption is `Corrupt`, anything else (a redb misuse, i.e. a bug here) is `Backend`.
fn engine_error(err: impl Into<redb::Error>) -> StoreError {
    let err: redb::Error = err.into();
    match err {
        redb::Error::Corrupted(msg) => StoreError::Corrupt(format!("embedded store: {msg}")),
        redb::Error::Io(_)
        | redb::Error::PreviousIo
        | redb::Error::DatabaseClosed
        | redb::Error::DatabaseAlreadyOpen
        | redb::Error::LockProtocolMismatch => StoreError::Unavailable(format!("embedded store: {err}")),
        other => StoreError::Backend(format!("embedded store: {other}")),
    }
}

/// The redb key range of a scan, inside the partition `prefix`.
fn key_range(prefix: &[u8], scan: &Scan) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let with_prefix = |ck: &[u8]| {
        let mut key = prefix.to_vec();
        key.extend_from_slice(ck);
        key
    };
    let start = match &scan.start {
        Bound::Included(ck) => Bound::Included(with_prefix(ck)),
        Bound::Excluded(ck) => Bound::Excluded(with_prefix(ck)),
        Bound::Unbounded => Bound::Included(prefix.to_vec()),
    };
    let end = match &scan.end {
        Bound::Included(ck) => Bound::Included(with_prefix(ck)),
        Bound::Excluded(ck) => Bound::Excluded(with_prefix(ck)),
        Bound::Unbounded => Bound::Excluded(prefix_end(prefix)),
    };
    (start, end)
}

/// Reads one page: live rows in order, up to the limit and [`MAX_PAGE_BYTES`]. The token is the
/// last clustering key returned; there is a next page only if a live row follows it.
fn scan_page(db: &Database, now_ms: u64, prefix: &[u8], scan: &Scan) -> Result<Page, StoreError> {
    let txn = db.begin_read().map_err(engine_error)?;
    let rows_table = txn.open_table(ROWS).map_err(engine_error)?;
    let (start, end) = key_range(prefix, scan);
    let range = rows_table.range::<&[u8]>((as_slice_bound(&start), as_slice_bound(&end))).map_err(engine_error)?;
    let entries: Box<dyn Iterator<Item = _>> = if scan.reverse { Box::new(range.rev()) } else { Box::new(range) };
    let mut rows = Vec::new();
    let mut bytes = 0;
    let mut full = false;
    for entry in entries {
        let (key, stored) = entry.map_err(engine_error)?;
        let (expires_at_ms, value) = decode_value(stored.value())?;
        if is_expired(expires_at_ms, now_ms) {
            continue;
        }
        if full {
            // A live row follows the page: hand out a token.
            let next = rows.last().map(|row: &Row| PageToken::tagged(PAGE_TOKEN_TAG, &row.ck));
            return Ok(Page { rows, next });
        }
        let ck = &key.value()[prefix.len()..];
        bytes += value.len();
        rows.push(Row { ck: Bytes::copy_from_slice(ck), value: Bytes::copy_from_slice(value) });
        full = rows.len() >= scan.limit || bytes >= MAX_PAGE_BYTES;
    }
    Ok(Page { rows, next: None })
}

fn as_slice_bound(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn put(&self, table: &str, pk: &str, ck: &[u8], value: Bytes, ttl: Option<Ttl>) -> Result<(), StoreError> {
        check_key(table, pk, ck)?;
        check_value(&value)?;
        let key = layout::row_key(table, pk, ck);
        self.write(Write::Put { key, value, ttl }).await
    }

    async fn get(&self, table: &str, pk: &str, ck: &[u8]) -> Result<Option<Bytes>, StoreError> {
        check_key(table, pk, ck)?;
        let key = layout::row_key(table, pk, ck);
        self.read(move |db, now_ms| {
            let txn = db.begin_read().map_err(engine_error)?;
            let rows = txn.open_table(ROWS).map_err(engine_error)?;
            let Some(stored) = rows.get(key.as_slice()).map_err(engine_error)? else {
                return Ok(None);
            };
            let (expires_at_ms, value) = decode_value(stored.value())?;
            Ok((!is_expired(expires_at_ms, now_ms)).then(|| Bytes::copy_from_slice(value)))
        })
        .await
    }

    async fn delete(&self, table: &str, pk: &str, ck: &[u8]) -> Result<(), StoreError> {
        check_key(table, pk, ck)?;
        let key = layout::row_key(table, pk, ck);
        self.write(Write::Delete { key }).await
    }

    async fn scan(&self, table: &str, pk: &str, scan: &Scan) -> Result<Page, StoreError> {
        check_scan(table, pk, scan)?;
        let scan = scan.resumed_after_key(PAGE_TOKEN_TAG)?;
        if scan.is_empty_range() {
            return Ok(Page::default());
        }
        let prefix = partition_prefix(table, pk);
        self.read(move |db, now_ms| scan_page(db, now_ms, &prefix, &scan)).await
    }

    async fn insert_if_absent(
        &self,
        table: &str,
        pk: &str,
        ck: &[u8],
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<CasOutcome, StoreError> {
        check_key(table, pk, ck)?;
        check_value(&value)?;
        let key = layout::row_key(table, pk, ck);
        self.cas(Cas::InsertIfAbsent { key, value, ttl }).await
    }

    async fn update_if_equal(
        &self,
        table: &str,
        pk: &str,
        ck: &[u8],
        expected: &[u8],
        new: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<CasOutcome, StoreError> {
        check_key(table, pk, ck)?;
        check_value(&new)?;
        let key = layout::row_key(table, pk, ck);
        let expected = Bytes::copy_from_slice(expected);
        self.cas(Cas::UpdateIfEqual { key, expected, new, ttl }).await
    }

    async fn delete_if_equal(
        &self,
        table: &str,
        pk: &str,
        ck: &[u8],
        expected: &[u8],
    ) -> Result<CasOutcome, StoreError> {
        check_key(table, pk, ck)?;
        let key = layout::row_key(table, pk, ck);
        let expected = Bytes::copy_from_slice(expected);
        self.cas(Cas::DeleteIfEqual { key, expected }).await
    }

    async fn counter_add(&self, table: &str, pk: &str, ck: &[u8], delta: i64) -> Result<(), StoreError> {
        check_key(table, pk, ck)?;
        let key = layout::row_key(table, pk, ck);
        self.write(Write::CounterAdd { key, delta }).await
    }

    async fn counter_get(&self, table: &str, pk: &str, ck: &[u8]) -> Result<i64, StoreError> {
        check_key(table, pk, ck)?;
        let key = layout::row_key(table, pk, ck);
        self.read(move |db, _| {
            let txn = db.begin_read().map_err(engine_error)?;
            let counters = txn.open_table(COUNTERS).map_err(engine_error)?;
            Ok(counters.get(key.as_slice()).map_err(engine_error)?.map_or(0, |v| v.value()))
        })
        .await
    }

    async fn batch(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        if check_batch(&ops)? == BatchKind::Empty {
            return Ok(());
        }
        let writes = ops
            .into_iter()
            .map(|op| match op {
                WriteOp::Put { table, pk, ck, value, ttl } => {
                    Write::Put { key: layout::row_key(&table, &pk, &ck), value, ttl }
                }
                WriteOp::Delete { table, pk, ck } => Write::Delete { key: layout::row_key(&table, &pk, &ck) },
                WriteOp::CounterAdd { table, pk, ck, delta } => {
                    Write::CounterAdd { key: layout::row_key(&table, &pk, &ck), delta }
                }
            })
            .collect();
        self.write(Write::Batch(writes)).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        // Stop taking writes; the writer commits what is queued, then exits and drops its handle.
        drop(self.jobs.write().take());
        let writer = self.writer.lock().take();
        if let Some(writer) = writer {
            tokio::task::spawn_blocking(move || writer.join())
                .await
                .map_err(|e| StoreError::Backend(format!("embedded store close task failed: {e}")))?
                .map_err(|_| StoreError::Backend("embedded store writer panicked".into()))?;
        }
        // Wait out reads in flight (each holds a permit while it uses the database), then drop the
        // last handle so the file is released before this returns.
        let _all = self
            .reads
            .acquire_many(MAX_CONCURRENT_READS as u32)
            .await
            .map_err(|e| StoreError::Backend(format!("embedded store read gate: {e}")))?;
        let db = self.db.close();
        tokio::task::spawn_blocking(move || drop(db))
            .await
            .map_err(|e| StoreError::Backend(format!("embedded store close task failed: {e}")))
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let (done, answer) = oneshot::channel();
            let purged = self.submit(Job::Purge { done }, answer).await?;
            total += purged;
            if purged < PURGE_BATCH_ROWS {
                return Ok(total);
            }
        }
    }
}
