//! The `lambda_event` target: libFuzzer under cargo-fuzz, a replay of saved inputs on stable.
//! Its input and checks: `tokenbridge_fuzz::targets::lambda_event`.
#![cfg_attr(fuzzing, no_main)]

tokenbridge_fuzz::fuzz_main!(lambda_event);
