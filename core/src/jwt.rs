//! Local validation of JWT access tokens (RFC 9068 and ordinary JWTs) against an issuer's JWKS,
//! secure by default: asymmetric algorithms only, the header's `alg` must fit the key, issuer
//! and `exp` required, audience required unless switched off, `nbf`/`iat` within the leeway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve};
use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use serde_json::{Map, Value};

use crate::budget::Budget;
use crate::cache::{Cache, Entry, Lookup};
use crate::claims::{Facts, Wanted};
use crate::clock::UnixTime;
use crate::dpop::Confirmation;
use crate::http::HttpClient;
use crate::idp::Idp;
use crate::introspection::{self, Identity, Verdict};
use crate::jwks_auth::JwksBearer;
use crate::outcome::{Cause, Dependency, Failure};
use crate::reason::Reason;
use crate::sync::lock;

/// The asymmetric algorithms accepted; `none` and HMAC never are.
pub(crate) const ALLOWED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// After an unknown `kid` made us refetch the JWKS, further unknown `kid`s are refused without
/// asking the IdP for this long (a flood of forged `kid`s costs the IdP one request).
pub const UNKNOWN_KID_PENALTY: i64 = 10;

/// The circumstances of one validation: the IdP client to fetch keys with, the time, how long the
/// request may wait, and what to read from the claims.
pub(crate) struct At<'a> {
    pub idp: &'a Idp,
    pub now: UnixTime,
    pub budget: Budget,
    pub leeway: i64,
    pub wanted: &'a Wanted,
}

/// One trusted issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    pub issuer: String,
    /// Accepted audiences (any of them). Empty only when the audience check is switched off.
    pub audiences: Vec<String>,
    /// Where its keys are; discovered from the issuer when `None`.
    pub jwks_url: Option<String>,
    /// Verify its JWTs locally (`true`), or send them to introspection.
    pub local: bool,
    /// Require the `at+jwt` type (RFC 9068).
    pub require_at_jwt: bool,
    /// Amazon Cognito access tokens name their app client in `client_id`, not `aud`: when set,
    /// `client_id` must be one of these and `token_use` must be `access` (an ID token is not).
    pub client_ids: Vec<String>,
    /// For an issuer written with [`TENANT_PLACEHOLDER`] (Entra multi-tenant), the tenants
    /// accepted; empty for an ordinary issuer. No tenant is ever accepted implicitly.
    pub tenants: Vec<String>,
}

/// Where a multi-tenant issuer (Entra) has the tenant id, e.g.
/// `https://login.microsoftonline.com/{tenantid}/v2.0`.
pub const TENANT_PLACEHOLDER: &str = "{tenantid}";

impl Issuer {
    /// An issuer written with the tenant placeholder, standing for one issuer per tenant.
    pub(crate) fn is_template(&self) -> bool {
        self.issuer.contains(TENANT_PLACEHOLDER)
    }

    /// The issuer as tenant `tenant` writes it.
    fn for_tenant(&self, tenant: &str) -> String {
        self.issuer.replace(TENANT_PLACEHOLDER, tenant)
    }

    /// Whether `iss` names this issuer: exactly, or for a template, as one of its tenants.
    pub(crate) fn names(&self, iss: &str) -> bool {
        if self.is_template() { self.tenants.iter().any(|t| self.for_tenant(t) == iss) } else { self.issuer == iss }
    }
}

/// What a JWT's unverified parts say, enough to choose how to validate it. Each part is decoded
/// once, here; verification then checks the signature over the same bytes and reads these claims.
pub(crate) struct Peek {
    pub header: Header,
    pub issuer: Option<String>,
    claims: Map<String, Value>,
}

/// The JOSE header members tokenbridge reads.
pub(crate) struct Header {
    pub alg: Algorithm,
    pub typ: Option<String>,
    pub kid: Option<String>,
}

/// Why a token is not read as a JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// Not three base64url parts with a JSON object header: some other kind of token.
    NotJwt,
    /// A JWT that tokenbridge could never verify, whatever its signature: the denial reason,
    /// and its `iss` when that could be read (its issuer's IdP may still introspect it).
    Refused(Reason, Option<String>),
}

