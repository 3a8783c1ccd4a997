//! Configuration from environment variables (OCI function configuration and Lambda
//! environment both arrive that way), validated into typed settings. Every problem is
//! reported at once; secrets are never displayed.

use std::fmt;
use std::time::Duration;

use crate::client_auth::{self, Alg, AssertionSettings, Method};
use crate::grant::{BackendGrant, TokenType};
use crate::jwt::{Issuer, TENANT_PLACEHOLDER};
use crate::log::{DecisionLog, LogLevel, LogPolicy};
use crate::policy::Policy;
use crate::secret::SecretRef;
use crate::settings::{BACKEND_CLIENT, ClientSettings, INTROSPECTION_CLIENT, JWKS_CLIENT, SETTINGS, Setting};
use crate::url_rules::{check_url, same_origin, shown_url};

/// An OAuth client of ours at an IdP.
#[derive(Clone)]
pub(crate) struct Client {
    pub(crate) endpoint: String,
    pub(crate) client_id: String,
    /// How we authenticate there.
    pub(crate) method: Method,
    /// What we authenticate with: the client secret, or for `private_key_jwt` and the TLS
    /// methods the private key.
    pub(crate) credential: SecretRef,
    /// For the TLS methods (RFC 8705 §2), the certificate chain presented with that key.
    pub(crate) certificate: Option<SecretRef>,
    /// The settings it was read from, for `check-config`.
    pub(crate) settings: &'static ClientSettings,
}

impl Client {
    /// The setting that names the credential.
    pub(crate) fn credential_setting(&self) -> &'static str {
        if self.method.uses_key() { self.settings.key } else { self.settings.secret }
    }
}

/// A bearer token for the JWKS at one origin (OCI IAM identity domains serve theirs only to an
/// authenticated client): got by client_credentials at `client.endpoint`, on that origin.
#[derive(Clone)]
pub(crate) struct JwksAuth {
    /// Our client at the token endpoint: configured on its own, or borrowed.
    pub(crate) client: Client,
    /// `scope` of the grant, when set.
    pub(crate) scope: Option<String>,
    /// When the client is the introspection or backend client, that client's settings.
    pub(crate) borrowed: Option<&'static ClientSettings>,
}

impl JwksAuth {
    /// Whether the JWKS at `jwks_url` is fetched with this token: only on the token endpoint's
    /// own origin, so the token goes to no one but the domain that issued it.
    pub(crate) fn covers(&self, jwks_url: Option<&str>) -> bool {
        jwks_url.is_some_and(|url| same_origin(url, &self.client.endpoint))
    }
}

/// Validated settings. Build with [`Config::from_env`] or [`Config::from_lookup`]; `Display`
/// shows every effective setting, secrets redacted (`tokenbridge check-config`).
#[derive(Clone)]
pub struct Config {
    /// How caller tokens are validated.
    pub(crate) mode: Mode,
    /// `token_type` an active introspection answer must carry (e.g. `Bearer`), when set.
    pub(crate) introspection_token_type: Option<String>,
    /// IdP A's RFC 7662 introspection endpoint and our client there (not needed in `jwt` mode).
    pub(crate) introspection: Option<Client>,
    /// Issuers whose JWTs are recognised (and, for most, verified locally).
    pub(crate) issuers: Vec<Issuer>,
    /// Per-route requirements; without a policy document, every route requires
    /// `required_scopes`.
    pub(crate) policy: Policy,
    /// Claims forwarded as context values.
    pub(crate) context_claims: Vec<String>,
    /// JWKS lifetime when its answer has no `Cache-Control: max-age`, in seconds.
    pub(crate) jwks_max_age: i64,
    /// The bearer token the JWKS at one origin is fetched with, when one is needed.
    pub(crate) jwks_auth: Option<JwksAuth>,
    /// DPoP (RFC 9449): the default mode, the API's origins, the proof window.
    pub(crate) dpop: crate::dpop::Settings,
    /// IdP B's token endpoint and our client there.
    pub(crate) backend: Client,
    /// The grant asked of IdP B: client_credentials, or one that carries the caller on.
    pub(crate) backend_grant: BackendGrant,
    /// Optional grant parameters: `scope`, `audience`, `resource`.
    pub(crate) backend_params: Vec<(&'static str, String)>,
    /// The policy's backends, in [`Policy::backends`]' order, at the same IdP B client.
    pub(crate) route_backends: Vec<Target>,
    /// Scopes every caller token must carry.
    pub(crate) required_scopes: Vec<String>,
    pub(crate) connect_timeout: Duration,
    /// Upper bound for one IdP call, connect to last byte.
    pub(crate) call_timeout: Duration,
    /// Largest IdP answer read, in bytes.
    pub(crate) max_answer_bytes: u64,
    /// Trusted root certificates (DER) replacing the built-in Mozilla roots, for private IdPs.
    pub(crate) ca_certificates: Option<Vec<Vec<u8>>>,
    /// How long a validation result may be served after its normal lifetime while IdP A
    /// fails (never past the token's `exp`), in seconds; 0 turns it off.
    pub(crate) stale_if_error: i64,
    /// Tolerance for `exp`/`nbf` comparisons, in seconds.
    pub(crate) leeway: i64,
    /// Longest a validation result is cached, in seconds.
    pub(crate) cache_max_ttl: i64,
    /// How long an `active:false` answer is cached, in seconds.
    pub(crate) cache_inactive_ttl: i64,
    /// Most validation results kept.
    pub(crate) cache_capacity: usize,
    /// A backend token is refreshed when less than max(this, 10 % of its life) is left.
    pub(crate) backend_refresh_margin: i64,
    /// A backend token is handed out only while this much of its life is left: gateways replay
    /// a decision's context for a while (OCI for at least 60 s, whatever `expiresAt` says).
    pub(crate) backend_min_remaining: i64,
    /// Lifetime assumed for a backend token whose response has no `expires_in`.
    pub(crate) backend_default_ttl: i64,
    /// Fewest seconds between two refetches of a secret after `invalid_client`.
    pub(crate) secret_refresh_interval: i64,
    /// Context key under which the backend token is returned.
    pub(crate) context_key: String,
    /// Realm in `WWW-Authenticate` challenges.
    pub(crate) realm: String,
    /// Name of the OCI `USER_DEFINED` argument that carries the credential.
    pub(crate) token_argument: String,
    /// `TOKENBRIDGE_LOG_LEVEL` and `TOKENBRIDGE_DECISION_LOG`.
    pub(crate) log_policy: LogPolicy,
    /// The shared cache tier on Redis, when configured.
    pub(crate) shared_cache: Option<crate::shared_cache::SharedSettings>,
}

/// How caller tokens are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Every token goes to introspection.
    Introspection,
    /// Only JWTs of configured issuers, verified locally (or introspected, per issuer).
    Jwt,
    /// JWTs of configured issuers locally, anything else to introspection.
    Auto,
}

impl Mode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Introspection => "introspection",
            Mode::Jwt => "jwt",
            Mode::Auto => "auto",
        }
    }
}

