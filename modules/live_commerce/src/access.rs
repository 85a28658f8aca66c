//! Who may do what, in one place:
//!
//! - the **owner** of a session is the identity whose subject is its `creatorId` (never a guest): only
//!   the owner changes its status, starts and ends the stream and showcases products;
//! - a **moderator** deletes chat messages: role `admin` or `moderator`, or the session's owner;
//! - a viewer is counted per user (token subject) or, for guests, per connection — the broker gives each
//!   guest connection its own subject, so the subject is the key either way. The owner watching their
//!   own session is a publisher and never counted.

use crate::model::SessionRecord;
use chorus_core::auth::Identity;

/// Roles that may delete any chat message.
const MODERATOR_ROLES: [&str; 2] = ["admin", "moderator"];

/// Whether `who` owns `session`.
pub fn is_owner(session: &SessionRecord, who: &Identity) -> bool {
    !who.guest && who.sub == session.creator_id
}

/// Whether `who` may delete chat messages of `session`.
pub fn is_moderator(session: &SessionRecord, who: &Identity) -> bool {
    is_owner(session, who) || (!who.guest && who.role.as_deref().is_some_and(|r| MODERATOR_ROLES.contains(&r)))
}

/// The key a viewer or clicker is counted under: the subject (unique per connection for guests).
pub fn viewer_key(who: &Identity) -> &str {
    &who.sub
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;
    use std::sync::Arc;

    fn who(sub: &str, role: Option<&str>) -> Identity {
        Identity { sub: sub.into(), name: None, role: role.map(Into::into), guest: false, claims: Arc::default() }
    }

    fn session() -> SessionRecord {
        SessionRecord {
            id: "s".into(),
            title: "t".into(),
            description: None,
            category: None,
            tags: vec![],
            stream_url: None,
            stream_key: None,
            status: Status::Live,
            creator_id: "1".into(),
            active_product_id: None,
            started_ms: None,
            ended_ms: None,
            created_ms: 0,
            updated_ms: 0,
            products: vec![],
        }
    }

    #[test]
    fn owners_and_moderators() {
        let s = session();
        assert!(is_owner(&s, &who("1", None)));
        assert!(!is_owner(&s, &who("2", None)));
        let mut guest = Identity::guest(1);
        guest.sub = "1".into();
        assert!(!is_owner(&s, &guest), "a guest never owns a session");
        assert!(is_moderator(&s, &who("1", None)));
        assert!(is_moderator(&s, &who("9", Some("moderator"))));
        assert!(is_moderator(&s, &who("9", Some("admin"))));
        assert!(!is_moderator(&s, &who("9", Some("user"))));
    }
}
