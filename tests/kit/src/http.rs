//! A minimal HTTP/1.1 client for tests: one request per connection (`Connection: close`), the answer read
//! to the end, chunked bodies joined. Enough to check a status, headers and a body byte for byte, with no
//! client library between the test and what the broker really sends.

use anyhow::{Context, Result};
use serde_json::Value;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The status line and headers, as received.
    pub head: String,
    /// The body (chunks joined).
    pub body: String,
}

impl Response {
    /// The body as JSON: `Null` when empty, a JSON string when it is not JSON.
    pub fn json(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&self.body).unwrap_or_else(|_| Value::String(self.body.clone()))
    }

    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// Sends `method path` with `headers` and `body` (a `Content-Length` is added for every method but a
/// bodiless `GET`) and reads the answer.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Response> {
    let mut stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method != "GET" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.context("sending the request")?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.context("reading the answer")?;
    let text = String::from_utf8(raw).context("the answer is not UTF-8")?;
    let (head, rest) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let status = head.split_whitespace().nth(1).context("no status")?.parse().context("bad status")?;
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let body = if chunked { dechunk(rest)? } else { rest.to_owned() };
    Ok(Response { status, head: head.to_owned(), body })
}

fn dechunk(mut s: &str) -> Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").context("chunk size")?;
        let size = usize::from_str_radix(size.trim(), 16).context("hex chunk size")?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).context("short chunk")?);
        s = rest.get(size + 2..).context("chunk end")?;
    }
}
