//! What the engine is asked and what it answers.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use crate::clock::UnixTime;

/// One authorization question, platform-neutral. Adapters build it from their payloads.
#[derive(Clone, Default)]
pub struct Request {
    /// The raw `Authorization`-style value as the platform passed it (`Bearer …`), if any.
    pub credential: Option<String>,
    /// The platform's deadline for this decision: every IdP call finishes before it.
    pub deadline: Option<Instant>,
    /// The platform's id for this call, echoed in the decision log.
    pub call_id: Option<String>,
    /// Route information, when the platform gives it (method, path, extra arguments).
    pub route: Route,
    /// The request's `DPoP` proof header (RFC 9449), when it sent one.
    pub dpop: Option<String>,
    /// The client certificate of the caller's mutual TLS connection, as the gateway that
    /// terminated it reports it (RFC 8705 §3), when the deployment passes one.
    pub client_certificate: Option<crate::ClientCertificate>,
    /// The platform's trace context, carried into the IdP calls and the decision log.
    pub trace: crate::TraceContext,
}

impl fmt::Debug for Request {
    // The credential is the caller's token: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("credential", &self.credential.as_ref().map(|_| "<redacted>"))
            .field("deadline", &self.deadline)
            .field("call_id", &self.call_id)
            .field("route", &self.route)
            .field("dpop", &self.dpop.as_ref().map(|_| "<proof>"))
            .field("client_certificate", &self.client_certificate)
            .field("trace", &self.trace)
            .finish()
    }
}

impl Request {
    /// A request carrying just a credential value, e.g. `Request::bearer("Bearer abc")`.
    pub fn bearer(credential: impl Into<String>) -> Self {
        Self { credential: Some(credential.into()), ..Self::default() }
    }
}

/// What the platform says about the called route. Kept for route policies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    pub method: Option<String>,
    /// The path alone, as the client sent it (percent-encoded): adapters cut a request target's
    /// query off; a `?` left here makes the path ambiguous.
    pub path: Option<String>,
    /// Other named inputs (OCI `USER_DEFINED` arguments, for example).
    pub args: BTreeMap<String, String>,
}

/// The decision: exactly one of three things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Allow(Grant),
    Deny(Denial),
    /// Cannot decide now; platforms render it as a retryable 5xx, never as allow or deny.
    Unavailable(Cause),
}

/// What an allow carries back to the gateway.
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    /// `sub`, else `client_id`; never empty.
    pub principal: String,
    pub scopes: Vec<String>,
    pub client_id: Option<String>,
    /// The earlier of the caller token's and the backend token's expiry.
    pub expires_at: UnixTime,
    /// String values for the gateway; holds the backend token under the configured key.
    pub context: BTreeMap<String, String>,
}

impl fmt::Debug for Grant {
    // The context holds the backend token: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("principal", &self.principal)
            .field("scopes", &self.scopes)
            .field("client_id", &self.client_id)
            .field("expires_at", &self.expires_at)
            .field("context_keys", &self.context.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a caller is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No credential was sent.
    MissingToken,
    /// Malformed, unknown, inactive, expired or not yet valid.
    InvalidToken,
    /// Valid, but lacking scopes the route requires (all of `required`).
    InsufficientScope { required: Vec<String> },
    /// A DPoP request whose proof is missing, malformed, for another request, replayed, or made
    /// with another key than the token's (RFC 9449 §7.1).
    InvalidDpopProof,
    /// The route takes DPoP-bound tokens only, and a bearer token came.
    DpopRequired,
}

impl Denial {
    /// The RFC 6750 §3 error code, `None` when no token was sent.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            Denial::MissingToken => None,
            Denial::InvalidToken => Some("invalid_token"),
            Denial::InsufficientScope { .. } => Some("insufficient_scope"),
            Denial::InvalidDpopProof => Some("invalid_dpop_proof"),
            Denial::DpopRequired => Some("invalid_token"),
        }
    }

    /// The HTTP status RFC 6750 gives this denial: 401, or 403 for insufficient scope.
    pub fn http_status(&self) -> u16 {
        match self {
            Denial::InsufficientScope { .. } => 403,
            _ => 401,
        }
    }

    /// The `WWW-Authenticate` challenge, e.g.
    /// `Bearer realm="api", error="insufficient_scope", scope="read write"`.
    pub fn challenge(&self, realm: &str) -> String {
        let scheme = if self.is_dpop() { "DPoP" } else { "Bearer" };
        let mut out = format!("{scheme} realm=\"{}\"", quote_safe(realm));
        if let Some(code) = self.error_code() {
            out.push_str(&format!(", error=\"{code}\""));
        }
        // A denial that names no scope (a route no rule allows) has no `scope` attribute.
        match self {
            Denial::InsufficientScope { required } if !required.is_empty() => {
                out.push_str(&format!(", scope=\"{}\"", quote_safe(&required.join(" "))));
            }
            _ => {}
        }
        if self.is_dpop() {
            out.push_str(&format!(", algs=\"{}\"", crate::dpop::ALGS));
        }
        out
    }

    /// Whether the challenge is DPoP's (RFC 9449 §7.1) rather than a bearer token's.
    fn is_dpop(&self) -> bool {
        matches!(self, Denial::InvalidDpopProof | Denial::DpopRequired)
    }
}

