//! The raw limit: a minimal WebSocket server that speaks just enough of the chorus MessagePack protocol
//! for the load generator to drive it exactly like chorus (`hello`, `subscribe`, `publish`, `call`,
//! `ping`), with no broker logic: no auth, no modules, no per-connection queue accounting, no metrics.
//! A publish is encoded once as a pre-framed WebSocket message and its bytes appended to each
//! subscriber's write buffer; one writer per socket flushes whatever accumulated with one write.
//! It runs on one thread, so it measures what one core can push through these sockets: the ceiling
//! for the workload on this machine.

use crate::ws;
use anyhow::{Context as _, bail};
use bytes::{Buf as _, Bytes, BytesMut};
use chorus_protocol::{
    ClientFrame, Codec, Identity, Limits, Payload, ServerFrame, Welcome, decode_client, encode_server,
};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
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

/// One connection's pending output.
struct Outbox {
    buf: RefCell<Vec<u8>>,
    ready: Notify,
    dead: Cell<bool>,
}

impl Outbox {
    fn push(&self, frame: &[u8]) {
        if self.dead.get() {
            return;
        }
        let mut buf = self.buf.borrow_mut();
        if buf.len() + frame.len() > MAX_PENDING {
            self.dead.set(true);
        } else {
            buf.extend_from_slice(frame);
        }
        drop(buf);
        self.ready.notify_one();
    }
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
}

/// Runs the server on the current thread until the process is stopped; prints
/// `raw listening http=<addr>` once bound.
pub fn run(listen: SocketAddr) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
        println!("raw listening http={}", listener.local_addr()?);
        let hub = Rc::new(Hub::default());
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
    let (mut rd, mut wr) = stream.into_split();
    let outbox = Rc::new(Outbox { buf: RefCell::new(Vec::new()), ready: Notify::new(), dead: Cell::new(false) });
    let writer_box = outbox.clone();
    let writer = tokio::task::spawn_local(async move {
        let mut spare = Vec::new();
        loop {
            writer_box.ready.notified().await;
            if writer_box.dead.get() {
                return;
            }
            std::mem::swap(&mut spare, &mut *writer_box.buf.borrow_mut());
            if !spare.is_empty() && wr.write_all(&spare).await.is_err() {
                writer_box.dead.set(true);
                return;
            }
            spare.clear();
        }
    });
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
                        outbox.push(&pong);
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
        outbox.push(&out);
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
        ClientFrame::Call { id, args, .. } => reply(ServerFrame::Reply { id, result: args }),
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
