//! `extract_bearer` (RFC 6750 §2.1, RFC 9449 §7.1) on any `Authorization` value.

use tokenbridge_core::fuzzing::{Credential, MAX_TOKEN_LEN, extract_bearer};

/// The checks of the target on one input; panics on a broken invariant.
pub fn check(data: &[u8]) {
    let Ok(value) = std::str::from_utf8(data) else { return };
    let trimmed = value.trim_matches([' ', '\t']);
    match extract_bearer(Some(value)) {
        Credential::Missing => assert!(trimmed.is_empty(), "a credential was called missing: {value:?}"),
        Credential::Malformed => assert!(!trimmed.is_empty()),
        Credential::Bearer(token) | Credential::Dpop(token) => {
            let (name, again) = match extract_bearer(Some(value)) {
                Credential::Dpop(_) => ("dpop", format!("DPoP {token}")),
                _ => ("bearer", format!("Bearer {token}")),
            };
            assert!(!token.is_empty() && token.len() <= MAX_TOKEN_LEN, "token length {}", token.len());
            assert!(!token.contains(' '), "a token with a space: {token:?}");
            // b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
            let body = token.trim_end_matches('=');
            assert!(!body.is_empty(), "a token of padding only: {token:?}");
            assert!(
                body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)),
                "a token outside the b64token alphabet: {token:?}"
            );
            // The token is the value's last word, after the scheme and spaces.
            let scheme = trimmed.strip_suffix(token).expect("the token ends the value");
            assert!(scheme.ends_with(' '), "no space between scheme and token: {value:?}");
            assert!(scheme.trim_end_matches(' ').eq_ignore_ascii_case(name), "scheme of {value:?}");
            // Extracting it again gives the same token, under the same scheme.
            assert_eq!(extract_bearer(Some(&again)), extract_bearer(Some(value)));
        }
    }
}
