//! The store tables of the module and their rows. Every row of a session carries a TTL ending when the
//! session does, so the store forgets a session by itself; values are MessagePack.
//!
//! | table | partition | clustering key | value |
//! |---|---|---|---|
//! | `movie_sessions` | session id | `meta` | [`MetaRow`] — claimed with `insert_if_absent` |
//! | `movie_movies` | session id | movie id (`u64`) | [`MovieRow`] |
//! | `movie_titles` | session id | title key (`str`) | movie id — `insert_if_absent` refuses duplicate titles |
//! | `movie_people` | session id | identity (`str`) | [`PersonRow`] — `insert_if_absent` dedupes joins |
//! | `movie_votes` | session id | (movie id, identity) | [`VOTE`] — `insert_if_absent` / `delete_if_equal` |

use bytes::Bytes;
use chorus_core::store::{ClusteringKey, ClusteringKeyReader, MAX_SCAN_LIMIT, Scan, Store, StoreError, Ttl};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ops::Bound;

/// One row per session: its creation and expiry.
pub(crate) const SESSIONS: &str = "movie_sessions";
/// One row per movie.
pub(crate) const MOVIES: &str = "movie_movies";
/// One row per title key: makes titles unique in a session.
pub(crate) const TITLES: &str = "movie_titles";
/// One row per participant.
pub(crate) const PEOPLE: &str = "movie_people";
/// One row per vote.
pub(crate) const VOTES: &str = "movie_votes";

/// Clustering key of the session row.
pub(crate) const META_CK: &[u8] = b"meta";

/// Value of a vote row (MessagePack `true`): the row's presence is the vote.
pub(crate) const VOTE: &[u8] = &[0xc3];

/// The session row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MetaRow {
    /// The seed's `createdAt`.
    pub created_at: String,
    /// Expiry in clock milliseconds.
    pub expires_ms: u64,
}

/// A movie row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MovieRow {
    pub title: String,
    /// Votes without a vote row (set by external updates).
    pub base: i64,
}

/// A participant row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PersonRow {
    pub name: String,
    pub seq: u64,
}

/// Encodes a row value.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Bytes, StoreError> {
    rmp_serde::to_vec_named(value).map(Bytes::from).map_err(|e| StoreError::InvalidArgument(e.to_string()))
}

fn decode<T: DeserializeOwned>(table: &str, value: &[u8]) -> Result<T, StoreError> {
    rmp_serde::from_slice(value).map_err(|e| StoreError::Corrupt(format!("{table} row: {e}")))
}

/// Clustering key of a movie row.
pub(crate) fn movie_ck(movie: u64) -> Bytes {
    ClusteringKey::new().u64(movie).build()
}

/// Clustering key of a title row.
pub(crate) fn title_ck(key: &str) -> Bytes {
    ClusteringKey::new().str(key).build()
}

/// Clustering key of a participant row.
pub(crate) fn person_ck(who: &str) -> Bytes {
    ClusteringKey::new().str(who).build()
}

/// Clustering key of a vote row.
pub(crate) fn vote_ck(movie: u64, who: &str) -> Bytes {
    ClusteringKey::new().u64(movie).str(who).build()
}

/// The TTL of a row written at `now_ms` for a session expiring at `expires_ms`, rounded down to whole
/// seconds so no row outlives its session (a later session reusing the id must not see it); `None` when
/// less than a second is left, which writes treat as expired.
pub(crate) fn ttl_until(expires_ms: u64, now_ms: u64) -> Option<Ttl> {
    let secs = expires_ms.checked_sub(now_ms)? / 1000;
    Ttl::from_secs(u32::try_from(secs).unwrap_or(Ttl::MAX_SECS).min(Ttl::MAX_SECS)).ok()
}

/// Everything stored about one session.
pub(crate) struct Loaded {
    pub meta: MetaRow,
    /// By movie id.
    pub movies: Vec<(u64, MovieRow)>,
    /// By join order.
    pub people: Vec<(String, PersonRow)>,
    /// Vote rows per movie id.
    pub votes: HashMap<u64, i64>,
}

/// Reads a session's rows; `None` when it does not exist or has expired.
pub(crate) async fn load(store: &dyn Store, id: &str) -> Result<Option<Loaded>, StoreError> {
    let Some(meta) = store.get(SESSIONS, id, META_CK).await? else { return Ok(None) };
    let meta: MetaRow = decode(SESSIONS, &meta)?;
    let mut movies = Vec::new();
    scan_all(store, MOVIES, id, Scan::all(MAX_SCAN_LIMIT), |ck, value| {
        let movie = ClusteringKeyReader::new(ck).u64().ok_or_else(|| corrupt(MOVIES))?;
        movies.push((movie, decode(MOVIES, value)?));
        Ok(())
    })
    .await?;
    let mut people = Vec::new();
    scan_all(store, PEOPLE, id, Scan::all(MAX_SCAN_LIMIT), |ck, value| {
        let who = ClusteringKeyReader::new(ck).string().ok_or_else(|| corrupt(PEOPLE))?;
        people.push((who, decode::<PersonRow>(PEOPLE, value)?));
        Ok(())
    })
    .await?;
    people.sort_by_key(|(_, p)| p.seq);
    let mut votes = HashMap::new();
    scan_all(store, VOTES, id, Scan::all(MAX_SCAN_LIMIT), |ck, _| {
        let movie = ClusteringKeyReader::new(ck).u64().ok_or_else(|| corrupt(VOTES))?;
        *votes.entry(movie).or_insert(0) += 1;
        Ok(())
    })
    .await?;
    Ok(Some(Loaded { meta, movies, people, votes }))
}

/// Clustering keys of the vote rows of one movie.
pub(crate) async fn movie_votes(store: &dyn Store, id: &str, movie: u64) -> Result<Vec<Bytes>, StoreError> {
    let end = match movie.checked_add(1) {
        Some(next) => Bound::Excluded(movie_ck(next)),
        None => Bound::Unbounded,
    };
    let scan = Scan::all(MAX_SCAN_LIMIT).range(Bound::Included(movie_ck(movie)), end);
    let mut cks = Vec::new();
    scan_all(store, VOTES, id, scan, |ck, _| {
        cks.push(Bytes::copy_from_slice(ck));
        Ok(())
    })
    .await?;
    Ok(cks)
}

fn corrupt(table: &str) -> StoreError {
    StoreError::Corrupt(format!("{table} row has a malformed clustering key"))
}

/// Visits every live row of a partition, page by page.
async fn scan_all(
    store: &dyn Store,
    table: &str,
    pk: &str,
    scan: Scan,
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut after = None;
    loop {
        let page = store.scan(table, pk, &scan.clone().after(after)).await?;
        for row in &page.rows {
            visit(&row.ck, &row.value)?;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_down_and_end_with_the_session() {
        assert_eq!(ttl_until(86_400_000, 0).map(Ttl::as_secs), Some(86_400));
        assert_eq!(ttl_until(11_000, 10_000).map(Ttl::as_secs), Some(1));
        assert_eq!(ttl_until(12_999, 10_000).map(Ttl::as_secs), Some(2));
        assert_eq!(ttl_until(10_999, 10_000), None);
        assert_eq!(ttl_until(10_000, 10_000), None);
        assert_eq!(ttl_until(10_000, 20_000), None);
    }

    #[test]
    fn vote_keys_of_one_movie_sort_together() {
        let a = vote_ck(1, "zed");
        let b = vote_ck(2, "ann");
        assert!(movie_ck(1) <= a && a < movie_ck(2) && movie_ck(2) <= b);
    }
}
