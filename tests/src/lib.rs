//! Test support for tokenbridge: a scriptable fake identity provider, a harness that runs the
//! built `tokenbridge` binary, and a real authorization server for interop tests.

pub mod dpop;
pub mod fake_idp;
pub mod fake_secrets;
pub mod fn_agent;
pub mod gateways;
pub mod harness;
pub mod http_server;
pub mod interop;
pub mod jwt_keys;
pub mod lambda_runtime_api;
pub mod prometheus;
pub mod redis_server;
pub mod tls_server;

pub use fake_idp::{FakeIdp, Fault, IdpPair};
pub use harness::{Run, Session, binary, stdio, token_payload};