/// Reads a token's header and claims without trusting them.
pub(crate) fn peek(token: &str) -> Result<Peek, Unreadable> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Unreadable::NotJwt);
    };
    // A first part that decodes to something like a JSON object makes it a JWT: from here on
    // a fault refuses the token rather than sending it elsewhere.
    let header = base64_part(header).filter(|h| h.trim_ascii_start().starts_with(b"{")).ok_or(Unreadable::NotJwt)?;
    let claims = base64_part(claims).and_then(|c| crate::json::object(&c));
    let claims = claims.ok_or(Unreadable::Refused(Reason::MalformedClaims, None))?;
    let issuer = match claims.get("iss") {
        None | Some(Value::Null) => None,
        Some(Value::String(iss)) => Some(iss.clone()),
        Some(_) => return Err(Unreadable::Refused(Reason::MalformedClaim, None)),
    };
    let header = crate::json::object(&header).ok_or(Reason::MalformedHeader).and_then(|h| read_header(&h));
    match header {
        Ok(header) => Ok(Peek { header, issuer, claims }),
        Err(why) => Err(Unreadable::Refused(why, issuer)),
    }
}

/// The `cnf` a JWT's payload claims, unverified (for a token IdP A vouches for): `Ok(None)` when
/// it names none or its payload is no JSON object, `Err` when its `cnf` cannot be read.
pub(crate) fn payload_binding(token: &str) -> Result<Option<Box<Confirmation>>, ()> {
    let claims = token.split('.').nth(1).and_then(base64_part).and_then(|c| crate::json::object(&c));
    claims.map_or(Ok(None), |claims| Confirmation::read(&claims))
}

/// One base64url part (RFC 7515 §2: no padding). Its JSON, header or claims, must name no
/// member twice (RFC 7515 §4: reject, rather than guess which one counts).
pub(crate) fn base64_part(part: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).ok()
}

/// The header, checked: a known `alg`, text `typ` and `kid`, no `crit`, and no `nonce`.
/// tokenbridge implements no JWS extension, so RFC 7515 §4.1.11 has it reject every `crit`
/// (an empty one is invalid by itself); `b64` (RFC 7797) changes what is signed and must be
/// critical, so it is refused with or without `crit`.
fn read_header(header: &Map<String, Value>) -> Result<Header, Reason> {
    if header.contains_key("crit") || header.contains_key("b64") {
        return Err(Reason::CriticalHeader);
    }
    // Entra signs Microsoft Graph's tokens over a transformed `nonce`: only Graph can verify
    // them, so they are refused as what they are, before any key is looked up.
    if header.contains_key("nonce") {
        return Err(Reason::GraphToken);
    }
    let text = |name| match header.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Reason::MalformedHeader),
    };
    let alg = text("alg")?.ok_or(Reason::MalformedHeader)?;
    // HMAC is parsed (an introspected issuer may use it) but never verified here.
    let alg = alg.parse::<Algorithm>().map_err(|_| Reason::AlgorithmNotAllowed)?;
    Ok(Header { alg, typ: text("typ")?, kid: text("kid")? })
}

/// One usable public key from a JWKS, parsed once per algorithm it may verify (so a token's
/// verification does not rebuild the key).
struct Key {
    kid: Option<String>,
    /// The issuer the key is published for (Entra's JWK `issuer` member), when it names one.
    issuer: Option<String>,
    verifiers: Vec<(Algorithm, ParsedPublicKey)>,
}

impl Key {
    /// Entra's shared JWKS names, per key, the issuer it signs for (its `issuer` member): a
    /// tenant's own key signs for that issuer only, and a `{tenantid}` key for the issuer it
    /// spells with the token's `tid`. A key naming none signs for the issuer using this JWKS.
    fn signs_for(&self, iss: Option<&str>, tid: Option<&str>) -> bool {
        match self.issuer.as_deref() {
            None => true,
            Some(own) if own.contains(TENANT_PLACEHOLDER) => {
                tid.is_some_and(|tid| Some(own.replace(TENANT_PLACEHOLDER, tid).as_str()) == iss)
            }
            Some(own) => Some(own) == iss,
        }
    }

    fn verifier(&self, alg: Algorithm) -> Option<&ParsedPublicKey> {
        self.verifiers.iter().find(|(a, _)| *a == alg).map(|(_, key)| key)
    }
}

