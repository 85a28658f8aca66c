//! [`ResumingClient`] against real brokers started in-process on port 0: connections cut by a TCP proxy the
//! test controls, closed by the broker (4002 idle timeout, 1001 shutdown), resumed on the same broker
//! (recovered or not, depending on its history) or on another one, and the cases where the client stops.

use chorus_client::{
    Client, ClientError, CloseCode, ConnectOptions, Delivery, Payload, Position, ResumeOptions, ResumingClient,
};
use chorus_core::config::Config;
use chorus_core::server::{self, Server};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How long a test waits for something that should happen within milliseconds.
const PATIENCE: Duration = Duration::from_secs(10);

struct Broker {
    server: Server,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// A broker on 127.0.0.1:0 (WebSocket only) with extra command-line `args`.
    async fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap().to_owned();
        let mut argv = vec!["chorus", "--listen", "127.0.0.1:0", "--disable-quic", "--data-dir", &data_dir];
        argv.extend_from_slice(args);
        let server = server::start(Config::load_from(argv).unwrap(), Vec::new()).await.unwrap();
        Self { server, _dir: dir }
    }

    fn addr(&self) -> SocketAddr {
        self.server.http_addr
    }

    fn options(&self) -> ConnectOptions {
        options(self.addr())
    }

    /// Shuts the broker down as SIGTERM would: every client is sent close 1001.
    fn shut_down(self) {
        self.server.shutdown();
        tokio::spawn(async move {
            let _dir = self._dir;
            let _ = self.server.stopped().await;
        });
    }
}

fn options(addr: SocketAddr) -> ConnectOptions {
    ConnectOptions::websocket(format!("ws://{addr}/v1/ws")).request_timeout(Duration::from_secs(5))
}

/// Short delays so that tests reconnect at once.
fn fast() -> ResumeOptions {
    ResumeOptions::new().min_delay(Duration::from_millis(5)).max_delay(Duration::from_millis(50))
}

/// A TCP proxy in front of a broker. [`cut`](Self::cut) drops every connection through it (the client sees
/// the transport fail, with no close code); while [`refuse`](Self::refuse) is on, it drops new connections
/// at once, so reconnect attempts fail, and counts them.
struct Proxy {
    addr: SocketAddr,
    refusing: Arc<AtomicBool>,
    cut: Arc<watch::Sender<u64>>,
    refused: watch::Receiver<u32>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let refusing = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(watch::channel(0u64).0);
        let (refused_tx, refused) = watch::channel(0u32);
        let (accept_refusing, accept_cut) = (refusing.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if accept_refusing.load(Ordering::SeqCst) {
                    drop(inbound);
                    refused_tx.send_modify(|n| *n += 1);
                    continue;
                }
                let mut cut = accept_cut.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { addr, refusing, cut, refused }
    }

    fn refuse(&self, on: bool) {
        self.refusing.store(on, Ordering::SeqCst);
    }

    fn cut(&self) {
        self.cut.send_modify(|generation| *generation += 1);
    }

    /// Waits until `n` connections in all have been refused.
    async fn refused(&self, n: u32) {
        let mut refused = self.refused.clone();
        tokio::time::timeout(PATIENCE, refused.wait_for(|count| *count >= n)).await.unwrap().unwrap();
    }
}

async fn next(client: &ResumingClient) -> Delivery {
    tokio::time::timeout(PATIENCE, client.next()).await.expect("a delivery in time").expect("the client runs")
}

/// A delivery in a form easy to compare.
fn describe(delivery: &Delivery) -> String {
    match delivery {
        Delivery::Event(e) => format!("{} #{} {}", e.topic, e.seq, e.payload.to_json()),
        Delivery::Disconnected { info, reconnecting } => {
            format!("disconnected code={:?} reconnecting={reconnecting}", info.code)
        }
        Delivery::Reconnected(_) => "reconnected".into(),
        Delivery::Resumed { topic, recovered, .. } => format!("resumed {topic} recovered={recovered}"),
        Delivery::SubscriptionLost { topic, error } => format!("lost {topic}: {error}"),
        other => format!("{other:?}"),
    }
}

/// The next `n` deliveries, described.
async fn take(client: &ResumingClient, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(describe(&next(client).await));
    }
    out
}

async fn publish(publisher: &Client, topic: &str, values: impl IntoIterator<Item = u64>) {
    for n in values {
        publisher.publish(topic, Payload::from_value(&n).unwrap()).await.unwrap();
    }
}

