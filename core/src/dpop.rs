//! DPoP proofs (RFC 9449): a caller proves, request by request, that it holds the private key
//! its access token is bound to (the token's `cnf.jkt`, the RFC 7638 thumbprint of that key).
//!
//! [`check`] verifies a proof exactly as §4.3 lists: one well-formed JWS, `typ` `dpop+jwt`, an
//! asymmetric `alg`, a public `jwk` (never a private one) that verifies the signature, `htm` and
//! `htu` naming this request, `iat` within the window, `ath` the hash of the access token. The
//! `jti` is remembered by [`Replays`] for the proof's lifetime, once the decision is an allow.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::Jwk;
use serde_json::{Map, Value};

use crate::clock::UnixTime;
use crate::jwt::{ALLOWED, base64_part, key_algorithms, parsed_key};
use crate::reason::Reason;
use crate::sync::lock;

/// Longest proof read: a proof with an RSA-4096 key is about 1.5 KiB.
pub const MAX_PROOF_LEN: usize = 8 * 1024;

/// The algorithms a proof may use, as the `algs` of a DPoP challenge names them.
pub const ALGS: &str = "ES256 ES384 PS256 PS384 PS512 RS256 RS384 RS512 EdDSA";

/// JWK members that only a private (or symmetric) key has.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Whether a route takes DPoP-bound tokens (RFC 9449): `off`, `allowed` (a DPoP request is
/// checked, a bearer token with no binding accepted), or `required`. A bound token sent as a
/// bearer token is refused in every mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Off,
    Allowed,
    Required,
}

impl Mode {
    pub(crate) fn parse(text: &str) -> Option<Mode> {
        match text {
            "off" => Some(Mode::Off),
            "allowed" => Some(Mode::Allowed),
            "required" => Some(Mode::Required),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Allowed => "allowed",
            Mode::Required => "required",
        }
    }
}

/// The DPoP settings: the default mode, the origins the API is called at, the proof window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Settings {
    pub mode: Mode,
    /// Where clients call the API (`https://api.example.com`, maybe with a base path), without a
    /// trailing `/`: a proof's `htu` must be one of them followed by the request's path.
    pub origins: Vec<String>,
    /// How old a proof's `iat` may be, in seconds.
    pub max_age: i64,
    /// How many used proofs are remembered at most.
    pub replay_capacity: usize,
}

impl Settings {
    /// The URIs a proof for `path` may name: one per origin, normalised. None for a path that
    /// does not start with `/`: glued to an origin, it would change its host, port or base path.
    pub(crate) fn uris(&self, path: &str) -> Vec<String> {
        if !path.starts_with('/') {
            return Vec::new();
        }
        self.origins.iter().filter_map(|origin| normalise_uri(&format!("{origin}{path}"))).collect()
    }
}

/// How the request presented its access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Bearer,
    Dpop,
}

/// The request's proof, checked as far as it can be before the token is validated: `None` for
/// a bearer request the mode lets through. `Err` is the denial's reason.
pub(crate) fn presented(
    settings: &Settings,
    mode: Mode,
    scheme: Scheme,
    request: &crate::outcome::Request,
    token: &str,
    now: UnixTime,
    leeway: i64,
) -> Result<Option<Proof>, Reason> {
    match (scheme, mode) {
        (Scheme::Bearer, Mode::Required) => Err(Reason::DpopRequired),
        (Scheme::Bearer, _) => Ok(None),
        // Where DPoP is off, `DPoP …` is no credential tokenbridge reads.
        (Scheme::Dpop, Mode::Off) => Err(Reason::MalformedToken),
        (Scheme::Dpop, _) => {
            let proof = request.dpop.as_deref().ok_or(Reason::DpopProofMalformed)?;
            let (Some(method), Some(path)) = (request.route.method.as_deref(), request.route.path.as_deref()) else {
                // Without the method and path there is nothing to hold `htm` and `htu` to.
                return Err(Reason::DpopProofWrongRequest);
            };
            let uris = settings.uris(path);
            let expected =
                Expected { method, uris: &uris, access_token: token, now, max_age: settings.max_age, leeway };
            check(proof, &expected).map(Some)
        }
    }
}

