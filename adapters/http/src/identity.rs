//! The identity headers of a forward-auth allow: which headers tokenbridge sets for the gateway
//! to copy upstream, and what each holds. `TOKENBRIDGE_HTTP_IDENTITY_HEADERS` names them:
//!
//! ```
//! use tokenbridge_http::identity::IdentityHeaders;
//!
//! let headers = IdentityHeaders::parse(Some("X-User=principal X-User-Email=claim:email"), &["email".into()]).unwrap();
//! assert_eq!(headers.names().collect::<Vec<_>>(), ["X-User", "X-User-Email"]);
//! ```
//!
//! Values come from the IdP, so they are made header-safe by construction: every byte that is
//! not visible ASCII, and `%` itself, is percent-encoded (UTF-8), as are spaces at either end
//! (a gateway would trim them). A value is therefore never split, folded or trimmed on the way,
//! and a backend that percent-decodes it reads exactly what the IdP said.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use tokenbridge_core::Grant;

/// Where an identity header's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The caller: `sub`, else `client_id`.
    Principal,
    /// The token's scopes, space-separated.
    Scope,
    /// The token's client, when it names one.
    ClientId,
    /// A claim of `TOKENBRIDGE_CONTEXT_CLAIMS`, as the context holds it.
    Claim(String),
}

/// The configured identity headers, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaders(Vec<(String, Source)>);

/// What is wrong with `TOKENBRIDGE_HTTP_IDENTITY_HEADERS`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TOKENBRIDGE_HTTP_IDENTITY_HEADERS: {0}")]
pub struct BadIdentityHeaders(String);

/// The setting when it is not set.
pub const DEFAULT: &str = "X-Auth-Principal=principal X-Auth-Scopes=scope X-Auth-Client-Id=client_id";

/// Headers a gateway, a proxy or the backend reads for something else: set by tokenbridge as
/// an identity, they would let an IdP's claim choose a credential, a route or a framing.
const RESERVED: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "proxy-authenticate",
    "www-authenticate",
    "authentication-info",
    "cookie",
    "set-cookie",
    "host",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "transfer-encoding",
    "content-length",
    "content-type",
    "content-encoding",
    "location",
    "retry-after",
    "forwarded",
    "x-real-ip",
    "dpop",
];

/// Prefixes of the same kind: the route and client-address headers gateways write.
const RESERVED_PREFIXES: &[&str] = &["x-forwarded-", "x-original-", "x-envoy-", "x-amzn-", "x-ms-"];

impl IdentityHeaders {
    /// Reads the setting (`None`: not set, the default; `none`: no identity headers), as
    /// `Name=source` pairs separated by spaces; a `claim:<name>` source must be one of the
    /// context claims.
    pub fn parse(setting: Option<&str>, context_claims: &[String]) -> Result<Self, BadIdentityHeaders> {
        let text = setting.map(str::trim).filter(|s| !s.is_empty()).unwrap_or(DEFAULT);
        if text == "none" {
            return Ok(IdentityHeaders(Vec::new()));
        }
        let mut headers: Vec<(String, Source)> = Vec::new();
        for pair in text.split_ascii_whitespace() {
            let Some((name, source)) = pair.split_once('=') else {
                return Err(BadIdentityHeaders(format!("{pair:?} is not Name=source")));
            };
            check_name(name)?;
            if headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                return Err(BadIdentityHeaders(format!("{name} is named twice")));
            }
            headers.push((name.to_string(), source_of(source, context_claims)?));
        }
        Ok(IdentityHeaders(headers))
    }

    /// The header names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }

    /// The headers for an allow: one per configured header whose source has a value. The
    /// shipped recipes clear the others, so no client-sent copy survives.
    pub fn render(&self, grant: &Grant) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter_map(|(name, source)| {
                let value = match source {
                    Source::Principal => grant.principal.clone(),
                    Source::Scope => grant.scopes.join(" "),
                    Source::ClientId => grant.client_id.clone()?,
                    Source::Claim(claim) => grant.context.get(claim)?.clone(),
                };
                Some((name.clone(), header_value(&value)))
            })
            .collect()
    }
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        IdentityHeaders::parse(None, &[]).unwrap_or(IdentityHeaders(Vec::new()))
    }
}

/// A header name of letters, digits and `-`, not one a gateway or backend reads for something
/// else. No `_`: nginx drops such names, and CGI-style servers read `X_User` as `X-User`.
fn check_name(name: &str) -> Result<(), BadIdentityHeaders> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(BadIdentityHeaders(format!("{name:?} is not a header name (letters, digits and -)")));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED.contains(&lower.as_str()) || RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p)) {
        return Err(BadIdentityHeaders(format!("{name} is a header gateways or backends read for something else")));
    }
    Ok(())
}

