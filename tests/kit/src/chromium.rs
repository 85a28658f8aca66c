//! Headless Chromium (Debian `chromium`) driven over the DevTools protocol — JSON-RPC on a WebSocket — for
//! the browser tests of every suite: [`Chromium::launch`] starts a browser with a fresh profile,
//! [`Chromium::open`] opens a tab at a URL and waits for its load event, and [`Page`] evaluates scripts,
//! waits for DOM conditions (watching mutations, not polling) and takes screenshots.

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a page may take to reach a condition ([`Page::until`]): a debug broker and the browser share
/// two cores in CI; a healthy page gets there in well under a second.
pub const PAGE_WAIT: Duration = Duration::from_secs(20);

/// How long the browser may take to start, and to answer one DevTools call (longer than [`PAGE_WAIT`], which
/// runs inside one call).
const DEVTOOLS_WAIT: Duration = Duration::from_secs(40);

/// The PNG file signature.
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// A headless Chromium, killed when dropped.
pub struct Chromium {
    _child: Child,
    _profile: tempfile::TempDir,
    devtools: String,
}

impl Chromium {
    /// Starts `chromium` headless with a fresh profile and waits until DevTools listens.
    pub async fn launch() -> Result<Self> {
        match std::process::Command::new("chromium").arg("--version").output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => bail!("`chromium --version` failed: {}", String::from_utf8_lossy(&out.stderr)),
            Err(e) => bail!(
                "this test needs Chromium (`apt-get install -y chromium`; CI installs it), but `chromium` cannot run: {e}"
            ),
        }
        let profile = tempfile::tempdir()?;
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
                "--window-size=1000,1200",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting chromium")?;
        let mut lines = BufReader::new(child.stderr.take().context("chromium has no stderr")?).lines();
        let devtools = tokio::time::timeout(DEVTOOLS_WAIT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return Ok(url.trim().to_owned());
                }
            }
            bail!("chromium exited without opening DevTools")
        })
        .await
        .context("chromium did not announce DevTools in time")??;
        // Keep draining stderr so Chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { _child: child, _profile: profile, devtools })
    }

    /// Opens a new tab at `url` and waits for its load event.
    pub async fn open(&self, url: &str) -> Result<Page> {
        let (ws, _) = tokio_tungstenite::connect_async(&self.devtools).await.context("connecting to DevTools")?;
        let mut page = Page { ws, next_id: 0, events: VecDeque::new(), session: None };
        let target = page.call("Target.createTarget", json!({"url": "about:blank"})).await?;
        let attached =
            page.call("Target.attachToTarget", json!({"targetId": target["targetId"], "flatten": true})).await?;
        page.session = Some(attached["sessionId"].as_str().context("no DevTools session id")?.to_owned());
        page.call("Page.enable", json!({})).await?;
        let navigated = page.call("Page.navigate", json!({"url": url})).await?;
        if let Some(error) = navigated.get("errorText") {
            bail!("navigating to {url} failed: {error}");
        }
        page.wait_event("Page.loadEventFired").await?;
        Ok(page)
    }
}

/// One tab, attached over its own DevTools connection.
pub struct Page {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    events: VecDeque<Value>,
    session: Option<String>,
}

impl Page {
    async fn receive(&mut self) -> Result<Value> {
        loop {
            let frame = tokio::time::timeout(DEVTOOLS_WAIT, self.ws.next())
                .await
                .context("DevTools did not answer in time")?
                .context("the DevTools connection closed")??;
            if let Message::Text(text) = frame {
                return serde_json::from_str(text.as_str()).context("DevTools sent something other than JSON");
            }
        }
    }

    /// Calls DevTools `method` (on the tab, once attached) and returns its `result`.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut request = json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            request["sessionId"] = Value::from(session.as_str());
        }
        self.ws.send(Message::text(request.to_string())).await.context("sending to DevTools")?;
        loop {
            let message = self.receive().await?;
            if message["id"] == id {
                if let Some(error) = message.get("error") {
                    bail!("{method} failed: {error}");
                }
                return Ok(message["result"].clone());
            }
            self.events.push_back(message);
        }
    }

    async fn wait_event(&mut self, method: &str) -> Result<()> {
        if let Some(i) = self.events.iter().position(|e| e["method"] == method) {
            self.events.remove(i);
            return Ok(());
        }
        while self.receive().await?["method"] != method {}
        Ok(())
    }

    /// Evaluates `expression` in the page (awaiting it if it is a promise) and returns its value; a thrown
    /// error or rejected promise is an error.
    pub async fn evaluate(&mut self, expression: &str) -> Result<Value> {
        let params = json!({"expression": expression, "awaitPromise": true, "returnByValue": true});
        let result = self.call("Runtime.evaluate", params).await?;
        if let Some(details) = result.get("exceptionDetails") {
            bail!("page script failed: {details}");
        }
        Ok(result["result"]["value"].clone())
    }

    /// Waits (watching DOM changes) until `condition` holds, then returns the value of `report`. Both are
    /// script expressions that may use `text(id)`, the text of the element with that id (`undefined` if
    /// none). After [`PAGE_WAIT`] the error says what `report` showed.
    pub async fn until(&mut self, condition: &str, report: &str) -> Result<Value> {
        let script = format!(
            r#"new Promise((resolve, reject) => {{
                const text = (id) => (document.getElementById(id) || {{}}).textContent;
                const report = () => ({report});
                const done = () => {{ try {{ return Boolean({condition}); }} catch (_) {{ return false; }} }};
                const timer = setTimeout(() => reject(new Error(
                    `waited for {condition:?}; the page shows ${{JSON.stringify(report())}}`)), {wait});
                const finish = () => {{ clearTimeout(timer); resolve(report()); }};
                if (done()) return finish();
                new MutationObserver((_, observer) => {{ if (done()) {{ observer.disconnect(); finish(); }} }})
                    .observe(document.body, {{ subtree: true, childList: true, characterData: true, attributes: true }});
            }})"#,
            wait = PAGE_WAIT.as_millis(),
        );
        self.evaluate(&script).await
    }

    /// A screenshot of the tab as PNG bytes (checked to be a non-empty PNG).
    pub async fn screenshot(&mut self) -> Result<Vec<u8>> {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"})).await?;
        let data = shot["data"].as_str().context("the screenshot has no data")?;
        let png = STANDARD.decode(data).context("the screenshot is not base64")?;
        if png.len() <= PNG_SIGNATURE.len() || !png.starts_with(PNG_SIGNATURE) {
            bail!("the screenshot is not a PNG ({} bytes)", png.len());
        }
        Ok(png)
    }
}
