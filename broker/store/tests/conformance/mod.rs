//! The store conformance suite: one set of checks every backend must pass.
//!
//! A test binary includes this module, provides an async `setup` returning
//! `anyhow::Result<Option<Suite>>` (`None` = backend not available, skip) and expands
//! `conformance_tests!(setup)`, which generates one `#[tokio::test]` per check.
//!
//! The suite only uses the public [`Store`] API. Tables are prefixed with a per-run id so runs
//! against a shared ScyllaDB keyspace never see each other's rows.

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, ensure};
use bytes::Bytes;
use chorus_store::{
    CasOutcome, ClusteringKey, ClusteringKeyReader, MAX_BATCH_OPS, MAX_CLUSTERING_KEY_LEN, MAX_SCAN_LIMIT,
    MAX_VALUE_LEN, ManualClock, Page, PageToken, Scan, Store, StoreError, Ttl, WriteOp,
};
use tokio::task::JoinSet;

/// Concurrent tasks in the race checks.
const RACERS: usize = 1000;
/// Starting value of the decrement race: exactly this many decrements may succeed.
const DECREMENT_FROM: i64 = 100;
/// Rows in the paging check.
const PAGING_ROWS: u64 = 10_000;

/// Generates one `#[tokio::test]` per conformance check, each on a fresh `$setup().await`.
macro_rules! conformance_tests {
    ($setup:path) => {
        conformance_tests!(@cases $setup;
            put_get_delete,
            scan_bounds_limit_reverse,
            paging_10k_rows_each_once_in_order,
            conditional_write_semantics,
            insert_if_absent_race_has_one_winner,
            update_if_equal_race_never_goes_below_zero,
            counters,
            batches,
            ttl_expiry,
            invalid_arguments,
        );
    };
    (@cases $setup:path; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() -> anyhow::Result<()> {
                match $setup().await? {
                    Some(suite) => suite.$case().await,
                    None => Ok(()),
                }
            }
        )*
    };
}

/// A backend under test.
pub struct Suite {
    store: Arc<dyn Store>,
    /// Moves time for TTL checks; `None` means the backend uses server time and the suite waits.
    clock: Option<Arc<ManualClock>>,
    prefix: String,
    /// Kept alive for the store's lifetime (e.g. a temporary data directory).
    _resources: Box<dyn Send + Sync>,
}

fn ck(n: u64) -> Bytes {
    ClusteringKey::new().u64(n).build()
}

fn ck_num(ck: &[u8]) -> Result<u64> {
    ClusteringKeyReader::new(ck).u64().ok_or_else(|| anyhow!("clustering key {ck:?} is not a u64"))
}

fn num(n: i64) -> Bytes {
    Bytes::copy_from_slice(&n.to_be_bytes())
}

