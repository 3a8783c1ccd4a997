//! The decision pipeline: extract → validate → authorize → backend token → outcome. The only
//! place that knows the order of the stages.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth_methods::{self, AuthMethodCheck, EndpointKind};
use crate::backend::{BackendToken, BackendTokens, Caller, Issued};
use crate::bearer::{self, Credential};
use crate::budget::Budget;
use crate::certificate;
use crate::clock::{Clock, SystemClock, UnixTime};
use crate::config::{Config, ConfigErrors};
use crate::dpop::{self, Scheme};
use crate::http::HttpClient;
use crate::idp::Idp;
use crate::introspection::{Identity, Verdict};
use crate::jwt::KeysProblem;
use crate::log::{self, Trace};
use crate::outcome::{Cause, Denial, Dependency, Failure, Grant, Outcome, Request};
use crate::policy::{Refusal, RouteVerdict};
use crate::reason::Reason;
use crate::secret::{self, Env, SecretCell, SecretProblem, SecretResolver, Secrets};
use crate::shared_cache::SharedCache;
use crate::trace_context;
use crate::validation::Validation;

/// Makes decisions. Built once per process and shared: its caches and connections are what
/// make warm calls cheap. See the crate documentation for an example.
pub struct Engine {
    setup: Result<Stages, ConfigErrors>,
    clock: Arc<dyn Clock>,
    secrets: Arc<Secrets>,
    sink: Sink,
}

/// What a valid configuration builds: the stages a request flows through, in order.
struct Stages {
    config: Config,
    idp: Idp,
    validation: Validation,
    /// The default backend first, then the policy's (a rule's `backend` + 1).
    backends: Vec<BackendTokens>,
    /// DPoP proofs already used.
    replays: dpop::Replays,
}

impl Stages {
    fn backend(&self, rule: &crate::policy::Rule) -> &BackendTokens {
        self.backend_at(rule.backend)
    }

    fn backend_at(&self, backend: Option<usize>) -> &BackendTokens {
        // `Policy` only names backends it defines and `Config` builds one for each of them.
        let index = backend.map_or(0, |i| i + 1);
        self.backends.get(index).unwrap_or(&self.backends[0])
    }
}

/// A decision with the policy's route table judged for the caller's token
/// ([`Engine::decide_routes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDecision {
    pub outcome: Outcome,
    /// Every route of the policy with whether the token satisfies it, the default last. Empty
    /// when the policy has no routes or the token was not validated (missing, invalid, an IdP
    /// unavailable).
    pub routes: Vec<RouteVerdict>,
    /// The grant an answer for every route can carry, and what it was made for: an allow's own
    /// grant; for an insufficient-scope denial, a grant for the first route the token
    /// satisfies (whose introspection the validation done covers), so that routes of its
    /// backend can be allowed from a gateway's cache. `None` when there is none to have.
    pub context: Option<RouteGrant>,
}

impl From<Outcome> for RouteDecision {
    /// A decision without its route table.
    fn from(outcome: Outcome) -> Self {
        RouteDecision { outcome, routes: Vec::new(), context: None }
    }
}

/// A grant and the route rule's backend and introspection it was made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteGrant {
    pub grant: Grant,
    /// The backend whose token the grant's context holds ([`crate::Rule::backend`]).
    pub backend: Option<usize>,
    /// Whether the token was introspected, as an `introspect` rule asks.
    pub introspected: bool,
}

/// What [`Engine::run`] saw on the way, for [`Engine::decide_routes`].
#[derive(Default)]
struct Seen {
    routes: Vec<RouteVerdict>,
    /// The called rule's backend and introspection, once it allowed.
    called: Option<(Option<usize>, bool)>,
    /// A grant for other routes, after a denial.
    other: Option<RouteGrant>,
}