/// Every problem found, each one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} configuration problem(s): {}", self.0.len(), self.0.join("; "))
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Realm in `WWW-Authenticate` challenges.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Name of the OCI `USER_DEFINED` argument that carries the credential.
    pub fn token_argument(&self) -> &str {
        &self.token_argument
    }

    /// The log level and which decisions are logged.
    pub fn log_policy(&self) -> LogPolicy {
        self.log_policy
    }

    /// Context key under which the backend token is returned.
    pub fn context_key(&self) -> &str {
        &self.context_key
    }

    /// The claims the context carries (`TOKENBRIDGE_CONTEXT_CLAIMS`), by name.
    pub fn context_claims(&self) -> &[String] {
        &self.context_claims
    }

    /// Whether the policy names routes: an allow then holds for one route, not every route.
    pub fn has_route_policies(&self) -> bool {
        self.policy.has_routes()
    }

    /// The policy in force (a document's routes, or the required scopes everywhere).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigErrors> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Reads settings through `lookup` (a name → value function), so tests need no environment.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
        let (config, problems) = Self::read(lookup);
        if problems.is_empty() { Ok(config) } else { Err(ConfigErrors(problems)) }
    }

    /// The client secrets the process environment names; see [`Config::secrets_from_lookup`].
    pub fn secrets_from_env() -> Vec<(&'static str, SecretRef)> {
        Self::secrets_from_lookup(&|k| std::env::var(k).ok())
    }

    /// The client secrets (and private keys) the settings name, by setting, read even when
    /// other settings are invalid, so that `check-config` can resolve them and report every
    /// problem at once. A secret that is not set is left out (that is a configuration problem
    /// of its own).
    pub fn secrets_from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Vec<(&'static str, SecretRef)> {
        let (config, _) = Self::read(lookup);
        let credentials = |c: Client| {
            let (setting, cert_setting) = (c.credential_setting(), c.settings.cert);
            [(setting, c.credential)].into_iter().chain(c.certificate.map(|cert| (cert_setting, cert)))
        };
        let introspection = config.introspection.into_iter().flat_map(credentials);
        let backend = credentials(config.backend);
        // A borrowed client's credential is already listed under its own setting.
        let jwks = config.jwks_auth.filter(|j| j.borrowed.is_none()).into_iter().flat_map(|j| credentials(j.client));
        introspection.chain(backend).chain(jwks).filter(|(_, secret)| !is_unset(secret)).collect()
    }

    /// Every setting read, with a stand-in where one is invalid, and every problem found.
    fn read(lookup: &dyn Fn(&str) -> Option<String>) -> (Config, Vec<String>) {
        let mut r = Reader { lookup, problems: Vec::new() };
        let issuers = r.issuers();
        let mode = r.mode(!issuers.is_empty());
        let needs_introspection = mode != Mode::Jwt || issuers.iter().any(|i| !i.local);
        let introspection = needs_introspection.then(|| r.client(&INTROSPECTION_CLIENT));
        if mode != Mode::Introspection && issuers.is_empty() {
            r.problems
                .push(format!("TOKENBRIDGE_MODE={} needs TOKENBRIDGE_ISSUER or TOKENBRIDGE_ISSUERS", mode.as_str()));
        }
        let backend = r.client(&BACKEND_CLIENT);
        let jwks_auth = r.jwks_auth(introspection.as_ref(), &backend, &issuers);
        let backend_grant = r.backend_grant();
        let backend_params = [
            ("scope", "TOKENBRIDGE_BACKEND_SCOPE"),
            ("audience", "TOKENBRIDGE_BACKEND_AUDIENCE"),
            ("resource", "TOKENBRIDGE_BACKEND_RESOURCE"),
        ]
        .into_iter()
        .filter_map(|(param, name)| r.optional(name).map(|v| (param, v)))
        .collect();
        let required_scopes: Vec<String> = r
            .optional("TOKENBRIDGE_REQUIRED_SCOPES")
            .unwrap_or_default()
            .split_ascii_whitespace()
            .map(str::to_string)
            .collect();
        let policy = r.policy(&required_scopes);
        let route_backends = r.route_backends(&policy);
        if policy.wants_introspection() && introspection.is_none() {
            r.problems.push(
                "the policy asks to introspect JWTs on some routes, but no introspection endpoint is configured".into(),
            );
        }
        let context_claims: Vec<String> = r
            .optional("TOKENBRIDGE_CONTEXT_CLAIMS")
            .unwrap_or_default()
            .split_ascii_whitespace()
            .map(str::to_string)
            .collect();
        let context_key = r.text("TOKENBRIDGE_CONTEXT_KEY");
        r.refuse_reserved_claims(&context_claims, &context_key);
        let dpop = r.dpop(policy.uses_dpop());
        let connect_ms = r.number("TOKENBRIDGE_CONNECT_TIMEOUT_MS", 1, 60_000);
        let call_ms = r.number("TOKENBRIDGE_TIMEOUT_MS", 1, 300_000);
        let config = Config {
            mode,
            introspection_token_type: r.optional("TOKENBRIDGE_INTROSPECTION_TOKEN_TYPE"),
            introspection,
            issuers,
            policy,
            context_claims,
            jwks_max_age: r.number("TOKENBRIDGE_JWKS_MAX_AGE_SECONDS", 60, 86_400),
            jwks_auth,
            dpop,
            backend,
            backend_grant,
            backend_params,
            route_backends,
            required_scopes,
            connect_timeout: Duration::from_millis(connect_ms as u64),
            call_timeout: Duration::from_millis(call_ms as u64),
            max_answer_bytes: r.number("TOKENBRIDGE_MAX_ANSWER_BYTES", 1024, 16 * 1024 * 1024) as u64,
            ca_certificates: r.ca_bundle(),
            stale_if_error: r.number("TOKENBRIDGE_CACHE_STALE_IF_ERROR_SECONDS", 0, 86_400),
            leeway: r.number("TOKENBRIDGE_CLOCK_LEEWAY_SECONDS", 0, 300),
            cache_max_ttl: r.number("TOKENBRIDGE_CACHE_MAX_TTL_SECONDS", 0, 86_400),
            cache_inactive_ttl: r.number("TOKENBRIDGE_CACHE_INACTIVE_TTL_SECONDS", 0, 3_600),
            cache_capacity: r.number("TOKENBRIDGE_CACHE_CAPACITY", 1, 10_000_000) as usize,
            backend_refresh_margin: r.number("TOKENBRIDGE_BACKEND_REFRESH_SECONDS", 0, 86_400),
            backend_min_remaining: r.number("TOKENBRIDGE_BACKEND_MIN_REMAINING_SECONDS", 0, 3_600),
            backend_default_ttl: r.number("TOKENBRIDGE_BACKEND_DEFAULT_TTL_SECONDS", 1, 86_400),
            secret_refresh_interval: r.number("TOKENBRIDGE_SECRET_REFRESH_SECONDS", 1, 86_400),
            context_key,
            realm: r.text("TOKENBRIDGE_REALM"),
            token_argument: r.text("TOKENBRIDGE_TOKEN_ARGUMENT"),
            log_policy: r.log_policy(),
            shared_cache: r.shared_cache(),
        };
        (config, r.problems)
    }
}

/// The context values some adapter writes itself, besides the backend token's key: Lambda's
/// `principal`, `scope`, `client_id`, `expires_at` and a Deny's `wwwAuthenticate`, and the names API Gateway gives its own
/// `$context.authorizer` values (`principalId`, `integrationLatency`). Compared without regard
/// to ASCII case, as gateways that turn them into headers do.
pub(crate) const RESERVED_CONTEXT_KEYS: [&str; 7] =
    ["principal", "scope", "client_id", "expires_at", "principalId", "integrationLatency", "wwwAuthenticate"];

/// A backend grant's values as written, in settings or in a policy backend.
struct GrantValues {
    grant: Option<String>,
    subject_token_type: Option<String>,
    requested_token_type: Option<String>,
    requested_token_use: Option<String>,
    actor_token: Option<String>,
    /// Whether the grant's `scope` is set.
    scope_set: bool,
}

impl GrantValues {
    /// The grant these values describe; `name(field)` names a value in a problem. A value of
    /// another grant than the one chosen is a mistake worth naming, not something to ignore.
    fn read(self, name: &dyn Fn(&str) -> String, problems: &mut Vec<String>) -> BackendGrant {
        let mut token_type = |field: &str, value: &Option<String>| {
            let value = value.as_deref()?;
            let parsed = TokenType::parse(value);
            if parsed.is_none() {
                problems.push(format!("{} must be access_token or jwt, got {value:?}", name(field)));
            }
            parsed
        };
        let grant = match self.grant.as_deref() {
            None | Some("client_credentials") => BackendGrant::ClientCredentials,
            Some("token_exchange") => BackendGrant::TokenExchange {
                subject_token_type: token_type("subject_token_type", &self.subject_token_type)
                    .unwrap_or(TokenType::AccessToken),
                requested_token_type: token_type("requested_token_type", &self.requested_token_type),
                actor: match self.actor_token.as_deref() {
                    None => false,
                    Some("client_credentials") => true,
                    Some(other) => {
                        problems.push(format!("{} must be client_credentials, got {other:?}", name("actor_token")));
                        false
                    }
                },
            },
            Some("jwt_bearer") => {
                let token_use = self.requested_token_use.clone();
                if token_use.as_deref().is_some_and(|u| u != "on_behalf_of") {
                    problems.push(format!("{} must be on_behalf_of, got {token_use:?}", name("requested_token_use")));
                }
                // Entra refuses an on-behalf-of request without a scope, for every caller.
                if token_use.is_some() && !self.scope_set {
                    problems.push(format!("{} = on_behalf_of needs a scope", name("requested_token_use")));
                }
                BackendGrant::JwtBearer { requested_token_use: token_use }
            }
            Some(other) => {
                problems.push(format!(
                    "{} must be client_credentials, token_exchange or jwt_bearer, got {other:?}",
                    name("grant")
                ));
                BackendGrant::ClientCredentials
            }
        };
        let exchange = matches!(grant, BackendGrant::TokenExchange { .. });
        let on_behalf = matches!(grant, BackendGrant::JwtBearer { .. });
        let own = [
            ("subject_token_type", &self.subject_token_type, exchange),
            ("requested_token_type", &self.requested_token_type, exchange),
            ("requested_token_use", &self.requested_token_use, on_behalf),
            ("actor_token", &self.actor_token, exchange),
        ];
        for (field, value, used) in own {
            if value.is_some() && !used {
                problems.push(format!("{} is set, but the grant {} does not use it", name(field), grant.name()));
            }
        }
        grant
    }
}

/// A backend of the policy: the grant asked of IdP B on its routes, and its parameters.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) grant: BackendGrant,
    pub(crate) params: Vec<(&'static str, String)>,
}

/// The stand-in for a required secret that is not set.
fn is_unset(secret: &SecretRef) -> bool {
    matches!(secret, SecretRef::Literal(value) if value.expose().is_empty())
}

