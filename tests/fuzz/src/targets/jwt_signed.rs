//! JWT headers and claims, signed with the fixed key inside the target so that the fuzzer
//! reaches what comes after the signature check: algorithm, `kid`, `typ`, issuer, audience and
//! time checks. Input: the header bytes, a newline, the claims bytes.

use serde_json::Value;
use tokenbridge_core::fuzzing::{PeekedJwt, jwt_verify_with};

use crate::{AUDIENCE, ISSUER, KID, LEEWAY, NOW, claim_names, issuer, jwks_keys, sign};

/// The checks of the target on one input; panics on a broken invariant.
pub fn check(data: &[u8]) {
    let (header, claims) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{}"[..]),
    };
    // A header or claims that are not base64url JSON make no JWT: nothing to verify.
    let Some(token) = PeekedJwt::read(&sign(header, claims)) else { return };
    let names = claim_names();
    for require_at_jwt in [false, true] {
        let Ok(identity) = jwt_verify_with(&token, jwks_keys(), &issuer(require_at_jwt), NOW, LEEWAY, &names) else {
            continue;
        };
        let header: Value = serde_json::from_slice(header).expect("a verified header is JSON");
        let claims: Value = serde_json::from_slice(claims).expect("verified claims are JSON");
        assert_eq!(header["alg"], "EdDSA", "algorithm");
        assert!(header.get("kid").is_none_or(|k| k == KID), "kid {:?}", header["kid"]);
        if require_at_jwt {
            let typ = header["typ"].as_str().unwrap_or_default().to_ascii_lowercase();
            assert!(typ == "at+jwt" || typ == "application/at+jwt", "typ {typ:?}");
        }
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(identity.issuer.as_deref(), Some(ISSUER));
        let aud_ok =
            claims["aud"] == AUDIENCE || claims["aud"].as_array().is_some_and(|a| a.iter().any(|v| v == AUDIENCE));
        assert!(aud_ok, "aud {}", claims["aud"]);
        assert!(identity.audiences.iter().any(|a| a == AUDIENCE), "identity audiences {:?}", identity.audiences);
        let exp = identity.expires_at.expect("exp is required");
        assert!(exp.saturating_add(LEEWAY) > NOW, "expired: {exp}");
        let time = |k: &str| claims[k].as_i64().or_else(|| claims[k].as_f64().map(|f| f as i64));
        assert_eq!(time("exp"), Some(exp));
        for k in ["nbf", "iat"] {
            assert!(time(k).is_none_or(|t| t.saturating_sub(LEEWAY) <= NOW), "{k} in the future");
        }
        assert!(!identity.principal.is_empty());
        assert!(identity.verified_locally);
    }
}
