//! CI smoke test of the harness: every scenario, for about a second, against chorus only (WebSocket
//! MessagePack, WebSocket JSON, QUIC), with tiny parameters. The broker runs in this test's process
//! (`chorus_core::server::start`, with the event-booking module so that `calls` makes its default
//! `booking.get` calls on an event it creates over REST) and the harness binary attaches to it, so
//! neither the release build nor nats-server nor Node is needed. Asserts that every target delivered or
//! answered something and that each scenario wrote well-formed JSON results. Performance is not checked.
//!
//! `reactions` runs against a node of this process serving the live-commerce module (its per-connection
//! reaction limit raised, as the harness raises the binary's) and its Socket.IO namespace, over native
//! MessagePack and the Socket.IO gateway.
//!
//! The raw limits (`raw`, `raw-writev`) run as the harness starts them: the harness binary's `raw-server`.
//!
//! `cluster` runs against three nodes of this process joined through a `redis-server` the test starts
//! (`chorus_testkit::RedisServer`; Debian `apt-get install -y redis-server`, CI installs it), with a fourth node
//! without Redis as the single-node baseline.
//!
//! `soak` runs for 1.5 s against an in-process node (probe, then the open loop at half of it), and its
//! series of RSS and p99 samples is checked.

use chorus_core::config::Config;
use serde_json::Value;
use std::path::Path;
use std::time::Instant;

const SECRET: &str = "smoke-secret";
const TARGETS: &str = "chorus-msgpack,chorus-json,chorus-quic";
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

fn rows(json: &Value) -> &Vec<Value> {
    json["rows"].as_array().expect("rows is an array")
}

/// An in-process node's config: HTTP on loopback port 0, no QUIC, the test secret, then `extra`.
fn node_config(data: &Path, extra: &[&str]) -> Config {
    let base = ["chorus", "--listen", "127.0.0.1:0", "--disable-quic", "--jwt-secret", SECRET, "--log", "warn"];
    let data = ["--data-dir", data.to_str().unwrap()];
    Config::load_from(base.iter().chain(&data).chain(extra).copied()).unwrap()
}