/// Configures an [`Engine`]: where configuration, time, platform secrets and logs come from.
pub struct EngineBuilder {
    config: Result<Config, ConfigErrors>,
    clock: Arc<dyn Clock>,
    resolvers: Vec<Box<dyn SecretResolver>>,
    env: Box<Env>,
    sink: Sink,
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
        self.sink = Sink::Custom(Box::new(sink));
        self
    }

    /// Reads `env:` secret references through `lookup` instead of the process environment.
    pub fn env(mut self, lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        self.env = Box::new(lookup);
        self
    }

    pub fn build(self) -> Engine {
        let secrets = Arc::new(Secrets::new(self.resolvers, self.env));
        let setup = self.config.map(|config| Stages {
            idp: Idp::new(
                HttpClient::new(
                    config.connect_timeout,
                    config.call_timeout,
                    config.max_answer_bytes,
                    config.ca_certificates.as_deref(),
                ),
                secrets.clone(),
                self.clock.clone(),
                config.secret_refresh_interval,
            )
            .with_shared(config.shared_cache.as_ref().map(|s| SharedCache::new(s, secrets.clone()))),
            validation: Validation::new(&config),
            backends: BackendTokens::all(&config),
            replays: dpop::Replays::new(config.dpop.replay_capacity),
            config,
        });
        Engine { setup, clock: self.clock, secrets, sink: self.sink }
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

/// Where decision log lines go.
enum Sink {
    /// Standard error, one write per line, so lines from concurrent decisions never interleave.
    Stderr,
    Custom(Box<dyn Fn(&str) + Send + Sync>),
}

impl Sink {
    fn log(&self, mut line: String) {
        match self {
            Sink::Stderr => {
                line.push('\n');
                // A failed log write must not fail the decision.
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Sink::Custom(sink) => sink(&line),
        }
    }
}

impl Engine {
    /// A builder around a configuration (or the problems found in it).
    pub fn builder(config: Result<Config, ConfigErrors>) -> EngineBuilder {
        EngineBuilder {
            config,
            clock: Arc::new(SystemClock),
            resolvers: Vec::new(),
            env: Box::new(|k| std::env::var(k).ok()),
            sink: Sink::Stderr,
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
        let Ok(stages) = &self.setup else { return Vec::new() };
        let endpoints = [
            stages.validation.introspection(),
            Some(stages.backends[0].endpoint()),
            stages.validation.jwks_token_endpoint(),
        ];
        let now = self.clock.now();
        endpoints.into_iter().flatten().filter_map(|e| e.check_secret(&self.secrets, now)).collect()
    }

    /// For `check-config`: the client certificate each endpoint with a TLS method presents,
    /// resolved now and described (subject, SHA-256 fingerprint), as `(setting, description)`.
    pub fn describe_certificates(&self) -> Vec<(&'static str, String)> {
        let Ok(stages) = &self.setup else { return Vec::new() };
        let endpoints = [
            stages.validation.introspection(),
            Some(stages.backends[0].endpoint()),
            stages.validation.jwks_token_endpoint(),
        ];
        let now = self.clock.now();
        endpoints.into_iter().flatten().filter_map(|e| e.describe_certificate(&self.secrets, now)).collect()
    }

    /// Resolves these secrets now with this engine's resolvers, reporting each that cannot be
    /// had; for `check-config` when the configuration is invalid but its secret settings
    /// ([`Config::secrets_from_lookup`]) can still be checked.
    pub fn check_secret_refs(&self, secrets: &[(&'static str, secret::SecretRef)]) -> Vec<SecretProblem> {
        secrets
            .iter()
            .filter_map(|(name, reference)| {
                self.secrets.check(name, &SecretCell::new(reference.clone()), self.clock.now())
            })
            .collect()
    }

    /// Loads every local issuer's keys now, each within `budget`, so the first request does not
    /// pay for it. Returns whether all of them are held.
    pub fn warm(&self, budget: Duration) -> bool {
        let Ok(stages) = &self.setup else { return false };
        stages.validation.load_keys(&stages.idp, self.clock.now(), Instant::now() + budget).is_empty()
    }

    /// For `check-config`: loads every local issuer's keys, all within `budget`, and names the
    /// issuers whose keys cannot be had, and why.
    pub fn check_keys(&self, budget: Duration) -> Vec<KeysProblem> {
        let Ok(stages) = &self.setup else { return Vec::new() };
        let mut problems: Vec<KeysProblem> =
            (stages.validation.load_keys(&stages.idp, self.clock.now(), Instant::now() + budget))
                .into_iter()
                .map(|(j, cause)| KeysProblem { issuer: j.issuer.issuer.clone(), cause })
                .collect();
        problems.sort_by(|a, b| a.issuer.cmp(&b.issuer));
        problems
    }

    /// For `check-config`: for each IdP endpoint we are a client of, whether the IdP's discovery
    /// document says it accepts the configured client authentication method, all within `budget`.
    pub fn check_auth_methods(&self, budget: Duration) -> Vec<AuthMethodCheck> {
        let Ok(stages) = &self.setup else { return Vec::new() };
        let config = &stages.config;
        let until = Instant::now() + budget;
        let issuers: Vec<&str> = config.issuers.iter().map(|i| i.issuer.as_str()).collect();
        let http = &stages.idp.http;
        let introspection = config.introspection.as_ref().map(|c| (c, EndpointKind::Introspection));
        // A borrowed client's method is checked where it is configured.
        let jwks = config.jwks_auth.as_ref().filter(|j| j.borrowed.is_none()).map(|j| (&j.client, EndpointKind::Token));
        introspection
            .into_iter()
            .chain([(&config.backend, EndpointKind::Token)])
            .chain(jwks)
            .map(|(client, kind)| auth_methods::check(http, client, kind, &issuers, until))
            .collect()
    }

    /// Ready to decide: the configuration is valid and every local issuer's keys are held.
    pub fn is_ready(&self) -> bool {
        self.setup.as_ref().is_ok_and(|stages| stages.validation.keys_held(self.clock.now()))
    }

    /// Answers one request. Never panics on any input or IdP answer; logs one line.
    pub fn decide(&self, request: &Request) -> Outcome {
        let started = Instant::now();
        let mut trace = Trace::default();
        // Deciding with waits allowed always reaches an outcome.
        let outcome = self
            .run(request, &mut trace, Wait::Allowed, None)
            .unwrap_or(Outcome::Unavailable(Cause::new(Dependency::Configuration, Failure::Invalid)));
        self.log(request, &outcome, &trace, started);
        outcome
    }

    /// [`Engine::decide`], and with it the policy's route table judged for the caller's token
    /// by [`crate::Rule::check`], for answers a gateway caches for every route of the token.
    /// A denied route's request is validated too (without introspection when no route
    /// matched), and after an insufficient-scope denial a backend token is fetched for the
    /// first route the token satisfies; neither changes the outcome.
    pub fn decide_routes(&self, request: &Request) -> RouteDecision {
        let started = Instant::now();
        let mut trace = Trace::default();
        let mut seen = Seen::default();
        let outcome = self
            .run(request, &mut trace, Wait::Allowed, Some(&mut seen))
            .unwrap_or(Outcome::Unavailable(Cause::new(Dependency::Configuration, Failure::Invalid)));
        self.log(request, &outcome, &trace, started);
        let context = match (&outcome, seen.called) {
            (Outcome::Allow(grant), Some((backend, introspected))) => {
                Some(RouteGrant { grant: grant.clone(), backend, introspected })
            }
            (Outcome::Deny(Denial::InsufficientScope { .. }), _) => seen.other,
            _ => None,
        };
        let routes = if context.is_some() || matches!(outcome, Outcome::Deny(_)) { seen.routes } else { Vec::new() };
        RouteDecision { outcome, routes, context }
    }

    /// Revokes `token` on every instance that shares the configured cache tier: they refuse it
    /// (`revoked`) from their next decision on it, for as long as any of them could have kept
    /// a verdict on it. IdP A is not told. Returns the token's fingerprint, the name the
    /// decision log knows it by.
    ///
    /// ```no_run
    /// let engine = tokenbridge_core::Engine::from_env();
    /// let fingerprint = engine.revoke("the-token").expect("revoked");
    /// ```
    pub fn revoke(&self, token: &str) -> Result<String, crate::shared_cache::RevokeError> {
        use crate::shared_cache::RevokeError;
        let stages = self.setup.as_ref().map_err(|_| RevokeError::NotConfigured)?;
        let tier = stages.idp.shared.as_ref().ok_or(RevokeError::NotConfigured)?;
        let config = &stages.config;
        let ttl =
            config.cache_max_ttl.saturating_add(config.stale_if_error).saturating_add(config.leeway).saturating_add(60);
        let budget = Budget::new(self.clock.now(), Some(Instant::now() + Duration::from_secs(5)), config.call_timeout);
        let hash = log::token_hash(token);
        tier.revoke(budget, token, hash, ttl).map(|()| log::fingerprint_of(&hash))
    }

    /// [`Engine::decide`], but only if the answer can be had without calling or waiting for any
    /// IdP or secret store: from the caches alone (or with no token to look at). `None` when it
    /// cannot; nothing is logged then, and [`Engine::decide`] answers. For servers, to answer
    /// cached decisions where the request arrived instead of handing them to a blocking pool.
    pub fn decide_now(&self, request: &Request) -> Option<Outcome> {
        let started = Instant::now();
        let mut trace = Trace::default();
        let outcome = self.run(request, &mut trace, Wait::Never, None)?;
        self.log(request, &outcome, &trace, started);
        Some(outcome)
    }

    /// Counts the decision, and logs it if the log policy wants its line.
    fn log(&self, request: &Request, outcome: &Outcome, trace: &Trace, started: Instant) {
        let elapsed = started.elapsed();
        crate::metrics::decision(outcome, trace, elapsed);
        let policy = self.config().map_or_else(|_| log::LogPolicy::default(), Config::log_policy);
        let Some(suppressed) = log::GATE.admit(policy, outcome, trace, Instant::now()) else { return };
        let now =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        self.sink.log(log::decision_line(
            request.call_id.as_deref(),
            outcome,
            trace,
            elapsed.as_micros(),
            &now,
            suppressed,
        ));
    }

    /// The stages in order: extract the token, find the route's rule, validate the token, check
    /// it against the rule, get the backend token, grant. `None` only with [`Wait::Never`], when a
    /// stage would have to call or wait for someone.
    fn run(&self, request: &Request, trace: &mut Trace, wait: Wait, seen: Option<&mut Seen>) -> Option<Outcome> {
        trace.trace_id = request.trace.trace_id().map(str::to_string);
        // The IdP calls of this decision carry the platform's trace context.
        trace_context::within(&request.trace, || self.run_stages(request, trace, wait, seen))
    }

    fn run_stages(
        &self,
        request: &Request,
        trace: &mut Trace,
        wait: Wait,
        mut seen: Option<&mut Seen>,
    ) -> Option<Outcome> {
        let stages = match &self.setup {
            Ok(stages) => stages,
            Err(problems) => {
                trace.detail = Some(problems.to_string());
                return Some(Outcome::Unavailable(Cause::new(Dependency::Configuration, Failure::Invalid)));
            }
        };
        if let Some(forget) = stages.idp.shared.as_ref().and_then(|tier| tier.take_revocations()) {
            stages.validation.forget(&forget);
            stages.backends.iter().for_each(|b| b.forget(&forget));
        }
        let (token, scheme) = match bearer::extract(request.credential.as_deref()) {
            Credential::Missing => return Some(Outcome::Deny(Denial::MissingToken)),
            Credential::Malformed => {
                trace.reason = Some(Reason::MalformedToken);
                return Some(Outcome::Deny(Denial::InvalidToken));
            }
            Credential::Bearer(token) => (token, Scheme::Bearer),
            Credential::Dpop(token) => (token, Scheme::Dpop),
        };
        let hash = log::token_hash(token);
        trace.token = Some(log::fingerprint_of(&hash));
        let budget = Budget::new(self.clock.now(), request.deadline, stages.config.call_timeout);
        let rule = match stages.config.policy.rule_for(&request.route) {
            Ok(rule) => rule,
            Err(no_rule) => {
                if let Some(seen) = seen {
                    // Who the token is, for the other routes: read as a route without
                    // introspection reads it, so `introspect` routes are not among them.
                    let caller = (token, hash);
                    if let Ok(Verdict::Active(identity)) =
                        stages.validation.validate(&stages.idp, token, hash, false, budget, trace)
                    {
                        self.other_routes(stages, caller, &identity, false, budget, seen);
                    }
                }
                trace.reason = Some(no_rule.reason());
                return Some(Outcome::Deny(Denial::InsufficientScope { required: Vec::new() }));
            }
        };
        // A proof is checked before anyone is asked about the token: a forgery costs no IdP call.
        let settings = &stages.config.dpop;
        let mode = rule.dpop.unwrap_or(settings.mode);
        let leeway = stages.config.leeway;
        let proof = match dpop::presented(settings, mode, scheme, request, token, budget.now, leeway) {
            Ok(proof) => proof,
            Err(why) => {
                trace.reason = Some(why);
                return Some(Outcome::Deny(dpop::denial(why)));
            }
        };
        let verdict = match wait {
            Wait::Allowed => stages.validation.validate(&stages.idp, token, hash, rule.introspect, budget, trace),
            Wait::Never => Ok(stages.validation.cache_hit(hash, rule.introspect, budget.now, trace)?),
        };
        let identity = match verdict {
            Ok(Verdict::Active(identity)) => identity,
            Ok(Verdict::Invalid(why)) => {
                trace.reason = Some(why);
                return Some(Outcome::Deny(Denial::InvalidToken));
            }
            Err(cause) => return Some(Outcome::Unavailable(cause)),
        };
        trace.principal = Some(identity.principal.clone());
        trace.client_id = identity.client_id.clone();
        if let Some(seen) = seen.as_deref_mut() {
            seen.routes = stages.config.policy.route_table(|r| r.refusal(&identity).is_none());
        }
        if let Some(refusal) = rule.refusal(&identity) {
            trace.reason = Some(refusal.reason());
            // A token short of this route's scopes or claims may be good for others.
            if refusal != Refusal::IssuerOrAudience
                && let Some(seen) = seen
            {
                self.other_routes(stages, (token, hash), &identity, rule.introspect, budget, seen);
            }
            return Some(Outcome::Deny(rule.denial(refusal)));
        }
        if let Err(why) = dpop::bound(proof.as_ref(), identity.cnf.as_deref()) {
            trace.reason = Some(why);
            return Some(Outcome::Deny(dpop::denial(why)));
        }
        // RFC 8705 §3: a certificate-bound token without its certificate is an invalid token.
        if let Err(why) = certificate::bound(request.client_certificate.as_ref(), identity.cnf.as_deref()) {
            trace.reason = Some(why);
            return Some(Outcome::Deny(Denial::InvalidToken));
        }
        if let Some(seen) = seen {
            seen.called = Some((rule.backend, rule.introspect));
        }
        // Validation may have waited on IdPs for up to the call timeout: the backend token's
        // usable end, and the grant's expiry, are judged by the time now.
        let budget = budget.later(self.clock.now());
        let caller = Caller { token, hash, expires_at: identity.expires_at };
        // A sender-constrained allow holds for this request's proof or connection only: a gateway
        // that cached it by the token would skip the binding for whoever sends the token next.
        let one_request = proof.is_some() || identity.cnf.as_ref().is_some_and(|c| c.x5t_s256.is_some());
        let backend = match wait {
            Wait::Allowed => stages.backend(rule).get(&stages.idp, &caller, budget, trace),
            Wait::Never => Ok(stages.backend(rule).cache_hit(&caller, budget.now, trace)?),
        };
        Some(match backend {
            Ok(Issued::Token(backend)) => {
                // A proof is spent by the allow it earns (not before, so that a decision retried
                // from the caches alone does not see its own proof as a replay).
                let tier = stages.idp.shared.as_ref();
                if proof.is_some() && tier.is_some() && wait == Wait::Never {
                    // Another instance may have seen the proof: that takes asking Redis.
                    return None;
                }
                let used = proof.as_ref().map(|p| match stages.replays.record(p, budget.now) {
                    dpop::Use::First if tier.is_some_and(|t| !t.first_use(budget, &p.id, p.remember_until)) => {
                        dpop::Use::Replayed
                    }
                    used => used,
                });
                match used {
                    None | Some(dpop::Use::First) => {}
                    Some(dpop::Use::Replayed) => {
                        trace.reason = Some(Reason::DpopProofReplayed);
                        return Some(Outcome::Deny(Denial::InvalidDpopProof));
                    }
                    Some(dpop::Use::Full) => {
                        return Some(Outcome::Unavailable(Cause::new(Dependency::DpopReplays, Failure::Full)));
                    }
                }
                let mut grant = grant(&stages.config, identity, &backend, budget.now);
                if one_request {
                    grant.expires_at = budget.now;
                }
                Outcome::Allow(grant)
            }
            Ok(Issued::Refused) => {
                trace.reason = Some(Reason::BackendRefusedCallerToken);
                Outcome::Deny(Denial::InvalidToken)
            }
            Err(cause) => Outcome::Unavailable(cause),
        })
    }
}

impl Engine {
    /// After a denial: the route table for this identity, and a grant for the first route it
    /// satisfies whose introspection `introspected` covers. A backend that cannot be had now
    /// leaves it out: the denial stands either way.
    fn other_routes(
        &self,
        stages: &Stages,
        (token, hash): (&str, [u8; 32]),
        identity: &Identity,
        introspected: bool,
        budget: Budget,
        seen: &mut Seen,
    ) {
        seen.routes = stages.config.policy.route_table(|r| r.refusal(identity).is_none());
        let Some(first) = seen.routes.iter().find(|v| v.allowed && (introspected || !v.introspect)) else { return };
        let backend = first.backend;
        let budget = budget.later(self.clock.now());
        let caller = Caller { token, hash, expires_at: identity.expires_at };
        // Its own trace: the decision's log line is about the route called.
        let mut quiet = Trace::default();
        if let Ok(Issued::Token(token)) = stages.backend_at(backend).get(&stages.idp, &caller, budget, &mut quiet) {
            let grant = grant(&stages.config, identity.clone(), &token, budget.now);
            seen.other = Some(RouteGrant { grant, backend, introspected });
        }
    }
}

/// Whether a decision may call or wait for IdPs and secret stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Allowed,
    /// From the caches alone, or not at all.
    Never,
}

/// The allow: who the caller is, and the context the gateway forwards, the backend token in it.
fn grant(config: &Config, identity: Identity, backend: &BackendToken, now: UnixTime) -> Grant {
    let caller_expiry = identity.expires_at.unwrap_or_else(|| now.saturating_add(config.cache_max_ttl));
    let mut context: BTreeMap<String, String> = identity.claims;
    let token = backend.access_token.expose();
    let mut bearer = String::with_capacity("Bearer ".len() + token.len());
    bearer.push_str("Bearer ");
    bearer.push_str(token);
    context.insert(config.context_key.clone(), bearer);
    Grant {
        principal: identity.principal,
        scopes: identity.scopes,
        client_id: identity.client_id,
        // A caller token inside the clock leeway has an `exp` just past: gateways are told
        // "now", never a time before it.
        expires_at: expiry(caller_expiry, backend.expires_at).max(now),
        context,
    }
}

/// When the gateway must stop reusing a decision: the earlier of the two tokens' expiries.
pub(crate) fn expiry(caller: UnixTime, backend: UnixTime) -> UnixTime {
    caller.min(backend)
}
