//! The Socket.IO gateway of the real binary, driven by the real client libraries: the seeds' own
//! `socket.io-client` snippets (seeds 000 to 003) as written, the movie module's calls as acknowledged
//! emits on every transport, `python-socketio`, a room shared with native WebSocket and QUIC clients, and
//! two nodes on one `redis-server`.

use crate::support::*;
use chorus_client::{Client, ConnectOptions, Payload};
use chorus_testkit::socketio::ClientProcess;
use serde_json::{Value, json};
use std::time::Duration;

/// Longest wait for one event a native client expects.
const WAIT: Duration = Duration::from_secs(20);

fn url(broker: &Broker) -> String {
    format!("http://{}", broker.http)
}

async fn scenario(name: &str, options: Value) -> Vec<Value> {
    let client = ClientProcess::node(name, &options).unwrap_or_else(|e| panic!("{e:#}"));
    client.finish().await.unwrap_or_else(|e| panic!("{e:#}"))
}

fn ann() -> String {
    token(json!({ "sub": "ann", "name": "Ann" }))
}

#[tokio::test]
async fn seed_000_client_snippet_joins_and_sees_updates() {
    let broker = Broker::start(&[]).await;
    let lines = scenario("seed-000", json!({ "url": url(&broker), "token": ann() })).await;
    assert_eq!(lines.last(), Some(&json!({ "ok": "seed-000" })));
}

#[tokio::test]
async fn seed_001_client_snippets_join_and_report_errors() {
    let broker = Broker::start(&[]).await;
    let options = json!({ "url": url(&broker), "token": ann() });
    assert_eq!(scenario("seed-001-error", options.clone()).await.last(), Some(&json!({ "ok": "seed-001-error" })));
    assert_eq!(scenario("seed-001-flow", options).await.last(), Some(&json!({ "ok": "seed-001-flow" })));
}

/// Seed 003's frontend flow against chorus alone (accounts, products, a session, the stream, a viewer on
/// the real `socket.io-client` with the token chorus issued, the end, analytics and conversion figures).
#[tokio::test]
async fn seed_003_frontend_flow_from_registration_to_analytics() {
    let broker = Broker::start(&[]).await;
    let lines = scenario("commerce-flow", json!({ "url": url(&broker) })).await;
    assert_eq!(lines.last().map(|l| &l["ok"]), Some(&json!("commerce-flow")), "{lines:?}");
}

#[tokio::test]
async fn seed_002_client_snippets_run_against_study_groups() {
    let broker = Broker::start(&[]).await;
    let tokens = json!({
        "fay": token(json!({ "sub": "fay", "name": "Fay" })),
        "max": token(json!({ "sub": "max", "name": "Max" })),
    });
    let options = json!({ "url": url(&broker), "tokens": tokens });
    assert_eq!(scenario("seed-002", options).await.last(), Some(&json!({ "ok": "seed-002" })));
}

#[tokio::test]
async fn seed_003_client_snippets_run_against_live_commerce() {
    let broker = Broker::start(&[]).await;
    let options = json!({
        "url": url(&broker),
        "creatorToken": token(json!({ "sub": "7", "name": "Cleo" })),
        "creatorSub": 7,
        "viewerToken": token(json!({ "sub": "8", "name": "Vic" })),
        "viewerSub": 8,
    });
    assert_eq!(scenario("seed-003", options).await.last(), Some(&json!({ "ok": "seed-003" })));
}

#[tokio::test]
async fn movie_calls_are_acknowledged_emits_on_every_transport() {
    let broker = Broker::start(&[]).await;
    for (transports, expected) in
        [(json!(["polling"]), "polling"), (json!(["websocket"]), "websocket"), (Value::Null, "websocket")]
    {
        let options = json!({ "url": url(&broker), "token": ann(), "name": "Ann", "transports": transports });
        let lines = scenario("movie-calls", options).await;
        assert_eq!(lines.last(), Some(&json!({ "ok": "movie-calls", "transport": expected })));
    }
    let metrics = broker.metrics().await;
    assert!(metrics.get("chorus_socketio_upgrades_total") >= 1.0, "the default transport list upgrades");
}

#[tokio::test]
async fn a_bad_token_is_refused_with_connect_error() {
    let broker = Broker::start(&[]).await;
    let options = json!({
        "url": url(&broker),
        "namespace": "/",
        "badToken": format!("{}x", ann()),
    });
    assert_eq!(scenario("refused-auth", options).await.last(), Some(&json!({ "ok": "refused-auth" })));
    assert!(broker.metrics().await.get("chorus_socketio_connect_refusals_total{reason=\"invalid_token\"}") >= 1.0);
}

