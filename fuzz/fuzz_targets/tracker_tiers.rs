#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lt_fuzz::tracker_tiers(data));
