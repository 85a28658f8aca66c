//! The embedded store's single writer: one OS thread that owns every redb write transaction.
//!
//! redb runs one write transaction at a time and each commit is an fsync. Rather than park a
//! blocking thread per concurrent write (the rest waiting on redb's lock), writes are queued to
//! this thread, which applies every queued job — up to [`MAX_JOBS_PER_COMMIT`] — in one
//! transaction and commits once (group commit). A job's answer is sent only after the commit
//! returns, so an acknowledged write is on disk. Jobs run one after another inside the
//! transaction, which makes conditional writes linearizable per key (and globally).
//!
//! If anything in a group fails, the transaction is aborted and every job of the group gets the
//! error: none of them was applied.

use std::sync::Arc;

use bytes::Bytes;
use redb::{ReadableTable, Table, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::engine_error;
use super::handle::Handle;
use super::layout::{COUNTERS, EXPIRY, ROWS, decode_expiry_key, decode_value, encode_value, expiry_key, is_expired};
use crate::{CasOutcome, Clock, StoreError, Ttl};

/// Jobs that can wait for the writer. Bounded so that a stalled disk pushes back on callers
/// (their `send` waits) instead of growing memory; 1024 is four full commit groups.
pub(super) const WRITE_QUEUE_DEPTH: usize = 1024;

/// Most jobs applied in one transaction. Large enough to amortise one fsync over a burst of
/// writes, small enough that the first job of a group is not held back behind a long
/// transaction.
pub(super) const MAX_JOBS_PER_COMMIT: usize = 256;

/// Most expired rows one purge job removes, so a large backlog is purged over several
/// transactions instead of one that holds back every other write.
pub(super) const PURGE_BATCH_ROWS: u64 = 1000;

/// An unconditional write.
#[derive(Debug)]
pub(super) enum Write {
    /// Put a row.
    Put {
        /// Row key.
        key: Vec<u8>,
        /// Module bytes.
        value: Bytes,
        /// Expiry.
        ttl: Option<Ttl>,
    },
    /// Delete a row.
    Delete {
        /// Row key.
        key: Vec<u8>,
    },
    /// Add to a counter.
    CounterAdd {
        /// Row key.
        key: Vec<u8>,
        /// Amount.
        delta: i64,
    },
    /// Several writes in the same transaction.
    Batch(Vec<Write>),
}

/// A conditional write.
#[derive(Debug)]
pub(super) enum Cas {
    /// Put if no live row.
    InsertIfAbsent {
        /// Row key.
        key: Vec<u8>,
        /// Module bytes.
        value: Bytes,
        /// Expiry.
        ttl: Option<Ttl>,
    },
    /// Put if the live row equals `expected`.
    UpdateIfEqual {
        /// Row key.
        key: Vec<u8>,
        /// Required current value.
        expected: Bytes,
        /// Value to write.
        new: Bytes,
        /// Expiry of the new value.
        ttl: Option<Ttl>,
    },
    /// Delete if the live row equals `expected`.
    DeleteIfEqual {
        /// Row key.
        key: Vec<u8>,
        /// Required current value.
        expected: Bytes,
    },
}

/// A request to the writer with the channel its answer goes back on.
#[derive(Debug)]
pub(super) enum Job {
    /// Unconditional write(s).
    Write {
        /// What to write.
        write: Write,
        /// Answer.
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Conditional write.
    Cas {
        /// What to check and write.
        cas: Cas,
        /// Answer.
        done: oneshot::Sender<Result<CasOutcome, StoreError>>,
    },
    /// Remove up to [`PURGE_BATCH_ROWS`] expired rows.
    Purge {
        /// Answer: rows removed.
        done: oneshot::Sender<Result<u64, StoreError>>,
    },
}

// Answers are sent with `let _ =`: a closed receiver means the caller stopped waiting (its
// future was dropped), and the write stands whether or not anyone reads the answer.
impl Job {
    fn fail(self, err: &StoreError) {
        match self {
            Job::Write { done, .. } => {
                let _ = done.send(Err(err.clone()));
            }
            Job::Cas { done, .. } => {
                let _ = done.send(Err(err.clone()));
            }
            Job::Purge { done } => {
                let _ = done.send(Err(err.clone()));
            }
        }
    }
}

/// A job applied inside the open transaction, waiting for the commit to answer.
enum Applied {
    Write(oneshot::Sender<Result<(), StoreError>>),
    Cas(oneshot::Sender<Result<CasOutcome, StoreError>>, CasOutcome),
    Purge(oneshot::Sender<Result<u64, StoreError>>, u64),
}

impl Applied {
    fn succeed(self) {
        match self {
            Applied::Write(done) => {
                let _ = done.send(Ok(()));
            }
            Applied::Cas(done, outcome) => {
                let _ = done.send(Ok(outcome));
            }
            Applied::Purge(done, purged) => {
                let _ = done.send(Ok(purged));
            }
        }
    }

    fn fail(self, err: &StoreError) {
        match self {
            Applied::Write(done) => {
                let _ = done.send(Err(err.clone()));
            }
            Applied::Cas(done, _) => {
                let _ = done.send(Err(err.clone()));
            }
            Applied::Purge(done, _) => {
                let _ = done.send(Err(err.clone()));
            }
        }
    }
}

/// Starts the writer thread. It commits what is queued and exits (releasing its handle on the
/// database) when every sender of the returned queue is dropped.
pub(super) fn spawn(
    db: Arc<Handle>,
    clock: Arc<dyn Clock>,
) -> Result<(mpsc::Sender<Job>, std::thread::JoinHandle<()>), StoreError> {
    let (jobs, queue) = mpsc::channel(WRITE_QUEUE_DEPTH);
    let thread = std::thread::Builder::new()
        .name("chorus-store-writer".into())
        .spawn(move || run(&db, clock.as_ref(), queue))
        .map_err(|e| StoreError::Unavailable(format!("cannot start the store writer thread: {e}")))?;
    Ok((jobs, thread))
}

fn run(db: &Handle, clock: &dyn Clock, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.blocking_recv() {
        let mut group = Vec::with_capacity(queue.len().min(MAX_JOBS_PER_COMMIT) + 1);
        group.push(first);
        while group.len() < MAX_JOBS_PER_COMMIT {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(db, clock, group);
    }
}

/// Applies and commits one group; after a failure, lets the handle reopen a database that redb
/// latched as failed (a full disk), so the next group can succeed.
fn commit_group(handle: &Handle, clock: &dyn Clock, group: Vec<Job>) {
    let db = match handle.for_writing() {
        Ok(db) => db,
        Err(err) => {
            group.into_iter().for_each(|job| job.fail(&err));
            return;
        }
    };
    let failed = match db.begin_write() {
        Ok(txn) => {
            let mut applied = Vec::with_capacity(group.len());
            let mut pending = group.into_iter();
            let result =
                apply_all(&txn, clock, &mut pending, &mut applied).and_then(|()| txn.commit().map_err(engine_error));
            match result {
                Ok(()) => {
                    applied.into_iter().for_each(Applied::succeed);
                    false
                }
                Err(err) => {
                    tracing::error!(error = %err, jobs = applied.len(), "embedded store commit failed");
                    applied.into_iter().for_each(|a| a.fail(&err));
                    pending.for_each(|job| job.fail(&err));
                    true
                }
            }
        }
        Err(e) => {
            let err = engine_error(e);
            group.into_iter().for_each(|job| job.fail(&err));
            true
        }
    };
    // The transaction is gone by now (committed, or dropped with its failure): `recover` may open
    // another one.
    if failed {
        handle.recover(db);
    }
}

/// Applies jobs until one fails (that one is answered here; the caller answers the rest).
fn apply_all(
    txn: &WriteTransaction,
    clock: &dyn Clock,
    pending: &mut impl Iterator<Item = Job>,
    applied: &mut Vec<Applied>,
) -> Result<(), StoreError> {
    let mut tables = Tables::open(txn)?;
    for job in pending {
        applied.push(tables.apply(job, clock.now_ms())?);
    }
    Ok(())
}

/// The tables of one write transaction.
struct Tables<'txn> {
    rows: Table<'txn, &'static [u8], &'static [u8]>,
    counters: Table<'txn, &'static [u8], i64>,
    expiry: Table<'txn, &'static [u8], ()>,
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            rows: txn.open_table(ROWS).map_err(engine_error)?,
            counters: txn.open_table(COUNTERS).map_err(engine_error)?,
            expiry: txn.open_table(EXPIRY).map_err(engine_error)?,
        })
    }

    fn apply(&mut self, job: Job, now_ms: u64) -> Result<Applied, StoreError> {
        match job {
            Job::Write { write, done } => match self.write(&write, now_ms) {
                Ok(()) => Ok(Applied::Write(done)),
                Err(err) => {
                    let _ = done.send(Err(err.clone()));
                    Err(err)
                }
            },
            Job::Cas { cas, done } => match self.cas(&cas, now_ms) {
                Ok(outcome) => Ok(Applied::Cas(done, outcome)),
                Err(err) => {
                    let _ = done.send(Err(err.clone()));
                    Err(err)
                }
            },
            Job::Purge { done } => match self.purge(now_ms) {
                Ok(purged) => Ok(Applied::Purge(done, purged)),
                Err(err) => {
                    let _ = done.send(Err(err.clone()));
                    Err(err)
                }
            },
        }
    }

    fn write(&mut self, write: &Write, now_ms: u64) -> Result<(), StoreError> {
        match write {
            Write::Put { key, value, ttl } => self.put(key, value, *ttl, now_ms),
            Write::Delete { key } => self.delete(key),
            Write::CounterAdd { key, delta } => {
                let current = self.counters.get(key.as_slice()).map_err(engine_error)?.map_or(0, |v| v.value());
                // Wrapping, like a CQL counter's 64-bit two's-complement arithmetic.
                self.counters.insert(key.as_slice(), current.wrapping_add(*delta)).map_err(engine_error)?;
                Ok(())
            }
            Write::Batch(writes) => writes.iter().try_for_each(|w| self.write(w, now_ms)),
        }
    }

    fn cas(&mut self, cas: &Cas, now_ms: u64) -> Result<CasOutcome, StoreError> {
        let (key, expected) = match cas {
            Cas::InsertIfAbsent { key, .. } => (key, None),
            Cas::UpdateIfEqual { key, expected, .. } | Cas::DeleteIfEqual { key, expected } => (key, Some(expected)),
        };
        let current = self.live(key, now_ms)?;
        if current.as_ref() != expected {
            return Ok(CasOutcome { applied: false, current });
        }
        let written = match cas {
            Cas::InsertIfAbsent { value, ttl, .. } => {
                self.put(key, value, *ttl, now_ms)?;
                Some(value.clone())
            }
            Cas::UpdateIfEqual { new, ttl, .. } => {
                self.put(key, new, *ttl, now_ms)?;
                Some(new.clone())
            }
            Cas::DeleteIfEqual { .. } => {
                self.delete(key)?;
                None
            }
        };
        Ok(CasOutcome { applied: true, current: written })
    }

    /// The live value of a row: `None` if missing or expired.
    fn live(&self, key: &[u8], now_ms: u64) -> Result<Option<Bytes>, StoreError> {
        let Some(stored) = self.rows.get(key).map_err(engine_error)? else {
            return Ok(None);
        };
        let (expires_at_ms, value) = decode_value(stored.value())?;
        Ok((!is_expired(expires_at_ms, now_ms)).then(|| Bytes::copy_from_slice(value)))
    }

    fn put(&mut self, key: &[u8], value: &[u8], ttl: Option<Ttl>, now_ms: u64) -> Result<(), StoreError> {
        let expires_at_ms = ttl.map_or(0, |t| now_ms.saturating_add(u64::from(t.as_secs()) * 1000));
        let old_expiry =
            match self.rows.insert(key, encode_value(expires_at_ms, value).as_slice()).map_err(engine_error)? {
                Some(old) => decode_value(old.value())?.0,
                None => 0,
            };
        if old_expiry != 0 {
            self.expiry.remove(expiry_key(old_expiry, key).as_slice()).map_err(engine_error)?;
        }
        if expires_at_ms != 0 {
            self.expiry.insert(expiry_key(expires_at_ms, key).as_slice(), ()).map_err(engine_error)?;
        }
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        let old_expiry = match self.rows.remove(key).map_err(engine_error)? {
            Some(old) => decode_value(old.value())?.0,
            None => 0,
        };
        if old_expiry != 0 {
            self.expiry.remove(expiry_key(old_expiry, key).as_slice()).map_err(engine_error)?;
        }
        Ok(())
    }

    /// Removes up to [`PURGE_BATCH_ROWS`] rows whose expiry is at or before `now_ms`.
    fn purge(&mut self, now_ms: u64) -> Result<u64, StoreError> {
        // Index keys start with the expiry, so every key below (now + 1) ‖ "" is due.
        let due_below = now_ms.saturating_add(1).to_be_bytes();
        let due = self
            .expiry
            .range::<&[u8]>(..due_below.as_slice())
            .map_err(engine_error)?
            .take(PURGE_BATCH_ROWS as usize)
            .map(|entry| entry.map(|(k, _)| k.value().to_vec()).map_err(engine_error))
            .collect::<Result<Vec<_>, _>>()?;
        let mut purged = 0;
        for index_key in due {
            let (expires_at_ms, row_key) = decode_expiry_key(&index_key)?;
            self.expiry.remove(index_key.as_slice()).map_err(engine_error)?;
            let stored_expiry = match self.rows.get(row_key).map_err(engine_error)? {
                Some(stored) => Some(decode_value(stored.value())?.0),
                None => None,
            };
            if stored_expiry == Some(expires_at_ms) {
                self.rows.remove(row_key).map_err(engine_error)?;
                purged += 1;
            }
        }
        Ok(purged)
    }
}
