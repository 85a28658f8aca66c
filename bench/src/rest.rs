//! The REST requests a scenario's setup makes on a chorus node (the `calls` scenario's event, the
//! `reactions` scenario's live session): one HTTP/1.1 request per connection, a JSON body both ways.

use anyhow::{Context as _, anyhow};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Largest REST answer read.
const MAX_HTTP_RESPONSE: u64 = 64 * 1024;

/// `method path` with the bearer `token` and the JSON `body`; returns the status and the JSON answer
/// (`Null` when the body is empty or not JSON).
pub async fn request(
    http: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let body = body.map(serde_json::Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {http}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(http).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.take(MAX_HTTP_RESPONSE).read_to_end(&mut response).await?;
        Ok::<_, anyhow::Error>(response)
    };
    let response = tokio::time::timeout(crate::conn::SETUP_TIMEOUT, exchange)
        .await
        .with_context(|| format!("{method} {path} timed out"))??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) =
        text.split_once("\r\n\r\n").ok_or_else(|| anyhow!("{method} {path}: malformed HTTP response"))?;
    let status = head
        .split_ascii_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("{method} {path}: no status in {head:?}"))?;
    // Only non-chunked bodies are expected (axum sets Content-Length for JSON).
    Ok((status, serde_json::from_str(body.trim()).unwrap_or(serde_json::Value::Null)))
}