/// The keys of one JWKS document.
#[derive(Default)]
pub(crate) struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// Keeps the signing keys it can use; skips encryption keys, symmetric keys, and keys it
    /// cannot read, rather than failing the whole set.
    pub(crate) fn from_json(body: &[u8]) -> Result<Self, Failure> {
        let doc = crate::json::object(body).ok_or(Failure::Malformed)?;
        let items = doc.get("keys").and_then(Value::as_array).ok_or(Failure::Malformed)?;
        let keys = items
            .iter()
            .filter_map(|item| Some((serde_json::from_value::<Jwk>(item.clone()).ok()?, item)))
            .filter(|(jwk, _)| may_verify(jwk))
            .filter_map(|(jwk, item)| {
                // A key whose `issuer` is not text is not one this code understands.
                let issuer = match item.get("issuer") {
                    None => None,
                    Some(Value::String(issuer)) => Some(issuer.clone()),
                    Some(_) => return None,
                };
                let verifiers: Vec<_> =
                    key_algorithms(&jwk)?.into_iter().filter_map(|alg| Some((alg, parsed_key(&jwk, alg)?))).collect();
                (!verifiers.is_empty()).then(|| Key { kid: jwk.common.key_id.clone(), issuer, verifiers })
            })
            .collect();
        Ok(KeySet { keys })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn candidates<'a>(&'a self, kid: Option<&'a str>, alg: Algorithm) -> impl Iterator<Item = &'a Key> {
        self.keys.iter().filter(move |k| (kid.is_none() || k.kid.as_deref() == kid) && k.verifier(alg).is_some())
    }

    fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

/// Whether a key is published for verifying signatures: `use` (if present) is `sig`, and
/// `key_ops` (if present) includes `verify` (RFC 7517 §4.2, §4.3). A key meant for anything
/// else is never used, even when its material would verify.
fn may_verify(jwk: &Jwk) -> bool {
    let by_use = matches!(jwk.common.public_key_use, None | Some(PublicKeyUse::Signature));
    let by_ops = jwk.common.key_operations.as_ref().is_none_or(|ops| ops.contains(&KeyOperations::Verify));
    by_use && by_ops
}

/// The algorithms a key may verify: its declared `alg` if it has one (and it is allowed), else
/// every allowed algorithm of its family.
pub(crate) fn key_algorithms(jwk: &Jwk) -> Option<Vec<Algorithm>> {
    use jsonwebtoken::jwk::AlgorithmParameters as P;
    let family = match &jwk.algorithm {
        P::RSA(_) => AlgorithmFamily::Rsa,
        P::EllipticCurve(_) => AlgorithmFamily::Ec,
        P::OctetKeyPair(_) => AlgorithmFamily::Ed,
        // Symmetric keys, and any kind this code does not know, are never used.
        _ => return None,
    };
    let family: Vec<Algorithm> = ALLOWED.into_iter().filter(|a| a.family() == family).collect();
    let declared = match jwk.common.key_algorithm {
        None => return Some(family),
        Some(KeyAlgorithm::RS256) => Algorithm::RS256,
        Some(KeyAlgorithm::RS384) => Algorithm::RS384,
        Some(KeyAlgorithm::RS512) => Algorithm::RS512,
        Some(KeyAlgorithm::PS256) => Algorithm::PS256,
        Some(KeyAlgorithm::PS384) => Algorithm::PS384,
        Some(KeyAlgorithm::PS512) => Algorithm::PS512,
        Some(KeyAlgorithm::ES256) => Algorithm::ES256,
        Some(KeyAlgorithm::ES384) => Algorithm::ES384,
        Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
        Some(_) => return None,
    };
    family.contains(&declared).then(|| vec![declared])
}

/// The key's material, parsed for verifying `alg`: an RSA modulus and exponent, or an EC or
/// Ed25519 point on the curve `alg` names (a `crv` that does not match it is refused, whatever
/// the point's size says).
pub(crate) fn parsed_key(jwk: &Jwk, alg: Algorithm) -> Option<ParsedPublicKey> {
    let part = |b64: &str| base64_part(b64).filter(|bytes| !bytes.is_empty());
    match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(rsa), _) => {
            let params: &'static sig::RsaParameters = match alg {
                Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
                Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
                Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
                _ => return None,
            };
            let (n, e) = (part(&rsa.n)?, part(&rsa.e)?);
            RsaPublicKeyComponents { n: &n[..], e: &e[..] }.to_parsed_public_key(params).ok()
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256 | Algorithm::ES384) => {
            let (curve, params): (_, &'static dyn sig::VerificationAlgorithm) = match alg {
                Algorithm::ES256 => (EllipticCurve::P256, &sig::ECDSA_P256_SHA256_FIXED),
                _ => (EllipticCurve::P384, &sig::ECDSA_P384_SHA384_FIXED),
            };
            if ec.curve != curve {
                return None;
            }
            let point = [&[0x04][..], &part(&ec.x)?, &part(&ec.y)?].concat();
            ParsedPublicKey::new(params, point).ok()
        }
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) if okp.curve == EllipticCurve::Ed25519 => {
            ParsedPublicKey::new(&sig::ED25519, part(&okp.x)?).ok()
        }
        _ => None,
    }
}

