//! [`Commerce`]: the module's state and the home of its operations, which the files named after each
//! concept implement (`products`, `sessions`, `stream`, `showcase`, `viewers`, `engagement`, `chat`).
//! The adapters — REST (`rest`), native calls (`calls`), topic hooks (`lib`) — only translate to these.

use crate::ids::IdMaker;
use crate::live::LiveMap;
use crate::rate::RateLimits;
use crate::settings::Settings;

/// The live-commerce service of one node.
///
/// It keeps no [`Context`](chorus_core::module::Context): the node owns the module, so a context kept here
/// would be a reference cycle. Every operation takes it.
pub struct Commerce {
    /// Makes row ids.
    pub ids: IdMaker,
    /// Sessions in memory.
    pub live: LiveMap,
    /// Per-connection rate limits.
    pub limits: RateLimits,
    /// The settings it was made with.
    pub settings: Settings,
}

impl Commerce {
    /// A service with `settings`.
    pub fn new(settings: Settings) -> Self {
        Self { ids: IdMaker::default(), live: LiveMap::default(), limits: RateLimits::new(settings.clone()), settings }
    }
}
