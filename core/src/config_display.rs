//! `check-config`'s account of the effective configuration: one `NAME = value` line each,
//! secrets redacted, then the issuers and the policy in words.

use std::fmt;

use crate::client_auth::Method;
use crate::config::{Client, Config, JwksAuth};
use crate::grant::BackendGrant;
use crate::settings::INTROSPECTION_CLIENT;

impl Config {
    fn backend_param(&self, name: &str) -> String {
        self.backend_params.iter().find(|(k, _)| *k == name).map_or_else(|| "(unset)".into(), |(_, v)| v.clone())
    }
}

/// The effective configuration, one `NAME = value` line each, secrets redacted.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self;
        writeln!(f, "TOKENBRIDGE_MODE = {}", c.mode.as_str())?;
        writeln!(
            f,
            "TOKENBRIDGE_INTROSPECTION_TOKEN_TYPE = {}",
            c.introspection_token_type.as_deref().unwrap_or("(any)")
        )?;
        match &c.introspection {
            Some(client) => write_client(f, client)?,
            None => writeln!(f, "TOKENBRIDGE_INTROSPECTION_URL = (unused)")?,
        }
        writeln!(f, "TOKENBRIDGE_REQUIRED_SCOPES = {}", c.required_scopes.join(" "))?;
        write_client(f, &c.backend)?;
        writeln!(f, "TOKENBRIDGE_BACKEND_GRANT = {}", c.backend_grant.name())?;
        write_grant(f, &c.backend_grant)?;
        let lines: Vec<(&str, String)> = vec![
            ("TOKENBRIDGE_BACKEND_SCOPE", c.backend_param("scope")),
            ("TOKENBRIDGE_BACKEND_AUDIENCE", c.backend_param("audience")),
            ("TOKENBRIDGE_BACKEND_RESOURCE", c.backend_param("resource")),
            ("TOKENBRIDGE_CONNECT_TIMEOUT_MS", c.connect_timeout.as_millis().to_string()),
            ("TOKENBRIDGE_TIMEOUT_MS", c.call_timeout.as_millis().to_string()),
            ("TOKENBRIDGE_MAX_ANSWER_BYTES", c.max_answer_bytes.to_string()),
            (
                "TOKENBRIDGE_CA_BUNDLE",
                c.ca_certificates.as_ref().map_or("(built-in roots)".into(), |c| format!("{} certificate(s)", c.len())),
            ),
            ("TOKENBRIDGE_CACHE_STALE_IF_ERROR_SECONDS", c.stale_if_error.to_string()),
            ("TOKENBRIDGE_CLOCK_LEEWAY_SECONDS", c.leeway.to_string()),
            ("TOKENBRIDGE_CACHE_MAX_TTL_SECONDS", c.cache_max_ttl.to_string()),
            ("TOKENBRIDGE_CACHE_INACTIVE_TTL_SECONDS", c.cache_inactive_ttl.to_string()),
            ("TOKENBRIDGE_CACHE_CAPACITY", c.cache_capacity.to_string()),
            ("TOKENBRIDGE_BACKEND_REFRESH_SECONDS", c.backend_refresh_margin.to_string()),
            ("TOKENBRIDGE_BACKEND_MIN_REMAINING_SECONDS", c.backend_min_remaining.to_string()),
            ("TOKENBRIDGE_BACKEND_DEFAULT_TTL_SECONDS", c.backend_default_ttl.to_string()),
            ("TOKENBRIDGE_SECRET_REFRESH_SECONDS", c.secret_refresh_interval.to_string()),
            ("TOKENBRIDGE_CONTEXT_KEY", c.context_key.clone()),
            ("TOKENBRIDGE_REALM", c.realm.clone()),
            ("TOKENBRIDGE_TOKEN_ARGUMENT", c.token_argument.clone()),
            ("TOKENBRIDGE_CONTEXT_CLAIMS", c.context_claims.join(" ")),
            ("TOKENBRIDGE_JWKS_MAX_AGE_SECONDS", c.jwks_max_age.to_string()),
            ("TOKENBRIDGE_DPOP", c.dpop.mode.as_str().to_string()),
            ("TOKENBRIDGE_DPOP_ORIGINS", c.dpop.origins.join(" ")),
            ("TOKENBRIDGE_DPOP_MAX_AGE_SECONDS", c.dpop.max_age.to_string()),
            ("TOKENBRIDGE_DPOP_REPLAY_CAPACITY", c.dpop.replay_capacity.to_string()),
            ("TOKENBRIDGE_LOG_LEVEL", c.log_policy.level.as_str().to_string()),
            ("TOKENBRIDGE_DECISION_LOG", c.log_policy.decisions.to_string()),
        ];
        for (k, v) in lines {
            writeln!(f, "{k} = {v}")?;
        }
        write_shared_cache(f, c.shared_cache.as_ref())?;
        write_jwks_auth(f, c.jwks_auth.as_ref())?;
        for i in &c.issuers {
            let bearer = c.jwks_auth.as_ref().is_some_and(|a| i.local && a.covers(i.jwks_url.as_deref()));
            writeln!(
                f,
                "issuer {} = {}, audiences [{}], keys {}{}{}{}{}",
                i.issuer,
                if i.local { "verified locally" } else { "introspected" },
                if i.audiences.is_empty() { "not checked".to_string() } else { i.audiences.join(" ") },
                i.jwks_url.as_deref().unwrap_or("discovered"),
                if bearer { " (with a bearer token from TOKENBRIDGE_JWKS_TOKEN_URL)" } else { "" },
                if i.require_at_jwt { ", at+jwt required" } else { "" },
                listed(", tenants", &i.tenants),
                listed(", access tokens of the clients", &i.client_ids),
            )?;
        }
        writeln!(f, "policy:\n{}", c.policy.describe())?;
        for ((name, _), target) in c.policy.backends().iter().zip(&c.route_backends) {
            let params: Vec<String> = target.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            writeln!(f, "policy backend {name}: grant {}, {}", target.grant.name(), params.join(" "))?;
        }
        Ok(())
    }
}