/// Runs `chorus-bench <scenario> <args>` writing into `out`; checks that it succeeded, printed the table
/// and wrote the scenario's JSON. Returns the JSON, stdout and stderr.
async fn run_bench(scenario: &str, args: &[&str], out: &Path) -> (Value, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chorus-bench"))
        .arg(scenario)
        .args(args)
        .arg("--out-dir")
        .arg(out)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{scenario} {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains(&format!("== {scenario} ==")), "{scenario}: no table\n{stdout}");
    let json: Value = serde_json::from_slice(&std::fs::read(out.join(format!("{scenario}.json"))).unwrap())
        .unwrap_or_else(|e| panic!("{scenario}: results are not JSON: {e}"));
    assert_eq!(json["scenario"], scenario);
    (json, stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_against_chorus() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = Config::load_from([
        "chorus",
        "--listen",
        "127.0.0.1:0",
        "--quic-listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--jwt-secret",
        SECRET,
        "--publish-rate",
        "10000000",
        "--log",
        "warn",
    ])
    .unwrap();
    let server = chorus_core::server::start(config, vec![chorus_event_booking::module()]).await.unwrap();
    let out = dir.path().join("results");
    let attach = [
        "--attach-http".to_owned(),
        server.http_addr.to_string(),
        "--attach-quic".to_owned(),
        server.quic_addr.expect("QUIC listener").to_string(),
        "--attach-quic-cert".to_owned(),
        data.join("quic-cert.pem").to_str().unwrap().to_owned(),
        "--attach-pid".to_owned(),
        std::process::id().to_string(),
        "--jwt-secret".to_owned(),
        SECRET.to_owned(),
        "--out-dir".to_owned(),
        out.to_str().unwrap().to_owned(),
        "--targets".to_owned(),
        TARGETS.to_owned(),
        "--no-pin".to_owned(),
        "--warmup".to_owned(),
        "0.2".to_owned(),
        "--duration".to_owned(),
        "0.6".to_owned(),
    ];
    // Charts take about half a second each in a debug build: drawn once, by `latency` (both kinds).
    let scenarios: [(&str, &[&str]); 5] = [
        ("fanout", &["--subscribers", "20", "--no-charts"]),
        ("topics", &["--connections", "20", "--hot-topics", "4", "--publishers", "2", "--no-charts"]),
        ("latency", &["--subscribers", "20", "--rate", "200"]),
        ("connections", &["--connections", "200", "--connect-rate", "2000", "--no-charts"]),
        ("calls", &["--callers", "4", "--no-charts"]),
    ];
    for (scenario, extra) in scenarios {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chorus-bench"))
            .arg(scenario)
            .args(&attach)
            .args(extra)
            .kill_on_drop(true)
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{scenario} {extra:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
        assert!(stdout.contains(&format!("== {scenario} ==")), "{scenario}: no table\n{stdout}");
        let json: Value = serde_json::from_slice(&std::fs::read(out.join(format!("{scenario}.json"))).unwrap())
            .unwrap_or_else(|e| panic!("{scenario}: results are not JSON: {e}"));
        assert_eq!(json["scenario"], scenario);
        assert!(json["machine"]["cores"].as_u64().unwrap_or(0) >= 1);
        let rows = rows(&json);
        assert_eq!(rows.len(), 3, "{scenario}: one row per target\n{stdout}");
        for row in rows {
            let target = row["target"].as_str().unwrap_or("?");
            assert_eq!(row["status"], "ok", "{scenario} {target}\n{stdout}\n{stderr}");
            let measured = match scenario {
                "fanout" | "topics" | "latency" => row["throughput"]["delivered"].as_u64(),
                "connections" => row["connections"]["established"].as_u64(),
                _ => row["calls"]["ops"].as_u64(),
            };
            assert!(measured.unwrap_or(0) > 0, "{scenario} {target}: nothing measured\n{row}");
            assert!(row["latency"]["p99_us"].as_u64().unwrap_or(0) > 0, "{scenario} {target}: no latency\n{row}");
            assert!(row["server_rss_bytes"].as_u64().unwrap_or(0) > 0, "{scenario} {target}: no RSS");
        }
        if scenario == "latency" && Path::new(FONT).exists() {
            for chart in ["latency-p99.png", "latency-cdf.png"] {
                assert!(out.join(chart).exists(), "no chart {chart}\n{stderr}");
            }
        }
    }
    server.shutdown();
    server.stopped().await.unwrap();
    eprintln!("smoke took {:?}", started.elapsed());
}

/// The raw limits as the harness starts them (`chorus-bench raw-server`, `--writev` for `raw-writev`):
/// both deliver to every subscriber and the fan-out table shows both.
#[tokio::test]
async fn both_raw_limits_run_in_the_fanout_table() {
    let dir = tempfile::tempdir().unwrap();
    let args =
        ["--targets", "raw,raw-writev", "--no-pin", "--subscribers", "20", "--warmup", "0.2", "--duration", "0.6"];
    let (json, stdout, stderr) = run_bench("fanout", &[&args[..], &["--no-charts"]].concat(), dir.path()).await;
    let rows = rows(&json);
    for (row, target) in rows.iter().zip(["raw", "raw-writev"]) {
        assert_eq!(row["target"], target, "{stdout}");
        assert_eq!(row["status"], "ok", "{target}\n{stdout}\n{stderr}");
        assert!(row["throughput"]["delivered"].as_u64().unwrap_or(0) > 0, "{target}: nothing delivered\n{row}");
        assert!(stdout.lines().any(|l| l.split_whitespace().next() == Some(target)), "{target} not in\n{stdout}");
    }
    assert_eq!(rows.len(), 2, "{stdout}");
}

#[tokio::test]
async fn an_unknown_method_is_reported_not_crashed_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = node_config(&dir.path().join("data"), &[]);
    let server = chorus_core::server::start(config, Vec::new()).await.unwrap();
    let out = dir.path().join("results");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chorus-bench"))
        .args(["calls", "--targets", "chorus-msgpack", "--no-pin", "--warmup", "0.2", "--duration", "0.5"])
        .args(["--attach-http", &server.http_addr.to_string(), "--jwt-secret", SECRET, "--callers", "2"])
        .args(["--out-dir", out.to_str().unwrap(), "--no-charts"])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let json: Value = serde_json::from_slice(&std::fs::read(out.join("calls.json")).unwrap()).unwrap();
    let status = rows(&json)[0]["status"].as_str().unwrap_or_default().to_owned();
    assert!(status.contains("unknown method booking.get"), "{status}");
    assert!(status.contains("404"), "the missing REST route is named: {status}");
    assert!(stdout.contains("unknown method"), "{stdout}");
    server.shutdown();
    server.stopped().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_scenario_runs_against_three_nodes_and_one() {
    let redis = chorus_testkit::RedisServer::start(&[]).await.expect("redis-server");
    let port = redis.port();
    let dir = tempfile::tempdir().unwrap();
    let node = |name: &str, redis: bool| {
        let data = dir.path().join(name);
        let mut args = vec!["chorus", "--listen", "127.0.0.1:0", "--disable-quic", "--publish-rate", "10000000"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        args.extend([
            "--data-dir".to_owned(),
            data.to_str().unwrap().to_owned(),
            "--log".to_owned(),
            "warn".to_owned(),
        ]);
        if redis {
            let url = format!("redis://127.0.0.1:{port}");
            args.extend(["--redis-url", &url, "--store", "redis", "--node-id", name].map(String::from));
        }
        Config::load_from(args).unwrap()
    };
    let single = chorus_core::server::start(node("single", false), Vec::new()).await.unwrap();
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        nodes.push(chorus_core::server::start(node(name, true), Vec::new()).await.unwrap());
    }
    let attach_nodes = nodes.iter().map(|n| n.http_addr.to_string()).collect::<Vec<_>>().join(",");
    let (single_http, pid) = (single.http_addr.to_string(), std::process::id().to_string());
    let args = [
        ["--targets", "chorus-msgpack", "--no-pin", "--warmup", "0.2", "--duration", "0.6"].as_slice(),
        &["--subscribers", "12", "--publish-from", "every", "--rate", "200", "--no-charts"],
        &["--attach-http", &single_http, "--attach-pid", &pid, "--attach-nodes", &attach_nodes],
    ]
    .concat();
    let (json, stdout, stderr) = run_bench("cluster", &args, &dir.path().join("results")).await;
    let rows = rows(&json);
    assert_eq!(rows.len(), 4, "throughput and latency, single and cluster\n{stdout}");
    for row in rows {
        let label = format!("{} {}", row["target"], row["cluster"]["phase"]);
        assert_eq!(row["status"], "ok", "{label}\n{stdout}\n{stderr}");
        assert!(row["throughput"]["delivered"].as_u64().unwrap_or(0) > 0, "{label}: nothing delivered\n{row}");
        assert_eq!(row["throughput"]["surplus"], 0, "{label}: duplicate deliveries\n{row}");
        assert!(row["latency"]["p99_us"].as_u64().unwrap_or(0) > 0, "{label}: no latency\n{row}");
        let nodes = row["cluster"]["nodes"].as_u64().unwrap_or(0);
        assert!(nodes == 1 || nodes == 3, "{label}: nodes {nodes}");
        if nodes == 3 {
            assert!(
                row["cluster"]["vs_single"]["delivered_per_sec"].as_f64().unwrap_or(0.0) > 0.0,
                "{label}: no ratio"
            );
            assert_eq!(row["cluster"]["publisher_nodes"], serde_json::json!(["a", "b", "c"]), "{label}");
        }
    }
    for node in nodes.iter().chain([&single]) {
        node.shutdown();
    }
    for node in nodes.into_iter().chain([single]) {
        node.stopped().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reactions_scenario_feeds_every_viewer() {
    let dir = tempfile::tempdir().unwrap();
    let config = node_config(&dir.path().join("data"), &["--publish-rate", "10000000"]);
    let settings = chorus_live_commerce::Settings { interactions_per_sec: 10_000_000, ..Default::default() };
    let services = chorus_core::server::Services {
        modules: vec![chorus_live_commerce::module_with(settings)],
        socketio: vec![chorus_live_commerce::socketio()],
    };
    let clock = std::sync::Arc::new(chorus_core::store::SystemClock);
    let server = chorus_core::server::start_services(config, services, clock).await.unwrap();
    let (http, pid) = (server.http_addr.to_string(), std::process::id().to_string());
    let args = [
        ["--targets", "chorus-msgpack,chorus-socketio", "--no-pin", "--warmup", "0.2", "--duration", "0.6"].as_slice(),
        &["--viewers", "20", "--senders", "2", "--inflight", "16", "--no-charts", "--jwt-secret", SECRET],
        &["--attach-http", &http, "--attach-pid", &pid],
    ]
    .concat();
    let (json, stdout, stderr) = run_bench("reactions", &args, &dir.path().join("results")).await;
    let rows = rows(&json);
    assert_eq!(rows.len(), 2, "one row per target\n{stdout}");
    for row in rows {
        let target = row["target"].as_str().unwrap_or("?");
        assert_eq!(row["status"], "ok", "{target}\n{stdout}\n{stderr}");
        let r = &row["reactions"];
        let ingested = r["ingested"].as_u64().unwrap_or(0);
        assert!(ingested > 0, "{target}: nothing ingested\n{row}");
        assert!(r["sent"].as_u64().unwrap_or(0) > 0, "{target}: nothing sent\n{row}");
        assert_eq!(r["viewers"], 20, "{target}");
        assert_eq!(r["viewers_without_stats"], 0, "{target}: a viewer got no stats\n{row}");
        assert!(r["min_stats_per_viewer"].as_u64().unwrap_or(0) > 0, "{target}\n{row}");
        assert!(r["stats_delivered"].as_u64().unwrap_or(0) >= 20, "{target}\n{row}");
        assert!(row["latency"]["p99_us"].as_u64().unwrap_or(0) > 0, "{target}: no latency\n{row}");
        assert_eq!(row["errors"], 0, "{target}: refused reactions\n{row}");
    }
    server.shutdown();
    server.stopped().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soak_scenario_samples_rss_and_p99_over_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = node_config(&dir.path().join("data"), &["--publish-rate", "10000000"]);
    let server = chorus_core::server::start(config, Vec::new()).await.unwrap();
    let (http, pid) = (server.http_addr.to_string(), std::process::id().to_string());
    let args = [
        ["--targets", "chorus-msgpack", "--no-pin", "--warmup", "0.2", "--duration", "1.5"].as_slice(),
        &["--subscribers", "20", "--probe", "0.5", "--sample-every", "0.25"],
        &["--attach-http", &http, "--attach-pid", &pid],
    ]
    .concat();
    let out = dir.path().join("results");
    let (json, stdout, stderr) = run_bench("soak", &args, &out).await;
    let rows = rows(&json);
    assert_eq!(rows.len(), 1, "{stdout}");
    let row = &rows[0];
    assert_eq!(row["status"], "ok", "{stdout}\n{stderr}");
    assert!(row["throughput"]["delivered"].as_u64().unwrap_or(0) > 0, "nothing delivered\n{row}");
    let soak = &row["soak"];
    let probed = soak["probe_published_per_sec"].as_f64().unwrap_or(0.0);
    assert!(probed > 0.0, "the rate comes from the probe\n{soak}");
    assert!((soak["rate"].as_f64().unwrap_or(0.0) - probed / 2.0).abs() < 1e-6, "half of the probe's max\n{soak}");
    let series = soak["series"].as_array().expect("series");
    assert!(series.len() >= 4, "a point every 0.25 s over 1.5 s\n{soak}");
    assert!(series.iter().all(|p| p["rss_bytes"].as_u64().unwrap_or(0) > 0), "RSS in every point\n{soak}");
    assert!(series.iter().any(|p| p["p99_us"].as_u64().unwrap_or(0) > 0), "p99 in the points\n{soak}");
    let first = soak["rss_first_bytes"].as_u64().expect("RSS of the first third");
    assert!(soak["rss_max_bytes"].as_u64().unwrap_or(0) >= first, "{soak}");
    assert!(stdout.contains("half of the probe's"), "{stdout}");
    if Path::new(FONT).exists() {
        assert!(out.join("soak.png").exists(), "no soak.png\n{stderr}");
    }
    server.shutdown();
    server.stopped().await.unwrap();
}
