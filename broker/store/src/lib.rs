//! chorus store: the persistence API of the broker and its modules.
//!
//! One [`Store`] trait, shaped like ScyllaDB's data model so that every backend means the same
//! thing: named tables; rows addressed by a partition key and an ordered clustering key; put,
//! get, delete; range scans within a partition (bounds, limit, reverse, resumable paging);
//! conditional writes linearizable per row (insert-if-absent, update-if-equal,
//! delete-if-equal — what ScyllaDB's lightweight transactions give); counters; a TTL per row;
//! batched writes for flushes.
//!
//! Three backends, chosen by [`StoreConfig::store`] and built by [`open`]:
//! - **embedded** (default): a redb database file under the data directory — see
//!   `src/embedded/mod.rs` for why redb. Durable on acknowledgement (fsynced group commits).
//! - **scylla**: a ScyllaDB or Cassandra ≥ 4.0 cluster through the `scylla` driver; schema in
//!   `deploy/scylla/schema.cql`, every CQL statement in `src/scylla.rs`.
//! - **redis**: the Redis server of the broker's `--redis-url` through `fred`; conditional writes
//!   as Lua scripts, clustering keys as sorted sets, every command and script in `src/redis.rs`.
//!   As durable as the server's AOF settings make it (see the crate README).
//!
//! All three pass the same conformance suite (`tests/conformance/`).
//!
//! # Why values are bytes
//!
//! Values are opaque [`bytes::Bytes`] (MessagePack written by the modules), not typed columns.
//! Modules choose their tables at run time, so one generic schema must serve all of them — CQL
//! columns cannot be added per module without schema migrations on a live cluster. Bytes also keep
//! the embedded backend a plain key-value mapping, let a module evolve its own record format with
//! serde defaults, and avoid a second serialization step: a value read from the store can often be
//! forwarded to clients as is. What the store itself must compare — conditions of conditional
//! writes — is byte equality, which every backend implements identically. Counters are the one
//! typed value, because CQL counters are their own column type.
//!
//! # Layout
//!
//! - `store.rs` — the [`Store`] trait, its request/answer types and the shared limits.
//! - `clustering.rs` — [`ClusteringKey`]: order-preserving clustering keys from typed parts.
//! - `clock.rs` — [`Clock`], [`SystemClock`], [`ManualClock`] (TTL time source).
//! - `config.rs` — [`StoreConfig`], the `--store*` / `--scylla-*` flags.
//! - `error.rs` — [`StoreError`].
//! - `instrument.rs` — the metrics layer every backend is wrapped in.
//! - `embedded/` — the redb backend: layout, reads, and the group-committing writer thread.
//! - `scylla.rs` — the ScyllaDB backend and all of its CQL.
//! - `redis.rs` — the Redis backend, all of its commands and Lua scripts.

#![warn(missing_docs)]

mod clock;
mod clustering;
mod config;
mod embedded;
mod error;
mod instrument;
mod redis;
mod scylla;
mod store;

use std::path::Path;
use std::sync::Arc;

pub use clock::{Clock, ManualClock, SystemClock};
pub use clustering::{ClusteringKey, ClusteringKeyReader};
pub use config::{Backend, Consistency, SerialConsistency, StoreConfig};
pub use error::StoreError;
pub use instrument::{ERRORS_TOTAL, OP_SECONDS, describe_metrics};
pub use store::{
    CasOutcome, MAX_BATCH_OPS, MAX_CLUSTERING_KEY_LEN, MAX_PARTITION_KEY_LEN, MAX_SCAN_LIMIT, MAX_TABLE_NAME_LEN,
    MAX_VALUE_LEN, Page, PageToken, Row, Scan, Store, Ttl, WriteOp,
};

use instrument::Instrumented;

/// Opens the configured backend, wrapped in the metrics layer.
///
/// - embedded: creates `data_dir` if needed and opens `<data_dir>/store.redb`; TTLs are judged
///   by `clock`. Must run inside a tokio runtime (it starts the purge sweep task).
/// - scylla: connects to `--scylla-nodes`, applies the schema when `--store-migrate` is set, and
///   prepares every statement; `data_dir`, `clock` and `redis_url` are unused (TTLs are server
///   time).
/// - redis: connects to `redis_url` (the broker's `--redis-url`) and loads every script;
///   `data_dir` and `clock` are unused (TTLs are server time).
///
/// Fails fast, without retrying, with a message naming what could not be reached: the data
/// directory cannot be created or the database is locked ([`StoreError::Unavailable`]), no
/// ScyllaDB node or Redis server answers within a bounded time ([`StoreError::Unavailable`]), or
/// the settings are unusable, e.g. `--store redis` without a Redis URL ([`StoreError::Config`]).
/// The broker should exit non-zero on any of them.
pub async fn open(
    cfg: &StoreConfig,
    data_dir: &Path,
    clock: Arc<dyn Clock>,
    redis_url: Option<&str>,
) -> Result<Arc<dyn Store>, StoreError> {
    describe_metrics();
    let store: Arc<dyn Store> = match cfg.store {
        Backend::Embedded => Arc::new(Instrumented::new(embedded::EmbeddedStore::open(data_dir, clock).await?)),
        Backend::Scylla => Arc::new(Instrumented::new(scylla::ScyllaStore::connect(cfg).await?)),
        Backend::Redis => {
            let url = redis_url
                .filter(|url| !url.trim().is_empty())
                .ok_or_else(|| StoreError::Config("--store redis needs --redis-url (CHORUS_REDIS_URL)".into()))?;
            Arc::new(Instrumented::new(redis::RedisStore::connect(url, cfg).await?))
        }
    };
    tracing::info!(backend = store.backend(), "store opened");
    Ok(store)
}
