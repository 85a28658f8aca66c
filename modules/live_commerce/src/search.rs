//! Search and discovery (the seed's `/api/search` routes): sessions by text, status, category and
//! creator; products by text and price; a global search over both; live, upcoming, trending and
//! per-creator session lists — all paged with `limit`, `offset`, `total` and `hasMore`.
//!
//! Text matching is case-insensitive and partial, as the seed's "Search Tips" say. Results are ranked
//! when asked (`sortBy=relevance`, and always in the global search): a match in the title (or a
//! product's name) ranks above one in a tag or the category, which ranks above one in the description;
//! a title that starts with the query ranks above one that only contains it; ties go to the newest.
//! Sessions and products are read from their tables, which hold one partition each (see `tables.rs`).

use crate::error::CommerceError;
use crate::model::{ProductRecord, SessionRecord, Status};
use crate::service::Commerce;
use chorus_core::module::Context;
use std::cmp::Reverse;
use std::collections::HashMap;

/// Page size when none is asked for.
pub const DEFAULT_LIMIT: usize = 20;
/// Page size of the global search when none is asked for (the seed's default).
pub const DEFAULT_GLOBAL_LIMIT: usize = 10;
/// Largest page (the seed's "max recommended").
pub const MAX_LIMIT: usize = 100;
/// Longest search text.
const MAX_QUERY_CHARS: usize = 200;

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The page.
    pub data: Vec<T>,
    /// Matches over all pages.
    pub total: usize,
    /// The page size asked for.
    pub limit: usize,
    /// Matches skipped before this page.
    pub offset: usize,
    /// Whether matches follow this page.
    pub has_more: bool,
}

impl<T> Page<T> {
    /// The page of `all` at `offset`.
    pub fn of(all: Vec<T>, limit: usize, offset: usize) -> Self {
        let total = all.len();
        let data: Vec<T> = all.into_iter().skip(offset).take(limit).collect();
        let has_more = offset.saturating_add(data.len()) < total;
        Self { data, total, limit, offset, has_more }
    }
}

/// Order of session results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionSort {
    /// Newest first (the default).
    Newest,
    /// Oldest first.
    Oldest,
    /// By title, A–Z.
    Title,
    /// Best text match first.
    Relevance,
}

/// Order of product results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductSort {
    /// Newest first (the default).
    Newest,
    /// Oldest first.
    Oldest,
    /// Cheapest first.
    PriceAsc,
    /// Dearest first.
    PriceDesc,
    /// By name, A–Z.
    Name,
    /// Best text match first.
    Relevance,
}

/// A session search.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionQuery {
    /// Text to find in the title, description, category and tags (lower-cased); empty matches all.
    pub text: String,
    /// Only sessions in this status.
    pub status: Option<Status>,
    /// Only sessions of this category (case-insensitive).
    pub category: Option<String>,
    /// Only this creator's sessions.
    pub creator_id: Option<String>,
    /// Result order.
    pub sort: SessionSort,
    /// Page size.
    pub limit: usize,
    /// Matches to skip.
    pub offset: usize,
}

/// A product search.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductQuery {
    /// Text to find in the name and description (lower-cased); empty matches all.
    pub text: String,
    /// Cheapest price included.
    pub min_price: Option<f64>,
    /// Dearest price included.
    pub max_price: Option<f64>,
    /// Result order.
    pub sort: ProductSort,
    /// Page size.
    pub limit: usize,
    /// Matches to skip.
    pub offset: usize,
}

/// The query parameters of a search request, checked.
pub struct Params<'a>(pub &'a HashMap<String, String>);

