//! Every way a frame can be refused, in both codecs, with the exact [`DecodeError`] and [`ErrorCode`] the
//! peer is told. Inputs are written as JSON text; the MessagePack twin is the same value encoded by
//! `rmp-serde` (or hand-written bytes where JSON cannot express the case).

use bytes::Bytes;
use chorus_protocol::payload::MAX_DEPTH;
use chorus_protocol::{
    ClientFrame, Codec, DecodeError, ErrorCode, Payload, PayloadError, ServerFrame, decode_client, decode_server,
    encode_client,
};

const MAX: usize = 65536;

/// The same value as JSON text and as MessagePack.
fn both(json: &str) -> [(Codec, Bytes); 2] {
    let value: serde_json::Value = serde_json::from_str(json).expect("test input is JSON");
    let msgpack = rmp_serde::to_vec(&value).expect("JSON values encode as MessagePack");
    [(Codec::Json, Bytes::from(json.to_owned())), (Codec::MsgPack, Bytes::from(msgpack))]
}

fn client_err(codec: Codec, bytes: &Bytes) -> DecodeError {
    match decode_client(codec, bytes, MAX) {
        Ok(frame) => panic!("{codec:?} {bytes:02x?} decoded as {frame:?}"),
        Err(e) => e,
    }
}

fn server_err(codec: Codec, bytes: &Bytes) -> DecodeError {
    match decode_server(codec, bytes, MAX) {
        Ok(frame) => panic!("{codec:?} {bytes:02x?} decoded as {frame:?}"),
        Err(e) => e,
    }
}

/// Asserts that the client decoder refuses `json` (in both codecs) with exactly `want`.
fn client_refuses(json: &str, want: DecodeError) {
    for (codec, bytes) in both(json) {
        let err = client_err(codec, &bytes);
        assert_eq!(err, want, "{codec:?} {json}");
    }
}

fn server_refuses(json: &str, want: DecodeError) {
    for (codec, bytes) in both(json) {
        let err = server_err(codec, &bytes);
        assert_eq!(err, want, "{codec:?} {json}");
    }
}

fn assert_malformed(err: &DecodeError, what: &str) {
    assert!(matches!(err, DecodeError::Malformed(_)), "{what}: {err:?}");
    assert_eq!(err.code(), ErrorCode::Malformed, "{what}");
}

fn invalid(field: &'static str, reason: &str) -> DecodeError {
    DecodeError::InvalidField { field, reason: reason.into() }
}

const UINT: &str = "expected an unsigned integer";
const TEXT: &str = "expected a string";

#[test]
fn codes_of_each_error() {
    assert_eq!(DecodeError::TooLarge { len: 2, max: 1 }.code(), ErrorCode::Malformed);
    assert_eq!(DecodeError::Malformed(String::new()).code(), ErrorCode::Malformed);
    assert_eq!(DecodeError::UnknownType("x".into()).code(), ErrorCode::UnknownFrame);
    assert_eq!(DecodeError::MissingField("topic").code(), ErrorCode::InvalidField);
    assert_eq!(invalid("id", UINT).code(), ErrorCode::InvalidField);
    assert_eq!(DecodeError::InvalidPayload(PayloadError::TooDeep).code(), ErrorCode::InvalidPayload);
    assert_eq!(ErrorCode::Malformed.as_u16(), 1001);
    assert_eq!(ErrorCode::UnknownFrame.as_u16(), 1002);
    assert_eq!(ErrorCode::InvalidField.as_u16(), 1003);
    assert_eq!(ErrorCode::InvalidPayload.as_u16(), 1007);
}

#[test]
fn garbage_is_malformed() {
    let garbage: [&[u8]; 8] =
        [b"", b"\xff\xfe\xfd", b"hello", b"{", b"}{", b"{\"type\":", b"\xc1", b"\x00\x00\x00\x00"];
    for codec in Codec::ALL {
        for g in garbage {
            let bytes = Bytes::from_static(g);
            assert_malformed(&client_err(codec, &bytes), &format!("{codec:?} {g:02x?}"));
            assert_malformed(&server_err(codec, &bytes), &format!("{codec:?} {g:02x?}"));
        }
    }
}