/// The issuers an entry stands for: itself, or for a `{tenantid}` template one per tenant (and
/// the template's own spelling, which a second identical template would repeat).
fn spelt_issuers(issuer: &Issuer) -> Vec<String> {
    let tenants = issuer.tenants.iter().filter(|_| issuer.is_template());
    std::iter::once(issuer.issuer.clone())
        .chain(tenants.map(|t| issuer.issuer.replace(TENANT_PLACEHOLDER, t)))
        .collect()
}

/// One entry of `TOKENBRIDGE_ISSUERS`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerDoc {
    issuer: String,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    audience_check: Option<bool>,
    jwks_url: Option<String>,
    /// `jwt` (verify locally, the default) or `introspection`.
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    require_at_jwt: bool,
    /// Cognito: the app clients whose access tokens are accepted (`client_id`).
    #[serde(default)]
    client_ids: Vec<String>,
    /// For an issuer written with `{tenantid}`: the tenants accepted.
    #[serde(default)]
    tenants: Vec<String>,
}

struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<String>,
}

impl Reader<'_> {
    /// Every name read must be in SETTINGS (which documents it); the fallback keeps this total
    /// and `every_setting_read_is_documented` keeps it unused.
    fn setting(name: &str) -> &'static Setting {
        static UNKNOWN: Setting = Setting { name: "", alias: None, default: None, meaning: "undocumented setting" };
        SETTINGS.iter().find(|s| s.name == name).unwrap_or(&UNKNOWN)
    }

    /// The value under the name or the seed's alias; both set and different is a problem.
    fn optional(&mut self, name: &str) -> Option<String> {
        let setting = Self::setting(name);
        let get = |k: &str| (self.lookup)(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let main = get(name);
        let alias = setting.alias.and_then(|a| get(a).map(|v| (a, v)));
        match (main, alias) {
            (Some(m), Some((a, v))) if m != v => {
                self.problems.push(format!("{name} and its alias {a} are both set, to different values"));
                Some(m)
            }
            (Some(m), _) => Some(m),
            (None, Some((_, v))) => Some(v),
            (None, None) => setting.default.map(str::to_string).filter(|d| !d.is_empty()),
        }
    }

    fn required(&mut self, name: &str) -> String {
        self.optional(name).unwrap_or_else(|| {
            let alias = Self::setting(name).alias.map(|a| format!(" (or {a})")).unwrap_or_default();
            self.problems.push(format!("{name}{alias} is required"));
            String::new()
        })
    }

    /// A forwarded claim may not take the name of a context value tokenbridge writes itself:
    /// a token could then choose the principal or expiry a gateway or backend reads.
    fn refuse_reserved_claims(&mut self, claims: &[String], context_key: &str) {
        for claim in claims {
            let reserved = RESERVED_CONTEXT_KEYS.iter().copied().chain([context_key]);
            if let Some(key) = reserved.into_iter().find(|key| key.eq_ignore_ascii_case(claim)) {
                self.problems.push(format!(
                    "TOKENBRIDGE_CONTEXT_CLAIMS: {claim:?} would overwrite the context value {key:?} that tokenbridge \
                     sets itself (reserved: {}, and TOKENBRIDGE_CONTEXT_KEY)",
                    RESERVED_CONTEXT_KEYS.join(", ")
                ));
            }
        }
    }

    /// The log settings; a value that is not one of the documented ones is a problem, not a
    /// silent fall-back to some other amount of logging.
    fn log_policy(&mut self) -> LogPolicy {
        let default = LogPolicy::default();
        let level = self.text("TOKENBRIDGE_LOG_LEVEL");
        let level = LogLevel::parse(&level).unwrap_or_else(|| {
            self.problems.push(format!("TOKENBRIDGE_LOG_LEVEL must be error, warn, info or debug, got {level:?}"));
            default.level
        });
        let decisions = self.text("TOKENBRIDGE_DECISION_LOG");
        let decisions = DecisionLog::parse(&decisions).unwrap_or_else(|| {
            self.problems.push(format!(
                "TOKENBRIDGE_DECISION_LOG must be all, denials or sample:<fraction from 0 to 1>, got {decisions:?}"
            ));
            default.decisions
        });
        LogPolicy { level, decisions }
    }

    fn text(&mut self, name: &str) -> String {
        self.optional(name).unwrap_or_default()
    }

    fn number(&mut self, name: &str, min: i64, max: i64) -> i64 {
        let raw = self.optional(name).unwrap_or_default();
        match raw.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                self.problems.push(format!("{name} must be a whole number from {min} to {max}, got {raw:?}"));
                min
            }
        }
    }

    fn url(&mut self, name: &str) -> String {
        let url = self.required(name);
        // An empty URL has already been reported as missing.
        match check_url(&url) {
            Err(why) if !url.is_empty() => self.problems.push(format!("{name}: {why}")),
            _ => {}
        }
        url
    }

    /// `TOKENBRIDGE_ISSUER` (with its audience, JWKS and type settings) and `TOKENBRIDGE_ISSUERS`.
    fn issuers(&mut self) -> Vec<Issuer> {
        let audience_check = match self.optional("TOKENBRIDGE_AUDIENCE_CHECK").as_deref() {
            Some("on") | None => true,
            Some("off") => false,
            Some(other) => {
                self.problems.push(format!("TOKENBRIDGE_AUDIENCE_CHECK must be on or off, got {other:?}"));
                true
            }
        };
        let mut issuers = Vec::new();
        if let Some(issuer) = self.optional("TOKENBRIDGE_ISSUER") {
            let audiences = self.words("TOKENBRIDGE_AUDIENCE");
            let require_at_jwt = match self.optional("TOKENBRIDGE_JWT_TYP").as_deref() {
                None => false,
                Some(t) if t.eq_ignore_ascii_case("at+jwt") => true,
                Some(other) => {
                    self.problems.push(format!("TOKENBRIDGE_JWT_TYP can only be at+jwt, got {other:?}"));
                    false
                }
            };
            let jwks_url = self.optional("TOKENBRIDGE_JWKS_URL");
            let client_ids = self.words("TOKENBRIDGE_ACCEPTED_CLIENT_IDS");
            let tenants = self.words("TOKENBRIDGE_TENANTS");
            let issuer = Issuer { issuer, audiences, jwks_url, local: true, require_at_jwt, client_ids, tenants };
            issuers.push(self.issuer(issuer, audience_check));
        } else {
            // These describe TOKENBRIDGE_ISSUER only: ignored, they would loosen what the
            // operator meant to restrict (an audience, a token type, client ids, tenants) or
            // send key lookups elsewhere (TOKENBRIDGE_ISSUERS takes them per issuer).
            for name in [
                "TOKENBRIDGE_ACCEPTED_CLIENT_IDS",
                "TOKENBRIDGE_TENANTS",
                "TOKENBRIDGE_AUDIENCE",
                "TOKENBRIDGE_JWT_TYP",
                "TOKENBRIDGE_JWKS_URL",
            ] {
                if self.optional(name).is_some() {
                    self.problems.push(format!(
                        "{name} is set, but TOKENBRIDGE_ISSUER is not; in TOKENBRIDGE_ISSUERS give each issuer its own"
                    ));
                }
            }
        }
        if let Some(json) = self.optional("TOKENBRIDGE_ISSUERS") {
            match serde_json::from_str::<Vec<IssuerDoc>>(&json) {
                Ok(docs) => {
                    for d in docs {
                        let local = match d.mode.as_deref() {
                            None | Some("jwt") => true,
                            Some("introspection") => false,
                            Some(other) => {
                                self.problems.push(format!(
                                    "TOKENBRIDGE_ISSUERS: mode {other:?}: expected jwt or introspection"
                                ));
                                true
                            }
                        };
                        let check = d.audience_check.unwrap_or(audience_check);
                        let issuer = Issuer {
                            issuer: d.issuer,
                            audiences: d.audiences,
                            jwks_url: d.jwks_url,
                            local,
                            require_at_jwt: d.require_at_jwt,
                            client_ids: d.client_ids,
                            tenants: d.tenants,
                        };
                        issuers.push(self.issuer(issuer, check));
                    }
                }
                Err(e) => self.problems.push(format!("TOKENBRIDGE_ISSUERS is not a valid JSON list of issuers: {e}")),
            }
        }
        // Issuers are kept by name: a second entry would silently replace the first, with its
        // client_ids, tenants and audiences; and a tenant's issuer that two entries spell would
        // be judged by whichever a hash map finds first.
        for (i, issuer) in issuers.iter().enumerate() {
            let named_before = |spelt: &String| issuers[..i].iter().any(|e| e.issuer == *spelt || e.names(spelt));
            if let Some(spelt) = spelt_issuers(issuer).into_iter().find(named_before) {
                self.problems.push(format!("issuer {} is configured more than once", shown_url(&spelt)));
            }
        }
        issuers
    }

    /// A space-separated list.
    /// The DPoP settings; `in_policy`: some policy route sets a DPoP mode of its own.
    /// The shared cache tier: off without a URL; with one, a key is required.
    fn shared_cache(&mut self) -> Option<crate::shared_cache::SharedSettings> {
        let url = self.optional("TOKENBRIDGE_SHARED_CACHE_URL")?;
        if let Some(problem) = crate::shared_cache::url_problem(&url) {
            self.problems.push(problem);
        }
        let key = SecretRef::parse(&self.required("TOKENBRIDGE_SHARED_CACHE_KEY"));
        if let SecretRef::Literal(v) = &key
            && !v.expose().is_empty()
            && v.expose().len() < crate::shared_cache::MIN_KEY_LEN
        {
            self.problems.push("TOKENBRIDGE_SHARED_CACHE_KEY must be 32 characters or more".into());
        }
        let password = self.optional("TOKENBRIDGE_SHARED_CACHE_PASSWORD").map(|p| SecretRef::parse(&p));
        let timeout = Duration::from_millis(self.number("TOKENBRIDGE_SHARED_CACHE_TIMEOUT_MS", 1, 5_000) as u64);
        let prefix = self.text("TOKENBRIDGE_SHARED_CACHE_PREFIX");
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            self.problems.push("TOKENBRIDGE_SHARED_CACHE_PREFIX must be letters, digits, '-', '_' or '.'".into());
        }
        Some(crate::shared_cache::SharedSettings { url, password, key, timeout, prefix })
    }

    fn dpop(&mut self, in_policy: bool) -> crate::dpop::Settings {
        use crate::dpop::Mode;
        let mode = match self.optional("TOKENBRIDGE_DPOP") {
            None => Mode::Off,
            Some(text) => Mode::parse(&text).unwrap_or_else(|| {
                self.problems.push(format!("TOKENBRIDGE_DPOP must be off, allowed or required, got {text:?}"));
                Mode::Off
            }),
        };
        let mut origins = Vec::new();
        for origin in self.words("TOKENBRIDGE_DPOP_ORIGINS") {
            let trimmed = origin.trim_end_matches('/').to_string();
            match check_url(&trimmed) {
                Err(why) => self.problems.push(format!("TOKENBRIDGE_DPOP_ORIGINS: {why}")),
                Ok(()) if crate::dpop::normalise_uri(&trimmed).is_none() => self.problems.push(format!(
                    "TOKENBRIDGE_DPOP_ORIGINS: {} is not an origin (scheme://host[:port][/base-path], no query)",
                    shown_url(&trimmed)
                )),
                Ok(()) => origins.push(trimmed),
            }
        }
        if (mode != Mode::Off || in_policy) && origins.is_empty() {
            self.problems.push(
                "DPoP is on (TOKENBRIDGE_DPOP or a policy route's dpop), but TOKENBRIDGE_DPOP_ORIGINS does not say \
                 where clients call the API, which every proof's htu must name"
                    .into(),
            );
        }
        crate::dpop::Settings {
            mode,
            origins,
            max_age: self.number("TOKENBRIDGE_DPOP_MAX_AGE_SECONDS", 1, 3_600),
            replay_capacity: self.number("TOKENBRIDGE_DPOP_REPLAY_CAPACITY", 1, 100_000_000) as usize,
        }
    }

    fn words(&mut self, name: &str) -> Vec<String> {
        self.optional(name).unwrap_or_default().split_ascii_whitespace().map(str::to_string).collect()
    }

    /// One issuer, checked; its audiences dropped when the check is off.
    fn issuer(&mut self, mut issuer: Issuer, audience_check: bool) -> Issuer {
        // A template is checked as a URL with a tenant in it (braces are not URL characters).
        let url = issuer.issuer.replace(TENANT_PLACEHOLDER, "common");
        let checked = check_url(&url);
        // A good URL is shown whole, so a template is shown as written.
        let shown = if checked.is_ok() { issuer.issuer.clone() } else { shown_url(&url) };
        if let Err(why) = checked {
            self.problems.push(format!("issuer {shown}: {why}"));
        }
        if let Some(Err(why)) = issuer.jwks_url.as_deref().map(check_url) {
            self.problems.push(format!("JWKS URL of {shown}: {why}"));
        }
        if issuer.local && audience_check && issuer.audiences.is_empty() && issuer.client_ids.is_empty() {
            self.problems.push(format!(
                "issuer {shown}: an audience is required (TOKENBRIDGE_AUDIENCE), or switch the check off explicitly with TOKENBRIDGE_AUDIENCE_CHECK=off"
            ));
        }
        self.issuer_presets_checked(&issuer, &shown);
        if !audience_check {
            issuer.audiences = Vec::new();
        }
        issuer
    }

    /// The Cognito and Entra options: only where tokenbridge verifies the tokens itself, and a
    /// tenant template only with the tenants it accepts and the JWKS they share.
    fn issuer_presets_checked(&mut self, issuer: &Issuer, shown: &str) {
        let template = issuer.is_template();
        // In introspection mode IdP A judges every token, so these checks would not be made.
        let introspected = !issuer.local || self.optional("TOKENBRIDGE_MODE").as_deref() == Some("introspection");
        if introspected && (template || !issuer.client_ids.is_empty()) {
            self.problems.push(format!(
                "issuer {shown}: client_ids and {TENANT_PLACEHOLDER} need the tokens verified here (mode jwt)"
            ));
        }
        if template && issuer.tenants.is_empty() {
            self.problems.push(format!(
                "issuer {shown}: {TENANT_PLACEHOLDER} needs the tenants it accepts (tenants, TOKENBRIDGE_TENANTS); no tenant is accepted implicitly"
            ));
        }
        if template && issuer.jwks_url.is_none() {
            self.problems.push(format!(
                "issuer {shown}: {TENANT_PLACEHOLDER} needs the JWKS URL its tenants share (jwks_url, TOKENBRIDGE_JWKS_URL)"
            ));
        }
        if !template && !issuer.tenants.is_empty() {
            self.problems
                .push(format!("issuer {shown}: tenants are given, but the issuer has no {TENANT_PLACEHOLDER}"));
        }
        // A tenant id is a GUID (or a name such as a domain): nothing that could change which
        // issuer the template spells.
        // Nor empty, nor a dot segment, which would make the issuer another path.
        let tenant_ok = |t: &String| {
            !matches!(t.as_str(), "" | "." | "..")
                && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        };
        if let Some(bad) = issuer.tenants.iter().find(|t| !tenant_ok(t)) {
            self.problems.push(format!(
                "issuer {shown}: tenant {bad:?} must be non-empty, not '.' or '..', and hold only letters, digits, '-' and '.'"
            ));
        }
        if issuer.client_ids.iter().any(String::is_empty) {
            self.problems.push(format!("issuer {shown}: an empty client id"));
        }
    }

    /// `TOKENBRIDGE_JWKS_TOKEN_URL` and the client there: its own settings when any is given,
    /// else the introspection client or the backend client on the same origin (an identity
    /// domain's app usually introspects, or gets backend tokens, there already).
    fn jwks_auth(&mut self, introspection: Option<&Client>, backend: &Client, issuers: &[Issuer]) -> Option<JwksAuth> {
        let s = &JWKS_CLIENT;
        let client_settings = [s.id, s.secret, s.auth, s.key, s.cert, s.key_id, s.alg, s.audience, s.cert_sha256];
        // Read raw: `optional` would also answer a setting's default.
        let given = |r: &Self, name: &str| (r.lookup)(name).is_some_and(|v| !v.trim().is_empty());
        let own = client_settings.iter().any(|name| given(self, name));
        let scope = self.optional("TOKENBRIDGE_JWKS_SCOPE");
        if !given(self, s.url) {
            let stray = client_settings.iter().copied().chain(["TOKENBRIDGE_JWKS_SCOPE"]).filter(|n| given(self, n));
            let stray: Vec<&str> = stray.collect();
            for name in stray {
                self.problems.push(format!("{name} is set, but {} is not", s.url));
            }
            return None;
        }
        let (client, borrowed) = if own {
            (self.client(s), None)
        } else {
            let url = self.url(s.url);
            let shown = shown_url(&url);
            let Some(at_origin) = introspection.into_iter().chain([backend]).find(|c| same_origin(&c.endpoint, &url))
            else {
                self.problems.push(format!(
                    "{}: neither the introspection client nor the backend client is at the origin of {shown}: set {} and its credential",
                    s.url, s.id
                ));
                return None;
            };
            (Client { endpoint: url, ..at_origin.clone() }, Some(at_origin.settings))
        };
        let auth = JwksAuth { client, scope, borrowed };
        if !issuers.iter().any(|i| i.local && auth.covers(i.jwks_url.as_deref()))
            && check_url(&auth.client.endpoint).is_ok()
        {
            self.problems.push(format!(
                "{}: no issuer verified here has its JWKS URL (jwks_url, TOKENBRIDGE_JWKS_URL) at the origin of {}; \
                 the bearer token is sent to no other",
                s.url, auth.client.endpoint
            ));
        }
        Some(auth)
    }

    /// The backend grant and its own settings.
    fn backend_grant(&mut self) -> BackendGrant {
        let values = GrantValues {
            grant: self.optional("TOKENBRIDGE_BACKEND_GRANT"),
            subject_token_type: self.optional("TOKENBRIDGE_BACKEND_SUBJECT_TOKEN_TYPE"),
            requested_token_type: self.optional("TOKENBRIDGE_BACKEND_REQUESTED_TOKEN_TYPE"),
            requested_token_use: self.optional("TOKENBRIDGE_BACKEND_REQUESTED_TOKEN_USE"),
            actor_token: self.optional("TOKENBRIDGE_BACKEND_ACTOR_TOKEN"),
            scope_set: self.optional("TOKENBRIDGE_BACKEND_SCOPE").is_some(),
        };
        let setting = |field: &str| format!("TOKENBRIDGE_BACKEND_{}", field.to_ascii_uppercase());
        values.read(&setting, &mut self.problems)
    }

    /// The policy's backends, in its order: each one's grant and parameters.
    fn route_backends(&mut self, policy: &Policy) -> Vec<Target> {
        let mut targets = Vec::new();
        for (name, doc) in policy.backends() {
            let values = GrantValues {
                grant: doc.grant.clone(),
                subject_token_type: doc.subject_token_type.clone(),
                requested_token_type: doc.requested_token_type.clone(),
                requested_token_use: doc.requested_token_use.clone(),
                actor_token: doc.actor_token.clone(),
                scope_set: doc.scope.is_some(),
            };
            let member = |field: &str| format!("policy backend {name:?}: {field}");
            let grant = values.read(&member, &mut self.problems);
            let params = [("scope", &doc.scope), ("audience", &doc.audience), ("resource", &doc.resource)]
                .into_iter()
                .filter_map(|(param, value)| value.clone().map(|v| (param, v)))
                .collect();
            targets.push(Target { grant, params });
        }
        targets
    }

    fn mode(&mut self, have_issuers: bool) -> Mode {
        let have_introspection = ["TOKENBRIDGE_INTROSPECTION_URL", "idcs_introspection_endpoint"]
            .iter()
            .any(|k| (self.lookup)(k).is_some_and(|v| !v.trim().is_empty()));
        match self.optional("TOKENBRIDGE_MODE").as_deref() {
            Some("introspection") => Mode::Introspection,
            Some("jwt") => Mode::Jwt,
            Some("auto") => Mode::Auto,
            Some(other) => {
                self.problems.push(format!("TOKENBRIDGE_MODE must be introspection, jwt or auto, got {other:?}"));
                Mode::Introspection
            }
            None if have_issuers && have_introspection => Mode::Auto,
            None if have_issuers => Mode::Jwt,
            None => Mode::Introspection,
        }
    }

    /// The certificates of `TOKENBRIDGE_CA_BUNDLE`, as DER.
    fn ca_bundle(&mut self) -> Option<Vec<Vec<u8>>> {
        let path = self.optional("TOKENBRIDGE_CA_BUNDLE")?;
        crate::http::read_ca_bundle(&path).map_err(|problem| self.problems.push(problem)).ok()
    }

    /// The policy document, else the zero-config policy (`TOKENBRIDGE_REQUIRED_SCOPES` everywhere).
    fn policy(&mut self, required_scopes: &[String]) -> Policy {
        let inline = self.optional("TOKENBRIDGE_POLICY");
        let file = self.optional("TOKENBRIDGE_POLICY_FILE");
        let text = match (inline, file) {
            (Some(_), Some(_)) => {
                self.problems.push("set TOKENBRIDGE_POLICY or TOKENBRIDGE_POLICY_FILE, not both".into());
                return Policy::everywhere(required_scopes.to_vec());
            }
            (Some(text), None) => text,
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) => {
                    self.problems.push(format!("TOKENBRIDGE_POLICY_FILE {path}: {}", e.kind()));
                    return Policy::everywhere(required_scopes.to_vec());
                }
            },
            (None, None) => return Policy::everywhere(required_scopes.to_vec()),
        };
        if !required_scopes.is_empty() {
            self.problems
                .push("TOKENBRIDGE_REQUIRED_SCOPES and a policy are both set: put the scopes in the policy".into());
        }
        Policy::from_json(&text).unwrap_or_else(|why| {
            self.problems.push(why);
            Policy::everywhere(required_scopes.to_vec())
        })
    }

    /// One client of ours: its endpoint, id, authentication method and credential. A setting
    /// the method does not use is a problem, not ignored: it says the operator meant another.
    fn client(&mut self, s: &'static ClientSettings) -> Client {
        let endpoint = self.url(s.url);
        let client_id = self.required(s.id);
        let method = match self.optional(s.auth).as_deref() {
            None | Some("client_secret_basic") => Method::SecretBasic,
            Some("client_secret_post") => Method::SecretPost,
            Some("private_key_jwt") => Method::PrivateKeyJwt(self.assertion_settings(s)),
            Some("tls_client_auth") => Method::TlsClientAuth,
            Some("self_signed_tls_client_auth") => Method::SelfSignedTlsClientAuth,
            Some(other) => {
                self.problems.push(format!(
                    "{} must be client_secret_basic, client_secret_post, private_key_jwt, tls_client_auth or \
                     self_signed_tls_client_auth, got {other:?}",
                    s.auth
                ));
                Method::SecretBasic
            }
        };
        let (used, unused) = if method.uses_key() { (s.key, s.secret) } else { (s.secret, s.key) };
        let mut unused_settings = vec![unused];
        if !matches!(method, Method::PrivateKeyJwt(_)) {
            unused_settings.extend([s.key_id, s.alg, s.audience, s.cert_sha256]);
        }
        if !method.uses_certificate() {
            unused_settings.push(s.cert);
        }
        // The certificate travels in the TLS handshake: without TLS there is nothing to present
        // (check_url lets plain http through on loopback only, for the other methods).
        let scheme = endpoint.parse::<http::Uri>().ok().and_then(|u| u.scheme_str().map(str::to_string));
        // (An endpoint that does not parse, or has no scheme, is already reported by check_url.)
        if method.uses_certificate() && scheme.is_some_and(|s| s != "https") {
            self.problems.push(format!("{}: must use https when {} is {}", s.url, s.auth, method.name()));
        }
        for name in unused_settings {
            if self.optional(name).is_some() {
                self.problems.push(format!(
                    "{name} is set, but {} is {}, which does not use it",
                    s.auth,
                    method.name()
                ));
            }
        }
        let credential = SecretRef::parse(&self.required(used));
        let certificate = method.uses_certificate().then(|| SecretRef::parse(&self.required(s.cert)));
        Client { endpoint, client_id, method, credential, certificate, settings: s }
    }

    /// What `private_key_jwt` puts into each assertion besides the client id.
    fn assertion_settings(&mut self, s: &ClientSettings) -> AssertionSettings {
        let alg = self.optional(s.alg).and_then(|name| {
            let alg = Alg::parse(&name);
            if alg.is_none() {
                self.problems.push(format!("{} must be RS256, PS256 or ES256, got {name:?}", s.alg));
            }
            alg
        });
        let cert_sha256 = self.optional(s.cert_sha256);
        if cert_sha256.as_deref().is_some_and(|t| !client_auth::is_sha256_thumbprint(t)) {
            self.problems.push(format!(
                "{} must be the certificate's SHA-256 in base64url without padding (43 characters)",
                s.cert_sha256
            ));
        }
        AssertionSettings { audience: self.optional(s.audience), key_id: self.optional(s.key_id), alg, cert_sha256 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    const MINIMAL: &[(&str, &str)] = &[
        ("TOKENBRIDGE_INTROSPECTION_URL", "https://idp-a.example/introspect"),
        ("TOKENBRIDGE_INTROSPECTION_CLIENT_ID", "a-client"),
        ("TOKENBRIDGE_INTROSPECTION_CLIENT_SECRET", "a-secret-value"),
        ("TOKENBRIDGE_BACKEND_TOKEN_URL", "https://idp-b.example/token"),
        ("TOKENBRIDGE_BACKEND_CLIENT_ID", "b-client"),
        ("TOKENBRIDGE_BACKEND_CLIENT_SECRET", "b-secret-value"),
    ];

    #[test]
    fn every_setting_read_is_documented() {
        let read = std::cell::RefCell::new(Vec::new());
        let _ = Config::from_lookup(&|k| {
            read.borrow_mut().push(k.to_string());
            None
        });
        for name in read.into_inner() {
            let known = SETTINGS.iter().any(|s| s.name == name || s.alias == Some(name.as_str()));
            assert!(known, "{name} is read but not in SETTINGS");
        }
    }

    #[test]
    fn minimal_configuration_takes_the_defaults() {
        let c = Config::from_lookup(&lookup(MINIMAL)).unwrap();
        assert_eq!(c.call_timeout, Duration::from_secs(5));
        assert_eq!(c.cache_max_ttl, 300);
        assert_eq!(c.cache_inactive_ttl, 10);
        assert_eq!(c.context_key, "back_end_token");
        assert!(c.required_scopes.is_empty());
        assert!(c.backend_params.is_empty());
    }

    #[test]
    fn seed_keys_alone_are_a_complete_configuration() {
        let c = Config::from_lookup(&lookup(&[
            ("idcs_introspection_endpoint", "https://idcs.example/oauth2/v1/introspect"),
            ("idcs_app_client_id", "a"),
            ("idcs_app_client_secret_ocid", "ocid1.vaultsecret.oc1.iad.aaa"),
            ("back_end_token_endpoint", "https://idcs.example/oauth2/v1/token"),
            ("back_end_app_client_id", "b"),
            ("back_end_client_secret_ocid", "ocid1.vaultsecret.oc1.iad.bbb"),
        ]))
        .unwrap();
        assert_eq!(c.introspection.unwrap().endpoint, "https://idcs.example/oauth2/v1/introspect");
        assert!(matches!(c.backend.credential, SecretRef::Platform(_)));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = Config::from_lookup(&lookup(&[
            ("TOKENBRIDGE_INTROSPECTION_URL", "http://idp.example/introspect"),
            ("TOKENBRIDGE_TIMEOUT_MS", "soon"),
            ("TOKENBRIDGE_CLOCK_LEEWAY_SECONDS", "9999"),
        ]))
        .err()
        .unwrap();
        let all = err.0.join("\n");
        for expected in [
            "TOKENBRIDGE_INTROSPECTION_URL: must use https; plain http is allowed only on loopback (http://idp.example)",
            "TOKENBRIDGE_INTROSPECTION_CLIENT_ID (or idcs_app_client_id) is required",
            "TOKENBRIDGE_BACKEND_TOKEN_URL (or back_end_token_endpoint) is required",
            "TOKENBRIDGE_TIMEOUT_MS must be a whole number",
            "TOKENBRIDGE_CLOCK_LEEWAY_SECONDS must be a whole number from 0 to 300",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
    }

    #[test]
    fn a_forwarded_claim_may_not_take_a_key_tokenbridge_writes() {
        for claims in
            ["principal", "expires_at", "Scope", "client_id", "back_end_token", "sub CLIENT_ID", "principalid"]
        {
            let mut pairs = MINIMAL.to_vec();
            pairs.push(("TOKENBRIDGE_CONTEXT_CLAIMS", claims));
            let err = Config::from_lookup(&lookup(&pairs)).err().unwrap_or_else(|| panic!("{claims} accepted"));
            assert!(err.0.iter().any(|p| p.contains("would overwrite the context value")), "{err}");
        }
        let mut pairs = MINIMAL.to_vec();
        pairs.extend([("TOKENBRIDGE_CONTEXT_CLAIMS", "principal"), ("TOKENBRIDGE_CONTEXT_KEY", "backend")]);
        assert!(Config::from_lookup(&lookup(&pairs)).is_err(), "reserved whatever the token's own key");
        let mut pairs = MINIMAL.to_vec();
        pairs.extend([("TOKENBRIDGE_CONTEXT_CLAIMS", "sub email groups")]);
        assert!(Config::from_lookup(&lookup(&pairs)).is_ok());
    }

    /// MINIMAL at an identity domain: introspection there, its JWT issuer's keys there too.
    fn idcs(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut pairs: Vec<(&str, &str)> = MINIMAL
            .iter()
            .copied()
            .filter(|(k, _)| *k != "TOKENBRIDGE_INTROSPECTION_URL")
            .chain([
                ("TOKENBRIDGE_INTROSPECTION_URL", "https://idcs-1.identity.oraclecloud.com/oauth2/v1/introspect"),
                ("TOKENBRIDGE_ISSUER", "https://identity.oraclecloud.com/"),
                ("TOKENBRIDGE_AUDIENCE", "api"),
                ("TOKENBRIDGE_JWKS_URL", "https://idcs-1.identity.oraclecloud.com/admin/v1/SigningCert/jwk"),
                ("TOKENBRIDGE_JWKS_SCOPE", "urn:opc:idm:__myscopes__"),
            ])
            .collect();
        pairs.extend(extra.iter().copied());
        pairs
    }

    const IDCS_TOKEN: (&str, &str) =
        ("TOKENBRIDGE_JWKS_TOKEN_URL", "https://IDCS-1.identity.oraclecloud.com:443/oauth2/v1/token");

    #[test]
    fn the_jwks_token_borrows_the_introspection_client_at_the_same_origin() {
        let c = Config::from_lookup(&lookup(&idcs(&[IDCS_TOKEN]))).unwrap();
        let auth = c.jwks_auth.as_ref().expect("an authenticated JWKS fetch");
        assert_eq!(auth.client.endpoint, IDCS_TOKEN.1);
        assert_eq!(auth.client.client_id, "a-client");
        assert_eq!(auth.client.credential, SecretRef::parse("a-secret-value"));
        assert_eq!(auth.borrowed.map(|s| s.id), Some("TOKENBRIDGE_INTROSPECTION_CLIENT_ID"));
        assert_eq!(auth.scope.as_deref(), Some("urn:opc:idm:__myscopes__"));
        assert!(auth.covers(c.issuers[0].jwks_url.as_deref()));
        let shown = c.to_string();
        for line in [
            "TOKENBRIDGE_JWKS_CLIENT_ID = (the introspection client at the same origin: TOKENBRIDGE_INTROSPECTION_CLIENT_ID)\n",
            "TOKENBRIDGE_JWKS_SCOPE = urn:opc:idm:__myscopes__\n",
            "/admin/v1/SigningCert/jwk (with a bearer token from TOKENBRIDGE_JWKS_TOKEN_URL)",
        ] {
            assert!(shown.contains(line), "{line:?} missing from\n{shown}");
        }
        let secrets = Config::secrets_from_lookup(&lookup(&idcs(&[IDCS_TOKEN])));
        assert_eq!(secrets.len(), 2, "the borrowed secret is resolved once: {secrets:?}");
    }

    #[test]
    fn the_jwks_token_borrows_the_backend_client_when_only_it_is_at_that_origin() {
        let mut pairs = idcs(&[("TOKENBRIDGE_JWKS_TOKEN_URL", "https://idp-b.example/token")]);
        pairs.retain(|(k, _)| *k != "TOKENBRIDGE_JWKS_URL");
        pairs.push(("TOKENBRIDGE_JWKS_URL", "https://idp-b.example/jwks"));
        let c = Config::from_lookup(&lookup(&pairs)).unwrap();
        let auth = c.jwks_auth.unwrap();
        assert_eq!(
            (auth.client.client_id.as_str(), auth.borrowed.map(|s| s.id)),
            ("b-client", Some("TOKENBRIDGE_BACKEND_CLIENT_ID"))
        );
    }

    #[test]
    fn a_jwks_client_of_its_own_takes_every_client_setting_and_its_secret_is_never_shown() {
        let pairs = idcs(&[
            IDCS_TOKEN,
            ("TOKENBRIDGE_JWKS_CLIENT_ID", "jwks-reader"),
            ("TOKENBRIDGE_JWKS_CLIENT_SECRET", "hunter2-jwks"),
            ("TOKENBRIDGE_JWKS_CLIENT_AUTH", "client_secret_post"),
        ]);
        let c = Config::from_lookup(&lookup(&pairs)).unwrap();
        let auth = c.jwks_auth.as_ref().unwrap();
        assert_eq!((auth.client.client_id.as_str(), &auth.client.method), ("jwks-reader", &Method::SecretPost));
        assert!(auth.borrowed.is_none());
        let shown = c.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("TOKENBRIDGE_JWKS_CLIENT_SECRET = <redacted literal>\n"), "{shown}");
        let secrets = Config::secrets_from_lookup(&lookup(&pairs));
        assert_eq!(secrets.last().map(|(s, _)| *s), Some("TOKENBRIDGE_JWKS_CLIENT_SECRET"));

        let without_secret: Vec<_> =
            pairs.into_iter().filter(|(k, _)| *k != "TOKENBRIDGE_JWKS_CLIENT_SECRET").collect();
        let err = Config::from_lookup(&lookup(&without_secret)).err().unwrap();
        assert_eq!(err.0, ["TOKENBRIDGE_JWKS_CLIENT_SECRET is required"]);
    }

    #[test]
    fn a_jwks_token_url_must_be_https_on_the_origin_of_a_local_issuers_jwks_with_a_client_there() {
        let problems = |extra: &[(&'static str, &'static str)]| {
            Config::from_lookup(&lookup(&idcs(extra))).err().map(|e| e.0).unwrap_or_default()
        };
        assert_eq!(
            problems(&[("TOKENBRIDGE_JWKS_TOKEN_URL", "http://idcs-1.identity.oraclecloud.com/oauth2/v1/token")]),
            [
                "TOKENBRIDGE_JWKS_TOKEN_URL: must use https; plain http is allowed only on loopback (http://idcs-1.identity.oraclecloud.com)",
                "TOKENBRIDGE_JWKS_TOKEN_URL: neither the introspection client nor the backend client is at the origin of http://idcs-1.identity.oraclecloud.com/…: set TOKENBRIDGE_JWKS_CLIENT_ID and its credential",
            ]
        );
        let other_domain = [
            ("TOKENBRIDGE_JWKS_TOKEN_URL", "https://idcs-2.identity.oraclecloud.com/oauth2/v1/token"),
            ("TOKENBRIDGE_JWKS_CLIENT_ID", "jwks-reader"),
            ("TOKENBRIDGE_JWKS_CLIENT_SECRET", "s"),
        ];
        assert_eq!(
            problems(&other_domain),
            [
                "TOKENBRIDGE_JWKS_TOKEN_URL: no issuer verified here has its JWKS URL (jwks_url, TOKENBRIDGE_JWKS_URL) at the origin of https://idcs-2.identity.oraclecloud.com/oauth2/v1/token; the bearer token is sent to no other"
            ]
        );
        let p = problems(&[("TOKENBRIDGE_JWKS_TOKEN_URL", "https://idcs-2.identity.oraclecloud.com/oauth2/v1/token")]);
        assert!(p[0].contains("neither the introspection client nor the backend client"), "{p:?}");
    }

    #[test]
    fn jwks_client_settings_without_the_token_url_are_problems() {
        let pairs = idcs(&[("TOKENBRIDGE_JWKS_CLIENT_ID", "jwks-reader")]);
        assert_eq!(
            Config::from_lookup(&lookup(&pairs)).err().unwrap().0,
            [
                "TOKENBRIDGE_JWKS_CLIENT_ID is set, but TOKENBRIDGE_JWKS_TOKEN_URL is not",
                "TOKENBRIDGE_JWKS_SCOPE is set, but TOKENBRIDGE_JWKS_TOKEN_URL is not",
            ]
        );
        let plain = Config::from_lookup(&lookup(MINIMAL)).unwrap();
        assert!(plain.jwks_auth.is_none());
        assert!(
            plain.to_string().contains("TOKENBRIDGE_JWKS_TOKEN_URL = (unset: every JWKS is fetched without a token)\n")
        );
    }

    #[test]
    fn alias_and_name_disagreeing_is_a_problem() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("idcs_app_client_id", "other"));
        let err = Config::from_lookup(&lookup(&pairs)).err().unwrap();
        assert!(err.0[0].contains("alias idcs_app_client_id"), "{err}");
    }

    #[test]
    fn a_rejected_url_is_never_shown_whole() {
        for url in [
            "https://u:hunter2@/t",
            "https://u:hunter2@idp.example/t",
            "u:hunter2@idp.example/t",
            "https://idp.example/t?client_secret=hunter2",
            "http://idp.example/hunter2",
            "hunter2",
        ] {
            let issuers = format!(r#"[{{"issuer":"{url}","jwks_url":"{url}","audiences":["api"]}}]"#);
            let mut pairs = MINIMAL.to_vec();
            pairs.push(("TOKENBRIDGE_INTROSPECTION_URL", url));
            pairs.push(("TOKENBRIDGE_ISSUERS", &issuers));
            let problems = Config::from_lookup(&lookup(&pairs)).err().unwrap().0;
            assert!(problems.iter().any(|p| p.starts_with("TOKENBRIDGE_INTROSPECTION_URL: ")), "{problems:?}");
            assert_eq!(problems.len(), 3, "{problems:?}");
            for p in &problems {
                assert!(!p.contains("hunter2"), "{url}: {p}");
            }
        }
    }

    #[test]
    fn secrets_are_read_even_when_other_settings_are_invalid() {
        let mut pairs = MINIMAL.to_vec();
        pairs.retain(|(k, _)| *k != "TOKENBRIDGE_BACKEND_CLIENT_SECRET");
        pairs.push(("back_end_client_secret_ocid", "file:/nonexistent/secret"));
        pairs.push(("TOKENBRIDGE_TIMEOUT_MS", "never"));
        let secrets = Config::secrets_from_lookup(&lookup(&pairs));
        let names: Vec<_> = secrets.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["TOKENBRIDGE_INTROSPECTION_CLIENT_SECRET", "TOKENBRIDGE_BACKEND_CLIENT_SECRET"]);
        assert_eq!(secrets[1].1, SecretRef::File("/nonexistent/secret".into()));
    }

    #[test]
    fn an_unset_secret_is_not_among_those_to_resolve() {
        let pairs: Vec<_> = MINIMAL.iter().copied().filter(|(k, _)| !k.ends_with("CLIENT_SECRET")).collect();
        assert!(Config::secrets_from_lookup(&lookup(&pairs)).is_empty());
    }

    #[test]
    fn display_redacts_literal_secrets() {
        let c = Config::from_lookup(&lookup(MINIMAL)).unwrap();
        let shown = c.to_string();
        assert!(!shown.contains("a-secret-value") && !shown.contains("b-secret-value"), "{shown}");
        assert!(shown.contains("TOKENBRIDGE_INTROSPECTION_CLIENT_SECRET = <redacted literal>"));
    }

    #[test]
    fn backend_grant_parameters_are_passed_when_set() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("TOKENBRIDGE_BACKEND_SCOPE", "orders.read"));
        pairs.push(("TOKENBRIDGE_BACKEND_RESOURCE", "https://api.example"));
        let c = Config::from_lookup(&lookup(&pairs)).unwrap();
        assert_eq!(
            c.backend_params,
            vec![("scope", "orders.read".to_string()), ("resource", "https://api.example".to_string())]
        );
    }

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut pairs = MINIMAL.to_vec();
        pairs.extend(extra.iter().copied());
        pairs
    }

    #[test]
    fn client_secret_basic_is_the_default_and_client_secret_post_is_chosen_per_idp() {
        let c = Config::from_lookup(&lookup(MINIMAL)).unwrap();
        assert_eq!(c.introspection.unwrap().method, Method::SecretBasic);
        assert_eq!(c.backend.method, Method::SecretBasic);
        let c =
            Config::from_lookup(&lookup(&with(&[("TOKENBRIDGE_BACKEND_CLIENT_AUTH", "client_secret_post")]))).unwrap();
        assert_eq!(c.introspection.unwrap().method, Method::SecretBasic);
        assert_eq!(c.backend.method, Method::SecretPost);
    }

    #[test]
    fn an_unknown_client_authentication_method_is_a_problem() {
        for value in ["client_secret_jwt", "Client_Secret_Post", "TLS_CLIENT_AUTH", "none"] {
            let err = Config::from_lookup(&lookup(&with(&[("TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH", value)])))
                .err()
                .unwrap_or_else(|| panic!("{value} accepted"));
            assert!(err.0[0].starts_with("TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH must be client_secret_basic"), "{err}");
        }
    }

    #[test]
    fn private_key_jwt_needs_the_key_instead_of_the_secret() {
        let mut pairs = with(&[
            ("TOKENBRIDGE_BACKEND_CLIENT_AUTH", "private_key_jwt"),
            ("TOKENBRIDGE_BACKEND_CLIENT_KEY", "file:/run/secrets/key.pem"),
            ("TOKENBRIDGE_BACKEND_CLIENT_KEY_ID", "k1"),
            ("TOKENBRIDGE_BACKEND_CLIENT_ASSERTION_ALG", "PS256"),
            ("TOKENBRIDGE_BACKEND_CLIENT_ASSERTION_AUDIENCE", "https://idp-b.example"),
        ]);
        pairs.retain(|(k, _)| *k != "TOKENBRIDGE_BACKEND_CLIENT_SECRET");
        let c = Config::from_lookup(&lookup(&pairs)).unwrap();
        let expected = AssertionSettings {
            audience: Some("https://idp-b.example".into()),
            key_id: Some("k1".into()),
            alg: Some(Alg::PS256),
            cert_sha256: None,
        };
        assert_eq!(c.backend.method, Method::PrivateKeyJwt(expected));
        assert_eq!(c.backend.credential, SecretRef::File("/run/secrets/key.pem".into()));
        let secrets = Config::secrets_from_lookup(&lookup(&pairs));
        assert_eq!(secrets[1], ("TOKENBRIDGE_BACKEND_CLIENT_KEY", SecretRef::File("/run/secrets/key.pem".into())));

        pairs.retain(|(k, _)| *k != "TOKENBRIDGE_BACKEND_CLIENT_KEY");
        let err = Config::from_lookup(&lookup(&pairs)).err().unwrap();
        assert_eq!(err.0, ["TOKENBRIDGE_BACKEND_CLIENT_KEY is required"]);
    }

    #[test]
    fn a_setting_the_chosen_method_does_not_use_is_a_problem() {
        let err = Config::from_lookup(&lookup(&with(&[
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_KEY", "file:/k.pem"),
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_KEY_ID", "k1"),
            ("TOKENBRIDGE_BACKEND_CLIENT_AUTH", "private_key_jwt"),
            ("TOKENBRIDGE_BACKEND_CLIENT_KEY", "file:/k.pem"),
        ])))
        .err()
        .unwrap();
        assert_eq!(
            err.0,
            [
                "TOKENBRIDGE_INTROSPECTION_CLIENT_KEY is set, but TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH is client_secret_basic, which does not use it",
                "TOKENBRIDGE_INTROSPECTION_CLIENT_KEY_ID is set, but TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH is client_secret_basic, which does not use it",
                "TOKENBRIDGE_BACKEND_CLIENT_SECRET is set, but TOKENBRIDGE_BACKEND_CLIENT_AUTH is private_key_jwt, which does not use it",
            ]
        );
    }

    #[test]
    fn a_bad_assertion_algorithm_or_thumbprint_is_a_problem() {
        let mut pairs = with(&[
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH", "private_key_jwt"),
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_KEY", "file:/k.pem"),
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_ASSERTION_ALG", "rs256"),
            // A SHA-1 thumbprint in hex, as the Entra portal shows it: not what x5t#S256 carries.
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_CERT_SHA256", "3F2A9C1B5D7E8F60112233445566778899AABBCC"),
        ]);
        pairs.retain(|(k, _)| *k != "TOKENBRIDGE_INTROSPECTION_CLIENT_SECRET");
        let err = Config::from_lookup(&lookup(&pairs)).err().unwrap();
        assert_eq!(err.0.len(), 2, "{err}");
        assert!(err.0[0].starts_with("TOKENBRIDGE_INTROSPECTION_CLIENT_ASSERTION_ALG must be RS256, PS256 or ES256"));
        assert!(err.0[1].starts_with("TOKENBRIDGE_INTROSPECTION_CLIENT_CERT_SHA256 must be the certificate's SHA-256"));
    }

    #[test]
    fn display_names_the_method_and_redacts_a_literal_key() {
        let c = Config::from_lookup(&lookup(&with(&[("TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH", "client_secret_post")])))
            .unwrap();
        let shown = c.to_string();
        assert!(shown.contains("TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH = client_secret_post\n"), "{shown}");
        assert!(shown.contains("TOKENBRIDGE_BACKEND_CLIENT_AUTH = client_secret_basic\n"), "{shown}");

        let mut pairs = with(&[
            ("TOKENBRIDGE_BACKEND_CLIENT_AUTH", "private_key_jwt"),
            ("TOKENBRIDGE_BACKEND_CLIENT_KEY", "-----BEGIN PRIVATE KEY-----\nhunter2\n-----END PRIVATE KEY-----"),
        ]);
        pairs.retain(|(k, _)| *k != "TOKENBRIDGE_BACKEND_CLIENT_SECRET");
        let shown = Config::from_lookup(&lookup(&pairs)).unwrap().to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        for line in [
            "TOKENBRIDGE_BACKEND_CLIENT_AUTH = private_key_jwt\n",
            "TOKENBRIDGE_BACKEND_CLIENT_KEY = <redacted literal>\n",
            "TOKENBRIDGE_BACKEND_CLIENT_ASSERTION_ALG = (from the key)\n",
            "TOKENBRIDGE_BACKEND_CLIENT_ASSERTION_AUDIENCE = (the endpoint URL)\n",
        ] {
            assert!(shown.contains(line), "{line:?} missing from\n{shown}");
        }
        assert!(!shown.contains("TOKENBRIDGE_BACKEND_CLIENT_SECRET"), "{shown}");
    }

    /// MINIMAL with IdP `who` (INTROSPECTION or BACKEND) on `method`, with a certificate and key.
    fn tls_pairs(who: &str, method: &'static str) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = MINIMAL
            .iter()
            .filter(|(k, _)| *k != format!("TOKENBRIDGE_{who}_CLIENT_SECRET"))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in [("CLIENT_AUTH", method), ("CLIENT_CERT", "file:/run/cert.pem"), ("CLIENT_KEY", "env:KEY_PEM")] {
            pairs.push((format!("TOKENBRIDGE_{who}_{k}"), v.to_string()));
        }
        pairs
    }

    fn read_pairs(pairs: &[(String, String)]) -> Result<Config, ConfigErrors> {
        let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Config::from_lookup(&lookup(&borrowed))
    }

    #[test]
    fn the_tls_methods_take_a_certificate_and_the_key_instead_of_the_secret_at_either_idp() {
        for who in ["INTROSPECTION", "BACKEND"] {
            for (name, method) in [
                ("tls_client_auth", Method::TlsClientAuth),
                ("self_signed_tls_client_auth", Method::SelfSignedTlsClientAuth),
            ] {
                let pairs = tls_pairs(who, name);
                let c = read_pairs(&pairs).unwrap_or_else(|e| panic!("{who} {name}: {e}"));
                let client = if who == "BACKEND" { c.backend } else { c.introspection.unwrap() };
                assert_eq!(client.method, method);
                assert_eq!(client.credential, SecretRef::Env("KEY_PEM".into()));
                assert_eq!(client.certificate, Some(SecretRef::File("/run/cert.pem".into())));
                let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let secrets = Config::secrets_from_lookup(&lookup(&borrowed));
                let key = format!("TOKENBRIDGE_{who}_CLIENT_KEY");
                let cert = format!("TOKENBRIDGE_{who}_CLIENT_CERT");
                assert!(
                    secrets.iter().any(|(s, r)| *s == key && *r == SecretRef::Env("KEY_PEM".into())),
                    "{secrets:?}"
                );
                assert!(secrets.iter().any(|(s, _)| *s == cert), "{secrets:?}");
            }
        }
    }

    #[test]
    fn a_tls_method_needs_the_certificate_and_the_key() {
        let mut pairs = tls_pairs("BACKEND", "tls_client_auth");
        pairs.retain(|(k, _)| !k.ends_with("_CLIENT_CERT") && !k.ends_with("_CLIENT_KEY"));
        let err = read_pairs(&pairs).err().unwrap();
        assert_eq!(
            err.0,
            ["TOKENBRIDGE_BACKEND_CLIENT_KEY is required", "TOKENBRIDGE_BACKEND_CLIENT_CERT is required"]
        );
    }

    #[test]
    fn a_tls_method_refuses_a_plain_http_endpoint_even_on_loopback() {
        let mut pairs = tls_pairs("INTROSPECTION", "self_signed_tls_client_auth");
        for (k, v) in &mut pairs {
            if k == "TOKENBRIDGE_INTROSPECTION_URL" {
                *v = "http://127.0.0.1:9000/introspect".into();
            }
        }
        let err = read_pairs(&pairs).err().unwrap();
        assert_eq!(
            err.0,
            [
                "TOKENBRIDGE_INTROSPECTION_URL: must use https when TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH is self_signed_tls_client_auth"
            ]
        );
        for (k, v) in &mut pairs {
            if k == "TOKENBRIDGE_INTROSPECTION_URL" {
                *v = "HTTPS://idp-a.example/introspect".into();
            }
        }
        assert!(read_pairs(&pairs).is_ok(), "the scheme is case-insensitive");
    }

    #[test]
    fn settings_a_tls_method_does_not_use_are_problems_and_so_is_a_certificate_without_one() {
        let mut pairs = tls_pairs("BACKEND", "tls_client_auth");
        pairs.push(("TOKENBRIDGE_BACKEND_CLIENT_SECRET".into(), "s".into()));
        pairs.push(("TOKENBRIDGE_BACKEND_CLIENT_KEY_ID".into(), "k1".into()));
        pairs.push(("TOKENBRIDGE_INTROSPECTION_CLIENT_CERT".into(), "file:/c.pem".into()));
        let err = read_pairs(&pairs).err().unwrap();
        assert_eq!(
            err.0,
            [
                "TOKENBRIDGE_INTROSPECTION_CLIENT_CERT is set, but TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH is client_secret_basic, which does not use it",
                "TOKENBRIDGE_BACKEND_CLIENT_SECRET is set, but TOKENBRIDGE_BACKEND_CLIENT_AUTH is tls_client_auth, which does not use it",
                "TOKENBRIDGE_BACKEND_CLIENT_KEY_ID is set, but TOKENBRIDGE_BACKEND_CLIENT_AUTH is tls_client_auth, which does not use it",
            ]
        );
    }

    #[test]
    fn display_names_a_tls_method_and_shows_no_literal_key() {
        let mut pairs = tls_pairs("BACKEND", "tls_client_auth");
        pairs.retain(|(k, _)| !k.ends_with("_CLIENT_KEY"));
        pairs.push((
            "TOKENBRIDGE_BACKEND_CLIENT_KEY".into(),
            "-----BEGIN PRIVATE KEY-----\nhunter2\n-----END PRIVATE KEY-----".into(),
        ));
        let shown = read_pairs(&pairs).unwrap().to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        for line in [
            "TOKENBRIDGE_BACKEND_CLIENT_AUTH = tls_client_auth\n",
            "TOKENBRIDGE_BACKEND_CLIENT_KEY = <redacted literal>\n",
            "TOKENBRIDGE_BACKEND_CLIENT_CERT = file:/run/cert.pem\n",
        ] {
            assert!(shown.contains(line), "{line:?} missing from\n{shown}");
        }
        assert!(!shown.contains("ASSERTION"), "{shown}");
    }
}
