//! HTTP adapter for tokenbridge, for function platforms that speak plain HTTP (Cloud Run, Cloud
//! Functions, Azure Functions custom handlers, Knative, OpenFaaS) and for gateways that ask an
//! external service (nginx `auth_request`, Traefik `forwardAuth`, Caddy `forward_auth`, Envoy
//! `ext_authz` over HTTP).
//!
//! ```
//! use tokenbridge_core::{Denial, Outcome};
//! use tokenbridge_http::forward::{Rendering, render_forward};
//! use tokenbridge_http::identity::IdentityHeaders;
//!
//! let identity = IdentityHeaders::default();
//! let r = Rendering { realm: "api", context_key: "back_end_token", identity: &identity };
//! let reply = render_forward(&Outcome::Deny(Denial::InvalidToken), &r);
//! assert_eq!(reply.status, 401);
//! ```
//!
//! Routes: `GET /healthz` (liveness), `GET /readyz` (configuration loaded), `POST /authorize`
//! (the JSON of `tokenbridge stdio`), and every other path is forward-auth.

#![forbid(unsafe_code)]

pub mod client_cert;
pub mod forward;
pub mod identity;
pub mod server;