fn events(topic: &str, seqs: impl IntoIterator<Item = u64>) -> Vec<String> {
    seqs.into_iter().map(|n| format!("{topic} #{n} {n}")).collect()
}

#[tokio::test]
async fn a_cut_connection_resumes_with_exactly_the_missed_events() {
    let broker = Broker::start(&[]).await;
    let proxy = Proxy::start(broker.addr()).await;
    let client = ResumingClient::connect(options(proxy.addr), fast()).await.unwrap();
    let publisher = Client::connect(broker.options()).await.unwrap();
    let reply = client.subscribe("news").await.unwrap();
    publish(&publisher, "news", 1..=3).await;
    assert_eq!(take(&client, 3).await, events("news", 1..=3));
    assert_eq!(client.position("news").await, reply.position(3));

    proxy.refuse(true);
    proxy.cut();
    assert_eq!(take(&client, 1).await, ["disconnected code=None reconnecting=true"]);
    assert!(!client.is_connected());
    publish(&publisher, "news", 4..=6).await;
    proxy.refused(2).await;
    proxy.refuse(false);

    let mut expected = vec!["reconnected".to_owned(), "resumed news recovered=true".to_owned()];
    expected.extend(events("news", 4..=6));
    assert_eq!(take(&client, 5).await, expected, "the missed events, once each");
    publish(&publisher, "news", [7]).await;
    assert_eq!(take(&client, 1).await, events("news", [7]), "then live events, without duplicates");
    assert_eq!(client.position("news").await, reply.position(7), "same epoch, new offset");
    assert!(client.is_connected());

    let info = client.close().await;
    assert_eq!((info.close_code(), info.by_client), (Some(CloseCode::Normal), true));
    assert!(client.next().await.is_none(), "a closed client's stream ends");
    assert!(matches!(client.ping().await, Err(ClientError::Closed { code: Some(1000), .. })));
}

#[tokio::test]
async fn a_gap_beyond_the_history_is_reported_as_not_recovered() {
    let broker = Broker::start(&["--history-size", "2"]).await;
    let proxy = Proxy::start(broker.addr()).await;
    let client = ResumingClient::connect(options(proxy.addr), fast()).await.unwrap();
    let publisher = Client::connect(broker.options()).await.unwrap();
    client.subscribe("feed").await.unwrap();
    client.subscribe("quiet").await.unwrap();
    publish(&publisher, "feed", [1]).await;
    publish(&publisher, "quiet", [1]).await;
    let mut got = take(&client, 2).await;
    got.sort();
    assert_eq!(got, ["feed #1 1", "quiet #1 1"]);

    proxy.refuse(true);
    proxy.cut();
    assert_eq!(take(&client, 1).await, ["disconnected code=None reconnecting=true"]);
    publish(&publisher, "feed", 2..=6).await;
    proxy.refuse(false);

    assert_eq!(take(&client, 1).await, ["reconnected"]);
    let mut resumed = take(&client, 2).await;
    resumed.sort();
    assert_eq!(resumed, ["resumed feed recovered=false", "resumed quiet recovered=true"]);
    publish(&publisher, "feed", [7]).await;
    assert_eq!(take(&client, 1).await, events("feed", [7]), "nothing replayed after a failed recovery");
}

#[tokio::test]
async fn a_connection_the_broker_closes_for_idleness_is_resumed() {
    let broker = Broker::start(&["--idle-timeout-secs", "1"]).await;
    let client = ResumingClient::connect(broker.options().no_keepalive(), fast()).await.unwrap();
    let publisher = Client::connect(broker.options()).await.unwrap();
    client.subscribe("news").await.unwrap();
    publish(&publisher, "news", [1]).await;
    assert_eq!(take(&client, 1).await, events("news", [1]));

    // Nothing more is sent, so the broker closes the connection after its idle timeout.
    assert_eq!(
        take(&client, 3).await,
        ["disconnected code=Some(4002) reconnecting=true", "reconnected", "resumed news recovered=true"]
    );
    publish(&publisher, "news", [2]).await;
    assert_eq!(take(&client, 1).await, events("news", [2]));
}

