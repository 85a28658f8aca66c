//! Keeps `PROTOCOL.md` honest: every example in it is checked against the codecs, and its code tables
//! against [`ErrorCode`] and [`CloseCode`].
//!
//! An example is an HTML comment `<!-- example: KIND -->` followed by a ```` ```json ```` block and a
//! ```` ```hex ```` block (in either order). Kinds:
//! - `client-frame` / `server-frame`: the JSON is exactly what the JSON encoder writes for the frame, and the
//!   hex is exactly what the MessagePack encoder writes; both decode to the same frame.
//! - `quic-client-frame`: as `client-frame`, with the hex carrying the 4-byte length prefix.
//! - `payload-from-msgpack`: the hex is a MessagePack payload; the JSON is what a JSON peer receives.
//! - `payload-from-json`: the JSON is a payload; the hex is what a MessagePack peer receives.

use bytes::{Bytes, BytesMut};
use chorus_protocol::delimit;
use chorus_protocol::{
    ClientFrame, CloseCode, Codec, ErrorCode, Payload, ServerFrame, decode_client, decode_server, encode_client,
    encode_server,
};
use std::collections::BTreeSet;

const SPEC: &str = include_str!("../PROTOCOL.md");
const MAX: usize = 65536;

struct Example {
    kind: String,
    line: usize,
    json: String,
    hex: Vec<u8>,
}

/// The contents of the next fenced block tagged `tag` at or after `from`, and the line after it.
fn fenced(lines: &[&str], from: usize, tag: &str) -> Option<(String, usize)> {
    let open = format!("```{tag}");
    let start = (from..lines.len()).find(|&i| lines[i].trim_end() == open)?;
    let end = (start + 1..lines.len()).find(|&i| lines[i].trim_end() == "```")?;
    Some((lines[start + 1..end].join("\n"), end + 1))
}

fn examples() -> Vec<Example> {
    let lines: Vec<&str> = SPEC.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(kind) = line.trim().strip_prefix("<!-- example: ").and_then(|r| r.strip_suffix(" -->")) else {
            continue;
        };
        let next_marker = (i + 1..lines.len()).find(|&j| lines[j].contains("<!-- example: ")).unwrap_or(lines.len());
        let (json, after_json) =
            fenced(&lines, i + 1, "json").unwrap_or_else(|| panic!("line {}: no json block", i + 1));
        let (hex, after_hex) = fenced(&lines, i + 1, "hex").unwrap_or_else(|| panic!("line {}: no hex block", i + 1));
        assert!(
            after_json <= next_marker && after_hex <= next_marker,
            "line {}: blocks belong to another example",
            i + 1
        );
        let digits: String = hex.split_whitespace().collect();
        let hex = hex::decode(&digits).unwrap_or_else(|e| panic!("line {}: bad hex: {e}", i + 1));
        out.push(Example { kind: kind.to_owned(), line: i + 1, json, hex });
    }
    out
}

/// Hex as the spec writes it: lowercase byte pairs, 16 per line, so a mismatch can be pasted back.
fn spec_hex(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|row| row.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_bytes(line: usize, what: &str, got: &[u8], want: &[u8]) {
    assert!(got == want, "PROTOCOL.md line {line}: {what} differs; the encoder writes:\n{}\n", spec_hex(got));
}

fn assert_json(line: usize, got: &[u8], want: &str) {
    let got = std::str::from_utf8(got).expect("JSON is UTF-8");
    assert!(got == want, "PROTOCOL.md line {line}: JSON differs; the encoder writes:\n{got}\n");
}

fn frame_type(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).expect("example JSON parses");
    v["type"].as_str().expect("example has a type").to_owned()
}

fn check_client(ex: &Example, hex: &[u8]) -> ClientFrame {
    let frame = decode_client(Codec::Json, &Bytes::from(ex.json.clone()), MAX)
        .unwrap_or_else(|e| panic!("PROTOCOL.md line {}: JSON does not decode: {e}", ex.line));
    assert_json(ex.line, &encode_client(Codec::Json, &frame).unwrap(), &ex.json);
    assert_bytes(ex.line, "MessagePack", &encode_client(Codec::MsgPack, &frame).unwrap(), hex);
    assert_eq!(
        decode_client(Codec::MsgPack, &Bytes::copy_from_slice(hex), MAX).as_ref(),
        Ok(&frame),
        "line {}",
        ex.line
    );
    frame
}

fn check_server(ex: &Example) -> ServerFrame {
    let frame = decode_server(Codec::Json, &Bytes::from(ex.json.clone()), MAX)
        .unwrap_or_else(|e| panic!("PROTOCOL.md line {}: JSON does not decode: {e}", ex.line));
    assert_json(ex.line, &encode_server(Codec::Json, &frame).unwrap(), &ex.json);
    assert_bytes(ex.line, "MessagePack", &encode_server(Codec::MsgPack, &frame).unwrap(), &ex.hex);
    assert_eq!(
        decode_server(Codec::MsgPack, &Bytes::from(ex.hex.clone()), MAX).as_ref(),
        Ok(&frame),
        "line {}",
        ex.line
    );
    frame
}

