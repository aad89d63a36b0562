#![no_main]
//! `boxoffice_fuzzing::commands` under libFuzzer (scripts/fuzz.sh).

libfuzzer_sys::fuzz_target!(|data: &[u8]| boxoffice_fuzzing::commands(data));
