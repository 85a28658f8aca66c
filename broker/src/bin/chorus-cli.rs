//! `chorus-cli`: a small command-line client for the chorus broker, built on the `chorus-client` SDK.
//!
//! It is a binary of the `chorus-broker` package (not of the SDK) so that README's commands share one
//! build: `cargo run --release -p chorus-broker --bin chorus-cli` reuses every crate the broker's own
//! `cargo run --release -p chorus-broker` compiled, with the same features.
//!
//! ```sh
//! # Mint a development HS256 token (the broker must run with the same CHORUS_JWT_SECRET).
//! export CHORUS_TOKEN=$(chorus-cli mint --secret dev-secret --sub alice --name Alice)
//! # Print the subscribe snapshot and every event on a topic, one JSON line each; resumes after a restart.
//! chorus-cli subscribe chat/lobby
//! # Publish a JSON value and print its seq; call a module method; measure the round trip.
//! chorus-cli publish chat/lobby '{"text":"hello"}'
//! chorus-cli publish chat/lobby '{"text":"over QUIC"}' --quic
//! chorus-cli call chorus.presence '{"topic":"chat/lobby"}'
//! chorus-cli ping --json
//! ```
//!
//! Connection options may go before or after the subcommand: `--url` (WebSocket, MessagePack unless
//! `--json`), or `--quic` (address `--quic-addr`, certificate pin `--pin`, by default the fingerprint the
//! broker wrote to `<data dir>/quic-cert.sha256`), and `--token` (or `CHORUS_TOKEN`; without one the
//! connection is a guest). Errors are printed as one line of plain words on stderr (exit code 1); usage
//! errors exit with 2.

use anyhow::{Context, bail};
use chorus_client::{Client, ClientError, Codec, ConnectOptions, Delivery, Payload, ResumeOptions, ResumingClient};
use clap::{Args, Parser, Subcommand};
use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(name = "chorus-cli", about = "Command-line client for the chorus broker")]
struct Cli {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: Command,
}

/// How to reach the broker; accepted before or after the subcommand.
#[derive(Args)]
struct Connection {
    /// WebSocket endpoint.
    #[arg(long, global = true, env = "CHORUS_URL", default_value = "ws://127.0.0.1:7400/v1/ws")]
    url: String,
    /// Use the JSON codec instead of MessagePack (WebSocket only).
    #[arg(long, global = true, conflicts_with = "quic")]
    json: bool,
    /// Connect over QUIC instead of WebSocket.
    #[arg(long, global = true)]
    quic: bool,
    /// The broker's QUIC address (UDP), `host:port`.
    #[arg(long, global = true, env = "CHORUS_QUIC_ADDR", default_value = "127.0.0.1:7401")]
    quic_addr: String,
    /// SHA-256 fingerprint of the broker's QUIC certificate. Default: the one the broker wrote to
    /// `<data dir>/quic-cert.sha256`.
    #[arg(long, global = true, env = "CHORUS_QUIC_PIN")]
    pin: Option<String>,
    /// The broker's data directory, where `--quic` reads the certificate fingerprint when `--pin` is not given.
    #[arg(long, global = true, env = "CHORUS_DATA_DIR", default_value = "./chorus-data")]
    data_dir: PathBuf,
    /// JWT to authenticate with; without one the connection is a guest.
    #[arg(long, global = true, env = "CHORUS_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Print an HS256 development token.
    Mint {
        /// The broker's HS256 secret.
        #[arg(long, env = "CHORUS_JWT_SECRET", hide_env_values = true)]
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
    /// Subscribe to a topic; print its snapshot (if its module has one) and its events as JSON lines.
    /// Reconnects and resumes from the last event when the connection is lost (e.g. a broker restart).
    Subscribe {
        /// The topic, e.g. `chat/lobby`.
        topic: String,
    },
    /// Publish a JSON value to a topic and print its seq.
    Publish {
        /// The topic, e.g. `chat/lobby`.
        topic: String,
        /// The payload: any JSON value, e.g. `{"text":"hello"}`.
        #[arg(value_name = "JSON", value_parser = json_arg)]
        value: Payload,
    },
    /// Call a module method (`module.method`) with JSON arguments (default `{}`) and print the result.
    Call {
        /// `module.method`, e.g. `chorus.presence`.
        method: String,
        /// The arguments as JSON.
        #[arg(value_name = "JSON", value_parser = json_arg, default_value = "{}")]
        args: Payload,
    },
    /// Print the round-trip time of a ping.
    Ping,
}

/// One line of `subscribe` output for an event, fields in this order.
#[derive(Serialize)]
struct EventLine<'a> {
    topic: &'a str,
    seq: u64,
    payload: &'a Payload,
}

/// One line of `subscribe` output for a module's snapshot of the topic (at subscribe and after a resume).
#[derive(Serialize)]
struct SnapshotLine<'a> {
    topic: &'a str,
    snapshot: &'a Payload,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", plain(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Mint { secret, sub, name, role, ttl_secs } = &cli.command {
        println!("{}", mint(secret, sub, name.as_deref(), role.as_deref(), *ttl_secs)?);
        return Ok(());
    }
    let (options, target) = cli.connection.options()?;
    if let Command::Subscribe { topic } = &cli.command {
        return subscribe(options, &target, topic).await;
    }
    let client = Client::connect(options).await.map_err(|e| unreachable_broker(e, &target))?;
    let outcome = match cli.command {
        Command::Publish { topic, value } => client.publish(&topic, value).await.map(|seq| seq.to_string()),
        Command::Call { method, args } => client.call(&method, args).await.map(|result| result.to_json().to_string()),
        Command::Ping => client.ping().await.map(|rtt| format!("{:.3} ms", rtt.as_secs_f64() * 1e3)),
        Command::Mint { .. } | Command::Subscribe { .. } => unreachable!("handled above"),
    };
    client.close().await;
    println!("{}", outcome?);
    Ok(())
}

