//! The ScyllaDB backend. Every CQL string the store sends is in this file; the tables they use
//! are defined in `deploy/scylla/schema.cql`, which is compiled in and applied by
//! `--store-migrate`.
//!
//! # Mapping
//!
//! | Store operation      | CQL |
//! |----------------------|-----|
//! | `put`, batch `Put`   | `UPDATE store_rows USING TTL ? SET val = ? WHERE …` (TTL 0 = none) |
//! | `get`                | `SELECT val FROM store_rows WHERE …` |
//! | `delete`             | `DELETE FROM store_rows WHERE …` |
//! | `scan`               | `SELECT ck, val … [AND ck >=/> ?] [AND ck <=/< ?] ORDER BY ck ASC/DESC`, paged |
//! | `insert_if_absent`   | `UPDATE … USING TTL ? SET val = ? WHERE … IF val = null` (LWT) |
//! | `update_if_equal`    | `UPDATE … USING TTL ? SET val = ? WHERE … IF val = ?` (LWT) |
//! | `delete_if_equal`    | `DELETE … WHERE … IF val = ?` (LWT) |
//! | `counter_add`        | `UPDATE store_counters SET val = val + ? WHERE …` |
//! | `counter_get`        | `SELECT val FROM store_counters WHERE …` |
//! | `batch`              | a LOGGED batch of row statements, or a COUNTER batch |
//!
//! Rows are written with `UPDATE`, never `INSERT`, so no row marker outlives `val`: a row exists
//! exactly while `val` is non-null, its TTL is the TTL of `val`, and "absent" is `val = null` —
//! the same meaning as the embedded store's.
//!
//! # Consistency, routing, timeouts, retries
//!
//! - Every statement is prepared once at start; the partition key `(tbl, pk)` is always bound,
//!   so the driver's default policy routes each request to a replica (token-aware), restricted to
//!   `--scylla-local-dc` when set (no failover to other datacenters).
//! - Reads and writes use `--scylla-consistency` (default `LOCAL_QUORUM`); conditional writes run
//!   Paxos at `--scylla-serial-consistency` (default `LOCAL_SERIAL`) and commit at the former.
//! - One request, with all its retries, is bounded by `--store-timeout-ms` (default 2 s); past it
//!   the caller gets [`StoreError::Timeout`]. Connecting is bounded by [`CONNECT_BUDGET`] overall
//!   and `--store-timeout-ms` per node; preparing by `--store-timeout-ms` per statement.
//! - Retries follow the driver's `DefaultRetryPolicy`: at most one retry per kind of failure
//!   (unavailable → next node; read timeout with enough replicas → same node; batch-log write
//!   timeout of an idempotent batch → same node; broken connection or overloaded node → next node,
//!   idempotent statements only). Conditional writes and counter updates are marked
//!   non-idempotent, so they are never retried after they may have been applied, and serial
//!   requests are never retried at all: a failure surfaces as an error whose outcome may be
//!   unknown ([`StoreError::Timeout`]).
//! - At start there is no retry loop: an unreachable cluster fails [`crate::open`] with
//!   [`StoreError::Unavailable`] and the broker exits non-zero (its supervisor restarts it).

use std::ops::{Bound, ControlFlow};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{DbError, ExecutionError, NewSessionError, PrepareError, RequestAttemptError, SerializationError};
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::retry::DefaultRetryPolicy;
use scylla::response::PagingState;
use scylla::response::query_result::QueryResult;
use scylla::serialize::row::{RowSerializationContext, SerializeRow};
use scylla::serialize::writers::RowWriter;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::unprepared::Statement;
use scylla::value::{Counter, CqlValue};

use crate::config::{Consistency, SerialConsistency};
use crate::store::{BatchKind, check_batch, check_key, check_scan, check_value};
use crate::{CasOutcome, Page, PageToken, Row, Scan, Store, StoreConfig, StoreError, Ttl, WriteOp};

/// The schema applied by `--store-migrate`.
const SCHEMA_CQL: &str = include_str!("../../../deploy/scylla/schema.cql");

const CQL_PUT: &str = "UPDATE store_rows USING TTL ? SET val = ? WHERE tbl = ? AND pk = ? AND ck = ?";
const CQL_GET: &str = "SELECT val FROM store_rows WHERE tbl = ? AND pk = ? AND ck = ?";
const CQL_DELETE: &str = "DELETE FROM store_rows WHERE tbl = ? AND pk = ? AND ck = ?";
const CQL_INSERT_IF_ABSENT: &str =
    "UPDATE store_rows USING TTL ? SET val = ? WHERE tbl = ? AND pk = ? AND ck = ? IF val = null";