/// Whether the validated token's binding fits how it came: a bound token only with a proof of
/// its key, a DPoP request only with a bound token. A token bound to what tokenbridge cannot
/// check (an RFC 7800 `jwk`, `kid`, …) is refused however it comes: a binding left unchecked is
/// a bearer token for whoever stole it.
/// `Err` is the denial's reason.
pub(crate) fn bound(proof: Option<&Proof>, cnf: Option<&Confirmation>) -> Result<(), Reason> {
    // A certificate binding (`x5t#S256`) is checked by `certificate`; anything else no one checks.
    if cnf.is_some_and(|c| c.other) {
        return Err(Reason::BoundTokenUnverifiable);
    }
    match (proof, cnf.and_then(|c| c.jkt.as_deref())) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(Reason::DpopBoundTokenAsBearer),
        (Some(_), None) => Err(Reason::DpopTokenNotBound),
        (Some(proof), Some(jkt)) if proof.jkt == jkt => Ok(()),
        (Some(_), Some(_)) => Err(Reason::DpopKeyMismatch),
    }
}

/// The denial a DPoP refusal gives: a proof problem is `invalid_dpop_proof`, a bearer token
/// where DPoP is required is DPoP's `invalid_token`, the rest a bearer `invalid_token`.
pub(crate) fn denial(reason: Reason) -> crate::outcome::Denial {
    use crate::outcome::Denial;
    match reason {
        Reason::DpopRequired => Denial::DpopRequired,
        Reason::MalformedToken
        | Reason::DpopBoundTokenAsBearer
        | Reason::DpopTokenNotBound
        | Reason::BoundTokenUnverifiable => Denial::InvalidToken,
        _ => Denial::InvalidDpopProof,
    }
}

/// What a token is bound to (RFC 7800 `cnf`): a DPoP key's thumbprint (RFC 9449 §6), a client
/// certificate's SHA-256 (RFC 8705 §3.1), or something else. A token with none is a bearer token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Confirmation {
    /// `cnf.jkt`
    pub jkt: Option<String>,
    /// `cnf.x5t#S256`
    pub x5t_s256: Option<String>,
    /// Other `cnf` members (RFC 7800 `jwk`, `jwe`, `kid`, `jku`, …): a binding nothing here checks.
    pub other: bool,
}

impl Confirmation {
    /// The `cnf` of a token's claims (or an introspection answer). `Err` when it is there but
    /// not an object of strings: a binding that cannot be read is never taken for none.
    pub(crate) fn read(claims: &Map<String, Value>) -> Result<Option<Box<Confirmation>>, ()> {
        let cnf = match claims.get("cnf") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(cnf)) => cnf,
            Some(_) => return Err(()),
        };
        let member = |name: &str| match cnf.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(()),
        };
        let other = cnf.keys().any(|name| name != "jkt" && name != "x5t#S256");
        let read = Confirmation { jkt: member("jkt")?, x5t_s256: member("x5t#S256")?, other };
        Ok((read != Confirmation::default()).then(|| Box::new(read)))
    }
}

/// What a proof must say to be this request's.
pub(crate) struct Expected<'a> {
    /// The request's method.
    pub method: &'a str,
    /// The request's URI as the API's clients call it, normalised (see [`normalise_uri`]).
    pub uris: &'a [String],
    /// The access token the proof comes with.
    pub access_token: &'a str,
    pub now: UnixTime,
    /// How old `iat` may be.
    pub max_age: i64,
    /// How far ahead of our clock `iat` may be.
    pub leeway: i64,
}

/// A verified proof: the thumbprint of its key, and what replay detection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proof {
    /// RFC 7638 SHA-256 thumbprint of the proof's key, base64url.
    pub jkt: String,
    /// SHA-256 of the key's thumbprint and the `jti`: the proof's identity in [`Replays`].
    pub id: [u8; 32],
    /// Until when a replay of it would still be accepted (so must be remembered).
    pub remember_until: UnixTime,
}

