//! For `check-config`: whether the IdP says it accepts the client authentication method
//! configured for an endpoint — the `token_endpoint_auth_methods_supported` and
//! `introspection_endpoint_auth_methods_supported` of its discovery document (RFC 8414 §2,
//! OpenID Connect Discovery §3), found by the endpoint it lists.

use std::fmt;
use std::time::Instant;

use serde_json::Value;

use crate::config::Client;
use crate::http::HttpClient;
use crate::jwt::discovery_urls;

/// What the IdP's discovery document says about the method configured for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthMethodCheck {
    /// The setting that chose the method, e.g. `TOKENBRIDGE_BACKEND_CLIENT_AUTH`.
    pub setting: &'static str,
    pub method: &'static str,
    /// The discovery document that lists the endpoint, if one was found.
    pub document: Option<String>,
    /// The methods it lists for the endpoint (RFC 8414's default, `client_secret_basic`, for a
    /// token endpoint whose list is omitted); `None` when it lists none for it.
    pub supported: Option<Vec<String>>,
}

impl AuthMethodCheck {
    /// The IdP's document lists methods for the endpoint, and the configured one is not among them.
    pub fn is_problem(&self) -> bool {
        self.supported.as_ref().is_some_and(|s| !s.iter().any(|m| m == self.method))
    }
}

impl fmt::Display for AuthMethodCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (setting, method) = (self.setting, self.method);
        match (&self.document, &self.supported) {
            (None, _) => write!(f, "{setting}={method}: no discovery document lists this endpoint; not checked"),
            (Some(doc), None) => write!(f, "{setting}={method}: {doc} lists no methods for this endpoint; not checked"),
            (Some(doc), Some(supported)) if self.is_problem() => write!(
                f,
                "{setting}={method}: {doc} does not list it for this endpoint (it lists: {})",
                supported.join(", ")
            ),
            (Some(doc), Some(_)) => write!(f, "{setting}={method}: listed by {doc}"),
        }
    }
}

/// Which endpoint of a discovery document a client is configured for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EndpointKind {
    Token,
    Introspection,
}

impl EndpointKind {
    fn members(self) -> (&'static str, &'static str) {
        match self {
            EndpointKind::Token => ("token_endpoint", "token_endpoint_auth_methods_supported"),
            EndpointKind::Introspection => ("introspection_endpoint", "introspection_endpoint_auth_methods_supported"),
        }
    }
}

/// The most discovery documents fetched for one endpoint.
const MOST_FETCHES: usize = 12;

/// Looks for a discovery document that lists `client`'s endpoint — at the configured issuers
/// first, then at each path prefix of the endpoint's URL — and reads its methods for it.
pub(crate) fn check(
    http: &HttpClient,
    client: &Client,
    kind: EndpointKind,
    issuers: &[&str],
    until: Instant,
) -> AuthMethodCheck {
    let (endpoint_member, methods_member) = kind.members();
    let mut check = AuthMethodCheck {
        setting: client.settings.auth,
        method: client.method.name(),
        document: None,
        supported: None,
    };
    let candidates = issuers.iter().map(|i| i.to_string()).chain(issuer_candidates(&client.endpoint));
    for url in candidates.flat_map(|issuer| discovery_urls(&issuer)).take(MOST_FETCHES) {
        if Instant::now() >= until {
            break;
        }
        let Ok(answer) = http.get(&url, Some(until)) else { continue };
        let Some(doc) = (answer.status == 200).then(|| crate::json::object(&answer.body)).flatten() else { continue };
        if doc.get(endpoint_member).and_then(Value::as_str) != Some(client.endpoint.as_str()) {
            continue;
        }
        check.supported = match doc.get(methods_member) {
            Some(Value::Array(methods)) => Some(methods.iter().filter_map(Value::as_str).map(str::to_string).collect()),
            // RFC 8414 §2: an omitted token endpoint list means client_secret_basic; an omitted
            // introspection list means "determined by other means".
            None if matches!(kind, EndpointKind::Token) => Some(vec!["client_secret_basic".to_string()]),
            _ => None,
        };
        check.document = Some(url);
        break;
    }
    check
}

/// The issuers an endpoint could belong to: its URL cut after each path segment, longest
/// first (`https://h/realms/x/protocol/openid-connect/token` → … `https://h/realms/x`, …,
/// `https://h`).
fn issuer_candidates(endpoint: &str) -> Vec<String> {
    let Some((scheme, rest)) = endpoint.split_once("://") else { return Vec::new() };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let mut segments: Vec<&str> = rest.split('/').collect();
    let mut out = Vec::new();
    while segments.len() > 1 {
        segments.pop();
        out.push(format!("{scheme}://{}", segments.join("/")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoints_candidate_issuers_are_its_url_prefixes_longest_first() {
        assert_eq!(
            issuer_candidates("https://sso.example/realms/x/protocol/openid-connect/token"),
            [
                "https://sso.example/realms/x/protocol/openid-connect",
                "https://sso.example/realms/x/protocol",
                "https://sso.example/realms/x",
                "https://sso.example/realms",
                "https://sso.example",
            ]
        );
        assert_eq!(issuer_candidates("http://127.0.0.1:80/token"), ["http://127.0.0.1:80"]);
        assert!(issuer_candidates("not a url").is_empty());
    }

    #[test]
    fn only_a_listed_method_outside_the_idps_list_is_a_problem() {
        let check = |supported: Option<Vec<&str>>| AuthMethodCheck {
            setting: "TOKENBRIDGE_BACKEND_CLIENT_AUTH",
            method: "private_key_jwt",
            document: Some("https://idp/.well-known/openid-configuration".into()),
            supported: supported.map(|s| s.into_iter().map(str::to_string).collect()),
        };
        assert!(check(Some(vec!["client_secret_basic"])).is_problem());
        assert!(!check(Some(vec!["client_secret_basic", "private_key_jwt"])).is_problem());
        assert!(!check(None).is_problem());
        assert_eq!(
            check(Some(vec!["client_secret_basic"])).to_string(),
            "TOKENBRIDGE_BACKEND_CLIENT_AUTH=private_key_jwt: https://idp/.well-known/openid-configuration does not \
             list it for this endpoint (it lists: client_secret_basic)"
        );
    }
}
