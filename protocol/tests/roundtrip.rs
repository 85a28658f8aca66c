//! Property tests for the codecs: every frame survives encoding and decoding in each codec and transcoding
//! between them; arbitrary and mutated input never panics a decoder; the size limit always holds; and the
//! length-delimited framing reassembles a stream however it is chunked.

use bytes::{Bytes, BytesMut};
use chorus_protocol::delimit::{self, DelimitError};
use chorus_protocol::{
    ClientFrame, Codec, DecodeError, Identity, Limits, Payload, Position, ServerFrame, Welcome, decode_client,
    decode_server, encode_client, encode_server,
};
use proptest::prelude::*;
use serde_json::Value;

/// Decoding limit used where the test is not about the limit: larger than any generated frame.
const NO_LIMIT: usize = 1 << 24;

fn codec() -> impl Strategy<Value = Codec> {
    prop_oneof![Just(Codec::MsgPack), Just(Codec::Json)]
}

/// Finite doubles only: JSON has no NaN or infinity, and MessagePack f32 would come back as f64.
fn finite_f64() -> impl Strategy<Value = f64> {
    use proptest::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
}

/// Any JSON-compatible value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        finite_f64().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A payload holding an arbitrary value, built either as MessagePack or as JSON text.
fn payload() -> impl Strategy<Value = Payload> {
    (json_value(), any::<bool>()).prop_map(|(value, as_json)| {
        if as_json {
            Payload::from_json(Bytes::from(serde_json::to_vec(&value).unwrap())).unwrap()
        } else {
            Payload::from_value(&value).unwrap()
        }
    })
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    let id = || proptest::option::of(any::<u64>());
    let position = (any::<String>(), any::<u64>()).prop_map(|(epoch, offset)| Position { epoch, offset });
    prop_oneof![
        proptest::option::of(any::<String>()).prop_map(|token| ClientFrame::Hello { token }),
        (id(), any::<String>(), proptest::option::of(position)).prop_map(|(id, topic, since)| ClientFrame::Subscribe {
            id,
            topic,
            since
        }),
        (id(), any::<String>()).prop_map(|(id, topic)| ClientFrame::Unsubscribe { id, topic }),
        (id(), any::<String>(), payload()).prop_map(|(id, topic, payload)| ClientFrame::Publish { id, topic, payload }),
        (id(), any::<String>(), payload()).prop_map(|(id, method, args)| ClientFrame::Call { id, method, args }),
        id().prop_map(|id| ClientFrame::Ping { id }),
    ]
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    let id = || proptest::option::of(any::<u64>());
    let identity =
        (any::<String>(), proptest::option::of(any::<String>()), proptest::option::of(any::<String>()), any::<bool>())
            .prop_map(|(sub, name, role, guest)| Identity { sub, name, role, guest });
    let limits = (any::<u32>(), any::<u32>(), any::<u32>(), any::<u64>()).prop_map(
        |(max_frame_bytes, max_subscriptions, publish_rate, idle_timeout_ms)| Limits {
            max_frame_bytes,
            max_subscriptions,
            publish_rate,
            idle_timeout_ms,
        },
    );
    prop_oneof![
        (any::<u64>(), identity, limits).prop_map(|(conn_id, identity, limits)| ServerFrame::Welcome(Welcome {
            conn_id,
            identity,
            limits
        })),
        (any::<u64>(), payload()).prop_map(|(id, result)| ServerFrame::Reply { id, result }),
        (id(), any::<u16>(), any::<String>()).prop_map(|(id, code, message)| ServerFrame::Error { id, code, message }),
        (any::<String>(), any::<u64>(), payload()).prop_map(|(topic, seq, payload)| ServerFrame::Event {
            topic,
            seq,
            payload
        }),
        id().prop_map(|id| ServerFrame::Pong { id }),
        (any::<u16>(), any::<String>()).prop_map(|(code, reason)| ServerFrame::Disconnect { code, reason }),
    ]
}

/// One edit to a byte string; applied to valid frames they reach far more decoder paths than random bytes.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let one = prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip(at, mask)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Insert(at, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
    ];
    prop::collection::vec(one, 1..4)
}

