//! The open database, shared by the readers and the writer thread, and reopened after an I/O error.
//!
//! redb latches a failed write (a full disk, an I/O error): from then on every operation of that
//! `Database` answers "previous I/O error, close and re-open the database", even once the disk has
//! room again. So when a commit fails and the database reports that state, the writer takes it out
//! of the [`Handle`] (new reads are told the store is unavailable), waits for the reads still
//! using it, closes it, and opens the file again — redb repairs it on open, back to the last
//! commit. If that fails too (the disk is still full), each later write tries again, so the store
//! serves again as soon as the cause is gone, without a broker restart.

use parking_lot::RwLock;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::Database;

use super::open_db;
use crate::StoreError;

/// Longest wait for the reads still using a failed database before it is closed. A read is one
/// short B-tree walk; after this, the reopen is left to the next write.
const READS_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What readers and the writer find.
enum State {
    Open(Arc<Database>),
    /// The database failed and is closed; the message says why it has not been reopened yet.
    Failed(String),
    Closed,
}

/// The database file of one store.
pub(super) struct Handle {
    dir: PathBuf,
    state: RwLock<State>,
}

impl Handle {
    pub(super) fn new(dir: PathBuf, db: Database) -> Self {
        Self { dir, state: RwLock::new(State::Open(Arc::new(db))) }
    }

    /// The open database, or why there is none.
    pub(super) fn get(&self) -> Result<Arc<Database>, StoreError> {
        match &*self.state.read() {
            State::Open(db) => Ok(db.clone()),
            State::Failed(why) => Err(StoreError::Unavailable(format!("embedded store: {why}"))),
            State::Closed => Err(StoreError::Unavailable("embedded store is closed".into())),
        }
    }

    /// For the writer: the open database, reopening it first if it failed.
    pub(super) fn for_writing(&self) -> Result<Arc<Database>, StoreError> {
        if matches!(&*self.state.read(), State::Failed(_)) {
            self.reopen();
        }
        self.get()
    }

    /// For the writer, after a failed commit on `db`: if redb latched the failure, closes `db` and
    /// opens the file again (blocking: runs on the writer thread).
    pub(super) fn recover(&self, db: Arc<Database>) {
        let latched = matches!(db.begin_write(), Err(redb::TransactionError::Storage(redb::StorageError::PreviousIo)));
        if !latched {
            return;
        }
        {
            let mut state = self.state.write();
            if !matches!(&*state, State::Open(current) if Arc::ptr_eq(current, &db)) {
                return;
            }
            *state = State::Failed("reopening the database after an I/O error".into());
        }
        let deadline = Instant::now() + READS_DRAIN_TIMEOUT;
        while Arc::strong_count(&db) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(db);
        self.reopen();
    }

    /// Opens the file again (after a failure); on error, keeps the state failed with the reason.
    fn reopen(&self) {
        let reopened = open_db(&self.dir);
        let mut state = self.state.write();
        if matches!(&*state, State::Closed) {
            return;
        }
        *state = match reopened {
            Ok(db) => {
                tracing::info!(dir = %self.dir.display(), "embedded store reopened after an I/O error");
                State::Open(Arc::new(db))
            }
            Err(e) => {
                tracing::warn!(error = %e, "embedded store cannot reopen yet; the next write tries again");
                State::Failed(format!("not reopened after an I/O error ({e})"))
            }
        };
    }

    /// Marks the store closed; returns the database to drop (the last handle, once reads are done).
    pub(super) fn close(&self) -> Option<Arc<Database>> {
        match std::mem::replace(&mut *self.state.write(), State::Closed) {
            State::Open(db) => Some(db),
            State::Failed(_) | State::Closed => None,
        }
    }
}
