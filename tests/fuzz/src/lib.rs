//! The fuzz targets: their checks ([`targets`]), what they share (an engine that needs no network,
//! the fixed signing key and JWKS of the JWT targets, checks on rendered answers), and the replay
//! of their saved inputs ([`replay`]) that `cargo test` runs on stable.

pub mod replay;
pub mod targets;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tokenbridge_core::fuzzing::{Issuer, JwksKeys};
use tokenbridge_core::{Cause, ConfigErrors, Denial, Dependency, Engine, Failure, Grant, Outcome};

/// The time the JWT and IdP answer targets decide at (2027-01-15T08:00:00Z); the JWT seeds are
/// valid then.
pub const NOW: i64 = 1_800_000_000;
/// Clock leeway of the targets, as configured by default.
pub const LEEWAY: i64 = 60;
/// Issuer and audience the JWT targets accept.
pub const ISSUER: &str = "https://idp.example";
pub const AUDIENCE: &str = "api";
/// `kid` of the fixed Ed25519 key.
pub const KID: &str = "fuzz-ed25519";
/// Claims forwarded as context by the targets.
pub const CLAIM_NAMES: [&str; 4] = ["email", "groups", "sub", "tenant"];

/// An engine whose configuration is invalid: every decision is Unavailable at once, without any
/// network, and nothing is logged.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::builder(Err(ConfigErrors(vec![]))).log_sink(|_| {}).build())
}

pub fn claim_names() -> Vec<String> {
    CLAIM_NAMES.iter().map(|s| s.to_string()).collect()
}

/// The issuer of the JWT targets; `require_at_jwt` as asked.
pub fn issuer(require_at_jwt: bool) -> Issuer {
    Issuer {
        issuer: ISSUER.into(),
        audiences: vec![AUDIENCE.into()],
        jwks_url: None,
        local: true,
        require_at_jwt,
        client_ids: Vec::new(),
        tenants: Vec::new(),
    }
}

fn key() -> &'static Ed25519KeyPair {
    static KEY: OnceLock<Ed25519KeyPair> = OnceLock::new();
    KEY.get_or_init(|| Ed25519KeyPair::from_seed_unchecked(&[0x5e; 32]).expect("a 32-byte seed"))
}

/// `x` of the fixed Ed25519 key's JWK.
pub fn public_x() -> String {
    URL_SAFE_NO_PAD.encode(key().public_key().as_ref())
}

/// A JWT with exactly these header and claims bytes, signed (EdDSA) with the fixed key.
pub fn sign(header: &[u8], claims: &[u8]) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let signature = key().sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

/// A JWT with this header and claims and a made-up signature.
pub fn forged(header: &Value, claims: &Value, signature: &[u8]) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{}", part(header), part(claims), URL_SAFE_NO_PAD.encode(signature))
}

/// The JWKS the JWT targets verify against: the fixed Ed25519 key, and keys that must never
/// verify anything here — RSA and EC keys of RFC 7517 (whose private halves are public), the
/// same EC key marked for encryption, a symmetric key, and an entry that is no key at all.
pub fn jwks() -> &'static [u8] {
    static JWKS: OnceLock<Vec<u8>> = OnceLock::new();
    JWKS.get_or_init(|| {
        let doc = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": public_x(), "kid": KID, "use": "sig"},
            {"kty": "RSA", "kid": "rfc7517-rsa", "alg": "RS256", "e": "AQAB",
             "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"},
            {"kty": "EC", "crv": "P-256", "kid": "rfc7517-ec",
             "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4", "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"},
            {"kty": "EC", "crv": "P-256", "kid": "rfc7517-ec-enc", "use": "enc",
             "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4", "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"},
            {"kty": "oct", "kid": "hmac", "alg": "HS256", "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"},
            {"kty": "nonsense", "kid": "junk"}
        ]});
        doc.to_string().into_bytes()
    })
}

/// [`jwks`] as the engine keeps it once fetched, read once for every run of the JWT targets.
pub fn jwks_keys() -> &'static JwksKeys {
    static KEYS: OnceLock<JwksKeys> = OnceLock::new();
    KEYS.get_or_init(|| JwksKeys::read(jwks()).expect("the fixed JWKS is a JWKS"))
}

