//! Shared helpers for the end-to-end tests: start the real `chorus` binary on port 0, mint tokens,
//! speak raw HTTP, read `/metrics`, run a `redis-server` for cluster mode.
#![allow(dead_code)]

pub use chorus_testkit::RedisServer;

use anyhow::{Context as _, bail};
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};

/// The HS256 secret every test broker is started with.
pub const SECRET: &str = "test-secret-do-not-use-in-production";

/// A `chorus` process with its ports.
pub struct Broker {
    pub child: Child,
    pub http: SocketAddr,
    pub quic: SocketAddr,
    pub fingerprint: String,
    pub data_dir: tempfile::TempDir,
    /// The lines `chorus` printed after its `chorus listening` line (the first [`STDOUT_LINES_KEPT`]).
    pub stdout: tokio::sync::mpsc::Receiver<String>,
    /// Where its stderr goes, when started with [`Broker::start_recording`] (else it is the test's).
    stderr_log: Option<tempfile::NamedTempFile>,
}

/// Lines of a broker's stdout kept after the first for tests to read; later ones are dropped.
pub const STDOUT_LINES_KEPT: usize = 64;

impl Broker {
    /// Starts `chorus` on loopback port 0 with the test secret, a fresh data dir, and `extra` flags.
    pub async fn start(extra: &[&str]) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(data_dir, extra).await
    }

    /// As [`Broker::start`] with a given data dir (to restart on the same data).
    pub async fn start_in(data_dir: tempfile::TempDir, extra: &[&str]) -> Self {
        Self::start_at(data_dir, "127.0.0.1:0", extra).await
    }

    /// As [`Broker::start_in`] with HTTP on `listen` (to restart where clients reconnect).
    pub async fn start_at(data_dir: tempfile::TempDir, listen: &str, extra: &[&str]) -> Self {
        Self::start_env(data_dir, listen, extra, &[]).await
    }

    /// As [`Broker::start_at`] with the environment variables `env` set for the process.
    pub async fn start_env(data_dir: tempfile::TempDir, listen: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut args = vec!["--jwt-secret", SECRET];
        args.extend_from_slice(extra);
        Self::launch(data_dir, listen, &args, env, None).await
    }

    /// As [`Broker::start`] with the process's stderr kept in a file (read it with [`Broker::stderr`]), for
    /// tests that check what the broker logged, e.g. that it never panicked.
    pub async fn start_recording(extra: &[&str]) -> Self {
        Self::start_recording_in(tempfile::tempdir().expect("temp dir"), extra).await
    }

    /// As [`Broker::start_recording`] with a given data dir.
    pub async fn start_recording_in(data_dir: tempfile::TempDir, extra: &[&str]) -> Self {
        let log = tempfile::NamedTempFile::new().expect("stderr file");
        let mut args = vec!["--jwt-secret", SECRET];
        args.extend_from_slice(extra);
        Self::launch(data_dir, "127.0.0.1:0", &args, &[], Some(log)).await
    }

    /// As [`Broker::start`] without the test secret: guests only, or keyed by `extra` (a public key, or
    /// `--dev`'s generated secret).
    pub async fn start_without_secret(extra: &[&str]) -> Self {
        Self::launch(tempfile::tempdir().expect("temp dir"), "127.0.0.1:0", extra, &[], None).await
    }

    /// Starts `chorus` on `listen` with `args` (plus QUIC on port 0 and `--data-dir`) and the environment
    /// variables `env` (its stderr into `stderr_log` if given), and reads its ports from the first line it prints.
    async fn launch(
        data_dir: tempfile::TempDir,
        listen: &str,
        args: &[&str],
        env: &[(&str, &str)],
        stderr_log: Option<tempfile::NamedTempFile>,
    ) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chorus"));
        cmd.args(["--listen", listen, "--quic-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(args)
            .env_remove("CHORUS_JWT_SECRET")
            .env("CHORUS_LOG", std::env::var("CHORUS_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        match &stderr_log {
            Some(log) => cmd.stderr(log.reopen().expect("reopen the stderr file")),
            None => cmd.stderr(Stdio::inherit()),
        };
        let mut child = cmd.spawn().expect("spawn chorus");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("chorus did not report its ports within 30 s")
            .expect("read stdout")
            .expect("chorus exited before listening");
        let field = |name: &str| -> String {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                .to_owned()
        };
        let http = field("http").parse().expect("http addr");
        let quic = field("quic").parse().expect("quic addr");
        let fingerprint = field("quic_fingerprint");
        let (tx, stdout) = tokio::sync::mpsc::channel(STDOUT_LINES_KEPT);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.try_send(line);
            }
        });
        Self { child, http, quic, fingerprint, data_dir, stdout, stderr_log }
    }

    /// What the process wrote to stderr so far (empty unless started with [`Broker::start_recording`]).
    pub fn stderr(&self) -> String {
        self.stderr_log
            .as_ref()
            .map(|log| std::fs::read_to_string(log.path()).expect("read stderr"))
            .unwrap_or_default()
    }

    /// `ws://.../v1/ws` with an optional query string.
    pub fn ws_url(&self, query: &str) -> String {
        if query.is_empty() { format!("ws://{}/v1/ws", self.http) } else { format!("ws://{}/v1/ws?{query}", self.http) }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
    }

    /// Sends SIGKILL (a crash: no shutdown work at all) and waits for the process to be gone.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("SIGKILL chorus");
    }

    /// Whether the process is still running (it has not exited, crashed or been killed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process's resident memory (`VmRSS` of `/proc/<pid>/status`), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("a VmRSS line");
        kib * 1024
    }

    /// GET `path`; returns (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        http_request(self.http, "GET", path, &[], None).await.expect("HTTP request")
    }

    /// The `/metrics` samples.
    pub async fn metrics(&self) -> Metrics {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200);
        Metrics::parse(&body).expect("valid Prometheus text")
    }
}

