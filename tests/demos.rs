//! The first five minutes: the landing page at `/`, `--dev` (generated secret, demo tokens), the Socket.IO
//! browser bundle, and every demo page opened bare — at the path README links — in headless Chromium:
//! with `--dev` each reaches a live state by itself, without it each explains what to pass.

use crate::support::{Broker, http_request, json_session, token};
use chorus_testkit::chromium::{Chromium, Page};
use chorus_testkit::http::request;
use serde_json::{Value, json};

/// The demo pages, as README links them.
const DEMO_PATHS: [&str; 3] = ["/demo/booking", "/demo/live", "/demo/study-groups"];

/// What a demo page says about its connection.
const STATUS: &str = "({ status: text('status'), words: text('status-words') })";

/// `POST /demo/token` with `body`; returns (status, JSON body).
async fn mint(broker: &Broker, body: Option<&str>) -> (u16, Value) {
    let answer = request(broker.http, "POST", "/demo/token", &[("Content-Type", "application/json")], body)
        .await
        .expect("POST /demo/token");
    (answer.status, answer.json())
}

/// Takes a screenshot and checks it is a PNG of some size.
async fn screenshot(page: &mut Page) {
    let png = page.screenshot().await.expect("screenshot");
    assert!(png.len() > 1000, "a page screenshot of {} bytes is suspiciously small", png.len());
}

#[test]
fn readme_links_exactly_the_demo_pages_tested_here() {
    let readme = include_str!("../README.md");
    let mut linked: Vec<&str> = readme
        .split("http://127.0.0.1:7400")
        .skip(1)
        .filter_map(|rest| rest.split(|c: char| c == '`' || c == ')' || c.is_whitespace()).next())
        .filter(|path| path.starts_with("/demo/"))
        .collect();
    linked.sort_unstable();
    linked.dedup();
    let mut tested = DEMO_PATHS.to_vec();
    tested.sort_unstable();
    assert_eq!(linked, tested, "README's demo links and the pages these tests open bare must be the same");
}

#[tokio::test]
async fn the_landing_page_describes_the_node_and_links_the_demos() {
    let broker = Broker::start(&[]).await;
    let page = request(broker.http, "GET", "/", &[], None).await.expect("GET /");
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    for expected in [
        format!("<span id=\"version\">{}</span>", env!("CARGO_PKG_VERSION")),
        format!("<td id=\"http-addr\">{}</td>", broker.http),
        format!("<td id=\"quic-addr\">{}</td>", broker.quic),
        format!("<code id=\"quic-fingerprint\">{}</code>", broker.fingerprint),
        "<td id=\"store\">embedded</td>".to_owned(),
        "<td id=\"socketio\">/socket.io/</td>".to_owned(),
        "data-dev=\"false\"".to_owned(),
        "modules/study_groups/README.md".to_owned(),
        "modules/movie_voting/README.md".to_owned(),
        "protocol/PROTOCOL.md".to_owned(),
        "<a href=\"/metrics\">".to_owned(),
        "<a href=\"/ready\">".to_owned(),
    ] {
        assert!(page.body.contains(&expected), "the landing page lacks {expected:?}:\n{}", page.body);
    }
    for path in DEMO_PATHS {
        assert!(page.body.contains(&format!("href=\"{path}\"")), "no link to {path}");
    }
    // Machine clients' paths answer as before.
    assert_eq!(broker.get("/health").await, (200, "ok".to_owned()));
    let (status, body) = http_request(broker.http, "GET", "/no-such-path", &[], None).await.unwrap();
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body).unwrap()),
        (404, json!({"message": "no route for GET /no-such-path"}))
    );
}