impl Params<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// `q`, trimmed and lower-cased (empty when absent).
    pub fn text(&self) -> Result<String, CommerceError> {
        let text = self.get("q").unwrap_or_default().trim();
        if text.chars().count() > MAX_QUERY_CHARS {
            return Err(CommerceError::Invalid(format!("q must be at most {MAX_QUERY_CHARS} characters")));
        }
        Ok(text.to_lowercase())
    }

    /// `limit` (1–100, `default` when absent) and `offset` (0 when absent).
    pub fn paging(&self, default: usize) -> Result<(usize, usize), CommerceError> {
        let limit = match self.get("limit") {
            None => default,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => return Err(CommerceError::Invalid(format!("limit must be a whole number from 1 to {MAX_LIMIT}"))),
            },
        };
        let offset = match self.get("offset") {
            None => 0,
            Some(text) => {
                text.parse::<usize>().map_err(|_| CommerceError::Invalid("offset must be a whole number ≥ 0".into()))?
            }
        };
        Ok((limit, offset))
    }

    fn price(&self, key: &str) -> Result<Option<f64>, CommerceError> {
        self.get(key)
            .map(|text| match text.parse::<f64>() {
                Ok(p) if p.is_finite() && p >= 0.0 => Ok(p),
                _ => Err(CommerceError::Invalid(format!("{key} must be a number ≥ 0"))),
            })
            .transpose()
    }

    /// A session search from `q`, `status`, `category`, `creatorId`, `sortBy`, `limit`, `offset`.
    pub fn session_query(&self) -> Result<SessionQuery, CommerceError> {
        let status = self
            .get("status")
            .map(|s| {
                Status::parse(s).ok_or_else(|| {
                    CommerceError::Invalid("status must be one of live, scheduled, paused, ended".into())
                })
            })
            .transpose()?;
        let sort = match self.get("sortBy") {
            None | Some("newest") => SessionSort::Newest,
            Some("oldest") => SessionSort::Oldest,
            Some("title") => SessionSort::Title,
            Some("relevance") => SessionSort::Relevance,
            Some(_) => {
                return Err(CommerceError::Invalid("sortBy must be one of newest, oldest, title, relevance".into()));
            }
        };
        let (limit, offset) = self.paging(DEFAULT_LIMIT)?;
        Ok(SessionQuery {
            text: self.text()?,
            status,
            category: self.get("category").map(str::to_lowercase),
            creator_id: self.get("creatorId").map(str::to_owned),
            sort,
            limit,
            offset,
        })
    }

    /// A product search from `q`, `minPrice`, `maxPrice`, `sortBy`, `limit`, `offset`.
    pub fn product_query(&self) -> Result<ProductQuery, CommerceError> {
        let sort = match self.get("sortBy") {
            None | Some("newest") => ProductSort::Newest,
            Some("oldest") => ProductSort::Oldest,
            Some("price-asc") => ProductSort::PriceAsc,
            Some("price-desc") => ProductSort::PriceDesc,
            Some("name") => ProductSort::Name,
            Some("relevance") => ProductSort::Relevance,
            Some(_) => {
                return Err(CommerceError::Invalid(
                    "sortBy must be one of newest, oldest, price-asc, price-desc, name, relevance".into(),
                ));
            }
        };
        let (min_price, max_price) = (self.price("minPrice")?, self.price("maxPrice")?);
        if let (Some(min), Some(max)) = (min_price, max_price)
            && min > max
        {
            return Err(CommerceError::Invalid("minPrice must not be above maxPrice".into()));
        }
        let (limit, offset) = self.paging(DEFAULT_LIMIT)?;
        Ok(ProductQuery { text: self.text()?, min_price, max_price, sort, limit, offset })
    }
}

/// How well `field` matches `text`: 2 when it starts with it, 1 when it contains it, 0 otherwise.
fn field_score(field: &str, text: &str) -> u32 {
    let field = field.to_lowercase();
    if field.starts_with(text) {
        2
    } else if field.contains(text) {
        1
    } else {
        0
    }
}

/// A session's match score for `text` (0: no match; an empty text matches everything with 1).
fn session_score(session: &SessionRecord, text: &str) -> u32 {
    if text.is_empty() {
        return 1;
    }
    let title = field_score(&session.title, text) * 3;
    let tagged =
        session.tags.iter().chain(session.category.iter()).map(|t| field_score(t, text)).max().unwrap_or(0).min(1) * 2;
    let described = session.description.as_deref().map_or(0, |d| field_score(d, text).min(1));
    title.max(tagged).max(described)
}

/// A product's match score for `text` (0: no match; an empty text matches everything with 1).
fn product_score(product: &ProductRecord, text: &str) -> u32 {
    if text.is_empty() {
        return 1;
    }
    (field_score(&product.name, text) * 2).max(field_score(&product.description, text).min(1))
}

/// Sessions matching `query`, ordered and paged.
pub fn sessions_page(sessions: Vec<SessionRecord>, query: &SessionQuery) -> Page<SessionRecord> {
    let mut hits: Vec<(u32, SessionRecord)> = sessions
        .into_iter()
        .filter(|s| query.status.is_none_or(|status| s.status == status))
        .filter(|s| {
            query.category.as_ref().is_none_or(|c| s.category.as_ref().is_some_and(|sc| sc.to_lowercase() == *c))
        })
        .filter(|s| query.creator_id.as_ref().is_none_or(|c| *c == s.creator_id))
        .map(|s| (session_score(&s, &query.text), s))
        .filter(|(score, _)| *score > 0)
        .collect();
    match query.sort {
        SessionSort::Newest => hits.sort_by_key(|(_, s)| Reverse((s.created_ms, s.id.clone()))),
        SessionSort::Oldest => hits.sort_by_key(|(_, s)| (s.created_ms, s.id.clone())),
        SessionSort::Title => hits.sort_by_key(|(_, s)| (s.title.to_lowercase(), Reverse(s.created_ms))),
        SessionSort::Relevance => {
            hits.sort_by_key(|(score, s)| (Reverse(*score), Reverse((s.created_ms, s.id.clone()))))
        }
    }
    Page::of(hits.into_iter().map(|(_, s)| s).collect(), query.limit, query.offset)
}