fn mutate(bytes: &[u8], edits: &[Mutation]) -> Bytes {
    let mut v = bytes.to_vec();
    for edit in edits {
        let n = v.len();
        match *edit {
            Mutation::Flip(at, mask) if n > 0 => v[at % n] ^= mask,
            Mutation::Insert(at, b) => v.insert(at % (n + 1), b),
            Mutation::Remove(at) if n > 0 => {
                v.remove(at % n);
            }
            Mutation::Truncate(at) => v.truncate(at % (n + 1)),
            _ => {}
        }
    }
    Bytes::from(v)
}

/// What a decoder may do with any input: refuse it, or accept a frame that re-encodes losslessly in both
/// codecs (the comparison transcodes every payload, so an accepted payload that cannot be transcoded panics).
fn check_client_decode(codec: Codec, bytes: &Bytes) {
    if let Ok(frame) = decode_client(codec, bytes, NO_LIMIT) {
        for out in Codec::ALL {
            let again = encode_client(out, &frame).expect("decoded payloads encode in every codec");
            assert_eq!(decode_client(out, &again, NO_LIMIT).as_ref(), Ok(&frame), "{codec:?} → {out:?}");
        }
    }
}

fn check_server_decode(codec: Codec, bytes: &Bytes) {
    if let Ok(frame) = decode_server(codec, bytes, NO_LIMIT) {
        for out in Codec::ALL {
            let again = encode_server(out, &frame).expect("decoded payloads encode in every codec");
            assert_eq!(decode_server(out, &again, NO_LIMIT).as_ref(), Ok(&frame), "{codec:?} → {out:?}");
        }
    }
}

/// Writes `bodies` as a length-delimited stream.
fn delimited(bodies: &[Bytes]) -> Vec<u8> {
    let mut wire = BytesMut::new();
    for body in bodies {
        delimit::put_prefix(&mut wire, body.len());
        wire.extend_from_slice(body);
    }
    wire.to_vec()
}

