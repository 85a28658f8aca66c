//! Who is in which session, per user rather than per connection: a user's first connection to join a
//! session makes them present (→ `userJoined`), their last to leave or disconnect makes them absent
//! (→ `userLeft`); further tabs change nothing visible. The module keeps this itself (not only the
//! broker's presence) because it must learn the first/last transition atomically with the join, which
//! happens in the subscribe snapshot, before the broker records its own presence.

use crate::model::PresentUser;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};

/// Roster shards: joins and leaves of different sessions rarely share a lock; 16 is plenty for the
/// join/leave rate of study groups (presence changes, not messages, take the lock).
const SHARDS: usize = 16;

struct Member {
    name: String,
    conns: HashSet<u64>,
}

type Sessions = HashMap<String, HashMap<String, Member>>;

/// The module's presence book for this node.
pub struct Roster {
    shards: Box<[Mutex<Sessions>]>,
    hasher: RandomState,
}

impl Default for Roster {
    fn default() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::default()).collect(), hasher: RandomState::new() }
    }
}

impl Roster {
    fn shard(&self, session: &str) -> &Mutex<Sessions> {
        &self.shards[(self.hasher.hash_one(session) as usize) % SHARDS]
    }

    /// Connection `conn` of `user` joins `session`; true when the user was not present before.
    pub fn join(&self, session: &str, user: &str, name: &str, conn: u64) -> bool {
        let mut shard = self.shard(session).lock();
        let users = shard.entry(session.to_owned()).or_default();
        match users.get_mut(user) {
            Some(member) => {
                member.conns.insert(conn);
                false
            }
            None => {
                users.insert(user.to_owned(), Member { name: name.to_owned(), conns: HashSet::from([conn]) });
                true
            }
        }
    }

    /// Connection `conn` of `user` leaves `session`; the user's name when that was their last connection.
    pub fn leave(&self, session: &str, user: &str, conn: u64) -> Option<String> {
        let mut shard = self.shard(session).lock();
        let users = shard.get_mut(session)?;
        let member = users.get_mut(user)?;
        if !member.conns.remove(&conn) || !member.conns.is_empty() {
            return None;
        }
        let name = users.remove(user).map(|m| m.name);
        if users.is_empty() {
            shard.remove(session);
        }
        name
    }

    /// The users present in `session`, sorted by id.
    pub fn members(&self, session: &str) -> Vec<PresentUser> {
        let shard = self.shard(session).lock();
        let mut members: Vec<PresentUser> = shard
            .get(session)
            .map(|users| {
                users.iter().map(|(id, m)| PresentUser { user_id: id.clone(), user_name: m.name.clone() }).collect()
            })
            .unwrap_or_default();
        members.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        members
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_join_and_last_leave_per_user() {
        let r = Roster::default();
        assert!(r.join("s", "ann", "Ann", 1));
        assert!(!r.join("s", "ann", "Ann", 2));
        assert!(!r.join("s", "ann", "Ann", 2));
        assert!(r.join("s", "bob", "Bob", 3));
        assert_eq!(r.members("s").len(), 2);
        assert_eq!(r.leave("s", "ann", 1), None);
        assert_eq!(r.leave("s", "ann", 1), None);
        assert_eq!(r.leave("s", "ann", 2).as_deref(), Some("Ann"));
        assert_eq!(r.leave("s", "ann", 2), None);
        assert_eq!(r.members("s"), vec![PresentUser { user_id: "bob".into(), user_name: "Bob".into() }]);
        assert_eq!(r.leave("t", "bob", 3), None);
    }
}