/// Verifies `token` from `issuer` with `keys`. `Err(reason)` is a denial reason.
pub(crate) fn verify(
    token: &str,
    peeked: &Peek,
    issuer: &Issuer,
    keys: &KeySet,
    now: UnixTime,
    leeway: i64,
    wanted: &Wanted,
) -> Result<Identity, Reason> {
    let alg = peeked.header.alg;
    if !ALLOWED.contains(&alg) {
        return Err(Reason::AlgorithmNotAllowed);
    }
    if issuer.require_at_jwt && !peeked.header.typ.as_deref().is_some_and(is_at_jwt) {
        return Err(Reason::NotAnAccessToken);
    }
    let Some((message, signature)) = token.rsplit_once('.') else { return Err(Reason::BadSignature) };
    let signature = base64_part(signature).ok_or(Reason::BadSignature)?;
    let signed = |key: &Key| key.verifier(alg).is_some_and(|k| k.verify_sig(message.as_bytes(), &signature).is_ok());
    let tid = peeked.claims.get("tid").and_then(Value::as_str);
    let for_issuer = |key: &&Key| key.signs_for(peeked.issuer.as_deref(), tid);
    if !keys.candidates(peeked.header.kid.as_deref(), alg).filter(for_issuer).any(signed) {
        return Err(Reason::BadSignature);
    }
    let claims = &peeked.claims;
    match &peeked.issuer {
        None => return Err(Reason::MissingClaim),
        Some(iss) => issuer_checked(iss, claims, issuer)?,
    }
    if !issuer.audiences.is_empty() {
        match introspection::audiences(claims) {
            Err(_) => return Err(Reason::MalformedClaim),
            Ok(auds) if auds.is_empty() => return Err(Reason::MissingClaim),
            Ok(auds) if !introspection::audience_accepted(&auds, &issuer.audiences) => {
                return Err(Reason::WrongAudience);
            }
            Ok(_) => {}
        }
    }
    if !issuer.client_ids.is_empty() {
        client_checked(claims, &issuer.client_ids)?;
    }
    identity(claims, now, leeway, wanted)
}

/// `iss` must be the issuer; for a tenant template, the template with the token's own `tid`
/// substituted, that tenant being one of those accepted.
fn issuer_checked(iss: &str, claims: &Map<String, Value>, issuer: &Issuer) -> Result<(), Reason> {
    if !issuer.is_template() {
        return if iss == issuer.issuer { Ok(()) } else { Err(Reason::WrongIssuer) };
    }
    let tid = required_text(claims, "tid")?;
    if !issuer.tenants.iter().any(|t| t == tid) {
        return Err(Reason::TenantNotAllowed);
    }
    if issuer.for_tenant(tid) == iss { Ok(()) } else { Err(Reason::WrongIssuer) }
}

/// Cognito's access-token checks: `token_use` is `access` (checked first, so an ID token is
/// named as one) and `client_id` is an accepted app client.
fn client_checked(claims: &Map<String, Value>, client_ids: &[String]) -> Result<(), Reason> {
    if required_text(claims, "token_use")? != "access" {
        return Err(Reason::NotAnAccessToken);
    }
    let client_id = required_text(claims, "client_id")?;
    if client_ids.iter().any(|c| c == client_id) { Ok(()) } else { Err(Reason::ClientNotAllowed) }
}

