//! The `http1_request` target: libFuzzer under cargo-fuzz, a replay of saved inputs on stable.
//! Its input and checks: `tokenbridge_fuzz::targets::http1_request`.
#![cfg_attr(fuzzing, no_main)]

tokenbridge_fuzz::fuzz_main!(http1_request);