/// A signed HS256 token for `claims`, with `exp` one hour ahead unless given.
pub fn token(mut claims: Value) -> String {
    if claims.get("exp").is_none() {
        claims["exp"] = Value::from(now() + 3600);
    }
    encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).expect("encode")
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

/// A minimal HTTP/1.1 request (Connection: close); returns (status, body).
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let answer = chorus_testkit::http::request(addr, method, path, headers, body).await?;
    Ok((answer.status, answer.body))
}

/// Parsed Prometheus text exposition: `name{labels}` → value.
pub struct Metrics(pub HashMap<String, f64>);

impl Metrics {
    /// Parses the text format, checking each sample line has a name and a numeric value and that every
    /// sampled family was declared with `# TYPE`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut types = HashMap::new();
        let mut samples = HashMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                let (Some(name), Some(kind)) = (parts.next(), parts.next()) else { bail!("bad TYPE line {line:?}") };
                types.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (key, value) = line.rsplit_once(' ').with_context(|| format!("bad sample {line:?}"))?;
            let value: f64 = value.parse().with_context(|| format!("bad value in {line:?}"))?;
            let name = key.split('{').next().unwrap_or(key);
            let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
            if !types.contains_key(name) && !types.contains_key(family) {
                bail!("sample {name} has no # TYPE line");
            }
            samples.insert(key.to_owned(), value);
        }
        Ok(Self(samples))
    }

    /// A sample's value, 0 when absent.
    pub fn get(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }
}

/// A raw WebSocket to the native endpoint, for tests that must send what no SDK would.
pub type RawWs = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Opens a raw WebSocket offering `subprotocol`.
pub async fn raw_ws(broker: &Broker, subprotocol: &str, query: &str) -> RawWs {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = broker.ws_url(query).into_client_request().expect("request");
    req.headers_mut().insert("Sec-WebSocket-Protocol", subprotocol.parse().expect("header"));
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.expect("WebSocket connect");
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()),
        Some(subprotocol),
        "server must echo the subprotocol"
    );
    ws
}

/// Opens a raw WebSocket to `http`'s native endpoint offering `subprotocol` over `socket`, which the
/// caller has prepared (a source address bound, a small receive buffer…).
pub async fn raw_ws_via(http: SocketAddr, socket: TcpSocket, subprotocol: &str) -> anyhow::Result<RawWs> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let stream = socket.connect(http).await.context("TCP connect")?;
    let mut req = format!("ws://{http}/v1/ws").into_client_request()?;
    req.headers_mut().insert("Sec-WebSocket-Protocol", subprotocol.parse()?);
    let (ws, _) = tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(stream))
        .await
        .context("WebSocket handshake")?;
    Ok(ws)
}

/// Sends a JSON frame as a text message.
pub async fn send_json(ws: &mut RawWs, frame: Value) {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::text(frame.to_string())).await.expect("send");
}

/// What the server sent next on a raw socket.
#[derive(Debug)]
pub enum Next {
    Json(Value),
    Binary(Vec<u8>),
    Close(Option<u16>, String),
}

/// Reads the next frame (skipping ping/pong), within 10 s.
pub async fn next(ws: &mut RawWs) -> Next {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("no frame within 10 s");
        match msg {
            Some(Ok(Message::Text(t))) => {
                return Next::Json(serde_json::from_str(&t).expect("server sent invalid JSON"));
            }
            Some(Ok(Message::Binary(b))) => return Next::Binary(b.to_vec()),
            Some(Ok(Message::Close(f))) => {
                return Next::Close(
                    f.as_ref().map(|f| u16::from(f.code)),
                    f.map(|f| f.reason.to_string()).unwrap_or_default(),
                );
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Next::Close(None, String::new()),
        }
    }
}

/// Reads the next frame and expects a JSON one.
pub async fn next_json(ws: &mut RawWs) -> Value {
    match next(ws).await {
        Next::Json(v) => v,
        other => panic!("expected a JSON frame, got {other:?}"),
    }
}

/// Reads until the close frame; returns its code (after checking the `disconnect` frame, if any, agrees).
pub async fn expect_close(ws: &mut RawWs) -> Option<u16> {
    loop {
        match next(ws).await {
            Next::Close(code, _) => return code,
            Next::Json(v) if v["type"] == "disconnect" => {
                let code = v["code"].as_u64().map(|c| c as u16);
                let close = loop {
                    if let Next::Close(c, _) = next(ws).await {
                        break c;
                    }
                };
                assert_eq!(close, code, "disconnect frame and close code disagree");
                return close;
            }
            _ => continue,
        }
    }
}

/// Opens a JSON raw socket and completes hello (with `token`, or as a guest).
pub async fn json_session(broker: &Broker, token: Option<&str>) -> RawWs {
    let mut ws = raw_ws(broker, "chorus.v1.json", "").await;
    let hello = match token {
        Some(t) => serde_json::json!({"type": "hello", "token": t}),
        None => serde_json::json!({"type": "hello"}),
    };
    send_json(&mut ws, hello).await;
    let welcome = next_json(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    ws
}