/// Verifies `proof` for the request `expected` describes; `Err` is the denial's reason.
pub(crate) fn check(proof: &str, expected: &Expected<'_>) -> Result<Proof, Reason> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(Reason::DpopProofMalformed);
    }
    let mut parts = proof.split('.');
    let (Some(header), Some(claims), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Reason::DpopProofMalformed);
    };
    let object = |part: &str| base64_part(part).and_then(|bytes| crate::json::object(&bytes));
    let header = object(header).ok_or(Reason::DpopProofMalformed)?;
    let claims = object(claims).ok_or(Reason::DpopProofMalformed)?;
    let (alg, jwk, jkt) = read_header(&header)?;

    let key = key_algorithms(&jwk).filter(|algs| algs.contains(&alg)).and_then(|_| parsed_key(&jwk, alg));
    let key = key.ok_or(Reason::DpopProofMalformed)?;
    let signature = base64_part(signature).ok_or(Reason::DpopProofBadSignature)?;
    let signed = &proof[..proof.rfind('.').unwrap_or(0)];
    key.verify_sig(signed.as_bytes(), &signature).map_err(|_| Reason::DpopProofBadSignature)?;

    let text = |name: &str| match claims.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.as_str()),
        _ => Err(Reason::DpopProofMalformed),
    };
    let jti = text("jti")?;
    if text("htm")? != expected.method {
        return Err(Reason::DpopProofWrongRequest);
    }
    let htu = normalise_uri(text("htu")?).ok_or(Reason::DpopProofWrongRequest)?;
    if !expected.uris.contains(&htu) {
        return Err(Reason::DpopProofWrongRequest);
    }
    if text("ath")? != access_token_hash(expected.access_token) {
        return Err(Reason::DpopProofWrongRequest);
    }
    let iat = match claims.get("iat") {
        Some(Value::Number(n)) => crate::clock::numeric_date(n).ok_or(Reason::DpopProofMalformed)?,
        _ => return Err(Reason::DpopProofMalformed),
    };
    if iat > expected.now.saturating_add(expected.leeway) || iat < expected.now.saturating_sub(expected.max_age) {
        return Err(Reason::DpopProofExpired);
    }
    let id = proof_id(&jkt, jti);
    Ok(Proof { jkt, id, remember_until: iat.saturating_add(expected.max_age).saturating_add(expected.leeway) })
}

/// The header: `typ` `dpop+jwt`, an allowed asymmetric `alg`, a public `jwk`, no extension.
fn read_header(header: &Map<String, Value>) -> Result<(Algorithm, Jwk, String), Reason> {
    if header.contains_key("crit") || header.contains_key("b64") {
        return Err(Reason::DpopProofMalformed);
    }
    match header.get("typ") {
        Some(Value::String(typ)) if typ.eq_ignore_ascii_case("dpop+jwt") => {}
        _ => return Err(Reason::DpopProofMalformed),
    }
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.parse::<Algorithm>().map_err(|_| Reason::DpopProofMalformed)?,
        _ => return Err(Reason::DpopProofMalformed),
    };
    if !ALLOWED.contains(&alg) {
        return Err(Reason::DpopProofMalformed);
    }
    let Some(Value::Object(jwk)) = header.get("jwk") else { return Err(Reason::DpopProofMalformed) };
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(Reason::DpopProofMalformed);
    }
    let jkt = thumbprint(jwk).ok_or(Reason::DpopProofMalformed)?;
    let parsed = serde_json::from_value::<Jwk>(Value::Object(jwk.clone())).map_err(|_| Reason::DpopProofMalformed)?;
    Ok((alg, parsed, jkt))
}

/// RFC 7638: SHA-256 over the key's required members, in lexicographic order, as JSON without
/// white space; base64url. `None` for a key type this code does not verify.
pub(crate) fn thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let members: &[&str] = match jwk.get("kty")?.as_str()? {
        "RSA" => &["e", "kty", "n"],
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut canonical = Map::new();
    for member in members {
        canonical.insert((*member).to_string(), Value::String(jwk.get(*member)?.as_str()?.to_string()));
    }
    // serde_json's map keeps its keys sorted, and writes no white space.
    let json = serde_json::to_string(&canonical).ok()?;
    Some(URL_SAFE_NO_PAD.encode(digest(&SHA256, json.as_bytes())))
}

