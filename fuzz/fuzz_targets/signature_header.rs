#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookgate::fuzz_targets::signature_header(data));
