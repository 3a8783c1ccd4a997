//! The fuzz targets' checks, one module per target. libFuzzer (`fuzz_targets/<name>.rs`, nightly)
//! and the corpus replay (`cargo test`, stable) call the same `check`, so what the fuzzer
//! enforces is what the tests enforce.

pub mod bearer;
pub mod dpop_proof;
pub mod framing;
pub mod introspection_answer;
pub mod jwks;
pub mod jwt;
pub mod jwt_signed;
pub mod lambda_event;
pub mod oci_gateway;
pub mod policy;
pub mod stdio_stream;
pub mod token_answer;

/// A target's checks on one input: returns if they hold, panics if one does not.
pub type Check = fn(&[u8]);

/// Every target by name: the name of its `[[bin]]`, of its file in `fuzz_targets/` and of its
/// directories in `corpus/` and `artifacts/`.
pub const ALL: [(&str, Check); 12] = [
    ("bearer", bearer::check),
    ("dpop_proof", dpop_proof::check),
    ("framing", framing::check),
    ("introspection_answer", introspection_answer::check),
    ("jwks", jwks::check),
    ("jwt", jwt::check),
    ("jwt_signed", jwt_signed::check),
    ("lambda_event", lambda_event::check),
    ("oci_gateway", oci_gateway::check),
    ("policy", policy::check),
    ("stdio_stream", stdio_stream::check),
    ("token_answer", token_answer::check),
];
