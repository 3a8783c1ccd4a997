//! The grant tokenbridge asks IdP B for: a token of its own (client_credentials, RFC 6749 §4.4),
//! or one that carries the caller on — RFC 8693 token exchange, or the RFC 7523 jwt-bearer grant
//! as Microsoft Entra's on-behalf-of flow uses it.

/// The backend grant, as configured (`TOKENBRIDGE_BACKEND_GRANT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BackendGrant {
    /// One token for every caller: tokenbridge's own identity.
    ClientCredentials,
    /// RFC 8693: the caller's token is the `subject_token`.
    TokenExchange {
        subject_token_type: TokenType,
        /// Sent when configured; the answer's `issued_token_type` must then be this one.
        requested_token_type: Option<TokenType>,
        /// Send tokenbridge's own client_credentials token as the `actor_token` (RFC 8693 §1.1
        /// delegation: the backend token then names tokenbridge as the party acting for the caller).
        actor: bool,
    },
    /// RFC 7523 §2.1: the caller's token is the `assertion`; Entra's on-behalf-of adds
    /// `requested_token_use=on_behalf_of`.
    JwtBearer { requested_token_use: Option<String> },
}

/// The RFC 8693 §3 token types tokenbridge sends and accepts: both are forwarded as `Bearer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenType {
    AccessToken,
    Jwt,
}

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

impl TokenType {
    pub(crate) fn urn(self) -> &'static str {
        match self {
            TokenType::AccessToken => "urn:ietf:params:oauth:token-type:access_token",
            TokenType::Jwt => "urn:ietf:params:oauth:token-type:jwt",
        }
    }

    /// `access_token` or `jwt`, by short name or by URN, as a setting names it.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::from_urn(name).or_else(|| Self::from_urn(&format!("urn:ietf:params:oauth:token-type:{name}")))
    }

    /// The type an answer names: by URN only, as RFC 8693 §3 writes them.
    pub(crate) fn from_urn(urn: &str) -> Option<Self> {
        [TokenType::AccessToken, TokenType::Jwt].into_iter().find(|t| t.urn() == urn)
    }
}

impl BackendGrant {
    /// The setting's value for it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            BackendGrant::ClientCredentials => "client_credentials",
            BackendGrant::TokenExchange { .. } => "token_exchange",
            BackendGrant::JwtBearer { .. } => "jwt_bearer",
        }
    }

    /// Whether each caller gets a token of its own (and so a cache entry of its own).
    pub(crate) fn per_caller(&self) -> bool {
        !matches!(self, BackendGrant::ClientCredentials)
    }

    /// The grant's form without the caller's token: `grant_type` first, then this grant's own
    /// parameters, then `extra` (`scope`, `audience`, `resource`).
    pub(crate) fn form(&self, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        let mut form = match self {
            BackendGrant::ClientCredentials => vec![("grant_type", "client_credentials".to_string())],
            BackendGrant::TokenExchange { subject_token_type, requested_token_type, .. } => {
                let mut form = vec![
                    ("grant_type", TOKEN_EXCHANGE.to_string()),
                    ("subject_token_type", subject_token_type.urn().to_string()),
                ];
                form.extend(requested_token_type.map(|t| ("requested_token_type", t.urn().to_string())));
                form
            }
            BackendGrant::JwtBearer { requested_token_use } => {
                let mut form = vec![("grant_type", JWT_BEARER.to_string())];
                form.extend(requested_token_use.clone().map(|u| ("requested_token_use", u)));
                form
            }
        };
        form.extend(extra.iter().cloned());
        form
    }

    /// Whether an exchange sends tokenbridge's own token as the actor.
    pub(crate) fn wants_actor(&self) -> bool {
        matches!(self, BackendGrant::TokenExchange { actor: true, .. })
    }

    /// The form field that carries the caller's token, for the grants that carry it.
    pub(crate) fn caller_field(&self) -> Option<&'static str> {
        match self {
            BackendGrant::ClientCredentials => None,
            BackendGrant::TokenExchange { .. } => Some("subject_token"),
            BackendGrant::JwtBearer { .. } => Some("assertion"),
        }
    }

    /// Whether an answer's `issued_token_type` (RFC 8693 §2.2.1, required there) is one this
    /// grant can forward as `Bearer`. A jwt-bearer answer need not name one (Entra's does not),
    /// but one that names another type is not forwarded; client_credentials defines none.
    pub(crate) fn accepts_issued_type(&self, issued: Option<&str>) -> bool {
        let issued = issued.map(TokenType::from_urn);
        match self {
            BackendGrant::TokenExchange { requested_token_type, .. } => match (issued, requested_token_type) {
                (Some(Some(issued)), Some(requested)) => issued == *requested,
                (Some(Some(_)), None) => true,
                _ => false,
            },
            BackendGrant::JwtBearer { .. } => !matches!(issued, Some(None)),
            BackendGrant::ClientCredentials => true,
        }
    }
}