const CQL_UPDATE_IF_EQUAL: &str =
    "UPDATE store_rows USING TTL ? SET val = ? WHERE tbl = ? AND pk = ? AND ck = ? IF val = ?";
const CQL_DELETE_IF_EQUAL: &str = "DELETE FROM store_rows WHERE tbl = ? AND pk = ? AND ck = ? IF val = ?";
const CQL_COUNTER_ADD: &str = "UPDATE store_counters SET val = val + ? WHERE tbl = ? AND pk = ? AND ck = ?";
const CQL_COUNTER_GET: &str = "SELECT val FROM store_counters WHERE tbl = ? AND pk = ? AND ck = ?";

/// Lower-bound clauses of a scan, indexed by [`bound_index`].
const SCAN_LOWER: [&str; 3] = ["", " AND ck >= ?", " AND ck > ?"];
/// Upper-bound clauses of a scan, indexed by [`bound_index`].
const SCAN_UPPER: [&str; 3] = ["", " AND ck <= ?", " AND ck < ?"];

/// The text of the scan statement for one combination of bounds and direction.
fn scan_cql(lower: usize, upper: usize, reverse: bool) -> String {
    format!(
        "SELECT ck, val FROM store_rows WHERE tbl = ? AND pk = ?{}{} ORDER BY ck {}",
        SCAN_LOWER[lower],
        SCAN_UPPER[upper],
        if reverse { "DESC" } else { "ASC" }
    )
}

/// `CREATE KEYSPACE` with one replication entry per datacenter; `tablets` adds ScyllaDB's
/// tablets opt-out.
fn create_keyspace_cql(keyspace: &str, replicas_per_dc: &[(String, usize)], tablets: bool) -> String {
    let replication =
        replicas_per_dc.iter().map(|(dc, rf)| format!(", '{}': {rf}", dc.replace('\'', "''"))).collect::<String>();
    format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = \
         {{'class': 'NetworkTopologyStrategy'{replication}}}{}",
        if tablets { " AND tablets = {'enabled': false}" } else { "" }
    )
}

/// Upper bound on connecting at start (resolving names, handshakes, fetching cluster metadata)
/// across all contact points. Long enough for a cold cluster across a WAN; short enough that a
/// wrong node list fails a deploy quickly instead of hanging it.
pub(crate) const CONNECT_BUDGET: Duration = Duration::from_secs(10);

/// Upper bound on one schema statement during `--store-migrate`, including the driver's wait for
/// schema agreement. Schema changes are slower than data requests; a minute is ScyllaDB's own
/// default schema-agreement wait.
const SCHEMA_TIMEOUT: Duration = Duration::from_secs(60);

/// Replicas per datacenter of a keyspace created by `--store-migrate` (fewer if the datacenter
/// has fewer nodes): three is the smallest count where `LOCAL_QUORUM` survives one node down.
const MAX_REPLICATION_FACTOR: usize = 3;

/// Most pages one [`Store::scan`] call fetches while filling its limit. ScyllaDB may return
/// short pages (a 1 MiB page cap, tombstones); this bounds one call's round trips, after which it
/// returns a short page and a token.
const MAX_PAGES_PER_SCAN: usize = 8;

/// Longest keyspace name: ScyllaDB's and Cassandra's limit.
const MAX_KEYSPACE_NAME_LEN: usize = 48;

/// Tag of this backend's page tokens.
const PAGE_TOKEN_TAG: u8 = b's';

/// Index of a bound in [`SCAN_LOWER`] / [`SCAN_UPPER`].
fn bound_index(bound: &Bound<Bytes>) -> usize {
    match bound {
        Bound::Unbounded => 0,
        Bound::Included(_) => 1,
        Bound::Excluded(_) => 2,
    }
}

/// Every (lower, upper, reverse) combination of a scan, in the order of the prepared scans.
fn scan_shapes() -> impl Iterator<Item = (usize, usize, bool)> {
    (0..SCAN_LOWER.len())
        .flat_map(|lower| (0..SCAN_UPPER.len()).flat_map(move |upper| [(lower, upper, false), (lower, upper, true)]))
}

/// Position of a scan's shape in [`scan_shapes`].
fn scan_index(scan: &Scan) -> usize {
    (bound_index(&scan.start) * SCAN_UPPER.len() + bound_index(&scan.end)) * 2 + usize::from(scan.reverse)
}

