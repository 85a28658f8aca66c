//! A real Prometheus (Debian `prometheus`) scrapes the broker's `/metrics` and answers queries on it.

use crate::support::*;
use chorus_client::{Client, ConnectOptions};
use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Asks Prometheus's HTTP API for an instant query; returns the first sample's value.
async fn query(prometheus: std::net::SocketAddr, promql: &str) -> Option<f64> {
    let encoded: String = promql
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, body) =
        http_request(prometheus, "GET", &format!("/api/v1/query?query={encoded}"), &[], None).await.ok()?;
    if status != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[tokio::test]
async fn prometheus_scrapes_the_broker() {
    let prometheus_bin =
        which("prometheus").expect("prometheus is not installed (Debian package `prometheus`; .ci/run installs it)");
    let broker = Broker::start(&[]).await;
    let _client = Client::connect(ConnectOptions::websocket(broker.ws_url(""))).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: chorus\n    static_configs:\n      - targets: ['{}']\n",
            broker.http
        ),
    )
    .unwrap();
    let mut prometheus = tokio::process::Command::new(prometheus_bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address={listen}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start prometheus");

    // Prometheus offers no push notification for "scraped"; poll its API, bounded.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let up = query(listen, r#"up{job="chorus"}"#).await;
        let conns = query(listen, r#"chorus_connections{transport="ws"}"#).await;
        if up == Some(1.0) && conns == Some(1.0) {
            break;
        }
        if let Ok(Some(status)) = prometheus.try_wait() {
            panic!("Prometheus exited ({status}) before it scraped chorus: is {listen} taken?");
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape chorus within 120 s (up={up:?}, connections={conns:?})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let accepted = query(listen, r#"sum(chorus_connections_total)"#).await;
    assert!(accepted.is_some_and(|n| n >= 1.0), "{accepted:?}");
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| std::path::Path::new(d).join(name)).find(|p| p.is_file())
}
