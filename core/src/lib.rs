//! tokenbridge's decision engine: is this caller's OAuth 2.0 token good, and if so, here is a
//! token for the backend.
//!
//! ```no_run
//! use tokenbridge_core::{Engine, Outcome, Request};
//!
//! let engine: &Engine = tokenbridge_core::global(); // built once, from TOKENBRIDGE_* variables
//! match engine.decide(&Request::bearer("Bearer 2YotnFZFEjr1zCsicMWpAA")) {
//!     Outcome::Allow(grant) => println!("allow {} until {}", grant.principal, grant.expires_at),
//!     Outcome::Deny(denial) => println!("deny: {}", denial.challenge("api")),
//!     Outcome::Unavailable(cause) => println!("retry later: {cause}"),
//! }
//! ```
//!
//! The engine is synchronous and `Send + Sync`: build it once per process and share it, so its
//! caches and connections serve every warm call. It validates the caller token — a JWT of a
//! configured issuer against that issuer's JWKS, anything else by RFC 7662 introspection at
//! IdP A — checks it against the route's rule, fetches (and caches) a backend token from
//! IdP B — its own with the client_credentials grant, or one for the caller by token exchange or
//! on-behalf-of — and answers with exactly one of [`Outcome::Allow`],
//! [`Outcome::Deny`] or [`Outcome::Unavailable`]. An error is never an allow, and an IdP outage
//! is never a deny.
//!
//! Adapters translate their platform's payload into a [`Request`] and the [`Outcome`] into their
//! platform's answer; they hold no decision logic. The whole API:
//!
//! | items | for |
//! |---|---|
//! | [`Engine`], [`EngineBuilder`] | decides; built from a [`Config`] (or its [`ConfigErrors`]), with a log sink and secret resolvers |
//! | [`global`], [`set_global`] | the process's one engine |
//! | [`Engine::check_secrets`], [`Engine::check_keys`], [`Engine::check_auth_methods`], [`Engine::describe_certificates`] | `check-config`'s [`SecretProblem`]s, [`KeysProblem`]s and [`AuthMethodCheck`]s, and the client certificates it names |
//! | [`Request`], [`Route`], [`ClientCertificate`] ([`BadCertificate`]) | what the gateway asks: the credential (and its DPoP proof, or the mutual TLS certificate it came with), the route, the deadline |
//! | [`Engine::decide_routes`]: [`RouteDecision`], [`RouteGrant`], [`RouteVerdict`]; [`Policy`], [`Rule`], [`NoRule`] | a decision with the policy's route table judged for the token, for answers a gateway caches for every route |
//! | [`Outcome`]: [`Grant`], [`Denial`], [`Cause`] ([`Dependency`], [`Failure`]) | the answer |
//! | [`TraceContext`] | the platform's trace context (W3C, X-Ray, OCI), carried into IdP calls and the log |
//! | [`rfc3339`], [`UnixTime`] | times as gateways write them |
//! | [`metrics`] ([`metrics::encode`], [`metrics::snapshot`]), [`LogPolicy`] | the process's metrics, and which decisions are logged |
//! | [`SecretResolver`], [`Secret`], [`SecretRef`], [`SecretError`] | platform secret references, resolved by adapters |
//! | [`StoreClient`], [`check_url`] ([`UrlError`]), [`aws_secret_store`] ([`AwsSecretStore`]) | what a resolver builds on |
//!
//! Two features, off by default and never enabled by the binary, open test seams: `testing`
//! (a manual clock, for this crate's tests and benchmarks) and `fuzzing` (the crate-private
//! readers, for the fuzz targets in `tests/fuzz`).

#![forbid(unsafe_code)]

mod auth_methods;
mod backend;
mod bearer;
mod budget;
mod cache;
mod certificate;
mod claims;
mod client_auth;
mod clock;
mod config;
mod config_display;
mod dpop;
mod engine;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod grant;
mod http;
mod idp;
mod introspection;
mod json;
mod jwks_auth;
mod jwt;
mod log;
pub mod metrics;
mod outcome;
mod policy;
mod reason;
mod resolver;
mod route_path;
mod secret;
mod settings;
mod shared_cache;
mod store;
mod sync;
#[cfg(feature = "testing")]
pub mod testing;
mod trace_context;
mod url_rules;
mod validation;

pub use auth_methods::AuthMethodCheck;
pub use certificate::{BadCertificate, ClientCertificate};
pub use clock::UnixTime;
pub use config::{Config, ConfigErrors};
pub use engine::{Engine, EngineBuilder, RouteDecision, RouteGrant, global, set_global};
pub use jwt::KeysProblem;
pub use log::{DecisionLog, LogLevel, LogPolicy};
pub use outcome::{Cause, Denial, Dependency, Failure, Grant, Outcome, Request, Route};
pub use policy::{NoRule, Policy, RouteVerdict, Rule, ScopeMatch};
pub use secret::{AwsSecretStore, Secret, SecretError, SecretProblem, SecretRef, SecretResolver, aws_secret_store};
pub use shared_cache::RevokeError;
pub use store::StoreClient;
pub use trace_context::TraceContext;
pub use url_rules::{UrlError, check_url};

/// RFC 3339 (UTC, whole seconds) for a Unix time, as gateways expect `expiresAt`.
/// Times past what it can write are written as its last second, never as a time in the past.
pub fn rfc3339(t: UnixTime) -> String {
    time::OffsetDateTime::from_unix_timestamp(t.clamp(0, clock::LAST_TIME))
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "9999-12-31T23:59:59Z".to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_is_utc_with_z() {
        assert_eq!(super::rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
        assert_eq!(super::rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(super::rfc3339(crate::clock::LAST_TIME), "9999-12-31T23:59:59Z");
    }
}
