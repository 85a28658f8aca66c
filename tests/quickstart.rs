//! README's Quickstart, run as written: its three `sh` blocks (broker terminal, subscriber terminal,
//! publisher terminal) go to `bash` verbatim, in order, with the broker and the subscriber in the
//! background. The environment only moves the broker to loopback port 0 and a fresh data dir (and tells the
//! CLI where that is, through the variables it reads), so the test never takes a fixed port.
//!
//! The commands are README's own `cargo run --release -p chorus-broker ...`, so this test builds the release
//! binaries in the workspace's target dir the first time (what a reader's first command does) and reuses
//! them afterwards, as a reader's later commands do (the shells get a reader's environment, without the
//! variables cargo sets for tests). They run at the lowest CPU priority so that build does not starve the
//! other tests.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

/// The first block builds the broker in release mode before it listens: a cold release build of the
/// workspace takes about 5 minutes on 2 cores; the margin is for a CI machine busy with the other tests.
const BUILD_AND_START: Duration = Duration::from_secs(30 * 60);

/// Later blocks reuse that build; linking `chorus-cli` the first time takes about a minute.
const LATER_BLOCK: Duration = Duration::from_secs(10 * 60);

/// How long published events may take to show on the subscriber's stdout.
const DELIVERY: Duration = Duration::from_secs(30);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_owned()
}

/// The `sh` blocks of README's `## Quickstart` section, in order.
fn quickstart_blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("README.md");
    let start = readme.find("\n## Quickstart\n").expect("README has a Quickstart section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |end| end + 3)];
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + "```sh\n".len()..];
        let close = body.find("```").expect("closed code block");
        blocks.push(body[..close].to_owned());
        rest = &body[close + 3..];
    }
    blocks
}

/// A `bash` running one block in its own process group, which is ended (with every `cargo` and binary it
/// started) when this is dropped.
struct Terminal {
    child: Child,
    group: u32,
}

impl Terminal {
    fn open(block: &str, env: &[(&str, String)]) -> Self {
        let mut cmd = Command::new("nice");
        cmd.args(["-n", "19", "bash", "-e", "-c", block]).current_dir(workspace());
        // A reader's terminal has none of the variables cargo sets for this test process; build scripts
        // (ring's) rerun when they change, so leaving them in would rebuild half the release build.
        for (key, _) in std::env::vars().filter(|(key, _)| set_by_cargo_test(key)) {
            cmd.env_remove(key);
        }
        cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd.spawn().expect("spawn bash");
        let group = child.id().expect("running");
        Self { child, group }
    }

    fn stdout(&mut self) -> Lines<BufReader<ChildStdout>> {
        BufReader::new(self.child.stdout.take().expect("stdout")).lines()
    }

    fn stderr(&mut self) -> Lines<BufReader<ChildStderr>> {
        BufReader::new(self.child.stderr.take().expect("stderr")).lines()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        for signal in ["-TERM", "-KILL"] {
            let _ = std::process::Command::new("kill").args([signal, "--", &format!("-{}", self.group)]).status();
        }
    }
}

/// The variables cargo sets for a running test (not a developer's own settings such as `CARGO_HOME`,
/// `CARGO_TARGET_DIR` or `CARGO_PROFILE_*`).
fn set_by_cargo_test(key: &str) -> bool {
    key == "CARGO"
        || key == "OUT_DIR"
        || ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_BIN_", "CARGO_CRATE_", "CARGO_CFG_"]
            .iter()
            .any(|p| key.starts_with(p))
        || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "CARGO_RUSTC_CURRENT_DIR"].contains(&key)
}

/// Reads lines (echoing them for the test log) until one satisfies `done`; returns it.
async fn read_until<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut Lines<R>,
    within: Duration,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let read = async {
        while let Some(line) = lines.next_line().await.expect("read") {
            eprintln!("[quickstart] {line}");
            if done(&line) {
                return line;
            }
        }
        panic!("the terminal closed before {what}");
    };
    tokio::time::timeout(within, read).await.unwrap_or_else(|_| panic!("no {what} within {within:?}"))
}

/// Forwards a terminal's remaining stderr to the test log (cargo's progress, the CLI's messages).
fn echo(mut lines: Lines<BufReader<ChildStderr>>) {
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("[quickstart] {line}");
        }
    });
}

#[tokio::test]
async fn readme_quickstart_runs_as_written() {
    let blocks = quickstart_blocks();
    assert_eq!(blocks.len(), 3, "Quickstart: a broker, a subscriber and a publisher terminal: {blocks:#?}");
    let (broker_block, subscriber_block, publisher_block) = (&blocks[0], &blocks[1], &blocks[2]);
    assert!(broker_block.contains("cargo run --release -p chorus-broker"), "{broker_block}");
    for flag in ["--quic", "--json"] {
        assert!(publisher_block.contains(flag), "the publisher terminal uses {flag}: {publisher_block}");
    }
    let published: Vec<Value> = publisher_block
        .lines()
        .filter(|line| line.contains(" publish chat/lobby '"))
        .map(|line| {
            let json = line.split('\'').nth(1).expect("a quoted JSON payload");
            serde_json::from_str(json).expect("the payload is JSON")
        })
        .collect();
    assert_eq!(published.len(), 3, "three publishes (WebSocket, QUIC, JSON): {publisher_block}");

    let data_dir = tempfile::tempdir().expect("temp dir");
    let data = data_dir.path().to_str().expect("UTF-8 path").to_owned();
    let broker_env = [("CHORUS_LISTEN", "127.0.0.1:0".to_owned()), ("CHORUS_QUIC_LISTEN", "127.0.0.1:0".to_owned())];
    let mut broker = Terminal::open(broker_block, &[&broker_env[..], &[("CHORUS_DATA_DIR", data.clone())]].concat());
    echo(broker.stderr());
    let mut broker_out = broker.stdout();
    let line =
        read_until(&mut broker_out, BUILD_AND_START, "`chorus listening` line", |l| l.starts_with("chorus listening"))
            .await;
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
            .to_owned()
    };
    let client_env = [
        ("CHORUS_URL", format!("ws://{}/v1/ws", field("http"))),
        ("CHORUS_QUIC_ADDR", field("quic")),
        ("CHORUS_DATA_DIR", data),
    ];

    let mut subscriber = Terminal::open(subscriber_block, &client_env);
    let mut subscriber_err = subscriber.stderr();
    read_until(&mut subscriber_err, LATER_BLOCK, "subscription", |l| l.starts_with("subscribed to chat/lobby")).await;
    echo(subscriber_err);
    let mut events = subscriber.stdout();

    let mut publisher = Terminal::open(publisher_block, &client_env);
    echo(publisher.stderr());
    let mut seqs = publisher.stdout();
    let status = tokio::time::timeout(LATER_BLOCK, publisher.child.wait())
        .await
        .expect("the publisher terminal finished in time")
        .expect("wait");
    assert!(status.success(), "the publisher terminal failed: {status}");
    let mut printed = Vec::new();
    while let Some(line) = seqs.next_line().await.expect("read") {
        printed.push(line.parse::<u64>().unwrap_or_else(|_| panic!("publish prints its seq, not {line:?}")));
    }
    assert_eq!(printed, [1, 2, 3], "each publish printed its seq");

    for (seq, payload) in (1..).zip(&published) {
        let line = read_until(&mut events, DELIVERY, "event line", |_| true).await;
        let event: Value = serde_json::from_str(&line).expect("the subscriber prints JSON lines");
        assert_eq!(event, serde_json::json!({"topic": "chat/lobby", "seq": seq, "payload": payload}));
    }
}