#[tokio::test]
async fn demo_tokens_are_minted_only_in_dev_mode() {
    let production = Broker::start(&[]).await;
    let (status, body) = mint(&production, None).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["message"].as_str().unwrap().contains("--dev"), "{body}");

    let dev = Broker::start(&["--dev"]).await;
    let (status, body) = mint(&dev, Some(r#"{"sub":"ann","name":"Ann","role":"organizer"}"#)).await;
    assert_eq!((status, &body["sub"], &body["expiresIn"]), (200, &json!("ann"), &json!(900)), "{body}");
    json_session(&dev, body["token"].as_str()).await;
    let (status, body) = mint(&dev, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["sub"].as_str().unwrap().starts_with("dev-"), "{body}");
    for (bad, says) in [
        ("{", "not JSON"),
        ("[]", "JSON object"),
        (r#"{"admin":true}"#, "unknown field `admin`"),
        (r#"{"sub":3}"#, "`sub`"),
        (r#"{"role":""}"#, "`role`"),
    ] {
        let (status, body) = mint(&dev, Some(bad)).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(body["message"].as_str().unwrap().contains(says), "{bad}: {body}");
    }
    let landing = dev.get("/").await.1;
    assert!(landing.contains("data-dev=\"true\""), "{landing}");
}

#[tokio::test]
async fn dev_mode_without_a_secret_generates_one_and_prints_it_once() {
    let mut broker = Broker::start_without_secret(&["--dev"]).await;
    let mut printed = Vec::new();
    while printed.len() < 3 {
        let line = tokio::time::timeout(std::time::Duration::from_secs(10), broker.stdout.recv())
            .await
            .expect("the dev notice in time")
            .expect("stdout open");
        printed.push(line);
    }
    assert!(printed[0].contains(&format!("http://127.0.0.1:{}/", broker.http.port())), "{printed:?}");
    let secret = printed[1].rsplit(' ').next().unwrap().to_owned();
    assert_eq!(secret.len(), 64, "{printed:?}");
    assert!(printed[2].contains(&format!("mint --secret {secret}")), "{printed:?}");
    // The printed secret is the one the broker verifies with, and minted tokens carry it too.
    let claims = json!({"sub": "alice", "exp": crate::support::now() + 60});
    let signed = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    json_session(&broker, Some(&signed)).await;
    let (status, body) = mint(&broker, None).await;
    assert_eq!(status, 200, "{body}");
    json_session(&broker, body["token"].as_str()).await;
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), broker.stdout.recv()).await.is_err(),
        "the secret is printed once"
    );
}

#[tokio::test]
async fn the_socketio_browser_client_is_served_at_the_gateway_path() {
    let broker = Broker::start(&["--socketio-path", "/rt/"]).await;
    for path in ["/rt/socket.io.min.js", "/rt/socket.io.js"] {
        let answer = request(broker.http, "GET", path, &[], None).await.unwrap();
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(answer.header("content-type"), Some("application/javascript; charset=utf-8"));
        assert!(answer.body.starts_with("/*!\n * Socket.IO v4.8.3\n"), "{path} keeps the license header");
        assert!(answer.body.len() > 40_000, "{path} is the whole bundle");
    }
    assert_eq!(broker.get("/socket.io/socket.io.min.js").await.0, 404, "served at --socketio-path only");
    let script = broker.get("/demo/demo.js").await.1;
    assert!(script.starts_with(r#"const CHORUS_BROKER = {"dev":false,"socketioPath":"/rt/""#), "{script}");

    // Without the gateway there is no bundle, and the pages are told so (they say it instead of connecting).
    let off = Broker::start(&["--disable-socketio"]).await;
    assert_eq!(off.get("/socket.io/socket.io.min.js").await.0, 404);
    let script = off.get("/demo/demo.js").await.1;
    assert!(script.starts_with(r#"const CHORUS_BROKER = {"dev":false,"socketioPath":null"#), "{script}");
}

#[tokio::test]
async fn demo_pages_opened_bare_in_dev_mode_go_live_by_themselves() {
    let mut broker = Broker::start(&["--dev"]).await;
    let base = format!("http://{}", broker.http);
    let chromium = Chromium::launch().await.expect("start chromium");

    // The landing page, as a browser shows it.
    let mut landing = chromium.open(&format!("{base}/")).await.expect("open /");
    let shown = landing
        .until(
            "document.querySelectorAll('#modules li').length === 4",
            "({ dev: document.getElementById('dev-mode').dataset.dev, \
               demos: [...document.querySelectorAll('a.demo')].map((a) => a.getAttribute('href')) })",
        )
        .await
        .expect("the landing page lists the modules");
    assert_eq!(shown, json!({"dev": "true", "demos": ["/demo/booking", "/demo/live", "/demo/study-groups"]}));
    screenshot(&mut landing).await;

    // Booking: a demo event of 10 seats, live; a booking by someone else and the page's own button.
    let mut booking = chromium.open(&format!("{base}/demo/booking")).await.expect("open /demo/booking");
    let seats = "({ available: text('available'), capacity: text('capacity'), event: text('event-id'), \
                   status: text('status'), result: text('book-result') })";
    let shown = booking
        .until("text('status') === 'connected' && text('available') === '10'", seats)
        .await
        .expect("the booking page goes live");
    assert_eq!(shown["capacity"], "10");
    screenshot(&mut booking).await;
    let event = shown["event"].as_str().expect("event id shown").to_owned();
    let guest = token(json!({"sub": "ann"}));
    let answer = request(
        broker.http,
        "POST",
        &format!("/api/events/{event}/bookings"),
        &[("Authorization", &format!("Bearer {guest}")), ("Content-Type", "application/json")],
        Some(r#"{"seats":3}"#),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 201, "{}", answer.body);
    booking.until("text('available') === '7'", seats).await.expect("the page follows a booking");
    booking.evaluate("document.getElementById('book').click()").await.unwrap();
    let shown = booking
        .until("text('available') === '6' && (text('book-result') || '').startsWith('booked bk_')", seats)
        .await
        .expect("the page's own booking");
    assert_eq!(shown["status"], "connected");

    // Live commerce: a live demo session; the viewer is counted, the creator is not; a reaction counts.
    let mut live = chromium.open(&format!("{base}/demo/live")).await.expect("open /demo/live");
    let stats = "({ viewers: text('viewer-count'), total: text('reaction-total'), counts: text('reaction-counts'), \
                   showcased: text('showcased'), status: text('status'), \
                   showcase: document.querySelectorAll('.showcase').length })";
    let shown = live
        .until("text('status') === 'live' && text('viewer-count') === '1' && document.querySelectorAll('.showcase').length === 3", stats)
        .await
        .expect("the live page joins");
    assert_eq!(shown["total"], "0");
    screenshot(&mut live).await;
    live.evaluate("document.querySelector('.react[data-type=heart]').click()").await.unwrap();
    let shown = live.until("text('reaction-total') === '1'", stats).await.expect("a reaction updates the stats");
    assert_eq!(shown["counts"], "heart 1");
    live.evaluate("document.querySelector('.showcase').click()").await.unwrap();
    let shown = live.until("text('showcased') === 'Espresso cup'", stats).await.expect("the creator showcases");
    assert_eq!(shown["viewers"], "1", "the creator's connection is not counted");
    live.evaluate(
        "document.getElementById('chat-text').value = 'is it dishwasher safe?'; \
         document.getElementById('chat').requestSubmit()",
    )
    .await
    .unwrap();
    let messages = "[...document.querySelectorAll('#messages li')].map((li) => li.textContent)";
    let shown = live.until("document.querySelectorAll('#messages li').length === 1", messages).await.expect("chat");
    assert_eq!(shown, json!(["Demo viewer: is it dishwasher safe?"]));

    // Study groups: a started session; the facilitator is present; chat arrives.
    let mut study = chromium.open(&format!("{base}/demo/study-groups")).await.expect("open /demo/study-groups");
    let state = "({ status: text('status'), session: text('session-status'), round: text('round-status'), \
                   presence: [...document.querySelectorAll('#presence li')].map((li) => li.textContent), \
                   messages: [...document.querySelectorAll('#messages li')].map((li) => li.textContent) })";
    let shown = study
        .until("text('status') === 'live' && document.querySelectorAll('#presence li').length === 1", state)
        .await
        .expect("the study page joins");
    assert_eq!((&shown["session"], &shown["presence"]), (&json!("RUNNING"), &json!(["Demo facilitator"])));
    screenshot(&mut study).await;
    study
        .evaluate(
            "document.getElementById('chat-text').value = 'hello from the demo'; \
             document.getElementById('chat').requestSubmit()",
        )
        .await
        .unwrap();
    let shown = study.until("document.querySelectorAll('#messages li').length === 1", state).await.expect("chat");
    assert_eq!(shown["messages"], json!(["Demo facilitator: hello from the demo"]));
    study.evaluate("document.getElementById('advance').click()").await.unwrap();
    study.until("text('round-status') === 'VOTING'", state).await.expect("the round advances");

    // A broker restart: the booking page says why it lost the connection, then reconnects by itself.
    let addr = broker.http.to_string();
    broker.terminate();
    let shown = booking.until("text('status') === 'disconnected'", STATUS).await.expect("the page notices");
    assert!(shown["words"].as_str().unwrap().contains("restarting or shutting down"), "{shown}");
    broker.child.wait().await.expect("the broker stops");
    let _restarted = Broker::start_at(broker.data_dir, &addr, &["--dev"]).await;
    let shown = booking.until("text('status') === 'connected'", STATUS).await.expect("the page reconnects");
    assert!(shown["words"].as_str().unwrap().starts_with("Connected"), "{shown}");
    booking.until("text('available') === '6'", STATUS).await.expect("the count survives the restart");
}

#[tokio::test]
async fn demo_pages_opened_bare_without_dev_mode_explain_what_to_pass() {
    let broker = Broker::start(&[]).await;
    let base = format!("http://{}", broker.http);
    let chromium = Chromium::launch().await.expect("start chromium");
    for (path, url) in [
        ("/demo/booking", "/demo/booking?eventId=<id>&token=<token>"),
        ("/demo/live", "/demo/live?sessionId=<session id>&creatorToken=<token>"),
        ("/demo/study-groups", "/demo/study-groups?sessionId=<sessionId>&groupId=g1&token=<token>"),
    ] {
        let mut page = chromium.open(&format!("{base}{path}")).await.expect("open the page");
        let shown = page
            .until(
                "!document.getElementById('guidance').hidden",
                "({ reason: text('guidance-reason'), url: text('guidance-url'), status: text('status'), \
                   steps: document.querySelectorAll('#guidance-steps li').length })",
            )
            .await
            .unwrap_or_else(|e| panic!("{path} shows guidance: {e}"));
        assert_eq!(shown["url"], format!("{base}{url}"), "{path}");
        assert_eq!(shown["status"], "waiting", "{path}");
        assert!(shown["reason"].as_str().unwrap().contains("not in dev mode (--dev)"), "{path}: {shown}");
        assert!(shown["steps"].as_u64().unwrap() >= 3, "{path}: {shown}");
        screenshot(&mut page).await;
    }
    // The dev helpers stay closed, so the pages cannot mint anything.
    assert_eq!(mint(&broker, None).await.0, 404);
    let mut partial = chromium.open(&format!("{base}/demo/booking?eventId=1")).await.expect("open");
    let reason = partial
        .until("!document.getElementById('guidance').hidden", "text('guidance-reason')")
        .await
        .expect("partial parameters are explained too");
    assert!(reason.as_str().unwrap().contains("missing token"), "{reason}");
}
