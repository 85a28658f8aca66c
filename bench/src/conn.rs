//! One load-generator connection to a target: the transport (WebSocket over TCP, or one QUIC stream),
//! the target's dialect (chorus frames, NATS text protocol, Socket.IO packets), and a read path that
//! parses every complete message of a chunk in place and hands it to a callback without allocating.
//!
//! Answers the protocol requires without the caller's involvement (WebSocket pong, NATS `PONG`,
//! engine.io `3`) are collected in an outbox that the caller flushes between reads, so a read can be
//! cancelled (`select!`) without leaving half a frame on the wire.

use crate::ws;
use anyhow::{Context as _, anyhow, bail};
use bytes::{Buf as _, Bytes, BytesMut};
use chorus_protocol::{ClientFrame, Codec, Payload, ServerFrame, decode_server, encode_client};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpSocket;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Bytes asked of the transport per read. Large enough that a busy subscriber drains many messages
/// per system call; one such buffer per connection.
const READ_CHUNK: usize = 64 * 1024;

/// Longest NATS protocol line accepted (`MSG` headers and `INFO` are far shorter, except `INFO`,
/// which lists server settings in a few hundred bytes).
const MAX_NATS_LINE: usize = 64 * 1024;

/// How long a connection handshake or a request made during setup may take.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(15);

/// The start of every chorus MessagePack `event` frame: a 4-entry map whose first entry is
/// `"type": "event"` (the broker writes `type` first, see PROTOCOL.md section 6).
const MSGPACK_EVENT_PREFIX: &[u8] = b"\x84\xa4type\xa5event";
/// The start of every chorus JSON `event` frame.
const JSON_EVENT_PREFIX: &[u8] = b"{\"type\":\"event\"";
/// Which Socket.IO server's events a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketIoEvents {
    /// `bench/peers/socketio/server.js`: `join`, `pub`, `call`; deliveries are `msg` `(room, payload)`.
    Peer,
    /// chorus' gateway: `chorus:subscribe`, `chorus:publish`, `chorus:call`; deliveries are
    /// `chorus:event` `{ topic, seq, payload }`.
    Chorus,
}

impl SocketIoEvents {
    /// The event packet joining `topic`, acknowledged with `id`.
    fn join(self, id: u64, topic: &str) -> anyhow::Result<String> {
        let topic = serde_json::to_string(topic)?;
        Ok(match self {
            Self::Peer => format!("42{id}[\"join\",{topic}]"),
            Self::Chorus => format!("42{id}[\"chorus:subscribe\",{{\"topic\":{topic}}}]"),
        })
    }

    /// The unacknowledged event packet publishing the string `text` on `topic`.
    fn publish(self, topic: &str, text: &str) -> anyhow::Result<String> {
        let topic = serde_json::to_string(topic)?;
        Ok(match self {
            Self::Peer => format!("42[\"pub\",{topic},\"{text}\"]"),
            Self::Chorus => format!("42[\"chorus:publish\",{{\"topic\":{topic},\"payload\":\"{text}\"}}]"),
        })
    }

    /// The event packet calling `method` with the JSON `args`, acknowledged with `id`.
    pub fn call(self, id: u64, method: &str, args: &str) -> anyhow::Result<String> {
        let method = serde_json::to_string(method)?;
        Ok(match self {
            Self::Peer => format!("42{id}[\"call\",{method},{args}]"),
            Self::Chorus => format!("42{id}[\"chorus:call\",{{\"method\":{method},\"args\":{args}}}]"),
        })
    }

    /// What a delivery packet starts and ends with; the string payload ends right before the end.
    fn delivery(self) -> (&'static [u8], &'static [u8]) {
        match self {
            Self::Peer => (b"42[\"msg\"", b"\"]"),
            Self::Chorus => (b"42[\"chorus:event\"", b"\"}]"),
        }
    }
}

/// What an [`Incoming::Event`] hands over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventView {
    /// The bench payload: the last `payload_len` bytes of the delivered string (the pub/sub scenarios).
    Stamped,
    /// The whole delivered message: a chorus `event` frame, a Socket.IO event packet (`42[...]`). For
    /// scenarios whose events a module writes (`reactions`).
    Whole,
}

