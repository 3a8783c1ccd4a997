//! AWS Lambda adapter for tokenbridge: API Gateway authorizers of every form — REST `TOKEN` and
//! `REQUEST`, HTTP API payload 1.0 and 2.0 — answered with Lambda's own status semantics, and
//! client secrets from Secrets Manager or SSM through the Parameters and Secrets extension. With a
//! route policy, REST answers hold an IAM policy for every route ([`iam`]), so API Gateway's
//! per-token cache stays right on each.
//!
//! ```
//! use serde_json::json;
//! use tokenbridge_core::{Denial, Outcome};
//! use tokenbridge_lambda::authorizer::{Options, parse, render};
//!
//! let event = json!({"type": "TOKEN", "authorizationToken": "Bearer abc",
//!                    "methodArn": "arn:aws:execute-api:eu-west-1:1:api/prod/GET/orders"});
//! let (request, form) = parse(event, &Options::default()).unwrap();
//! assert_eq!(request.credential.as_deref(), Some("Bearer abc"));
//! let error = render(&Outcome::Deny(Denial::InvalidToken), &form, &Options::default()).unwrap_err();
//! assert_eq!(error.error_message, "Unauthorized"); // API Gateway answers 401
//! ```

#![forbid(unsafe_code)]

pub mod authorizer;
pub mod emf;
pub mod extension;
pub mod iam;
pub mod runtime;
