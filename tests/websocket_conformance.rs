//! RFC 6455 conformance of every WebSocket endpoint: the native `/v1/ws`, the seed-004 dialect `/ws` and
//! Socket.IO's WebSocket transport. The frames are written by hand over a raw TCP socket (no WebSocket
//! library would send most of them), covering what a conformance suite such as Autobahn's checks:
//! fragmentation, control frames between fragments, invalid UTF-8, close codes, oversized and fragmented
//! control frames, reserved bits and opcodes, unmasked client frames. Each case asserts the server's answer
//! or its close code (RFC 6455 §7.4.1: 1002 protocol error, 1007 invalid payload data, 1009 too big).

use crate::support::*;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for one frame from the server (a debug broker on a loaded CI machine).
const WAIT: Duration = Duration::from_secs(10);

const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// A frame as the server sent it.
#[derive(Debug, PartialEq)]
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

impl Frame {
    /// The close code of a close frame (`None` when it carries none).
    fn close_code(&self) -> Option<u16> {
        (self.opcode == CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// A WebSocket client that writes whatever frame it is told to.
struct RawClient {
    tcp: TcpStream,
    buffered: Vec<u8>,
}

impl RawClient {
    /// Opens a TCP connection and completes the HTTP upgrade on `path`, offering `subprotocol`.
    async fn connect(broker: &Broker, path: &str, subprotocol: Option<&str>) -> Self {
        let mut tcp = TcpStream::connect(broker.http).await.expect("connect");
        let protocol = subprotocol.map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n")).unwrap_or_default();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{protocol}\r\n",
            broker.http
        );
        tcp.write_all(request.as_bytes()).await.expect("send upgrade");
        let mut client = Self { tcp, buffered: Vec::new() };
        let head = loop {
            if let Some(end) = client.buffered.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = client.buffered.drain(..end + 4).collect();
                break String::from_utf8(head).expect("HTTP head");
            }
            assert!(client.fill().await, "connection closed during the upgrade");
        };
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused on {path}: {head}");
        // RFC 6455 §1.3's example key has this accept value.
        assert!(head.to_ascii_lowercase().contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "{head}");
        client
    }

    /// Reads more bytes; false at end of stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(WAIT, self.tcp.read(&mut chunk)).await.expect("no bytes from the server within 10 s")
        {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buffered.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Sends one frame: `first` is FIN, RSV1-3 and the opcode; masked as a client must unless `masked` is false.
    async fn send_raw(&mut self, first: u8, payload: &[u8], masked: bool) {
        let mut frame = vec![first];
        let mask_bit = if masked { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => frame.push(mask_bit | n as u8),
            n if n <= 0xFFFF => {
                frame.push(mask_bit | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(mask_bit | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if masked {
            let key = [0x37, 0xfa, 0x21, 0x3d];
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            frame.extend_from_slice(payload);
        }
        // The server may already have closed the connection: what it answered is what the case checks.
        let _ = self.tcp.write_all(&frame).await;
    }

    /// Sends a masked frame with `fin` and `opcode`, reserved bits clear.
    async fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.send_raw(if fin { 0x80 } else { 0 } | opcode, payload, true).await;
    }

    /// A close frame with `code` and `reason`.
    async fn send_close(&mut self, code: u16, reason: &str) {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        self.send(true, CLOSE, &payload).await;
    }

    /// The next frame, or `None` when the connection ended.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) = parse(&self.buffered) {
                self.buffered.drain(..used);
                return Some(frame);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The next data frame's payload as text (skipping the server's pings).
    async fn next_text(&mut self) -> String {
        loop {
            let frame = self.next().await.expect("connection ended while waiting for a message");
            match frame.opcode {
                PING => continue,
                TEXT => {
                    assert!(frame.fin, "the server fragments nothing this small");
                    return String::from_utf8(frame.payload).expect("the server sent invalid UTF-8");
                }
                _ => panic!("expected a text frame, got {frame:?}"),
            }
        }
    }

    /// Reads until the server's close frame, checks the TCP connection then ends, returns the close code;
    /// `Err` when the server dropped the connection without a close frame.
    async fn close_code(&mut self) -> Result<Option<u16>, &'static str> {
        let code = loop {
            match self.next().await {
                Some(frame) if frame.opcode == CLOSE => break frame.close_code(),
                Some(_) => continue,
                None => return Err("dropped without a close frame"),
            }
        };
        // Answer the close (completing the handshake), then the server must end the TCP connection.
        self.send(true, CLOSE, &[]).await;
        while self.next().await.is_some() {}
        Ok(code)
    }
}

/// One complete server frame at the start of `bytes`, and its length. Server frames are never masked.
fn parse(bytes: &[u8]) -> Option<(Frame, usize)> {
    let [first, second, ..] = *bytes else { return None };
    assert_eq!(second & 0x80, 0, "a server frame was masked");
    assert_eq!(first & 0x70, 0, "a server frame set reserved bits");
    let (len, mut at) = match second & 0x7F {
        126 => (u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?) as usize, 4),
        127 => (u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?) as usize, 10),
        n => (n as usize, 2),
    };
    let payload = bytes.get(at..at + len)?.to_vec();
    at += len;
    Some((Frame { fin: first & 0x80 != 0, opcode: first & 0x0F, payload }, at))
}

/// The WebSocket endpoints, each with a request that gets an answer.
#[derive(Debug, Clone, Copy)]
enum Endpoint {
    /// `/v1/ws` with the JSON subprotocol: `hello` → `welcome`.
    Native,
    /// The seed-004 dialect: `ping` → `pong`.
    Dialect,
    /// Socket.IO over WebSocket: namespace connect `40` → `40{"sid":…}`.
    SocketIo,
}

const ENDPOINTS: [Endpoint; 3] = [Endpoint::Native, Endpoint::Dialect, Endpoint::SocketIo];

impl Endpoint {
    /// Opens a connection and reads what the server says first.
    async fn open(self, broker: &Broker) -> RawClient {
        match self {
            Self::Native => RawClient::connect(broker, "/v1/ws", Some("chorus.v1.json")).await,
            Self::Dialect => {
                let token = token(json!({"sub": "conformance"}));
                let mut client = RawClient::connect(broker, &format!("/ws?token={token}"), None).await;
                let established = client.next_text().await;
                assert!(established.contains("connection_established"), "{established}");
                client
            }
            Self::SocketIo => {
                let mut client = RawClient::connect(broker, "/socket.io/?EIO=4&transport=websocket", None).await;
                let open = client.next_text().await;
                assert!(open.starts_with("0{"), "Engine.IO open packet: {open}");
                client
            }
        }
    }

