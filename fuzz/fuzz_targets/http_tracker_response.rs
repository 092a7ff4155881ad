#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lt_fuzz::http_tracker_response(data));
