//! `--log-format json` writes one JSON object per log line on stderr (for log shippers); text logs carry
//! no colour codes when stderr is not a terminal.

use crate::support::*;
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Starts `chorus` with `args`, stderr captured; waits for its listening line, stops it with SIGTERM and
/// returns everything it logged.
async fn logs_of(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["--listen", "127.0.0.1:0", "--quic-listen", "127.0.0.1:0", "--jwt-secret", SECRET, "--log", "info"])
        .arg("--data-dir")
        .arg(dir.path())
        .args(args)
        .env_remove("CHORUS_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn chorus");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let listening = tokio::time::timeout(Duration::from_secs(30), stdout.next_line()).await.expect("listening");
    assert!(listening.expect("read").is_some_and(|l| l.starts_with("chorus listening")));
    let pid = child.id().expect("running").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("chorus stopped within 20 s")
        .expect("wait");
    assert!(out.status.success(), "{}", out.status);
    String::from_utf8(out.stderr).expect("UTF-8 logs")
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let logs = logs_of(&["--log-format", "json"]).await;
    let lines: Vec<Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}")))
        .collect();
    for line in &lines {
        for field in ["timestamp", "level", "target"] {
            assert!(line[field].is_string(), "no {field}: {line}");
        }
        assert!(line["fields"]["message"].is_string(), "no message: {line}");
    }
    let listening = lines
        .iter()
        .find(|l| l["fields"]["message"] == "chorus listening")
        .unwrap_or_else(|| panic!("no `chorus listening` record in {logs}"));
    assert_eq!(listening["level"], "INFO");
    assert!(listening["fields"]["http_addr"].as_str().is_some_and(|a| a.starts_with("127.0.0.1:")), "{listening}");
    assert!(lines.iter().any(|l| l["fields"]["message"] == "chorus stopped"), "{logs}");
}

#[tokio::test]
async fn text_logs_have_no_colour_codes_off_a_terminal() {
    let logs = logs_of(&[]).await;
    assert!(logs.contains("chorus listening"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "ANSI escape codes in logs written to a pipe: {logs:?}");
}
