//! The backend token from IdP B — one for every caller (client_credentials), or one per caller
//! (token exchange, on-behalf-of) — and a strict reading of IdP B's answer.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::budget::Budget;
use crate::cache::{Cache, Entry, Lookup, STALE_RETRY_SECONDS};
use crate::clock::UnixTime;
use crate::config::Config;
use crate::grant::{self, BackendGrant};
use crate::idp::{Endpoint, Idp};
use crate::log::Trace;
use crate::outcome::{Cause, Dependency, Failure};
use crate::secret::Secret;
use crate::shared_cache::{Forget, Kind, Stored};

/// The backend token stage: IdP B, the grant, and the tokens it gave us, refreshed early; a
/// still-valid token is served when a refresh fails.
pub(crate) struct BackendTokens {
    /// IdP B's token endpoint and our client there, shared by every backend.
    endpoint: Arc<Endpoint>,
    grant: BackendGrant,
    /// The grant's form without the caller's token, `grant_type` first.
    form: Vec<(&'static str, String)>,
    /// The client_credentials form of tokenbridge's own token: the backend token of a
    /// client_credentials backend, or the actor token of an exchange.
    own_form: Vec<(&'static str, String)>,
    /// tokenbridge's own token.
    shared: Cache<(), BackendToken, Cause>,
    /// Per caller token (by its SHA-256): what IdP B issued for it, or that it refused it.
    per_caller: Cache<[u8; 32], Issued, Cause>,
    default_ttl: i64,
    refresh_margin: i64,
    min_remaining: i64,
    /// Longest a per-caller answer is kept, and how long a refusal is.
    max_ttl: i64,
    refusal_ttl: i64,
}

/// How long an instance waits, at most, for the token another instance is refreshing.
const CLAIM_WAIT: Duration = Duration::from_millis(1_000);
const CLAIM_POLL: Duration = Duration::from_millis(20);

/// How a request to IdP B goes through the shared cache tier: its kind, what it asks besides
/// the endpoint and client, the caller token it carries (none for tokenbridge's own), and the
/// time no answer may be kept past.
#[derive(Clone, Copy)]
struct Shared<'a> {
    kind: Kind,
    scope: &'a [&'a str],
    token: &'a str,
    bound: Option<UnixTime>,
}

const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Whether a failure is IdP B being unreachable or failing, rather than answering no.
fn is_outage(failure: Failure) -> bool {
    matches!(
        failure,
        Failure::Unreachable | Failure::Timeout | Failure::DeadlineExceeded | Failure::Status(429 | 500..=599)
    )
}

/// What IdP B gave for a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Issued {
    Token(BackendToken),
    /// IdP B refused the caller's token itself (see [`grant::refuses_caller`]).
    Refused,
}

/// The caller a per-caller grant carries on.
pub(crate) struct Caller<'a> {
    pub token: &'a str,
    pub hash: [u8; 32],
    /// The caller token's expiry, when known: no token got for it outlives it.
    pub expires_at: Option<UnixTime>,
}

impl BackendTokens {
    /// Every backend of `config`: the default one first, then the policy's in its order.
    pub(crate) fn all(config: &Config) -> Vec<Self> {
        let endpoint = Arc::new(Endpoint::new(Dependency::BackendToken, &config.backend));
        let default = Self::new(config, endpoint.clone(), &config.backend_grant, &config.backend_params);
        let routes = config.route_backends.iter().map(|t| Self::new(config, endpoint.clone(), &t.grant, &t.params));
        std::iter::once(default).chain(routes).collect()
    }

