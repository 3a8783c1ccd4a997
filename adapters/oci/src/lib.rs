//! OCI adapter for tokenbridge: the OCI API Gateway authorizer contract (contracts.md §3) as two
//! pure functions in [`gateway`], and the OCI Functions "http-stream" protocol that carries it
//! in [`fn_server`].
//!
//! ```
//! use tokenbridge_core::{Denial, Outcome};
//! use tokenbridge_oci::gateway;
//!
//! let request = gateway::parse(br#"{"type":"TOKEN","token":"Bearer abc"}"#, "token").unwrap();
//! assert_eq!(request.credential.as_deref(), Some("Bearer abc"));
//!
//! let answer = gateway::render(&Outcome::Deny(Denial::InvalidToken), "api");
//! assert_eq!(answer.status, 200);
//! assert_eq!(answer.body["active"], false);
//! ```

#![forbid(unsafe_code)]

pub mod fn_server;
pub mod gateway;
pub mod http1;
pub mod signing;
pub mod vault;