/// The dialect a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// chorus native protocol over WebSocket with the given codec (also the raw-limit server's).
    ChorusWs(Codec),
    /// chorus native protocol over QUIC (MessagePack, length-prefixed frames on one stream).
    ChorusQuic,
    /// NATS client protocol over WebSocket.
    Nats,
    /// Socket.IO 4 (engine.io 4) over WebSocket, with one server's event names.
    SocketIo(SocketIoEvents),
}

/// How to reach a target.
#[derive(Clone)]
pub struct Dialer {
    /// Dialect.
    pub proto: Proto,
    /// TCP address for WebSocket dialects, UDP address for QUIC.
    pub addr: SocketAddr,
    /// The QUIC client endpoint (QUIC only).
    pub quic: Option<quinn::Endpoint>,
    /// chorus: JWT sent in `hello` (guest without).
    pub token: Option<String>,
    /// Size of the bench payload, to find it at the end of delivered frames.
    pub payload_len: usize,
    /// What deliveries hand over.
    pub view: EventView,
}

/// A message read from a connection.
pub enum Incoming<'a> {
    /// A delivered message's payload; on NATS also its reply subject.
    Event {
        /// The payload bytes (for the bench payload: the stamped string's content).
        payload: &'a [u8],
        /// NATS reply subject, when the publisher asked for a reply.
        reply_to: Option<&'a [u8]>,
    },
    /// Answer to a request with this id: chorus `reply`, Socket.IO ack.
    Reply {
        /// Request id.
        id: u64,
    },
    /// An error: chorus `error`, NATS `-ERR` (code 0), Socket.IO `connect_error` (code 0).
    Error {
        /// Request id, when the error answers one.
        id: Option<u64>,
        /// chorus error code (0 for peers without codes).
        code: u16,
        /// Explanation.
        message: String,
    },
    /// chorus `pong`, NATS `PONG`.
    Pong,
    /// Session established: chorus `welcome`, NATS `INFO`, Socket.IO namespace connect (`40`).
    Welcome,
    /// engine.io open packet (`0{...}`), before the namespace connect.
    Open,
    /// The server ended the session: chorus `disconnect`, WebSocket close, Socket.IO disconnect. The
    /// reason is in the error the next read returns.
    Closed,
    /// Anything else (ignored).
    Other,
}

enum Reader {
    Tcp(OwnedReadHalf),
    Quic(quinn::RecvStream),
}

enum Writer {
    Tcp(OwnedWriteHalf),
    Quic(quinn::SendStream),
}

/// Per-connection dialect state, kept apart from the read buffer so that a message can borrow the
/// buffer while the dialect appends to the outbox.
struct State {
    proto: Proto,
    payload_len: usize,
    view: EventView,
    /// Automatic answers waiting to be written.
    outbox: Vec<u8>,
    /// NATS: the text stream, reassembled from WebSocket messages (one MSG may span two).
    nats: BytesMut,
    /// Set when the server ended the session.
    closed: Option<String>,
}

/// A connected, handshaken client connection.
pub struct Conn {
    reader: Reader,
    writer: Writer,
    rbuf: BytesMut,
    /// WebSocket fragments of a message not yet complete.
    frag: Vec<u8>,
    read_chunk: usize,
    state: State,
}

/// Builds the QUIC client endpoint, trusting exactly the certificate in `cert_pem` (the broker's
/// self-signed certificate from its data dir), with the chorus ALPN.
pub fn quic_endpoint(cert_pem: &Path) -> anyhow::Result<quinn::Endpoint> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_pem).with_context(|| format!("reading {}", cert_pem.display()))? {
        roots.add(cert.context("parsing the QUIC certificate")?).context("adding the QUIC certificate")?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![chorus_protocol::QUIC_ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    // No client-side idle timeout: the broker's (announced in its transport parameters) applies, so
    // idle connections held by the `connections` scenario stay open as long as the broker allows.
    transport.max_idle_timeout(None);
    client.transport_config(Arc::new(transport));
    let socket = std::net::UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    set_receive_buffer(&socket, UDP_RECEIVE_BUFFER)?;
    let mut endpoint =
        quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, Arc::new(quinn::TokioRuntime))?;
    endpoint.set_default_client_config(client);
    Ok(endpoint)
}

