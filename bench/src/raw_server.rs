//! The raw limit: a minimal WebSocket server that speaks just enough of the chorus MessagePack protocol
//! for the load generator to drive it exactly like chorus (`hello`, `subscribe`, `publish`, `call`,
//! `ping`), with no broker logic: no auth, no modules, no per-connection queue accounting, no metrics.
//! A publish is encoded once as a pre-framed WebSocket message. `raw`: its bytes are appended to each
//! subscriber's write buffer, and one writer per socket flushes whatever accumulated with one write.
//! `raw-writev` (`--writev`): every subscriber queues the same shared frame (no copy), and the writer
//! hands everything queued to the socket with vectored writes (`writev`, up to 1024 frames a call).
//! It runs on one thread, so it measures what one core can push through these sockets: the ceiling
//! for the workload on this machine.

use crate::ws;
use anyhow::{Context as _, bail};
use bytes::{Buf as _, Bytes, BytesMut};
use chorus_protocol::{
    ClientFrame, Codec, Identity, Limits, Payload, ServerFrame, Welcome, decode_client, encode_server,
};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::io::IoSlice;
use std::net::SocketAddr;
use std::rc::Rc;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Bytes a subscriber may have waiting before it is dropped, like a broker's slow-consumer bound.
/// 16 MiB holds well over the generator's in-flight window at any bench payload size.
const MAX_PENDING: usize = 16 << 20;

/// Largest client message accepted.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// Largest upgrade request accepted.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// Most buffers one vectored write passes to the kernel (Linux `IOV_MAX`).
const MAX_IOVECS: usize = 1024;

/// What a connection has waiting to be written.
enum Pending {
    /// `raw`: the frames' bytes, copied in.
    Copied(Vec<u8>),
    /// `raw-writev`: the shared frames themselves, and their total length.
    Shared(VecDeque<Bytes>, usize),
}

impl Pending {
    fn len(&self) -> usize {
        match self {
            Self::Copied(buf) => buf.len(),
            Self::Shared(_, len) => *len,
        }
    }

    fn empty_like(&self) -> Self {
        match self {
            Self::Copied(_) => Self::Copied(Vec::new()),
            Self::Shared(..) => Self::Shared(VecDeque::new(), 0),
        }
    }
}

/// One connection's pending output.
struct Outbox {
    pending: RefCell<Pending>,
    ready: Notify,
    dead: Cell<bool>,
}

impl Outbox {
    fn new(writev: bool) -> Self {
        let pending = if writev { Pending::Shared(VecDeque::new(), 0) } else { Pending::Copied(Vec::new()) };
        Self { pending: RefCell::new(pending), ready: Notify::new(), dead: Cell::new(false) }
    }

    fn push(&self, frame: &Bytes) {
        if self.dead.get() {
            return;
        }
        let mut pending = self.pending.borrow_mut();
        if pending.len() + frame.len() > MAX_PENDING {
            self.dead.set(true);
        } else {
            match &mut *pending {
                Pending::Copied(buf) => buf.extend_from_slice(frame),
                Pending::Shared(frames, len) => {
                    *len += frame.len();
                    frames.push_back(frame.clone());
                }
            }
        }
        drop(pending);
        self.ready.notify_one();
    }

    /// Writes everything queued until the connection dies.
    async fn drain(&self, mut wr: OwnedWriteHalf) {
        let mut spare = self.pending.borrow().empty_like();
        loop {
            self.ready.notified().await;
            if self.dead.get() {
                return;
            }
            std::mem::swap(&mut spare, &mut *self.pending.borrow_mut());
            let written = match &mut spare {
                Pending::Copied(buf) => {
                    let written = wr.write_all(buf).await;
                    buf.clear();
                    written
                }
                Pending::Shared(frames, len) => {
                    let written = write_vectored(&mut wr, frames).await;
                    *len = 0;
                    written
                }
            };
            if written.is_err() {
                self.dead.set(true);
                return;
            }
        }
    }
}

