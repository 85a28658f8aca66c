//! The roster: who is in which of a module's *books* — a study session, a live stream's audience — per
//! user rather than per connection, and across every node of a cluster.
//!
//! A user's first connection to join a book makes them present (the module announces them); further
//! connections — tabs, devices, a reload before the old page is gone, on this node or another — change
//! nothing visible; their last connection to leave makes them absent. Each operation answers whether it
//! changed who is present, how many are present, and a version that orders the counts different nodes
//! publish. A book is named by one of its module's topics, so departures can be routed to the module.
//!
//! On one node the roster is this node's book. In cluster mode each node keeps its own connections and
//! asks the bus ([`Cluster::book`]) only when a user's first connection on the node joins or their last
//! leaves; the bus decides atomically whether that changed the cluster's view. When a node dies, the next
//! operation on a book it had users in — or the roster's own sweep after a heartbeat finds the node dead
//! — removes its users, and the users present only there are reported once, to one node, which hands
//! them to the module ([`Module::on_departed`](crate::module::Module::on_departed)). While the bus is
//! unreachable a node answers from its own book, and writes its users of the books it changed to the bus
//! once it is back.

use crate::cluster::{BookMember, BookOp, BookReply, Cluster};
use parking_lot::Mutex as SyncMutex;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

/// Book shards. A shard's lock is held across the bus round trip, so one user's join and leave reach
/// the bus in order; 64 shards keep unrelated books from waiting on each other.
const SHARDS: usize = 64;

/// A present user.
pub type Member = BookMember;

/// What a join or a leave did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The join made the user present (their first connection anywhere), or the leave made them absent
    /// (their last).
    pub changed: bool,
    /// The user's display name, as given at their first join.
    pub name: String,
    /// Users present in the book now.
    pub present: usize,
    /// Grows with every change of the book; orders `present` figures (see
    /// [`Context::publish_versioned`](crate::module::Context::publish_versioned)).
    pub version: u64,
    /// Users who were present only through nodes that died, found while making this change: the module
    /// announces their departure as for a leave.
    pub departed: Vec<Member>,
}

/// Users of nodes that died, found by the roster's sweep, for the module owning `book`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departure {
    /// The book (one of the module's topics).
    pub book: String,
    /// Who is gone.
    pub users: Vec<Member>,
    /// Users present in the book now.
    pub present: usize,
    /// The book's version after the removal.
    pub version: u64,
}

struct Entry {
    name: String,
    conns: HashSet<u64>,
}

type Books = HashMap<String, HashMap<String, Entry>>;

/// The roster of one node.
pub struct Roster {
    shards: Box<[Mutex<Books>]>,
    hasher: RandomState,
    cluster: Option<Arc<dyn Cluster>>,
    /// Version of the single-node book (every change bumps it).
    version: AtomicU64,
    /// Books whose changes did not reach the bus (it was down); written when it is back.
    unsynced: SyncMutex<HashSet<String>>,
}