/// Receive buffer of the generator's QUIC socket. The default (208 KiB here) overflows during a
/// connection storm, when hundreds of handshakes answer at once with certificate-sized flights; dropped
/// packets then cost a retransmission timeout and the storm measures the generator. The kernel caps the
/// request at `net.core.rmem_max`.
const UDP_RECEIVE_BUFFER: libc::c_int = 4 << 20;

fn set_receive_buffer(socket: &std::net::UdpSocket, bytes: libc::c_int) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: setsockopt reads one c_int from the pointer, which lives across the call, on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("setting SO_RCVBUF on the QUIC socket");
    }
    Ok(())
}

impl Dialer {
    /// Connects and completes the dialect's handshake. `local` binds the TCP source address (127.0.0.x
    /// spreads many connections over several source addresses, beyond one address's ephemeral ports).
    pub async fn connect(&self, local: Option<Ipv4Addr>) -> anyhow::Result<Conn> {
        tokio::time::timeout(SETUP_TIMEOUT, self.connect_inner(local))
            .await
            .map_err(|_| anyhow!("handshake timed out after {SETUP_TIMEOUT:?}"))?
    }

    async fn connect_inner(&self, local: Option<Ipv4Addr>) -> anyhow::Result<Conn> {
        let state = State {
            proto: self.proto,
            payload_len: self.payload_len,
            view: self.view,
            outbox: Vec::new(),
            nats: BytesMut::new(),
            closed: None,
        };
        let mut rbuf = BytesMut::new();
        let ws_route = match self.proto {
            Proto::ChorusQuic => None,
            Proto::ChorusWs(Codec::MsgPack) => Some(("/v1/ws", Some(chorus_protocol::SUBPROTOCOL_MSGPACK))),
            Proto::ChorusWs(Codec::Json) => Some(("/v1/ws", Some(chorus_protocol::SUBPROTOCOL_JSON))),
            Proto::Nats => Some(("/", None)),
            Proto::SocketIo(_) => Some(("/socket.io/?EIO=4&transport=websocket", None)),
        };
        let (reader, writer) = match ws_route {
            None => {
                let endpoint = self.quic.as_ref().ok_or_else(|| anyhow!("QUIC target without an endpoint"))?;
                let connection = endpoint.connect(self.addr, "localhost")?.await.context("QUIC handshake")?;
                let (send, recv) = connection.open_bi().await.context("opening the QUIC stream")?;
                (Reader::Quic(recv), Writer::Quic(send))
            }
            Some((path, protocol)) => {
                let socket = TcpSocket::new_v4()?;
                if let Some(ip) = local {
                    socket.bind(SocketAddr::from((ip, 0))).with_context(|| format!("binding {ip}"))?;
                }
                let mut stream = socket.connect(self.addr).await.context("TCP connect")?;
                stream.set_nodelay(true)?;
                ws::handshake(&mut stream, &self.addr.to_string(), path, protocol, &mut rbuf).await?;
                let (r, w) = stream.into_split();
                (Reader::Tcp(r), Writer::Tcp(w))
            }
        };
        let mut conn = Conn { reader, writer, rbuf, frag: Vec::new(), read_chunk: READ_CHUNK, state };
        conn.greet(self.token.as_deref()).await?;
        if conn.rbuf.is_empty() {
            // Idle connections (the `connections` scenario holds tens of thousands) keep no buffer.
            conn.rbuf = BytesMut::new();
        }
        Ok(conn)
    }
}

impl Conn {
    /// The dialect.
    pub fn proto(&self) -> Proto {
        self.state.proto
    }

    /// The session handshake after the transport is up.
    async fn greet(&mut self, token: Option<&str>) -> anyhow::Result<()> {
        match self.state.proto {
            Proto::ChorusWs(_) | Proto::ChorusQuic => {
                let hello = self.encode(&ClientFrame::Hello { token: token.map(str::to_owned) })?;
                self.send(&hello).await?;
                self.wait(|m| match m {
                    Incoming::Welcome => Some(Ok(())),
                    Incoming::Error { code, message, .. } => Some(Err(anyhow!("hello refused: {code} {message}"))),
                    _ => None,
                })
                .await
            }
            Proto::Nats => {
                self.wait(|m| matches!(m, Incoming::Welcome).then_some(Ok(()))).await?;
                let mut out = Vec::new();
                let connect = b"CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1,\"echo\":false,\
                    \"headers\":false,\"name\":\"chorus-bench\"}\r\nPING\r\n";
                self.frame(connect, &mut out);
                self.send(&out).await?;
                self.wait_pong().await
            }
            Proto::SocketIo(_) => {
                self.wait(|m| matches!(m, Incoming::Open).then_some(Ok(()))).await?;
                let mut out = Vec::new();
                self.frame(b"40", &mut out);
                self.send(&out).await?;
                self.wait(|m| match m {
                    Incoming::Welcome => Some(Ok(())),
                    Incoming::Error { message, .. } => Some(Err(anyhow!("namespace refused: {message}"))),
                    _ => None,
                })
                .await
            }
        }
    }

