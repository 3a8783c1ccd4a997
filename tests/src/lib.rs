//! Test support for tokenbridge: a scriptable fake identity provider and a harness that runs
//! the built `tokenbridge` binary.

pub mod fake_idp;
pub mod fake_secrets;
pub mod fn_agent;
pub mod harness;
pub mod http_server;

pub use fake_idp::{FakeIdp, Fault, IdpPair};
pub use harness::{Run, Session, binary, stdio, token_payload};
