//! [`Subscriptions`]: the topics a [`ResumingClient`](crate::ResumingClient) holds, the position of each, and
//! which arriving events are new. No I/O: the supervisor task feeds it events and subscribe replies and
//! forwards what it returns.
//!
//! A topic's position is the epoch of its current subscription and `offset`, the `seq` of the last event
//! handed to the application (or, before any, the `seq` of the subscribe reply). An event whose `seq` is
//! not above `offset` was already handed out and is dropped, so each `(epoch, seq)` goes out at most once;
//! `seq` 0 marks an unsequenced event, always delivered and never moving the position.
//!
//! Events are not tagged with their epoch: it becomes known only with the subscribe reply, and the broker
//! may send a subscription's first events (a replay, in particular) before that reply. Until the reply,
//! a subscribing topic's events therefore wait here ("early" events); the reply says whether they continue
//! the old position (`recovered: true`) or start a new one, and they are then filtered like any other.

use crate::close::CloseInfo;
use crate::delivery::Delivery;
use crate::error::ClientError;
use crate::event::Event;
use crate::reply::SubscribeReply;
use chorus_protocol::{ErrorCode, Position};
use std::collections::{HashMap, VecDeque};
use tokio::sync::oneshot;

/// Bytes of early events (above) held at most, over all topics of a connection. The broker writes a replay
/// into the connection's outbound queue in one go, ahead of the reply, and cuts a connection whose queue
/// outgrows its bound (`outbound_queue_bytes`, 1 MiB by default) as a slow consumer; so a replay the broker
/// can send at all stays far below 16 MiB, and this only bounds what a misbehaving server can make the
/// client hold. Past it the connection is abandoned and resumed again.
pub(crate) const MAX_EARLY_BYTES: usize = 16 * 1024 * 1024;

/// Bytes counted for an early event besides its payload and topic (the `Event` itself, a `Vec` slot).
const EVENT_OVERHEAD: usize = 64;

/// Where the answer to an application's subscribe goes.
pub(crate) type SubscribeWaiter = oneshot::Sender<Result<SubscribeReply, ClientError>>;

/// A subscribe the supervisor must send on the current connection.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) topic: String,
    /// Matches the reply to this request (a topic can be unsubscribed and subscribed again meanwhile).
    pub(crate) generation: u64,
    pub(crate) since: Option<Position>,
}

/// What a subscribe reply means for the connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Handled.
    Done,
    /// A resubscribe got no usable answer (timed out, or the connection closed under it): the connection
    /// cannot serve the topic and should be abandoned, so that the next one subscribes it again.
    Abandon,
}

/// The early-event bound was reached.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Overflow;

#[derive(Debug)]
struct Topic {
    /// The epoch of the subscription events arrive on; `None` before the first reply (or from a server
    /// that sends none, in which case nothing can be resumed).
    epoch: Option<String>,
    /// The `seq` of the last event handed out, or that of the subscribe reply before any.
    offset: u64,
    /// A subscribe in flight on the current connection.
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    generation: u64,
    since: Option<Position>,
    origin: Origin,
    early: Vec<Event>,
}

#[derive(Debug)]
enum Origin {
    /// The application's `subscribe`: the reply goes to it; a failure means the topic is not held.
    App(SubscribeWaiter),
    /// A resubscribe after a reconnect: the outcome goes into the stream as a [`Delivery`].
    Resume,
}

fn early_size(event: &Event) -> usize {
    event.payload.raw().len() + event.topic.len() + EVENT_OVERHEAD
}