#[test]
fn every_prefix_of_a_frame_is_malformed() {
    let frame = ClientFrame::Publish {
        id: Some(300),
        topic: "chat/room-1".into(),
        payload: chorus_protocol::Payload::from_json(Bytes::from_static(
            br#"{"text":"hi \u00e9","n":[1,-2,2.5,null,true],"nested":{"deep":[[{}]]}}"#,
        ))
        .unwrap(),
    };
    for codec in Codec::ALL {
        let whole = encode_client(codec, &frame).unwrap();
        assert_eq!(decode_client(codec, &whole, MAX), Ok(frame.clone()));
        for end in 0..whole.len() {
            let prefix = whole.slice(..end);
            assert_malformed(&client_err(codec, &prefix), &format!("{codec:?} prefix of {end} bytes"));
        }
    }
}

#[test]
fn trailing_bytes_are_malformed() {
    for (codec, bytes) in both(r#"{"type":"ping"}"#) {
        let mut longer = bytes.to_vec();
        longer.extend_from_slice(if codec == Codec::Json { b" {}" } else { b"\xc0" });
        assert_malformed(&client_err(codec, &Bytes::from(longer)), &format!("{codec:?}"));
    }
}

#[test]
fn top_level_must_be_a_map() {
    for json in [r#"["hello"]"#, r#"["ping", 1]"#, r#""hello""#, "42", "null", "true", "[]"] {
        for (codec, bytes) in both(json) {
            assert_malformed(&client_err(codec, &bytes), &format!("{codec:?} {json}"));
            assert_malformed(&server_err(codec, &bytes), &format!("{codec:?} {json}"));
        }
    }
}

#[test]
fn frame_keys_must_be_strings() {
    // MessagePack {1: "ping"}; JSON cannot express it.
    let bytes = Bytes::from_static(&[0x81, 0x01, 0xa4, b'p', b'i', b'n', b'g']);
    assert_malformed(&client_err(Codec::MsgPack, &bytes), "integer key");
}

