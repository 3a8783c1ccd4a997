//! The settings table: every variable the core reads, its seed alias, default and meaning.
//! `check-config` and the configuration reference (docs/configuration.md, checked by a test)
//! follow it.

/// One setting: its variable, the seed's alias if it has one, and its meaning.
pub(crate) struct Setting {
    pub(crate) name: &'static str,
    pub(crate) alias: Option<&'static str>,
    pub(crate) default: Option<&'static str>,
    // The table documents each setting where it is read; docs/configuration.md says more, and
    // nothing prints this yet.
    #[allow(dead_code)]
    pub(crate) meaning: &'static str,
}

const fn s(
    name: &'static str,
    alias: Option<&'static str>,
    default: Option<&'static str>,
    meaning: &'static str,
) -> Setting {
    Setting { name, alias, default, meaning }
}

/// The settings of one client of ours: at IdP A (introspection) or at IdP B (token endpoint).
pub(crate) struct ClientSettings {
    pub(crate) url: &'static str,
    pub(crate) id: &'static str,
    pub(crate) secret: &'static str,
    pub(crate) auth: &'static str,
    pub(crate) key: &'static str,
    pub(crate) key_id: &'static str,
    pub(crate) alg: &'static str,
    pub(crate) audience: &'static str,
    pub(crate) cert_sha256: &'static str,
    pub(crate) cert: &'static str,
}

pub(crate) const INTROSPECTION_CLIENT: ClientSettings = ClientSettings {
    url: "TOKENBRIDGE_INTROSPECTION_URL",
    id: "TOKENBRIDGE_INTROSPECTION_CLIENT_ID",
    secret: "TOKENBRIDGE_INTROSPECTION_CLIENT_SECRET",
    auth: "TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH",
    key: "TOKENBRIDGE_INTROSPECTION_CLIENT_KEY",
    key_id: "TOKENBRIDGE_INTROSPECTION_CLIENT_KEY_ID",
    alg: "TOKENBRIDGE_INTROSPECTION_CLIENT_ASSERTION_ALG",
    audience: "TOKENBRIDGE_INTROSPECTION_CLIENT_ASSERTION_AUDIENCE",
    cert_sha256: "TOKENBRIDGE_INTROSPECTION_CLIENT_CERT_SHA256",
    cert: "TOKENBRIDGE_INTROSPECTION_CLIENT_CERT",
};

pub(crate) const BACKEND_CLIENT: ClientSettings = ClientSettings {
    url: "TOKENBRIDGE_BACKEND_TOKEN_URL",
    id: "TOKENBRIDGE_BACKEND_CLIENT_ID",
    secret: "TOKENBRIDGE_BACKEND_CLIENT_SECRET",
    auth: "TOKENBRIDGE_BACKEND_CLIENT_AUTH",
    key: "TOKENBRIDGE_BACKEND_CLIENT_KEY",
    key_id: "TOKENBRIDGE_BACKEND_CLIENT_KEY_ID",
    alg: "TOKENBRIDGE_BACKEND_CLIENT_ASSERTION_ALG",
    audience: "TOKENBRIDGE_BACKEND_CLIENT_ASSERTION_AUDIENCE",
    cert_sha256: "TOKENBRIDGE_BACKEND_CLIENT_CERT_SHA256",
    cert: "TOKENBRIDGE_BACKEND_CLIENT_CERT",
};

/// Our client at the token endpoint where a JWKS bearer token is got (OCI IAM identity domains),
/// when it is not the introspection or backend client.
pub(crate) const JWKS_CLIENT: ClientSettings = ClientSettings {
    url: "TOKENBRIDGE_JWKS_TOKEN_URL",
    id: "TOKENBRIDGE_JWKS_CLIENT_ID",
    secret: "TOKENBRIDGE_JWKS_CLIENT_SECRET",
    auth: "TOKENBRIDGE_JWKS_CLIENT_AUTH",
    key: "TOKENBRIDGE_JWKS_CLIENT_KEY",
    key_id: "TOKENBRIDGE_JWKS_CLIENT_KEY_ID",
    alg: "TOKENBRIDGE_JWKS_CLIENT_ASSERTION_ALG",
    audience: "TOKENBRIDGE_JWKS_CLIENT_ASSERTION_AUDIENCE",
    cert_sha256: "TOKENBRIDGE_JWKS_CLIENT_CERT_SHA256",
    cert: "TOKENBRIDGE_JWKS_CLIENT_CERT",
};

