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
//!   `SS`, `ẞ` → `ß` → `SS`): Java's `equalsIgnoreCase`, .NET's `OrdinalIgnoreCase` and Python's
//!   `casefold` read `/admın` as `/admin`;
//! - any non-ASCII character that is not a letter or digit: symbols and punctuation (Windows'
//!   best-fit conversion reads the division slash `∕` as `/`), spaces and line separators that
//!   `trim()`s remove, C1 controls, and invisible format characters (soft hyphen, zero-width and
//!   bidirectional marks, variation selectors), which some servers strip;
//! - a `?` left in a path (adapters cut the query off a request target, so it was decoded from
//!   `%3F`), and a segment that starts or ends with white space.
//!
//! Letters with diacritics stay names of their own (`/ädmin` is not `/admin`): refusing them
//! would refuse every accented name in a path. A backend that compares paths accent-blind (an
//! accent-insensitive collation, Windows' best-fit conversion of `Ā` to `A`) needs its route
//! listed in each spelling, or a policy that denies by default.
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
    // Trimmed by Windows-style servers (`/admin.`) and by `trim()`s (` admin`).
    if decoded.ends_with('.') || decoded.starts_with(char::is_whitespace) || decoded.ends_with(char::is_whitespace) {
        return None;
    }
    if decoded.is_ascii() {
        return Some(decoded.to_ascii_lowercase());
    }
    let stable = decoded.chars().eq(decoded.nfkc()) && decoded.chars().all(|c| c.is_ascii() || is_plain_letter(c));
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
            // `?` and `#` end a path; left in one, they were decoded from `%3F` or `%23`.
            b'\\' | b';' | b'?' | b'#' | b'*' => return false,
            b if b.is_ascii_control() => return false,
            _ => i += 1,
        }
    }
    true
}

/// Two hex digits' byte (a percent-encoding's), `None` for anything else (`+1` too).
pub(crate) fn hex_byte(hex: &[u8]) -> Option<u8> {
    let hex = std::str::from_utf8(hex).ok()?;
    hex.bytes().all(|h| h.is_ascii_hexdigit()).then(|| u8::from_str_radix(hex, 16).ok())?
}

/// A non-ASCII character that is a letter or digit and reads as nothing else: not a symbol,
/// punctuation, space or control (a `∕` division slash is `/` to Windows' best-fit conversion,
/// U+2028 is trimmed by JavaScript), not invisible, and without a case mapping, in one step or
/// two (`ẞ` → `ß` → `SS`), that holds ASCII.
fn is_plain_letter(c: char) -> bool {
    let ascii_by_case = c
        .to_lowercase()
        .chain(c.to_uppercase())
        .chain(c.to_lowercase().flat_map(char::to_uppercase))
        .chain(c.to_uppercase().flat_map(char::to_lowercase))
        .any(|m| m.is_ascii());
    c.is_alphanumeric() && !invisible(c) && !ascii_by_case
}

/// Format characters, fillers and variation selectors: invisible, and stripped by some servers.
/// (Most are not letters either; the Hangul fillers are.)
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{0600}'..='\u{0605}' | '\u{061C}' | '\u{06DD}' | '\u{070F}'
        | '\u{0890}' | '\u{0891}' | '\u{08E2}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFFB}' | '\u{110BD}' | '\u{110CD}' | '\u{13430}'..='\u{1343F}'
        | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
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
            "STRA%E1%BA%9EE",
            "admin%C2%85",
            "admin%C2%80",
            "admin%E2%80%A8",
            "%E1%9A%80admin",
            "admin%D8%80",
            "%E2%88%95admin",
            "admin%E2%9D%A4",
            "%20admin",
            "admin%09",
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
        assert_eq!(segment("Jos%C3%A9").as_deref(), Some("josé"), "letters with accents are names of their own");
        assert_eq!(segment("%D0%9C%D0%BE%D1%81%D0%BA%D0%B2%D0%B0").as_deref(), Some("москва"));
        assert_eq!(segment("a%20b").as_deref(), Some("a b"));
    }
}