#[tokio::test]
async fn a_client_reconnects_by_itself_when_the_broker_restarts() {
    let mut first = Broker::start(&[]).await;
    let addr = first.http.to_string();
    let options =
        json!({ "url": url(&first), "token": ann(), "topic": "again/room", "expect": { "after": "restart" } });
    let mut client = ClientProcess::node("reconnect", &options).unwrap_or_else(|e| panic!("{e:#}"));
    let before = client.ready().await.unwrap_or_else(|e| panic!("{e:#}"));
    first.terminate();
    first.child.wait().await.expect("the broker stops");
    let second = Broker::start_at(first.data_dir, &addr, &[]).await;
    client.go().await.expect("go");
    let after = client.ready().await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_ne!(before["sid"], after["sid"], "a new socket after the restart");
    let publisher = native(&second, false).await;
    publisher
        .publish("again/room", Payload::from_value(&json!({ "after": "restart" })).unwrap())
        .await
        .expect("publish");
    client.go().await.expect("go");
    let lines = client.finish().await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(lines.last(), Some(&json!({ "ok": "reconnect" })));
}

#[tokio::test]
async fn python_socketio_client_connects_calls_and_receives() {
    let broker = Broker::start(&[]).await;
    let options = json!({ "url": url(&broker), "token": ann(), "name": "Ann", "topic": "py/room" });
    let client = ClientProcess::python(&options).unwrap_or_else(|e| panic!("{e:#}"));
    let lines = client.finish().await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(lines.last().and_then(|l| l.get("ok")), Some(&json!("python")));
}

/// A native client on `broker` over WebSocket or QUIC.
async fn native(broker: &Broker, quic: bool) -> Client {
    let options = if quic {
        ConnectOptions::quic(broker.quic, "localhost").pin_sha256(broker.fingerprint.clone())
    } else {
        ConnectOptions::websocket(broker.ws_url(""))
    };
    Client::connect(options.token(ann()).request_timeout(WAIT)).await.expect("native client connects")
}

async fn next_json(client: &Client) -> Value {
    let event = tokio::time::timeout(WAIT, client.next_event()).await.expect("an event in time").expect("open");
    event.payload.to_json()
}

/// The Socket.IO client sees what native WS and QUIC clients publish, and they see its publish.
async fn shared_topic(socketio: &Broker, natives: &Broker, topic: &str) {
    let ws = native(natives, false).await;
    let quic = native(natives, true).await;
    ws.subscribe(topic).await.expect("ws subscribes");
    quic.subscribe(topic).await.expect("quic subscribes");
    let expect = json!([{ "from": "ws" }, { "from": "quic" }]);
    let options = json!({ "url": url(socketio), "token": ann(), "topic": topic, "expect": expect });
    let mut client = ClientProcess::node("shared-topic", &options).unwrap_or_else(|e| panic!("{e:#}"));
    client.ready().await.unwrap_or_else(|e| panic!("{e:#}"));
    client.go().await.expect("go");
    ws.publish(topic, Payload::from_value(&json!({ "from": "ws" })).unwrap()).await.expect("ws publishes");
    assert_eq!(next_json(&ws).await, json!({ "from": "ws" }));
    assert_eq!(next_json(&quic).await, json!({ "from": "ws" }));
    quic.publish(topic, Payload::from_value(&json!({ "from": "quic" })).unwrap()).await.expect("quic publishes");
    assert_eq!(next_json(&ws).await, json!({ "from": "quic" }));
    assert_eq!(next_json(&quic).await, json!({ "from": "quic" }));
    client.ready().await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(next_json(&ws).await, json!({ "from": "socket.io" }));
    assert_eq!(next_json(&quic).await, json!({ "from": "socket.io" }));
    client.go().await.expect("go");
    let lines = client.finish().await.unwrap_or_else(|e| panic!("{e:#}"));
    let events = &lines.last().expect("a result line")["events"];
    let seqs: Vec<u64> = events.as_array().expect("events").iter().map(|e| e["seq"].as_u64().expect("seq")).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "events in topic order: {seqs:?}");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), ws.next_event()).await.is_err(),
        "each publish arrives once"
    );
}

#[tokio::test]
async fn socketio_ws_and_quic_clients_share_a_topic() {
    let broker = Broker::start(&[]).await;
    shared_topic(&broker, &broker, "mixed/room").await;
}

