//! Why a caller was refused, as the decision log names it: one variant per reason, so a reason
//! is never a string that could be misspelt or matched wrongly.

use std::fmt;

/// The `reason` of a denial in the decision log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No credential at all.
    MissingToken,
    /// Not `Bearer <b64token>`.
    MalformedToken,
    /// No route matches and the default is deny.
    RouteNotAllowed,
    /// The path could name another resource to the backend (see `route_path`).
    AmbiguousPath,
    /// The path matches a route for some methods only, and no method was given.
    MethodUnknown,
    /// Valid, but lacking a scope the route requires.
    InsufficientScope,
    /// A claim condition of the route does not hold for the token.
    ClaimConditionFailed,
    /// The route's issuers or audiences do not include the token's.
    IssuerOrAudienceNotAcceptedHere,
    // IdP A's verdict.
    Inactive,
    /// Revoked through the shared cache tier (`tokenbridge revoke`).
    Revoked,
    Expired,
    NotYetValid,
    IssuedInTheFuture,
    /// Active, but naming neither `sub` nor `client_id`.
    NoPrincipal,
    /// A refresh token, or not of the required `token_type`.
    NotAnAccessToken,
    /// IdP A does not introspect this kind of token.
    UnsupportedTokenType,
    // JWTs verified here.
    NotAJwt,
    UnknownIssuer,
    UnknownKey,
    AlgorithmNotAllowed,
    /// A `crit` or `b64` header: an extension tokenbridge does not implement.
    CriticalHeader,
    MalformedHeader,
    MalformedClaims,
    MalformedClaim,
    MissingClaim,
    BadSignature,
    WrongIssuer,
    WrongAudience,
    /// A multi-tenant issuer's token from a tenant not accepted (its `tid`).
    TenantNotAllowed,
    /// A Cognito access token whose `client_id` is not an accepted app client.
    ClientNotAllowed,
    /// A token for Microsoft Graph (a `nonce` JOSE header): only Graph can verify it.
    GraphToken,
    /// In `auto` mode, a JWT that IdP A vouched for as a locally verified issuer's.
    NotVerifiedLocally,
    // DPoP (RFC 9449).
    /// The DPoP proof is not a well-formed proof: not a JWS, wrong `typ`, a symmetric or unknown
    /// `alg`, no public `jwk` (or a private one), a required claim missing or mistyped.
    DpopProofMalformed,
    /// The proof's signature does not verify with its own key.
    DpopProofBadSignature,
    /// The proof is for another method, URI or access token (`htm`, `htu`, `ath`).
    DpopProofWrongRequest,
    /// The proof's `iat` is outside the accepted window.
    DpopProofExpired,
    /// The proof was used before.
    DpopProofReplayed,
    /// The proof's key is not the one the token is bound to (`cnf.jkt`).
    DpopKeyMismatch,
    /// A DPoP-bound token sent as a bearer token.
    DpopBoundTokenAsBearer,
    /// The route requires DPoP and the request sent a bearer token, or no proof.
    DpopRequired,
    /// A DPoP request with a token that is not bound to any key.
    DpopTokenNotBound,
    // Certificate-bound tokens (RFC 8705 §3).
    /// A token bound to a client certificate, on a request that came with none.
    CertificateMissing,
    /// A token bound to another client certificate than the request's.
    CertificateMismatch,
    /// A token bound (`cnf`) to something tokenbridge cannot check: an RFC 7800 `jwk`, `kid`,
    /// `jku`, … (neither a DPoP key's thumbprint nor a certificate's hash).
    BoundTokenUnverifiable,
    /// Valid at IdP A, but IdP B refused to exchange it (token exchange, on-behalf-of).
    BackendRefusedCallerToken,
}

impl Reason {
    /// The log's name for it, e.g. `bad_signature`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MissingToken => "missing_token",
            Reason::MalformedToken => "malformed_token",
            Reason::RouteNotAllowed => "route_not_allowed",
            Reason::AmbiguousPath => "ambiguous_path",
            Reason::MethodUnknown => "method_unknown",
            Reason::InsufficientScope => "insufficient_scope",
            Reason::ClaimConditionFailed => "claim_condition_failed",
            Reason::IssuerOrAudienceNotAcceptedHere => "issuer_or_audience_not_accepted_here",
            Reason::Inactive => "inactive",
            Reason::Revoked => "revoked",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::IssuedInTheFuture => "issued_in_the_future",
            Reason::NoPrincipal => "no_principal",
            Reason::NotAnAccessToken => "not_an_access_token",
            Reason::UnsupportedTokenType => "unsupported_token_type",
            Reason::NotAJwt => "not_a_jwt",
            Reason::UnknownIssuer => "unknown_issuer",
            Reason::UnknownKey => "unknown_key",
            Reason::AlgorithmNotAllowed => "algorithm_not_allowed",
            Reason::CriticalHeader => "critical_header",
            Reason::MalformedHeader => "malformed_header",
            Reason::MalformedClaims => "malformed_claims",
            Reason::MalformedClaim => "malformed_claim",
            Reason::MissingClaim => "missing_claim",
            Reason::BadSignature => "bad_signature",
            Reason::WrongIssuer => "wrong_issuer",
            Reason::WrongAudience => "wrong_audience",
            Reason::TenantNotAllowed => "tenant_not_allowed",
            Reason::ClientNotAllowed => "client_not_allowed",
            Reason::GraphToken => "graph_token",
            Reason::NotVerifiedLocally => "not_verified_locally",
            Reason::BackendRefusedCallerToken => "backend_refused_caller_token",
            Reason::DpopProofMalformed => "dpop_proof_malformed",
            Reason::DpopProofBadSignature => "dpop_proof_bad_signature",
            Reason::DpopProofWrongRequest => "dpop_proof_wrong_request",
            Reason::DpopProofExpired => "dpop_proof_expired",
            Reason::DpopProofReplayed => "dpop_proof_replayed",
            Reason::DpopKeyMismatch => "dpop_key_mismatch",
            Reason::DpopBoundTokenAsBearer => "dpop_bound_token_as_bearer",
            Reason::DpopRequired => "dpop_required",
            Reason::DpopTokenNotBound => "dpop_token_not_bound",
            Reason::CertificateMissing => "certificate_missing",
            Reason::CertificateMismatch => "certificate_mismatch",
            Reason::BoundTokenUnverifiable => "bound_token_unverifiable",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