/// The JWKS bearer token's endpoint, scope and client: its own settings, or the client borrowed.
fn write_jwks_auth(f: &mut fmt::Formatter<'_>, auth: Option<&JwksAuth>) -> fmt::Result {
    let Some(auth) = auth else {
        return writeln!(f, "TOKENBRIDGE_JWKS_TOKEN_URL = (unset: every JWKS is fetched without a token)");
    };
    match auth.borrowed {
        None => write_client(f, &auth.client)?,
        Some(settings) => {
            writeln!(f, "TOKENBRIDGE_JWKS_TOKEN_URL = {}", auth.client.endpoint)?;
            let whose = if settings.url == INTROSPECTION_CLIENT.url { "introspection" } else { "backend" };
            writeln!(f, "TOKENBRIDGE_JWKS_CLIENT_ID = (the {whose} client at the same origin: {})", settings.id)?;
        }
    }
    writeln!(f, "TOKENBRIDGE_JWKS_SCOPE = {}", auth.scope.as_deref().unwrap_or("(unset)"))
}

/// The settings of the chosen backend grant, and only those.
fn write_grant(f: &mut fmt::Formatter<'_>, grant: &BackendGrant) -> fmt::Result {
    match grant {
        BackendGrant::ClientCredentials => Ok(()),
        BackendGrant::TokenExchange { subject_token_type, requested_token_type, actor } => {
            writeln!(f, "TOKENBRIDGE_BACKEND_SUBJECT_TOKEN_TYPE = {}", subject_token_type.urn())?;
            let actor = if *actor { "client_credentials (tokenbridge's own token)" } else { "(not sent)" };
            writeln!(f, "TOKENBRIDGE_BACKEND_ACTOR_TOKEN = {actor}")?;
            let requested = requested_token_type.map_or("(not sent; access_token or jwt accepted)", |t| t.urn());
            writeln!(f, "TOKENBRIDGE_BACKEND_REQUESTED_TOKEN_TYPE = {requested}")
        }
        BackendGrant::JwtBearer { requested_token_use } => writeln!(
            f,
            "TOKENBRIDGE_BACKEND_REQUESTED_TOKEN_USE = {}",
            requested_token_use.as_deref().unwrap_or("(not sent)")
        ),
    }
}

/// A client's endpoint, id, authentication method and credential (redacted), for
/// `private_key_jwt` what its assertions carry, and for the TLS methods the certificate's reference.
fn write_client(f: &mut fmt::Formatter<'_>, client: &Client) -> fmt::Result {
    let s = client.settings;
    writeln!(f, "{} = {}", s.url, client.endpoint)?;
    writeln!(f, "{} = {}", s.id, client.client_id)?;
    writeln!(f, "{} = {}", s.auth, client.method.name())?;
    writeln!(f, "{} = {:?}", client.credential_setting(), client.credential)?;
    if let Some(certificate) = &client.certificate {
        // The reference only: its subject and fingerprint need it resolved (`check-config` adds them).
        writeln!(f, "{} = {:?}", s.cert, certificate)?;
    }
    if let Method::PrivateKeyJwt(a) = &client.method {
        let or = |v: &Option<String>, default: &str| v.clone().unwrap_or_else(|| default.to_string());
        writeln!(f, "{} = {}", s.key_id, or(&a.key_id, "(none)"))?;
        writeln!(f, "{} = {}", s.alg, a.alg.map_or("(from the key)", |a| a.as_str()))?;
        writeln!(f, "{} = {}", s.audience, or(&a.audience, "(the endpoint URL)"))?;
        writeln!(f, "{} = {}", s.cert_sha256, or(&a.cert_sha256, "(none)"))?;
    }
    Ok(())
}

/// The shared cache tier's settings, its secrets redacted.
fn write_shared_cache(f: &mut fmt::Formatter<'_>, tier: Option<&crate::shared_cache::SharedSettings>) -> fmt::Result {
    let Some(t) = tier else { return writeln!(f, "TOKENBRIDGE_SHARED_CACHE_URL = (off)") };
    writeln!(f, "TOKENBRIDGE_SHARED_CACHE_URL = {}", t.url)?;
    writeln!(f, "TOKENBRIDGE_SHARED_CACHE_KEY = {:?}", t.key)?;
    if let Some(password) = &t.password {
        writeln!(f, "TOKENBRIDGE_SHARED_CACHE_PASSWORD = {password:?}")?;
    }
    writeln!(f, "TOKENBRIDGE_SHARED_CACHE_TIMEOUT_MS = {}", t.timeout.as_millis())?;
    writeln!(f, "TOKENBRIDGE_SHARED_CACHE_PREFIX = {}", t.prefix)
}

/// `label [a b]`, or nothing for an empty list.
fn listed(label: &str, items: &[String]) -> String {
    if items.is_empty() { String::new() } else { format!("{label} [{}]", items.join(" ")) }
}
