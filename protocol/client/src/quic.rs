//! QUIC transport (quinn + rustls/ring): one bidirectional stream per connection, every frame carried as a
//! 4-byte big-endian length prefix plus a MessagePack body (see [`chorus_protocol::delimit`]).

use crate::close::CloseInfo;
use crate::error::ClientError;
use crate::options::ResolvedTrust;
use crate::transport::{CLOSE_GRACE, Inbound, Transport};
use crate::verify::{Fingerprint, PinnedVerifier, pin_mismatch, root_store};
use bytes::{Bytes, BytesMut};
use chorus_protocol::delimit::{DelimitError, PREFIX_LEN, put_prefix, split_frame};
use chorus_protocol::{CloseCode, QUIC_ALPN};
use quinn::{ConnectionError, ReadError, VarInt, WriteError};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Largest chunk taken from the stream per read. Bounds the receive buffer to one frame plus one chunk;
/// 64 KiB is a few QUIC packets' worth, so small frames still arrive in a single read.
const READ_CHUNK: usize = 64 * 1024;

/// QUIC-level keep-alive. quinn's default idle timeout (30 s) would otherwise end a connection on which
/// neither side sends for a while, even though the broker (whose idle timeout counts frames, not packets)
/// still considers it live. QUIC PINGs are invisible to the broker's idle timer.
const QUIC_KEEPALIVE: Duration = Duration::from_secs(10);

/// An established QUIC connection and its one bidirectional stream.
pub(crate) struct QuicTransport {
    /// Kept so the endpoint outlives the connection and can flush our `CONNECTION_CLOSE` on shutdown.
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    buf: BytesMut,
    max_inbound_frame_bytes: usize,
}

/// The TLS config for `trust`; with a pin, also the slot where a refused certificate's fingerprint lands.
fn tls_config(trust: ResolvedTrust, refused: &Arc<OnceLock<Fingerprint>>) -> Result<rustls::ClientConfig, ClientError> {
    // An explicit provider: no process-wide default is needed, and a process that also links aws-lc-rs
    // (through other crates) does not panic choosing between them.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Config(format!("TLS: {e}")))?;
    let mut config = match trust {
        ResolvedTrust::Pin(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier::new(pin, provider, refused.clone())))
            .with_no_client_auth(),
        ResolvedTrust::CaPem(pem) => builder.with_root_certificates(root_store(&pem)?).with_no_client_auth(),
    };
    config.alpn_protocols = vec![QUIC_ALPN.to_vec()];
    Ok(config)
}

/// Performs the QUIC and TLS handshakes and opens the stream.
pub(crate) async fn connect(
    addr: SocketAddr,
    server_name: &str,
    trust: ResolvedTrust,
    max_inbound_frame_bytes: usize,
) -> Result<QuicTransport, ClientError> {
    let pin = match &trust {
        ResolvedTrust::Pin(pin) => Some(*pin),
        ResolvedTrust::CaPem(_) => None,
    };
    let refused = Arc::new(OnceLock::new());
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls_config(trust, &refused)?)
        .map_err(|e| ClientError::Config(format!("QUIC TLS: {e}")))?;
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(QUIC_KEEPALIVE));
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport));

    let bind: SocketAddr =
        if addr.is_ipv6() { (Ipv6Addr::UNSPECIFIED, 0).into() } else { (Ipv4Addr::UNSPECIFIED, 0).into() };
    let endpoint = quinn::Endpoint::client(bind).map_err(ClientError::transport)?;
    let conn = endpoint
        .connect_with(config, addr, server_name)
        .map_err(|e| ClientError::Config(format!("QUIC connect: {e}")))?
        .await
        .map_err(|e| match (pin, refused.get()) {
            (Some(pin), Some(seen)) => pin_mismatch(&pin, seen),
            _ => ClientError::transport(e),
        })?;
    let (send, recv) = conn.open_bi().await.map_err(ClientError::transport)?;
    Ok(QuicTransport { endpoint, conn, send, recv, buf: BytesMut::new(), max_inbound_frame_bytes })
}

/// How a lost connection ended, from the server's application close (code and reason) when it sent one.
fn connection_close(e: &ConnectionError) -> CloseInfo {
    match e {
        ConnectionError::ApplicationClosed(close) => {
            let reason = String::from_utf8_lossy(&close.reason).into_owned();
            match u16::try_from(close.error_code.into_inner()) {
                Ok(code) => CloseInfo::remote(Some(code), reason),
                Err(_) => CloseInfo::remote(None, format!("application error {}: {reason}", close.error_code)),
            }
        }
        other => CloseInfo::remote(None, other.to_string()),
    }
}

impl QuicTransport {
    /// The close after the server finished or reset the stream: a server closes the connection right after,
    /// so wait briefly for that to learn its code.
    async fn after_stream_end(&self, what: String) -> CloseInfo {
        match tokio::time::timeout(CLOSE_GRACE, self.conn.closed()).await {
            Ok(e) => connection_close(&e),
            Err(_) => CloseInfo::remote(None, what),
        }
    }
}

impl Transport for QuicTransport {
    async fn send(&mut self, frame: Bytes) -> Result<(), CloseInfo> {
        let mut out = BytesMut::with_capacity(PREFIX_LEN + frame.len());
        put_prefix(&mut out, frame.len());
        out.extend_from_slice(&frame);
        match self.send.write_all(&out).await {
            Ok(()) => Ok(()),
            Err(WriteError::ConnectionLost(e)) => Err(connection_close(&e)),
            Err(e) => Err(CloseInfo::remote(None, e.to_string())),
        }
    }

    async fn recv(&mut self) -> Inbound {
        loop {
            match split_frame(&mut self.buf, self.max_inbound_frame_bytes) {
                Ok(Some(frame)) => return Inbound::Frame(frame),
                Ok(None) => {}
                Err(e @ DelimitError::TooLarge { .. }) => {
                    return Inbound::Closed(CloseInfo::local(CloseCode::MessageTooBig, e.to_string()));
                }
                Err(e @ DelimitError::Empty) => {
                    return Inbound::Closed(CloseInfo::local(CloseCode::ProtocolError, e.to_string()));
                }
            }
            // `read_chunk` is cancel-safe and the partial frame lives in `self.buf`: so is this loop.
            match self.recv.read_chunk(READ_CHUNK, true).await {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk.bytes),
                Ok(None) => {
                    return Inbound::Closed(self.after_stream_end("server finished the stream".into()).await);
                }
                Err(ReadError::ConnectionLost(e)) => return Inbound::Closed(connection_close(&e)),
                Err(e) => return Inbound::Closed(self.after_stream_end(e.to_string()).await),
            }
        }
    }

    async fn shutdown(&mut self, info: &CloseInfo) {
        if info.by_client {
            // Closing a QUIC connection discards stream data not yet delivered, so first finish the stream
            // and wait until the server has received it (a `publish_nowait` just before `close` arrives).
            let _ = self.send.finish();
            let send = &mut self.send;
            let endpoint = &self.endpoint;
            let conn = &self.conn;
            let code = info.code.unwrap_or(CloseCode::Normal.as_u16());
            let _ = tokio::time::timeout(CLOSE_GRACE, async move {
                let _ = send.stopped().await;
                conn.close(VarInt::from(code), info.reason.as_bytes());
                endpoint.wait_idle().await;
            })
            .await;
            self.conn.close(VarInt::from(code), info.reason.as_bytes());
        } else {
            self.conn.close(VarInt::from(CloseCode::Normal.as_u16()), b"");
        }
    }
}
