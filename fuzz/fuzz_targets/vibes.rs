#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| emotrack_fuzz::vibes(data));
