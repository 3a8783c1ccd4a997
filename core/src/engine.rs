//! The decision pipeline: extract → validate → authorize → backend token → outcome. The only
//! place that knows the order of the stages.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{self, BackendToken};
use crate::bearer::{self, Credential};
use crate::cache::{Cache, Entry};
use crate::clock::{Clock, SystemClock, UnixTime};
use crate::config::Mode;
use crate::config::{Client, Config, ConfigErrors};
use crate::http::{Answer, HttpClient};
use crate::introspection::{self, Identity, Verdict};
use crate::jwt::{self, Jwks, KeysProblem, Peek, Unreadable};
use crate::log::{self, Trace};
use crate::outcome::{Cause, Denial, Dependency, Failure, Grant, Outcome, Request};
use crate::reason::Reason;
use crate::secret::{self, Secret, SecretCell, SecretError, SecretProblem, SecretResolver};

type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;
type Sink = dyn Fn(&str) + Send + Sync;

/// Makes decisions. Built once per process and shared: its caches and connections are what
/// make warm calls cheap. See the crate documentation for an example.
pub struct Engine {
    setup: Result<Parts, ConfigErrors>,
    clock: Arc<dyn Clock>,
    resolvers: Vec<Box<dyn SecretResolver>>,
    env: Box<Lookup>,
    sink: Box<Sink>,
}

/// What a valid configuration builds.
struct Parts {
    config: Config,
    http: HttpClient,
    /// Verdicts by what was asked and the token's SHA-256.
    validations: Cache<(Check, [u8; 32]), Verdict, Cause>,
    backend_tokens: Cache<(), BackendToken, Cause>,
    introspection_secret: Option<SecretCell>,
    backend_secret: SecretCell,
    /// JWKS per issuer name.
    jwks: HashMap<String, Jwks>,
}

/// What a cached verdict answers: the token's validation, or the introspection of a locally
/// verified JWT on a sensitive route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Check {
    Validation,
    Recheck,
}

/// How one token is validated.
enum Path<'a> {
    /// At IdP A; `jwt` when the token is one, with the (unverified) issuer it names.
    Introspect {
        named: Option<String>,
        jwt: bool,
    },
    Local(&'a Jwks, Box<Peek>),
    Reject(Reason),
}

/// Configures an [`Engine`]: where configuration, time, platform secrets and logs come from.
pub struct EngineBuilder {
    config: Result<Config, ConfigErrors>,
    clock: Arc<dyn Clock>,
    resolvers: Vec<Box<dyn SecretResolver>>,
    env: Box<Lookup>,
    sink: Box<Sink>,
}

impl EngineBuilder {
    /// Uses this clock instead of the system's (tests, with [`crate::testing::ManualClock`]).
    #[cfg(feature = "testing")]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Adds a resolver for platform secret references (OCI Vault, AWS Secrets Manager).
    pub fn resolver(mut self, resolver: Box<dyn SecretResolver>) -> Self {
        self.resolvers.push(resolver);
        self
    }

    /// Sends decision log lines here instead of stderr.
    pub fn log_sink(mut self, sink: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.sink = Box::new(sink);
        self
    }

    /// Reads `env:` secret references through `lookup` instead of the process environment.
    pub fn env(mut self, lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        self.env = Box::new(lookup);
        self
    }

    pub fn build(self) -> Engine {
        let setup = self.config.map(|config| Parts {
            http: HttpClient::new(
                config.connect_timeout,
                config.call_timeout,
                config.max_answer_bytes,
                config.ca_certificates.as_deref(),
            ),
            validations: Cache::new(config.cache_capacity),
            backend_tokens: Cache::new(1),
            introspection_secret: config.introspection.as_ref().map(|c| SecretCell::new(c.secret.clone())),
            backend_secret: SecretCell::new(config.backend.secret.clone()),
            jwks: jwt::by_issuer(config.issuers.clone(), config.jwks_max_age),
            config,
        });
        Engine { setup, clock: self.clock, resolvers: self.resolvers, env: self.env, sink: self.sink }
    }
}

