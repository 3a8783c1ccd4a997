//! JWTs as they arrive from callers: the unverified peek that picks the issuer, and the full
//! verification against the fixed JWKS.

use tokenbridge_core::fuzzing::{PeekedJwt, jwt_verify_with};

use crate::{AUDIENCE, ISSUER, LEEWAY, NOW, claim_names, issuer, jwks_keys};

/// The checks of the target on one input; panics on a broken invariant.
pub fn check(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else { return };
    // What is not a JWT never reaches verification: the engine rejects it or introspects it.
    let Some(peeked) = PeekedJwt::read(token) else { return };
    let peek = peeked.summary();
    let names = claim_names();
    for require_at_jwt in [false, true] {
        let Ok(identity) = jwt_verify_with(&peeked, jwks_keys(), &issuer(require_at_jwt), NOW, LEEWAY, &names) else {
            continue;
        };
        // Only the fixed Ed25519 key can have signed it.
        assert_eq!(peek.alg, "EdDSA");
        assert_eq!(peek.issuer.as_deref(), Some(ISSUER));
        assert_eq!(identity.issuer.as_deref(), Some(ISSUER));
        assert!(identity.audiences.iter().any(|a| a == AUDIENCE));
        assert!(identity.expires_at.is_some_and(|exp| exp.saturating_add(LEEWAY) > NOW));
        assert!(identity.verified_locally && !identity.principal.is_empty());
    }
}
