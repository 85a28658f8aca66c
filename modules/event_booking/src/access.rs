//! The access rule — the seed's "users can only receive updates for events they have access to", made
//! precise. One rule serves subscribing (native and seed dialect), reading an event, and booking it.
//!
//! - A **public** event is visible to everyone, guests included.
//! - A **private** event is visible to its creator, to identities whose `role` claim is `admin`, to the
//!   subjects in its `allowedUsers`, and to identities whose `role` is in its `allowedRoles`. Never to guests.
//! - Creating events needs `role` `admin` or `organizer`.
//! - Bookings are cancelled by their owner only.

use crate::model::EventRecord;
use chorus_core::auth::Identity;

/// The role that sees every event.
const ADMIN: &str = "admin";
/// Roles that may create events.
const CREATORS: [&str; 2] = [ADMIN, "organizer"];

/// Whether `who` may see `event` (read it, subscribe to its seat updates, book it).
pub fn can_view(event: &EventRecord, who: &Identity) -> bool {
    if !event.private {
        return true;
    }
    if who.guest {
        return false;
    }
    let role = who.role.as_deref();
    role == Some(ADMIN)
        || who.sub == event.created_by
        || event.allowed_users.contains(&who.sub)
        || role.is_some_and(|r| event.allowed_roles.iter().any(|a| a == r))
}

/// Whether `who` sees the access lists of `event` (its creator and admins).
pub fn can_see_acl(event: &EventRecord, who: &Identity) -> bool {
    !who.guest && (who.sub == event.created_by || who.role.as_deref() == Some(ADMIN))
}

/// Whether `who` may create events.
pub fn can_create(who: &Identity) -> bool {
    !who.guest && who.role.as_deref().is_some_and(|r| CREATORS.contains(&r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn who(sub: &str, role: Option<&str>) -> Identity {
        Identity { sub: sub.into(), name: None, role: role.map(Into::into), guest: false, claims: Arc::default() }
    }

    fn event(private: bool) -> EventRecord {
        EventRecord {
            id: 1,
            title: "t".into(),
            capacity: 10,
            private,
            allowed_users: vec!["ann".into()],
            allowed_roles: vec!["vip".into()],
            created_by: "org".into(),
            created_ms: 0,
        }
    }

    #[test]
    fn private_events_are_visible_to_listed_users_roles_creator_and_admins() {
        let private = event(true);
        assert!(can_view(&private, &who("ann", None)));
        assert!(can_view(&private, &who("zed", Some("vip"))));
        assert!(can_view(&private, &who("org", Some("organizer"))));
        assert!(can_view(&private, &who("root", Some("admin"))));
        assert!(!can_view(&private, &who("bob", Some("member"))));
        assert!(!can_view(&private, &who("bob", None)));
        assert!(!can_view(&private, &Identity::guest(7)));
        let public = event(false);
        assert!(can_view(&public, &who("bob", None)));
        assert!(can_view(&public, &Identity::guest(7)));
    }

    #[test]
    fn only_admins_and_organizers_create_and_only_creator_and_admins_see_lists() {
        assert!(can_create(&who("a", Some("admin"))));
        assert!(can_create(&who("o", Some("organizer"))));
        assert!(!can_create(&who("m", Some("member"))));
        assert!(!can_create(&who("m", None)));
        let e = event(true);
        assert!(can_see_acl(&e, &who("org", None)));
        assert!(can_see_acl(&e, &who("x", Some("admin"))));
        assert!(!can_see_acl(&e, &who("ann", None)));
    }
}