/// Writes and pops every frame of `frames` with as few vectored writes as the kernel allows.
async fn write_vectored(wr: &mut OwnedWriteHalf, frames: &mut VecDeque<Bytes>) -> std::io::Result<()> {
    while !frames.is_empty() {
        let slices: Vec<IoSlice<'_>> = frames.iter().take(MAX_IOVECS).map(|f| IoSlice::new(f)).collect();
        let mut written = wr.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while let Some(front) = frames.front_mut() {
            if written < front.len() {
                front.advance(written);
                break;
            }
            written -= front.len();
            frames.pop_front();
        }
    }
    Ok(())
}

#[derive(Default)]
struct Topic {
    seq: u64,
    subscribers: Vec<Rc<Outbox>>,
}

#[derive(Default)]
struct Hub {
    topics: RefCell<HashMap<String, Topic>>,
    next_conn: Cell<u64>,
    /// `raw-writev`: subscribers share each event's frame.
    writev: bool,
}

/// Runs the server on the current thread until the process is stopped; prints
/// `raw listening http=<addr>` once bound. `writev`: the `raw-writev` ceiling instead of `raw`.
pub fn run(listen: SocketAddr, writev: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
        println!("raw listening http={}", listener.local_addr()?);
        let hub = Rc::new(Hub { writev, ..Hub::default() });
        loop {
            let (stream, _) = listener.accept().await?;
            let hub = hub.clone();
            tokio::task::spawn_local(async move {
                // A failing connection only ends itself; the server keeps serving the others.
                let _ = connection(hub, stream).await;
            });
        }
    })
}

async fn connection(hub: Rc<Hub>, mut stream: TcpStream) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut rbuf = BytesMut::with_capacity(4096);
    upgrade(&mut stream, &mut rbuf).await?;
    let (mut rd, wr) = stream.into_split();
    let outbox = Rc::new(Outbox::new(hub.writev));
    let writer_box = outbox.clone();
    let writer = tokio::task::spawn_local(async move { writer_box.drain(wr).await });
    hub.next_conn.set(hub.next_conn.get() + 1);
    let conn_id = hub.next_conn.get();
    let result = async {
        loop {
            while let Some(head) = ws::parse_frame_masked(&rbuf)? {
                let body_at = head.header;
                let mut body = rbuf[body_at..body_at + head.len].to_vec();
                if let Some(key) = head.mask {
                    for (i, b) in body.iter_mut().enumerate() {
                        *b ^= key[i & 3];
                    }
                }
                rbuf.advance(head.header + head.len);
                match head.opcode {
                    ws::OP_TEXT | ws::OP_BINARY if head.fin => handle(&hub, &outbox, conn_id, Bytes::from(body))?,
                    ws::OP_CLOSE => return Ok(()),
                    ws::OP_PING => {
                        let mut pong = Vec::new();
                        ws::put_server_frame(&mut pong, ws::OP_PONG, &body);
                        outbox.push(&Bytes::from(pong));
                    }
                    ws::OP_PONG => {}
                    _ => bail!("fragmented or unknown frame"),
                }
            }
            if outbox.dead.get() {
                bail!("slow consumer");
            }
            rbuf.reserve(64 * 1024);
            if rd.read_buf(&mut rbuf).await? == 0 {
                return Ok(());
            }
        }
    }
    .await;
    outbox.dead.set(true);
    outbox.ready.notify_one();
    writer.abort();
    result
}

