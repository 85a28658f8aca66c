//! The demo page in a real browser: headless Chromium (Debian `chromium`, installed by CI) loads
//! `/demo/booking`, whose script is the seed's `EventBookingWebSocket` client; bookings made through REST —
//! by the test, then by the page's own button — change the seat count on the page.
//!
//! Chromium is driven over the DevTools protocol (JSON-RPC on a WebSocket): open a tab, navigate, wait for
//! the load event, then evaluate scripts that resolve when the page's DOM shows the expected count.

use crate::support::{Rest, start, stop, token};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long the page may take to show a count (the script's own timeout, in milliseconds).
const PAGE_WAIT_MS: u64 = 15_000;

/// A headless Chromium, killed when dropped.
struct Chromium {
    _child: Child,
    _profile: tempfile::TempDir,
    devtools: String,
}

impl Chromium {
    async fn launch() -> Self {
        match std::process::Command::new("chromium").arg("--version").output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!("`chromium --version` failed: {}", String::from_utf8_lossy(&out.stderr)),
            Err(e) => panic!(
                "this test needs Chromium (`apt-get install -y chromium`; CI installs it), but `chromium` cannot run: {e}"
            ),
        }
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromium");
        let mut lines = BufReader::new(child.stderr.take().expect("chromium stderr")).lines();
        let devtools = tokio::time::timeout(crate::support::WAIT, async {
            while let Some(line) = lines.next_line().await.expect("read chromium stderr") {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return url.trim().to_owned();
                }
            }
            panic!("chromium exited without opening DevTools");
        })
        .await
        .expect("chromium announces DevTools in time");
        // Keep draining stderr so Chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { _child: child, _profile: profile, devtools }
    }
}

/// A DevTools protocol connection to the browser, with one attached page session.
struct DevTools {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    events: VecDeque<Value>,
    session: Option<String>,
}

impl DevTools {
    async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect to DevTools");
        Self { ws, next_id: 0, events: VecDeque::new(), session: None }
    }

    async fn receive(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(crate::support::WAIT, self.ws.next())
                .await
                .expect("DevTools answers in time")
                .expect("DevTools connection open")
                .expect("DevTools frame");
            if let Message::Text(text) = frame {
                return serde_json::from_str(text.as_str()).expect("DevTools sends JSON");
            }
        }
    }

    /// Calls `method` (on the attached page, once attached) and returns its `result`.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut request = json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            request["sessionId"] = Value::from(session.as_str());
        }
        self.ws.send(Message::text(request.to_string())).await.expect("send to DevTools");
        loop {
            let message = self.receive().await;
            if message["id"] == id {
                assert!(message.get("error").is_none(), "{method} failed: {message}");
                return message["result"].clone();
            }
            self.events.push_back(message);
        }
    }

    async fn wait_event(&mut self, method: &str) {
        if let Some(i) = self.events.iter().position(|e| e["method"] == method) {
            self.events.remove(i);
            return;
        }
        while self.receive().await["method"] != method {}
    }

    /// Evaluates an expression that yields a promise and returns its value (or fails with its error).
    async fn evaluate(&mut self, expression: &str) -> Value {
        let result = self
            .call("Runtime.evaluate", json!({"expression": expression, "awaitPromise": true, "returnByValue": true}))
            .await;
        assert!(result.get("exceptionDetails").is_none(), "page script failed: {result}");
        result["result"]["value"].clone()
    }

    /// Resolves once the page's `#available` shows `seats` (and the connection is up); returns what the
    /// page shows.
    async fn seats_shown(&mut self, seats: u32) -> Value {
        self.page_until(&format!("text('available') === '{seats}' && text('status') === 'connected'")).await
    }

    /// Resolves once `condition` (a script expression over `text(elementId)`) holds on the page, watching
    /// DOM changes; returns the page's seat count, capacity and booking result then.
    async fn page_until(&mut self, condition: &str) -> Value {
        let script = format!(
            r#"new Promise((resolve, reject) => {{
                const text = (id) => (document.getElementById(id) || {{}}).textContent;
                const shown = () => ({{ available: text('available'), capacity: text('capacity'),
                    status: text('status'), result: text('book-result') }});
                const done = () => {condition};
                const timer = setTimeout(() => reject(new Error(
                    `waited for {condition:?}; the page shows ${{JSON.stringify(shown())}}`)), {PAGE_WAIT_MS});
                const finish = () => {{ clearTimeout(timer); resolve(shown()); }};
                if (done()) return finish();
                new MutationObserver((_, observer) => {{ if (done()) {{ observer.disconnect(); finish(); }} }})
                    .observe(document.body, {{ subtree: true, childList: true, characterData: true }});
            }})"#
        );
        self.evaluate(&script).await
    }
}

#[tokio::test]
async fn the_demo_page_shows_live_seats_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let id = Rest::new(&server, "olga", Some("organizer")).event("Browser night", 5).await;
    let page = format!("http://{}/demo/booking?eventId={id}&token={}", server.http_addr, token("viewer", None));

    let chromium = Chromium::launch().await;
    let mut devtools = DevTools::connect(&chromium.devtools).await;
    let target = devtools.call("Target.createTarget", json!({"url": "about:blank"})).await;
    let attached =
        devtools.call("Target.attachToTarget", json!({"targetId": target["targetId"], "flatten": true})).await;
    devtools.session = Some(attached["sessionId"].as_str().expect("session id").to_owned());
    devtools.call("Page.enable", json!({})).await;
    let navigated = devtools.call("Page.navigate", json!({"url": page})).await;
    assert!(navigated.get("errorText").is_none(), "navigation failed: {navigated}");
    devtools.wait_event("Page.loadEventFired").await;

    let shown = devtools.seats_shown(5).await;
    assert_eq!((shown["available"].as_str(), shown["capacity"].as_str()), (Some("5"), Some("5")));

    // A booking through REST by someone else: the page follows.
    assert_eq!(Rest::new(&server, "ann", None).book(id, 2, None).await.status, 201);
    assert_eq!(devtools.seats_shown(3).await["available"], "3");

    // The page's own button books through REST with the page's token.
    devtools.evaluate("document.getElementById('book').click()").await;
    assert_eq!(devtools.seats_shown(2).await["available"], "2");
    let shown = devtools.page_until("(text('book-result') || '').startsWith('booked bk_')").await;
    assert_eq!(shown["available"], "2");
    let rest = Rest::new(&server, "viewer", None);
    let mine = rest.bookings().await.body["bookings"].clone();
    assert_eq!(mine.as_array().map(Vec::len), Some(1), "the page booked as its token's user: {mine}");
    assert_eq!(rest.get_event(id).await.body["availableSeats"], 2);
    drop(chromium);
    stop(server).await;
}