fn mint(secret: &str, sub: &str, name: Option<&str>, role: Option<&str>, ttl_secs: u64) -> anyhow::Result<String> {
    if secret.is_empty() {
        bail!("the secret is empty (--secret or CHORUS_JWT_SECRET)");
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut claims = serde_json::json!({ "sub": sub, "iat": now, "exp": now + ttl_secs });
    for (claim, value) in [("name", name), ("role", role)] {
        if let Some(value) = value {
            claims[claim] = value.into();
        }
    }
    Ok(jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes()))?)
}

impl Connection {
    /// The SDK options, and the endpoint in words for error messages.
    fn options(&self) -> anyhow::Result<(ConnectOptions, String)> {
        let (mut options, target) = if self.quic {
            let addr = resolve(&self.quic_addr)?;
            let pin = match &self.pin {
                Some(pin) => pin.clone(),
                None => {
                    let path = self.data_dir.join("quic-cert.sha256");
                    std::fs::read_to_string(&path).with_context(|| {
                        format!(
                            "--quic needs the broker's certificate fingerprint: give --pin, or run where {} \
                             exists (the broker writes it at start; --data-dir / CHORUS_DATA_DIR)",
                            path.display()
                        )
                    })?
                }
            };
            (ConnectOptions::quic(addr, "localhost").pin_sha256(pin.trim()), format!("QUIC {}", self.quic_addr))
        } else {
            let codec = if self.json { Codec::Json } else { Codec::MsgPack };
            (ConnectOptions::websocket(&self.url).codec(codec), self.url.clone())
        };
        if let Some(token) = &self.token {
            if token.trim().is_empty() {
                bail!(
                    "the token is empty (--token or CHORUS_TOKEN): mint one with `chorus-cli mint`, or unset \
                     CHORUS_TOKEN to connect as a guest"
                );
            }
            options = options.token(token.trim());
        }
        Ok((options, target))
    }
}

/// `host:port` to the first address it resolves to (`localhost:7401` as well as `127.0.0.1:7401`).
fn resolve(addr: &str) -> anyhow::Result<SocketAddr> {
    let mut addrs = addr.to_socket_addrs().with_context(|| format!("--quic-addr {addr} is not a host:port"))?;
    addrs.next().with_context(|| format!("--quic-addr {addr} resolves to no address"))
}

/// Names the endpoint when the broker cannot be reached at all.
fn unreachable_broker(e: ClientError, target: &str) -> anyhow::Error {
    match e {
        ClientError::Transport(_) | ClientError::Timeout => {
            anyhow::Error::new(e).context(format!("cannot reach the broker at {target} (is it running?)"))
        }
        other => other.into(),
    }
}

/// An error chain as one line: each cause once (the SDK's and the transport's messages repeat their
/// source's text, which would otherwise print "Connection refused" three times).
fn plain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

/// Parses a command-line argument as a JSON payload (before connecting, so a typo is a usage error).
fn json_arg(text: &str) -> Result<Payload, String> {
    Payload::from_json(text.to_owned().into()).map_err(|e| e.to_string())
}

/// Prints the snapshot and events until Ctrl-C, resuming across lost connections. Ends with an error when
/// the client stops reconnecting (authentication refused) or the subscription is refused.
async fn subscribe(options: ConnectOptions, target: &str, topic: &str) -> anyhow::Result<()> {
    let client =
        ResumingClient::connect(options, ResumeOptions::new()).await.map_err(|e| unreachable_broker(e, target))?;
    let reply = client.subscribe(topic).await?;
    eprintln!("subscribed to {topic} at seq {}", reply.seq);
    if let Some(snapshot) = &reply.snapshot {
        println!("{}", serde_json::to_string(&SnapshotLine { topic, snapshot })?);
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let delivery = tokio::select! {
            delivery = client.next() => delivery,
            _ = &mut ctrl_c => break,
        };
        match delivery {
            Some(Delivery::Event(e)) => {
                println!("{}", serde_json::to_string(&EventLine { topic: &e.topic, seq: e.seq, payload: &e.payload })?);
            }
            Some(Delivery::Disconnected { info, reconnecting: true }) => {
                let code = info.code.map_or_else(String::new, |c| format!(" (code {c})"));
                eprintln!("connection lost{code}: {}; reconnecting", info.reason);
            }
            Some(Delivery::Disconnected { info, reconnecting: false }) => {
                let code = info.code.map_or_else(String::new, |c| format!(" with code {c}"));
                bail!("connection closed{code}: {}", info.reason);
            }
            Some(Delivery::Reconnected(_)) => eprintln!("reconnected"),
            Some(Delivery::Resumed { topic, recovered, snapshot }) => {
                let gap = if recovered { "nothing missed" } else { "events were missed" };
                eprintln!("resumed {topic} ({gap})");
                if let Some(snapshot) = &snapshot {
                    println!("{}", serde_json::to_string(&SnapshotLine { topic: &topic, snapshot })?);
                }
            }
            Some(Delivery::SubscriptionLost { topic, error }) => {
                return Err(anyhow::Error::new(error).context(format!("subscription to {topic} refused")));
            }
            Some(_) => eprintln!("(a connection update this chorus-cli cannot show)"),
            None => break,
        }
    }
    client.close().await;
    Ok(())
}