impl Roster {
    /// A roster on its own (`None`) or sharing books through the cluster bus.
    pub fn new(cluster: Option<Arc<dyn Cluster>>) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            cluster,
            version: AtomicU64::new(0),
            unsynced: SyncMutex::default(),
        }
    }

    fn shard(&self, book: &str) -> &Mutex<Books> {
        &self.shards[(self.hasher.hash_one(book) as usize) % SHARDS]
    }

    fn local_version(&self, changed: bool) -> u64 {
        if changed { self.version.fetch_add(1, Ordering::AcqRel) + 1 } else { self.version.load(Ordering::Acquire) }
    }

    /// Connection `conn` of `user` (shown as `name`) joins `book`.
    pub async fn join(&self, book: &str, user: &str, name: &str, conn: u64) -> Change {
        let mut books = self.shard(book).lock().await;
        let users = books.entry(book.to_owned()).or_default();
        let first_here = match users.get_mut(user) {
            Some(entry) => {
                entry.conns.insert(conn);
                false
            }
            None => {
                users.insert(user.to_owned(), Entry { name: name.to_owned(), conns: HashSet::from([conn]) });
                true
            }
        };
        let name = users.get(user).map_or_else(|| name.to_owned(), |e| e.name.clone());
        let local = users.len();
        let op = if first_here { BookOp::Join { user: user.to_owned(), name: name.clone() } } else { BookOp::Count };
        self.ask(book, op, first_here, name, local).await
    }

    /// Connection `conn` of `user` leaves `book`; `None` when that connection was not in it.
    pub async fn leave(&self, book: &str, user: &str, conn: u64) -> Option<Change> {
        let mut books = self.shard(book).lock().await;
        let users = books.get_mut(book)?;
        let entry = users.get_mut(user)?;
        if !entry.conns.remove(&conn) {
            return None;
        }
        let last_here = entry.conns.is_empty();
        let name = entry.name.clone();
        if last_here {
            users.remove(user);
        }
        let local = users.len();
        if users.is_empty() {
            books.remove(book);
        }
        let op = if last_here { BookOp::Leave { user: user.to_owned() } } else { BookOp::Count };
        Some(self.ask(book, op, last_here, name, local).await)
    }

    /// Runs `op` on the bus (the caller holds the book's shard); on one node, or while the bus is
    /// unreachable, answers from this node's book.
    async fn ask(&self, book: &str, op: BookOp, changed_here: bool, name: String, local: usize) -> Change {
        let local_change = |version| Change {
            changed: changed_here,
            name: name.clone(),
            present: local,
            version,
            departed: Vec::new(),
        };
        let Some(cluster) = &self.cluster else {
            return local_change(self.local_version(changed_here));
        };
        match cluster.book(book, op).await {
            Ok(BookReply { changed, present, version, departed, .. }) => {
                Change { changed, name, present, version, departed }
            }
            Err(e) => {
                tracing::warn!(book, error = %e, "roster change kept on this node until the cluster bus is back");
                self.unsynced.lock().insert(book.to_owned());
                local_change(0)
            }
        }
    }

    /// The users present in `book`, sorted by id (on every node of a cluster; this node's while the bus
    /// is unreachable).
    pub async fn members(&self, book: &str) -> Vec<Member> {
        if let Some(cluster) = &self.cluster {
            match cluster.book(book, BookOp::Members).await {
                Ok(reply) => {
                    let mut members = reply.members;
                    members.sort_by(|a, b| a.user.cmp(&b.user));
                    return members;
                }
                Err(e) => tracing::warn!(book, error = %e, "roster read from this node only: cluster bus unavailable"),
            }
        }
        self.local_members(book).await
    }

    async fn local_members(&self, book: &str) -> Vec<Member> {
        let books = self.shard(book).lock().await;
        let mut members: Vec<Member> = books
            .get(book)
            .map(|users| users.iter().map(|(id, e)| Member { user: id.clone(), name: e.name.clone() }).collect())
            .unwrap_or_default();
        members.sort_by(|a, b| a.user.cmp(&b.user));
        members
    }

    /// How many users are present in `book` (cluster-wide where there is a bus).
    pub async fn present(&self, book: &str) -> usize {
        if let Some(cluster) = &self.cluster {
            match cluster.book(book, BookOp::Count).await {
                Ok(reply) => return reply.present,
                Err(e) => tracing::warn!(book, error = %e, "roster count from this node only: cluster bus unavailable"),
            }
        }
        self.shard(book).lock().await.get(book).map_or(0, HashMap::len)
    }

    async fn local_books(&self) -> Vec<String> {
        let mut all = Vec::new();
        for shard in self.shards.iter() {
            all.extend(shard.lock().await.keys().cloned());
        }
        all
    }

    /// Cluster mode: sweeps this node's books for users of dead nodes whenever a heartbeat found a node
    /// dead, refreshes the books' keys every `refresh`, and writes the books changed during an outage
    /// once the bus is back; departures go to `departures`. Returns at once on a single node.
    pub async fn run(
        self: Arc<Self>,
        refresh: Duration,
        departures: mpsc::UnboundedSender<Departure>,
        stop: CancellationToken,
    ) {
        let Some(cluster) = self.cluster.clone() else { return };
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut deaths = cluster.deaths();
        let mut last_refresh = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if !cluster.healthy() {
                continue;
            }
            let unsynced: Vec<String> = self.unsynced.lock().drain().collect();
            for book in unsynced {
                self.sync(cluster.as_ref(), &book, &departures).await;
            }
            let now_deaths = cluster.deaths();
            if now_deaths != deaths || last_refresh.elapsed() >= refresh {
                deaths = now_deaths;
                last_refresh = tokio::time::Instant::now();
                for book in self.local_books().await {
                    let reply = {
                        let _held = self.shard(&book).lock().await;
                        cluster.book(&book, BookOp::Count).await
                    };
                    match reply {
                        Ok(reply) => report(&departures, &book, reply),
                        Err(e) => tracing::debug!(book, error = %e, "roster sweep failed; retried next round"),
                    }
                }
            }
        }
    }

    /// Writes this node's users of `book` to the bus as they are now.
    async fn sync(&self, cluster: &dyn Cluster, book: &str, departures: &mpsc::UnboundedSender<Departure>) {
        let books = self.shard(book).lock().await;
        let users: Vec<(String, String)> = books
            .get(book)
            .map(|users| users.iter().map(|(id, e)| (id.clone(), e.name.clone())).collect())
            .unwrap_or_default();
        match cluster.book(book, BookOp::Sync(users)).await {
            Ok(reply) => report(departures, book, reply),
            Err(e) => {
                tracing::debug!(book, error = %e, "roster not written yet; retried when the bus is back");
                self.unsynced.lock().insert(book.to_owned());
            }
        }
    }
}

fn report(departures: &mpsc::UnboundedSender<Departure>, book: &str, reply: BookReply) {
    if reply.departed.is_empty() {
        return;
    }
    let departure =
        Departure { book: book.to_owned(), users: reply.departed, present: reply.present, version: reply.version };
    if departures.send(departure).is_err() {
        tracing::debug!(book, "departures not announced: the node is shutting down");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_join_and_last_leave_per_user() {
        let r = Roster::new(None);
        let join = r.join("s", "ann", "Ann", 1).await;
        assert!(join.changed);
        assert_eq!((join.present, join.version), (1, 1));
        assert!(!r.join("s", "ann", "Ann 2", 2).await.changed, "a second tab is no change");
        assert!(r.join("s", "bob", "Bob", 3).await.changed);
        assert_eq!(r.present("s").await, 2);
        let left = r.leave("s", "ann", 1).await.expect("was present");
        assert!(!left.changed);
        assert!(r.leave("s", "ann", 1).await.is_none(), "a connection leaves once");
        let left = r.leave("s", "ann", 2).await.expect("was present");
        assert!(left.changed);
        assert_eq!((left.name.as_str(), left.present), ("Ann", 1), "the name given at the first join");
        assert!(left.version > join.version);
        assert_eq!(r.members("s").await, vec![Member { user: "bob".into(), name: "Bob".into() }]);
        assert!(r.leave("t", "bob", 3).await.is_none());
    }
}
