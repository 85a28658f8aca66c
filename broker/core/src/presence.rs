//! Presence: which users are in which topic. A user with several connections (tabs, devices) is present
//! once: the first connection to join makes them appear, the last to leave makes them disappear, and
//! only those two transitions are reported, so modules emit "joined"/"left" exactly once per user.

use parking_lot::Mutex;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};

/// Presence shards; same reasoning as the topic registry's.
const SHARDS: usize = 64;

/// Result of [`Presence::join`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// The user was not present before: announce them.
    First,
    /// The user was already present through another connection (or this one).
    Again,
}

/// Result of [`Presence::leave`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// The user's last connection left: announce their departure.
    Last,
    /// Other connections of the user remain.
    StillPresent,
    /// That connection was not present.
    NotPresent,
}

/// A present user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The user's subject.
    pub user: String,
    /// Display name given at their first join.
    pub name: Option<String>,
    /// How many connections keep them present.
    pub connections: usize,
}

struct UserEntry {
    name: Option<String>,
    conns: HashSet<u64>,
}

#[derive(Default)]
struct Shard {
    topics: HashMap<String, HashMap<String, UserEntry>>,
}

/// Connection id → the (topic, user) pairs it is present as.
type ConnEntries = HashMap<u64, HashSet<(String, String)>>;

/// Presence for all topics on this node.
pub struct Presence {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    /// Per connection, where it is present; sharded by connection id, since every subscribe and
    /// unsubscribe of every connection passes here.
    by_conn: Box<[Mutex<ConnEntries>]>,
}

impl Default for Presence {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            by_conn: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl Presence {
    fn conn_shard(&self, conn_id: u64) -> &Mutex<ConnEntries> {
        &self.by_conn[(conn_id as usize) & (SHARDS - 1)]
    }

    fn shard(&self, topic: &str) -> &Mutex<Shard> {
        &self.shards[(self.hasher.hash_one(topic) as usize) & (SHARDS - 1)]
    }

    /// Marks `user` present in `topic` through connection `conn_id`.
    pub fn join(&self, topic: &str, user: &str, name: Option<&str>, conn_id: u64) -> Join {
        let result = {
            let mut shard = self.shard(topic).lock();
            let users = shard.topics.entry(topic.to_owned()).or_default();
            match users.entry(user.to_owned()) {
                Entry::Occupied(mut e) => {
                    e.get_mut().conns.insert(conn_id);
                    Join::Again
                }
                Entry::Vacant(e) => {
                    e.insert(UserEntry { name: name.map(str::to_owned), conns: HashSet::from([conn_id]) });
                    Join::First
                }
            }
        };
        self.conn_shard(conn_id).lock().entry(conn_id).or_default().insert((topic.to_owned(), user.to_owned()));
        result
    }

    /// Removes connection `conn_id` of `user` from `topic`.
    pub fn leave(&self, topic: &str, user: &str, conn_id: u64) -> Leave {
        if let Some(set) = self.conn_shard(conn_id).lock().get_mut(&conn_id) {
            set.remove(&(topic.to_owned(), user.to_owned()));
        }
        self.leave_inner(topic, user, conn_id)
    }

    fn leave_inner(&self, topic: &str, user: &str, conn_id: u64) -> Leave {
        let mut shard = self.shard(topic).lock();
        let Some(users) = shard.topics.get_mut(topic) else { return Leave::NotPresent };
        let Some(entry) = users.get_mut(user) else { return Leave::NotPresent };
        if !entry.conns.remove(&conn_id) {
            return Leave::NotPresent;
        }
        if !entry.conns.is_empty() {
            return Leave::StillPresent;
        }
        users.remove(user);
        if users.is_empty() {
            shard.topics.remove(topic);
        }
        Leave::Last
    }

    /// Removes a closed connection from every topic; returns the `(topic, user)` pairs it left and
    /// whether it was the user's last connection there.
    pub fn leave_connection(&self, conn_id: u64) -> Vec<(String, String, Leave)> {
        let entries = self.conn_shard(conn_id).lock().remove(&conn_id).unwrap_or_default();
        entries
            .into_iter()
            .map(|(topic, user)| {
                let left = self.leave_inner(&topic, &user, conn_id);
                (topic, user, left)
            })
            .collect()
    }

    /// One user's presence in `topic`, if present.
    pub fn member(&self, topic: &str, user: &str) -> Option<Member> {
        let shard = self.shard(topic).lock();
        let entry = shard.topics.get(topic)?.get(user)?;
        Some(Member { user: user.to_owned(), name: entry.name.clone(), connections: entry.conns.len() })
    }

    /// Users present in `topic`, sorted by user id.
    pub fn members(&self, topic: &str) -> Vec<Member> {
        let shard = self.shard(topic).lock();
        let mut members: Vec<Member> = shard
            .topics
            .get(topic)
            .map(|users| {
                users
                    .iter()
                    .map(|(user, e)| Member { user: user.clone(), name: e.name.clone(), connections: e.conns.len() })
                    .collect()
            })
            .unwrap_or_default();
        members.sort_by(|a, b| a.user.cmp(&b.user));
        members
    }

    /// Number of distinct users present in `topic`.
    pub fn count(&self, topic: &str) -> usize {
        self.shard(topic).lock().topics.get(topic).map_or(0, HashMap::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_join_and_last_leave_per_user() {
        let p = Presence::default();
        assert_eq!(p.join("room", "ann", Some("Ann"), 1), Join::First);
        assert_eq!(p.join("room", "ann", Some("Ann"), 2), Join::Again);
        assert_eq!(p.join("room", "bob", None, 3), Join::First);
        assert_eq!(p.count("room"), 2);
        assert_eq!(p.members("room")[0], Member { user: "ann".into(), name: Some("Ann".into()), connections: 2 });
        assert_eq!(p.leave("room", "ann", 1), Leave::StillPresent);
        assert_eq!(p.leave("room", "ann", 1), Leave::NotPresent);
        assert_eq!(p.leave("room", "ann", 2), Leave::Last);
        assert_eq!(p.count("room"), 1);
    }

    #[test]
    fn closing_a_connection_leaves_everywhere() {
        let p = Presence::default();
        p.join("a", "ann", None, 1);
        p.join("b", "ann", None, 1);
        p.join("b", "ann", None, 2);
        let mut left = p.leave_connection(1);
        left.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            left,
            vec![
                ("a".to_string(), "ann".to_string(), Leave::Last),
                ("b".to_string(), "ann".to_string(), Leave::StillPresent)
            ]
        );
        assert_eq!(p.member("b", "ann").map(|m| m.connections), Some(1));
        assert_eq!(p.count("a"), 0);
        assert_eq!(p.count("b"), 1);
        assert!(p.leave_connection(1).is_empty());
    }
}