/// A claim that must be present, as a string.
fn required_text<'a>(claims: &'a Map<String, Value>, name: &str) -> Result<&'a str, Reason> {
    match claims.get(name) {
        None | Some(Value::Null) => Err(Reason::MissingClaim),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Reason::MalformedClaim),
    }
}

fn is_at_jwt(typ: &str) -> bool {
    typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
}

/// The identity in verified claims, after the time checks.
fn identity(claims: &Map<String, Value>, now: UnixTime, leeway: i64, wanted: &Wanted) -> Result<Identity, Reason> {
    // A claim of the wrong type is a malformed token, never a claim to skip.
    let time = |k: &str| match claims.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => crate::clock::numeric_date(n).map(Some).ok_or(Reason::MalformedClaim),
        Some(_) => Err(Reason::MalformedClaim),
    };
    let text = |k: &str| match claims.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone()).filter(|s| !s.is_empty())),
        Some(_) => Err(Reason::MalformedClaim),
    };
    let exp = time("exp")?.ok_or(Reason::MissingClaim)?;
    if exp.saturating_add(leeway) <= now {
        return Err(Reason::Expired);
    }
    if time("nbf")?.is_some_and(|nbf| nbf.saturating_sub(leeway) > now) {
        return Err(Reason::NotYetValid);
    }
    if time("iat")?.is_some_and(|iat| iat.saturating_sub(leeway) > now) {
        return Err(Reason::IssuedInTheFuture);
    }
    let client_id = text("client_id")?.or(text("azp")?);
    let principal = text("sub")?.or_else(|| client_id.clone()).ok_or(Reason::NoPrincipal)?;
    // RFC 9068 `scope` is a string; some IdPs send `scp` as an array.
    let scopes = match claims.get("scope").or_else(|| claims.get("scp")) {
        Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_string).collect(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    };
    Ok(Identity {
        principal,
        client_id,
        scopes,
        expires_at: Some(exp),
        issuer: text("iss")?,
        audiences: introspection::audiences(claims).unwrap_or_default(),
        claims: introspection::context_claims(claims, &wanted.context),
        facts: Facts::read(claims, &wanted.conditions),
        cnf: Confirmation::read(claims).map_err(|()| Reason::MalformedClaim)?,
        verified_locally: true,
    })
}

/// A local issuer whose keys cannot be loaded, and why; what `check-config` reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("issuer {issuer}: its keys cannot be loaded: {cause}")]
pub struct KeysProblem {
    pub issuer: String,
    pub cause: Cause,
}

/// An issuer's keys: fetched at start-up or first use, refreshed per `Cache-Control: max-age`
/// (or the default), refetched once on an unknown `kid` or a known one that does not verify
/// (then a penalty window), kept when a refresh fails.
pub(crate) struct Jwks {
    pub issuer: Issuer,
    keys: Cache<(), Arc<KeySet>, Cause>,
    /// Discovered `jwks_uri`, when not configured.
    discovered: Cache<(), String, Cause>,
    penalty_until: Mutex<UnixTime>,
    default_max_age: i64,
    /// The bearer token its configured JWKS URL is fetched with, when it asks for one.
    bearer: Option<Arc<JwksBearer>>,
}

impl Jwks {
    pub(crate) fn new(issuer: Issuer, default_max_age: i64) -> Self {
        Self {
            issuer,
            keys: Cache::new(1),
            discovered: Cache::new(1),
            penalty_until: Mutex::new(UnixTime::MIN),
            default_max_age,
            bearer: None,
        }
    }

    /// Fetches the configured JWKS URL with `bearer`'s token (never a discovered one).
    pub(crate) fn fetched_with(&mut self, bearer: Arc<JwksBearer>) {
        self.bearer = Some(bearer);
    }

