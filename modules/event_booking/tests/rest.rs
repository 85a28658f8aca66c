//! The REST API on a real broker: events, bookings, cancellation, idempotency, access and every error.

use crate::support::{Rest, http, start, stop};
use serde_json::{Value, json};

#[tokio::test]
async fn events_are_created_by_organizers_and_read_with_their_seats() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let org = Rest::new(&server, "olga", Some("organizer"));
    let created = org.create_event(json!({"title": "Rust Meetup", "seatCapacity": 100})).await;
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.body["id"].as_u64().expect("numeric id");
    assert_eq!(created.body["title"], "Rust Meetup");
    assert_eq!(created.body["seatCapacity"], 100);
    assert_eq!(created.body["availableSeats"], 100);
    assert_eq!(created.body["private"], false);
    assert_eq!(created.body["createdBy"], "olga");
    crate::support::assert_timestamp(&json!({"timestamp": created.body["createdAt"]}));

    let second = Rest::new(&server, "root", Some("admin")).event("Second", 5).await;
    assert_eq!(second, id + 1, "ids are allocated in sequence");

    let member = Rest::new(&server, "mia", Some("member"));
    let read = member.get_event(id).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["id"], id);
    assert_eq!(read.body["availableSeats"], 100);
    assert_eq!(read.body["seatCapacity"], 100);
    assert!(read.body.get("allowedUsers").is_none(), "access lists are for the creator and admins");

    let refused = member.create_event(json!({"title": "Mine", "seatCapacity": 3})).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.body, json!({"message": "creating events needs the role admin or organizer"}));
    stop(server).await;
}

#[tokio::test]
async fn events_are_listed_and_public_ones_read_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let addr = server.http_addr;
    let org = Rest::new(&server, "olga", Some("organizer"));
    let public = org.event("Open Gig", 10).await;
    let private = org.create_event(json!({"title": "Backstage", "seatCapacity": 2, "private": true})).await;
    let private = private.body["id"].as_u64().expect("id");
    let ids = |answer: &crate::support::Answer| -> Vec<u64> {
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.body["events"].as_array().expect("events").iter().map(|e| e["id"].as_u64().unwrap()).collect()
    };

    let anonymous = http(addr, "GET", "/api/events", None, &[], None).await;
    assert_eq!(ids(&anonymous), [public], "without a token: the public events");
    assert_eq!(anonymous.body["events"][0]["availableSeats"], 10);
    assert!(anonymous.body["events"][0].get("allowedUsers").is_none());
    let member = http(addr, "GET", "/api/events", Some(&crate::support::token("mia", None)), &[], None).await;
    assert_eq!(ids(&member), [public], "a private event stays hidden from who may not see it");
    let admin = http(addr, "GET", "/api/events", Some(&crate::support::token("root", Some("admin"))), &[], None).await;
    assert_eq!(ids(&admin), [public, private]);

    let read = http(addr, "GET", &format!("/api/events/{public}"), None, &[], None).await;
    assert_eq!((read.status, read.body["title"].as_str()), (200, Some("Open Gig")), "{read:?}");
    let hidden = http(addr, "GET", &format!("/api/events/{private}"), None, &[], None).await;
    assert_eq!(hidden.status, 403, "{hidden:?}");
    let forged = http(addr, "GET", "/api/events", Some("not.a.jwt"), &[], None).await;
    assert_eq!(forged.status, 401, "a bad token is refused, not read as a guest: {forged:?}");
    stop(server).await;
}