#[tokio::test]
async fn a_shutdown_moves_the_client_to_the_next_endpoint() {
    let first = Broker::start(&[]).await;
    let second = Broker::start(&[]).await;
    let client = ResumingClient::connect(first.options(), fast().endpoint(second.options())).await.unwrap();
    let first_publisher = Client::connect(first.options()).await.unwrap();
    client.subscribe("news").await.unwrap();
    client.subscribe("sport").await.unwrap();
    publish(&first_publisher, "news", 1..=2).await;
    assert_eq!(take(&client, 2).await, events("news", 1..=2));

    first.shut_down();
    assert_eq!(take(&client, 2).await, ["disconnected code=Some(1001) reconnecting=true", "reconnected"]);
    let mut resumed = take(&client, 2).await;
    resumed.sort();
    assert_eq!(resumed, ["resumed news recovered=false", "resumed sport recovered=false"], "another node's epochs");
    let second_publisher = Client::connect(second.options()).await.unwrap();
    publish(&second_publisher, "news", [1]).await;
    assert_eq!(take(&client, 1).await, events("news", [1]), "seq 1 again, but of the new epoch: not a duplicate");
    assert_eq!(client.position("news").await.map(|p| p.offset), Some(1));
}

fn token(secret: &str) -> String {
    let claims = json!({"sub": "ann", "exp": jsonwebtoken::get_current_timestamp() + 600});
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&Default::default(), &claims, &key).unwrap()
}

#[tokio::test]
async fn a_refused_token_on_reconnect_stops_the_client() {
    let first = Broker::start(&["--jwt-secret", "first secret"]).await;
    let second = Broker::start(&["--jwt-secret", "second secret"]).await;
    let ann = token("first secret");
    let client = ResumingClient::connect(first.options().token(&ann), fast().endpoint(second.options().token(&ann)))
        .await
        .unwrap();
    assert_eq!(client.welcome().unwrap().identity.sub, "ann");
    client.subscribe("news").await.unwrap();

    first.shut_down();
    assert_eq!(
        take(&client, 2).await,
        ["disconnected code=Some(1001) reconnecting=true", "disconnected code=Some(1008) reconnecting=false"]
    );
    assert!(client.next().await.is_none());
    assert_eq!(client.close_info().and_then(|info| info.close_code()), Some(CloseCode::PolicyViolation));
    let err = client.publish("news", Payload::null()).await.unwrap_err();
    assert_eq!(err.close_code(), Some(CloseCode::PolicyViolation), "{err:?}");

    let err = ResumingClient::connect(second.options().token(&ann), fast()).await.unwrap_err();
    assert!(matches!(err, ClientError::Rejected { code: 3000, .. }), "the first connect reports it too: {err:?}");
}

#[tokio::test]
async fn the_client_gives_up_after_max_attempts() {
    let broker = Broker::start(&[]).await;
    let proxy = Proxy::start(broker.addr()).await;
    let client = ResumingClient::connect(options(proxy.addr), fast().max_attempts(3)).await.unwrap();
    proxy.refuse(true);
    proxy.cut();
    assert_eq!(
        take(&client, 2).await,
        ["disconnected code=None reconnecting=true", "disconnected code=None reconnecting=false"]
    );
    assert!(client.next().await.is_none());
    proxy.refused(3).await;
    assert_eq!(*proxy.refused.borrow(), 3, "exactly max_attempts attempts");
    assert!(matches!(client.ping().await, Err(ClientError::Closed { .. })));
}

#[tokio::test]
async fn requests_wait_for_the_reconnect_within_the_request_timeout() {
    let broker = Broker::start(&[]).await;
    let proxy = Proxy::start(broker.addr()).await;
    let options = options(proxy.addr).request_timeout(Duration::from_millis(500));
    let client = ResumingClient::connect(options, fast()).await.unwrap();
    let publisher = Client::connect(broker.options()).await.unwrap();
    client.subscribe("news").await.unwrap();
    publish(&publisher, "news", [1]).await;
    assert_eq!(take(&client, 1).await, events("news", [1]));

    proxy.refuse(true);
    proxy.cut();
    assert_eq!(take(&client, 1).await, ["disconnected code=None reconnecting=true"]);
    let err = client.publish("news", Payload::from_value(&2).unwrap()).await.unwrap_err();
    assert!(matches!(err, ClientError::Reconnecting { code: None, .. }), "not sent: {err:?}");
    let err = client.subscribe("later").await.unwrap_err();
    assert!(matches!(err, ClientError::Reconnecting { .. }), "{err:?}");

    // A request made while disconnected goes out on the next connection.
    let reconnect = async {
        proxy.refused(1).await;
        proxy.refuse(false);
    };
    let (seq, (), reply) =
        tokio::join!(client.publish("news", Payload::from_value(&2).unwrap()), reconnect, client.subscribe("later"));
    assert_eq!(seq.unwrap(), 2);
    assert_eq!(reply.unwrap().seq, 0);
    publish(&publisher, "later", [1]).await;
    let mut got = take(&client, 4).await;
    got.sort();
    assert_eq!(got, ["later #1 1", "news #2 2", "reconnected", "resumed news recovered=true"]);
    client.unsubscribe("news").await.unwrap();
    assert!(client.position("news").await.is_none());
    assert_eq!(client.position("later").await.map(|p| p.offset), Some(1));
}

