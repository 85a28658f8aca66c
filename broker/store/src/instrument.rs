//! The metrics layer every backend is wrapped in by [`crate::open`], so latency and errors are
//! measured in one place, the same way for every backend.
//!
//! - histogram `chorus_store_op_seconds{backend, op}`: latency of every operation, failed or not.
//! - counter `chorus_store_errors_total{backend, op}`: operations that returned an error.

use std::future::Future;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{CasOutcome, Page, Scan, Store, StoreError, Ttl, WriteOp};

/// Name of the latency histogram.
pub const OP_SECONDS: &str = "chorus_store_op_seconds";
/// Name of the error counter.
pub const ERRORS_TOTAL: &str = "chorus_store_errors_total";

/// Registers the help text of the store metrics with the installed recorder.
pub fn describe_metrics() {
    metrics::describe_histogram!(
        OP_SECONDS,
        metrics::Unit::Seconds,
        "Latency of store operations, by backend and operation."
    );
    metrics::describe_counter!(ERRORS_TOTAL, "Store operations that returned an error, by backend and operation.");
}

/// A [`Store`] that records metrics around another.
pub(crate) struct Instrumented<S> {
    inner: S,
}

impl<S: Store> Instrumented<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self { inner }
    }

    async fn observe<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let backend = self.inner.backend();
        let started = Instant::now();
        let result = fut.await;
        metrics::histogram!(OP_SECONDS, "backend" => backend, "op" => op).record(started.elapsed().as_secs_f64());
        if let Err(err) = &result {
            metrics::counter!(ERRORS_TOTAL, "backend" => backend, "op" => op).increment(1);
            tracing::warn!(backend, op, error = %err, "store operation failed");
        }
        result
    }
}

#[async_trait]
impl<S: Store> Store for Instrumented<S> {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn put(&self, table: &str, pk: &str, ck: &[u8], value: Bytes, ttl: Option<Ttl>) -> Result<(), StoreError> {
        self.observe("put", self.inner.put(table, pk, ck, value, ttl)).await
    }

    async fn get(&self, table: &str, pk: &str, ck: &[u8]) -> Result<Option<Bytes>, StoreError> {
        self.observe("get", self.inner.get(table, pk, ck)).await
    }

    async fn delete(&self, table: &str, pk: &str, ck: &[u8]) -> Result<(), StoreError> {
        self.observe("delete", self.inner.delete(table, pk, ck)).await
    }

    async fn scan(&self, table: &str, pk: &str, scan: &Scan) -> Result<Page, StoreError> {
        self.observe("scan", self.inner.scan(table, pk, scan)).await
    }

    async fn insert_if_absent(
        &self,
        table: &str,
        pk: &str,
        ck: &[u8],
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<CasOutcome, StoreError> {
        self.observe("insert_if_absent", self.inner.insert_if_absent(table, pk, ck, value, ttl)).await
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
        self.observe("update_if_equal", self.inner.update_if_equal(table, pk, ck, expected, new, ttl)).await
    }

    async fn delete_if_equal(
        &self,
        table: &str,
        pk: &str,
        ck: &[u8],
        expected: &[u8],
    ) -> Result<CasOutcome, StoreError> {
        self.observe("delete_if_equal", self.inner.delete_if_equal(table, pk, ck, expected)).await
    }

    async fn counter_add(&self, table: &str, pk: &str, ck: &[u8], delta: i64) -> Result<(), StoreError> {
        self.observe("counter_add", self.inner.counter_add(table, pk, ck, delta)).await
    }

    async fn counter_get(&self, table: &str, pk: &str, ck: &[u8]) -> Result<i64, StoreError> {
        self.observe("counter_get", self.inner.counter_get(table, pk, ck)).await
    }

    async fn batch(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.observe("batch", self.inner.batch(ops)).await
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.observe("purge_expired", self.inner.purge_expired()).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.observe("close", self.inner.close()).await
    }
}
