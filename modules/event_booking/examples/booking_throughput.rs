//! Measures booking throughput: an in-process broker with the booking module on the embedded store,
//! native clients (WebSocket, MessagePack) booking one seat per call as fast as replies come back.
//!
//! Two scenarios: every client books the same event (all bookings race on one seats row), and each client
//! books its own event (rows do not contend; the store's group commit is shared).
//!
//! ```sh
//! cargo run --release -p chorus-event-booking --example booking_throughput -- [clients] [bookings]
//! ```
//! Defaults: 64 clients, 20,000 bookings per scenario.

use anyhow::{Context as _, bail};
use chorus_client::{Client, ConnectOptions, Payload};
use chorus_core::config::Config;
use chorus_core::server::{self, Server};
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "booking-throughput";

fn token(sub: &str, role: Option<&str>) -> anyhow::Result<String> {
    let claims = json!({"sub": sub, "role": role, "exp": jsonwebtoken::get_current_timestamp() + 3600});
    Ok(encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes()))?)
}

async fn client(server: &Server, sub: &str) -> anyhow::Result<Client> {
    let url = format!("ws://{}/v1/ws", server.http_addr);
    let options = ConnectOptions::websocket(url).token(token(sub, None)?).request_timeout(Duration::from_secs(60));
    Ok(Client::connect(options).await?)
}

/// Creates an event through `POST /api/events` (one raw HTTP/1.1 request) and returns its id.
async fn create_event(server: &Server, seats: usize) -> anyhow::Result<u64> {
    let body = json!({"title": "throughput", "seatCapacity": seats}).to_string();
    let request = format!(
        "POST /api/events HTTP/1.1\r\nHost: bench\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        token("bench-admin", Some("admin"))?,
        body.len()
    );
    let mut stream = TcpStream::connect(server.http_addr).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    let (head, body) = answer.split_once("\r\n\r\n").context("HTTP answer without a body")?;
    if !head.starts_with("HTTP/1.1 201") {
        bail!("creating an event failed: {answer}");
    }
    serde_json::from_str::<Value>(body)?["id"].as_u64().context("event id")
}

/// Books `count` single seats of `event_id` one after another; returns how many succeeded.
async fn book(client: Client, event_id: u64, count: usize) -> anyhow::Result<usize> {
    let args = Payload::from_value(&json!({"eventId": event_id, "seats": 1}))?;
    for _ in 0..count {
        client.call("booking.book", args.clone()).await.context("booking")?;
    }
    Ok(count)
}

async fn scenario(server: &Server, name: &str, events: &[u64], clients: usize, bookings: usize) -> anyhow::Result<()> {
    let mut connected = Vec::with_capacity(clients);
    for i in 0..clients {
        connected.push(client(server, &format!("bench-{name}-{i}")).await?);
    }
    let per_client = bookings / clients;
    let started = Instant::now();
    let tasks: Vec<_> = connected
        .into_iter()
        .enumerate()
        .map(|(i, c)| tokio::spawn(book(c, events[i % events.len()], per_client)))
        .collect();
    let mut done = 0;
    for task in tasks {
        done += task.await??;
    }
    let elapsed = started.elapsed();
    println!(
        "{name}: {done} bookings by {clients} clients on {} event(s) in {:.2?} = {:.0} bookings/s",
        events.len(),
        elapsed,
        done as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let clients: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(64);
    let bookings: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(20_000);
    let dir = tempfile::tempdir()?;
    let config = Config::load_from([
        "chorus",
        "--listen",
        "127.0.0.1:0",
        "--disable-quic",
        "--jwt-secret",
        SECRET,
        "--log",
        "warn",
        "--data-dir",
        dir.path().to_str().context("utf-8 temp dir")?,
    ])?;
    let server = server::start(config, vec![chorus_event_booking::module()]).await?;

    let hot = create_event(&server, bookings).await?;
    scenario(&server, "one event", &[hot], clients, bookings).await?;
    let mut spread = Vec::with_capacity(clients);
    for _ in 0..clients {
        spread.push(create_event(&server, bookings / clients).await?);
    }
    scenario(&server, "one event per client", &spread, clients, bookings).await?;

    server.shutdown();
    server.stopped().await
}