/// The prepared statements.
struct Statements {
    put: PreparedStatement,
    get: PreparedStatement,
    delete: PreparedStatement,
    insert_if_absent: PreparedStatement,
    update_if_equal: PreparedStatement,
    delete_if_equal: PreparedStatement,
    counter_add: PreparedStatement,
    counter_get: PreparedStatement,
    /// One per shape, in [`scan_shapes`] order.
    scans: Vec<PreparedStatement>,
}

impl Statements {
    async fn prepare(session: &Session, timeout: Duration) -> Result<Self, StoreError> {
        // Idempotent: writing the same value again leaves the same state, so the driver may retry.
        let put = prepare(session, CQL_PUT, true, timeout).await?;
        let get = prepare(session, CQL_GET, true, timeout).await?;
        let delete = prepare(session, CQL_DELETE, true, timeout).await?;
        // Not idempotent: a retried LWT may report "not applied" for its own earlier success, and
        // a retried counter update adds twice.
        let insert_if_absent = prepare(session, CQL_INSERT_IF_ABSENT, false, timeout).await?;
        let update_if_equal = prepare(session, CQL_UPDATE_IF_EQUAL, false, timeout).await?;
        let delete_if_equal = prepare(session, CQL_DELETE_IF_EQUAL, false, timeout).await?;
        let counter_add = prepare(session, CQL_COUNTER_ADD, false, timeout).await?;
        let counter_get = prepare(session, CQL_COUNTER_GET, true, timeout).await?;
        let mut scans = Vec::with_capacity(SCAN_LOWER.len() * SCAN_UPPER.len() * 2);
        for (lower, upper, reverse) in scan_shapes() {
            let cql = scan_cql(lower, upper, reverse);
            scans.push(prepare(session, &cql, true, timeout).await?);
        }
        Ok(Self {
            put,
            get,
            delete,
            insert_if_absent,
            update_if_equal,
            delete_if_equal,
            counter_add,
            counter_get,
            scans,
        })
    }

    fn scan(&self, scan: &Scan) -> &PreparedStatement {
        &self.scans[scan_index(scan)]
    }
}

async fn prepare(
    session: &Session,
    cql: &str,
    idempotent: bool,
    timeout: Duration,
) -> Result<PreparedStatement, StoreError> {
    let mut statement = tokio::time::timeout(timeout, session.prepare(cql))
        .await
        .map_err(|_| StoreError::Timeout(format!("preparing `{cql}` took over {timeout:?}")))?
        .map_err(|e| prepare_error(cql, e))?;
    statement.set_is_idempotent(idempotent);
    Ok(statement)
}

