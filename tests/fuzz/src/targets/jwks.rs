//! JWKS documents as the engine reads them; a token signed by the fixed key verifies against a
//! document only if that document holds the key; and tokens with made-up RSA and EC signatures,
//! checked with whatever keys the document holds, never verify.

use crate::{AUDIENCE, ISSUER, KID, LEEWAY, NOW, claim_names, forged, holds_string, issuer, public_x, sign};
use serde_json::Value;
use tokenbridge_core::fuzzing::{jwks_has_keys, jwt_verify};

/// The checks of the target on one input; panics on a broken invariant.
pub fn check(data: &[u8]) {
    let parsed = jwks_has_keys(data);
    let doc = serde_json::from_slice::<Value>(data).ok();
    let has_keys_array = doc.as_ref().is_some_and(|d| d.get("keys").is_some_and(Value::is_array));
    assert_eq!(parsed.is_ok(), has_keys_array, "{parsed:?}");

    for (alg, signature_len) in [("RS256", 256), ("PS384", 384), ("ES256", 64), ("ES384", 96)] {
        for kid in [None, Some("k1")] {
            let mut header = serde_json::json!({"alg": alg});
            if let Some(kid) = kid {
                header["kid"] = kid.into();
            }
            let claims = serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": NOW + 600});
            let token = forged(&header, &claims, &vec![0x5a; signature_len]);
            let verdict = jwt_verify(&token, data, &issuer(false), NOW, LEEWAY, &claim_names());
            assert!(verdict.is_err(), "a forged {alg} signature verified");
        }
    }

    let claims = serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": NOW + 600});
    for kid in [Some(KID), None] {
        let header = match kid {
            Some(kid) => serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid}),
            None => serde_json::json!({"alg": "EdDSA", "typ": "at+jwt"}),
        };
        let token = sign(header.to_string().as_bytes(), claims.to_string().as_bytes());
        if jwt_verify(&token, data, &issuer(false), NOW, LEEWAY, &claim_names()).is_ok() {
            assert_eq!(parsed, Ok(true));
            let doc = doc.as_ref().expect("a JSON document");
            assert!(holds_string(doc, &public_x()), "verified with a key the document does not hold");
        }
    }
}
