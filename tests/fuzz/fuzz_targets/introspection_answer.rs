//! The `introspection_answer` target: libFuzzer under cargo-fuzz, a replay of saved inputs on stable.
//! Its input and checks: `tokenbridge_fuzz::targets::introspection_answer`.
#![cfg_attr(fuzzing, no_main)]

tokenbridge_fuzz::fuzz_main!(introspection_answer);
