//! JWKS documents as the engine reads them; a token signed by the fixed key verifies against a
//! document only if that document holds the key; and tokens with made-up RSA and EC signatures,
//! checked with whatever keys the document holds, never verify.
//!
//! The tokens do not depend on the input, so they are made and peeked once: each run reads the
//! document once and verifies the ten tokens against its keys, as the engine verifies every
//! token against the keys it fetched once.

use std::sync::OnceLock;

use serde_json::Value;
use tokenbridge_core::fuzzing::{JwksKeys, PeekedJwt, jwt_verify_with};

use crate::{AUDIENCE, ISSUER, KID, LEEWAY, NOW, claim_names, forged, holds_string, issuer, public_x, sign};

/// What every document is tried with.
struct Tokens {
    /// Made-up RSA and EC signatures, with and without a `kid`, by algorithm.
    forged: Vec<(&'static str, PeekedJwt)>,
    /// Signed by the fixed key, with and without its `kid`.
    signed: Vec<PeekedJwt>,
    public_x: String,
    claim_names: Vec<String>,
    issuer: tokenbridge_core::fuzzing::Issuer,
}

fn tokens() -> &'static Tokens {
    static TOKENS: OnceLock<Tokens> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let peeked = |token: String| PeekedJwt::read(&token).expect("the target's own tokens are JWTs");
        let claims = serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": NOW + 600});
        let mut forged_tokens = Vec::new();
        for (alg, signature_len) in [("RS256", 256), ("PS384", 384), ("ES256", 64), ("ES384", 96)] {
            for kid in [None, Some("k1")] {
                let mut header = serde_json::json!({"alg": alg});
                if let Some(kid) = kid {
                    header["kid"] = kid.into();
                }
                forged_tokens.push((alg, peeked(forged(&header, &claims, &vec![0x5a; signature_len]))));
            }
        }
        let signed = [
            serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": KID}),
            serde_json::json!({"alg": "EdDSA", "typ": "at+jwt"}),
        ]
        .iter()
        .map(|header| peeked(sign(header.to_string().as_bytes(), claims.to_string().as_bytes())))
        .collect();
        Tokens {
            forged: forged_tokens,
            signed,
            public_x: public_x(),
            claim_names: claim_names(),
            issuer: issuer(false),
        }
    })
}

/// The checks of the target on one input; panics on a broken invariant.
pub fn check(data: &[u8]) {
    let t = tokens();
    let keys = JwksKeys::read(data);
    let doc = serde_json::from_slice::<Value>(data).ok();
    let has_keys_array = doc.as_ref().is_some_and(|d| d.get("keys").is_some_and(Value::is_array));
    // Read only with a `keys` array; refused with one only for a member named twice, which the
    // same document written out again (by a reader that keeps one of them) no longer has.
    if keys.is_ok() {
        assert!(has_keys_array, "read without a keys array");
    } else if has_keys_array {
        let rewritten = serde_json::to_vec(doc.as_ref().expect("a JSON document")).expect("JSON again");
        assert!(JwksKeys::read(&rewritten).is_ok(), "a JWKS document with a keys array refused");
    }
    // A document the engine refuses verifies nothing.
    let Ok(keys) = keys else { return };

    for (alg, token) in &t.forged {
        let verdict = jwt_verify_with(token, &keys, &t.issuer, NOW, LEEWAY, &t.claim_names);
        assert!(verdict.is_err(), "a forged {alg} signature verified");
    }
    for token in &t.signed {
        if jwt_verify_with(token, &keys, &t.issuer, NOW, LEEWAY, &t.claim_names).is_ok() {
            assert!(keys.has_keys());
            let doc = doc.as_ref().expect("a JSON document");
            assert!(holds_string(doc, &t.public_x), "verified with a key the document does not hold");
        }
    }
}