/// The process's engine: OCI and Lambda reuse it across warm invocations, the HTTP adapter
/// shares it across worker threads.
static GLOBAL: once_cell::sync::OnceCell<Engine> = once_cell::sync::OnceCell::new();

/// The process's engine, configured from the environment on first use.
pub fn global() -> &'static Engine {
    GLOBAL.get_or_init(Engine::from_env)
}

/// Makes `engine` the process's engine (for adapters that register secret resolvers). If the
/// process's engine was already built, `engine` is dropped and the existing one is the `Err`.
pub fn set_global(engine: Engine) -> Result<&'static Engine, &'static Engine> {
    match GLOBAL.set(engine) {
        Ok(()) => Ok(global()),
        Err(_) => Err(global()),
    }
}

fn stderr_sink(line: &str) {
    // A failed log write must not fail the decision.
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

impl Engine {
    /// A builder around a configuration (or the problems found in it).
    pub fn builder(config: Result<Config, ConfigErrors>) -> EngineBuilder {
        EngineBuilder {
            config,
            clock: Arc::new(SystemClock),
            resolvers: Vec::new(),
            env: Box::new(|k| std::env::var(k).ok()),
            sink: Box::new(stderr_sink),
        }
    }

    /// An engine configured from the process environment. A bad configuration does not fail
    /// here: every decision then answers Unavailable and logs the problems.
    pub fn from_env() -> Engine {
        Self::builder(Config::from_env()).build()
    }

    /// The configuration in force, or every problem with it.
    pub fn config(&self) -> Result<&Config, &ConfigErrors> {
        self.setup.as_ref().map(|p| &p.config)
    }

    /// Resolves both client secrets now, reporting each that cannot be had. For `check-config`
    /// and for adapters that want to fail fast.
    /// With an invalid configuration there is nothing to resolve: see [`Engine::check_secret_refs`].
    pub fn check_secrets(&self) -> Vec<SecretProblem> {
        let Ok(parts) = &self.setup else { return Vec::new() };
        let cells = [
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_SECRET", parts.introspection_secret.as_ref()),
            ("TOKENBRIDGE_BACKEND_CLIENT_SECRET", Some(&parts.backend_secret)),
        ];
        cells
            .into_iter()
            .filter_map(|(name, cell)| Some((name, cell?)))
            .filter_map(|(name, cell)| self.check_secret(name, cell))
            .collect()
    }

    /// Resolves these secrets now with this engine's resolvers, reporting each that cannot be
    /// had; for `check-config` when the configuration is invalid but its secret settings
    /// ([`Config::secrets_from_lookup`]) can still be checked.
    pub fn check_secret_refs(&self, secrets: &[(&'static str, secret::SecretRef)]) -> Vec<SecretProblem> {
        secrets
            .iter()
            .filter_map(|(name, reference)| self.check_secret(name, &SecretCell::new(reference.clone())))
            .collect()
    }

    fn check_secret(&self, setting: &'static str, cell: &SecretCell) -> Option<SecretProblem> {
        self.secret(cell, None).err().map(|error| SecretProblem { setting, error })
    }

    /// Loads every local issuer's keys now, each within `budget`, so the first request does not
    /// pay for it. Returns whether all of them are held.
    pub fn warm(&self, budget: Duration) -> bool {
        let Ok(parts) = &self.setup else { return false };
        let deadline = Instant::now() + budget;
        parts.jwks.values().filter(|j| j.issuer.local).all(|j| j.warm(&parts.http, self.clock.now(), deadline).is_ok())
    }

    /// For `check-config`: loads every local issuer's keys, all within `budget`, and names the
    /// issuers whose keys cannot be had, and why.
    pub fn check_keys(&self, budget: Duration) -> Vec<KeysProblem> {
        let Ok(parts) = &self.setup else { return Vec::new() };
        let deadline = Instant::now() + budget;
        let mut problems: Vec<KeysProblem> = (parts.jwks.values().filter(|j| j.issuer.local))
            .filter_map(|j| j.warm(&parts.http, self.clock.now(), deadline).err().map(|c| (j, c)))
            .map(|(j, cause)| KeysProblem { issuer: j.issuer.issuer.clone(), cause })
            .collect();
        problems.sort_by(|a, b| a.issuer.cmp(&b.issuer));
        problems
    }

    /// Ready to decide: the configuration is valid and every local issuer's keys are held.
    pub fn is_ready(&self) -> bool {
        let Ok(parts) = &self.setup else { return false };
        parts.jwks.values().filter(|j| j.issuer.local).all(|j| j.is_warm(self.clock.now()))
    }

    /// Answers one request. Never panics on any input or IdP answer; logs one line.
    pub fn decide(&self, request: &Request) -> Outcome {
        let started = Instant::now();
        let mut trace = Trace::default();
        let outcome = self.run(request, &mut trace);
        let now =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        (self.sink)(&log::decision_line(
            request.call_id.as_deref(),
            &outcome,
            &trace,
            started.elapsed().as_micros(),
            &now,
        ));
        outcome
    }

    fn run(&self, request: &Request, trace: &mut Trace) -> Outcome {
        let parts = match &self.setup {
            Ok(parts) => parts,
            Err(problems) => {
                trace.detail = Some(problems.to_string());
                return Outcome::Unavailable(Cause::new(Dependency::Configuration, Failure::Invalid));
            }
        };
        let token = match bearer::extract(request.credential.as_deref()) {
            Credential::Missing => return Outcome::Deny(Denial::MissingToken),
            Credential::Malformed => {
                trace.reason = Some(Reason::MalformedToken);
                return Outcome::Deny(Denial::InvalidToken);
            }
            Credential::Bearer(token) => token,
        };
        trace.token = Some(log::fingerprint(token));
        let rule = match parts.config.policy.rule_for(&request.route) {
            Ok(rule) => rule,
            Err(no_rule) => {
                trace.reason = Some(no_rule.reason());
                return Outcome::Deny(Denial::InsufficientScope { required: Vec::new() });
            }
        };

        let identity = match self.validate(parts, token, rule.introspect, request.deadline, trace) {
            Ok(Verdict::Active(identity)) => identity,
            Ok(Verdict::Invalid(why)) => {
                trace.reason = Some(why);
                return Outcome::Deny(Denial::InvalidToken);
            }
            Err(cause) => return Outcome::Unavailable(cause),
        };
        trace.principal = Some(identity.principal.clone());
        trace.client_id = identity.client_id.clone();
        if let Err(denial) = rule.check(&identity) {
            if denial == Denial::InvalidToken {
                trace.reason = Some(Reason::IssuerOrAudienceNotAcceptedHere);
            }
            return Outcome::Deny(denial);
        }
        match self.backend_token(parts, request.deadline, trace) {
            Ok(backend) => Outcome::Allow(self.grant(parts, identity, &backend)),
            Err(cause) => Outcome::Unavailable(cause),
        }
    }

    /// The cached verdict on `token`, else a fresh one: verified locally when it is a JWT of a
    /// local issuer, else from IdP A. With `recheck`, a locally verified token is also
    /// introspected (to catch revocation).
    fn validate(
        &self,
        parts: &Parts,
        token: &str,
        recheck: bool,
        deadline: Option<Instant>,
        trace: &mut Trace,
    ) -> Result<Verdict, Cause> {
        let hash = log::token_hash(token);
        let verdict =
            self.cached(parts, (Check::Validation, hash), deadline, trace, |trace| match self.path(parts, token) {
                Path::Introspect { named, jwt } => {
                    let verdict = self.introspect(parts, token, deadline, trace)?;
                    Ok(audience_checked(parts, named.as_deref(), jwt, verdict))
                }
                Path::Reject(why) => Ok(Verdict::Invalid(why)),
                Path::Local(jwks, peeked) => {
                    let at = jwt::At {
                        http: &parts.http,
                        now: self.clock.now(),
                        wait_until: self.wait_until(parts, deadline),
                        deadline,
                        leeway: parts.config.leeway,
                        claim_names: &parts.config.context_claims,
                    };
                    jwks.validate(token, &peeked, &at)
                }
            })?;
        match verdict {
            Verdict::Active(identity) if recheck && identity.verified_locally => {
                let key = (Check::Recheck, hash);
                match self
                    .cached(parts, key, deadline, trace, |trace| self.introspect(parts, token, deadline, trace))?
                {
                    Verdict::Active(_) => Ok(Verdict::Active(identity)),
                    invalid => Ok(invalid),
                }
            }
            verdict => Ok(verdict),
        }
    }

    /// How `token` is validated, from the mode and its (unverified) issuer.
    fn path<'a>(&self, parts: &'a Parts, token: &str) -> Path<'a> {
        let mode = parts.config.mode;
        let peeked = match jwt::peek(token) {
            Ok(peeked) => peeked,
            Err(Unreadable::NotJwt) if mode == Mode::Jwt => return Path::Reject(Reason::NotAJwt),
            Err(Unreadable::NotJwt) => return Path::Introspect { named: None, jwt: false },
            // A JWT tokenbridge could never verify is refused where tokenbridge would verify
            // it: in `auto` mode, when it names a local issuer, or names none it can read while
            // some issuer is local (sent to IdP A, it would dodge that issuer's checks). An
            // introspected one is the IdP's to judge, as every token in that mode is.
            Err(Unreadable::Refused(why, named)) => {
                let local = |i: &String| parts.jwks.get(i).is_some_and(|j| j.issuer.local);
                let any_local = parts.jwks.values().any(|j| j.issuer.local);
                return match mode {
                    Mode::Introspection => Path::Introspect { named, jwt: true },
                    Mode::Auto if !named.as_ref().map_or(any_local, local) => Path::Introspect { named, jwt: true },
                    _ => Path::Reject(why),
                };
            }
        };
        match peeked.issuer.as_ref().and_then(|i| parts.jwks.get(i)) {
            Some(jwks) if jwks.issuer.local && mode != Mode::Introspection => Path::Local(jwks, Box::new(peeked)),
            None if mode == Mode::Jwt => Path::Reject(Reason::UnknownIssuer),
            _ => Path::Introspect { named: peeked.issuer, jwt: true },
        }
    }

    /// A verdict from the validation cache, or `load`'s, kept until the token's expiry (at most
    /// the configured maximum), or briefly when it is a refusal.
    fn cached(
        &self,
        parts: &Parts,
        key: (Check, [u8; 32]),
        deadline: Option<Instant>,
        trace: &mut Trace,
        load: impl FnOnce(&mut Trace) -> Result<Verdict, Cause>,
    ) -> Result<Verdict, Cause> {
        let now = self.clock.now();
        let config = &parts.config;
        let wait_until = self.wait_until(parts, deadline);
        let timed_out = Cause::new(Dependency::Introspection, waited_too_long(deadline));
        let (verdict, lookup) = parts.validations.get_or_load(&key, now, wait_until, timed_out, || {
            let verdict = load(trace)?;
            Ok(match &verdict {
                Verdict::Active(Identity { expires_at, .. }) => {
                    let max = now.saturating_add(config.cache_max_ttl);
                    let fresh_until = expires_at.map_or(max, |exp| exp.min(max));
                    // While IdP A fails, a known-good answer may serve a little longer, but never
                    // past the token's own expiry.
                    let stale = fresh_until.saturating_add(config.stale_if_error);
                    let usable_until = expires_at.map_or(stale, |exp| exp.min(stale));
                    Entry { value: verdict, fresh_until, usable_until }
                }
                Verdict::Invalid(_) => Entry::until(verdict, now.saturating_add(config.cache_inactive_ttl)),
            })
        })?;
        trace.validation = Some(lookup);
        Ok(verdict)
    }

    /// IdP A's verdict (RFC 7662).
    fn introspect(
        &self,
        parts: &Parts,
        token: &str,
        deadline: Option<Instant>,
        trace: &mut Trace,
    ) -> Result<Verdict, Cause> {
        let now = self.clock.now();
        let config = &parts.config;
        let form = [("token", token), ("token_type_hint", "access_token")];
        self.call_idp(parts, Dependency::Introspection, &form, deadline, trace, |a| {
            let required_type = config.introspection_token_type.as_deref();
            introspection::read_answer(a.status, &a.body, now, config.leeway, &config.context_claims, required_type)
        })
    }

    /// The cached backend token, refreshed early; a still-valid token is served when a
    /// refresh fails.
    fn backend_token(
        &self,
        parts: &Parts,
        deadline: Option<Instant>,
        trace: &mut Trace,
    ) -> Result<BackendToken, Cause> {
        let now = self.clock.now();
        let config = &parts.config;
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        form.extend(config.backend_params.iter().map(|(k, v)| (*k, v.as_str())));
        let timed_out = Cause::new(Dependency::BackendToken, waited_too_long(deadline));
        let result = parts.backend_tokens.get_or_load(&(), now, self.wait_until(parts, deadline), timed_out, || {
            let token = self.call_idp(parts, Dependency::BackendToken, &form, deadline, trace, |a| {
                backend::read_answer(a.status, &a.body, now, config.backend_default_ttl)
            })?;
            let (margin, min_remaining) = (config.backend_refresh_margin, config.backend_min_remaining);
            Ok(Entry {
                fresh_until: token.refresh_at(margin, min_remaining),
                usable_until: token.usable_until(min_remaining),
                value: token,
            })
        });
        let (token, lookup) = result?;
        if let crate::cache::Lookup::Stale(cause) = lookup {
            trace.detail =
                Some(format!("backend token refresh failed ({cause}); serving the cached token until it expires"));
        }
        trace.backend = Some(lookup);
        Ok(token)
    }

    fn grant(&self, parts: &Parts, identity: Identity, backend: &BackendToken) -> Grant {
        let config = &parts.config;
        let caller_expiry =
            identity.expires_at.unwrap_or_else(|| self.clock.now().saturating_add(config.cache_max_ttl));
        let mut context: BTreeMap<String, String> = identity.claims.clone();
        context.insert(config.context_key.clone(), format!("Bearer {}", backend.access_token.expose()));
        Grant {
            principal: identity.principal,
            scopes: identity.scopes,
            client_id: identity.client_id,
            // A caller token inside the clock leeway has an `exp` just past: gateways are told
            // "now", never a time before it.
            expires_at: expiry(caller_expiry, backend.expires_at).max(self.clock.now()),
            context,
        }
    }

    /// Calls one IdP endpoint with our client credentials and reads its answer; when the IdP
    /// rejects our client, fetches the secret again (rotation) and retries once if it changed.
    fn call_idp<T>(
        &self,
        parts: &Parts,
        dependency: Dependency,
        form: &[(&str, &str)],
        deadline: Option<Instant>,
        trace: &mut Trace,
        read: impl Fn(&Answer) -> Result<T, Failure>,
    ) -> Result<T, Cause> {
        let (client, cell) = match dependency {
            Dependency::Introspection => match (&parts.config.introspection, &parts.introspection_secret) {
                (Some(client), Some(cell)) => (client, cell),
                // Configuration validation requires introspection wherever it can be reached.
                _ => return Err(Cause::new(Dependency::Configuration, Failure::Invalid)),
            },
            _ => (&parts.config.backend, &parts.backend_secret),
        };
        let mut secret = self.secret(cell, deadline).map_err(|e| {
            trace.detail = Some(e.to_string());
            secret_cause(&e)
        })?;
        let limit = CallLimit::new(Instant::now(), parts.config.call_timeout, deadline);
        let (mut rotated, mut retried) = (false, false);
        loop {
            let result = self
                .post(parts, client, &secret, form, Some(limit.until), trace)
                .map_err(|failure| Cause::new(dependency, limit.name(failure)))
                .and_then(|a| read(&a).map_err(|failure| Cause { dependency, failure, retry_after: a.retry_after }));
            match result {
                Err(c) if c.failure == Failure::ClientRejected && !rotated => {
                    rotated = true;
                    let now = self.clock.now();
                    let fetch = |r: &_| self.fetch_secret(r, deadline);
                    let wait_until = self.wait_until(parts, deadline);
                    match cell.refresh(&secret, fetch, now, parts.config.secret_refresh_interval, wait_until) {
                        Some(new) => secret = new,
                        None => return Err(c),
                    }
                }
                // One quick retry for a refused connection or a 5xx, when the call's time allows;
                // never for a 4xx (the IdP meant it) or a timeout (no time would be left).
                Err(c) if transient(c.failure) && !retried && limit.left() > RETRY_NEEDS => {
                    retried = true;
                    std::thread::sleep(RETRY_PAUSE);
                }
                other => return other,
            }
        }
    }

    fn post(
        &self,
        parts: &Parts,
        client: &Client,
        secret: &Secret,
        form: &[(&str, &str)],
        deadline: Option<Instant>,
        trace: &mut Trace,
    ) -> Result<Answer, Failure> {
        let started = Instant::now();
        let answer = parts.http.post_form(&client.endpoint, &client.client_id, secret.expose(), form, deadline);
        trace.idp_micros += started.elapsed().as_micros();
        answer
    }

    fn secret(&self, cell: &SecretCell, deadline: Option<Instant>) -> Result<Secret, SecretError> {
        let wait_until = deadline.unwrap_or_else(|| Instant::now() + SECRET_WAIT);
        cell.get(|r| self.fetch_secret(r, deadline), self.clock.now(), wait_until)
    }

    fn fetch_secret(&self, reference: &secret::SecretRef, deadline: Option<Instant>) -> Result<Secret, SecretError> {
        secret::resolve(reference, &self.resolvers, &*self.env, deadline)
    }

    /// How long a caller waits for another caller's identical IdP call.
    fn wait_until(&self, parts: &Parts, deadline: Option<Instant>) -> Instant {
        deadline.unwrap_or_else(|| Instant::now() + parts.config.call_timeout + Duration::from_millis(100))
    }
}

/// An introspected token must carry one of its issuer's configured audiences (RFC 7662 §2.2
/// `aud`), like a locally verified JWT. The issuer is the one the answer names and, for a JWT,
/// the one the token names: a missing `iss` in either place must not skip the check. When
/// neither names any issuer, the audiences of every introspected issuer apply.
///
/// In `auto` mode a locally verified issuer's JWTs are verified here, never by IdP A: a JWT that
/// reached IdP A and comes back as that issuer's (its `iss` spelt otherwise, say) is refused,
/// since none of that issuer's checks were made.
fn audience_checked(parts: &Parts, named_by_token: Option<&str>, jwt: bool, verdict: Verdict) -> Verdict {
    let Verdict::Active(identity) = &verdict else { return verdict };
    let local = |name: &str| parts.jwks.get(name).is_some_and(|j| j.issuer.local);
    if jwt && parts.config.mode == Mode::Auto && identity.issuer.as_deref().is_some_and(local) {
        return Verdict::Invalid(Reason::NotVerifiedLocally);
    }
    // Issuers whose tokens are introspected: all of them in introspection mode, else those
    // marked `"mode":"introspection"` (a local issuer's tokens were checked when verified).
    let introspected = |jwks: &&Jwks| !jwks.issuer.local || parts.config.mode == Mode::Introspection;
    let named: Vec<&Jwks> =
        [named_by_token, identity.issuer.as_deref()].into_iter().flatten().filter_map(|n| parts.jwks.get(n)).collect();
    let accepted = if named_by_token.is_none() && identity.issuer.is_none() {
        let audiences: Vec<String> =
            parts.jwks.values().filter(introspected).flat_map(|j| j.issuer.audiences.iter().cloned()).collect();
        introspection::audience_accepted(&identity.audiences, &audiences)
    } else {
        let required = |jwks: &&Jwks| introspection::audience_accepted(&identity.audiences, &jwks.issuer.audiences);
        named.into_iter().filter(introspected).all(|jwks| required(&jwks))
    };
    if accepted { verdict } else { Verdict::Invalid(Reason::WrongAudience) }
}

/// When the gateway must stop reusing a decision: the earlier of the two tokens' expiries.
pub(crate) fn expiry(caller: UnixTime, backend: UnixTime) -> UnixTime {
    caller.min(backend)
}

/// The pause before the one quick retry, and the time that must be left for it.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
const RETRY_NEEDS: Duration = Duration::from_millis(250);

fn transient(failure: Failure) -> bool {
    matches!(failure, Failure::Unreachable | Failure::Status(500..=599))
}

/// When one IdP call must be over, its retries included: the configured timeout after it
/// starts, or the platform's deadline when that comes first. Without it a retry would get a full
/// timeout of its own, and a decision without a platform deadline could take twice the setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CallLimit {
    until: Instant,
    /// The platform's deadline ends the call, rather than the configured timeout.
    platform: bool,
}