fn num_of(value: &[u8]) -> Result<i64> {
    let bytes: [u8; 8] = value.try_into().map_err(|_| anyhow!("value {value:?} is not an i64"))?;
    Ok(i64::from_be_bytes(bytes))
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn applied(value: &Bytes) -> CasOutcome {
    CasOutcome { applied: true, current: Some(value.clone()) }
}

fn rejected(current: Option<&Bytes>) -> CasOutcome {
    CasOutcome { applied: false, current: current.cloned() }
}

fn ensure_invalid<T: std::fmt::Debug>(what: &str, result: Result<T, StoreError>) -> Result<()> {
    match result {
        Err(StoreError::InvalidArgument(_)) => Ok(()),
        other => Err(anyhow!("{what}: expected InvalidArgument, got {other:?}")),
    }
}

impl Suite {
    /// A suite over `store`. `clock` is the store's clock when the test controls it.
    pub fn new(store: Arc<dyn Store>, clock: Option<Arc<ManualClock>>, resources: Box<dyn Send + Sync>) -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Self {
            store,
            clock,
            prefix: format!("t{:x}{:x}", std::process::id(), nanos % (1 << 40)),
            _resources: resources,
        }
    }

    /// A table name unique to this run.
    fn table(&self, name: &str) -> String {
        format!("{}_{name}", self.prefix)
    }

    /// Lets `by` pass on the store's clock.
    async fn pass(&self, by: Duration) {
        match &self.clock {
            Some(clock) => clock.advance(by),
            // Server-side TTLs follow the servers' wall clock: waiting is the only way.
            None => tokio::time::sleep(by).await,
        }
    }

    /// Every row of a partition, following page tokens.
    async fn scan_all(&self, table: &str, pk: &str, scan: Scan) -> Result<(Vec<u64>, usize)> {
        let mut seen = Vec::new();
        let mut pages = 0;
        let mut next = None;
        loop {
            let Page { rows, next: token } = self.store.scan(table, pk, &scan.clone().after(next)).await?;
            pages += 1;
            ensure!(rows.len() <= scan.limit, "page over limit: {}", rows.len());
            for row in rows {
                let n = ck_num(&row.ck)?;
                ensure!(row.value == num(n as i64), "row {n} has value {:?}", row.value);
                seen.push(n);
            }
            match token {
                Some(token) => next = Some(token),
                None => return Ok((seen, pages)),
            }
            ensure!(pages <= 100_000, "scan does not end");
        }
    }

    /// Writes rows `range` into a partition, value = the number, in batches.
    async fn fill(&self, table: &str, pk: &str, range: std::ops::Range<u64>) -> Result<()> {
        let all: Vec<u64> = range.collect();
        for chunk in all.chunks(MAX_BATCH_OPS) {
            let ops = chunk
                .iter()
                .map(|&n| WriteOp::Put {
                    table: table.to_owned(),
                    pk: pk.to_owned(),
                    ck: ck(n),
                    value: num(n as i64),
                    ttl: None,
                })
                .collect();
            self.store.batch(ops).await?;
        }
        Ok(())
    }

    /// put, get, delete; tables and partitions are separate; empty and maximal values.
    pub async fn put_get_delete(&self) -> Result<()> {
        let s = &self.store;
        let (t, other) = (self.table("kv"), self.table("kv2"));
        ensure!(s.get(&t, "p", b"k").await?.is_none());
        s.put(&t, "p", b"k", b("v1"), None).await?;
        ensure!(s.get(&t, "p", b"k").await? == Some(b("v1")));
        s.put(&t, "p", b"k", b("v2"), None).await?;
        ensure!(s.get(&t, "p", b"k").await? == Some(b("v2")), "overwrite");
        ensure!(s.get(&other, "p", b"k").await?.is_none(), "tables leak");
        ensure!(s.get(&t, "q", b"k").await?.is_none(), "partitions leak");
        ensure!(s.get(&t, "p", b"k2").await?.is_none(), "rows leak");

        s.put(&t, "p", b"empty", Bytes::new(), None).await?;
        ensure!(s.get(&t, "p", b"empty").await? == Some(Bytes::new()), "empty value");

        let binary_ck = [0u8, 0xFF, 0, 1];
        s.put(&t, "p", &binary_ck, b("bin"), None).await?;
        ensure!(s.get(&t, "p", &binary_ck).await? == Some(b("bin")));

        let big = Bytes::from(vec![7u8; MAX_VALUE_LEN]);
        s.put(&t, "big", b"k", big.clone(), None).await?;
        ensure!(s.get(&t, "big", b"k").await? == Some(big), "largest value");

        s.delete(&t, "p", b"k").await?;
        ensure!(s.get(&t, "p", b"k").await?.is_none(), "delete");
        s.delete(&t, "p", b"never-written").await?;
        ensure!(s.get(&t, "p", b"empty").await?.is_some(), "delete hit a neighbour");
        Ok(())
    }

    /// Range bounds, limits, direction and resumption on a 20-row partition.
    pub async fn scan_bounds_limit_reverse(&self) -> Result<()> {
        let t = self.table("scan");
        self.fill(&t, "p", 0..20).await?;
        self.fill(&t, "p_other", 100..105).await?;
        self.fill(&self.table("scan2"), "p", 200..205).await?;

        let all = |limit| Scan::all(limit);
        let range = |limit, lo, hi| Scan::all(limit).range(lo, hi);
        let inc = |n| Bound::Included(ck(n));
        let exc = |n| Bound::Excluded(ck(n));
        let cases: Vec<(&str, Scan, Vec<u64>)> = vec![
            ("whole partition", all(100), (0..20).collect()),
            ("[5, 10)", range(100, inc(5), exc(10)), (5..10).collect()),
            ("(5, 10]", range(100, exc(5), inc(10)), (6..=10).collect()),
            ("[5, 5]", range(100, inc(5), inc(5)), vec![5]),
            ("(-, 3]", range(100, Bound::Unbounded, inc(3)), (0..=3).collect()),
            ("[17, -)", range(100, inc(17), Bound::Unbounded), (17..20).collect()),
            ("reverse", all(100).reversed(), (0..20).rev().collect()),
            ("reverse [5, 10)", range(100, inc(5), exc(10)).reversed(), (5..10).rev().collect()),
            ("[10, 10)", range(100, inc(10), exc(10)), vec![]),
            ("[12, 3]", range(100, inc(12), inc(3)), vec![]),
            ("past the end", range(100, exc(19), Bound::Unbounded), vec![]),
        ];
        for (name, scan, want) in cases {
            let page = self.store.scan(&t, "p", &scan).await?;
            let got = page.rows.iter().map(|r| ck_num(&r.ck)).collect::<Result<Vec<_>>>()?;
            ensure!(got == want, "{name}: got {got:?}, want {want:?}");
        }

        let first = self.store.scan(&t, "p", &all(5)).await?;
        let got: Vec<u64> = first.rows.iter().map(|r| ck_num(&r.ck)).collect::<Result<_>>()?;
        ensure!(got == [0, 1, 2, 3, 4], "limit 5: {got:?}");
        let second = self.store.scan(&t, "p", &all(5).after(first.next.clone())).await?;
        let got: Vec<u64> = second.rows.iter().map(|r| ck_num(&r.ck)).collect::<Result<_>>()?;
        ensure!(got == [5, 6, 7, 8, 9], "resumed: {got:?}");

        let first = self.store.scan(&t, "p", &all(3).reversed()).await?;
        let second = self.store.scan(&t, "p", &all(3).reversed().after(first.next.clone())).await?;
        let got: Vec<u64> = first.rows.iter().chain(&second.rows).map(|r| ck_num(&r.ck)).collect::<Result<_>>()?;
        ensure!(got == [19, 18, 17, 16, 15, 14], "reverse resumed: {got:?}");

        let (rest, _) = self.scan_all(&t, "p", range(7, exc(2), inc(15)).reversed()).await?;
        ensure!(rest == (3..=15).rev().collect::<Vec<_>>(), "{rest:?}");

        let empty = self.store.scan(&t, "nobody", &all(10)).await?;
        ensure!(empty.rows.is_empty() && empty.next.is_none(), "missing partition");
        Ok(())
    }

    /// 10,000 rows paged through, forwards and backwards: each row once, in order.
    pub async fn paging_10k_rows_each_once_in_order(&self) -> Result<()> {
        let t = self.table("paging");
        self.fill(&t, "p", 0..PAGING_ROWS).await?;

        let (forward, pages) = self.scan_all(&t, "p", Scan::all(333)).await?;
        ensure!(
            forward == (0..PAGING_ROWS).collect::<Vec<_>>(),
            "forward: {} rows, first out of place at {:?}",
            forward.len(),
            forward.iter().enumerate().find(|&(i, &n)| i as u64 != n)
        );
        ensure!(pages >= 31, "only {pages} pages of at most 333 rows");

        let (backward, _) = self.scan_all(&t, "p", Scan::all(MAX_SCAN_LIMIT).reversed()).await?;
        ensure!(backward == (0..PAGING_ROWS).rev().collect::<Vec<_>>(), "backward: {} rows", backward.len());

        let window = Scan::all(97).range(Bound::Included(ck(1000)), Bound::Excluded(ck(2000)));
        let (middle, _) = self.scan_all(&t, "p", window).await?;
        ensure!(middle == (1000..2000).collect::<Vec<_>>(), "window");
        let unique: HashSet<u64> = forward.into_iter().collect();
        ensure!(unique.len() as u64 == PAGING_ROWS);
        Ok(())
    }

    /// The answers of insert_if_absent, update_if_equal and delete_if_equal.
    pub async fn conditional_write_semantics(&self) -> Result<()> {
        let s = &self.store;
        let t = self.table("cas");
        let (v1, v2) = (b("one"), b("two"));
        let got = s.update_if_equal(&t, "p", b"k", b"one", v2.clone(), None).await?;
        ensure!(got == rejected(None), "update of missing row: {got:?}");
        let got = s.delete_if_equal(&t, "p", b"k", b"one").await?;
        ensure!(got == rejected(None), "delete of missing row: {got:?}");

        let got = s.insert_if_absent(&t, "p", b"k", v1.clone(), None).await?;
        ensure!(got == applied(&v1), "first insert: {got:?}");
        let got = s.insert_if_absent(&t, "p", b"k", v2.clone(), None).await?;
        ensure!(got == rejected(Some(&v1)), "second insert: {got:?}");
        ensure!(s.get(&t, "p", b"k").await? == Some(v1.clone()));

        let got = s.update_if_equal(&t, "p", b"k", b"wrong", v2.clone(), None).await?;
        ensure!(got == rejected(Some(&v1)), "update with wrong expectation: {got:?}");
        let got = s.update_if_equal(&t, "p", b"k", &v1, v2.clone(), None).await?;
        ensure!(got == applied(&v2), "update: {got:?}");
        ensure!(s.get(&t, "p", b"k").await? == Some(v2.clone()));

        let got = s.delete_if_equal(&t, "p", b"k", &v1).await?;
        ensure!(got == rejected(Some(&v2)), "delete with wrong expectation: {got:?}");
        let got = s.delete_if_equal(&t, "p", b"k", &v2).await?;
        ensure!(got == CasOutcome { applied: true, current: None }, "delete: {got:?}");
        ensure!(s.get(&t, "p", b"k").await.map(|v| v.is_none())?, "deleted");
        let got = s.insert_if_absent(&t, "p", b"k", v1.clone(), None).await?;
        ensure!(got == applied(&v1), "insert after delete: {got:?}");

        // The empty value is a value, not absence.
        s.put(&t, "p", b"e", Bytes::new(), None).await?;
        let got = s.insert_if_absent(&t, "p", b"e", v1.clone(), None).await?;
        ensure!(got == rejected(Some(&Bytes::new())), "insert over empty: {got:?}");
        let got = s.update_if_equal(&t, "p", b"e", b"", v1.clone(), None).await?;
        ensure!(got == applied(&v1), "update from empty: {got:?}");
        Ok(())
    }

    /// 1,000 tasks race insert_if_absent on one key: exactly one wins, everyone sees its value.
    pub async fn insert_if_absent_race_has_one_winner(&self) -> Result<()> {
        let t = Arc::new(self.table("race_insert"));
        let mut tasks = JoinSet::new();
        for i in 0..RACERS {
            let (store, t) = (self.store.clone(), t.clone());
            tasks.spawn(async move {
                let mine = Bytes::from(format!("task-{i}"));
                let outcome = store.insert_if_absent(&t, "p", b"k", mine.clone(), None).await?;
                Ok::<_, StoreError>((mine, outcome))
            });
        }
        let mut winners = Vec::new();
        let mut seen = HashSet::new();
        while let Some(joined) = tasks.join_next().await {
            let (mine, outcome) = joined.context("racer panicked")??;
            if outcome.applied {
                ensure!(outcome.current.as_ref() == Some(&mine));
                winners.push(mine);
            }
            seen.insert(outcome.current.context("no current value")?);
        }
        ensure!(winners.len() == 1, "{} winners", winners.len());
        ensure!(seen.len() == 1 && seen.contains(&winners[0]), "losers saw {seen:?}");
        ensure!(self.store.get(&t, "p", b"k").await? == Some(winners[0].clone()));
        Ok(())
    }

    /// 1,000 tasks race to decrement a value from 100 with update_if_equal: exactly 100 succeed
    /// and nobody ever observes a value below zero.
    pub async fn update_if_equal_race_never_goes_below_zero(&self) -> Result<()> {
        let t = Arc::new(self.table("race_decrement"));
        self.store.put(&t, "p", b"stock", num(DECREMENT_FROM), None).await?;
        let mut tasks = JoinSet::new();
        for _ in 0..RACERS {
            let (store, t) = (self.store.clone(), t.clone());
            tasks.spawn(async move {
                let mut current = match store.get(&t, "p", b"stock").await? {
                    Some(v) => num_of(&v)?,
                    None => return Err(anyhow!("stock row vanished")),
                };
                loop {
                    ensure!(current >= 0, "observed stock {current}");
                    if current == 0 {
                        return Ok(false);
                    }
                    let outcome =
                        store.update_if_equal(&t, "p", b"stock", &num(current), num(current - 1), None).await?;
                    if outcome.applied {
                        return Ok(true);
                    }
                    current = num_of(&outcome.current.context("stock row vanished")?)?;
                }
            });
        }
        let mut succeeded = 0;
        while let Some(joined) = tasks.join_next().await {
            if joined.context("racer panicked")?? {
                succeeded += 1;
            }
        }
        ensure!(succeeded == DECREMENT_FROM, "{succeeded} decrements succeeded");
        let left = self.store.get(&t, "p", b"stock").await?.context("stock row vanished")?;
        ensure!(num_of(&left)? == 0, "stock ended at {}", num_of(&left)?);
        Ok(())
    }

    /// Counters start at 0, add and subtract, sum concurrent adds, and are not rows.
    pub async fn counters(&self) -> Result<()> {
        let s = &self.store;
        let t = Arc::new(self.table("counters"));
        ensure!(s.counter_get(&t, "p", b"c").await? == 0, "missing counter");
        s.counter_add(&t, "p", b"c", 5).await?;
        s.counter_add(&t, "p", b"c", -2).await?;
        ensure!(s.counter_get(&t, "p", b"c").await? == 3);
        ensure!(s.counter_get(&t, "p", b"other").await? == 0, "counters leak");

        let mut tasks = JoinSet::new();
        for _ in 0..200 {
            let (store, t) = (s.clone(), t.clone());
            tasks.spawn(async move { store.counter_add(&t, "p", b"c", 1).await });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.context("adder panicked")??;
        }
        ensure!(s.counter_get(&t, "p", b"c").await? == 203, "concurrent adds");

        ensure!(s.get(&t, "p", b"c").await?.is_none(), "a counter is not a row");
        s.put(&t, "p", b"c", b("row"), None).await?;
        ensure!(s.counter_get(&t, "p", b"c").await? == 203, "a row is not a counter");
        Ok(())
    }

    /// Row batches and counter batches apply whole; invalid batches apply nothing.
    pub async fn batches(&self) -> Result<()> {
        let s = &self.store;
        let t = self.table("batch");
        let put =
            |ck: &str, v: &str| WriteOp::Put { table: t.clone(), pk: "p".into(), ck: b(ck), value: b(v), ttl: None };
        let add = |ck: &str, delta| WriteOp::CounterAdd { table: t.clone(), pk: "p".into(), ck: b(ck), delta };
        s.put(&t, "p", b"old", b("x"), None).await?;
        s.batch(vec![
            put("a", "1"),
            put("b", "2"),
            WriteOp::Delete { table: t.clone(), pk: "p".into(), ck: b("old") },
            put("a", "3"),
        ])
        .await?;
        ensure!(s.get(&t, "p", b"a").await? == Some(b("3")), "later op wins");
        ensure!(s.get(&t, "p", b"b").await? == Some(b("2")));
        ensure!(s.get(&t, "p", b"old").await?.is_none(), "batched delete");

        s.batch(vec![add("x", 2), add("y", 3), add("x", 4)]).await?;
        ensure!(s.counter_get(&t, "p", b"x").await? == 6);
        ensure!(s.counter_get(&t, "p", b"y").await? == 3);

        s.batch(Vec::new()).await?;
        ensure_invalid("mixed batch", s.batch(vec![put("mixed", "1"), add("x", 1)]).await)?;
        ensure_invalid("oversized batch", s.batch(vec![put("big", "1"); MAX_BATCH_OPS + 1]).await)?;
        let mut bad_table = put("bad", "1");
        if let WriteOp::Put { table, .. } = &mut bad_table {
            *table = "Bad-Name".into();
        }
        ensure_invalid("batch with a bad table", s.batch(vec![put("partial", "1"), bad_table]).await)?;
        ensure!(s.get(&t, "p", b"mixed").await?.is_none(), "mixed batch leaked");
        ensure!(s.get(&t, "p", b"big").await?.is_none(), "oversized batch leaked");
        ensure!(s.get(&t, "p", b"partial").await?.is_none(), "invalid batch leaked");
        ensure!(s.counter_get(&t, "p", b"x").await? == 6, "mixed batch leaked");
        Ok(())
    }

    /// Rows with a TTL vanish once it passes, for reads, scans and conditions; a write without
    /// TTL clears an earlier one.
    pub async fn ttl_expiry(&self) -> Result<()> {
        let s = &self.store;
        let t = self.table("ttl");
        let ttl = Some(Ttl::from_secs(2)?);
        s.put(&t, "p", b"a", b("short"), ttl).await?;
        s.put(&t, "p", b"b", b("forever"), None).await?;
        let got = s.insert_if_absent(&t, "p", b"c", b("short"), ttl).await?;
        ensure!(got.applied);
        s.put(&t, "p", b"d", b("short"), ttl).await?;
        s.put(&t, "p", b"d", b("kept"), None).await?;
        s.put(&t, "p", b"e", b("short"), ttl).await?;
        let got = s.update_if_equal(&t, "p", b"e", b"short", b("kept"), None).await?;
        ensure!(got.applied);
        s.put(&t, "p", b"f", b("v"), None).await?;
        s.put(&t, "p", b"f", b("short"), ttl).await?;
        ensure!(s.get(&t, "p", b"a").await? == Some(b("short")), "alive before expiry");

        if self.clock.is_some() {
            self.pass(Duration::from_millis(1999)).await;
            ensure!(s.get(&t, "p", b"a").await?.is_some(), "expired early");
            self.pass(Duration::from_millis(1)).await;
        } else {
            // Server clocks: wait out the TTL with a margin for clock granularity.
            self.pass(Duration::from_millis(3500)).await;
        }

        for gone in [&b"a"[..], b"c", b"f"] {
            ensure!(s.get(&t, "p", gone).await?.is_none(), "{gone:?} outlived its TTL");
        }
        for kept in [&b"b"[..], b"d", b"e"] {
            ensure!(s.get(&t, "p", kept).await?.is_some(), "{kept:?} lost without TTL");
        }
        let page = s.scan(&t, "p", &Scan::all(10)).await?;
        let cks: Vec<&[u8]> = page.rows.iter().map(|r| r.ck.as_ref()).collect();
        ensure!(cks == [&b"b"[..], b"d", b"e"], "scan shows expired rows: {cks:?}");

        let got = s.update_if_equal(&t, "p", b"a", b"short", b("x"), None).await?;
        ensure!(got == rejected(None), "update of an expired row: {got:?}");
        let got = s.insert_if_absent(&t, "p", b"a", b("again"), None).await?;
        ensure!(got == applied(&b("again")), "insert over an expired row: {got:?}");
        Ok(())
    }

    /// Requests outside the contract are refused with InvalidArgument by every operation.
    pub async fn invalid_arguments(&self) -> Result<()> {
        let s = &self.store;
        let t = self.table("valid");
        let long_table = "a".repeat(49);
        for table in ["", "Bad-Name", "spaces here", long_table.as_str()] {
            ensure_invalid("put", s.put(table, "p", b"k", b("v"), None).await)?;
            ensure_invalid("get", s.get(table, "p", b"k").await)?;
            ensure_invalid("delete", s.delete(table, "p", b"k").await)?;
            ensure_invalid("scan", s.scan(table, "p", &Scan::all(1)).await)?;
            ensure_invalid("insert_if_absent", s.insert_if_absent(table, "p", b"k", b("v"), None).await)?;
            ensure_invalid("update_if_equal", s.update_if_equal(table, "p", b"k", b"v", b("w"), None).await)?;
            ensure_invalid("delete_if_equal", s.delete_if_equal(table, "p", b"k", b"v").await)?;
            ensure_invalid("counter_add", s.counter_add(table, "p", b"k", 1).await)?;
            ensure_invalid("counter_get", s.counter_get(table, "p", b"k").await)?;
        }
        ensure_invalid("empty pk", s.get(&t, "", b"k").await)?;
        ensure_invalid("empty ck", s.get(&t, "p", b"").await)?;
        let long_ck = vec![1u8; MAX_CLUSTERING_KEY_LEN + 1];
        ensure_invalid("long ck", s.put(&t, "p", &long_ck, b("v"), None).await)?;
        let too_big = Bytes::from(vec![0u8; MAX_VALUE_LEN + 1]);
        ensure_invalid("big value", s.put(&t, "p", b"k", too_big, None).await)?;
        ensure_invalid("limit 0", s.scan(&t, "p", &Scan::all(0)).await)?;
        ensure_invalid("limit too high", s.scan(&t, "p", &Scan::all(MAX_SCAN_LIMIT + 1)).await)?;
        let foreign = PageToken::from_bytes(b("zz-not-a-token"));
        ensure_invalid("foreign page token", s.scan(&t, "p", &Scan::all(1).after(Some(foreign))).await)?;
        ensure_invalid(
            "empty bound",
            s.scan(&t, "p", &Scan::all(1).range(Bound::Included(Bytes::new()), Bound::Unbounded)).await,
        )?;
        ensure_invalid("ttl 0", Ttl::from_secs(0))?;
        let err = s.get("Bad", "p", b"k").await.err().context("accepted a bad table")?;
        ensure!(!err.is_unavailable(), "a caller bug must not read as unavailable");
        ensure!(s.get(&t, "p", b"k").await?.is_none(), "nothing was written");
        Ok(())
    }
}