#[test]
fn duplicate_keys_are_malformed_in_json() {
    let bytes = Bytes::from_static(br#"{"type":"ping","type":"hello"}"#);
    assert_malformed(&client_err(Codec::Json, &bytes), "duplicate type");
}

#[test]
fn unknown_type() {
    client_refuses(r#"{"type":"subscribe_all","topic":"a"}"#, DecodeError::UnknownType("subscribe_all".into()));
    client_refuses(r#"{"type":"PING"}"#, DecodeError::UnknownType("PING".into()));
    client_refuses(r#"{"type":""}"#, DecodeError::UnknownType(String::new()));
    // Each side accepts only the other side's frames.
    client_refuses(r#"{"type":"pong"}"#, DecodeError::UnknownType("pong".into()));
    server_refuses(r#"{"type":"ping"}"#, DecodeError::UnknownType("ping".into()));
    server_refuses(r#"{"type":"hello"}"#, DecodeError::UnknownType("hello".into()));
    assert_eq!(DecodeError::UnknownType(String::new()).code(), ErrorCode::UnknownFrame);
}

#[test]
fn missing_type() {
    client_refuses(r#"{"topic":"a","payload":1}"#, DecodeError::MissingField("type"));
    client_refuses(r#"{}"#, DecodeError::MissingField("type"));
    client_refuses(r#"{"type":null,"id":1}"#, DecodeError::MissingField("type"));
    server_refuses(r#"{"id":1,"result":null}"#, DecodeError::MissingField("type"));
    assert_eq!(DecodeError::MissingField("type").code(), ErrorCode::InvalidField);
}

#[test]
fn missing_required_client_fields() {
    let missing = DecodeError::MissingField;
    client_refuses(r#"{"type":"publish","id":1,"payload":{"a":1}}"#, missing("topic"));
    client_refuses(r#"{"type":"publish","topic":null,"payload":1}"#, missing("topic"));
    client_refuses(r#"{"type":"publish","id":1,"topic":"a"}"#, missing("payload"));
    client_refuses(r#"{"type":"call","id":4,"args":{}}"#, missing("method"));
    client_refuses(r#"{"type":"subscribe","id":1}"#, missing("topic"));
    client_refuses(r#"{"type":"unsubscribe","id":1}"#, missing("topic"));
}

#[test]
fn missing_required_server_fields() {
    let missing = DecodeError::MissingField;
    server_refuses(r#"{"type":"reply","result":1}"#, missing("id"));
    server_refuses(r#"{"type":"event","seq":1,"payload":1}"#, missing("topic"));
    server_refuses(r#"{"type":"event","topic":"a","payload":1}"#, missing("seq"));
    server_refuses(r#"{"type":"error","id":1,"message":"x"}"#, missing("code"));
    server_refuses(r#"{"type":"disconnect","reason":"x"}"#, missing("code"));
    let identity = r#"{"sub":"u","guest":false}"#;
    let limits = r#"{"max_frame_bytes":65536,"max_subscriptions":512,"publish_rate":1000,"idle_timeout_ms":60000}"#;
    server_refuses(&format!(r#"{{"type":"welcome","identity":{identity},"limits":{limits}}}"#), missing("conn_id"));
    server_refuses(&format!(r#"{{"type":"welcome","conn_id":1,"limits":{limits}}}"#), missing("identity"));
    server_refuses(&format!(r#"{{"type":"welcome","conn_id":1,"identity":{identity}}}"#), missing("limits"));
}

#[test]
fn optional_fields_may_be_absent_or_null() {
    for json in [r#"{"type":"subscribe","topic":"a"}"#, r#"{"type":"subscribe","id":null,"topic":"a","since":null}"#] {
        for (codec, bytes) in both(json) {
            let frame = decode_client(codec, &bytes, MAX).unwrap();
            assert_eq!(frame, ClientFrame::Subscribe { id: None, topic: "a".into(), since: None }, "{codec:?}");
        }
    }
    for json in [r#"{"type":"call","method":"booking.hold"}"#, r#"{"type":"call","id":null,"method":"booking.hold"}"#] {
        for (codec, bytes) in both(json) {
            let frame = decode_client(codec, &bytes, MAX).unwrap();
            let want = ClientFrame::Call { id: None, method: "booking.hold".into(), args: Payload::null() };
            assert_eq!(frame, want, "{codec:?}");
        }
    }
    for (codec, bytes) in both(r#"{"type":"hello","token":null}"#) {
        assert_eq!(decode_client(codec, &bytes, MAX), Ok(ClientFrame::Hello { token: None }), "{codec:?}");
    }
    for (codec, bytes) in both(r#"{"type":"error","code":2004,"id":null}"#) {
        let frame = decode_server(codec, &bytes, MAX).unwrap();
        assert_eq!(frame, ServerFrame::Error { id: None, code: 2004, message: String::new() }, "{codec:?}");
    }
}

#[test]
fn null_is_a_payload() {
    for (codec, bytes) in both(r#"{"type":"publish","topic":"a","payload":null}"#) {
        let frame = decode_client(codec, &bytes, MAX).unwrap();
        let ClientFrame::Publish { payload, .. } = frame else { panic!("{codec:?}: not a publish") };
        assert_eq!(payload.to_json(), serde_json::Value::Null, "{codec:?}");
    }
}

#[test]
fn unknown_fields_are_ignored() {
    let json = r#"{"type":"ping","id":3,"x-trace":{"span":[1,2,{"k":"v"}]},"zzz":null}"#;
    for (codec, bytes) in both(json) {
        assert_eq!(decode_client(codec, &bytes, MAX), Ok(ClientFrame::Ping { id: Some(3) }), "{codec:?}");
    }
}

#[test]
fn ill_typed_fields() {
    client_refuses(r#"{"type":"ping","id":"7"}"#, invalid("id", UINT));
    client_refuses(r#"{"type":"ping","id":-1}"#, invalid("id", UINT));
    client_refuses(r#"{"type":"ping","id":1.5}"#, invalid("id", UINT));
    client_refuses(r#"{"type":"ping","id":true}"#, invalid("id", UINT));
    client_refuses(r#"{"type":"ping","id":[1]}"#, invalid("id", UINT));
    client_refuses(r#"{"type":"publish","topic":42,"payload":1}"#, invalid("topic", TEXT));
    client_refuses(r#"{"type":"subscribe","topic":["a"]}"#, invalid("topic", TEXT));
    client_refuses(r#"{"type":7}"#, invalid("type", TEXT));
    client_refuses(r#"{"type":"hello","token":{"jwt":"x"}}"#, invalid("token", TEXT));
    client_refuses(r#"{"type":"call","id":1,"method":false}"#, invalid("method", TEXT));
    server_refuses(r#"{"type":"event","topic":"a","seq":-3,"payload":1}"#, invalid("seq", UINT));
    server_refuses(r#"{"type":"error","code":"1001"}"#, invalid("code", UINT));
    server_refuses(r#"{"type":"error","code":70000}"#, invalid("code", "out of range"));
    server_refuses(r#"{"type":"disconnect","code":1000,"reason":5}"#, invalid("reason", TEXT));
    assert_eq!(invalid("id", UINT).code(), ErrorCode::InvalidField);
}

#[test]
fn ill_shaped_nested_fields() {
    let shape = |json: &str, field: &str| {
        for (codec, bytes) in both(json) {
            let err = client_err(codec, &bytes);
            assert!(
                matches!(&err, DecodeError::InvalidField { field: f, .. } if *f == field),
                "{codec:?} {json}: {err:?}"
            );
            assert_eq!(err.code(), ErrorCode::InvalidField);
        }
    };
    shape(r#"{"type":"subscribe","topic":"a","since":{"epoch":"e"}}"#, "since");
    shape(r#"{"type":"subscribe","topic":"a","since":{"epoch":"e","offset":-1}}"#, "since");
    shape(r#"{"type":"subscribe","topic":"a","since":[1,2,3]}"#, "since");
    shape(r#"{"type":"subscribe","topic":"a","since":"e:4"}"#, "since");
    for (codec, bytes) in both(r#"{"type":"welcome","conn_id":1,"identity":{"sub":"u"},"limits":{}}"#) {
        let err = server_err(codec, &bytes);
        assert!(matches!(err, DecodeError::InvalidField { field: "identity", .. }), "{codec:?}: {err:?}");
    }
}

/// A MessagePack integer of each width (including signed widths holding non-negative values) is an id.
#[test]
fn msgpack_integer_widths() {
    let ping = |id: &[u8]| {
        let mut v = vec![0x82, 0xa4, b't', b'y', b'p', b'e', 0xa4, b'p', b'i', b'n', b'g', 0xa2, b'i', b'd'];
        v.extend_from_slice(id);
        decode_client(Codec::MsgPack, &Bytes::from(v), MAX)
    };
    let id = |n| Ok(ClientFrame::Ping { id: Some(n) });
    assert_eq!(ping(&[0x05]), id(5));
    assert_eq!(ping(&[0xcc, 0xff]), id(255));
    assert_eq!(ping(&[0xcd, 0x01, 0x00]), id(256));
    assert_eq!(ping(&[0xce, 0x00, 0x01, 0x00, 0x00]), id(65536));
    assert_eq!(ping(&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), id(u64::MAX));
    assert_eq!(ping(&[0xd0, 0x05]), id(5));
    assert_eq!(ping(&[0xd3, 0, 0, 0, 0, 0, 0, 0x01, 0x00]), id(256));
    assert_eq!(ping(&[0xc0]), Ok(ClientFrame::Ping { id: None }));
    assert_eq!(ping(&[0xff]), Err(invalid("id", UINT)));
    assert_eq!(ping(&[0xd0, 0xff]), Err(invalid("id", UINT)));
    assert_eq!(ping(&[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]), Err(invalid("id", UINT)));
    assert_eq!(ping(&[0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]), Err(invalid("id", UINT)));
    assert_eq!(ping(&[0xc4, 0x01, 0x05]), Err(invalid("id", UINT)));
    assert_malformed(&ping(&[0xcd, 0x01]).unwrap_err(), "truncated uint16");
}

#[test]
fn oversize_is_refused_before_parsing() {
    for (codec, bytes) in both(r#"{"type":"publish","topic":"a","payload":"0123456789"}"#) {
        let len = bytes.len();
        let err = decode_client(codec, &bytes, len - 1).unwrap_err();
        assert_eq!(err, DecodeError::TooLarge { len, max: len - 1 }, "{codec:?}");
        assert_eq!(err.code(), ErrorCode::Malformed);
        assert!(decode_client(codec, &bytes, len).is_ok(), "{codec:?}");
        assert_eq!(decode_server(codec, &bytes, 10).unwrap_err(), DecodeError::TooLarge { len, max: 10 }, "{codec:?}");
    }
    let garbage = Bytes::from(vec![0xc1; 100]);
    for codec in Codec::ALL {
        assert_eq!(decode_client(codec, &garbage, 99), Err(DecodeError::TooLarge { len: 100, max: 99 }));
    }
}

/// A MessagePack publish frame carrying `payload` verbatim.
fn msgpack_publish(payload: &[u8]) -> Bytes {
    let mut v = vec![0x83, 0xa4, b't', b'y', b'p', b'e', 0xa7];
    v.extend_from_slice(b"publish");
    v.extend_from_slice(&[0xa5, b't', b'o', b'p', b'i', b'c', 0xa1, b'a', 0xa7]);
    v.extend_from_slice(b"payload");
    v.extend_from_slice(payload);
    Bytes::from(v)
}

fn json_publish(payload: &str) -> Bytes {
    Bytes::from(format!(r#"{{"type":"publish","topic":"a","payload":{payload}}}"#))
}

fn payload_err(err: DecodeError, want: PayloadError) {
    assert_eq!(err, DecodeError::InvalidPayload(want));
    assert_eq!(err.code(), ErrorCode::InvalidPayload);
}

#[test]
fn payload_map_keys_must_be_strings() {
    // {"k": {1: 2}}
    let err = client_err(Codec::MsgPack, &msgpack_publish(&[0x81, 0xa1, b'k', 0x81, 0x01, 0x02]));
    payload_err(err, PayloadError::Unrepresentable("map keys must be strings"));
    // {nil: 1}
    let err = client_err(Codec::MsgPack, &msgpack_publish(&[0x81, 0xc0, 0x01]));
    payload_err(err, PayloadError::Unrepresentable("map keys must be strings"));
    // {[]: 1}
    let err = client_err(Codec::MsgPack, &msgpack_publish(&[0x81, 0x90, 0x01]));
    payload_err(err, PayloadError::Unrepresentable("map keys must be strings"));
}

#[test]
fn payload_ext_types_are_refused() {
    let ext = PayloadError::Unrepresentable("extension types are not supported");
    for payload in [
        &[0xd4, 0x01, 0x00][..],                                                             // fixext 1
        &[0xd6, 0xff, 0x00, 0x00, 0x00, 0x00][..],                                           // timestamp 32
        &[0xc7, 0x01, 0x05, 0x00][..],                                                       // ext 8
        &[0x91, 0xd5, 0x02, 0x00, 0x00][..],                                                 // [fixext 2]
        &[0x81, 0xa1, b't', 0xd8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..], // {"t": fixext 16}
    ] {
        let err = client_err(Codec::MsgPack, &msgpack_publish(payload));
        payload_err(err, ext.clone());
    }
}

#[test]
fn payload_depth_is_limited() {
    let nested_msgpack = |depth: usize| {
        let mut v = vec![0x91; depth];
        v.push(0x01);
        msgpack_publish(&v)
    };
    let nested_json = |depth: usize| json_publish(&format!("{}1{}", "[".repeat(depth), "]".repeat(depth)));
    assert!(decode_client(Codec::MsgPack, &nested_msgpack(MAX_DEPTH), MAX).is_ok());
    assert!(decode_client(Codec::Json, &nested_json(MAX_DEPTH), MAX).is_ok());
    assert_eq!(MAX_DEPTH + 1, 65);
    payload_err(client_err(Codec::MsgPack, &nested_msgpack(MAX_DEPTH + 1)), PayloadError::TooDeep);
    payload_err(client_err(Codec::Json, &nested_json(MAX_DEPTH + 1)), PayloadError::TooDeep);
    payload_err(client_err(Codec::MsgPack, &nested_msgpack(1000)), PayloadError::TooDeep);
    // Maps count as levels too.
    let maps = format!("{}1{}", r#"{"k":"#.repeat(MAX_DEPTH + 1), "}".repeat(MAX_DEPTH + 1));
    payload_err(client_err(Codec::Json, &json_publish(&maps)), PayloadError::TooDeep);
    // Beyond serde_json's recursion limit (128) too: the limit is ours, not the parser's.
    payload_err(client_err(Codec::Json, &nested_json(1000)), PayloadError::TooDeep);
}

#[test]
fn payload_must_be_well_formed() {
    // Invalid UTF-8 in a MessagePack string, reserved marker 0xc1, truncated array.
    for payload in [&[0xa2, 0xc3, 0x28][..], &[0xc1][..], &[0x92, 0x01][..]] {
        assert_malformed(&client_err(Codec::MsgPack, &msgpack_publish(payload)), &format!("{payload:02x?}"));
    }
}

/// JSON that parses when skipped but not when decoded: a lone surrogate escape and a number beyond `f64`.
/// These used to be accepted and then failed to transcode for MessagePack peers.
#[test]
fn json_payload_strings_and_numbers_must_transcode() {
    for payload in [r#""\ud800""#, r#"{"\udc00":1}"#, r#"["ok","\ud83d"]"#, "1e400", "[-1e999]"] {
        assert_malformed(&client_err(Codec::Json, &json_publish(payload)), payload);
        assert!(chorus_protocol::Payload::from_json(Bytes::from(payload)).is_err(), "{payload}");
    }
    // A surrogate pair is fine.
    let frame = decode_client(Codec::Json, &json_publish(r#""\ud83d\ude00""#), MAX).unwrap();
    let ClientFrame::Publish { payload, .. } = frame else { panic!("not a publish") };
    assert_eq!(payload.to_json(), serde_json::json!("😀"));
    assert!(payload.encoded(Codec::MsgPack).is_ok());
}

#[test]
fn strings_in_fields_must_be_utf8() {
    // {"type": "pi\xffg"}
    let bytes = Bytes::from_static(&[0x81, 0xa4, b't', b'y', b'p', b'e', 0xa4, b'p', b'i', 0xff, b'g']);
    assert_malformed(&client_err(Codec::MsgPack, &bytes), "non-UTF-8 type");
    let bytes = Bytes::from_static(b"{\"type\":\"pi\xffg\"}");
    assert!(decode_client(Codec::Json, &bytes, MAX).is_err());
}