/// `ath`: base64url of the SHA-256 of the access token's ASCII.
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, token.as_bytes()))
}

fn proof_id(jkt: &str, jti: &str) -> [u8; 32] {
    let mut input = Vec::with_capacity(jkt.len() + 1 + jti.len());
    input.extend_from_slice(jkt.as_bytes());
    input.push(b' ');
    input.extend_from_slice(jti.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, &input).as_ref());
    out
}

/// An absolute `http`/`https` URI without query, fragment or user information, in the form two
/// spellings of one resource share (RFC 3986 §6.2.2–6.2.3): scheme and host lower-cased, the
/// scheme's default port dropped, an empty path as `/`, percent-encodings upper-cased and those of
/// unreserved characters decoded. Dot segments are kept: `/a/../b` is not `/b` here, so a proof
/// made for one spelling never passes for the other.
pub fn normalise_uri(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    if rest.contains(['?', '#', '@', '\\']) || rest.bytes().any(|b| !(b'!'..=b'~').contains(&b)) {
        return None;
    }
    let (authority, path) = rest.find('/').map_or((rest, "/"), |at| (&rest[..at], &rest[at..]));
    let (host, port) = if authority.starts_with('[') {
        // An IPv6 literal: its colons are not the port's.
        let (host, after) = authority.split_at(authority.find(']')? + 1);
        (host, if after.is_empty() { None } else { Some(after.strip_prefix(':')?) })
    } else {
        authority.split_once(':').map_or((authority, None), |(host, port)| (host, Some(port)))
    };
    if host.is_empty() || port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let port = port.map(|p| p.trim_start_matches('0')).filter(|p| *p != default_port);
    let mut out = format!("{scheme}://{}", host.to_ascii_lowercase());
    if let Some(port) = port {
        out.push(':');
        out.push_str(if port.is_empty() { "0" } else { port });
    }
    out.push_str(&normalise_path(path)?);
    Some(out)
}

/// Percent-encodings upper-cased, those of unreserved characters decoded; a `%` not followed by
/// two hex digits makes the path unreadable.
fn normalise_path(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = path.get(i + 1..i + 3)?;
            let value = crate::route_path::hex_byte(hex.as_bytes())?;
            if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(value));
            } else {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
            }
            i += 3;
        } else {
            out.push(char::from(bytes[i]));
            i += 1;
        }
    }
    Some(out)
}

/// The proofs already used, each until it would no longer be accepted anyway; bounded.
pub(crate) struct Replays {
    seen: Mutex<HashMap<[u8; 32], UnixTime>>,
    capacity: usize,
}

/// Whether a proof may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// First use: remembered now.
    First,
    /// Seen before: a replay.
    Replayed,
    /// So many live proofs are remembered that one more cannot be: the proof cannot be judged
    /// (Unavailable), rather than let a replay through.
    Full,
}

