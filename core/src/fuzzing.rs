//! For the fuzz targets in `tests/fuzz/` only, behind the `fuzzing` feature that nothing else
//! enables: the crate-private readers of bearer values, IdP answers, JWTs, JWKS documents and
//! route policies, and thin wrappers around them. Not part of the API and free to change at any
//! time; no release build compiles it.

pub use crate::bearer::{Credential, MAX_TOKEN_LEN, extract as extract_bearer};
pub use crate::claims::{Condition, Facts, Wanted};
pub use crate::introspection::{Identity, Verdict};
pub use crate::jwt::Issuer;
pub use crate::policy::{Policy, Rule, ScopeMatch};
pub use crate::reason::Reason;

use crate::clock::UnixTime;
use crate::grant::{BackendGrant, TokenType};
use crate::jwt::{self, KeySet};
use crate::outcome::Failure;
use crate::secret::Secret;
use crate::{backend, introspection};

/// An introspection answer (RFC 7662) as the engine reads it.
pub fn introspection_answer(
    status: u16,
    body: &[u8],
    now: UnixTime,
    leeway: i64,
    claim_names: &[String],
    required_token_type: Option<&str>,
) -> Result<Verdict, Failure> {
    introspection::read_answer(status, body, now, leeway, &Wanted::context(claim_names), required_token_type)
}

/// A backend token read from a token endpoint answer, with the times the engine derives from it.
#[derive(Debug)]
pub struct TokenAnswer {
    pub access_token: Secret,
    pub issued_at: UnixTime,
    pub expires_at: UnixTime,
    /// Handed out only before this.
    pub usable_until: UnixTime,
    /// Refetched from this on.
    pub refresh_at: UnixTime,
}

/// A token endpoint answer (client_credentials) as the engine reads it.
pub fn token_answer(
    status: u16,
    body: &[u8],
    now: UnixTime,
    default_ttl: i64,
    refresh_margin: i64,
    min_remaining: i64,
) -> Result<TokenAnswer, Failure> {
    let grant = BackendGrant::ClientCredentials;
    let backend::Issued::Token(token) = backend::read_grant_answer(&grant, status, body, now, default_ttl)? else {
        panic!("a client_credentials answer read as a refusal of a caller");
    };
    Ok(TokenAnswer {
        usable_until: token.usable_until(min_remaining),
        refresh_at: token.refresh_at(refresh_margin, min_remaining),
        access_token: token.access_token,
        issued_at: token.issued_at,
        expires_at: token.expires_at,
    })
}

/// The backend grants [`grant_answer`] reads answers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantKind {
    ClientCredentials,
    /// Token exchange, no `requested_token_type`.
    TokenExchange,
    /// Token exchange requesting a JWT.
    TokenExchangeForJwt,
    OnBehalfOf,
}

/// What IdP B's answer to a grant says, as the engine reads it.
#[derive(Debug)]
pub enum GrantAnswer {
    Token(Secret),
    /// The caller's token was refused.
    Refused,
}

/// IdP B's answer to `grant`, as the engine reads it.
pub fn grant_answer(grant: GrantKind, status: u16, body: &[u8], now: UnixTime) -> Result<GrantAnswer, Failure> {
    let grant = match grant {
        GrantKind::ClientCredentials => BackendGrant::ClientCredentials,
        GrantKind::TokenExchange => BackendGrant::TokenExchange {
            subject_token_type: TokenType::AccessToken,
            requested_token_type: None,
            actor: false,
        },
        GrantKind::TokenExchangeForJwt => BackendGrant::TokenExchange {
            subject_token_type: TokenType::AccessToken,
            requested_token_type: Some(TokenType::Jwt),
            actor: false,
        },
        GrantKind::OnBehalfOf => BackendGrant::JwtBearer { requested_token_use: Some("on_behalf_of".into()) },
    };
    Ok(match backend::read_grant_answer(&grant, status, body, now, 300)? {
        backend::Issued::Token(token) => GrantAnswer::Token(token.access_token),
        backend::Issued::Refused => GrantAnswer::Refused,
    })
}