#[tokio::test]
async fn socketio_client_on_node_b_gets_node_a_publishes_once() {
    let redis = RedisServer::start(&[]).await.expect("redis-server (Debian package redis-server) starts");
    let url = redis.url();
    let mut nodes = Vec::new();
    for name in ["node-a", "node-b"] {
        nodes.push(Broker::start(&["--redis-url", &url, "--store", "redis", "--node-id", name]).await);
    }
    shared_topic(&nodes[1], &nodes[0], "cluster/room").await;
}

/// Engine.IO and Socket.IO at the packet level, with a raw HTTP client: every malformed request gets
/// Engine.IO's coded refusal or closes only its own session.
mod bad_input {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    const PATH: &str = "/socket.io/?EIO=4&transport=polling";

    async fn request(broker: &Broker, method: &str, query: &str, body: Option<&str>) -> (u16, String) {
        let path = format!("/socket.io/?EIO=4&transport=polling{query}");
        http_request(broker.http, method, &path, &[("Content-Type", "text/plain;charset=UTF-8")], body)
            .await
            .expect("HTTP request")
    }

    /// A polling session with the root namespace connected; returns its sid.
    async fn session(broker: &Broker) -> String {
        let (status, open) = broker.get(PATH).await;
        assert_eq!(status, 200, "{open}");
        let open: Value = serde_json::from_str(open.strip_prefix('0').expect("open packet")).expect("open data");
        let sid = open["sid"].as_str().expect("sid").to_owned();
        assert_eq!(request(broker, "POST", &format!("&sid={sid}"), Some("40")).await, (200, "ok".to_owned()));
        let (status, connected) = request(broker, "GET", &format!("&sid={sid}"), None).await;
        assert_eq!(status, 200);
        assert!(connected.starts_with("40{\"sid\":"), "{connected}");
        sid
    }

    fn refusal(code: u8, message: &str) -> (u16, Value) {
        (400, json!({ "code": code, "message": message }))
    }

    async fn refused(broker: &Broker, method: &str, path: &str) -> (u16, Value) {
        let (status, body) = http_request(broker.http, method, path, &[], None).await.expect("HTTP request");
        (status, serde_json::from_str(&body).unwrap_or_else(|_| panic!("JSON refusal, got {body:?}")))
    }

    #[tokio::test]
    async fn engine_io_refusals_carry_their_codes() {
        let broker = Broker::start(&[]).await;
        let cases = [
            ("GET", "/socket.io/?EIO=3&transport=polling", refusal(5, "Unsupported protocol version")),
            ("GET", "/socket.io/?transport=polling", refusal(5, "Unsupported protocol version")),
            ("GET", "/socket.io/?EIO=4&transport=flash", refusal(0, "Transport unknown")),
            ("POST", "/socket.io/?EIO=4&transport=polling", refusal(2, "Bad handshake method")),
            ("GET", "/socket.io/?EIO=4&transport=polling&sid=nope", refusal(1, "Session ID unknown")),
        ];
        for (method, path, expected) in cases {
            assert_eq!(refused(&broker, method, path).await, expected, "{method} {path}");
        }
        assert!(broker.metrics().await.get("chorus_socketio_errors_total{reason=\"unknown_sid\"}") >= 1.0);
    }

    #[tokio::test]
    async fn an_oversized_body_is_413_and_a_malformed_packet_closes_only_its_session() {
        let broker = Broker::start(&["--socketio-max-http-buffer-bytes", "2048"]).await;
        let bystander = session(&broker).await;
        let sid = session(&broker).await;
        let big = format!("42[\"x\",\"{}\"]", "a".repeat(4096));
        assert_eq!(request(&broker, "POST", &format!("&sid={sid}"), Some(&big)).await.0, 413);

        let other = session(&broker).await;
        assert_eq!(request(&broker, "POST", &format!("&sid={other}"), Some("4{not a packet")).await.0, 200);
        let after = request(&broker, "GET", &format!("&sid={other}"), None).await;
        let unknown = (400, refusal(1, "Session ID unknown").1.to_string());
        assert!(after == (200, "1".to_owned()) || after == unknown, "the session is closed: {after:?}");

        assert_eq!(request(&broker, "POST", &format!("&sid={bystander}"), Some("42[\"ping\"]")).await.0, 200);
        let (status, body) = request(&broker, "GET", &format!("&sid={bystander}"), None).await;
        assert_eq!(status, 200);
        assert!(body.contains("\"error\""), "the bystander's session still answers: {body}");
    }