/// RFC 6750 restricts realm and scope values to printable ASCII without `"` and `\`.
fn quote_safe(s: &str) -> String {
    s.chars().filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\').collect()
}

/// Why no decision could be made. Names the failing dependency and the kind of failure,
/// never a secret, a token or an IdP's raw answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cause {
    pub dependency: Dependency,
    pub failure: Failure,
    /// Seconds the IdP asked us to wait (`Retry-After`), when it said.
    pub retry_after: Option<u64>,
}

impl Cause {
    pub fn new(dependency: Dependency, failure: Failure) -> Self {
        Self { dependency, failure, retry_after: None }
    }

    /// A stable, machine-readable name such as `introspection_timeout`.
    pub fn code(&self) -> String {
        format!("{}_{}", self.dependency.as_str(), self.failure.as_str())
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.dependency.describe(), self.failure.describe())
    }
}

/// The thing that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// Our own configuration is unusable.
    Configuration,
    /// A client secret could not be resolved.
    Secret,
    /// IdP A's introspection endpoint.
    Introspection,
    /// IdP B's token endpoint.
    BackendToken,
    /// An issuer's JWKS (or its discovery document).
    Jwks,
    /// The DPoP proofs already used, remembered to refuse replays.
    DpopReplays,
}

impl Dependency {
    pub fn as_str(self) -> &'static str {
        match self {
            Dependency::Configuration => "configuration",
            Dependency::Secret => "secret",
            Dependency::Introspection => "introspection",
            Dependency::BackendToken => "backend_token",
            Dependency::Jwks => "jwks",
            Dependency::DpopReplays => "dpop_replays",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Dependency::Configuration => "configuration",
            Dependency::Secret => "client secret",
            Dependency::Introspection => "introspection endpoint (IdP A)",
            Dependency::BackendToken => "backend token endpoint (IdP B)",
            Dependency::Jwks => "JWKS endpoint",
            Dependency::DpopReplays => "DPoP replay cache",
        }
    }
}

/// How it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Connection refused, DNS failure, TLS failure, connection reset.
    Unreachable,
    /// No complete answer within the time allowed.
    Timeout,
    /// Not enough time left before the platform's deadline to try.
    DeadlineExceeded,
    /// The IdP answered with this unexpected HTTP status.
    Status(u16),
    /// The IdP answered 200 with something that is not the expected JSON.
    Malformed,
    /// The answer exceeded the size cap.
    TooLarge,
    /// The IdP refused our client credentials (`invalid_client`).
    ClientRejected,
    /// The discovery document names another issuer than the one configured.
    IssuerMismatch,
    /// Configuration or secret reference is invalid or cannot be resolved.
    Invalid,
    /// Holds as much as it may: nothing more can be recorded now.
    Full,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Unreachable => "unreachable",
            Failure::Timeout => "timeout",
            Failure::DeadlineExceeded => "deadline_exceeded",
            Failure::Status(_) => "bad_status",
            Failure::Malformed => "malformed_answer",
            Failure::TooLarge => "answer_too_large",
            Failure::ClientRejected => "client_rejected",
            Failure::IssuerMismatch => "issuer_mismatch",
            Failure::Invalid => "invalid",
            Failure::Full => "full",
        }
    }

    fn describe(self) -> String {
        match self {
            Failure::Unreachable => "unreachable".into(),
            Failure::Timeout => "timed out".into(),
            Failure::DeadlineExceeded => "no time left before the platform deadline".into(),
            Failure::Status(s) => format!("answered HTTP {s}"),
            Failure::Malformed => "answered something that is not a valid response".into(),
            Failure::TooLarge => "answer exceeded the size cap".into(),
            Failure::ClientRejected => "rejected our client credentials (invalid_client)".into(),
            Failure::IssuerMismatch => "discovery document names another issuer than the one configured".into(),
            Failure::Invalid => "invalid or unresolvable".into(),
            Failure::Full => "full".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_has_no_error_when_no_token_was_sent() {
        assert_eq!(Denial::MissingToken.challenge("api"), "Bearer realm=\"api\"");
    }

    #[test]
    fn challenge_names_invalid_token() {
        assert_eq!(Denial::InvalidToken.challenge("api"), "Bearer realm=\"api\", error=\"invalid_token\"");
    }

    #[test]
    fn challenge_lists_required_scopes() {
        let d = Denial::InsufficientScope { required: vec!["read".into(), "write".into()] };
        assert_eq!(d.challenge("api"), "Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"read write\"");
        assert_eq!(d.http_status(), 403);
    }

    #[test]
    fn challenge_cannot_be_broken_out_of_by_quotes() {
        let c = Denial::MissingToken.challenge("a\"b\\c\nd");
        assert_eq!(c, "Bearer realm=\"abcd\"");
    }

    #[test]
    fn grant_debug_hides_context_values() {
        let mut context = BTreeMap::new();
        context.insert("back_end_token".into(), "Bearer s3cr3t".into());
        let g = Grant { principal: "p".into(), scopes: vec![], client_id: None, expires_at: 0, context };
        let shown = format!("{g:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("back_end_token"));
    }

    #[test]
    fn request_debug_hides_the_credential() {
        let shown = format!("{:?}", Request::bearer("Bearer s3cr3t"));
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn cause_code_is_stable() {
        let c = Cause::new(Dependency::Introspection, Failure::Timeout);
        assert_eq!(c.code(), "introspection_timeout");
    }
}