impl Replays {
    pub(crate) fn new(capacity: usize) -> Self {
        Replays { seen: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }

    /// Records the proof's use at `now`, telling whether it was its first.
    pub(crate) fn record(&self, proof: &Proof, now: UnixTime) -> Use {
        let mut seen = lock(&self.seen);
        if seen.get(&proof.id).is_some_and(|until| *until >= now) {
            return Use::Replayed;
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, until| *until >= now);
            if seen.len() >= self.capacity {
                return Use::Full;
            }
        }
        seen.insert(proof.id, proof.remember_until);
        Use::First
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_normalise_as_rfc_3986_compares_them() {
        for (a, b) in [
            ("HTTPS://API.Example.com/orders", "https://api.example.com/orders"),
            ("https://api.example.com:443/orders", "https://api.example.com/orders"),
            ("http://api.example.com:80/x", "http://api.example.com/x"),
            ("https://api.example.com", "https://api.example.com/"),
            ("https://api.example.com/%7euser/%2f", "https://api.example.com/~user/%2F"),
            ("https://[::1]:8443/a", "https://[::1]:8443/a"),
            ("https://[::1]/a", "https://[::1]/a"),
            ("https://api.example.com:0443/a", "https://api.example.com/a"),
        ] {
            assert_eq!(normalise_uri(a).as_deref(), Some(b), "{a}");
        }
        for different in [
            ("https://api.example.com/Orders", "https://api.example.com/orders"),
            ("https://api.example.com:8443/orders", "https://api.example.com/orders"),
            ("https://api.example.com/orders/", "https://api.example.com/orders"),
            ("https://api.example.com/a/../orders", "https://api.example.com/orders"),
            ("http://api.example.com/orders", "https://api.example.com/orders"),
        ] {
            assert_ne!(normalise_uri(different.0), normalise_uri(different.1), "{different:?}");
        }
        for refused in [
            "https://api.example.com/orders?x=1",
            "https://api.example.com/orders#f",
            "https://user@api.example.com/",
            "ftp://api.example.com/",
            "/orders",
            "https://api.example.com/a b",
            "https://api.example.com/%zz",
            "https://api.example.com/%4",
            "https://:443/",
            "https://api.example.com:x/",
            "https://api.example.com/\\admin",
        ] {
            assert_eq!(normalise_uri(refused), None, "{refused}");
        }
    }

    #[test]
    fn thumbprints_are_rfc_7638s() {
        // RFC 7638 §3.1's example key and thumbprint.
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(jwk.as_object().unwrap()).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
        assert_eq!(thumbprint(serde_json::json!({"kty": "oct", "k": "x"}).as_object().unwrap()), None);
        assert_eq!(thumbprint(serde_json::json!({"kty": "EC", "crv": "P-256", "x": "a"}).as_object().unwrap()), None);
    }

    #[test]
    fn a_binding_that_cannot_be_read_is_never_taken_for_none() {
        let read = |claims: serde_json::Value| Confirmation::read(claims.as_object().unwrap());
        assert_eq!(read(serde_json::json!({})), Ok(None));
        assert_eq!(read(serde_json::json!({"cnf": {}})), Ok(None));
        assert_eq!(read(serde_json::json!({"cnf": {"jkt": "abc"}})).unwrap().unwrap().jkt.as_deref(), Some("abc"));
        let x5t = read(serde_json::json!({"cnf": {"x5t#S256": "h"}})).unwrap().unwrap();
        assert_eq!(x5t.x5t_s256.as_deref(), Some("h"));
        let unknown = read(serde_json::json!({"cnf": {"jwk": {"kty": "EC"}}})).unwrap().expect("a binding");
        assert!(unknown.other, "a cnf member nothing here checks is still a binding");
        for bad in [
            serde_json::json!({"cnf": "abc"}),
            serde_json::json!({"cnf": {"jkt": 5}}),
            serde_json::json!({"cnf": {"jkt": ""}}),
            serde_json::json!({"cnf": {"x5t#S256": ["h"]}}),
            serde_json::json!({"cnf": []}),
        ] {
            assert_eq!(read(bad.clone()), Err(()), "{bad}");
        }
    }

    #[test]
    fn a_proof_is_used_once_and_forgotten_when_it_could_no_longer_pass() {
        let replays = Replays::new(2);
        let proof = |n: u8, until: UnixTime| Proof { jkt: String::new(), id: [n; 32], remember_until: until };
        assert_eq!(replays.record(&proof(1, 100), 50), Use::First);
        assert_eq!(replays.record(&proof(1, 100), 60), Use::Replayed);
        assert_eq!(replays.record(&proof(2, 100), 60), Use::First);
        assert_eq!(replays.record(&proof(3, 200), 60), Use::Full, "full of live proofs: no guess");
        assert_eq!(replays.record(&proof(3, 200), 150), Use::First, "the expired ones make room");
        assert_eq!(replays.record(&proof(1, 300), 150), Use::First, "past its window a proof fails on iat anyway");
    }
}