#[tokio::test]
async fn bad_requests_get_a_status_and_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let addr = server.http_addr;
    let org = Rest::new(&server, "olga", Some("organizer"));
    let id = org.event("Gig", 2).await;
    let message = |answer: &crate::support::Answer| answer.body["message"].as_str().unwrap_or_default().to_owned();

    let no_token = http(addr, "POST", &format!("/api/events/{id}/bookings"), None, &[], Some("{\"seats\":1}")).await;
    assert_eq!(
        (no_token.status, message(&no_token).as_str()),
        (401, "an Authorization: Bearer <token> header is required")
    );
    let forged = http(addr, "GET", "/api/bookings", Some("not.a.jwt"), &[], None).await;
    assert_eq!(forged.status, 401);
    assert!(message(&forged).starts_with("invalid token"), "{forged:?}");
    let expired = crate::support::sign(&json!({"sub": "x", "exp": jsonwebtoken::get_current_timestamp() - 600}));
    let expired = http(addr, "GET", "/api/bookings", Some(&expired), &[], None).await;
    assert_eq!((expired.status, message(&expired).as_str()), (401, "token expired"));

    let raw = |method: &'static str, path: String, body: &'static str| {
        let token = org.token.clone();
        async move { http(addr, method, &path, Some(&token), &[], Some(body)).await }
    };
    let cases = [
        (raw("POST", "/api/events".into(), "{not json").await, 400, "request body is not valid JSON"),
        (raw("POST", "/api/events".into(), "").await, 400, "request body must be a JSON object"),
        (raw("POST", "/api/events".into(), "[1,2]").await, 400, "request body must be a JSON object"),
        (raw("POST", "/api/events".into(), r#"{"seatCapacity":5}"#).await, 400, "title is required"),
        (raw("POST", "/api/events".into(), r#"{"title":"x"}"#).await, 400, "seatCapacity is required"),
        (
            raw("POST", "/api/events".into(), r#"{"title":"x","seatCapacity":-4}"#).await,
            400,
            "seatCapacity must be an integer between 1 and 1000000",
        ),
        (raw("GET", "/api/events/abc".into(), "").await, 400, "eventId must be a positive integer"),
        (raw("GET", "/api/events/0".into(), "").await, 400, "eventId must be a positive integer"),
        (raw("GET", "/api/events/999".into(), "").await, 404, "event 999 not found"),
        (raw("POST", format!("/api/events/{id}/bookings"), "{}").await, 400, "seats is required"),
        (
            raw("POST", format!("/api/events/{id}/bookings"), r#"{"seats":0}"#).await,
            400,
            "seats must be an integer between 1 and 1000000",
        ),
        (
            raw("POST", format!("/api/events/{id}/bookings"), r#"{"seats":"2"}"#).await,
            400,
            "seats must be an integer between 1 and 1000000",
        ),
        (raw("POST", format!("/api/events/{id}/bookings"), "nope").await, 400, "request body is not valid JSON"),
        (raw("POST", "/api/events/999/bookings".into(), r#"{"seats":1}"#).await, 404, "event 999 not found"),
        (
            raw("POST", format!("/api/events/{id}/bookings"), r#"{"seats":3}"#).await,
            409,
            "not enough seats: 3 requested, 2 available",
        ),
        (raw("DELETE", "/api/bookings/bk_nope".into(), "").await, 404, "booking bk_nope not found"),
    ];
    for (answer, status, prefix) in cases {
        assert_eq!(answer.status, status, "{answer:?}");
        assert!(message(&answer).starts_with(prefix), "{answer:?} should start with {prefix:?}");
        assert_eq!(answer.body.as_object().map(|o| o.len()), Some(1), "errors are {{ message }} only: {answer:?}");
    }
    stop(server).await;
}

#[tokio::test]
async fn booking_cancelling_and_listing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let org = Rest::new(&server, "olga", Some("organizer"));
    let id = org.event("Opera", 5).await;
    let ann = Rest::new(&server, "ann", None);
    let bob = Rest::new(&server, "bob", None);

    let booked = ann.book(id, 3, None).await;
    assert_eq!(booked.status, 201, "{booked:?}");
    let booking_id = booked.body["bookingId"].as_str().expect("booking id").to_owned();
    assert!(booking_id.starts_with("bk_") && booking_id.len() == 35, "{booking_id}");
    assert_eq!(booked.body, json!({"bookingId": booking_id, "eventId": id, "seats": 3, "availableSeats": 2}));

    let too_many = bob.book(id, 3, None).await;
    assert_eq!(
        (too_many.status, &too_many.body),
        (409, &json!({"message": "not enough seats: 3 requested, 2 available"}))
    );
    let bobs = bob.book(id, 2, None).await;
    assert_eq!((bobs.status, bobs.body["availableSeats"].as_u64()), (201, Some(0)));
    assert_eq!(bob.book(id, 1, None).await.status, 409, "sold out");

    let stolen = bob.cancel(&booking_id).await;
    assert_eq!(
        (stolen.status, &stolen.body),
        (403, &json!({"message": format!("booking {booking_id} belongs to another user")}))
    );
    assert_eq!(ann.get_event(id).await.body["availableSeats"], 0, "a refused cancel returns nothing");

    let cancelled = ann.cancel(&booking_id).await;
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    assert_eq!(
        cancelled.body,
        json!({"bookingId": booking_id, "eventId": id, "seats": 3, "status": "cancelled", "availableSeats": 3})
    );
    assert_eq!(ann.get_event(id).await.body["availableSeats"], 3, "seats are returned");
    let again = ann.cancel(&booking_id).await;
    assert_eq!(
        (again.status, &again.body),
        (409, &json!({"message": format!("booking {booking_id} is already cancelled")}))
    );
    assert_eq!(ann.get_event(id).await.body["availableSeats"], 3, "a double cancel returns nothing");

    let later = ann.book(id, 1, None).await;
    assert_eq!(later.status, 201);
    let list = ann.bookings().await;
    assert_eq!(list.status, 200);
    let bookings = list.body["bookings"].as_array().expect("bookings array");
    assert_eq!(bookings.len(), 2);
    assert_eq!(bookings[0]["bookingId"], later.body["bookingId"], "newest first");
    assert_eq!((bookings[0]["status"].as_str(), bookings[0]["seats"].as_u64()), (Some("confirmed"), Some(1)));
    assert_eq!(bookings[1]["bookingId"], booking_id.as_str());
    assert_eq!(bookings[1]["status"], "cancelled");
    assert_eq!(bookings[1]["eventId"], id);
    crate::support::assert_timestamp(&json!({"timestamp": bookings[1]["createdAt"]}));
    crate::support::assert_timestamp(&json!({"timestamp": bookings[1]["cancelledAt"]}));
    assert!(bookings[0].get("cancelledAt").is_none());
    assert_eq!(bob.bookings().await.body["bookings"].as_array().map(Vec::len), Some(1), "only one's own bookings");
    stop(server).await;
}

#[tokio::test]
async fn an_idempotency_key_books_once_and_repeats_the_reply() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let id = Rest::new(&server, "olga", Some("organizer")).event("Ballet", 10).await;
    let ann = Rest::new(&server, "ann", None);

    let first = ann.book(id, 2, Some("order-1")).await;
    assert_eq!(first.status, 201);
    let second = ann.book(id, 2, Some("order-1")).await;
    assert_eq!(second, first, "same status, same body");
    assert_eq!(ann.get_event(id).await.body["availableSeats"], 8, "booked once");
    assert_eq!(ann.bookings().await.body["bookings"].as_array().map(Vec::len), Some(1));

    let other_body = ann.book(id, 3, Some("order-1")).await;
    assert_eq!(other_body.status, 422);
    assert_eq!(other_body.body["message"], "this Idempotency-Key was already used for a different request");
    let bob = book_as_bob_with_the_same_key(&server, id).await;
    assert_eq!(bob["availableSeats"], 6, "keys are per user");

    // Concurrent repeats of one key: exactly one booking; every answer is that booking or "in progress".
    let answers = futures_util::future::join_all((0..20).map(|_| ann.book(id, 1, Some("order-2")))).await;
    let winners: Vec<&Value> = answers.iter().filter(|a| a.status == 201).map(|a| &a.body).collect();
    assert!(!winners.is_empty());
    assert!(winners.iter().all(|w| *w == winners[0]), "one reply for one key");
    for a in answers.iter().filter(|a| a.status != 201) {
        assert_eq!(
            (a.status, a.body["message"].as_str()),
            (409, Some("a request with this Idempotency-Key is still in progress; retry later"))
        );
    }
    assert_eq!(ann.get_event(id).await.body["availableSeats"], 5);
    assert_eq!(ann.book(id, 1, Some("order-2")).await.body, *winners[0], "settled: the same reply");

    // A refusal is repeated too, even after seats free up.
    let full = ann.book(id, 6, Some("order-3")).await;
    assert_eq!(full.status, 409);
    let first_id = first.body["bookingId"].as_str().unwrap().to_owned();
    assert_eq!(ann.cancel(&first_id).await.status, 200);
    assert_eq!(ann.book(id, 6, Some("order-3")).await, full);
    stop(server).await;
}

async fn book_as_bob_with_the_same_key(server: &chorus_core::server::Server, id: u64) -> Value {
    let bob = Rest::new(server, "bob", None);
    let answer = bob.book(id, 2, Some("order-1")).await;
    assert_eq!(answer.status, 201);
    answer.body
}

#[tokio::test]
async fn private_events_are_visible_to_listed_users_and_roles_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let org = Rest::new(&server, "olga", Some("organizer"));
    let created = org
        .create_event(json!({"title": "Board", "seatCapacity": 4, "private": true,
            "allowedUsers": ["ann", 42], "allowedRoles": ["vip"]}))
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["private"], true);
    assert_eq!(created.body["allowedUsers"], json!(["ann", "42"]));
    assert_eq!(created.body["allowedRoles"], json!(["vip"]));
    let id = created.body["id"].as_u64().unwrap();

    for (sub, role) in [("ann", None), ("zed", Some("vip")), ("42", None), ("root", Some("admin")), ("olga", None)] {
        let user = Rest::new(&server, sub, role);
        let read = user.get_event(id).await;
        assert_eq!(read.status, 200, "{sub} may see it: {read:?}");
    }
    assert_eq!(
        Rest::new(&server, "root", Some("admin")).get_event(id).await.body["allowedUsers"],
        json!(["ann", "42"])
    );
    assert!(Rest::new(&server, "ann", None).get_event(id).await.body.get("allowedUsers").is_none());
    let bob = Rest::new(&server, "bob", Some("member"));
    let hidden = bob.get_event(id).await;
    assert_eq!((hidden.status, &hidden.body), (403, &json!({"message": format!("no access to event {id}")})));
    assert_eq!(bob.book(id, 1, None).await.status, 403, "no booking without access");
    assert_eq!(Rest::new(&server, "zed", Some("vip")).book(id, 1, None).await.status, 201);
    stop(server).await;
}