impl CallLimit {
    fn new(started: Instant, timeout: Duration, deadline: Option<Instant>) -> Self {
        // The HTTP client keeps a margin back from any deadline it is given, for the platform's
        // answer; the configured timeout itself is not cut by it.
        let own = started + timeout + crate::http::DEADLINE_MARGIN;
        match deadline {
            Some(deadline) if deadline <= own => CallLimit { until: deadline, platform: true },
            _ => CallLimit { until: own, platform: false },
        }
    }

    fn left(self) -> Duration {
        self.until.saturating_duration_since(Instant::now())
    }

    /// Running out of the call's own time is the configured timeout, not the platform's deadline
    /// (the HTTP client sees both as a deadline).
    fn name(self, failure: Failure) -> Failure {
        match failure {
            Failure::DeadlineExceeded if !self.platform => Failure::Timeout,
            failure => failure,
        }
    }
}

/// Longest wait for a concurrent caller's secret fetch when the request has no deadline.
const SECRET_WAIT: Duration = Duration::from_secs(10);

/// Why a wait for a concurrent caller's IdP call ended without its result.
fn waited_too_long(deadline: Option<Instant>) -> Failure {
    if deadline.is_some() { Failure::DeadlineExceeded } else { Failure::Timeout }
}

fn secret_cause(e: &SecretError) -> Cause {
    let failure = match e {
        SecretError::Timeout => Failure::Timeout,
        SecretError::Unavailable(_) => Failure::Unreachable,
        SecretError::NoResolver(_) | SecretError::Unresolvable(_) => Failure::Invalid,
    };
    Cause::new(Dependency::Secret, failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idp_call_and_its_retry_end_by_the_configured_timeout_without_a_platform_deadline() {
        let start = Instant::now();
        let limit = CallLimit::new(start, Duration::from_millis(1500), None);
        let until = start + Duration::from_millis(1500) + crate::http::DEADLINE_MARGIN;
        assert_eq!(limit, CallLimit { until, platform: false });
        assert_eq!(limit.name(Failure::DeadlineExceeded), Failure::Timeout);
    }

    #[test]
    fn an_idp_call_ends_by_the_earlier_of_the_timeout_and_the_platform_deadline() {
        let start = Instant::now();
        let (soon, late) = (start + Duration::from_millis(300), start + Duration::from_secs(60));
        let cut = CallLimit::new(start, Duration::from_secs(5), Some(soon));
        assert_eq!(cut, CallLimit { until: soon, platform: true });
        assert_eq!(cut.name(Failure::DeadlineExceeded), Failure::DeadlineExceeded);
        let own = CallLimit::new(start, Duration::from_secs(5), Some(late));
        assert_eq!(
            own,
            CallLimit { until: start + Duration::from_secs(5) + crate::http::DEADLINE_MARGIN, platform: false }
        );
        assert_eq!(own.name(Failure::Status(503)), Failure::Status(503));
    }
}