    fn new(config: &Config, endpoint: Arc<Endpoint>, grant: &BackendGrant, params: &[(&'static str, String)]) -> Self {
        Self {
            endpoint,
            form: grant.form(params),
            own_form: if grant.per_caller() { BackendGrant::ClientCredentials.form(&[]) } else { grant.form(params) },
            grant: grant.clone(),
            shared: Cache::new(1),
            per_caller: Cache::new(if grant.per_caller() { config.cache_capacity } else { 1 }),
            default_ttl: config.backend_default_ttl,
            refresh_margin: config.backend_refresh_margin,
            min_remaining: config.backend_min_remaining,
            max_ttl: config.cache_max_ttl,
            refusal_ttl: config.cache_inactive_ttl,
        }
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Forgets what IdP B issued for the caller tokens `forget` says.
    pub(crate) fn forget(&self, forget: &Forget) {
        match forget {
            Forget::Everything => self.per_caller.forget_where(|_| true),
            Forget::Tokens(hashes) => self.per_caller.forget_where(|hash| hashes.contains(hash)),
        }
    }

    /// The cached answer if it is a plain hit: what [`BackendTokens::get`] would answer without
    /// calling or waiting for IdP B.
    pub(crate) fn cache_hit(&self, caller: &Caller, now: UnixTime, trace: &mut Trace) -> Option<Issued> {
        let issued = if self.grant.per_caller() {
            self.per_caller.hit(&caller.hash, now)?
        } else {
            Issued::Token(self.shared.hit(&(), now)?)
        };
        trace.backend = Some(Lookup::Hit);
        Some(issued)
    }

    /// The cached answer, or a new one from IdP B.
    pub(crate) fn get(&self, idp: &Idp, caller: &Caller, budget: Budget, trace: &mut Trace) -> Result<Issued, Cause> {
        let now = budget.now;
        let timed_out = budget.waited_too_long(Dependency::BackendToken);
        let wait_until = || budget.wait_until();
        let (issued, lookup) = match self.grant.caller_field() {
            None => {
                let (token, lookup) = self.own_token(idp, budget, trace)?;
                (Issued::Token(token), lookup)
            }
            Some(field) => {
                let (issued, lookup) = self.per_caller.get_or_load(&caller.hash, now, wait_until, timed_out, || {
                    self.exchange(idp, field, caller, budget, trace)
                })?;
                // A caller's old token is served only through an outage of IdP B: a refresh it
                // refused (a 4xx) says it would not issue that token again.
                if let Lookup::Stale(cause) = lookup
                    && !is_outage(cause.failure)
                {
                    self.per_caller.forget(&caller.hash);
                    return Err(cause);
                }
                (issued, lookup)
            }
        };
        if let Lookup::Stale(cause) = lookup {
            trace.detail =
                Some(format!("backend token refresh failed ({cause}); serving the cached token until it expires"));
        }
        trace.backend = Some(lookup);
        Ok(issued)
    }

    /// One exchange of the caller's token (in form field `field`), as a cache entry: a token
    /// never kept past the caller token's expiry nor the cache maximum, or a refusal kept briefly.
    fn exchange(
        &self,
        idp: &Idp,
        field: &'static str,
        caller: &Caller,
        budget: Budget,
        trace: &mut Trace,
    ) -> Result<Entry<Issued>, Cause> {
        let now = budget.now;
        let actor = if self.grant.wants_actor() { Some(self.own_token(idp, budget, trace)?.0) } else { None };
        let mut form: Vec<(&str, &str)> = self.form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        form.push((field, caller.token));
        if let Some(actor) = &actor {
            form.extend([("actor_token", actor.access_token.expose()), ("actor_token_type", ACCESS_TOKEN)]);
        }
        let caller_bound = caller.expires_at.unwrap_or(UnixTime::MAX).max(now.saturating_add(STALE_RETRY_SECONDS));
        let caller_bound = Some(caller_bound.min(now.saturating_add(self.max_ttl)));
        let mut scope: Vec<&str> = self.form.iter().flat_map(|(k, v)| [*k, v.as_str()]).collect();
        scope.push(field);
        let shared = Shared { kind: Kind::Exchange, scope: &scope, token: caller.token, bound: caller_bound };
        Ok(match self.request(idp, &self.grant, &form, Some(shared), budget, trace)? {
            Issued::Token(token) => {
                // A caller token accepted within the clock leeway has an expiry just past: its
                // exchanged token is kept a few seconds rather than exchanged again per request.
                let caller_end =
                    caller.expires_at.unwrap_or(UnixTime::MAX).max(now.saturating_add(STALE_RETRY_SECONDS));
                let bound = caller_end.min(now.saturating_add(self.max_ttl));
                let Entry { value, fresh_until, usable_until } = self.entry(token, Some(bound));
                Entry { value: Issued::Token(value), fresh_until, usable_until }
            }
            Issued::Refused => Entry::until(Issued::Refused, now.saturating_add(self.refusal_ttl)),
        })
    }

    /// tokenbridge's own token, cached and refreshed early; a still-valid one is served when a
    /// refresh fails.
    fn own_token(&self, idp: &Idp, budget: Budget, trace: &mut Trace) -> Result<(BackendToken, Lookup<Cause>), Cause> {
        let timed_out = budget.waited_too_long(Dependency::BackendToken);
        self.shared.get_or_load(
            &(),
            budget.now,
            || budget.wait_until(),
            timed_out,
            || {
                let form: Vec<(&str, &str)> = self.own_form.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let scope: Vec<&str> = form.iter().flat_map(|(k, v)| [*k, *v]).collect();
                let shared = Shared { kind: Kind::Backend, scope: &scope, token: "", bound: None };
                match self.request(idp, &BackendGrant::ClientCredentials, &form, Some(shared), budget, trace)? {
                    Issued::Token(token) => Ok(self.entry(token, None)),
                    // Only a grant that carries a caller can refuse one; never an allow.
                    Issued::Refused => Err(Cause::new(Dependency::BackendToken, Failure::Status(400))),
                }
            },
        )
    }

    /// One `grant` request to IdP B with this form; through the shared cache tier, when there
    /// is one, as `shared` says.
    fn request(
        &self,
        idp: &Idp,
        grant: &BackendGrant,
        form: &[(&str, &str)],
        shared: Option<Shared>,
        budget: Budget,
        trace: &mut Trace,
    ) -> Result<Issued, Cause> {
        let now = budget.now;
        let read =
            |status: u16, body: &[u8], at: UnixTime| read_grant_answer(grant, status, body, at, self.default_ttl);
        let tier = idp.shared.as_ref().zip(shared);
        let named = tier.and_then(|(tier, shared)| {
            let mut scope = self.endpoint.asker().to_vec();
            scope.extend_from_slice(shared.scope);
            Some((tier, tier.name(budget, shared.kind, &scope, shared.token)?, shared.bound))
        });
        let Some((tier, name, bound)) = named else {
            return idp.call(&self.endpoint, form, budget, trace, |a| read(a.status, &a.body, now));
        };
        // A token another instance got, still fresh by this instance's own rules.
        let shared_token = || {
            let stored = tier.get(budget, &name).filter(|s| s.at <= now && s.status == 200)?;
            match read(stored.status, &stored.body, stored.at) {
                Ok(Issued::Token(token)) if self.entry(token.clone(), bound).fresh_until > now => Some(token),
                _ => None,
            }
        };
        if let Some(token) = shared_token() {
            return Ok(Issued::Token(token));
        }
        // One instance refreshes; the others wait a little for its token, then ask themselves.
        let claimed = tier.claim(budget, &name);
        if !claimed {
            let started = Instant::now();
            let left = budget.deadline().map_or(CLAIM_WAIT, |d| d.saturating_duration_since(started));
            let until = started + left.min(CLAIM_WAIT) / 2;
            while Instant::now() < until {
                std::thread::sleep(CLAIM_POLL);
                if let Some(token) = shared_token() {
                    return Ok(Issued::Token(token));
                }
            }
        }
        let kept = RefCell::new(None);
        let issued = idp.call(&self.endpoint, form, budget, trace, |a| {
            let issued = read(a.status, &a.body, now);
            if matches!(issued, Ok(Issued::Token(_))) {
                *kept.borrow_mut() = Some(Stored { at: now, status: a.status, body: a.body.clone() });
            }
            issued
        });
        if let (Ok(Issued::Token(token)), Some(stored)) = (&issued, kept.into_inner()) {
            let until = token.usable_until(self.min_remaining).min(bound.unwrap_or(UnixTime::MAX));
            tier.put(budget, &name, &stored, until.saturating_sub(now));
        }
        if claimed {
            tier.release(budget, &name);
        }
        issued
    }

    /// The cache entry for a token: fresh until its early refresh, usable until its usable end,
    /// neither past `bound`.
    fn entry(&self, token: BackendToken, bound: Option<UnixTime>) -> Entry<BackendToken> {
        let bound = bound.unwrap_or(UnixTime::MAX);
        Entry {
            fresh_until: token.refresh_at(self.refresh_margin, self.min_remaining).min(bound),
            usable_until: token.usable_until(self.min_remaining).min(bound),
            value: token,
        }
    }
}

/// A backend access token and when it stops being valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackendToken {
    pub access_token: Secret,
    pub issued_at: UnixTime,
    pub expires_at: UnixTime,
}

impl BackendToken {
    /// Until when it may be handed out: while `min_remaining` of its life is left (at most half
    /// its life, so short-lived tokens stay usable).
    pub(crate) fn usable_until(&self, min_remaining: i64) -> UnixTime {
        let life = self.expires_at - self.issued_at;
        self.expires_at - min_remaining.min(life / 2)
    }

    /// When to fetch a new one: max(`margin`, 10 % of its life) before it stops being usable,
    /// but not before half its usable span, so a short-lived token is not refetched every time.
    pub(crate) fn refresh_at(&self, margin: i64, min_remaining: i64) -> UnixTime {
        let usable_until = self.usable_until(min_remaining);
        let life = self.expires_at - self.issued_at;
        let usable_span = usable_until - self.issued_at;
        usable_until - margin.max(life / 10).min(usable_span / 2)
    }
}

/// Reads IdP B's answer to `grant`: a token, or for a grant that carries the caller, a refusal
/// of the caller's token. An exchange answer must also say it issued a token of a type forwarded
/// as `Bearer` (RFC 8693 §2.2.1 makes `issued_token_type` and `token_type` required).
pub(crate) fn read_grant_answer(
    grant: &BackendGrant,
    status: u16,
    body: &[u8],
    now: UnixTime,
    default_ttl: i64,
) -> Result<Issued, Failure> {
    if status != 200 {
        let refused =
            status == 400 && grant.per_caller() && error_code(body).is_some_and(|c| grant::refuses_caller(&c));
        return if refused { Ok(Issued::Refused) } else { Err(failure_for_status(status, body)) };
    }
    let answer = crate::json::object(body).ok_or(Failure::Malformed)?;
    let issued_type = match answer.get("issued_token_type") {
        None => None,
        Some(Value::String(t)) => Some(t.as_str()),
        Some(_) => return Err(Failure::Malformed),
    };
    // RFC 6749 §5.1 and RFC 8693 §2.2.1 require `token_type`; only client_credentials answers
    // without one are taken as Bearer, as before.
    if !grant.accepts_issued_type(issued_type) || (grant.per_caller() && !answer.contains_key("token_type")) {
        return Err(Failure::Malformed);
    }
    read_token(&answer, now, default_ttl).map(Issued::Token)
}

/// The token, its type and lifetime from a 200 answer's members.
fn read_token(answer: &Map<String, Value>, now: UnixTime, default_ttl: i64) -> Result<BackendToken, Failure> {
    let access_token = match answer.get("access_token") {
        Some(Value::String(t)) if is_header_safe(t) => t.clone(),
        _ => return Err(Failure::Malformed),
    };
    // We hand the token on as `Bearer …`; any other type (RFC 8693's `N_A`, DPoP) would be
    // forwarded wrongly.
    match answer.get("token_type") {
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => {}
        None => {}
        _ => return Err(Failure::Malformed),
    }
    let lifetime = match answer.get("expires_in") {
        None | Some(Value::Null) => default_ttl,
        // A whole number of seconds, possibly written as a float (`3600.0`).
        Some(Value::Number(n)) => {
            match n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f < 1e12).map(|f| f as i64)) {
                Some(s) if s > 0 => s,
                _ => return Err(Failure::Malformed),
            }
        }
        // Some IdPs send the number as a string; accept only a plain positive integer.
        Some(Value::String(s)) => match s.parse::<i64>() {
            Ok(s) if s > 0 => s,
            _ => return Err(Failure::Malformed),
        },
        Some(_) => return Err(Failure::Malformed),
    };
    // An expiry past what gateways can be told is no expiry to trust.
    let expires_at = now.checked_add(lifetime).filter(|t| *t <= crate::clock::LAST_TIME).ok_or(Failure::Malformed)?;
    Ok(BackendToken { access_token: Secret::new(access_token), issued_at: now, expires_at })
}