/// Whether IdP B's error `code` refuses the caller's token itself, rather than tokenbridge's
/// request or client: the caller is then denied, not told to retry. RFC 7523 §3.1 names
/// `invalid_grant` for a bad assertion, and Okta and Entra answer it for a refused subject token
/// too; Keycloak answers `invalid_token`; Entra's on-behalf-of answers `interaction_required`
/// when the user must sign in again. RFC 8693 §2.2.2 gives `invalid_request` to a refused subject
/// token, but IdPs also give it to a client not allowed the grant (oidc-provider) or an
/// unsupported token type: tokenbridge's misconfiguration, which must be Unavailable rather than
/// a deny of every caller, so it is not read as a refusal.
pub(crate) fn refuses_caller(code: &str) -> bool {
    matches!(code, "invalid_grant" | "invalid_token" | "interaction_required" | "consent_required" | "login_required")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(requested: Option<TokenType>) -> BackendGrant {
        BackendGrant::TokenExchange {
            subject_token_type: TokenType::AccessToken,
            requested_token_type: requested,
            actor: false,
        }
    }

    #[test]
    fn token_types_are_read_by_short_name_or_urn_and_nothing_else() {
        assert_eq!(TokenType::parse("access_token"), Some(TokenType::AccessToken));
        assert_eq!(TokenType::parse("urn:ietf:params:oauth:token-type:jwt"), Some(TokenType::Jwt));
        for other in ["id_token", "refresh_token", "urn:ietf:params:oauth:token-type:id_token", "JWT", "", "jwt "] {
            assert_eq!(TokenType::parse(other), None, "{other:?}");
        }
    }

    #[test]
    fn a_token_exchange_form_names_the_grant_the_subject_type_and_a_requested_type_only_when_set() {
        let extra = [("audience", "orders".to_string())];
        assert_eq!(
            exchange(None).form(&extra),
            vec![
                ("grant_type", TOKEN_EXCHANGE.to_string()),
                ("subject_token_type", TokenType::AccessToken.urn().to_string()),
                ("audience", "orders".to_string()),
            ]
        );
        let form = exchange(Some(TokenType::Jwt)).form(&[]);
        assert!(form.contains(&("requested_token_type", TokenType::Jwt.urn().to_string())));
        assert_eq!(exchange(None).caller_field(), Some("subject_token"));
    }

    #[test]
    fn an_on_behalf_of_form_carries_the_requested_token_use_and_the_caller_as_assertion() {
        let grant = BackendGrant::JwtBearer { requested_token_use: Some("on_behalf_of".into()) };
        assert_eq!(
            grant.form(&[("scope", "api://orders/.default".to_string())]),
            vec![
                ("grant_type", JWT_BEARER.to_string()),
                ("requested_token_use", "on_behalf_of".to_string()),
                ("scope", "api://orders/.default".to_string()),
            ]
        );
        assert_eq!(grant.caller_field(), Some("assertion"));
        assert_eq!(BackendGrant::ClientCredentials.caller_field(), None);
    }

    #[test]
    fn an_exchange_answer_must_name_a_bearer_type_and_the_requested_one_when_one_was_asked_for() {
        let access = Some(TokenType::AccessToken.urn());
        let jwt = Some(TokenType::Jwt.urn());
        assert!(exchange(None).accepts_issued_type(access));
        assert!(exchange(None).accepts_issued_type(jwt));
        assert!(!exchange(None).accepts_issued_type(None));
        assert!(!exchange(None).accepts_issued_type(Some("urn:ietf:params:oauth:token-type:id_token")));
        assert!(!exchange(None).accepts_issued_type(Some("urn:ietf:params:oauth:token-type:refresh_token")));
        assert!(exchange(Some(TokenType::Jwt)).accepts_issued_type(jwt));
        assert!(!exchange(Some(TokenType::Jwt)).accepts_issued_type(access));
        assert!(!exchange(None).accepts_issued_type(Some("access_token")), "not a URN");
        let obo = BackendGrant::JwtBearer { requested_token_use: None };
        assert!(obo.accepts_issued_type(None));
        assert!(obo.accepts_issued_type(access));
        assert!(!obo.accepts_issued_type(Some("urn:ietf:params:oauth:token-type:id_token")));
    }

    #[test]
    fn only_errors_about_the_callers_token_refuse_the_caller() {
        for code in ["invalid_grant", "invalid_token", "interaction_required", "consent_required"] {
            assert!(refuses_caller(code), "{code}");
        }
        for code in [
            "invalid_request",
            "invalid_client",
            "unauthorized_client",
            "unsupported_grant_type",
            "invalid_scope",
            "invalid_target",
            "server_error",
            "temporarily_unavailable",
            "INVALID_GRANT",
        ] {
            assert!(!refuses_caller(code), "{code}");
        }
    }
}
