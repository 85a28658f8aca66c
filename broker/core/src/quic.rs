//! QUIC transport. One bidirectional stream per connection carries every frame both ways, each prefixed
//! by its 4-byte big-endian length ([`chorus_protocol::delimit`]); the connection closes with the close
//! code as its application error code.

use crate::config::Config;
use crate::conn::{Accepted, serve};
use crate::node::Node;
use crate::queue::FrameSink;
use crate::tls::QuicCert;
use crate::transport::{FrameSource, Inbound};
use anyhow::Context as _;
use bytes::{Bytes, BytesMut};
use chorus_protocol::delimit::{DelimitError, put_prefix, split_frame};
use chorus_protocol::{CloseCode, Codec, QUIC_ALPN};
use quinn::{Connection, Endpoint, RecvStream, SendStream, VarInt};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;

/// Largest chunk read from a stream at once; one chunk usually holds many small frames.
const READ_CHUNK: usize = 64 * 1024;

/// How long the server waits for the peer to acknowledge the final `disconnect` frame before closing
/// the connection (closing immediately would discard unacknowledged stream data).
const FINISH_TIMEOUT: Duration = Duration::from_millis(500);

/// Capacity of its write buffer a QUIC connection keeps between batches.
const KEEP_BUFFER_BYTES: usize = 16 * 1024;

/// Builds the server endpoint bound to `config.quic_listen`.
pub fn endpoint(config: &Config, cert: &QuicCert) -> anyhow::Result<Endpoint> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 with the ring provider")?
        .with_no_client_auth()
        .with_single_cert(cert.chain.clone(), cert.key.clone_key())
        .context("QUIC certificate and key do not match")?;
    tls.alpn_protocols = vec![QUIC_ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).context("QUIC TLS config")?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(1))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .max_idle_timeout(Some(config.idle_timeout().try_into().context("idle timeout too large for QUIC")?))
        // Per-connection receive buffering: two maximal frames in flight is enough for a client that
        // waits for acks; more would only let one client make the node buffer more.
        .stream_receive_window(VarInt::from_u32(config.max_frame_bytes.saturating_mul(2)))
        .receive_window(VarInt::from_u32(config.max_frame_bytes.saturating_mul(2)))
        // chorus reads no datagrams; by default quinn would keep up to 1.25 MB of a peer's unread ones.
        .datagram_receive_buffer_size(None);
    server.transport_config(Arc::new(transport));
    Endpoint::server(server, config.quic_listen).with_context(|| format!("binding QUIC on {}", config.quic_listen))
}

/// Accepts connections until the node shuts down.
pub async fn accept_loop(node: Arc<Node>, endpoint: Endpoint) {
    loop {
        let incoming = tokio::select! {
            _ = node.shutdown.cancelled() => return,
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => return,
            },
        };
        let node2 = node.clone();
        node.tracker.spawn(async move {
            if let Err(e) = connection(node2, incoming).await {
                tracing::debug!(error = %e, "QUIC connection ended before its stream opened");
            }
        });
    }
}

async fn connection(node: Arc<Node>, incoming: quinn::Incoming) -> anyhow::Result<()> {
    let conn = incoming.await?;
    let peer = conn.remote_address();
    let (send, recv) = timeout(node.config.hello_timeout(), conn.accept_bi()).await.map_err(|_| {
        conn.close(VarInt::from(CloseCode::HelloTimeout.as_u16()), b"no stream within the hello timeout");
        anyhow::anyhow!("no stream opened")
    })??;
    let max = node.config.max_frame_bytes as usize;
    let source = QuicSource { recv, buf: BytesMut::new(), max };
    let sink = QuicSink { send, conn: conn.clone(), buf: BytesMut::new() };
    let accepted = Accepted { transport: "quic", codec: Codec::MsgPack, token: None, peer };
    let code = serve(node, accepted, source, sink).await;
    // A no-op when the writer already closed with its reason; otherwise (the writer was cut off by a
    // client that stopped reading) the peer still learns the close code.
    conn.close(VarInt::from(code.as_u16()), code.name().as_bytes());
    Ok(())
}

/// Reading half: length-delimited frames from the receive stream.
pub struct QuicSource {
    recv: RecvStream,
    buf: BytesMut,
    max: usize,
}

impl FrameSource for QuicSource {
    async fn recv(&mut self) -> Inbound {
        loop {
            match split_frame(&mut self.buf, self.max) {
                Ok(Some(frame)) => return Inbound::Frame(frame),
                Ok(None) => {}
                Err(DelimitError::TooLarge { .. }) => return Inbound::TooLarge,
                Err(DelimitError::Empty) => {
                    return Inbound::Broken(CloseCode::ProtocolError, "zero-length frame".into());
                }
            }
            match self.recv.read_chunk(READ_CHUNK, true).await {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk.bytes),
                Ok(None) => return Inbound::Closed,
                Err(quinn::ReadError::ConnectionLost(_) | quinn::ReadError::Reset(_)) => return Inbound::Closed,
                Err(e) => return Inbound::Broken(CloseCode::ProtocolError, e.to_string()),
            }
        }
    }
}

/// Writing half: frames with their length prefixes, coalesced into one buffer per batch.
pub struct QuicSink {
    send: SendStream,
    conn: Connection,
    buf: BytesMut,
}

impl FrameSink for QuicSink {
    async fn send_batch(&mut self, frames: &[Bytes]) -> io::Result<()> {
        self.buf.clear();
        for frame in frames {
            put_prefix(&mut self.buf, frame.len());
            self.buf.extend_from_slice(frame);
        }
        let written = self.send.write_all(&self.buf).await.map_err(io::Error::other);
        // A burst grew the buffer to a batch; once batches use under a quarter of it, give it back (a steady
        // load keeps its buffer instead of allocating one per batch).
        if self.buf.capacity() > KEEP_BUFFER_BYTES && self.buf.len() < self.buf.capacity() / 4 {
            self.buf = BytesMut::new();
        }
        written
    }

    async fn close(&mut self, code: CloseCode, reason: &str) {
        if self.send.finish().is_ok() {
            let _ = timeout(FINISH_TIMEOUT, self.send.stopped()).await;
        }
        self.conn.close(VarInt::from(code.as_u16()), reason.as_bytes());
    }
}