/// A token goes into an HTTP header: non-empty, visible ASCII only (no CR/LF injection).
fn is_header_safe(token: &str) -> bool {
    !token.is_empty() && token.len() <= 16 * 1024 && token.bytes().all(|b| b.is_ascii_graphic())
}

/// The OAuth `error` code of an error answer, if it has one.
pub(crate) fn error_code(body: &[u8]) -> Option<String> {
    crate::json::object(body)?.get("error")?.as_str().map(str::to_string)
}

/// Classifies a non-200 answer from either IdP. `invalid_client` (RFC 6749 §5.2) means our
/// credentials were refused: a rotated secret, not the caller's fault.
pub(crate) fn failure_for_status(status: u16, body: &[u8]) -> Failure {
    match (status, error_code(body).as_deref()) {
        (_, Some("invalid_client")) | (401, _) => Failure::ClientRejected,
        (s, _) => Failure::Status(s),
    }
}

/// A client_credentials answer, as the tests read it.
#[cfg(test)]
fn read_answer(status: u16, body: &[u8], now: UnixTime, default_ttl: i64) -> Result<BackendToken, Failure> {
    match read_grant_answer(&BackendGrant::ClientCredentials, status, body, now, default_ttl)? {
        Issued::Token(token) => Ok(token),
        Issued::Refused => panic!("client_credentials refused a caller"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::TokenType;

    const EXCHANGE: BackendGrant = BackendGrant::TokenExchange {
        subject_token_type: TokenType::AccessToken,
        requested_token_type: None,
        actor: false,
    };
    const OBO: BackendGrant = BackendGrant::JwtBearer { requested_token_use: None };

    fn read_grant(grant: &BackendGrant, status: u16, body: &str) -> Result<Issued, Failure> {
        read_grant_answer(grant, status, body.as_bytes(), 1000, 300)
    }

    #[test]
    fn an_exchange_answer_is_read_with_its_issued_type_and_token_type() {
        let body = r#"{"access_token":"x","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":60}"#;
        let Ok(Issued::Token(t)) = read_grant(&EXCHANGE, 200, body) else { panic!() };
        assert_eq!((t.access_token.expose(), t.expires_at), ("x", 1060));
    }

    #[test]
    fn an_exchange_answer_without_issued_type_or_token_type_or_with_n_a_is_malformed() {
        for body in [
            r#"{"access_token":"x","token_type":"Bearer"}"#,
            r#"{"access_token":"x","issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}"#,
            r#"{"access_token":"x","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"N_A"}"#,
            r#"{"access_token":"x","issued_token_type":"urn:ietf:params:oauth:token-type:id_token","token_type":"Bearer"}"#,
            r#"{"access_token":"x","issued_token_type":7,"token_type":"Bearer"}"#,
            r#"{"access_token":"x","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"DPoP"}"#,
        ] {
            assert_eq!(read_grant(&EXCHANGE, 200, body), Err(Failure::Malformed), "{body}");
        }
    }

    #[test]
    fn an_on_behalf_of_answer_needs_no_issued_type_but_a_token_type() {
        let body = r#"{"access_token":"x","token_type":"Bearer","expires_in":3599,"ext_expires_in":3599}"#;
        assert!(matches!(read_grant(&OBO, 200, body), Ok(Issued::Token(_))));
        assert_eq!(read_grant(&OBO, 200, r#"{"access_token":"x","expires_in":60}"#), Err(Failure::Malformed));
        let id_token = r#"{"access_token":"x","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:id_token"}"#;
        assert_eq!(read_grant(&OBO, 200, id_token), Err(Failure::Malformed));
    }

    #[test]
    fn idp_b_refusing_the_callers_token_is_a_refusal_and_its_other_errors_are_failures() {
        for grant in [&EXCHANGE, &OBO] {
            assert_eq!(read_grant(grant, 400, r#"{"error":"invalid_grant"}"#), Ok(Issued::Refused));
            assert_eq!(
                read_grant(grant, 400, r#"{"error":"interaction_required","suberror":"x"}"#),
                Ok(Issued::Refused)
            );
            assert_eq!(read_grant(grant, 400, r#"{"error":"invalid_target"}"#), Err(Failure::Status(400)));
            assert_eq!(read_grant(grant, 400, r#"{"error":"unauthorized_client"}"#), Err(Failure::Status(400)));
            assert_eq!(read_grant(grant, 401, r#"{"error":"invalid_grant"}"#), Err(Failure::ClientRejected));
            assert_eq!(read_grant(grant, 400, r#"{"error":"invalid_client"}"#), Err(Failure::ClientRejected));
            assert_eq!(read_grant(grant, 503, r#"{"error":"invalid_grant"}"#), Err(Failure::Status(503)));
            assert_eq!(read_grant(grant, 400, "not json"), Err(Failure::Status(400)));
        }
        // Only a grant that carries a caller can refuse one.
        let cc = &BackendGrant::ClientCredentials;
        assert_eq!(read_grant(cc, 400, r#"{"error":"invalid_grant"}"#), Err(Failure::Status(400)));
    }

    fn read(body: &str) -> Result<BackendToken, Failure> {
        read_answer(200, body.as_bytes(), 1000, 300)
    }

    #[test]
    fn reads_token_and_lifetime() {
        let t = read(r#"{"access_token":"abc","token_type":"Bearer","expires_in":3600}"#).unwrap();
        assert_eq!(t.access_token.expose(), "abc");
        assert_eq!(t.expires_at, 4600);
    }

    #[test]
    fn missing_expires_in_takes_the_default() {
        assert_eq!(read(r#"{"access_token":"abc"}"#).unwrap().expires_at, 1300);
    }

    #[test]
    fn expires_in_as_a_whole_float_is_accepted() {
        assert_eq!(read(r#"{"access_token":"abc","expires_in":3600.0}"#).unwrap().expires_at, 4600);
    }

    #[test]
    fn expires_in_as_a_numeric_string_is_accepted() {
        assert_eq!(read(r#"{"access_token":"abc","expires_in":"60"}"#).unwrap().expires_at, 1060);
    }

    #[test]
    fn unusable_answers_are_malformed() {
        for body in [
            "<html>",
            "[]",
            r#"{"token_type":"Bearer"}"#,
            r#"{"access_token":""}"#,
            r#"{"access_token":42}"#,
            r#"{"access_token":"a\r\nX-Evil: 1"}"#,
            r#"{"access_token":"abc","expires_in":-5}"#,
            r#"{"access_token":"abc","expires_in":0}"#,
            r#"{"access_token":"abc","expires_in":"soon"}"#,
            r#"{"access_token":"abc","expires_in":1.5}"#,
            r#"{"access_token":"abc","token_type":"DPoP"}"#,
            r#"{"access_token":"abc","expires_in":1000000000000000}"#,
            r#"{"access_token":"abc","expires_in":"9223372036854775807"}"#,
            r#"{"access_token":"abc","access_token":"xyz"}"#,
            r#"{"access_token":"abc","token_type":"DPoP","\u0074oken_type":"Bearer"}"#,
            r#"{"access_token":"abc","expires_in":60,"expires_in":3600}"#,
        ] {
            assert_eq!(read(body), Err(Failure::Malformed), "{body:?}");
        }
    }

    fn t(life: i64) -> BackendToken {
        BackendToken { access_token: Secret::new("x"), issued_at: 0, expires_at: life }
    }

    #[test]
    fn usable_until_keeps_the_minimum_remaining_life() {
        assert_eq!(t(3600).usable_until(60), 3540);
        assert_eq!(t(300).usable_until(60), 240);
        assert_eq!(t(60).usable_until(60), 30, "short-lived tokens keep half their life usable");
        assert_eq!(t(300).usable_until(0), 300);
    }

    #[test]
    fn refresh_starts_at_ten_percent_or_the_margin_before_the_usable_end() {
        assert_eq!(t(3600).refresh_at(30, 60), 3540 - 360);
        assert_eq!(t(300).refresh_at(30, 60), 240 - 30);
        assert_eq!(t(300).refresh_at(30, 0), 270);
        assert_eq!(t(60).refresh_at(30, 60), 15, "half of the 30 s usable span");
    }

    #[test]
    fn every_token_is_fresh_for_a_while_and_never_usable_past_expiry() {
        for life in [1, 2, 10, 59, 60, 61, 120, 300, 3600, 86_400] {
            for (margin, min_remaining) in [(0, 0), (30, 60), (3600, 3600)] {
                let tok = t(life);
                let (fresh, usable) = (tok.refresh_at(margin, min_remaining), tok.usable_until(min_remaining));
                assert!(0 <= fresh && fresh <= usable && usable <= life, "life {life}: {fresh} {usable}");
                if life >= 4 {
                    assert!(fresh > 0, "life {life} margin {margin} min {min_remaining}: refetched on every use");
                }
            }
        }
    }

    #[test]
    fn invalid_client_is_told_apart_from_other_errors() {
        assert_eq!(failure_for_status(400, br#"{"error":"invalid_client"}"#), Failure::ClientRejected);
        assert_eq!(failure_for_status(401, b""), Failure::ClientRejected);
        assert_eq!(failure_for_status(400, br#"{"error":"invalid_scope"}"#), Failure::Status(400));
        assert_eq!(failure_for_status(500, b"oops"), Failure::Status(500));
    }
}

/// The expiry arithmetic of backend tokens for any clock, lifetime and configuration.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::engine::expiry;
    use proptest::prelude::*;

    /// `expires_in` as IdPs write it: absent, an integer, a whole float, or a numeric string.
    fn expires_in() -> impl Strategy<Value = Option<(i64, String)>> {
        prop_oneof![
            Just(None),
            (1..=i64::MAX).prop_map(|s| Some((s, s.to_string()))),
            (1..=1_000_000_000i64).prop_map(|s| Some((s, format!("{s}.0")))),
            (1..=100_000_000i64).prop_map(|s| Some((s, format!("\"{s}\"")))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// A backend token is handed out only before `usable_until`, which leaves the minimum
        /// remaining life (at most half the token's life) before its expiry; it is refreshed
        /// before that; and the grant never outlives either token.
        #[test]
        fn a_backend_token_is_never_handed_out_past_its_usable_life(
            now in prop_oneof![0..=4_000_000_000i64, 0..i64::MAX - 1],
            lifetime in expires_in(),
            default_ttl in 1..=86_400i64,
            margin in 0..=86_400i64,
            min_remaining in 0..=3_600i64,
            caller in proptest::option::of(-1_000_000_000..=4_000_000_000i64),
            cache_max_ttl in 0..=86_400i64,
        ) {
            let body = match &lifetime {
                Some((_, written)) => format!(r#"{{"access_token":"t0k.en","token_type":"Bearer","expires_in":{written}}}"#),
                None => r#"{"access_token":"t0k.en"}"#.to_string(),
            };
            let life = lifetime.map_or(default_ttl, |(s, _)| s);
            if now.checked_add(life).is_none_or(|t| t > crate::clock::LAST_TIME) {
                prop_assert_eq!(read_answer(200, body.as_bytes(), now, default_ttl), Err(Failure::Malformed));
                return Ok(());
            }
            let token = read_answer(200, body.as_bytes(), now, default_ttl).expect("a well-formed answer");
            prop_assert_eq!(token.issued_at, now);
            prop_assert_eq!(token.expires_at, now.saturating_add(life));
            prop_assert!(token.expires_at > now);

            let usable_until = token.usable_until(min_remaining);
            let refresh_at = token.refresh_at(margin, min_remaining);
            prop_assert!(now < usable_until && usable_until <= token.expires_at, "usable until {}", usable_until);
            prop_assert!(now <= refresh_at && refresh_at <= usable_until, "refresh at {}", refresh_at);
            let real_life = token.expires_at - token.issued_at;
            prop_assert!(token.expires_at - usable_until >= min_remaining.min(real_life / 2));
            // Not refetched on every use unless the token lives only a few seconds.
            if real_life >= 4 {
                prop_assert!(refresh_at > now, "refetched at once: life {}", real_life);
            }

            // The grant's expiry, as the engine computes it, at any moment the token is handed out.
            for at in [now, refresh_at, usable_until - 1] {
                let caller_expiry = caller.unwrap_or_else(|| at.saturating_add(cache_max_ttl));
                let expires_at = expiry(caller_expiry, token.expires_at);
                prop_assert!(expires_at <= caller_expiry && expires_at <= token.expires_at);
                prop_assert!(expires_at == caller_expiry || expires_at == token.expires_at);
            }
        }
    }
}