    /// Subscribes to `topics` and waits until the server has confirmed all of them.
    pub async fn subscribe(&mut self, topics: &[String]) -> anyhow::Result<()> {
        let mut out = Vec::new();
        match self.state.proto {
            Proto::ChorusWs(_) | Proto::ChorusQuic => {
                for (i, topic) in topics.iter().enumerate() {
                    let body = self.encode(&ClientFrame::Subscribe {
                        id: Some(i as u64 + 1),
                        topic: topic.clone(),
                        since: None,
                    })?;
                    out.extend_from_slice(&body);
                }
                self.send(&out).await?;
                let mut left = topics.len();
                self.wait(|m| match m {
                    Incoming::Reply { .. } => {
                        left -= 1;
                        (left == 0).then_some(Ok(()))
                    }
                    Incoming::Error { code, message, .. } => Some(Err(anyhow!("subscribe refused: {code} {message}"))),
                    _ => None,
                })
                .await
            }
            Proto::Nats => {
                let mut text = Vec::new();
                for (i, topic) in topics.iter().enumerate() {
                    text.extend_from_slice(format!("SUB {topic} {}\r\n", i + 1).as_bytes());
                }
                text.extend_from_slice(b"PING\r\n");
                self.frame(&text, &mut out);
                self.send(&out).await?;
                self.wait_pong().await
            }
            Proto::SocketIo(events) => {
                for (i, topic) in topics.iter().enumerate() {
                    let packet = events.join(i as u64 + 1, topic)?;
                    self.frame(packet.as_bytes(), &mut out);
                }
                self.send(&out).await?;
                let mut left = topics.len();
                self.wait(|m| match m {
                    Incoming::Reply { .. } => {
                        left -= 1;
                        (left == 0).then_some(Ok(()))
                    }
                    _ => None,
                })
                .await
            }
        }
    }

    /// NATS: waits for the `PONG` that follows everything sent before a `PING`.
    async fn wait_pong(&mut self) -> anyhow::Result<()> {
        self.wait(|m| match m {
            Incoming::Pong => Some(Ok(())),
            Incoming::Error { message, .. } => Some(Err(anyhow!("nats-server: {message}"))),
            _ => None,
        })
        .await
    }

    /// The publish message for `topic`, framed for the transport, carrying a blank bench payload of
    /// `payload_len` bytes whose stamp starts at the returned offset.
    pub fn publish_template(&self, topic: &str) -> anyhow::Result<(Vec<u8>, usize)> {
        let blank = crate::stamp::blank(self.state.payload_len);
        let text = std::str::from_utf8(&blank)?;
        let mut out = Vec::new();
        match self.state.proto {
            Proto::ChorusWs(codec) => {
                let body = encode_client(codec, &publish_frame(codec, topic, text)?)?;
                self.frame(&body, &mut out);
            }
            Proto::ChorusQuic => {
                let body = encode_client(Codec::MsgPack, &publish_frame(Codec::MsgPack, topic, text)?)?;
                self.frame(&body, &mut out);
            }
            Proto::Nats => {
                let mut text_msg = format!("PUB {topic} {}\r\n", blank.len()).into_bytes();
                text_msg.extend_from_slice(&blank);
                text_msg.extend_from_slice(b"\r\n");
                self.frame(&text_msg, &mut out);
            }
            Proto::SocketIo(events) => {
                let packet = events.publish(topic, text)?;
                self.frame(packet.as_bytes(), &mut out);
            }
        }
        let at = out
            .windows(blank.len())
            .position(|w| w == blank.as_slice())
            .ok_or_else(|| anyhow!("payload not found in template"))?;
        Ok((out, at))
    }