/// Values bound to one statement, in the order of its bind markers.
enum Bind<'a> {
    /// `put`, `insert_if_absent`: ttl, val, tbl, pk, ck.
    Write(i32, &'a [u8], &'a str, &'a str, &'a [u8]),
    /// `update_if_equal`: ttl, val, tbl, pk, ck, expected.
    Swap(i32, &'a [u8], &'a str, &'a str, &'a [u8], &'a [u8]),
    /// `get`, `delete`, `counter_get`: tbl, pk, ck.
    Key(&'a str, &'a str, &'a [u8]),
    /// `delete_if_equal`: tbl, pk, ck, expected.
    KeyIf(&'a str, &'a str, &'a [u8], &'a [u8]),
    /// `counter_add`: delta, tbl, pk, ck.
    Count(Counter, &'a str, &'a str, &'a [u8]),
    /// scan with no bounds: tbl, pk.
    Partition(&'a str, &'a str),
    /// scan with one bound: tbl, pk, bound.
    OneBound(&'a str, &'a str, &'a [u8]),
    /// scan with both bounds: tbl, pk, lower, upper.
    TwoBounds(&'a str, &'a str, &'a [u8], &'a [u8]),
}

impl SerializeRow for Bind<'_> {
    fn serialize(&self, ctx: &RowSerializationContext<'_>, writer: &mut RowWriter) -> Result<(), SerializationError> {
        match *self {
            Bind::Write(ttl, val, tbl, pk, ck) => (ttl, val, tbl, pk, ck).serialize(ctx, writer),
            Bind::Swap(ttl, val, tbl, pk, ck, expected) => (ttl, val, tbl, pk, ck, expected).serialize(ctx, writer),
            Bind::Key(tbl, pk, ck) => (tbl, pk, ck).serialize(ctx, writer),
            Bind::KeyIf(tbl, pk, ck, expected) => (tbl, pk, ck, expected).serialize(ctx, writer),
            Bind::Count(delta, tbl, pk, ck) => (delta, tbl, pk, ck).serialize(ctx, writer),
            Bind::Partition(tbl, pk) => (tbl, pk).serialize(ctx, writer),
            Bind::OneBound(tbl, pk, b) => (tbl, pk, b).serialize(ctx, writer),
            Bind::TwoBounds(tbl, pk, lo, hi) => (tbl, pk, lo, hi).serialize(ctx, writer),
        }
    }

    fn is_empty(&self) -> bool {
        false
    }
}

/// The CQL TTL of a write: seconds, 0 for none. [`Ttl::MAX_SECS`] is below `i32::MAX`.
fn cql_ttl(ttl: Option<Ttl>) -> i32 {
    ttl.map_or(0, |t| t.as_secs() as i32)
}

/// The [`Store`] on a ScyllaDB or Cassandra cluster.
pub(crate) struct ScyllaStore {
    session: Session,
    statements: Statements,
}

impl ScyllaStore {
    /// Connects, applies the schema if `cfg.store_migrate`, and prepares every statement.
    pub(crate) async fn connect(cfg: &StoreConfig) -> Result<Self, StoreError> {
        if cfg.scylla_nodes.is_empty() {
            return Err(StoreError::Config("--store scylla needs --scylla-nodes (CHORUS_SCYLLA_NODES)".into()));
        }
        let keyspace = cfg.scylla_keyspace.as_str();
        check_keyspace(keyspace)?;
        let timeout = Duration::from_millis(cfg.store_timeout_ms);

        let mut policy = DefaultPolicy::builder().token_aware(true);
        if let Some(dc) = &cfg.scylla_local_dc {
            policy = policy.prefer_datacenter(dc.clone()).permit_dc_failover(false);
        }
        let profile = ExecutionProfile::builder()
            .consistency(consistency(cfg.scylla_consistency))
            .serial_consistency(Some(serial_consistency(cfg.scylla_serial_consistency)))
            .request_timeout(Some(timeout))
            .load_balancing_policy(policy.build())
            .retry_policy(Arc::new(DefaultRetryPolicy::new()))
            .build();
        let builder = SessionBuilder::new()
            .known_nodes(&cfg.scylla_nodes)
            .connection_timeout(timeout)
            .hostname_resolution_timeout(Some(timeout))
            .default_execution_profile_handle(profile.into_handle());
        let nodes = cfg.scylla_nodes.join(",");
        let session = tokio::time::timeout(CONNECT_BUDGET, builder.build())
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!("no ScyllaDB node of [{nodes}] answered within {CONNECT_BUDGET:?}"))
            })?
            .map_err(|e| session_error(&nodes, e))?;

        if cfg.store_migrate {
            migrate(&session, keyspace).await?;
        }
        if session.get_cluster_state().get_keyspace(keyspace).is_none() {
            return Err(StoreError::Config(format!(
                "ScyllaDB keyspace {keyspace} does not exist: start once with --store-migrate, \
                 or create it and apply deploy/scylla/schema.cql"
            )));
        }
        tokio::time::timeout(timeout, session.use_keyspace(keyspace, false))
            .await
            .map_err(|_| StoreError::Timeout(format!("USE {keyspace} took over {timeout:?}")))?
            .map_err(|e| StoreError::Backend(format!("USE {keyspace} failed: {e}")))?;
        let statements = Statements::prepare(&session, timeout).await?;
        Ok(Self { session, statements })
    }

    async fn execute(&self, statement: &PreparedStatement, values: Bind<'_>) -> Result<QueryResult, StoreError> {
        self.session.execute_unpaged(statement, values).await.map_err(execution_error)
    }

    async fn cas(
        &self,
        statement: &PreparedStatement,
        values: Bind<'_>,
        written: Option<Bytes>,
    ) -> Result<CasOutcome, StoreError> {
        let result = self.execute(statement, values).await?;
        cas_outcome(result, written)
    }
}