    #[tokio::test]
    async fn a_session_that_stops_reading_is_cut_as_a_slow_consumer() {
        let broker = Broker::start(&["--outbound-queue-bytes", "65536"]).await;
        let sid = session(&broker).await;
        let subscribe = "420[\"chorus:subscribe\",{\"topic\":\"slow/room\"}]";
        assert_eq!(request(&broker, "POST", &format!("&sid={sid}"), Some(subscribe)).await.0, 200);
        let (status, ack) = request(&broker, "GET", &format!("&sid={sid}"), None).await;
        assert_eq!(status, 200);
        assert!(ack.starts_with("430[{\"epoch\""), "{ack}");
        let publisher = native(&broker, false).await;
        let text = "x".repeat(1024);
        for _ in 0..100 {
            publisher
                .publish("slow/room", Payload::from_value(&json!({ "text": text })).unwrap())
                .await
                .expect("publish");
        }
        let after = request(&broker, "GET", &format!("&sid={sid}"), None).await;
        let unknown = (400, refusal(1, "Session ID unknown").1.to_string());
        assert!(after.1.ends_with('1') || after == unknown, "the session was cut: {after:?}");
        assert!(broker.metrics().await.get("chorus_slow_consumer_disconnects_total") >= 1.0);
        let me = publisher.publish("slow/room", Payload::from_value(&json!({ "text": "still here" })).unwrap()).await;
        assert!(me.is_ok(), "the publisher is unaffected: {me:?}");
    }

    /// The response head of a request with `headers` (status line and headers, lower-cased).
    async fn head(broker: &Broker, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
        let answer =
            chorus_testkit::http::request(broker.http, method, path, headers, None).await.expect("HTTP request");
        answer.head.to_ascii_lowercase()
    }

    #[tokio::test]
    async fn cors_answers_only_the_configured_origins() {
        let broker = Broker::start(&["--socketio-cors-origins", "https://app.example"]).await;
        let preflight = [
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ];
        let allowed = head(&broker, "OPTIONS", PATH, &preflight).await;
        assert!(allowed.starts_with("http/1.1 204"), "{allowed}");
        assert!(allowed.contains("access-control-allow-origin: https://app.example"), "{allowed}");
        assert!(allowed.contains("access-control-allow-credentials: true"), "{allowed}");
        assert!(allowed.contains("access-control-allow-headers: content-type"), "{allowed}");
        let handshake = head(&broker, "GET", PATH, &[("Origin", "https://app.example")]).await;
        assert!(handshake.starts_with("http/1.1 200"), "{handshake}");
        assert!(handshake.contains("access-control-allow-origin: https://app.example"), "{handshake}");
        let other = head(&broker, "GET", PATH, &[("Origin", "https://evil.example")]).await;
        assert!(other.starts_with("http/1.1 200"), "{other}");
        assert!(!other.contains("access-control-allow-origin"), "no CORS grant for other origins: {other}");
    }

    #[tokio::test]
    async fn heartbeats_keep_a_session_and_a_silent_client_times_out() {
        let broker = Broker::start(&["--socketio-ping-interval-ms", "300", "--socketio-ping-timeout-ms", "1500"]).await;
        let silent = session(&broker).await;
        let answering = session(&broker).await;
        let (status, ping) = request(&broker, "GET", &format!("&sid={silent}"), None).await;
        assert_eq!((status, ping.as_str()), (200, "2"), "the server pings");
        for _ in 0..3 {
            let (status, pings) = request(&broker, "GET", &format!("&sid={answering}"), None).await;
            assert!(status == 200 && pings.split('\u{1e}').all(|p| p == "2"), "the server pings: {pings:?}");
            assert_eq!(request(&broker, "POST", &format!("&sid={answering}"), Some("3")).await.0, 200);
        }
        let unknown = (400, refusal(1, "Session ID unknown").1.to_string());
        let started = std::time::Instant::now();
        let after = loop {
            let after = request(&broker, "GET", &format!("&sid={silent}"), None).await;
            let pings_only = after.0 == 200 && after.1.split('\u{1e}').all(|p| p == "2");
            if !pings_only || started.elapsed() > WAIT {
                break after;
            }
        };
        let closed = after == unknown || (after.0 == 200 && after.1.ends_with('1'));
        assert!(closed, "no pong: the session ends: {after:?}");
        assert!(broker.metrics().await.get("chorus_socketio_errors_total{reason=\"ping_timeout\"}") >= 1.0);
        assert_eq!(request(&broker, "POST", &format!("&sid={answering}"), Some("3")).await.0, 200, "still alive");
    }

