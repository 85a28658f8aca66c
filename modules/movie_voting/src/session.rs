//! One session's in-memory state, and its JSON in the seed's shape:
//! `{ "createdAt": "…", "movies": [{ "id", "title", "votes" }], "participants": ["name", …] }`.

use chorus_core::counters::ShardedCounter;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A session's data exactly as the seed stores it in Redis and sends in `session-update`. Also the shape
/// external updates must have (unknown extra fields are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionData {
    /// Creation time, `2026-01-22T12:00:00.000Z`.
    pub created_at: String,
    /// Movies in id order.
    pub movies: Vec<MovieData>,
    /// Display names in join order.
    pub participants: Vec<String>,
}

/// One movie of [`SessionData`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MovieData {
    /// Id, unique in the session (1, 2, … for movies added through chorus).
    pub id: u64,
    /// Title as entered (trimmed).
    pub title: String,
    /// Votes.
    pub votes: u64,
}

/// A movie of a live session.
pub(crate) struct Movie {
    pub id: u64,
    pub title: String,
    /// Votes that have no per-participant row: totals set by an external update (see `README.md`).
    pub base: i64,
    /// Votes cast through chorus: one per vote row, counted on the broker's striped counters.
    pub votes: Arc<ShardedCounter>,
}

impl Movie {
    /// The vote total shown to clients. A vote and an unvote racing on one row may briefly add their
    /// deltas out of order; the total never shows below zero meanwhile.
    pub fn total(&self) -> u64 {
        u64::try_from(self.base.saturating_add(self.votes.get())).unwrap_or(0)
    }
}

/// A participant of a live session.
pub(crate) struct Participant {
    /// The identity (token `sub`, or `guest-…`) that joined; one entry per identity.
    pub who: String,
    /// Display name.
    pub name: String,
    /// Join order.
    pub seq: u64,
}

/// The mutable part of a session. Guarded by a synchronous mutex held only to read or swap it and to
/// publish, never across an `.await`.
pub(crate) struct State {
    pub created_at: String,
    pub movies: Vec<Movie>,
    pub participants: Vec<Participant>,
    /// Id the next movie added through chorus gets.
    pub next_movie: u64,
    /// Join order the next participant gets.
    pub next_seq: u64,
}

impl State {
    /// The movie with this id.
    pub fn movie(&self, id: u64) -> Option<&Movie> {
        self.movies.iter().find(|m| m.id == id)
    }

    /// Whether `who` has joined.
    pub fn has_participant(&self, who: &str) -> bool {
        self.participants.iter().any(|p| p.who == who)
    }

    /// Whether a movie with this title (compared by [`title_key`]) is already in the session.
    pub fn has_title(&self, key: &str) -> bool {
        self.movies.iter().any(|m| title_key(&m.title) == key)
    }

    /// The session data as JSON text.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct View<'a> {
            created_at: &'a str,
            movies: Vec<MovieView<'a>>,
            participants: Vec<&'a str>,
        }
        #[derive(Serialize)]
        struct MovieView<'a> {
            id: u64,
            title: &'a str,
            votes: u64,
        }
        let view = View {
            created_at: &self.created_at,
            movies: self.movies.iter().map(|m| MovieView { id: m.id, title: &m.title, votes: m.total() }).collect(),
            participants: self.participants.iter().map(|p| p.name.as_str()).collect(),
        };
        // Strings, integers and sequences of them always serialize.
        serde_json::to_string(&view).unwrap_or_default()
    }
}

/// A live session on this node.
pub(crate) struct Session {
    pub id: String,
    /// When the session is gone, in clock milliseconds (24 h after creation).
    pub expires_ms: u64,
    pub state: Mutex<State>,
    /// Serializes the changes that write several rows (join, add movie, external update), so two of them
    /// never interleave their writes. Votes do not take it.
    pub changes: tokio::sync::Mutex<()>,
    gone: AtomicBool,
}

impl Session {
    /// A live session.
    pub fn new(id: String, expires_ms: u64, state: State) -> Self {
        Self {
            id,
            expires_ms,
            state: Mutex::new(state),
            changes: tokio::sync::Mutex::new(()),
            gone: AtomicBool::new(false),
        }
    }

    /// Whether the session has expired at `now_ms`.
    pub fn expired_at(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_ms || self.gone.load(Ordering::Acquire)
    }

    /// Marks the session gone; true for the one caller that did it.
    pub fn mark_gone(&self) -> bool {
        !self.gone.swap(true, Ordering::AcqRel)
    }

    /// Key of a movie's vote counter in the broker's counters. It names the session's expiry too, so a
    /// later session that reuses the id after this one expired never shares its counters.
    pub fn counter_key(&self, movie: u64) -> String {
        counter_key(&self.id, self.expires_ms, movie)
    }
}

/// See [`Session::counter_key`].
pub(crate) fn counter_key(id: &str, expires_ms: u64, movie: u64) -> String {
    format!("movies/{id}/{expires_ms}/{movie}")
}

/// What makes two titles the same movie: trimmed, runs of whitespace as one space, case folded.
pub(crate) fn title_key(title: &str) -> String {
    title.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_compare_without_case_and_spacing() {
        assert_eq!(title_key("  The   Matrix "), "the matrix");
        assert_eq!(title_key("ÉTÉ"), title_key("été"));
        assert_ne!(title_key("Alien"), title_key("Aliens"));
    }

    #[test]
    fn json_has_the_seed_shape() {
        let votes = Arc::new(ShardedCounter::default());
        votes.add(2);
        let state = State {
            created_at: "2026-01-22T12:00:00.000Z".into(),
            movies: vec![Movie { id: 1, title: "Movie 1".into(), base: 3, votes }],
            participants: vec![
                Participant { who: "a".into(), name: "user1".into(), seq: 0 },
                Participant { who: "b".into(), name: "user2".into(), seq: 1 },
            ],
            next_movie: 2,
            next_seq: 2,
        };
        let parsed: SessionData = serde_json::from_str(&state.to_json()).unwrap();
        let expected = SessionData {
            created_at: "2026-01-22T12:00:00.000Z".into(),
            movies: vec![MovieData { id: 1, title: "Movie 1".into(), votes: 5 }],
            participants: vec!["user1".into(), "user2".into()],
        };
        assert_eq!(parsed, expected);
        assert_eq!(
            state.to_json(),
            r#"{"createdAt":"2026-01-22T12:00:00.000Z","movies":[{"id":1,"title":"Movie 1","votes":5}],"participants":["user1","user2"]}"#
        );
    }

    #[test]
    fn totals_never_show_below_zero() {
        let votes = Arc::new(ShardedCounter::default());
        votes.add(-1);
        assert_eq!(Movie { id: 1, title: "x".into(), base: 0, votes }.total(), 0);
    }
}
