#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lt_fuzz::ip_filter(data));
