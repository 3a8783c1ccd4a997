//! The `oci_gateway` target: libFuzzer under cargo-fuzz, a replay of saved inputs on stable.
//! Its input and checks: `tokenbridge_fuzz::targets::oci_gateway`.
#![cfg_attr(fuzzing, no_main)]

tokenbridge_fuzz::fuzz_main!(oci_gateway);