    /// Verifies a JWT of this issuer: `Ok(Verdict)`, or `Err(cause)` when the keys needed to
    /// decide cannot be had.
    pub(crate) fn validate(&self, token: &str, peeked: &Peek, at: &At<'_>) -> Result<Verdict, Cause> {
        let (mut keys, mut how) = self.keys(at.idp, at.now, at.budget)?;
        let mut refetched = false;
        if let Some(kid) = peeked.header.kid.as_deref().filter(|kid| !keys.has_kid(kid)) {
            self.refetch_once_per_window(at.now);
            // Read again whoever claimed the refetch: one in flight is waited for (until this
            // request's own deadline), a finished one is used, and within the penalty window
            // after it the cached keys answer without asking the IdP.
            let (refetched_keys, refetched_how) = self.keys(at.idp, at.now, at.budget)?;
            if !refetched_keys.has_kid(kid) {
                return match refetched_how {
                    // Keys that could not be refreshed may lack a key the IdP has since
                    // published: an outage, not a verdict on the token.
                    Lookup::Stale(cause) => Err(cause),
                    _ => Ok(Verdict::Invalid(Reason::UnknownKey)),
                };
            }
            (keys, how, refetched) = (refetched_keys, refetched_how, true);
        }
        let verified = |keys: &KeySet| verify(token, peeked, &self.issuer, keys, at.now, at.leeway, at.wanted);
        let mut result = verified(&keys);
        // Some IdPs (OCI IAM identity domains) rotate a key and keep its `kid`: a known `kid`
        // that does not verify asks for the keys again, under the same once-per-window limit
        // as an unknown `kid`, so forged signatures cost the IdP at most one request a window.
        // Keys this request has just loaded (or waited for) are the newest there are.
        let just_loaded = refetched || matches!(how, Lookup::Miss | Lookup::Shared);
        if result == Err(Reason::BadSignature) && peeked.header.kid.is_some() && !just_loaded {
            self.refetch_once_per_window(at.now);
            let (again, again_how) = self.keys(at.idp, at.now, at.budget)?;
            if !Arc::ptr_eq(&again, &keys) {
                result = verified(&again);
            }
            how = again_how;
        }
        match (result, how) {
            (Ok(identity), _) => Ok(Verdict::Active(identity)),
            // A signature that no kept key verifies, while the keys could not be refreshed,
            // may be by a key published (or rotated under its `kid`) since: an outage, not a
            // verdict.
            (Err(Reason::BadSignature), Lookup::Stale(cause)) => Err(cause),
            (Err(reason), _) => Ok(Verdict::Invalid(reason)),
        }
    }

    /// Loads the keys now (start-up warm-up, `check-config`), or says why they cannot be had.
    pub(crate) fn warm(&self, idp: &Idp, now: UnixTime, deadline: Instant) -> Result<(), Cause> {
        // The call timeout bounds the bearer token's call, as any IdP call's (`Idp::call`).
        match self.keys(idp, now, Budget::new(now, Some(deadline), idp.http.call_timeout()))? {
            (_, Lookup::Stale(cause)) => Err(cause),
            _ => Ok(()),
        }
    }

    /// Whether usable keys are held, without fetching.
    pub(crate) fn is_warm(&self, now: UnixTime) -> bool {
        self.keys.peek_usable(&(), now).is_some_and(|k| !k.is_empty())
    }

    /// Makes the keys due for a refetch, once per penalty window (claimed by the first caller).
    /// Claimed and expired under one lock, so a caller that finds the window taken also finds
    /// the keys due: being refetched, or refetched.
    fn refetch_once_per_window(&self, now: UnixTime) {
        let mut until = lock(&self.penalty_until);
        if now >= *until {
            *until = now.saturating_add(UNKNOWN_KID_PENALTY);
            self.keys.expire(&());
            crate::metrics::unknown_kid_refetch();
        }
    }

    fn keys(&self, idp: &Idp, now: UnixTime, budget: Budget) -> Result<(Arc<KeySet>, Lookup<Cause>), Cause> {
        let cause = |f| Cause::new(Dependency::Jwks, f);
        let timed_out = budget.waited_too_long(Dependency::Jwks);
        self.keys.get_or_load(
            &(),
            now,
            || budget.wait_until(),
            timed_out,
            || {
                let url = self.jwks_url(&idp.http, now, budget)?;
                let answer = match (&self.bearer, &self.issuer.jwks_url) {
                    (Some(bearer), Some(_)) => bearer.get(idp, &url, budget)?,
                    _ => idp.http.get(&url, budget.deadline()).map_err(cause)?,
                };
                if answer.status != 200 {
                    return Err(Cause { retry_after: answer.retry_after, ..cause(Failure::Status(answer.status)) });
                }
                let set = KeySet::from_json(&answer.body).map_err(cause)?;
                if set.is_empty() {
                    return Err(cause(Failure::Malformed));
                }
                let max_age = answer.max_age.map_or(self.default_max_age, |a| i64::try_from(a).unwrap_or(i64::MAX));
                // At least a minute, so a `no-cache` JWKS does not cost a request per decision.
                let fresh_until = now.saturating_add(max_age.clamp(60, 86_400));
                Ok(Entry { value: Arc::new(set), fresh_until, usable_until: UnixTime::MAX })
            },
        )
    }