/// A grant with these IdP-supplied values, as the engine would build it.
pub fn grant(principal: &str, scopes: &[String], client_id: Option<&str>, claims: &BTreeMap<String, String>) -> Grant {
    let mut context = claims.clone();
    context.insert("back_end_token".into(), "Bearer backend-token".into());
    Grant {
        principal: principal.into(),
        scopes: scopes.to_vec(),
        client_id: client_id.map(str::to_string),
        expires_at: NOW + 300,
        context,
    }
}

/// One outcome of every kind, the allow carrying `grant`.
pub fn outcomes(grant: Grant) -> Vec<Outcome> {
    vec![
        Outcome::Allow(grant),
        Outcome::Deny(Denial::MissingToken),
        Outcome::Deny(Denial::InvalidToken),
        Outcome::Deny(Denial::InsufficientScope { required: vec!["orders.read".into(), "orders.write".into()] }),
        Outcome::Unavailable(Cause::new(Dependency::Introspection, Failure::Timeout)),
        Outcome::Unavailable(Cause {
            retry_after: Some(7),
            ..Cause::new(Dependency::BackendToken, Failure::Status(429))
        }),
    ]
}

/// A header value that cannot split or end a header.
pub fn header_safe(value: &str) -> bool {
    value.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// Whether `value` holds a `null` anywhere.
pub fn has_null(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.iter().any(has_null),
        Value::Object(fields) => fields.values().any(has_null),
        _ => false,
    }
}

/// Whether `value` holds the string `needle` anywhere (after JSON unescaping).
pub fn holds_string(value: &Value, needle: &str) -> bool {
    match value {
        Value::String(s) => s == needle,
        Value::Array(items) => items.iter().any(|v| holds_string(v, needle)),
        Value::Object(fields) => fields.values().any(|v| holds_string(v, needle)),
        _ => false,
    }
}

/// The whole of a target binary `fuzz_targets/<name>.rs`, after `#![cfg_attr(fuzzing, no_main)]`:
/// under cargo-fuzz (`cfg(fuzzing)`) libFuzzer's entry point, on stable a `main` that replays
/// the files it is given (by default the target's corpus and artifacts). Both run
/// `targets::<name>::check`.
#[macro_export]
macro_rules! fuzz_main {
    ($name:ident) => {
        #[cfg(fuzzing)]
        ::libfuzzer_sys::fuzz_target!(|data: &[u8]| $crate::targets::$name::check(data));

        #[cfg(not(fuzzing))]
        fn main() -> ::std::process::ExitCode {
            $crate::replay::main(stringify!($name), $crate::targets::$name::check)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenbridge_core::fuzzing::{jwks_has_keys, jwt_verify};

    fn seed(target: &str, name: &str) -> Vec<u8> {
        let path = format!("{}/corpus/{target}/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn the_fixed_jwks_holds_the_signing_key() {
        assert_eq!(jwks_has_keys(jwks()), Ok(true));
        let token = sign(
            br#"{"alg":"EdDSA","kid":"fuzz-ed25519"}"#,
            br#"{"iss":"https://idp.example","aud":"api","sub":"a","exp":1800000600}"#,
        );
        let identity = jwt_verify(&token, jwks(), &issuer(false), NOW, LEEWAY, &claim_names()).expect("verified");
        assert_eq!(identity.principal, "a");
    }

    /// The JWT seeds are signed with the fixed key and valid at `NOW`, so the fuzzer starts past
    /// the signature check.
    #[test]
    fn the_jwt_seeds_are_signed_with_the_fixed_key() {
        for name in ["valid-at-jwt", "valid-no-kid-no-typ"] {
            let token = String::from_utf8(seed("jwt", name)).expect("UTF-8");
            jwt_verify(&token, jwks(), &issuer(false), NOW, LEEWAY, &claim_names()).expect(name);
        }
        let expired = String::from_utf8(seed("jwt", "expired")).expect("UTF-8");
        assert_eq!(jwt_verify(&expired, jwks(), &issuer(false), NOW, LEEWAY, &claim_names()).unwrap_err(), "expired");
        let jwks_seed = seed("jwks", "ed25519");
        assert!(String::from_utf8(jwks_seed).expect("UTF-8").contains(&public_x()));
    }
}
