//! The vocabulary of one Socket.IO namespace: which emitted events subscribe the socket to a topic, leave
//! one, or call a module. A module crate builds its [`Namespace`] from plain functions of the event
//! arguments; the gateway does the rest, so the module itself only ever sees topics, calls and identities.

use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// Maps an event's arguments to a topic: `None` when the arguments are not this binding's (the next binding
/// of the same event is tried), `Some(Err(message))` when they are but are invalid.
pub type TopicOf = Arc<dyn Fn(&Value) -> Option<Result<String, String>> + Send + Sync>;

/// What an event does.
#[derive(Clone)]
pub enum Route {
    /// Subscribe the socket to the topic (the owning module's `authorize`, then `snapshot`; an
    /// `{event, data}` snapshot is emitted to the socket).
    Subscribe(TopicOf),
    /// Unsubscribe the socket from the topic.
    Unsubscribe(TopicOf),
    /// Call a module method (`<module>.<method>`); its reply is the acknowledgement.
    Call(String),
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Subscribe(_) => f.write_str("Subscribe"),
            Self::Unsubscribe(_) => f.write_str("Unsubscribe"),
            Self::Call(method) => write!(f, "Call({method})"),
        }
    }
}

/// One Socket.IO namespace as the gateway serves it.
#[derive(Clone, Debug)]
pub struct Namespace {
    pub(crate) name: String,
    pub(crate) require_token: bool,
    pub(crate) routes: Vec<(String, Route)>,
    pub(crate) fallback: Option<String>,
}

impl Namespace {
    /// A namespace (`"/"` or `"/name"`) with no events bound yet; guests may connect.
    pub fn new(name: &str) -> Self {
        Self { name: name.to_owned(), require_token: false, routes: Vec::new(), fallback: None }
    }

    /// Refuses connections without a token (`connect_error`); an invalid token is always refused.
    pub fn require_token(mut self) -> Self {
        self.require_token = true;
        self
    }

    /// Binds `event` to a subscription to the topic its arguments name.
    pub fn subscribe(
        mut self,
        event: &str,
        topic: impl Fn(&Value) -> Option<Result<String, String>> + Send + Sync + 'static,
    ) -> Self {
        self.routes.push((event.to_owned(), Route::Subscribe(Arc::new(topic))));
        self
    }

    /// Binds `event` to leaving the topic its arguments name.
    pub fn unsubscribe(
        mut self,
        event: &str,
        topic: impl Fn(&Value) -> Option<Result<String, String>> + Send + Sync + 'static,
    ) -> Self {
        self.routes.push((event.to_owned(), Route::Unsubscribe(Arc::new(topic))));
        self
    }

    /// Binds `event` to the module call `method` (`<module>.<method>`).
    pub fn call(mut self, event: &str, method: &str) -> Self {
        self.routes.push((event.to_owned(), Route::Call(method.to_owned())));
        self
    }

    /// Any event bound to nothing else calls `<module>.<event>`.
    pub fn calls(mut self, module: &str) -> Self {
        self.fallback = Some(module.to_owned());
        self
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds `other`'s bindings to this namespace (two modules serving one namespace). Its bindings are
    /// tried after this one's; the first fallback stays.
    pub(crate) fn merge(&mut self, other: Namespace) {
        self.require_token |= other.require_token;
        self.routes.extend(other.routes);
        if self.fallback.is_none() {
            self.fallback = other.fallback;
        }
    }

    /// The routes bound to `event`, in order.
    pub(crate) fn routes_of<'a>(&'a self, event: &'a str) -> impl Iterator<Item = &'a Route> + 'a {
        self.routes.iter().filter(move |(e, _)| e == event).map(|(_, r)| r)
    }
}

/// Checks a namespace name: `/`, or `/` followed by printable characters.
pub(crate) fn valid_name(name: &str) -> bool {
    name.starts_with('/')
        && name.len() <= chorus_protocol::socketio::MAX_NAMESPACE_BYTES
        && !name.chars().any(|c| c.is_control() || c == ',')
}
