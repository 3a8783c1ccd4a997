//! A request path as the policy compares it: split into segments, percent-decoded and
//! case-folded, or refused when some hop between the gateway and the backend could read it as
//! another path. Route patterns go through the same reading, so a route and a request meet
//! exactly when they name one resource.
//!
//! Refused (the path is ambiguous):
//! - dot segments, and segments ending in `.` or space (Windows-style servers drop them);
//! - `\`, `;`, `#` and control characters, raw or encoded;
//! - encodings of what needs none (`%61`, `%2E`) and of what a hop could decode into a
//!   delimiter or another encoding: `/ \ ; ? # %`, and `*` (an IAM wildcard in Lambda policies);
//!   a raw `*` too;
//! - encodings that are not UTF-8 once decoded (an overlong `%C0%AE` is `.` to some decoders);
//! - text that Unicode compatibility normalisation (NFKC, as .NET, Java and Python
//!   frameworks may apply) would change: fullwidth `ａｄｍｉｎ`, ligatures `ﬁ`, the Kelvin sign,
//!   long `ſ`, non-breaking spaces, decomposed accents;
//! - a non-ASCII letter whose case mapping holds ASCII (dotless `ı` → `I`, `İ` → `i`, `ß` →
//!   `SS`): Java's `equalsIgnoreCase` and .NET's `OrdinalIgnoreCase` read `/admın` as `/admin`;
//! - invisible format characters (soft hyphen, zero-width and bidirectional marks, variation
//!   selectors), which some servers strip.
//!
//! What is left compares without regard to case (Unicode upper- then lower-casing), since
//! case-insensitive backends serve `/ADMIN` and `/CAFÉ` as `/admin` and `/café`.

use percent_encoding::percent_decode_str;
use unicode_normalization::UnicodeNormalization;

/// The segments of a path in origin form, decoded and folded (empty ones dropped, as most
/// servers merge slashes), or `None` when it is ambiguous.
pub(crate) fn segments(path: &str) -> Option<Vec<String>> {
    // Origin form only: an absolute URI or `*` is no path to match (RFC 9112 §3.2).
    if !path.starts_with('/') {
        return None;
    }
    path.split('/').filter(|s| !s.is_empty()).map(segment).collect()
}

/// One segment, decoded and folded, or `None` when ambiguous.
pub(crate) fn segment(raw: &str) -> Option<String> {
    if !is_plain(raw) {
        return None;
    }
    let decoded = percent_decode_str(raw).decode_utf8().ok()?;
    if decoded.ends_with(['.', ' ']) {
        return None;
    }
    if decoded.is_ascii() {
        return Some(decoded.to_ascii_lowercase());
    }
    let stable = decoded.chars().eq(decoded.nfkc()) && !decoded.chars().any(|c| invisible(c) || folds_into_ascii(c));
    stable.then(|| fold(&decoded))
}

/// Whether a raw segment holds no `\`, `;`, `#`, `*` or control character, and percent-encodes
/// only what needs it (RFC 3986 §6.2.2.2) and no delimiter a hop could decode.
fn is_plain(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => match bytes.get(i + 1..i + 3).and_then(hex_byte) {
                Some(d) if !(d.is_ascii_alphanumeric() || b"-._~/\\;?#%*".contains(&d) || d.is_ascii_control()) => {
                    i += 3
                }
                _ => return false,
            },
            b'\\' | b';' | b'#' | b'*' => return false,
            b if b.is_ascii_control() => return false,
            _ => i += 1,
        }
    }
    true
}

fn hex_byte(hex: &[u8]) -> Option<u8> {
    let hex = std::str::from_utf8(hex).ok()?;
    hex.bytes().all(|h| h.is_ascii_hexdigit()).then(|| u8::from_str_radix(hex, 16).ok())?
}

/// A non-ASCII character whose upper or lower case holds an ASCII character.
fn folds_into_ascii(c: char) -> bool {
    !c.is_ascii() && c.to_uppercase().chain(c.to_lowercase()).any(|m| m.is_ascii())
}

/// Format characters and variation selectors: invisible, and stripped by some servers.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFFB}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}')
}

/// Case folding in both directions: `É` and `é` are one name.
fn fold(text: &str) -> String {
    text.chars().flat_map(char::to_uppercase).flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_delimiters_are_ambiguous() {
        for raw in ["strict%3F", "strict%3f", "strict%23", "a%2Fb", "a%5Cb", "a%3Bb", "a%25b", "a%2Ab", "a*b", "*"] {
            assert_eq!(segment(raw), None, "{raw}");
        }
    }

    #[test]
    fn look_alikes_of_ascii_names_are_ambiguous() {
        for raw in [
            "ａｄｍｉｎ",
            "%EF%BD%81dmin",
            "admın",
            "adm%C4%B1n",
            "ſecret",
            "\u{212A}eys",
            "pro\u{FB01}le",
            "adm\u{0130}n",
            "ad\u{00A0}min",
            "ad\u{00AD}min",
            "ad\u{200B}min",
            "cafe\u{0301}",
            "admin\u{FE0F}",
            "stra%C3%9Fe",
        ] {
            assert_eq!(segment(raw), None, "{raw}");
        }
    }

    #[test]
    fn plain_unicode_names_compare_without_case() {
        assert_eq!(segment("CAF%C3%89").as_deref(), Some("café"));
        assert_eq!(segment("ÜBERSICHT").as_deref(), Some("übersicht"));
        assert_eq!(segment("日本").as_deref(), Some("日本"));
        assert_eq!(segment("ADMIN").as_deref(), Some("admin"));
    }
}
