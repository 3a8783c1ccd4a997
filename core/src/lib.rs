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
//! caches and connections serve every warm call. It validates the caller token by RFC 7662
//! introspection at IdP A, checks the required scopes, fetches (and caches) a backend token from
//! IdP B with the client_credentials grant, and answers with exactly one of [`Outcome::Allow`],
//! [`Outcome::Deny`] or [`Outcome::Unavailable`]. An error is never an allow, and an IdP outage
//! is never a deny.
//!
//! Adapters translate their platform's payload into a [`Request`] and the [`Outcome`] into their
//! platform's answer; they hold no decision logic.

#![forbid(unsafe_code)]

mod backend;
mod bearer;
mod budget;
mod cache;
mod clock;
mod config;
mod config_display;
mod engine;
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod idp;
mod introspection;
mod json;
mod jwt;
mod log;
mod outcome;
mod policy;
mod reason;
mod resolver;
mod route_path;
mod secret;
mod settings;
mod store;
mod sync;
mod url_rules;
mod validation;

pub use bearer::{Credential, MAX_TOKEN_LEN, extract as extract_bearer};
pub use cache::Lookup;
pub use clock::{Clock, LAST_TIME, ManualClock, SystemClock, UnixTime};
pub use config::{Client, Config, ConfigErrors, Mode, RESERVED_CONTEXT_KEYS, SETTINGS, Setting, check_url};
pub use engine::{Engine, EngineBuilder, global, set_global};
pub use introspection::{Identity, Verdict};
pub use jwt::Issuer;
pub use log::fingerprint;
pub use outcome::{Cause, Denial, Dependency, Failure, Grant, Outcome, Request, Route};
pub use policy::{Policy, Rule, ScopeMatch};
pub use reason::Reason;
pub use secret::{AwsSecretStore, Secret, SecretError, SecretRef, SecretResolver, aws_secret_store};
pub use store::StoreClient;

/// RFC 3339 (UTC, whole seconds) for a Unix time, as gateways expect `expiresAt`.
/// Times past what it can write are written as its last second, never as a time in the past.
pub fn rfc3339(t: UnixTime) -> String {
    time::OffsetDateTime::from_unix_timestamp(t.clamp(0, LAST_TIME))
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
        assert_eq!(super::rfc3339(super::LAST_TIME), "9999-12-31T23:59:59Z");
    }
}