/// Every setting the core reads; docs/configuration.md mirrors this list (a test checks it).
pub(crate) const SETTINGS: &[Setting] = &[
    s(
        "TOKENBRIDGE_INTROSPECTION_URL",
        Some("idcs_introspection_endpoint"),
        None,
        "RFC 7662 introspection endpoint of IdP A",
    ),
    s("TOKENBRIDGE_INTROSPECTION_CLIENT_ID", Some("idcs_app_client_id"), None, "our client id at IdP A"),
    s(
        "TOKENBRIDGE_INTROSPECTION_CLIENT_SECRET",
        Some("idcs_app_client_secret_ocid"),
        None,
        "our client secret at IdP A (literal or reference)",
    ),
    s(
        "TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH",
        None,
        Some("client_secret_basic"),
        "how we authenticate at IdP A: client_secret_basic, client_secret_post, private_key_jwt, tls_client_auth or self_signed_tls_client_auth",
    ),
    s(
        "TOKENBRIDGE_INTROSPECTION_CLIENT_KEY",
        None,
        None,
        "our PEM private key at IdP A for private_key_jwt and the TLS methods (literal or reference)",
    ),
    s(
        "TOKENBRIDGE_INTROSPECTION_CLIENT_CERT",
        None,
        None,
        "our PEM client certificate chain at IdP A for the TLS methods (literal or reference)",
    ),
    s("TOKENBRIDGE_INTROSPECTION_CLIENT_KEY_ID", None, None, "kid of the client assertions at IdP A"),
    s(
        "TOKENBRIDGE_INTROSPECTION_CLIENT_ASSERTION_ALG",
        None,
        None,
        "RS256, PS256 or ES256 (default: RS256 for an RSA key, ES256 for a P-256 key)",
    ),
    s(
        "TOKENBRIDGE_INTROSPECTION_CLIENT_ASSERTION_AUDIENCE",
        None,
        None,
        "aud of the client assertions at IdP A (default: the endpoint's URL)",
    ),
    s(
        "TOKENBRIDGE_INTROSPECTION_CLIENT_CERT_SHA256",
        None,
        None,
        "x5t#S256 header of the client assertions at IdP A: base64url SHA-256 of the certificate",
    ),
    s("TOKENBRIDGE_REQUIRED_SCOPES", None, Some(""), "space-separated scopes every caller token must carry"),
    s(
        "TOKENBRIDGE_INTROSPECTION_TOKEN_TYPE",
        None,
        None,
        "token_type an active introspection answer must carry (e.g. Bearer), to refuse refresh tokens",
    ),
    s("TOKENBRIDGE_MODE", None, None, "introspection, jwt or auto (default: from what is configured)"),
    s("TOKENBRIDGE_ISSUER", None, None, "issuer whose JWT access tokens are verified locally"),
    s("TOKENBRIDGE_AUDIENCE", None, None, "space-separated audiences its tokens must have (any of them)"),
    s("TOKENBRIDGE_AUDIENCE_CHECK", None, Some("on"), "off to accept JWTs without checking the audience"),
    s("TOKENBRIDGE_JWKS_URL", None, None, "its JWKS; discovered from the issuer when unset"),
    s("TOKENBRIDGE_JWT_TYP", None, None, "at+jwt to require RFC 9068 access tokens"),
    s(
        "TOKENBRIDGE_ACCEPTED_CLIENT_IDS",
        None,
        None,
        "Cognito: app clients (client_id) whose access tokens are accepted",
    ),
    s("TOKENBRIDGE_TENANTS", None, None, "tenants an issuer written with {tenantid} accepts (Entra multi-tenant)"),
    s("TOKENBRIDGE_ISSUERS", None, None, "several issuers, as a JSON array (docs/jwt-and-policy.md)"),
    s("TOKENBRIDGE_JWKS_MAX_AGE_SECONDS", None, Some("300"), "JWKS lifetime when it sends no Cache-Control max-age"),
    s(
        "TOKENBRIDGE_JWKS_TOKEN_URL",
        None,
        None,
        "token endpoint of a bearer token (client_credentials) for the JWKS at its origin (OCI IAM identity domains)",
    ),
    s("TOKENBRIDGE_JWKS_SCOPE", None, None, "scope of that grant (identity domains: urn:opc:idm:__myscopes__)"),
    s(
        "TOKENBRIDGE_JWKS_CLIENT_ID",
        None,
        None,
        "our client id there (default: the introspection or backend client at that origin)",
    ),
    s("TOKENBRIDGE_JWKS_CLIENT_SECRET", None, None, "our client secret there (literal or reference)"),
    s(
        "TOKENBRIDGE_JWKS_CLIENT_AUTH",
        None,
        None,
        "how we authenticate there, as TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH",
    ),
    s("TOKENBRIDGE_JWKS_CLIENT_KEY", None, None, "our PEM private key there (literal or reference)"),
    s("TOKENBRIDGE_JWKS_CLIENT_CERT", None, None, "our PEM client certificate chain there (literal or reference)"),
    s("TOKENBRIDGE_JWKS_CLIENT_KEY_ID", None, None, "kid of the client assertions there"),
    s("TOKENBRIDGE_JWKS_CLIENT_ASSERTION_ALG", None, None, "RS256, PS256 or ES256 (default: from the key)"),
    s(
        "TOKENBRIDGE_JWKS_CLIENT_ASSERTION_AUDIENCE",
        None,
        None,
        "aud of the client assertions there (default: the endpoint's URL)",
    ),
    s("TOKENBRIDGE_JWKS_CLIENT_CERT_SHA256", None, None, "x5t#S256 header of the client assertions there"),
    s("TOKENBRIDGE_POLICY", None, None, "per-route policy, JSON (docs/jwt-and-policy.md)"),
    s("TOKENBRIDGE_POLICY_FILE", None, None, "per-route policy, path of a JSON file"),
    s("TOKENBRIDGE_CONTEXT_CLAIMS", None, None, "space-separated claims forwarded as context values"),
    s("TOKENBRIDGE_DPOP", None, Some("off"), "DPoP-bound tokens (RFC 9449): off, allowed or required"),
    s("TOKENBRIDGE_DPOP_ORIGINS", None, None, "where clients call the API; a DPoP proof's htu names one"),
    s("TOKENBRIDGE_DPOP_MAX_AGE_SECONDS", None, Some("60"), "how old a DPoP proof's iat may be"),
    s("TOKENBRIDGE_DPOP_REPLAY_CAPACITY", None, Some("100000"), "used DPoP proofs remembered at most"),
    s(
        "TOKENBRIDGE_SHARED_CACHE_URL",
        None,
        None,
        "redis:// or rediss:// URL of the shared cache tier; unset, it is off",
    ),
    s(
        "TOKENBRIDGE_SHARED_CACHE_KEY",
        None,
        None,
        "secret of 32 characters or more that seals and names shared cache entries",
    ),
    s("TOKENBRIDGE_SHARED_CACHE_PASSWORD", None, None, "secret: the Redis password (AUTH or ACL user's)"),
    s("TOKENBRIDGE_SHARED_CACHE_TIMEOUT_MS", None, Some("50"), "longest one shared cache call may take"),
    s("TOKENBRIDGE_SHARED_CACHE_PREFIX", None, Some("tokenbridge"), "first part of every shared cache key"),
    s("TOKENBRIDGE_BACKEND_TOKEN_URL", Some("back_end_token_endpoint"), None, "token endpoint of IdP B"),
    s("TOKENBRIDGE_BACKEND_CLIENT_ID", Some("back_end_app_client_id"), None, "our client id at IdP B"),
    s(
        "TOKENBRIDGE_BACKEND_CLIENT_SECRET",
        Some("back_end_client_secret_ocid"),
        None,
        "our client secret at IdP B (literal or reference)",
    ),
    s(
        "TOKENBRIDGE_BACKEND_CLIENT_AUTH",
        None,
        Some("client_secret_basic"),
        "how we authenticate at IdP B: client_secret_basic, client_secret_post, private_key_jwt, tls_client_auth or self_signed_tls_client_auth",
    ),
    s(
        "TOKENBRIDGE_BACKEND_CLIENT_KEY",
        None,
        None,
        "our PEM private key at IdP B for private_key_jwt and the TLS methods (literal or reference)",
    ),
    s(
        "TOKENBRIDGE_BACKEND_CLIENT_CERT",
        None,
        None,
        "our PEM client certificate chain at IdP B for the TLS methods (literal or reference)",
    ),
    s("TOKENBRIDGE_BACKEND_CLIENT_KEY_ID", None, None, "kid of the client assertions at IdP B"),
    s(
        "TOKENBRIDGE_BACKEND_CLIENT_ASSERTION_ALG",
        None,
        None,
        "RS256, PS256 or ES256 (default: RS256 for an RSA key, ES256 for a P-256 key)",
    ),
    s(
        "TOKENBRIDGE_BACKEND_CLIENT_ASSERTION_AUDIENCE",
        None,
        None,
        "aud of the client assertions at IdP B (default: the endpoint's URL)",
    ),
    s(
        "TOKENBRIDGE_BACKEND_CLIENT_CERT_SHA256",
        None,
        None,
        "x5t#S256 header of the client assertions at IdP B: base64url SHA-256 of the certificate",
    ),
    s(
        "TOKENBRIDGE_BACKEND_GRANT",
        None,
        Some("client_credentials"),
        "the grant asked of IdP B: client_credentials, token_exchange (RFC 8693) or jwt_bearer (RFC 7523, Entra on-behalf-of)",
    ),
    s(
        "TOKENBRIDGE_BACKEND_SUBJECT_TOKEN_TYPE",
        None,
        None,
        "token_exchange: the caller token's `subject_token_type`, access_token (the default) or jwt",
    ),
    s(
        "TOKENBRIDGE_BACKEND_REQUESTED_TOKEN_TYPE",
        None,
        None,
        "token_exchange: `requested_token_type`, access_token or jwt; the answer must issue that type",
    ),
    s(
        "TOKENBRIDGE_BACKEND_ACTOR_TOKEN",
        None,
        None,
        "token_exchange: client_credentials sends tokenbridge's own token as the `actor_token` (delegation)",
    ),
    s(
        "TOKENBRIDGE_BACKEND_REQUESTED_TOKEN_USE",
        None,
        None,
        "jwt_bearer: `requested_token_use` (Entra on-behalf-of: on_behalf_of)",
    ),
    s("TOKENBRIDGE_BACKEND_SCOPE", None, None, "optional `scope` of the backend grant"),
    s("TOKENBRIDGE_BACKEND_AUDIENCE", None, None, "optional `audience` of the backend grant"),
    s("TOKENBRIDGE_BACKEND_RESOURCE", None, None, "optional `resource` (RFC 8707) of the backend grant"),
    s("TOKENBRIDGE_CONNECT_TIMEOUT_MS", None, Some("2000"), "connect timeout of one IdP call"),
    s("TOKENBRIDGE_TIMEOUT_MS", None, Some("5000"), "total timeout of one IdP call (clamped to the platform deadline)"),
    s("TOKENBRIDGE_MAX_ANSWER_BYTES", None, Some("65536"), "largest IdP answer read"),
    s("TOKENBRIDGE_CA_BUNDLE", None, None, "PEM file of root certificates to trust instead of the built-in ones"),
    s(
        "TOKENBRIDGE_CACHE_STALE_IF_ERROR_SECONDS",
        None,
        Some("0"),
        "serve a validation result this much longer while IdP A fails (never past exp)",
    ),
    s("TOKENBRIDGE_CLOCK_LEEWAY_SECONDS", None, Some("60"), "clock tolerance for exp, nbf and iat (0-300)"),
    s("TOKENBRIDGE_CACHE_MAX_TTL_SECONDS", None, Some("300"), "longest a validation result is cached (never past exp)"),
    s("TOKENBRIDGE_CACHE_INACTIVE_TTL_SECONDS", None, Some("10"), "how long an inactive answer is cached"),
    s("TOKENBRIDGE_CACHE_CAPACITY", None, Some("10000"), "most validation results kept"),
    s(
        "TOKENBRIDGE_BACKEND_REFRESH_SECONDS",
        None,
        Some("30"),
        "refresh the backend token when less than max(this, 10% of its life) is left",
    ),
    s(
        "TOKENBRIDGE_BACKEND_MIN_REMAINING_SECONDS",
        None,
        Some("60"),
        "hand out a backend token only while this much of its life is left (at most half its life)",
    ),
    s(
        "TOKENBRIDGE_BACKEND_DEFAULT_TTL_SECONDS",
        None,
        Some("300"),
        "lifetime assumed when the token response has no expires_in",
    ),
    s(
        "TOKENBRIDGE_SECRET_REFRESH_SECONDS",
        None,
        Some("30"),
        "fewest seconds between refetches of a secret after invalid_client",
    ),
    s("TOKENBRIDGE_CONTEXT_KEY", None, Some("back_end_token"), "context key carrying \"Bearer <backend token>\""),
    s("TOKENBRIDGE_REALM", None, Some("tokenbridge"), "realm of WWW-Authenticate challenges"),
    s("TOKENBRIDGE_TOKEN_ARGUMENT", None, Some("token"), "OCI USER_DEFINED argument that carries the credential"),
    s("TOKENBRIDGE_LOG_LEVEL", None, Some("info"), "least severe log line written: error, warn, info or debug"),
    s(
        "TOKENBRIDGE_DECISION_LOG",
        None,
        Some("denials"),
        "decisions logged: all, denials (denials and unavailables) or sample:<f> (denials and a fraction f of allows)",
    ),
];

#[cfg(test)]
mod tests {
    #[test]
    fn the_configuration_reference_documents_every_setting() {
        let reference = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md"))
            .expect("docs/configuration.md");
        for s in super::SETTINGS {
            let row = format!("| `{}` |", s.name);
            assert!(reference.contains(&row), "docs/configuration.md lacks a row for {}", s.name);
            if let Some(alias) = s.alias {
                assert!(reference.contains(&format!("`{alias}`")), "docs/configuration.md lacks the alias {alias}");
            }
        }
    }
}
