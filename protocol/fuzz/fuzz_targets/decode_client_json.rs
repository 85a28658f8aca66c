#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chorus_protocol_fuzz::client_frame(chorus_protocol::Codec::Json, data));