    #[tokio::test]
    async fn the_gateway_can_be_switched_off_and_moved() {
        let off = Broker::start(&["--disable-socketio"]).await;
        assert_eq!(off.get(PATH).await, (404, json!({ "message": "no route for GET /socket.io/" }).to_string()));
        let moved = Broker::start(&["--socketio-path", "/rt/"]).await;
        let (status, open) = moved.get("/rt/?EIO=4&transport=polling").await;
        assert_eq!(status, 200);
        assert!(open.starts_with("0{\"sid\":"), "{open}");
        assert_eq!(moved.get(PATH).await.0, 404);
    }

    #[tokio::test]
    async fn an_unknown_namespace_is_a_connect_error() {
        let broker = Broker::start(&[]).await;
        let sid = session(&broker).await;
        assert_eq!(request(&broker, "POST", &format!("&sid={sid}"), Some("40/nope,")).await.0, 200);
        let (status, body) = request(&broker, "GET", &format!("&sid={sid}"), None).await;
        assert_eq!((status, body.as_str()), (200, "44/nope,{\"message\":\"Invalid namespace\"}"));
    }

    #[tokio::test]
    async fn a_second_waiting_get_is_refused_and_ends_the_session() {
        let broker = Broker::start(&[]).await;
        let sid = session(&broker).await;
        let gets = "chorus_socketio_polling_requests_total{method=\"GET\"}";
        let before = broker.metrics().await.get(gets);
        let first = {
            let (addr, path) = (broker.http, format!("{PATH}&sid={sid}"));
            tokio::spawn(async move { http_request(addr, "GET", &path, &[], None).await.expect("first GET") })
        };
        while broker.metrics().await.get(gets) <= before {
            tokio::task::yield_now().await;
        }
        let second = request(&broker, "GET", &format!("&sid={sid}"), None).await;
        assert_eq!((second.0, serde_json::from_str(&second.1).ok()), (400, Some(refusal(3, "Bad request").1)));
        assert_eq!(first.await.expect("first GET task"), (200, "1".to_owned()));
    }

    #[tokio::test]
    async fn attachments_that_never_arrive_close_the_session() {
        let broker = Broker::start(&[]).await;
        let sid = session(&broker).await;
        let announced = "451-[\"x\",{\"_placeholder\":true,\"num\":0}]";
        assert_eq!(request(&broker, "POST", &format!("&sid={sid}"), Some(announced)).await.0, 200);
        let started = std::time::Instant::now();
        let mut body = String::new();
        while started.elapsed() < Duration::from_secs(30) && !body.ends_with('1') {
            let (status, next) = request(&broker, "GET", &format!("&sid={sid}"), None).await;
            assert_eq!(status, 200, "{next}");
            body = next;
        }
        assert!(body.ends_with('1'), "closed after the attachments timeout: {body:?}");
        assert!(started.elapsed() >= Duration::from_secs(5), "not before the timeout");
    }

    #[tokio::test]
    async fn upgrade_answers_the_waiting_get_with_noop_and_then_refuses_polling() {
        let broker = Broker::start(&[]).await;
        let sid = session(&broker).await;
        let gets = "chorus_socketio_polling_requests_total{method=\"GET\"}";
        let before = broker.metrics().await.get(gets);
        let waiting = {
            let (addr, path) = (broker.http, format!("{PATH}&sid={sid}"));
            tokio::spawn(async move { http_request(addr, "GET", &path, &[], None).await.expect("waiting GET") })
        };
        while broker.metrics().await.get(gets) <= before {
            tokio::task::yield_now().await;
        }
        let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket&sid={sid}", broker.http);
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("WebSocket upgrade");
        ws.send(Message::text("2probe")).await.expect("probe");
        let probe = tokio::time::timeout(WAIT, ws.next()).await.expect("probe answer").expect("open").expect("frame");
        assert_eq!(probe, Message::text("3probe"));
        assert_eq!(waiting.await.expect("waiting GET task"), (200, "6".to_owned()));
        ws.send(Message::text("5")).await.expect("upgrade");
        while broker.metrics().await.get("chorus_socketio_upgrades_total") < 1.0 {
            tokio::task::yield_now().await;
        }
        ws.send(Message::text("42[\"chorus:subscribe\",{\"topic\":\"up/graded\"}]")).await.expect("emit");
        assert_eq!(refused(&broker, "GET", &format!("{PATH}&sid={sid}")).await, refusal(3, "Bad request"));
        ws.send(Message::text("42[\"no-such-event\"]")).await.expect("emit");
        let reply = loop {
            let frame = tokio::time::timeout(WAIT, ws.next()).await.expect("reply").expect("open").expect("frame");
            if let Message::Text(text) = frame
                && text.starts_with("42[\"error\"")
            {
                break text;
            }
        };
        assert!(reply.contains("2006"), "{reply}");
    }
}