/// Creates the keyspace if missing, then applies every statement of [`SCHEMA_CQL`] in it.
async fn migrate(session: &Session, keyspace: &str) -> Result<(), StoreError> {
    let state = session.get_cluster_state();
    if state.get_keyspace(keyspace).is_none() {
        let mut per_dc: Vec<(String, usize)> = Vec::new();
        for node in state.get_nodes_info() {
            let dc = node.datacenter.clone().ok_or_else(|| {
                StoreError::Backend(format!(
                    "ScyllaDB node {} reports no datacenter; create keyspace {keyspace} by hand",
                    node.address
                ))
            })?;
            match per_dc.iter_mut().find(|(name, _)| *name == dc) {
                Some((_, count)) => *count += 1,
                None => per_dc.push((dc, 1)),
            }
        }
        for (_, count) in &mut per_dc {
            *count = (*count).min(MAX_REPLICATION_FACTOR);
        }
        // ScyllaDB with tablets needs them off for LWT and counters on older releases; servers
        // that do not know the option (Cassandra, old ScyllaDB) reject it, so retry without.
        // Only a refusal of the statement (a CQL error) means that; an outage is reported as is,
        // never answered by creating a tablets keyspace.
        match run_schema(session, &create_keyspace_cql(keyspace, &per_dc, true)).await {
            Ok(()) => {}
            Err(StoreError::Backend(refused)) => {
                tracing::info!(error = %refused, "CREATE KEYSPACE with tablets disabled was refused; retrying without");
                run_schema(session, &create_keyspace_cql(keyspace, &per_dc, false)).await?;
            }
            Err(other) => return Err(other),
        }
        tracing::info!(keyspace, replication = ?per_dc, "created ScyllaDB keyspace");
    }
    tokio::time::timeout(SCHEMA_TIMEOUT, session.use_keyspace(keyspace, false))
        .await
        .map_err(|_| StoreError::Timeout(format!("USE {keyspace} took over {SCHEMA_TIMEOUT:?}")))?
        .map_err(|e| StoreError::Backend(format!("USE {keyspace} failed: {e}")))?;
    for statement in schema_statements(SCHEMA_CQL) {
        run_schema(session, &statement).await?;
    }
    session
        .refresh_metadata()
        .await
        .map_err(|e| StoreError::Backend(format!("refreshing ScyllaDB metadata failed: {e}")))?;
    tracing::info!(keyspace, "applied deploy/scylla/schema.cql");
    Ok(())
}

/// Runs one schema statement. Schema statements are sent unprepared: they run once, at start.
async fn run_schema(session: &Session, cql: &str) -> Result<(), StoreError> {
    let mut statement = Statement::new(cql);
    statement.set_request_timeout(Some(SCHEMA_TIMEOUT));
    session.query_unpaged(statement, ()).await.map(drop).map_err(|e| match execution_error(e) {
        StoreError::Backend(msg) => StoreError::Backend(format!("`{cql}` failed: {msg}")),
        other => other,
    })
}

/// The statements of a schema file: whole-line `--` comments dropped, split on `;`.
fn schema_statements(schema: &str) -> Vec<String> {
    let code: String =
        schema.lines().filter(|line| !line.trim_start().starts_with("--")).map(|line| format!("{line}\n")).collect();
    code.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// A keyspace name must be a plain CQL identifier: it is spliced into `CREATE KEYSPACE`.
fn check_keyspace(keyspace: &str) -> Result<(), StoreError> {
    let mut bytes = keyspace.bytes();
    let ok = keyspace.len() <= MAX_KEYSPACE_NAME_LEN
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Config(format!("ScyllaDB keyspace {keyspace:?} must match [a-z][a-z0-9_]{{0,47}}")))
    }
}

fn consistency(level: Consistency) -> scylla::statement::Consistency {
    use scylla::statement::Consistency as C;
    match level {
        Consistency::Any => C::Any,
        Consistency::One => C::One,
        Consistency::Two => C::Two,
        Consistency::Three => C::Three,
        Consistency::Quorum => C::Quorum,
        Consistency::All => C::All,
        Consistency::LocalQuorum => C::LocalQuorum,
        Consistency::EachQuorum => C::EachQuorum,
        Consistency::LocalOne => C::LocalOne,
    }
}

fn serial_consistency(level: SerialConsistency) -> scylla::statement::SerialConsistency {
    use scylla::statement::SerialConsistency as S;
    match level {
        SerialConsistency::Serial => S::Serial,
        SerialConsistency::LocalSerial => S::LocalSerial,
    }
}

