//! Credential extraction: `Bearer` (RFC 6750 §2.1) and `DPoP` (RFC 9449 §7.1) access tokens.

/// What the caller's credential turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    /// No credential at all: RFC 6750 §3.1 says the challenge then carries no error code.
    Missing,
    /// Something was sent, but it is not a well-formed bearer token.
    Malformed,
    /// A syntactically valid bearer token (the `b64token` of RFC 6750).
    Bearer(&'a str),
    /// A syntactically valid token under the `DPoP` scheme: sender-constrained, it comes with a
    /// proof of possession of the key it is bound to.
    Dpop(&'a str),
}

/// Longest token accepted; anything longer is refused before it reaches an IdP or a cache.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Reads an `Authorization`-style value: `Bearer <b64token>`, scheme case-insensitive, one or
/// more spaces between scheme and token, surrounding whitespace ignored.
pub fn extract(value: Option<&str>) -> Credential<'_> {
    let Some(value) = value.map(|v| v.trim_matches(|c| c == ' ' || c == '\t')) else {
        return Credential::Missing;
    };
    if value.is_empty() {
        return Credential::Missing;
    }
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Credential::Malformed;
    };
    let token = rest.trim_start_matches(' ');
    if !is_b64token(token) {
        return Credential::Malformed;
    }
    // Authentication schemes compare without regard to case (RFC 9110 §11.1).
    if scheme.eq_ignore_ascii_case("bearer") {
        Credential::Bearer(token)
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Credential::Dpop(token)
    } else {
        Credential::Malformed
    }
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
fn is_b64token(token: &str) -> bool {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return false;
    }
    let body = token.trim_end_matches('=');
    !body.is_empty() && body.bytes().all(|b| B64TOKEN[usize::from(b)])
}

/// The bytes of a `b64token` before its padding, as a table: a token is checked on every
/// decision, and a JWT is a kilobyte of them.
static B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_holds_only_the_b64token_alphabet() {
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";
        for b in 0..=255u8 {
            let token = [b'a', b, b'z'];
            let accepted = std::str::from_utf8(&token)
                .is_ok_and(|t| matches!(extract(Some(&format!("Bearer {t}"))), Credential::Bearer(_)));
            assert_eq!(accepted, alphabet.as_bytes().contains(&b), "byte {b:#04x}");
        }
    }

    #[test]
    fn accepts_bearer_in_any_case() {
        for v in ["Bearer abc", "bearer abc", "BEARER abc", "  Bearer   abc  "] {
            assert_eq!(extract(Some(v)), Credential::Bearer("abc"), "{v:?}");
        }
    }

    #[test]
    fn accepts_the_whole_b64token_alphabet_with_padding() {
        let t = "aZ09-._~+/==";
        assert_eq!(extract(Some(&format!("Bearer {t}"))), Credential::Bearer(t));
    }

    #[test]
    fn absent_or_blank_is_missing_not_malformed() {
        assert_eq!(extract(None), Credential::Missing);
        assert_eq!(extract(Some("")), Credential::Missing);
        assert_eq!(extract(Some("   ")), Credential::Missing);
    }

    #[test]
    fn refuses_other_schemes_bare_tokens_and_bad_characters() {
        for v in [
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer ",
            "abc",
            "Bearerabc",
            "Bearer a b",
            "Bearer a,b",
            "Bearer ===",
            "Bearer \"abc\"",
            "Bearer abc=def",
            "Bearer tök",
            "Bearer\tabc",
        ] {
            assert_eq!(extract(Some(v)), Credential::Malformed, "{v:?}");
        }
    }

    #[test]
    fn dpop_is_a_scheme_of_its_own_in_any_case() {
        for v in ["DPoP abc", "dpop abc", "DPOP   abc"] {
            assert_eq!(extract(Some(v)), Credential::Dpop("abc"), "{v:?}");
        }
        assert_eq!(extract(Some("DPoP a b")), Credential::Malformed);
        assert_eq!(extract(Some("DPoP")), Credential::Malformed);
    }

    #[test]
    fn refuses_oversized_tokens() {
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert_eq!(extract(Some(&long)), Credential::Malformed);
        let max = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN));
        assert!(matches!(extract(Some(&max)), Credential::Bearer(_)));
    }
}
