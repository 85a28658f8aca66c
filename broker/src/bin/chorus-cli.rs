//! `chorus-cli`: a small command-line client for the chorus broker, built on the `chorus-client` SDK.
//!
//! ```sh
//! # Mint a development HS256 token (the broker must run with the same CHORUS_JWT_SECRET).
//! TOKEN=$(cargo run -q -p chorus-client --example chorus-cli -- mint --secret dev-secret --sub alice --name Alice)
//! # Print every event on a topic as one JSON line: {"topic":…,"seq":…,"payload":…}
//! cargo run -q -p chorus-client --example chorus-cli -- --token "$TOKEN" subscribe chat/lobby
//! # Publish a JSON value and print its seq; call a module method; measure the round trip.
//! cargo run -q -p chorus-client --example chorus-cli -- --token "$TOKEN" publish chat/lobby '{"text":"hello"}'
//! cargo run -q -p chorus-client --example chorus-cli -- --token "$TOKEN" call module.method '{"arg":1}'
//! cargo run -q -p chorus-client --example chorus-cli -- ping
//! ```
//!
//! Global flags go before the subcommand: `--url` (WebSocket, MessagePack unless `--json`), or
//! `--quic <addr> --pin <sha256 hex>` for QUIC, and `--token` (or `CHORUS_TOKEN`; without one the connection
//! is a guest). `subscribe` runs until Ctrl-C or until the server closes the connection; it then prints the
//! close code and reason on stderr and fails unless the code is 1000 (normal) or 1001 (going away).
//! Server errors are reported with their code and message.

use anyhow::{Context, bail};
use chorus_client::{Client, Codec, ConnectOptions, Payload};
use clap::{Parser, Subcommand};
use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(about = "Command-line client for the chorus broker")]
struct Cli {
    /// WebSocket endpoint.
    #[arg(long, default_value = "ws://127.0.0.1:7400/v1/ws")]
    url: String,
    /// Use the JSON codec instead of MessagePack (WebSocket only).
    #[arg(long, conflicts_with = "quic")]
    json: bool,
    /// Connect over QUIC to this UDP address instead of WebSocket.
    #[arg(long, requires = "pin")]
    quic: Option<SocketAddr>,
    /// SHA-256 fingerprint of the broker's QUIC certificate (`<data-dir>/quic-cert.sha256`).
    #[arg(long, requires = "quic")]
    pin: Option<String>,
    /// JWT to authenticate with; without one the connection is a guest.
    #[arg(long, env = "CHORUS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print an HS256 development token.
    Mint {
        /// The broker's HS256 secret (`CHORUS_JWT_SECRET`).
        #[arg(long)]
        secret: String,
        /// The identity (`sub` claim).
        #[arg(long)]
        sub: String,
        /// Display name (`name` claim).
        #[arg(long)]
        name: Option<String>,
        /// Role (`role` claim).
        #[arg(long)]
        role: Option<String>,
        /// Lifetime: `exp` is now plus this many seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl_secs: u64,
    },
    /// Subscribe to a topic and print its events as JSON lines.
    Subscribe { topic: String },
    /// Publish a JSON value to a topic and print its seq.
    Publish {
        topic: String,
        #[arg(value_parser = json_arg)]
        json: Payload,
    },
    /// Call a module method (`module.method`) with JSON arguments and print the result as JSON.
    Call {
        method: String,
        #[arg(value_parser = json_arg)]
        args: Payload,
    },
    /// Print the round-trip time of a ping.
    Ping,
}

/// One line of `subscribe` output, fields in this order.
#[derive(Serialize)]
struct EventLine<'a> {
    topic: &'a str,
    seq: u64,
    payload: &'a Payload,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Mint { secret, sub, name, role, ttl_secs } = &cli.command {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let mut claims = serde_json::json!({ "sub": sub, "iat": now, "exp": now + ttl_secs });
        for (claim, value) in [("name", name), ("role", role)] {
            if let Some(value) = value {
                claims[claim] = value.as_str().into();
            }
        }
        println!(
            "{}",
            jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes()))?
        );
        return Ok(());
    }

    let mut options = match (cli.quic, &cli.pin) {
        (Some(addr), Some(pin)) => ConnectOptions::quic(addr, "localhost").pin_sha256(pin.trim()),
        _ => ConnectOptions::websocket(&cli.url).codec(if cli.json { Codec::Json } else { Codec::MsgPack }),
    };
    if let Some(token) = &cli.token {
        options = options.token(token);
    }
    let client = Client::connect(options).await.context("connecting")?;

    match cli.command {
        Command::Mint { .. } => unreachable!("handled above"),
        Command::Subscribe { topic } => subscribe(&client, &topic).await?,
        Command::Publish { topic, json } => println!("{}", client.publish(&topic, json).await?),
        Command::Call { method, args } => println!("{}", client.call(&method, args).await?.to_json()),
        Command::Ping => println!("{:.3} ms", client.ping().await?.as_secs_f64() * 1e3),
    }
    client.close().await;
    Ok(())
}

/// Parses a command-line argument as a JSON payload (before connecting, so a typo is a usage error).
fn json_arg(text: &str) -> Result<Payload, String> {
    Payload::from_json(text.to_owned().into()).map_err(|e| e.to_string())
}

/// Prints events until Ctrl-C (`main` then closes normally) or until the server ends the connection.
async fn subscribe(client: &Client, topic: &str) -> anyhow::Result<()> {
    let reply = client.subscribe(topic).await?;
    eprintln!("subscribed to {topic} at seq {}", reply.seq);
    // Ping at a third of the broker's idle timeout so a quiet topic does not get the connection closed.
    let idle = Duration::from_millis(client.welcome().limits.idle_timeout_ms.max(3_000));
    let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + idle / 3, idle / 3);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            event = client.next_event() => {
                let Some(e) = event else { break };
                let line = EventLine { topic: &e.topic, seq: e.seq, payload: &e.payload };
                println!("{}", serde_json::to_string(&line)?);
            }
            _ = keepalive.tick() => {
                // A failed ping means the connection is closing; `next_event` then reports how.
                let _ = client.ping().await;
            }
            _ = &mut ctrl_c => return Ok(()),
        }
    }
    let info = client.closed().await;
    let code = info.code.map_or_else(|| "none".to_owned(), |c| c.to_string());
    let message = format!("connection closed: code {code}: {}", info.reason);
    if !matches!(info.code, Some(1000 | 1001)) {
        bail!(message);
    }
    eprintln!("{message}");
    Ok(())
}
