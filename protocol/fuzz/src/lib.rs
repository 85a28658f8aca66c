//! The checks every fuzz target runs, shared so that each target is one line over its input.
//!
//! A decoder may refuse any input, but must not panic; and whatever it accepts must survive being
//! encoded in both codecs and decoded again. Comparing payloads transcodes them (see `Payload`'s
//! `PartialEq`), so an accepted payload that cannot be carried to the other codec panics here too.

use bytes::{Bytes, BytesMut};
use chorus_protocol::delimit::{self, PREFIX_LEN};
use chorus_protocol::{Codec, Payload, decode_client, decode_server, encode_client, encode_server};

/// Large enough that the limit never refuses a fuzz input; the limit has its own property tests.
const MAX: usize = 1 << 20;

/// Decodes `data` as a client frame in `codec`; an accepted frame must round-trip through both codecs.
pub fn client_frame(codec: Codec, data: &[u8]) {
    let Ok(frame) = decode_client(codec, &Bytes::copy_from_slice(data), MAX) else { return };
    for out in Codec::ALL {
        let bytes = encode_client(out, &frame).expect("a decoded frame encodes in every codec");
        let again = decode_client(out, &bytes, MAX).expect("an encoded frame decodes");
        assert_eq!(again, frame, "{codec:?} frame changed through {out:?}");
    }
}

/// As [`client_frame`], for server frames.
pub fn server_frame(codec: Codec, data: &[u8]) {
    let Ok(frame) = decode_server(codec, &Bytes::copy_from_slice(data), MAX) else { return };
    for out in Codec::ALL {
        let bytes = encode_server(out, &frame).expect("a decoded frame encodes in every codec");
        let again = decode_server(out, &bytes, MAX).expect("an encoded frame decodes");
        assert_eq!(again, frame, "{codec:?} frame changed through {out:?}");
    }
}

/// Treats `data` as a length-delimited stream. The first byte picks the read size (how many bytes arrive
/// at a time) and the second the frame limit, so partial reads and both refusals are exercised. Every
/// frame taken must be exactly the bytes its prefix announced, and is then decoded as a client frame.
pub fn stream(data: &[u8]) {
    let [read, limit, wire @ ..] = data else { return };
    let read = usize::from(*read).max(1);
    let max = usize::from(*limit) * 4;
    let mut buf = BytesMut::new();
    let mut consumed = 0;
    for piece in wire.chunks(read) {
        buf.extend_from_slice(piece);
        loop {
            match delimit::split_frame(&mut buf, max) {
                Ok(Some(body)) => {
                    let announced = &wire[consumed..consumed + PREFIX_LEN];
                    let len = u32::from_be_bytes(announced.try_into().expect("four bytes")) as usize;
                    assert!(len == body.len() && len > 0 && len <= max, "bad split: {len} vs {}", body.len());
                    assert_eq!(&body[..], &wire[consumed + PREFIX_LEN..consumed + PREFIX_LEN + len]);
                    consumed += PREFIX_LEN + len;
                    client_frame(Codec::MsgPack, &body);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    assert_eq!(consumed + buf.len(), wire.len(), "split_frame lost or invented bytes");
}

/// Validates `data` as a payload in `codec`; an accepted payload must transcode to the other codec, be
/// accepted there, and carry the same value back.
pub fn payload(codec: Codec, data: &[u8]) {
    let Ok(payload) = Payload::from_codec(codec, Bytes::copy_from_slice(data)) else { return };
    let other = match codec {
        Codec::MsgPack => Codec::Json,
        Codec::Json => Codec::MsgPack,
    };
    let bytes = payload.encoded(other).expect("a validated payload transcodes");
    let there = Payload::from_codec(other, bytes).expect("a transcoded payload validates");
    let back = Payload::from_codec(codec, there.encoded(codec).expect("and transcodes back")).expect("and validates");
    assert_eq!(there, payload);
    assert_eq!(back, payload);
}
