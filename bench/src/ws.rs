//! A minimal WebSocket client (RFC 6455) for the load generator: the HTTP/1.1 upgrade, then frames
//! parsed in place from one read buffer. A general client (tokio-tungstenite) allocates per message; at
//! millions of deliveries per second on one core the generator must not, or it measures itself.
//!
//! Client frames are masked with the all-zero key, which the RFC allows (the key must only be
//! unpredictable to defeat proxy cache poisoning, and loopback has no proxy): masking is then the
//! identity, so a frame can be encoded once and its payload patched in place.

use anyhow::{Context as _, anyhow, bail};
use bytes::{Buf as _, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Largest message accepted from a server. Bench messages are below 1 KiB; module replies and
/// `welcome`/`INFO` frames a few KiB. A larger one is a bug on one side and ends the connection.
pub const MAX_MESSAGE: usize = 1 << 20;

/// Largest HTTP upgrade response accepted.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Opcodes used here.
pub const OP_CONTINUATION: u8 = 0x0;
/// Text message.
pub const OP_TEXT: u8 = 0x1;
/// Binary message.
pub const OP_BINARY: u8 = 0x2;
/// Connection close.
pub const OP_CLOSE: u8 = 0x8;
/// Ping.
pub const OP_PING: u8 = 0x9;
/// Pong.
pub const OP_PONG: u8 = 0xA;

/// Performs the upgrade on `stream`. Bytes the server sent after its response head stay in `rbuf`.
/// Returns the subprotocol the server selected, if any.
pub async fn handshake(
    stream: &mut TcpStream,
    host: &str,
    path: &str,
    protocol: Option<&str>,
    rbuf: &mut BytesMut,
) -> anyhow::Result<Option<String>> {
    let key = generate_key();
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if let Some(p) = protocol {
        req.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.context("sending the upgrade request")?;
    let head_len = loop {
        if let Some(i) = rbuf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if rbuf.len() > MAX_RESPONSE_HEAD {
            bail!("upgrade response head exceeds {MAX_RESPONSE_HEAD} bytes");
        }
        rbuf.reserve(4096);
        if stream.read_buf(rbuf).await.context("reading the upgrade response")? == 0 {
            bail!("connection closed during the upgrade");
        }
    };
    let head = std::str::from_utf8(&rbuf[..head_len]).context("upgrade response is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split_ascii_whitespace().nth(1) != Some("101") {
        bail!("upgrade refused: {status}");
    }
    let mut accept = None;
    let mut selected = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("sec-websocket-accept") {
                accept = Some(value.to_owned());
            } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
                selected = Some(value.to_owned());
            }
        }
    }
    if accept.as_deref() != Some(derive_accept_key(key.as_bytes()).as_str()) {
        bail!("upgrade response has a wrong Sec-WebSocket-Accept");
    }
    if let (Some(want), Some(got)) = (protocol, &selected)
        && want != got
    {
        bail!("server selected subprotocol {got}, not {want}");
    }
    rbuf.advance(head_len);
    Ok(selected)
}

/// Appends one complete client frame (FIN set, zero masking key) carrying `payload`.
pub fn put_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    put_header(out, opcode, payload.len(), true);
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
}

/// Appends one complete, unmasked server frame (FIN set) carrying `payload`.
pub fn put_server_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    put_header(out, opcode, payload.len(), false);
    out.extend_from_slice(payload);
}

fn put_header(out: &mut Vec<u8>, opcode: u8, len: usize, masked: bool) {
    let mask = if masked { 0x80 } else { 0 };
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(mask | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(mask | 126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(mask | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// A frame header parsed from the front of a buffer.
#[derive(Debug, Clone, Copy)]
pub struct FrameHead {
    /// FIN bit: last fragment of its message.
    pub fin: bool,
    /// Opcode.
    pub opcode: u8,
    /// Header length in bytes (masking key included); the payload follows.
    pub header: usize,
    /// Payload length in bytes.
    pub len: usize,
    /// Masking key (client frames).
    pub mask: Option<[u8; 4]>,
}

/// Parses the server frame (unmasked) at the start of `data`. `Ok(None)`: the frame is not all there yet.
pub fn parse_frame(data: &[u8]) -> anyhow::Result<Option<FrameHead>> {
    parse(data, false)
}

/// Parses the client frame (masked) at the start of `data`. `Ok(None)`: the frame is not all there yet.
pub fn parse_frame_masked(data: &[u8]) -> anyhow::Result<Option<FrameHead>> {
    parse(data, true)
}

fn parse(data: &[u8], masked: bool) -> anyhow::Result<Option<FrameHead>> {
    if data.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (data[0], data[1]);
    if b0 & 0x70 != 0 {
        bail!("frame with RSV bits set (no extension was negotiated)");
    }
    if (b1 & 0x80 != 0) != masked {
        bail!("{} frames must {}be masked", if masked { "client" } else { "server" }, if masked { "" } else { "not " });
    }
    let (mut header, len) = match b1 & 0x7f {
        126 => match data.get(2..4) {
            Some(b) => (4, u16::from_be_bytes([b[0], b[1]]) as usize),
            None => return Ok(None),
        },
        127 => match data.get(2..10) {
            Some(b) => {
                let len = u64::from_be_bytes(b.try_into().map_err(|_| anyhow!("frame length"))?);
                (10, usize::try_from(len).unwrap_or(usize::MAX))
            }
            None => return Ok(None),
        },
        n => (2, n as usize),
    };
    if len > MAX_MESSAGE {
        bail!("frame of {len} bytes exceeds {MAX_MESSAGE}");
    }
    let mask = if masked {
        let Some(key) = data.get(header..header + 4) else { return Ok(None) };
        header += 4;
        Some([key[0], key[1], key[2], key[3]])
    } else {
        None
    };
    if data.len() < header + len {
        return Ok(None);
    }
    Ok(Some(FrameHead { fin: b0 & 0x80 != 0, opcode: b0 & 0x0f, header, len, mask }))
}

/// The close code and reason in a close frame's payload.
pub fn close_reason(payload: &[u8]) -> (Option<u16>, String) {
    match payload {
        [a, b, rest @ ..] => (Some(u16::from_be_bytes([*a, *b])), String::from_utf8_lossy(rest).into_owned()),
        _ => (None, String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_at_every_length_class() {
        for len in [0usize, 5, 125, 126, 65535, 65536] {
            let payload = vec![7u8; len];
            let header = match len {
                0..=125 => 2,
                126..=65535 => 4,
                _ => 10,
            };
            let mut server = Vec::new();
            put_server_frame(&mut server, OP_BINARY, &payload);
            let head = parse_frame(&server).unwrap().unwrap();
            assert_eq!((head.fin, head.opcode, head.header, head.len), (true, OP_BINARY, header, len));
            assert!(len == 0 || parse_frame(&server[..server.len() - 1]).unwrap().is_none());
            let mut client = Vec::new();
            put_frame(&mut client, OP_TEXT, &payload);
            let head = parse_frame_masked(&client).unwrap().unwrap();
            assert_eq!((head.opcode, head.header, head.len, head.mask), (OP_TEXT, header + 4, len, Some([0; 4])));
        }
    }

    #[test]
    fn refuses_masked_and_oversize_frames() {
        assert!(parse_frame(&[0x82, 0x81, 0, 0, 0, 0, 1]).is_err());
        assert!(parse_frame_masked(&[0x82, 0x01, 1]).is_err());
        assert!(parse_frame(&[0x82, 127, 0, 0, 0, 0, 0x10, 0, 0, 0]).is_err());
    }
}
