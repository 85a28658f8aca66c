//! [`Delivery`]: what a [`ResumingClient`](crate::ResumingClient) hands the application, in order.

use crate::close::CloseInfo;
use crate::error::ClientError;
use crate::event::Event;
use chorus_protocol::{Payload, Welcome};

/// One item of a [`ResumingClient`](crate::ResumingClient)'s stream
/// ([`next`](crate::ResumingClient::next)): events, and what happened to the connection and to each
/// subscription across a reconnect, in the order it happened.
///
/// A reconnect reads, in order: [`Disconnected`](Self::Disconnected) (with `reconnecting: true`), then
/// [`Reconnected`](Self::Reconnected) once a new connection is up, then per subscribed topic either
/// [`Resumed`](Self::Resumed) followed by that topic's events, or [`SubscriptionLost`](Self::SubscriptionLost).
/// Topics resume independently, so their items interleave.
#[derive(Debug)]
#[non_exhaustive]
pub enum Delivery {
    /// An event on a subscribed topic. Each `(epoch, seq)` is handed out at most once, even when a resumed
    /// subscription replays events the application already has.
    Event(Event),
    /// The connection was lost (the close code says why; `code: None` for a transport failure). With
    /// `reconnecting: true` the client is reconnecting; with `false` it has stopped (authentication
    /// refused, or [`ResumeOptions::max_attempts`](crate::ResumeOptions::max_attempts) exhausted, described
    /// by `info`) and the stream ends after this item.
    Disconnected {
        /// How the connection ended, or why the client gave up.
        info: CloseInfo,
        /// Whether the client is trying to reconnect.
        reconnecting: bool,
    },
    /// A new connection is up (the broker's `welcome`: a new `conn_id`, and possibly another node). The
    /// topics are being subscribed again.
    Reconnected(Welcome),
    /// `topic` is subscribed again on the new connection, from its last delivered position.
    Resumed {
        /// The topic.
        topic: String,
        /// `true`: every event after the last one delivered follows, in order, then live events; nothing
        /// was lost. `false`: events were missed and cannot be replayed (the topic's history no longer
        /// reaches back, or the new node or restarted broker runs another epoch); live events follow, and
        /// the application should reload the state the topic describes (see `snapshot`).
        recovered: bool,
        /// The module's snapshot of the topic's state, when its module provides one.
        snapshot: Option<Payload>,
    },
    /// Subscribing `topic` again was refused by the new connection (for instance 2005 forbidden, or 2001
    /// subscription limit). The topic is no longer subscribed and its events stop.
    SubscriptionLost {
        /// The topic.
        topic: String,
        /// The refusal.
        error: ClientError,
    },
}