fn source_of(source: &str, context_claims: &[String]) -> Result<Source, BadIdentityHeaders> {
    Ok(match source {
        "principal" => Source::Principal,
        "scope" => Source::Scope,
        "client_id" => Source::ClientId,
        _ => match source.strip_prefix("claim:") {
            Some(claim) if context_claims.iter().any(|c| c == claim) => Source::Claim(claim.to_string()),
            Some(claim) => {
                return Err(BadIdentityHeaders(format!(
                    "claim:{claim} is not one of TOKENBRIDGE_CONTEXT_CLAIMS (list it there too)"
                )));
            }
            None => {
                return Err(BadIdentityHeaders(format!(
                    "unknown source {source:?} (principal, scope, client_id or claim:<name>)"
                )));
            }
        },
    })
}

/// Bytes encoded in a value: controls and non-ASCII (with `CONTROLS` and UTF-8 encoding), and
/// `%`, so that a decoded value is the original one.
const ENCODED: &AsciiSet = &CONTROLS.add(b'%');

/// A value safe in any header field: visible ASCII and inner spaces as they are, the rest
/// percent-encoded.
pub fn header_value(value: &str) -> String {
    let inner = value.trim_matches(' ');
    let leading = value.len() - value.trim_start_matches(' ').len();
    let trailing = if inner.is_empty() { 0 } else { value.len() - value.trim_end_matches(' ').len() };
    let mut out = "%20".repeat(leading);
    out.extend(utf8_percent_encode(inner, ENCODED));
    out.push_str(&"%20".repeat(trailing));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn grant() -> Grant {
        let mut context = BTreeMap::new();
        context.insert("back_end_token".to_string(), "Bearer backend-xyz".to_string());
        context.insert("email".to_string(), "alice@example.com".to_string());
        Grant {
            principal: "alice".into(),
            scopes: vec!["a".into(), "b".into()],
            client_id: None,
            expires_at: 1_800_000_000,
            context,
        }
    }

    #[test]
    fn the_default_is_principal_scopes_and_client() {
        let headers = IdentityHeaders::default();
        assert_eq!(headers.names().collect::<Vec<_>>(), ["X-Auth-Principal", "X-Auth-Scopes", "X-Auth-Client-Id"]);
        let rendered = headers.render(&grant());
        assert_eq!(rendered, [("X-Auth-Principal".into(), "alice".into()), ("X-Auth-Scopes".into(), "a b".into())]);
    }

    #[test]
    fn names_and_claims_are_configurable() {
        let headers = IdentityHeaders::parse(Some("X-User=principal X-Email=claim:email"), &["email".into()]).unwrap();
        assert_eq!(
            headers.render(&grant()),
            [("X-User".into(), "alice".into()), ("X-Email".into(), "alice@example.com".into())]
        );
        assert!(IdentityHeaders::parse(Some("none"), &[]).unwrap().render(&grant()).is_empty());
    }

    #[test]
    fn a_backend_token_is_never_an_identity_header() {
        let err = IdentityHeaders::parse(Some("X-Token=claim:back_end_token"), &["email".into()]).unwrap_err();
        assert!(err.to_string().contains("not one of TOKENBRIDGE_CONTEXT_CLAIMS"), "{err}");
    }

    #[test]
    fn reserved_and_malformed_names_are_refused() {
        for setting in [
            "Authorization=principal",
            "authorization=principal",
            "Host=principal",
            "Content-Length=scope",
            "X-Forwarded-User=principal",
            "X-Original-URI=principal",
            "X_Auth_User=principal",
            "X-User:=principal",
            "=principal",
            "X-User",
            "X-User=sub",
            "X-User=principal x-user=scope",
            "X-User=claim:email",
            "Set-Cookie=principal",
            "DPoP=principal",
        ] {
            assert!(IdentityHeaders::parse(Some(setting), &[]).is_err(), "{setting} accepted");
        }
    }

    #[test]
    fn values_are_header_safe_by_construction_and_decode_to_the_original() {
        for (raw, sent) in [
            ("alice", "alice"),
            ("eve\r\nX-Admin: 1", "eve%0D%0AX-Admin: 1"),
            ("nul\0", "nul%00"),
            ("Zoë", "Zo%C3%AB"),
            ("100%", "100%25"),
            (" padded  ", "%20padded%20%20"),
            ("tab\there", "tab%09here"),
            ("   ", "%20%20%20"),
            ("a b", "a b"),
        ] {
            let value = header_value(raw);
            assert_eq!(value, sent, "{raw:?}");
            assert!(value.bytes().all(|b| (b' '..=b'~').contains(&b)), "{value:?}");
            assert!(!value.starts_with(' ') && !value.ends_with(' '));
            let decoded = percent_encoding::percent_decode_str(&value).decode_utf8().unwrap();
            assert_eq!(decoded, raw);
        }
    }
}