/// Reads an LWT result: the `[applied]` column and, when not applied, the current `val` (absent
/// on Cassandra when the row does not exist; ScyllaDB always returns it).
fn cas_outcome(result: QueryResult, written: Option<Bytes>) -> Result<CasOutcome, StoreError> {
    let rows = result.into_rows_result().map_err(result_error)?;
    let specs = rows.column_specs();
    let applied_at = specs
        .get_by_name("[applied]")
        .map(|(i, _)| i)
        .ok_or_else(|| StoreError::Backend("LWT result has no [applied] column".into()))?;
    let val_at = specs.get_by_name("val").map(|(i, _)| i);
    let row = rows.single_row::<scylla::value::Row>().map_err(result_error)?;
    let mut columns = row.columns;
    let applied = match columns.get(applied_at) {
        Some(Some(CqlValue::Boolean(applied))) => *applied,
        other => {
            return Err(StoreError::Corrupt(format!("LWT [applied] column holds {other:?}")));
        }
    };
    if applied {
        return Ok(CasOutcome { applied, current: written });
    }
    let current = match val_at.and_then(|i| columns.get_mut(i)).and_then(Option::take) {
        None => None,
        Some(CqlValue::Blob(bytes)) => Some(Bytes::from(bytes)),
        Some(other) => {
            return Err(StoreError::Corrupt(format!("store_rows.val holds a non-blob {other:?}")));
        }
    };
    Ok(CasOutcome { applied, current })
}

/// Maps a failed request: timeouts (client or server side) are `Timeout`, a node or replica set
/// that cannot serve is `Unavailable`, anything else (a CQL error, a driver bug) is `Backend`.
fn execution_error(err: ExecutionError) -> StoreError {
    match err {
        ExecutionError::RequestTimeout(after) => StoreError::Timeout(format!("no ScyllaDB answer within {after:?}")),
        ExecutionError::EmptyPlan | ExecutionError::ConnectionPoolError(_) => {
            StoreError::Unavailable(format!("ScyllaDB: {err}"))
        }
        ExecutionError::LastAttemptError(attempt) => attempt_error(attempt),
        other => StoreError::Backend(format!("ScyllaDB: {other}")),
    }
}

fn attempt_error(err: RequestAttemptError) -> StoreError {
    match &err {
        RequestAttemptError::DbError(DbError::ReadTimeout { .. } | DbError::WriteTimeout { .. }, _) => {
            StoreError::Timeout(format!("ScyllaDB: {err}"))
        }
        RequestAttemptError::DbError(
            DbError::Unavailable { .. }
            | DbError::Overloaded
            | DbError::IsBootstrapping
            | DbError::RateLimitReached { .. }
            | DbError::ReadFailure { .. }
            | DbError::WriteFailure { .. },
            _,
        )
        | RequestAttemptError::BrokenConnectionError(_)
        | RequestAttemptError::UnableToAllocStreamId => StoreError::Unavailable(format!("ScyllaDB: {err}")),
        _ => StoreError::Backend(format!("ScyllaDB: {err}")),
    }
}

fn prepare_error(cql: &str, err: PrepareError) -> StoreError {
    match err {
        PrepareError::ConnectionPoolError(e) => StoreError::Unavailable(format!("ScyllaDB: preparing `{cql}`: {e}")),
        PrepareError::AllAttemptsFailed { first_attempt } => match attempt_error(first_attempt) {
            StoreError::Backend(msg) => StoreError::Backend(format!(
                "preparing `{cql}` failed ({msg}); is deploy/scylla/schema.cql applied \
                 (start once with --store-migrate)?"
            )),
            other => other,
        },
        other => StoreError::Backend(format!("preparing `{cql}` failed: {other}")),
    }
}

fn session_error(nodes: &str, err: NewSessionError) -> StoreError {
    match err {
        NewSessionError::EmptyKnownNodesList | NewSessionError::IllegalConfig(_) => {
            StoreError::Config(format!("ScyllaDB nodes [{nodes}]: {err}"))
        }
        other => StoreError::Unavailable(format!("cannot connect to ScyllaDB [{nodes}]: {other}")),
    }
}

fn result_error(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("unexpected ScyllaDB result shape: {err}"))
}