#[test]
fn every_example_matches_the_codecs() {
    let examples = examples();
    let mut client_types = BTreeSet::new();
    let mut server_types = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    for ex in &examples {
        kinds.insert(ex.kind.as_str());
        match ex.kind.as_str() {
            "client-frame" => {
                check_client(ex, &ex.hex);
                client_types.insert(frame_type(&ex.json));
            }
            "server-frame" => {
                check_server(ex);
                server_types.insert(frame_type(&ex.json));
            }
            "quic-client-frame" => {
                let mut buf = BytesMut::from(&ex.hex[..]);
                let body = delimit::split_frame(&mut buf, MAX).unwrap().expect("a whole frame");
                assert!(buf.is_empty(), "line {}: bytes after the frame", ex.line);
                let frame = check_client(ex, &body);
                let mut wire = BytesMut::new();
                delimit::put_prefix(&mut wire, body.len());
                wire.extend_from_slice(&encode_client(Codec::MsgPack, &frame).unwrap());
                assert_bytes(ex.line, "length-prefixed frame", &wire, &ex.hex);
            }
            "payload-from-msgpack" => {
                let payload = Payload::from_msgpack(Bytes::from(ex.hex.clone()))
                    .unwrap_or_else(|e| panic!("PROTOCOL.md line {}: {e}", ex.line));
                assert_json(ex.line, &payload.encoded(Codec::Json).unwrap(), &ex.json);
            }
            "payload-from-json" => {
                let payload = Payload::from_json(Bytes::from(ex.json.clone()))
                    .unwrap_or_else(|e| panic!("PROTOCOL.md line {}: {e}", ex.line));
                assert_bytes(ex.line, "MessagePack", &payload.encoded(Codec::MsgPack).unwrap(), &ex.hex);
            }
            other => panic!("PROTOCOL.md line {}: unknown example kind {other:?}", ex.line),
        }
    }
    let all = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(client_types, all(&["hello", "subscribe", "unsubscribe", "publish", "call", "ping"]));
    assert_eq!(server_types, all(&["welcome", "reply", "error", "event", "pong", "disconnect"]));
    let want_kinds = ["client-frame", "server-frame", "quic-client-frame", "payload-from-msgpack", "payload-from-json"];
    assert_eq!(kinds, want_kinds.into_iter().collect());
}

/// Rows `| number | `name` | ...` of the table between `<!-- table: NAME -->` and `<!-- /table -->`.
fn table(name: &str) -> Vec<(u16, String)> {
    let start = SPEC.find(&format!("<!-- table: {name} -->")).unwrap_or_else(|| panic!("no {name} table"));
    let body = &SPEC[start..];
    let body = &body[..body.find("<!-- /table -->").expect("table end")];
    body.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let number = cells.get(1)?.parse().ok()?;
            Some((number, cells.get(2)?.trim_matches('`').to_owned()))
        })
        .collect()
}

#[test]
fn error_code_table_lists_every_code() {
    let rows = table("error-codes");
    let want: Vec<(u16, String)> = ErrorCode::ALL.iter().map(|c| (c.as_u16(), c.name().to_owned())).collect();
    assert_eq!(rows, want);
}

#[test]
fn close_code_table_lists_every_code() {
    let rows = table("close-codes");
    let want: Vec<(u16, String)> =
        (0..=u16::MAX).filter_map(CloseCode::from_u16).map(|c| (c.as_u16(), c.name().to_owned())).collect();
    assert_eq!(rows, want);
}

#[test]
fn code_tables_are_in_plain_words() {
    for name in ["error-codes", "close-codes"] {
        let start = SPEC.find(&format!("<!-- table: {name} -->")).expect("table");
        let body = &SPEC[start..];
        for row in body[..body.find("<!-- /table -->").expect("table end")].lines().filter(|l| l.starts_with("| ")) {
            chorus_testkit::plain::assert_plain(name, row);
        }
    }
}

#[test]
fn names_and_limits_match_the_crate() {
    for needle in [
        chorus_protocol::SUBPROTOCOL_MSGPACK.to_owned(),
        chorus_protocol::SUBPROTOCOL_JSON.to_owned(),
        String::from_utf8(chorus_protocol::QUIC_ALPN.to_vec()).unwrap(),
        format!("{} bytes", chorus_protocol::topic::MAX_TOPIC_LEN),
        format!("depth ≤ {}", chorus_protocol::payload::MAX_DEPTH),
        format!("{}-byte big-endian", delimit::PREFIX_LEN),
    ] {
        assert!(SPEC.contains(&needle), "PROTOCOL.md does not mention {needle:?}");
    }
}