/// Products matching `query`, ordered and paged.
pub fn products_page(products: Vec<ProductRecord>, query: &ProductQuery) -> Page<ProductRecord> {
    let mut hits: Vec<(u32, ProductRecord)> = products
        .into_iter()
        .filter(|p| query.min_price.is_none_or(|min| p.price >= min))
        .filter(|p| query.max_price.is_none_or(|max| p.price <= max))
        .map(|p| (product_score(&p, &query.text), p))
        .filter(|(score, _)| *score > 0)
        .collect();
    let newest = |p: &ProductRecord| Reverse((p.created_ms, p.id.clone()));
    match query.sort {
        ProductSort::Newest => hits.sort_by_key(|(_, p)| newest(p)),
        ProductSort::Oldest => hits.sort_by_key(|(_, p)| (p.created_ms, p.id.clone())),
        ProductSort::PriceAsc => {
            hits.sort_by(|(_, a), (_, b)| a.price.total_cmp(&b.price).then(newest(a).cmp(&newest(b))))
        }
        ProductSort::PriceDesc => {
            hits.sort_by(|(_, a), (_, b)| b.price.total_cmp(&a.price).then(newest(a).cmp(&newest(b))))
        }
        ProductSort::Name => hits.sort_by_key(|(_, p)| (p.name.to_lowercase(), newest(p))),
        ProductSort::Relevance => hits.sort_by_key(|(score, p)| (Reverse(*score), newest(p))),
    }
    Page::of(hits.into_iter().map(|(_, p)| p).collect(), query.limit, query.offset)
}

impl Commerce {
    /// `GET /api/search/sessions`.
    pub async fn search_sessions(
        &self,
        ctx: &Context,
        query: &SessionQuery,
    ) -> Result<Page<SessionRecord>, CommerceError> {
        Ok(sessions_page(self.sessions(ctx, query.creator_id.as_deref()).await?, query))
    }

    /// `GET /api/search/products`.
    pub async fn search_products(
        &self,
        ctx: &Context,
        query: &ProductQuery,
    ) -> Result<Page<ProductRecord>, CommerceError> {
        Ok(products_page(self.products(ctx).await?, query))
    }

    /// `GET /api/search/sessions/trending`: live sessions with the most viewers now (on every node),
    /// then the most reactions; ties to the newest.
    pub async fn trending_sessions(
        &self,
        ctx: &Context,
        limit: usize,
        offset: usize,
    ) -> Result<Page<(SessionRecord, u64)>, CommerceError> {
        let mut ranked = Vec::new();
        for session in self.sessions(ctx, None).await? {
            if session.status != Status::Live {
                continue;
            }
            let viewers = ctx.roster().present(&crate::events::topic(&session.id)).await as u64;
            let reactions = self.reaction_report(ctx, &session.id).await.map_or(0, |r| r.total);
            ranked.push((Reverse((viewers, reactions, session.created_ms)), session, viewers));
        }
        ranked.sort_by_key(|(rank, _, _)| *rank);
        Ok(Page::of(ranked.into_iter().map(|(_, s, v)| (s, v)).collect(), limit, offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, title: &str, created_ms: u64) -> SessionRecord {
        SessionRecord {
            id: id.into(),
            title: title.into(),
            description: Some("a stream about things".into()),
            category: Some("Gaming".into()),
            tags: vec!["retro".into()],
            stream_url: None,
            stream_key: None,
            status: Status::Scheduled,
            creator_id: "1".into(),
            active_product_id: None,
            started_ms: None,
            ended_ms: None,
            created_ms,
            updated_ms: created_ms,
            products: Vec::new(),
        }
    }

    fn query(text: &str, sort: SessionSort) -> SessionQuery {
        SessionQuery { text: text.into(), status: None, category: None, creator_id: None, sort, limit: 20, offset: 0 }
    }

    #[test]
    fn relevance_ranks_title_starts_then_title_then_tags_then_description() {
        let sessions = vec![
            session("d", "Cooking night", 4),
            session("c", "Best of retro consoles", 3),
            session("b", "Night of retro", 2),
            session("a", "Retro night", 1),
        ];
        let ids = |page: Page<SessionRecord>| page.data.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(ids(sessions_page(sessions.clone(), &query("retro", SessionSort::Relevance))), ["a", "c", "b", "d"]);
        assert_eq!(ids(sessions_page(sessions.clone(), &query("retro", SessionSort::Newest))), ["d", "c", "b", "a"]);
        assert_eq!(ids(sessions_page(sessions.clone(), &query("things", SessionSort::Oldest))), ["a", "b", "c", "d"]);
        assert!(ids(sessions_page(sessions, &query("absent", SessionSort::Newest))).is_empty());
    }

    #[test]
    fn pages_say_whether_more_follow() {
        let sessions: Vec<SessionRecord> = (0..45).map(|i| session(&format!("{i:02}"), "t", i)).collect();
        let mut q = query("", SessionSort::Oldest);
        q.offset = 40;
        let page = sessions_page(sessions.clone(), &q);
        assert_eq!((page.data.len(), page.total, page.has_more), (5, 45, false));
        q.offset = 20;
        let page = sessions_page(sessions, &q);
        assert_eq!((page.data.len(), page.data[0].id.as_str(), page.has_more), (20, "20", true));
    }
}