#[async_trait]
impl Store for ScyllaStore {
    fn backend(&self) -> &'static str {
        "scylla"
    }

    async fn put(&self, table: &str, pk: &str, ck: &[u8], value: Bytes, ttl: Option<Ttl>) -> Result<(), StoreError> {
        check_key(table, pk, ck)?;
        check_value(&value)?;
        let values = Bind::Write(cql_ttl(ttl), &value, table, pk, ck);
        self.execute(&self.statements.put, values).await.map(drop)
    }

    async fn get(&self, table: &str, pk: &str, ck: &[u8]) -> Result<Option<Bytes>, StoreError> {
        check_key(table, pk, ck)?;
        let result = self.execute(&self.statements.get, Bind::Key(table, pk, ck)).await?;
        let row = result
            .into_rows_result()
            .map_err(result_error)?
            .maybe_first_row::<(Option<Vec<u8>>,)>()
            .map_err(result_error)?;
        Ok(row.and_then(|(val,)| val).map(Bytes::from))
    }

    async fn delete(&self, table: &str, pk: &str, ck: &[u8]) -> Result<(), StoreError> {
        check_key(table, pk, ck)?;
        self.execute(&self.statements.delete, Bind::Key(table, pk, ck)).await.map(drop)
    }

    async fn scan(&self, table: &str, pk: &str, scan: &Scan) -> Result<Page, StoreError> {
        check_scan(table, pk, scan)?;
        let mut paging = match &scan.after {
            Some(token) => PagingState::new_from_raw_bytes(token.position(PAGE_TOKEN_TAG)?),
            None => PagingState::start(),
        };
        if scan.is_empty_range() {
            return Ok(Page::default());
        }
        let values = match (&scan.start, &scan.end) {
            (Bound::Unbounded, Bound::Unbounded) => Bind::Partition(table, pk),
            (Bound::Included(b) | Bound::Excluded(b), Bound::Unbounded)
            | (Bound::Unbounded, Bound::Included(b) | Bound::Excluded(b)) => Bind::OneBound(table, pk, b),
            (Bound::Included(lo) | Bound::Excluded(lo), Bound::Included(hi) | Bound::Excluded(hi)) => {
                Bind::TwoBounds(table, pk, lo, hi)
            }
        };
        let mut statement = self.statements.scan(scan).clone();
        let mut rows = Vec::new();
        for _ in 0..MAX_PAGES_PER_SCAN {
            // limit ≤ MAX_SCAN_LIMIT, so the page size fits an i32.
            statement.set_page_size((scan.limit - rows.len()) as i32);
            let (result, next) =
                self.session.execute_single_page(&statement, &values, paging).await.map_err(execution_error)?;
            let page = result.into_rows_result().map_err(result_error)?;
            for row in page.rows::<(Vec<u8>, Option<Vec<u8>>)>().map_err(result_error)? {
                let (ck, val) = row.map_err(result_error)?;
                if let Some(val) = val {
                    rows.push(Row { ck: Bytes::from(ck), value: Bytes::from(val) });
                }
            }
            match next.into_paging_control_flow() {
                ControlFlow::Break(()) => return Ok(Page { rows, next: None }),
                ControlFlow::Continue(state) => paging = state,
            }
            if rows.len() >= scan.limit {
                break;
            }
        }
        let next = paging.as_bytes_slice().map(|state| PageToken::tagged(PAGE_TOKEN_TAG, state));
        Ok(Page { rows, next })
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
        let values = Bind::Write(cql_ttl(ttl), &value, table, pk, ck);
        self.cas(&self.statements.insert_if_absent, values, Some(value.clone())).await
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
        let values = Bind::Swap(cql_ttl(ttl), &new, table, pk, ck, expected);
        self.cas(&self.statements.update_if_equal, values, Some(new.clone())).await
    }

    async fn delete_if_equal(
        &self,
        table: &str,
        pk: &str,
        ck: &[u8],
        expected: &[u8],
    ) -> Result<CasOutcome, StoreError> {
        check_key(table, pk, ck)?;
        let values = Bind::KeyIf(table, pk, ck, expected);
        self.cas(&self.statements.delete_if_equal, values, None).await
    }

    async fn counter_add(&self, table: &str, pk: &str, ck: &[u8], delta: i64) -> Result<(), StoreError> {
        check_key(table, pk, ck)?;
        let values = Bind::Count(Counter(delta), table, pk, ck);
        self.execute(&self.statements.counter_add, values).await.map(drop)
    }

    async fn counter_get(&self, table: &str, pk: &str, ck: &[u8]) -> Result<i64, StoreError> {
        check_key(table, pk, ck)?;
        let result = self.execute(&self.statements.counter_get, Bind::Key(table, pk, ck)).await?;
        let row = result
            .into_rows_result()
            .map_err(result_error)?
            .maybe_first_row::<(Option<Counter>,)>()
            .map_err(result_error)?;
        Ok(row.and_then(|(val,)| val).map_or(0, |Counter(n)| n))
    }

    async fn batch(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        let kind = check_batch(&ops)?;
        let mut batch = match kind {
            BatchKind::Empty => return Ok(()),
            BatchKind::Rows => Batch::new(BatchType::Logged),
            BatchKind::Counters => Batch::new(BatchType::Counter),
        };
        // Same reasoning as for the single statements.
        batch.set_is_idempotent(kind == BatchKind::Rows);
        let mut values = Vec::with_capacity(ops.len());
        for op in &ops {
            match op {
                WriteOp::Put { table, pk, ck, value, ttl } => {
                    batch.append_statement(self.statements.put.clone());
                    values.push(Bind::Write(cql_ttl(*ttl), value, table, pk, ck));
                }
                WriteOp::Delete { table, pk, ck } => {
                    batch.append_statement(self.statements.delete.clone());
                    values.push(Bind::Key(table, pk, ck));
                }
                WriteOp::CounterAdd { table, pk, ck, delta } => {
                    batch.append_statement(self.statements.counter_add.clone());
                    values.push(Bind::Count(Counter(*delta), table, pk, ck));
                }
            }
        }
        self.session.batch(&batch, values).await.map(drop).map_err(execution_error)
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        // ScyllaDB drops expired cells itself, during compaction after gc_grace_seconds.
        Ok(0)
    }

    async fn close(&self) -> Result<(), StoreError> {
        // Every write is acknowledged by the cluster before it returns; the session's connections
        // close when the store is dropped, and nothing on this side holds data that a reopen needs.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_file_splits_into_two_tables() {
        let statements = schema_statements(SCHEMA_CQL);
        assert_eq!(statements.len(), 2, "{statements:?}");
        assert!(statements[0].starts_with("CREATE TABLE IF NOT EXISTS store_rows"));
        assert!(statements[1].starts_with("CREATE TABLE IF NOT EXISTS store_counters"));
        assert!(statements.iter().all(|s| !s.contains("--")));
    }

    #[test]
    fn statements_use_only_schema_tables_and_columns() {
        let statements = schema_statements(SCHEMA_CQL).join("\n");
        for column in ["tbl text", "pk text", "ck blob", "val blob", "val counter"] {
            assert!(statements.contains(column), "{column}");
        }
        let mut all = vec![
            CQL_PUT,
            CQL_GET,
            CQL_DELETE,
            CQL_INSERT_IF_ABSENT,
            CQL_UPDATE_IF_EQUAL,
            CQL_DELETE_IF_EQUAL,
            CQL_COUNTER_ADD,
            CQL_COUNTER_GET,
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        all.extend(scan_shapes().map(|(l, u, r)| scan_cql(l, u, r)));
        for cql in &all {
            assert!(cql.contains("store_rows") ^ cql.contains("store_counters"), "{cql}");
            assert!(cql.contains("tbl = ? AND pk = ?"), "partition key unbound: {cql}");
        }
    }

    #[test]
    fn scan_statement_index_matches_its_text() {
        use Bound::*;
        let b = || Bytes::from_static(b"k");
        assert_eq!(scan_shapes().count(), 18);
        for (start, end, reverse, want) in [
            (Unbounded, Unbounded, false, "pk = ? ORDER BY ck ASC"),
            (Included(b()), Excluded(b()), true, "ck >= ? AND ck < ? ORDER BY ck DESC"),
            (Excluded(b()), Included(b()), false, "ck > ? AND ck <= ? ORDER BY ck ASC"),
            (Unbounded, Excluded(b()), true, "pk = ? AND ck < ? ORDER BY ck DESC"),
        ] {
            let scan = Scan { start, end, limit: 1, reverse, after: None };
            let shape = scan_shapes().nth(scan_index(&scan));
            let cql = shape.map(|(l, u, r)| scan_cql(l, u, r)).unwrap_or_default();
            assert!(cql.ends_with(want), "{cql}");
        }
    }

    #[test]
    fn keyspace_cql() {
        let cql = create_keyspace_cql("chorus", &[("dc1".into(), 3), ("o'dc".into(), 1)], true);
        assert_eq!(
            cql,
            "CREATE KEYSPACE IF NOT EXISTS chorus WITH replication = {'class': \
             'NetworkTopologyStrategy', 'dc1': 3, 'o''dc': 1} AND tablets = {'enabled': false}"
        );
        assert!(check_keyspace("chorus_1").is_ok());
        for bad in ["", "1abc", "Chorus", "a-b", "a;DROP"] {
            assert!(check_keyspace(bad).is_err(), "{bad}");
        }
    }
}
