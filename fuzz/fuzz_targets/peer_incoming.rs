#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lt_fuzz::peer_incoming(data));