/// Whether a resubscribe that failed this way should be tried again on another connection rather than
/// reported as lost: the request never got an answer, as opposed to the server refusing it.
fn retryable(error: &ClientError) -> bool {
    matches!(error, ClientError::Closed { .. } | ClientError::Timeout | ClientError::Reconnecting { .. })
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Subscriptions {
    topics: HashMap<String, Topic>,
    next_generation: u64,
    early_bytes: usize,
    max_early_bytes: usize,
}

impl Subscriptions {
    pub(crate) fn new(max_early_bytes: usize) -> Self {
        Self { topics: HashMap::new(), next_generation: 0, early_bytes: 0, max_early_bytes }
    }

    fn generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    /// The application subscribes `topic` (after `since`, when given). `None` when the topic is already
    /// held or being subscribed; the waiter has then been answered with error 2002.
    pub(crate) fn begin(&mut self, topic: String, since: Option<Position>, waiter: SubscribeWaiter) -> Option<Request> {
        if self.topics.contains_key(&topic) {
            let _ = waiter.send(Err(already_subscribed(&topic)));
            return None;
        }
        let generation = self.generation();
        let pending = Pending { generation, since: since.clone(), origin: Origin::App(waiter), early: Vec::new() };
        let (epoch, offset) = since.as_ref().map_or((None, 0), |p| (Some(p.epoch.clone()), p.offset));
        self.topics.insert(topic.clone(), Topic { epoch, offset, pending: Some(pending) });
        Some(Request { topic, generation, since })
    }

    /// After a reconnect: subscribes every held topic again from its position.
    pub(crate) fn resume_all(&mut self) -> Vec<Request> {
        let mut requests = Vec::with_capacity(self.topics.len());
        let topics: Vec<String> = self.topics.keys().cloned().collect();
        for topic in topics {
            let generation = self.generation();
            let Some(t) = self.topics.get_mut(&topic) else { continue };
            let since = t.epoch.clone().map(|epoch| Position { epoch, offset: t.offset });
            t.pending = Some(Pending { generation, since: since.clone(), origin: Origin::Resume, early: Vec::new() });
            requests.push(Request { topic, generation, since });
        }
        requests
    }

    /// An event arrived: returns it when it is new for a subscribed topic; holds it while its topic's
    /// subscribe is unanswered.
    pub(crate) fn on_event(&mut self, event: Event) -> Result<Option<Event>, Overflow> {
        let Some(t) = self.topics.get_mut(&event.topic) else {
            // Unsubscribed meanwhile (or never subscribed): events already on their way are dropped.
            return Ok(None);
        };
        match &mut t.pending {
            Some(pending) => {
                let size = early_size(&event);
                if self.early_bytes + size > self.max_early_bytes {
                    return Err(Overflow);
                }
                self.early_bytes += size;
                pending.early.push(event);
                Ok(None)
            }
            None => Ok(admit(t, event)),
        }
    }

    /// A subscribe reply (or its failure) arrived for `generation` of `topic`; the deliveries it causes are
    /// appended to `out`.
    pub(crate) fn on_reply(
        &mut self,
        topic: &str,
        generation: u64,
        result: Result<SubscribeReply, ClientError>,
        out: &mut VecDeque<Delivery>,
    ) -> Outcome {
        let Some(t) = self.topics.get_mut(topic) else { return Outcome::Done };
        let pending = match t.pending.take() {
            Some(p) if p.generation == generation => p,
            // A reply to a request made before an unsubscribe and a new subscribe: the new one decides.
            other => {
                t.pending = other;
                return Outcome::Done;
            }
        };
        self.early_bytes -= pending.early.iter().map(early_size).sum::<usize>();
        let reply = match result {
            Ok(reply) => reply,
            Err(error) => {
                return match pending.origin {
                    Origin::Resume if retryable(&error) => Outcome::Abandon,
                    Origin::Resume => {
                        self.topics.remove(topic);
                        out.push_back(Delivery::SubscriptionLost { topic: topic.to_owned(), error });
                        Outcome::Done
                    }
                    Origin::App(waiter) => {
                        self.topics.remove(topic);
                        let _ = waiter.send(Err(error));
                        Outcome::Done
                    }
                };
            }
        };
        let recovered = pending.since.is_some() && reply.recovered == Some(true);
        // Recovered: the replay continues right after the old position. Otherwise the subscription starts
        // at the reply's `seq`: every event it delivers is newer.
        t.offset = match &pending.since {
            Some(since) if recovered => since.offset,
            _ => reply.seq,
        };
        t.epoch = reply.epoch.clone();
        match pending.origin {
            Origin::Resume => {
                out.push_back(Delivery::Resumed { topic: topic.to_owned(), recovered, snapshot: reply.snapshot });
            }
            // A caller that gave up (timed out) finds the topic subscribed anyway, as with `Client`.
            Origin::App(waiter) => {
                let _ = waiter.send(Ok(reply));
            }
        }
        out.extend(pending.early.into_iter().filter_map(|event| admit(t, event)).map(Delivery::Event));
        Outcome::Done
    }

    /// The application unsubscribes `topic`; false when it was not held. Its later events are dropped.
    pub(crate) fn remove(&mut self, topic: &str) -> bool {
        match self.topics.remove(topic) {
            Some(t) => {
                if let Some(pending) = t.pending {
                    self.early_bytes -= pending.early.iter().map(early_size).sum::<usize>();
                    if let Origin::App(waiter) = pending.origin {
                        let _ = waiter.send(Err(ClientError::Closed {
                            code: None,
                            reason: format!("unsubscribed from {topic} before the subscribe was answered"),
                        }));
                    }
                }
                true
            }
            None => false,
        }
    }

    /// The position `topic` resumes from.
    pub(crate) fn position(&self, topic: &str) -> Option<Position> {
        let t = self.topics.get(topic)?;
        t.epoch.clone().map(|epoch| Position { epoch, offset: t.offset })
    }

    /// The connection ended: subscribes the application was waiting for fail with `info`; resubscribes
    /// are forgotten (their topics keep their positions, and the events they buffered will be replayed).
    pub(crate) fn connection_lost(&mut self, info: &CloseInfo) {
        self.topics.retain(|_, t| match t.pending.take() {
            None | Some(Pending { origin: Origin::Resume, .. }) => true,
            Some(Pending { origin: Origin::App(waiter), .. }) => {
                let _ = waiter.send(Err(info.to_error()));
                false
            }
        });
        self.early_bytes = 0;
    }

    /// Whether `topic` is held (or being subscribed).
    pub(crate) fn contains(&self, topic: &str) -> bool {
        self.topics.contains_key(topic)
    }

    /// How many topics are held.
    pub(crate) fn len(&self) -> usize {
        self.topics.len()
    }
}

/// Hands `event` out unless `t` already handed it out; moves the position.
fn admit(t: &mut Topic, event: Event) -> Option<Event> {
    if event.seq == 0 {
        return Some(event);
    }
    if event.seq <= t.offset {
        tracing::debug!(topic = %event.topic, seq = event.seq, offset = t.offset, "dropping a delivered event");
        return None;
    }
    t.offset = event.seq;
    Some(event)
}

/// The error an application's subscribe gets for a topic the client already holds.
pub(crate) fn already_subscribed(topic: &str) -> ClientError {
    ClientError::Server {
        code: ErrorCode::AlreadySubscribed.as_u16(),
        message: format!("already subscribed to {topic} (or subscribing)"),
    }
}

/// The error an application's unsubscribe gets for a topic the client does not hold.
pub(crate) fn not_subscribed(topic: &str) -> ClientError {
    ClientError::Server { code: ErrorCode::NotSubscribed.as_u16(), message: format!("not subscribed to {topic}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_protocol::Payload;

    fn event(topic: &str, seq: u64) -> Event {
        Event { topic: topic.into(), seq, payload: Payload::from_value(&seq).unwrap() }
    }

    fn reply(seq: u64, epoch: &str, recovered: Option<bool>) -> SubscribeReply {
        SubscribeReply { seq, epoch: Some(epoch.into()), recovered, snapshot: None }
    }

    fn seqs(out: &VecDeque<Delivery>) -> Vec<String> {
        out.iter()
            .map(|d| match d {
                Delivery::Event(e) => format!("{}#{}", e.topic, e.seq),
                Delivery::Resumed { topic, recovered, .. } => format!("resumed {topic} {recovered}"),
                Delivery::SubscriptionLost { topic, .. } => format!("lost {topic}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    /// Subscribes `topic` as the application would and answers with `reply`.
    fn subscribed(subs: &mut Subscriptions, topic: &str, reply: SubscribeReply) {
        let (tx, mut rx) = oneshot::channel();
        let req = subs.begin(topic.into(), None, tx).unwrap();
        let mut out = VecDeque::new();
        assert_eq!(subs.on_reply(topic, req.generation, Ok(reply.clone()), &mut out), Outcome::Done);
        assert!(out.is_empty());
        assert_eq!(rx.try_recv().unwrap().unwrap(), reply);
    }

    fn lost(subs: &mut Subscriptions) {
        subs.connection_lost(&CloseInfo::remote(None, "reset"));
    }

    #[test]
    fn positions_follow_delivered_events_and_skip_unsequenced_ones() {
        let mut subs = Subscriptions::new(MAX_EARLY_BYTES);
        subscribed(&mut subs, "t", reply(4, "e1", None));
        assert_eq!(subs.position("t"), Some(Position { epoch: "e1".into(), offset: 4 }));
        assert_eq!(subs.on_event(event("t", 5)), Ok(Some(event("t", 5))));
        assert_eq!(subs.on_event(event("t", 0)), Ok(Some(event("t", 0))), "unsequenced: delivered");
        assert_eq!(subs.position("t").unwrap().offset, 5, "unsequenced: the position stays");
        assert_eq!(subs.on_event(event("t", 5)), Ok(None), "a duplicate is dropped");
        assert_eq!(subs.on_event(event("other", 9)), Ok(None), "not subscribed");
    }

    #[test]
    fn a_recovered_resume_replays_after_the_position_exactly_once() {
        let mut subs = Subscriptions::new(MAX_EARLY_BYTES);
        subscribed(&mut subs, "t", reply(0, "e1", None));
        for seq in 1..=3 {
            subs.on_event(event("t", seq)).unwrap();
        }
        lost(&mut subs);
        let requests = subs.resume_all();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].since, Some(Position { epoch: "e1".into(), offset: 3 }));
        // The replay arrives before the reply; an event the application already has is in it too.
        for seq in [3, 4, 5] {
            assert_eq!(subs.on_event(event("t", seq)), Ok(None), "held until the reply");
        }
        let mut out = VecDeque::new();
        let outcome = subs.on_reply("t", requests[0].generation, Ok(reply(5, "e1", Some(true))), &mut out);
        assert_eq!(outcome, Outcome::Done);
        assert_eq!(seqs(&out), ["resumed t true", "t#4", "t#5"]);
        assert_eq!(subs.on_event(event("t", 6)), Ok(Some(event("t", 6))));
        assert_eq!(subs.position("t"), Some(Position { epoch: "e1".into(), offset: 6 }));
    }

    #[test]
    fn an_unrecovered_resume_starts_over_in_the_new_epoch() {
        let mut subs = Subscriptions::new(MAX_EARLY_BYTES);
        subscribed(&mut subs, "t", reply(0, "e1", None));
        for seq in 1..=9 {
            subs.on_event(event("t", seq)).unwrap();
        }
        lost(&mut subs);
        let requests = subs.resume_all();
        // Another node: its count is lower, and its events are new even though their seq is below 9.
        subs.on_event(event("t", 3)).unwrap();
        let mut out = VecDeque::new();
        subs.on_reply("t", requests[0].generation, Ok(reply(2, "e2", Some(false))), &mut out);
        assert_eq!(seqs(&out), ["resumed t false", "t#3"]);
        assert_eq!(subs.on_event(event("t", 4)), Ok(Some(event("t", 4))));
        assert_eq!(subs.position("t"), Some(Position { epoch: "e2".into(), offset: 4 }));
    }

    #[test]
    fn failed_resubscribes_are_reported_or_retried() {
        let mut subs = Subscriptions::new(MAX_EARLY_BYTES);
        subscribed(&mut subs, "refused", reply(1, "e", None));
        subscribed(&mut subs, "unanswered", reply(1, "e", None));
        lost(&mut subs);
        let requests = subs.resume_all();
        let generation = |topic: &str| requests.iter().find(|r| r.topic == topic).unwrap().generation;
        let mut out = VecDeque::new();
        let forbidden = ClientError::Server { code: 2005, message: "no".into() };
        assert_eq!(subs.on_reply("refused", generation("refused"), Err(forbidden), &mut out), Outcome::Done);
        assert_eq!(seqs(&out), ["lost refused"]);
        assert_eq!(subs.position("refused"), None);
        let outcome = subs.on_reply("unanswered", generation("unanswered"), Err(ClientError::Timeout), &mut out);
        assert_eq!(outcome, Outcome::Abandon);
        lost(&mut subs);
        assert_eq!(subs.resume_all()[0].since, Some(Position { epoch: "e".into(), offset: 1 }), "tried again");
    }

    #[test]
    fn application_subscribes_in_flight_fail_with_the_connection() {
        let mut subs = Subscriptions::new(MAX_EARLY_BYTES);
        let (tx, mut rx) = oneshot::channel();
        subs.begin("t".into(), None, tx).unwrap();
        let (again, mut refused) = oneshot::channel();
        assert!(subs.begin("t".into(), None, again).is_none(), "already subscribing");
        let err = refused.try_recv().unwrap().unwrap_err();
        assert_eq!(err.error_code(), Some(ErrorCode::AlreadySubscribed));
        subs.on_event(event("t", 1)).unwrap();
        subs.connection_lost(&CloseInfo::remote(Some(1001), "bye"));
        assert!(matches!(rx.try_recv().unwrap(), Err(ClientError::Closed { code: Some(1001), .. })));
        assert_eq!(subs.len(), 0);
        assert!(subs.resume_all().is_empty());
    }

    #[test]
    fn stale_replies_and_unsubscribed_topics_are_ignored() {
        let mut subs = Subscriptions::new(MAX_EARLY_BYTES);
        let (tx, _rx) = oneshot::channel();
        let first = subs.begin("t".into(), None, tx).unwrap();
        assert!(subs.remove("t"));
        assert!(!subs.remove("t"));
        let (tx, _rx) = oneshot::channel();
        let second = subs.begin("t".into(), None, tx).unwrap();
        let mut out = VecDeque::new();
        subs.on_reply("t", first.generation, Ok(reply(7, "old", None)), &mut out);
        assert_eq!(subs.position("t"), None, "the first request's reply does not answer the second");
        subs.on_reply("t", second.generation, Ok(reply(8, "new", None)), &mut out);
        assert_eq!(subs.position("t"), Some(Position { epoch: "new".into(), offset: 8 }));
        assert!(out.is_empty());
    }

    #[test]
    fn early_events_are_bounded() {
        let mut subs = Subscriptions::new(3 * (EVENT_OVERHEAD + 2));
        let (tx, _rx) = oneshot::channel();
        let request = subs.begin("t".into(), None, tx).unwrap();
        for seq in 1..=3 {
            assert_eq!(subs.on_event(event("t", seq)), Ok(None));
        }
        assert_eq!(subs.on_event(event("t", 4)), Err(Overflow));
        let mut out = VecDeque::new();
        subs.on_reply("t", request.generation, Ok(reply(0, "e", None)), &mut out);
        assert_eq!(seqs(&out), ["t#1", "t#2", "t#3"]);
        assert_eq!(subs.early_bytes, 0);
    }
}