proptest! {
    #[test]
    fn client_frames_round_trip(frame in client_frame(), codec in codec()) {
        let bytes = encode_client(codec, &frame).unwrap();
        prop_assert_eq!(decode_client(codec, &bytes, NO_LIMIT), Ok(frame));
    }

    #[test]
    fn server_frames_round_trip(frame in server_frame(), codec in codec()) {
        let bytes = encode_server(codec, &frame).unwrap();
        prop_assert_eq!(decode_server(codec, &bytes, NO_LIMIT), Ok(frame));
    }

    #[test]
    fn client_frames_transcode(frame in client_frame(), first in codec()) {
        let second = if first == Codec::Json { Codec::MsgPack } else { Codec::Json };
        let decoded = decode_client(first, &encode_client(first, &frame).unwrap(), NO_LIMIT).unwrap();
        let bytes = encode_client(second, &decoded).unwrap();
        prop_assert_eq!(decode_client(second, &bytes, NO_LIMIT), Ok(frame));
    }

    #[test]
    fn server_frames_transcode(frame in server_frame(), first in codec()) {
        let second = if first == Codec::Json { Codec::MsgPack } else { Codec::Json };
        let decoded = decode_server(first, &encode_server(first, &frame).unwrap(), NO_LIMIT).unwrap();
        let bytes = encode_server(second, &decoded).unwrap();
        prop_assert_eq!(decode_server(second, &bytes, NO_LIMIT), Ok(frame));
    }

    #[test]
    fn payload_values_survive_both_codecs(value in json_value()) {
        let from_msgpack = Payload::from_value(&value).unwrap();
        let from_json = Payload::from_json(Bytes::from(serde_json::to_vec(&value).unwrap())).unwrap();
        prop_assert_eq!(from_msgpack.to_json(), value.clone());
        prop_assert_eq!(from_json.to_json(), value);
        let back = Payload::from_msgpack(from_json.encoded(Codec::MsgPack).unwrap()).unwrap();
        prop_assert_eq!(&back, &from_msgpack);
        let back = Payload::from_json(from_msgpack.encoded(Codec::Json).unwrap()).unwrap();
        prop_assert_eq!(&back, &from_json);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), codec in codec()) {
        let bytes = Bytes::from(bytes);
        check_client_decode(codec, &bytes);
        check_server_decode(codec, &bytes);
    }

    #[test]
    fn mutated_client_frames_never_panic(frame in client_frame(), codec in codec(), edits in mutations()) {
        let bytes = mutate(&encode_client(codec, &frame).unwrap(), &edits);
        check_client_decode(codec, &bytes);
        check_server_decode(codec, &bytes);
    }

    #[test]
    fn mutated_server_frames_never_panic(frame in server_frame(), codec in codec(), edits in mutations()) {
        let bytes = mutate(&encode_server(codec, &frame).unwrap(), &edits);
        check_server_decode(codec, &bytes);
        check_client_decode(codec, &bytes);
    }

    #[test]
    fn frames_over_the_limit_are_refused(frame in client_frame(), reply in server_frame(), codec in codec(), under in 1..64usize) {
        let bytes = encode_client(codec, &frame).unwrap();
        let len = bytes.len();
        let max = len.saturating_sub(under);
        prop_assert_eq!(decode_client(codec, &bytes, max), Err(DecodeError::TooLarge { len, max }));
        prop_assert!(decode_client(codec, &bytes, len).is_ok());

        let bytes = encode_server(codec, &reply).unwrap();
        let len = bytes.len();
        let max = len.saturating_sub(under);
        prop_assert_eq!(decode_server(codec, &bytes, max), Err(DecodeError::TooLarge { len, max }));
        prop_assert!(decode_server(codec, &bytes, len).is_ok());
    }

    #[test]
    fn arbitrary_bytes_over_the_limit_are_refused(bytes in prop::collection::vec(any::<u8>(), 1..128), codec in codec()) {
        let len = bytes.len();
        let bytes = Bytes::from(bytes);
        prop_assert_eq!(decode_client(codec, &bytes, len - 1), Err(DecodeError::TooLarge { len, max: len - 1 }));
        prop_assert_eq!(decode_server(codec, &bytes, len - 1), Err(DecodeError::TooLarge { len, max: len - 1 }));
    }

    #[test]
    fn split_frame_reassembles_any_chunking(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..80).prop_map(Bytes::from), 0..12),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..24),
    ) {
        let wire = delimited(&bodies);
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
        cuts.push(wire.len());
        cuts.sort_unstable();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut from = 0;
        for to in cuts {
            buf.extend_from_slice(&wire[from..to]);
            from = to;
            while let Some(frame) = delimit::split_frame(&mut buf, 80).unwrap() {
                out.push(frame);
            }
        }
        prop_assert_eq!(out, bodies);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn delimited_msgpack_stream_carries_frames(frames in prop::collection::vec(client_frame(), 1..6), chunk in 1..64usize) {
        let bodies: Vec<Bytes> = frames.iter().map(|f| encode_client(Codec::MsgPack, f).unwrap()).collect();
        let wire = delimited(&bodies);
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(body) = delimit::split_frame(&mut buf, NO_LIMIT).unwrap() {
                decoded.push(decode_client(Codec::MsgPack, &body, NO_LIMIT).unwrap());
            }
        }
        prop_assert_eq!(decoded, frames);
    }

    #[test]
    fn split_frame_refuses_oversize_before_the_body(len in 1u32.., max in 0usize..4096, body in 0..64usize) {
        prop_assume!(len as usize > max);
        let mut buf = BytesMut::new();
        delimit::put_prefix(&mut buf, len as usize);
        buf.extend_from_slice(&vec![0; body]);
        prop_assert_eq!(delimit::split_frame(&mut buf, max), Err(DelimitError::TooLarge { len: len as usize, max }));
    }

    #[test]
    fn split_frame_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64), max in 0usize..64) {
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(frame)) = delimit::split_frame(&mut buf, max) {
            prop_assert!(!frame.is_empty() && frame.len() <= max);
        }
    }
}

#[test]
fn split_frame_refuses_zero_length() {
    let mut buf = BytesMut::from(&[0, 0, 0, 0, 0x81][..]);
    assert_eq!(delimit::split_frame(&mut buf, 1024), Err(DelimitError::Empty));
}