/// What a JWT's unverified header and `iss` say.
#[derive(Debug)]
pub struct JwtPeek {
    /// The header's `alg`, as `Debug` writes `jsonwebtoken::Algorithm`.
    pub alg: String,
    pub typ: Option<String>,
    pub kid: Option<String>,
    pub issuer: Option<String>,
}

/// Reads a token's header and `iss` without trusting them; `None` if it is not a JWT.
pub fn jwt_peek(token: &str) -> Option<JwtPeek> {
    PeekedJwt::read(token).map(|p| p.summary())
}

/// A token with what its unverified header and `iss` say, read once to be verified again and
/// again (the engine peeks each token once, to pick its issuer, before verifying it).
pub struct PeekedJwt {
    token: String,
    peek: jwt::Peek,
}

impl PeekedJwt {
    /// `None` if `token` is not a JWT.
    pub fn read(token: &str) -> Option<Self> {
        jwt::peek(token).ok().map(|peek| PeekedJwt { token: token.to_string(), peek })
    }

    pub fn summary(&self) -> JwtPeek {
        let header = &self.peek.header;
        JwtPeek {
            alg: format!("{:?}", header.alg),
            typ: header.typ.clone(),
            kid: header.kid.clone(),
            issuer: self.peek.issuer.clone(),
        }
    }
}

/// The keys of a JWKS document as the engine keeps them once fetched.
pub struct JwksKeys(KeySet);

impl JwksKeys {
    /// Reads a JWKS document as the engine does, or why it is unusable.
    pub fn read(body: &[u8]) -> Result<Self, Failure> {
        KeySet::from_json(body).map(JwksKeys)
    }

    /// Whether it holds a usable signing key.
    pub fn has_keys(&self) -> bool {
        !self.0.is_empty()
    }
}

/// Reads a JWKS document as the engine does: whether it holds a usable signing key, or why it
/// is unusable.
pub fn jwks_has_keys(body: &[u8]) -> Result<bool, Failure> {
    JwksKeys::read(body).map(|k| k.has_keys())
}

/// Verifies a peeked token against keys as the engine does once it has them: `Err` carries the
/// denial reason.
pub fn jwt_verify_with(
    token: &PeekedJwt,
    keys: &JwksKeys,
    issuer: &Issuer,
    now: UnixTime,
    leeway: i64,
    claim_names: &[String],
) -> Result<Identity, &'static str> {
    jwt::verify(&token.token, &token.peek, issuer, &keys.0, now, leeway, &Wanted::context(claim_names))
        .map_err(Reason::as_str)
}

/// [`jwt_verify_with`] from the token's text and the JWKS document's bytes: a JWT refused
/// before verification gives its reason; `not_a_jwt` and `bad_jwks` are this wrapper's own.
pub fn jwt_verify(
    token: &str,
    jwks: &[u8],
    issuer: &Issuer,
    now: UnixTime,
    leeway: i64,
    claim_names: &[String],
) -> Result<Identity, &'static str> {
    let peek = jwt::peek(token).map_err(|e| match e {
        jwt::Unreadable::NotJwt => "not_a_jwt",
        jwt::Unreadable::Refused(why, _) => why.as_str(),
    })?;
    let token = PeekedJwt { token: token.to_string(), peek };
    let keys = JwksKeys::read(jwks).map_err(|_| "bad_jwks")?;
    jwt_verify_with(&token, &keys, issuer, now, leeway, claim_names)
}

/// A DPoP proof (RFC 9449) checked as the engine checks it, for a `method` request to `uris`
/// (normalised) presented with `access_token`; `Ok` is the proof key's thumbprint.
pub fn dpop_check(
    proof: &str,
    method: &str,
    uris: &[String],
    access_token: &str,
    now: UnixTime,
    max_age: i64,
    leeway: i64,
) -> Result<String, Reason> {
    let expected = crate::dpop::Expected { method, uris, access_token, now, max_age, leeway };
    crate::dpop::check(proof, &expected).map(|p| p.jkt)
}

pub use crate::dpop::{access_token_hash as dpop_ath, normalise_uri as dpop_normalise_uri};
