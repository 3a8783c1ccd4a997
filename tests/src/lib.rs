//! Test support for tokenbridge: a scriptable fake identity provider and a harness that runs
//! the built `tokenbridge` binary.

pub mod fake_idp;
pub mod harness;

pub use fake_idp::{Fault, FakeIdp, IdpPair};
pub use harness::{Run, binary, stdio};