    /// A message the endpoint answers.
    fn request(self) -> &'static str {
        match self {
            Self::Native => r#"{"type":"hello"}"#,
            Self::Dialect => r#"{"type":"ping"}"#,
            Self::SocketIo => "40",
        }
    }

    /// Whether `answer` is the endpoint's answer to [`Endpoint::request`].
    fn answered(self, answer: &str) -> bool {
        match self {
            Self::Native => answer.contains(r#""type":"welcome""#),
            Self::Dialect => answer.contains(r#""type":"pong""#),
            Self::SocketIo => answer.starts_with("40{"),
        }
    }

    /// Checks the endpoint still works: the request, whole, gets its answer.
    async fn assert_answers(self, client: &mut RawClient, case: &str) {
        let answer = client.next_text().await;
        assert!(self.answered(&answer), "{self:?} {case}: answered {answer}");
    }
}

#[tokio::test]
async fn fragmented_messages_are_reassembled_with_control_frames_between_fragments() {
    let broker = Broker::start(&[]).await;
    for endpoint in ENDPOINTS {
        let request = endpoint.request().as_bytes();
        let (head, tail) = request.split_at(1);

        // Text in three fragments: text (FIN 0), continuation (FIN 0), continuation (FIN 1); an empty middle.
        let mut client = endpoint.open(&broker).await;
        client.send(false, TEXT, head).await;
        client.send(false, CONTINUATION, &[]).await;
        client.send(true, CONTINUATION, tail).await;
        endpoint.assert_answers(&mut client, "fragmented").await;

        // A ping between fragments is answered at once with the same payload; the message completes after.
        let mut client = endpoint.open(&broker).await;
        client.send(false, TEXT, head).await;
        client.send(true, PING, b"between fragments").await;
        let pong = client.next().await.expect("pong");
        assert_eq!((pong.opcode, pong.payload.as_slice()), (PONG, &b"between fragments"[..]), "{endpoint:?}");
        client.send(true, PONG, b"unsolicited pong").await;
        client.send(true, CONTINUATION, tail).await;
        endpoint.assert_answers(&mut client, "ping between fragments").await;

        // A ping of the largest control payload (125 bytes) comes back whole.
        client.send(true, PING, &[0xA5; 125]).await;
        let pong = client.next().await.expect("pong");
        assert_eq!((pong.opcode, pong.payload), (PONG, vec![0xA5; 125]), "{endpoint:?}");
    }
}

/// Runs `case` on a fresh connection to every endpoint and asserts the server closes with `code`.
async fn closes_with<F>(broker: &Broker, code: u16, what: &str, case: F)
where
    F: AsyncFn(&mut RawClient, Endpoint),
{
    for endpoint in ENDPOINTS {
        let mut client = endpoint.open(broker).await;
        case(&mut client, endpoint).await;
        assert_eq!(client.close_code().await, Ok(Some(code)), "{endpoint:?}: {what}");
    }
}

#[tokio::test]
async fn broken_fragmentation_closes_1002() {
    let broker = Broker::start(&[]).await;
    closes_with(&broker, 1002, "continuation without a message", async |c, _| {
        c.send(true, CONTINUATION, b"orphan").await;
    })
    .await;
    closes_with(&broker, 1002, "a new message inside a fragmented one", async |c, e| {
        c.send(false, TEXT, &e.request().as_bytes()[..1]).await;
        c.send(true, TEXT, e.request().as_bytes()).await;
    })
    .await;
    closes_with(&broker, 1002, "a binary frame inside a fragmented text", async |c, e| {
        c.send(false, TEXT, &e.request().as_bytes()[..1]).await;
        c.send(true, BINARY, b"x").await;
    })
    .await;
}

#[tokio::test]
async fn invalid_utf8_in_text_closes_1007() {
    let broker = Broker::start(&[]).await;
    // RFC 6455 §8.1: text must be valid UTF-8; §7.4.1: 1007 for data inconsistent with its type.
    closes_with(&broker, 1007, "invalid UTF-8 in one frame", async |c, _| {
        c.send(true, TEXT, b"{\"type\":\"\xce\xba\xe1\xbd\xb9\xcf\x83\xed\xa0\x80\"}").await;
    })
    .await;
    closes_with(&broker, 1007, "invalid UTF-8 across fragments", async |c, _| {
        c.send(false, TEXT, b"\"\xce").await;
        c.send(true, CONTINUATION, b"\xff\"").await;
    })
    .await;
}

#[tokio::test]
async fn close_codes_are_checked() {
    let broker = Broker::start(&[]).await;
    // A valid close is echoed (RFC 6455 §5.5.1).
    for code in [1000, 1001, 3000, 4999] {
        closes_with(&broker, code, "a valid close is echoed", async |c, _| c.send_close(code, "bye").await).await;
    }
    // Codes a peer must not send (§7.4.1, §7.4.2: 1005, 1006 and 1015 are never on the wire; below 1000,
    // unassigned 1016-2999 and above 4999 are invalid) are a protocol error.
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        closes_with(&broker, 1002, "invalid close code", async |c, _| c.send_close(code, "").await).await;
    }
    closes_with(&broker, 1002, "a 1-byte close payload", async |c, _| c.send(true, CLOSE, &[0x03]).await).await;
    closes_with(&broker, 1007, "a close reason that is not UTF-8", async |c, _| {
        c.send(true, CLOSE, &[0x03, 0xe8, 0xff, 0xfe]).await;
    })
    .await;
}

#[tokio::test]
async fn bad_control_frames_reserved_bits_and_opcodes_close_1002() {
    let broker = Broker::start(&[]).await;
    closes_with(&broker, 1002, "a ping over 125 bytes", async |c, _| c.send(true, PING, &[0; 126]).await).await;
    closes_with(&broker, 1002, "a fragmented ping", async |c, _| c.send(false, PING, b"half").await).await;
    closes_with(&broker, 1002, "a fragmented close", async |c, _| c.send(false, CLOSE, &[0x03, 0xe8]).await).await;
    for (bit, name) in [(0x40, "RSV1"), (0x20, "RSV2"), (0x10, "RSV3")] {
        closes_with(&broker, 1002, name, async |c, e| {
            c.send_raw(0x80 | bit | TEXT, e.request().as_bytes(), true).await;
        })
        .await;
        closes_with(&broker, 1002, name, async |c, _| c.send_raw(0x80 | bit | PING, b"", true).await).await;
    }
    for opcode in [0x3, 0x7, 0xB, 0xF] {
        closes_with(&broker, 1002, "a reserved opcode", async |c, _| c.send(true, opcode, b"").await).await;
    }
    closes_with(&broker, 1002, "an unmasked client frame", async |c, e| {
        c.send_raw(0x80 | TEXT, e.request().as_bytes(), false).await;
    })
    .await;
}

#[tokio::test]
async fn a_message_over_the_frame_limit_closes_1009() {
    let broker = Broker::start(&["--max-frame-bytes", "1024", "--socketio-max-http-buffer-bytes", "1024"]).await;
    closes_with(&broker, 1009, "one frame over the limit", async |c, _| {
        c.send(true, TEXT, &[b' '; 1025]).await;
    })
    .await;
    closes_with(&broker, 1009, "fragments adding up to more than the limit", async |c, _| {
        c.send(false, TEXT, &[b' '; 600]).await;
        c.send(true, CONTINUATION, &[b' '; 600]).await;
    })
    .await;
}
