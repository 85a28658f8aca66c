//! The real Socket.IO client libraries, driven from Rust tests: Node's `socket.io-client` (pinned in
//! `tests/socketio/package.json` and its lock file) and Python's `python-socketio` (pinned in
//! `tests/socketio/requirements.txt`).
//!
//! The first use installs them when they are missing — `npm ci` in `tests/socketio/`, a virtualenv under
//! the workspace's `target/` — so `cargo test` is the only command a newcomer needs besides Node.js 18+
//! and Python 3 with `venv`. Each scenario (`tests/socketio/client.mjs`, `client.py`) asserts on its own
//! and exits non-zero with the failed check; [`ClientProcess::finish`] turns that into a test failure.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Longest a scenario may run, and longest a `READY` line may take: a debug broker and the client share
/// two cores in CI; a healthy scenario takes well under a second.
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);

/// `tests/socketio/`: the scenarios and their pinned dependencies.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../socketio")
}

/// Runs a setup command once per test process; every caller sees its outcome.
fn once(cell: &'static OnceLock<Result<(), String>>, setup: impl FnOnce() -> Result<()>) -> Result<()> {
    cell.get_or_init(|| setup().map_err(|e| format!("{e:#}"))).clone().map_err(anyhow::Error::msg)
}

/// Installs the pinned `socket.io-client` unless `node_modules` already holds it.
fn node_ready() -> Result<()> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    once(&READY, || {
        let dir = dir();
        if dir.join("node_modules/socket.io-client/package.json").exists() {
            return Ok(());
        }
        crate::venv::run(
            std::process::Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir),
            "installing socket.io-client (needs Node.js 18+ and npm)",
        )
    })
}

/// The virtualenv's Python, with the pinned `python-socketio`.
fn python() -> Result<PathBuf> {
    crate::venv::python("socketio-venv", &dir().join("requirements.txt"))
}

/// A running client scenario.
pub struct ClientProcess {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    lines: Vec<Value>,
}

impl ClientProcess {
    /// Starts `scenario` of `tests/socketio/client.mjs` with `options` (JSON; `url` at least).
    pub fn node(scenario: &str, options: &Value) -> Result<Self> {
        node_ready()?;
        let mut command = Command::new("node");
        command.arg(dir().join("client.mjs")).arg(scenario).arg(options.to_string());
        Self::spawn(format!("socket.io-client scenario {scenario}"), command)
    }

    /// Starts `tests/socketio/client.py` with `options`.
    pub fn python(options: &Value) -> Result<Self> {
        let mut command = Command::new(python()?);
        command.arg(dir().join("client.py")).arg(options.to_string());
        Self::spawn("python-socketio client".to_owned(), command)
    }

    fn spawn(what: String, mut command: Command) -> Result<Self> {
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = command.spawn().with_context(|| format!("starting the {what}"))?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().context("client stdout")?).lines();
        Ok(Self { what, child, stdin, stdout, lines: Vec::new() })
    }

    /// Waits for the scenario's next `READY <json>` line and returns its JSON; JSON lines before it are
    /// kept for [`ClientProcess::finish`].
    pub async fn ready(&mut self) -> Result<Value> {
        let wait = async {
            while let Some(line) = self.stdout.next_line().await? {
                match line.strip_prefix("READY ") {
                    Some(detail) => return Ok(serde_json::from_str(detail)?),
                    None => self.lines.push(parse(&line)),
                }
            }
            bail!("the {} ended before it was ready", self.what)
        };
        match tokio::time::timeout(SCENARIO_TIMEOUT, wait).await {
            Ok(Ok(detail)) => Ok(detail),
            Ok(Err(e)) => Err(e.context(self.stderr().await)),
            Err(_) => {
                let _ = self.child.start_kill();
                let stderr = self.stderr().await;
                bail!("the {} was not ready within {SCENARIO_TIMEOUT:?}:\n{stderr}", self.what)
            }
        }
    }

    /// Lets a scenario waiting after `READY` go on.
    pub async fn go(&mut self) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        stdin.write_all(b"go\n").await?;
        stdin.flush().await?;
        Ok(())
    }

    /// Waits for the scenario to end; fails with its stderr unless it exited 0. Returns the JSON lines
    /// it printed.
    pub async fn finish(mut self) -> Result<Vec<Value>> {
        let wait = async {
            while let Some(line) = self.stdout.next_line().await? {
                self.lines.push(parse(&line));
            }
            anyhow::Ok(self.child.wait().await?)
        };
        let status = match tokio::time::timeout(SCENARIO_TIMEOUT, wait).await {
            Ok(status) => status?,
            Err(_) => bail!("the {} did not finish within {SCENARIO_TIMEOUT:?}", self.what),
        };
        if !status.success() {
            let stderr = self.stderr().await;
            bail!("the {} failed ({status}):\n{stderr}", self.what);
        }
        Ok(self.lines)
    }

    async fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let read = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text);
            let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
        }
        text
    }
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|_| Value::String(line.to_owned()))
}