    /// Encodes a chorus frame in the connection's codec, framed for the transport.
    pub fn encode(&self, frame: &ClientFrame) -> anyhow::Result<Vec<u8>> {
        let codec = match self.state.proto {
            Proto::ChorusWs(codec) => codec,
            _ => Codec::MsgPack,
        };
        let body = encode_client(codec, frame)?;
        let mut out = Vec::with_capacity(body.len() + 14);
        self.frame(&body, &mut out);
        Ok(out)
    }

    /// Appends `body` as one transport message: a WebSocket frame (text or binary as the dialect
    /// uses) or a length-prefixed QUIC frame.
    pub fn frame(&self, body: &[u8], out: &mut Vec<u8>) {
        match self.state.proto {
            Proto::ChorusQuic => {
                out.extend_from_slice(&(body.len() as u32).to_be_bytes());
                out.extend_from_slice(body);
            }
            Proto::ChorusWs(Codec::Json) | Proto::SocketIo(_) => ws::put_frame(out, ws::OP_TEXT, body),
            Proto::ChorusWs(Codec::MsgPack) | Proto::Nats => ws::put_frame(out, ws::OP_BINARY, body),
        }
    }

    /// Writes `bytes` (already framed).
    pub async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        match &mut self.writer {
            Writer::Tcp(w) => w.write_all(bytes).await.context("write")?,
            Writer::Quic(s) => s.write_all(bytes).await.context("QUIC write")?,
        }
        Ok(())
    }

    /// Moves pending automatic answers into `out` (to be sent with the caller's next write).
    pub fn take_outbox(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.state.outbox);
    }

    /// Writes pending automatic answers.
    pub async fn flush_outbox(&mut self) -> anyhow::Result<()> {
        if self.state.outbox.is_empty() {
            return Ok(());
        }
        let outbox = std::mem::take(&mut self.state.outbox);
        self.send(&outbox).await
    }

    /// Waits until `pick` returns a result for one of the incoming messages (others are dropped),
    /// within [`SETUP_TIMEOUT`]. For setup steps, before any load runs.
    pub async fn wait<T>(
        &mut self,
        mut pick: impl FnMut(Incoming<'_>) -> Option<anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
        let mut found = None;
        loop {
            // Bytes already buffered (e.g. sent with the transport handshake) come first.
            self.drain(&mut |m| {
                if found.is_none() {
                    found = pick(m);
                }
            })?;
            self.flush_outbox().await?;
            if let Some(result) = found {
                return result;
            }
            tokio::time::timeout_at(deadline, self.fill())
                .await
                .map_err(|_| anyhow!("no answer within {SETUP_TIMEOUT:?}"))??;
        }
    }

    /// Reads more bytes from the transport, waiting for them. Returns how many. Cancel-safe. Fails when
    /// the transport ends or breaks, or the server has ended the session.
    pub async fn fill(&mut self) -> anyhow::Result<usize> {
        if let Some(reason) = &self.state.closed {
            bail!("closed by the server: {reason}");
        }
        let n = match &mut self.reader {
            Reader::Tcp(r) => {
                self.rbuf.reserve(self.read_chunk);
                r.read_buf(&mut self.rbuf).await.context("read")?
            }
            Reader::Quic(r) => match r.read_chunk(self.read_chunk, true).await.context("QUIC read")? {
                Some(chunk) => {
                    self.rbuf.extend_from_slice(&chunk.bytes);
                    chunk.bytes.len()
                }
                None => 0,
            },
        };
        if n == 0 {
            bail!("connection closed by the server");
        }
        Ok(n)
    }

    /// Hands every complete message in the read buffer to `on`. Fails once the server has ended the
    /// session (after `on` has seen the [`Incoming::Closed`]).
    pub fn drain(&mut self, on: &mut impl FnMut(Incoming<'_>)) -> anyhow::Result<()> {
        self.parse(on)?;
        if let Some(reason) = &self.state.closed {
            bail!("closed by the server: {reason}");
        }
        Ok(())
    }

    /// Sets how many bytes one read asks for (default 64 KiB). Idle connections held by the thousand
    /// use a small one, so the generator's memory stays far below the server's.
    pub fn set_read_chunk(&mut self, bytes: usize) {
        self.read_chunk = bytes.max(512);
    }

    /// Parses every complete transport message in the read buffer; returns how many bytes it consumed.
    fn parse(&mut self, on: &mut impl FnMut(Incoming<'_>)) -> anyhow::Result<usize> {
        let mut pos = 0;
        if matches!(self.state.proto, Proto::ChorusQuic) {
            while let Some(prefix) = self.rbuf.get(pos..pos + 4) {
                let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
                if len > ws::MAX_MESSAGE {
                    bail!("QUIC frame of {len} bytes exceeds {}", ws::MAX_MESSAGE);
                }
                let Some(body) = self.rbuf.get(pos + 4..pos + 4 + len) else { break };
                dispatch(&mut self.state, body, on)?;
                pos += 4 + len;
            }
        } else {
            while let Some(head) = ws::parse_frame(&self.rbuf[pos..])? {
                let body = &self.rbuf[pos + head.header..pos + head.header + head.len];
                match head.opcode {
                    ws::OP_TEXT | ws::OP_BINARY | ws::OP_CONTINUATION => {
                        if head.fin && head.opcode != ws::OP_CONTINUATION && self.frag.is_empty() {
                            dispatch(&mut self.state, body, on)?;
                        } else {
                            if self.frag.len() + body.len() > ws::MAX_MESSAGE {
                                bail!("fragmented message exceeds {}", ws::MAX_MESSAGE);
                            }
                            self.frag.extend_from_slice(body);
                            if head.fin {
                                let message = std::mem::take(&mut self.frag);
                                dispatch(&mut self.state, &message, on)?;
                            }
                        }
                    }
                    ws::OP_PING => ws::put_frame(&mut self.state.outbox, ws::OP_PONG, body),
                    ws::OP_CLOSE => {
                        let (code, reason) = ws::close_reason(body);
                        self.state.closed.get_or_insert_with(|| format!("WebSocket close {code:?} {reason}"));
                        on(Incoming::Closed);
                    }
                    _ => {}
                }
                pos += head.header + head.len;
            }
        }
        self.rbuf.advance(pos);
        Ok(pos)
    }
}

fn publish_frame(codec: Codec, topic: &str, text: &str) -> anyhow::Result<ClientFrame> {
    let payload = match codec {
        Codec::MsgPack => Payload::from_value(text)?,
        Codec::Json => Payload::from_json(Bytes::from(serde_json::to_vec(text)?))?,
    };
    Ok(ClientFrame::Publish { id: None, topic: topic.to_owned(), payload })
}

/// Hands one transport message to the dialect.
fn dispatch(state: &mut State, msg: &[u8], on: &mut impl FnMut(Incoming<'_>)) -> anyhow::Result<()> {
    match state.proto {
        Proto::ChorusWs(Codec::MsgPack) | Proto::ChorusQuic => chorus_message(state, Codec::MsgPack, msg, on),
        Proto::ChorusWs(Codec::Json) => chorus_message(state, Codec::Json, msg, on),
        Proto::Nats => nats_messages(state, msg, on),
        Proto::SocketIo(events) => {
            socketio_packet(state, events, msg, on);
            Ok(())
        }
    }
}

/// A chorus frame. Events of the bench payload's size are recognised by their first bytes and the
/// payload taken from the frame's end (the broker writes `payload` last); anything else is decoded.
fn chorus_message(
    state: &mut State,
    codec: Codec,
    msg: &[u8],
    on: &mut impl FnMut(Incoming<'_>),
) -> anyhow::Result<()> {
    let plen = state.payload_len;
    let whole = state.view == EventView::Whole;
    match codec {
        Codec::MsgPack if whole && msg.starts_with(MSGPACK_EVENT_PREFIX) => {
            on(Incoming::Event { payload: msg, reply_to: None });
            return Ok(());
        }
        Codec::MsgPack if msg.starts_with(MSGPACK_EVENT_PREFIX) && msg.len() > plen + MSGPACK_EVENT_PREFIX.len() => {
            on(Incoming::Event { payload: &msg[msg.len() - plen..], reply_to: None });
            return Ok(());
        }
        Codec::Json
            if !whole
                && msg.starts_with(JSON_EVENT_PREFIX)
                && msg.ends_with(b"\"}")
                && msg.len() > plen + JSON_EVENT_PREFIX.len() + 2 =>
        {
            on(Incoming::Event { payload: &msg[msg.len() - 2 - plen..msg.len() - 2], reply_to: None });
            return Ok(());
        }
        _ => {}
    }
    let frame =
        decode_server(codec, &Bytes::copy_from_slice(msg), ws::MAX_MESSAGE).context("undecodable server frame")?;
    match frame {
        ServerFrame::Welcome(_) => on(Incoming::Welcome),
        ServerFrame::Reply { id, .. } => on(Incoming::Reply { id }),
        ServerFrame::Error { id, code, message } => on(Incoming::Error { id, code, message }),
        ServerFrame::Pong { .. } => on(Incoming::Pong),
        ServerFrame::Disconnect { code, reason } => {
            state.closed.get_or_insert_with(|| format!("disconnect {code} {reason}"));
            on(Incoming::Closed);
        }
        ServerFrame::Event { .. } if whole => on(Incoming::Event { payload: msg, reply_to: None }),
        ServerFrame::Event { .. } => on(Incoming::Other),
    }
    Ok(())
}

/// NATS: appends one WebSocket message to the text stream and parses every complete protocol message.
fn nats_messages(state: &mut State, msg: &[u8], on: &mut impl FnMut(Incoming<'_>)) -> anyhow::Result<()> {
    state.nats.extend_from_slice(msg);
    let buf = &state.nats[..];
    let mut pos = 0;
    while let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') {
        let line_end = pos + nl + 1;
        let line = buf[pos..pos + nl].strip_suffix(b"\r").unwrap_or(&buf[pos..pos + nl]);
        if let Some(args) = line.strip_prefix(b"MSG ") {
            // MSG <subject> <sid> [reply-to] <#bytes>
            let mut parts = args.split(|&b| b == b' ').filter(|p| !p.is_empty());
            let (_subject, _sid) = (parts.next(), parts.next());
            let (reply_to, size) = match (parts.next(), parts.next()) {
                (Some(reply), Some(size)) => (Some(reply), size),
                (Some(size), None) => (None, size),
                _ => bail!("malformed NATS MSG line"),
            };
            let size: usize = std::str::from_utf8(size)?.parse().context("NATS MSG size")?;
            if size > ws::MAX_MESSAGE {
                bail!("NATS message of {size} bytes exceeds {}", ws::MAX_MESSAGE);
            }
            let Some(payload) = buf.get(line_end..line_end + size) else { break };
            if buf.len() < line_end + size + 2 {
                break;
            }
            on(Incoming::Event { payload, reply_to });
            pos = line_end + size + 2;
            continue;
        }
        if line == b"PING" {
            ws::put_frame(&mut state.outbox, ws::OP_BINARY, b"PONG\r\n");
        } else if line == b"PONG" {
            on(Incoming::Pong);
        } else if line.starts_with(b"INFO ") {
            on(Incoming::Welcome);
        } else if let Some(err) = line.strip_prefix(b"-ERR ") {
            on(Incoming::Error { id: None, code: 0, message: String::from_utf8_lossy(err).into_owned() });
        }
        pos = line_end;
    }
    if state.nats.len() - pos > MAX_NATS_LINE + ws::MAX_MESSAGE {
        bail!("NATS stream holds an unterminated message beyond the limit");
    }
    state.nats.advance(pos);
    Ok(())
}

/// Socket.IO: one engine.io packet per WebSocket message.
fn socketio_packet(state: &mut State, events: SocketIoEvents, msg: &[u8], on: &mut impl FnMut(Incoming<'_>)) {
    let plen = state.payload_len;
    let (prefix, suffix) = events.delivery();
    match msg {
        b"2" => ws::put_frame(&mut state.outbox, ws::OP_TEXT, b"3"),
        b"3" => on(Incoming::Pong),
        [b'0', b'{', ..] => on(Incoming::Open),
        [b'1', ..] | [b'4', b'1', ..] => {
            state.closed.get_or_insert_with(|| format!("Socket.IO disconnect {}", String::from_utf8_lossy(msg)));
            on(Incoming::Closed);
        }
        [b'4', b'0', ..] => on(Incoming::Welcome),
        [b'4', b'4', rest @ ..] => {
            on(Incoming::Error { id: None, code: 0, message: String::from_utf8_lossy(rest).into_owned() })
        }
        [b'4', b'2', ..] if state.view == EventView::Whole => on(Incoming::Event { payload: msg, reply_to: None }),
        _ if msg.starts_with(prefix) && msg.ends_with(suffix) && msg.len() > plen + prefix.len() + suffix.len() => {
            let end = msg.len() - suffix.len();
            on(Incoming::Event { payload: &msg[end - plen..end], reply_to: None });
        }
        [b'4', b'3', rest @ ..] => {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            match std::str::from_utf8(&rest[..digits]).ok().and_then(|d| d.parse().ok()) {
                Some(id) if rest[digits..].starts_with(b"[{\"error\":") => on(ack_error(id, &rest[digits..])),
                Some(id) => on(Incoming::Reply { id }),
                None => on(Incoming::Other),
            }
        }
        _ => on(Incoming::Other),
    }
}

/// A Socket.IO acknowledgement carrying chorus's refusal, `[{"error":{"code":…,"message":…}}]`.
fn ack_error(id: u64, body: &[u8]) -> Incoming<'static> {
    let error = serde_json::from_slice::<serde_json::Value>(body).ok().map(|mut v| v[0]["error"].take());
    let code = error.as_ref().and_then(|e| e["code"].as_u64()).and_then(|c| u16::try_from(c).ok());
    match (error.as_ref().and_then(|e| e["message"].as_str()), code) {
        (Some(message), Some(code)) => Incoming::Error { id: Some(id), code, message: message.to_owned() },
        _ => Incoming::Error { id: Some(id), code: 0, message: String::from_utf8_lossy(body).into_owned() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(proto: Proto) -> State {
        State {
            proto,
            payload_len: 4,
            view: EventView::Stamped,
            outbox: Vec::new(),
            nats: BytesMut::new(),
            closed: None,
        }
    }

    #[test]
    fn nats_messages_across_websocket_messages() {
        let mut st = state(Proto::Nats);
        let mut got = Vec::new();
        let mut on = |m: Incoming<'_>| match m {
            Incoming::Event { payload, reply_to } => got.push((payload.to_vec(), reply_to.map(<[u8]>::to_vec))),
            Incoming::Pong => got.push((b"PONG".to_vec(), None)),
            _ => {}
        };
        nats_messages(&mut st, b"MSG a 1 4\r\nab", &mut on).unwrap();
        nats_messages(&mut st, b"cd\r\nPING\r\nMSG a 1 _I.1 2\r\nxy\r\nPONG\r\n", &mut on).unwrap();
        assert_eq!(
            got,
            vec![(b"abcd".to_vec(), None), (b"xy".to_vec(), Some(b"_I.1".to_vec())), (b"PONG".to_vec(), None)]
        );
        assert!(st.outbox.ends_with(b"PONG\r\n"));
        assert!(st.nats.is_empty());
    }

    #[test]
    fn chorus_events_are_found_without_decoding() {
        let event = ServerFrame::Event { topic: "t".into(), seq: 300, payload: Payload::from_value("wxyz").unwrap() };
        for codec in Codec::ALL {
            let bytes = chorus_protocol::encode_server(codec, &event).unwrap();
            let mut st = state(Proto::ChorusWs(codec));
            let mut seen = Vec::new();
            chorus_message(&mut st, codec, &bytes, &mut |m| {
                if let Incoming::Event { payload, .. } = m {
                    seen.push(payload.to_vec());
                }
            })
            .unwrap();
            assert_eq!(seen, vec![b"wxyz".to_vec()], "{codec:?}");
        }
    }

    #[test]
    fn socketio_packets() {
        let mut st = state(Proto::SocketIo(SocketIoEvents::Peer));
        let mut seen = Vec::new();
        for packet in [&b"2"[..], b"42[\"msg\",\"room\",\"wxyz\"]", b"437[{\"ok\":true}]", b"40{\"sid\":\"x\"}"] {
            socketio_packet(&mut st, SocketIoEvents::Peer, packet, &mut |m| {
                seen.push(match m {
                    Incoming::Event { payload, .. } => String::from_utf8_lossy(payload).into_owned(),
                    Incoming::Reply { id } => format!("reply {id}"),
                    Incoming::Welcome => "welcome".into(),
                    _ => "other".into(),
                })
            });
        }
        assert_eq!(seen, vec!["wxyz", "reply 7", "welcome"]);
        assert_eq!(st.outbox, {
            let mut f = Vec::new();
            ws::put_frame(&mut f, ws::OP_TEXT, b"3");
            f
        });
    }
}
