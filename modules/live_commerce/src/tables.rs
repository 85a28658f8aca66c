//! The module's storage layout: table names, keys, the MessagePack encoding of rows, and the two store
//! patterns every concept uses (read a whole partition page by page; compare-and-set a row). `README.md`
//! documents the same layout.

use crate::error::CommerceError;
use bytes::Bytes;
use chorus_core::store::{ClusteringKey, ClusteringKeyReader, MAX_SCAN_LIMIT, Row, Scan, Store};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The one partition of the tables that hold every product or session.
pub const ALL: &str = "all";

/// Products: partition [`ALL`], clustering key = the product id (a UUIDv7: creation order), value
/// `ProductRecord`.
pub const PRODUCTS: &str = "commerce_products";
/// Sessions: partition [`ALL`], clustering key = the session id (a UUIDv7: creation order), value
/// `SessionRecord` (its products, in display order, inside it).
pub const SESSIONS: &str = "commerce_sessions";
/// Chat: partition = session id, clustering key = message id (a UUIDv7: time order), value `ChatRecord`.
pub const CHAT: &str = "commerce_chat";
/// Views: partition = session id, clustering key = view id (a UUIDv7: join order), value `ViewRecord`.
pub const VIEWS: &str = "commerce_views";
/// Reaction totals: partition = session id, one row per node that counted reactions of the session (see
/// [`reactions_ck`]), value `ReactionTotals`: that node's counts, rewritten by its flushes. The session's
/// totals are the sum of its rows, so nodes sharing a store never overwrite each other's counts.
pub const REACTIONS: &str = "commerce_reactions";
/// Who clicked what: partition = session id, clustering key = (product id, clicker), empty value. Read
/// back when a session is loaded again, so a clicker stays one unique click across restarts.
pub const CLICKERS: &str = "commerce_clickers";
/// Click statistics: partition = session id, clustering key = product id, value `ClickStatsRecord`.
pub const CLICK_STATS: &str = "commerce_click_stats";

/// Clustering key of a partition's single row.
pub const RECORD: &[u8] = b"record";

/// Most rows one listing reads from the store. Listings that must see every row (search, a creator's
/// analytics) read whole partitions; this bounds the memory and time of one request at a size far above
/// what one deployment of the seed app holds (it is 100 full scan pages).
pub const MAX_LISTED_ROWS: usize = 100 * MAX_SCAN_LIMIT;

/// The clustering key of a node's row of [`REACTIONS`]: [`RECORD`] on a single node, `node/{id}` for a
/// cluster node.
pub fn reactions_ck(node_id: Option<&str>) -> Bytes {
    match node_id {
        None => Bytes::from_static(RECORD),
        Some(id) => Bytes::from(format!("node/{id}")),
    }
}

/// The clustering key of a string id (session, product, message, view): its UTF-8 bytes, so the
/// UUIDv7 text order is the row order.
pub fn id_ck(id: &str) -> Bytes {
    Bytes::copy_from_slice(id.as_bytes())
}

/// The clustering key of a clicker row.
pub fn click_ck(product_id: &str, clicker: &str) -> Bytes {
    ClusteringKey::new().str(product_id).str(clicker).build()
}

/// The (product id, clicker) of a clicker row's clustering key.
pub fn read_click_ck(ck: &[u8]) -> Result<(String, String), CommerceError> {
    let mut reader = ClusteringKeyReader::new(ck);
    match (reader.string(), reader.string()) {
        (Some(product), Some(clicker)) if reader.is_empty() => Ok((product, clicker)),
        _ => Err(CommerceError::Internal("unreadable clicker key".into())),
    }
}

/// Encodes a row value (MessagePack with field names, so records can gain fields with serde defaults).
pub fn encode<T: Serialize>(value: &T) -> Result<Bytes, CommerceError> {
    rmp_serde::to_vec_named(value).map(Bytes::from).map_err(|e| CommerceError::Internal(format!("encoding a row: {e}")))
}

/// Decodes a row value written by [`encode`].
pub fn decode<T: DeserializeOwned>(what: &str, raw: &[u8]) -> Result<T, CommerceError> {
    rmp_serde::from_slice(raw).map_err(|e| CommerceError::Internal(format!("unreadable {what} row: {e}")))
}

/// Every row of a partition (up to [`MAX_LISTED_ROWS`]), in `scan`'s order, page by page.
pub async fn scan_all(store: &dyn Store, table: &str, pk: &str, scan: Scan) -> Result<Vec<Row>, CommerceError> {
    let mut rows = Vec::new();
    let mut scan = scan;
    loop {
        let page = store.scan(table, pk, &scan).await?;
        rows.extend(page.rows);
        match page.next {
            Some(token) if rows.len() < MAX_LISTED_ROWS => scan = scan.after(Some(token)),
            _ => break,
        }
    }
    rows.truncate(MAX_LISTED_ROWS);
    Ok(rows)
}

/// Every row of a partition decoded as `T`, ascending by clustering key.
pub async fn load_all<T: DeserializeOwned>(
    store: &dyn Store,
    table: &str,
    pk: &str,
    what: &str,
) -> Result<Vec<T>, CommerceError> {
    scan_all(store, table, pk, Scan::all(MAX_SCAN_LIMIT)).await?.iter().map(|row| decode(what, &row.value)).collect()
}

/// Reads a row, lets `change` edit it, and writes it back only if nobody changed it meanwhile (retrying
/// on a lost race). `change` may refuse; `None` from the store is [`CommerceError::NotFound`] for `what`.
pub async fn update<T, F>(
    store: &dyn Store,
    table: &str,
    pk: &str,
    ck: &[u8],
    what: &str,
    mut change: F,
) -> Result<T, CommerceError>
where
    T: Serialize + DeserializeOwned,
    F: FnMut(&mut T) -> Result<(), CommerceError>,
{
    let mut current = store.get(table, pk, ck).await?;
    loop {
        let raw = current.ok_or_else(|| CommerceError::not_found(what))?;
        let mut value: T = decode(what, &raw)?;
        change(&mut value)?;
        let outcome = store.update_if_equal(table, pk, ck, &raw, encode(&value)?, None).await?;
        if outcome.applied {
            return Ok(value);
        }
        current = outcome.current;
    }
}
