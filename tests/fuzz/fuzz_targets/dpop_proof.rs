//! The `dpop_proof` target: libFuzzer under cargo-fuzz, a replay of saved inputs on stable.
//! Its input and checks: `tokenbridge_fuzz::targets::dpop_proof`.
#![cfg_attr(fuzzing, no_main)]

tokenbridge_fuzz::fuzz_main!(dpop_proof);
