//! The `token_answer` target: libFuzzer under cargo-fuzz, a replay of saved inputs on stable.
//! Its input and checks: `tokenbridge_fuzz::targets::token_answer`.
#![cfg_attr(fuzzing, no_main)]

tokenbridge_fuzz::fuzz_main!(token_answer);
