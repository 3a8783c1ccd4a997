//! OCI adapter for tokenbridge. This crate holds the OCI API Gateway authorizer contract
//! (contracts.md §3): the payloads a gateway sends to an authorizer function and the answers it
//! expects, as two pure functions.
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

pub mod gateway;
