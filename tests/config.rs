//! The real binary's configuration errors say where a bad value came from (the flag, the environment
//! variable, or the file and key), booleans take `yes/no/1/0`, addresses take `localhost:PORT`, and a
//! kebab-case key in the file gets a snake_case hint.

use crate::support::*;
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// `chorus` with `args` and `env` (none of the caller's `CHORUS_*`), in a fresh data dir.
fn chorus(args: &[&str], env: &[(&str, &str)], data_dir: &tempfile::TempDir) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chorus"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CHORUS_")) {
        cmd.env_remove(key);
    }
    cmd.arg("--data-dir").arg(data_dir.path()).args(args).envs(env.iter().copied()).kill_on_drop(true);
    cmd
}

/// Runs a configuration that must be refused; returns its stderr after checking the exit status.
async fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let out: Output = tokio::time::timeout(Duration::from_secs(30), chorus(args, env, &dir).output())
        .await
        .expect("chorus exited within 30 s")
        .expect("run chorus");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?} {env:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    chorus_testkit::plain::assert_plain("config error", &stderr);
    stderr
}

/// Starts a configuration that must be accepted; returns its `chorus listening` line.
async fn listening(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = chorus(args, env, &dir);
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn chorus");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("chorus listened within 30 s")
        .expect("read")
        .unwrap_or_else(|| panic!("chorus {args:?} {env:?} exited instead of listening"));
    child.kill().await.expect("stop chorus");
    line
}

#[tokio::test]
async fn a_bad_value_names_its_source() {
    let from_env = refused(&[], &[("CHORUS_MAX_FRAME_BYTES", "abc")]).await;
    assert!(from_env.contains("environment variable CHORUS_MAX_FRAME_BYTES=\"abc\""), "{from_env}");
    assert!(!from_env.contains("--max-frame-bytes"), "{from_env}");

    let from_flag = refused(&["--max-frame-bytes", "abc"], &[]).await;
    assert!(from_flag.contains("--max-frame-bytes \"abc\""), "{from_flag}");

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("chorus.toml");
    let path = file.to_str().expect("UTF-8 path");
    std::fs::write(&file, "max_frame_bytes = \"abc\"\n").unwrap();
    let from_file = refused(&["--config", path], &[]).await;
    assert!(from_file.contains(&format!("config file {path}, key `max_frame_bytes`")), "{from_file}");

    let from_env_over_file = refused(&["--config", path], &[("CHORUS_MAX_FRAME_BYTES", "-1")]).await;
    assert!(from_env_over_file.contains("CHORUS_MAX_FRAME_BYTES"), "the environment wins: {from_env_over_file}");

    let alg = refused(&[], &[("CHORUS_JWT_ALG", "hs256")]).await;
    assert!(alg.contains("CHORUS_JWT_ALG") && alg.contains("expected one of HS256, RS256, EdDSA"), "{alg}");
    let boolean = refused(&[], &[("CHORUS_DISABLE_QUIC", "maybe")]).await;
    assert!(boolean.contains("CHORUS_DISABLE_QUIC") && boolean.contains("yes/no"), "{boolean}");

    std::fs::write(&file, "max-frame-bytes = 1024\n").unwrap();
    let kebab = refused(&["--config", path], &[]).await;
    assert!(kebab.contains("unknown key `max-frame-bytes`; did you mean `max_frame_bytes`?"), "{kebab}");
}

#[tokio::test]
async fn workers_set_the_runtime_threads_and_zero_is_refused() {
    let base = ["--listen", "127.0.0.1:0", "--quic-listen", "127.0.0.1:0"];
    for n in ["1", "3"] {
        let line = listening(&[&base[..], &["--workers", n]].concat(), &[]).await;
        assert!(line.ends_with(&format!(" workers={n}")), "--workers {n}: {line}");
    }
    let line = listening(&base, &[("CHORUS_WORKERS", "2")]).await;
    assert!(line.ends_with(" workers=2"), "{line}");
    let default = std::thread::available_parallelism().map_or(1, usize::from);
    let line = listening(&base, &[]).await;
    assert!(line.ends_with(&format!(" workers={default}")), "one per CPU by default: {line}");
    // tokio's own variable would panic on a bad value; chorus does not read it.
    let line = listening(&base, &[("TOKIO_WORKER_THREADS", "lots")]).await;
    assert!(line.ends_with(&format!(" workers={default}")), "{line}");
    let zero = refused(&["--workers", "0"], &[]).await;
    assert!(zero.contains("--workers") && zero.contains("0"), "{zero}");
    let word = refused(&[], &[("CHORUS_WORKERS", "many")]).await;
    assert!(word.contains("CHORUS_WORKERS=\"many\""), "{word}");
}

#[tokio::test]
async fn booleans_take_yes_no_and_digits_and_addresses_take_localhost() {
    let base = ["--listen", "localhost:0", "--quic-listen", "127.0.0.1:0"];
    for yes in ["1", "yes", "YES", "on", "true"] {
        let line = listening(&base, &[("CHORUS_DISABLE_QUIC", yes)]).await;
        assert!(line.contains("quic=off"), "CHORUS_DISABLE_QUIC={yes}: {line}");
    }
    for no in ["0", "no", "off", "false"] {
        let line = listening(&base, &[("CHORUS_DISABLE_QUIC", no)]).await;
        assert!(line.contains("quic=127.0.0.1:"), "CHORUS_DISABLE_QUIC={no}: {line}");
    }
    let line = listening(&base, &[]).await;
    assert!(line.contains("http=127.0.0.1:"), "localhost resolves to loopback: {line}");

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("chorus.toml");
    std::fs::write(&file, "quic_listen = \"localhost:0\"\ndisable_socketio = \"yes\"\nguest_publish = \"no\"\n")
        .unwrap();
    let line = listening(&["--listen", "127.0.0.1:0", "--config", file.to_str().unwrap()], &[]).await;
    assert!(line.contains("quic=127.0.0.1:"), "{line}");
    let broker = Broker::start(&["--guest-publish", "no"]).await;
    let mut guest = json_session(&broker, None).await;
    send_json(&mut guest, serde_json::json!({"type": "publish", "id": 1, "topic": "t", "payload": 1})).await;
    let refusal = next_json(&mut guest).await;
    assert_eq!((refusal["type"].as_str(), refusal["code"].as_u64()), (Some("error"), Some(2005)), "{refusal}");
}