fn handle(hub: &Hub, outbox: &Rc<Outbox>, conn_id: u64, body: Bytes) -> anyhow::Result<()> {
    let reply = |frame: ServerFrame| -> anyhow::Result<()> {
        let bytes = encode_server(Codec::MsgPack, &frame)?;
        let mut out = Vec::with_capacity(bytes.len() + 10);
        ws::put_server_frame(&mut out, ws::OP_BINARY, &bytes);
        outbox.push(&Bytes::from(out));
        Ok(())
    };
    match decode_client(Codec::MsgPack, &body, MAX_CLIENT_MESSAGE)? {
        ClientFrame::Hello { .. } => reply(ServerFrame::Welcome(Welcome {
            conn_id,
            identity: Identity { sub: format!("guest-{conn_id}"), name: None, role: None, guest: true },
            limits: Limits {
                max_frame_bytes: MAX_CLIENT_MESSAGE as u32,
                max_subscriptions: u32::MAX,
                publish_rate: u32::MAX,
                idle_timeout_ms: u64::MAX,
            },
        })),
        ClientFrame::Subscribe { id, topic, .. } => {
            let seq = {
                let mut topics = hub.topics.borrow_mut();
                let t = topics.entry(topic).or_default();
                t.subscribers.push(outbox.clone());
                t.seq
            };
            match id {
                Some(id) => {
                    reply(ServerFrame::Reply { id, result: Payload::from_value(&HashMap::from([("seq", seq)]))? })
                }
                None => Ok(()),
            }
        }
        ClientFrame::Publish { id, topic, payload } => {
            let mut topics = hub.topics.borrow_mut();
            let seq = match topics.get_mut(&topic) {
                Some(t) => {
                    t.seq += 1;
                    t.subscribers.retain(|s| !s.dead.get());
                    let event = encode_server(Codec::MsgPack, &ServerFrame::Event { topic, seq: t.seq, payload })?;
                    let mut frame = Vec::with_capacity(event.len() + 10);
                    ws::put_server_frame(&mut frame, ws::OP_BINARY, &event);
                    let frame = Bytes::from(frame);
                    for s in &t.subscribers {
                        s.push(&frame);
                    }
                    t.seq
                }
                None => 0,
            };
            drop(topics);
            match id {
                Some(id) => {
                    reply(ServerFrame::Reply { id, result: Payload::from_value(&HashMap::from([("seq", seq)]))? })
                }
                None => Ok(()),
            }
        }
        ClientFrame::Call { id: Some(id), args, .. } => reply(ServerFrame::Reply { id, result: args }),
        ClientFrame::Call { id: None, .. } => Ok(()),
        ClientFrame::Ping { id } => reply(ServerFrame::Pong { id }),
        ClientFrame::Unsubscribe { id, topic } => {
            if let Some(t) = hub.topics.borrow_mut().get_mut(&topic) {
                t.subscribers.retain(|s| !Rc::ptr_eq(s, outbox));
            }
            match id {
                Some(id) => reply(ServerFrame::Reply { id, result: Payload::null() }),
                None => Ok(()),
            }
        }
    }
}

/// Reads the upgrade request and answers 101, selecting `chorus.v1.msgpack` when offered.
async fn upgrade(stream: &mut TcpStream, rbuf: &mut BytesMut) -> anyhow::Result<()> {
    let head_len = loop {
        if let Some(i) = rbuf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if rbuf.len() > MAX_REQUEST_HEAD {
            bail!("upgrade request too large");
        }
        if stream.read_buf(rbuf).await? == 0 {
            bail!("closed during the upgrade");
        }
    };
    let head = std::str::from_utf8(&rbuf[..head_len])?;
    let mut key = None;
    let mut msgpack = false;
    for line in head.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("sec-websocket-key") {
                key = Some(value.trim().to_owned());
            } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
                msgpack = value.split(',').any(|p| p.trim() == chorus_protocol::SUBPROTOCOL_MSGPACK);
            }
        }
    }
    let Some(key) = key else { bail!("not a WebSocket upgrade") };
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        derive_accept_key(key.as_bytes())
    );
    if msgpack {
        response.push_str(&format!("Sec-WebSocket-Protocol: {}\r\n", chorus_protocol::SUBPROTOCOL_MSGPACK));
    }
    response.push_str("\r\n");
    stream.write_all(response.as_bytes()).await?;
    rbuf.advance(head_len);
    Ok(())
}
