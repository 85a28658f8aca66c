#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chorus_protocol_fuzz::server_frame(chorus_protocol::Codec::Json, data));
