//! The module's own settings. Embedders pick them with [`crate::module_with`] ([`crate::module`]: the
//! defaults); the `chorus` binary sets `interactions_per_sec`, `accounts` and `agora` from its flags.

/// Live-commerce settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Reactions and product clicks one connection may send per second (a token bucket holding as many,
    /// so a burst of that size passes). Beyond it a call is refused with code 2004.
    pub interactions_per_sec: u32,
    /// Chat messages one connection may send per second (same bucket rule).
    pub messages_per_sec: u32,
    /// Whether the module serves accounts (`/api/auth`, `/api/users`). Off for deployments whose identity
    /// provider issues the tokens: those routes then answer 404.
    pub accounts: bool,
    /// The Agora project whose RTC tokens the stream routes issue; without it they answer 503.
    pub agora: Option<crate::agora::AgoraCredentials>,
}

impl Default for Settings {
    /// 20 reactions or clicks per second: faster than a person taps, slow enough that one client cannot
    /// flood a room of thousands. 5 chat messages per second: faster than anyone types. Accounts on, Agora
    /// not configured.
    fn default() -> Self {
        Self { interactions_per_sec: 20, messages_per_sec: 5, accounts: true, agora: None }
    }
}