    fn jwks_url(&self, http: &HttpClient, now: UnixTime, budget: Budget) -> Result<String, Cause> {
        if let Some(url) = &self.issuer.jwks_url {
            return Ok(url.clone());
        }
        let cause = |f| Cause::new(Dependency::Jwks, f);
        let timed_out = budget.waited_too_long(Dependency::Jwks);
        let (url, _) = self.discovered.get_or_load(
            &(),
            now,
            || budget.wait_until(),
            timed_out,
            || {
                let mut last = cause(Failure::Status(404));
                for url in discovery_urls(&self.issuer.issuer) {
                    let answer = match http.get(&url, budget.deadline()) {
                        Ok(a) => a,
                        Err(f) => return Err(cause(f)),
                    };
                    match answer.status {
                        200 => {}
                        // Not published here: try the other well-known place.
                        404 => {
                            last = cause(Failure::Status(404));
                            continue;
                        }
                        // An outage answers for the issuer, not for this one document.
                        status => {
                            return Err(Cause { retry_after: answer.retry_after, ..cause(Failure::Status(status)) });
                        }
                    }
                    let doc = crate::json::object(&answer.body).ok_or(cause(Failure::Malformed))?;
                    let url = doc.get("jwks_uri").and_then(Value::as_str).ok_or(cause(Failure::Malformed))?;
                    crate::url_rules::check_url(url).map_err(|_| cause(Failure::Malformed))?;
                    // OpenID Connect Discovery §4.3, RFC 8414 §3.3: a document for another issuer
                    // (a shared host, a misrouted proxy) must not lend its keys to this one.
                    if doc.get("issuer").and_then(Value::as_str) != Some(self.issuer.issuer.as_str()) {
                        return Err(cause(Failure::IssuerMismatch));
                    }
                    return Ok(Entry::until(url.to_string(), UnixTime::MAX));
                }
                Err(last)
            },
        )?;
        Ok(url)
    }
}

/// Where `issuer` may publish its metadata, in the order tried: OpenID Connect Discovery
/// appends its well-known path to the issuer; RFC 8414 §3.1 inserts its own between the host
/// and the issuer's path.
pub(crate) fn discovery_urls(issuer: &str) -> [String; 2] {
    let issuer = issuer.trim_end_matches('/');
    let (origin, path) = match issuer.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/') {
            Some((host, path)) => (format!("{scheme}://{host}"), format!("/{path}")),
            None => (issuer.to_string(), String::new()),
        },
        None => (issuer.to_string(), String::new()),
    };
    [
        format!("{issuer}/.well-known/openid-configuration"),
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
    ]
}

/// Issuers by name.
pub(crate) fn by_issuer(issuers: Vec<Issuer>, default_max_age: i64) -> HashMap<String, Jwks> {
    issuers.into_iter().map(|i| (i.issuer.clone(), Jwks::new(i, default_max_age))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_8414_metadata_is_looked_for_between_the_host_and_the_issuer_path() {
        assert_eq!(
            discovery_urls("https://idp.example/realms/x"),
            [
                "https://idp.example/realms/x/.well-known/openid-configuration",
                "https://idp.example/.well-known/oauth-authorization-server/realms/x",
            ]
        );
        assert_eq!(
            discovery_urls("https://idp.example:8443/a/b/"),
            [
                "https://idp.example:8443/a/b/.well-known/openid-configuration",
                "https://idp.example:8443/.well-known/oauth-authorization-server/a/b",
            ]
        );
    }

    #[test]
    fn an_issuer_without_a_path_has_both_documents_under_its_root() {
        for issuer in ["https://idp.example", "https://idp.example/"] {
            assert_eq!(
                discovery_urls(issuer),
                [
                    "https://idp.example/.well-known/openid-configuration",
                    "https://idp.example/.well-known/oauth-authorization-server",
                ]
            );
        }
    }
}
