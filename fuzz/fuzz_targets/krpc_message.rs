#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lt_fuzz::krpc_message(data));