/// A scripted server (tokio-tungstenite, MessagePack) for what a single broker cannot be made to do: close
/// with 4003 resync, and send an event twice. First connection: subscribe → reply `{seq 0, epoch "e1"}`,
/// events 1 and 2, then close 4003. Second: subscribe → reply `{seq 2, recovered: true}`, then event 2 again
/// and event 3. Returns the `since` of each subscribe.
async fn resync_server() -> (SocketAddr, tokio::task::JoinHandle<Vec<Option<Position>>>) {
    use chorus_protocol::{
        ClientFrame, Codec, Identity, Limits, SUBPROTOCOL_MSGPACK, ServerFrame, Welcome, decode_client, encode_server,
    };
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut sinces = Vec::new();
        for connection in 0..2 {
            let (stream, _) = listener.accept().await.unwrap();
            #[allow(clippy::result_large_err, reason = "the signature is tungstenite's `Callback`")]
            let negotiate = |_: &Request, mut resp: Response| {
                resp.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(SUBPROTOCOL_MSGPACK));
                Ok(resp)
            };
            let mut ws = tokio_tungstenite::accept_hdr_async(stream, negotiate).await.unwrap();
            let send = |frame: ServerFrame| Message::Binary(encode_server(Codec::MsgPack, &frame).unwrap());
            let event = |seq: u64| {
                send(ServerFrame::Event { topic: "t".into(), seq, payload: Payload::from_value(&seq).unwrap() })
            };
            while let Some(Ok(message)) = ws.next().await {
                let Message::Binary(bytes) = message else { continue };
                match decode_client(Codec::MsgPack, &bytes, 1 << 20).unwrap() {
                    ClientFrame::Hello { .. } => {
                        let welcome = Welcome {
                            conn_id: connection,
                            identity: Identity { sub: "guest".into(), name: None, role: None, guest: true },
                            limits: Limits {
                                max_frame_bytes: 65536,
                                max_subscriptions: 10,
                                publish_rate: 10,
                                idle_timeout_ms: 60_000,
                            },
                        };
                        ws.send(send(ServerFrame::Welcome(welcome))).await.unwrap();
                    }
                    ClientFrame::Subscribe { id, since, .. } => {
                        let result = match &since {
                            None => json!({"seq": 0, "epoch": "e1"}),
                            Some(_) => json!({"seq": 2, "epoch": "e1", "recovered": true}),
                        };
                        let result = Payload::from_value(&result).unwrap();
                        ws.send(send(ServerFrame::Reply { id: id.unwrap(), result })).await.unwrap();
                        let first = since.is_none();
                        sinces.push(since);
                        if first {
                            ws.send(event(1)).await.unwrap();
                            ws.send(event(2)).await.unwrap();
                            ws.send(send(ServerFrame::disconnect(CloseCode::Resync, "resync"))).await.unwrap();
                            let close = CloseFrame { code: CloseCode::Resync.as_u16().into(), reason: "resync".into() };
                            ws.close(Some(close)).await.unwrap();
                        } else {
                            ws.send(event(2)).await.unwrap();
                            ws.send(event(3)).await.unwrap();
                        }
                    }
                    _ => {}
                }
            }
        }
        sinces
    });
    (addr, server)
}

#[tokio::test]
async fn a_resync_close_resubscribes_from_the_position_and_drops_duplicates() {
    let (addr, server) = resync_server().await;
    let client = ResumingClient::connect(options(addr), fast()).await.unwrap();
    assert_eq!(client.subscribe("t").await.unwrap().seq, 0);
    assert_eq!(
        take(&client, 6).await,
        [
            "t #1 1",
            "t #2 2",
            "disconnected code=Some(4003) reconnecting=true",
            "reconnected",
            "resumed t recovered=true",
            "t #3 3"
        ]
    );
    assert_eq!(client.position("t").await, Some(Position { epoch: "e1".into(), offset: 3 }));
    client.close().await;
    assert_eq!(server.await.unwrap(), [None, Some(Position { epoch: "e1".into(), offset: 2 })]);
}
