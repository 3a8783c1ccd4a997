//! Is the caller's token good? A cached verdict, else a fresh one: verified here when it is a
//! JWT of a local issuer, else introspected at IdP A (RFC 7662).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::budget::Budget;
use crate::cache::{Cache, Entry};
use crate::claims::Wanted;
use crate::clock::UnixTime;
use crate::config::{Config, Mode};
use crate::idp::{Endpoint, Idp};
use crate::introspection::{self, Identity, Verdict};
use crate::jwks_auth::JwksBearer;
use crate::jwt::{self, Jwks, Peek, Unreadable};
use crate::log::Trace;
use crate::outcome::{Cause, Dependency, Failure};
use crate::reason::Reason;
use crate::shared_cache::{Forget, Kind, Stored};

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

/// How long verdicts are kept, in seconds.
struct Lifetimes {
    /// An active verdict, at most (and never past the token's `exp`).
    max_ttl: i64,
    /// An active verdict past that, while IdP A fails (never past `exp` either).
    stale_if_error: i64,
    /// A refusal.
    inactive_ttl: i64,
}

/// The validation stage: the issuers' keys, IdP A, and the verdicts already reached.
pub(crate) struct Validation {
    mode: Mode,
    /// JWKS per issuer name.
    jwks: HashMap<String, Jwks>,
    /// Verdicts by what was asked and the token's SHA-256.
    verdicts: Cache<(Check, [u8; 32]), Verdict, Cause>,
    introspection: Option<Endpoint>,
    /// The bearer token some issuers' JWKS are fetched with.
    jwks_bearer: Option<Arc<JwksBearer>>,
    jwks_client_borrowed: bool,
    introspection_token_type: Option<String>,
    lifetimes: Lifetimes,
    leeway: i64,
    wanted: Wanted,
}

impl Validation {
    pub(crate) fn new(config: &Config) -> Self {
        let mut jwks = jwt::by_issuer(config.issuers.clone(), config.jwks_max_age);
        let jwks_bearer = config.jwks_auth.as_ref().map(|auth| {
            let bearer = Arc::new(JwksBearer::new(auth, config.backend_default_ttl));
            for issuer in jwks.values_mut().filter(|j| auth.covers(j.issuer.jwks_url.as_deref())) {
                issuer.fetched_with(bearer.clone());
            }
            bearer
        });
        Self {
            mode: config.mode,
            jwks,
            jwks_bearer,
            jwks_client_borrowed: config.jwks_auth.as_ref().is_some_and(|a| a.borrowed.is_some()),
            verdicts: Cache::new(config.cache_capacity),
            introspection: config.introspection.as_ref().map(|c| Endpoint::new(Dependency::Introspection, c)),
            introspection_token_type: config.introspection_token_type.clone(),
            lifetimes: Lifetimes {
                max_ttl: config.cache_max_ttl,
                stale_if_error: config.stale_if_error,
                inactive_ttl: config.cache_inactive_ttl,
            },
            leeway: config.leeway,
            wanted: Wanted { context: config.context_claims.clone(), conditions: config.policy.claim_pointers() },
        }
    }

    /// Forgets the verdicts on the tokens whose SHA-256 `forget` says (all of them, or some).
    pub(crate) fn forget(&self, forget: &Forget) {
        match forget {
            Forget::Everything => self.verdicts.forget_where(|_| true),
            Forget::Tokens(hashes) => self.verdicts.forget_where(|(_, hash)| hashes.contains(hash)),
        }
    }

    /// IdP A, when tokens may be introspected.
    pub(crate) fn introspection(&self) -> Option<&Endpoint> {
        self.introspection.as_ref()
    }

    /// The token endpoint of the JWKS bearer token when its client is configured on its own (a
    /// borrowed client's credential is checked as the introspection or backend client's).
    pub(crate) fn jwks_token_endpoint(&self) -> Option<&Endpoint> {
        self.jwks_bearer.as_deref().filter(|_| !self.jwks_client_borrowed).map(JwksBearer::endpoint)
    }

    /// The issuers whose JWTs are verified here.
    pub(crate) fn local_issuers(&self) -> impl Iterator<Item = &Jwks> {
        self.jwks.values().filter(|j| j.issuer.local)
    }

    /// The verdict on `token` (whose SHA-256 is `hash`). With `recheck`, a locally verified
    /// token is also introspected, to catch revocation.
    pub(crate) fn validate(
        &self,
        idp: &Idp,
        token: &str,
        hash: [u8; 32],
        recheck: bool,
        budget: Budget,
        trace: &mut Trace,
    ) -> Result<Verdict, Cause> {
        let verdict = self.cached((Check::Validation, hash), budget, trace, |trace| match self.path(token) {
            _ if idp.shared.as_ref().is_some_and(|tier| tier.is_revoked(budget, token)) => {
                Ok(Verdict::Invalid(Reason::Revoked))
            }
            Path::Introspect { named, jwt } => {
                let verdict = self.introspect(idp, token, budget, trace)?;
                let verdict = if jwt { with_payload_binding(token, verdict) } else { verdict };
                Ok(self.audience_checked(named.as_deref(), jwt, verdict))
            }
            Path::Reject(why) => Ok(Verdict::Invalid(why)),
            Path::Local(jwks, peeked) => {
                let at = jwt::At { idp, now: budget.now, budget, leeway: self.leeway, wanted: &self.wanted };
                jwks.validate(token, &peeked, &at)
            }
        })?;
        match verdict {
            Verdict::Active(identity) if recheck && identity.verified_locally => {
                // The keys may just have been fetched: the recheck's cache is judged by the time now.
                let budget = budget.later(idp.now());
                let key = (Check::Recheck, hash);
                match self.cached(key, budget, trace, |trace| self.introspect(idp, token, budget, trace))? {
                    Verdict::Active(_) => Ok(Verdict::Active(identity)),
                    invalid => Ok(invalid),
                }
            }
            verdict => Ok(verdict),
        }
    }

    /// The verdict on the token whose SHA-256 is `hash` if the cache holds it as a plain hit
    /// (and, with `recheck`, its introspection too): what [`Validation::validate`] would answer
    /// without calling or waiting for anyone.
    pub(crate) fn cache_hit(&self, hash: [u8; 32], recheck: bool, now: UnixTime, trace: &mut Trace) -> Option<Verdict> {
        let verdict = self.verdicts.hit(&(Check::Validation, hash), now)?;
        if let Verdict::Active(identity) = &verdict
            && recheck
            && identity.verified_locally
            && let invalid @ Verdict::Invalid(_) = self.verdicts.hit(&(Check::Recheck, hash), now)?
        {
            trace.validation = Some(crate::cache::Lookup::Hit);
            return Some(invalid);
        }
        trace.validation = Some(crate::cache::Lookup::Hit);
        Some(verdict)
    }

    /// How `token` is validated, from the mode and its (unverified) issuer.
    fn path(&self, token: &str) -> Path<'_> {
        let mode = self.mode;
        let peeked = match jwt::peek(token) {
            Ok(peeked) => peeked,
            Err(Unreadable::NotJwt) if mode == Mode::Jwt => return Path::Reject(Reason::NotAJwt),
            Err(Unreadable::NotJwt) => return Path::Introspect { named: None, jwt: false },
            // A JWT tokenbridge could never verify is refused where tokenbridge would verify
            // it: in `auto` mode, when it names a local issuer, or names none it can read while
            // some issuer is local (sent to IdP A, it would dodge that issuer's checks). An
            // introspected one is the IdP's to judge, as every token in that mode is.
            Err(Unreadable::Refused(why, named)) => {
                let local = |i: &String| self.is_local(i);
                let any_local = self.local_issuers().next().is_some();
                return match mode {
                    Mode::Introspection => Path::Introspect { named, jwt: true },
                    Mode::Auto if !named.as_ref().map_or(any_local, local) => Path::Introspect { named, jwt: true },
                    _ => Path::Reject(why),
                };
            }
        };
        match peeked.issuer.as_deref().and_then(|i| self.issuer_named(i)) {
            Some(jwks) if jwks.issuer.local && mode != Mode::Introspection => Path::Local(jwks, Box::new(peeked)),
            None if mode == Mode::Jwt => Path::Reject(Reason::UnknownIssuer),
            _ => Path::Introspect { named: peeked.issuer, jwt: true },
        }
    }

    fn is_local(&self, issuer: &str) -> bool {
        self.issuer_named(issuer).is_some_and(|j| j.issuer.local)
    }

    /// The configured issuer an `iss` names: the one spelt so, else a tenant template with one
    /// of its accepted tenants substituted. A template is never named by its own spelling.
    fn issuer_named(&self, iss: &str) -> Option<&Jwks> {
        let exact = self.jwks.get(iss).filter(|j| !j.issuer.is_template());
        exact.or_else(|| self.jwks.values().find(|j| j.issuer.is_template() && j.issuer.names(iss)))
    }

    /// A verdict from the cache, or `load`'s, kept until the token's expiry (at most the
    /// configured maximum), or briefly when it is a refusal.
    fn cached(
        &self,
        key: (Check, [u8; 32]),
        budget: Budget,
        trace: &mut Trace,
        load: impl FnOnce(&mut Trace) -> Result<Verdict, Cause>,
    ) -> Result<Verdict, Cause> {
        let now = budget.now;
        let life = &self.lifetimes;
        let timed_out = budget.waited_too_long(Dependency::Introspection);
        let (verdict, lookup) = self.verdicts.get_or_load(
            &key,
            now,
            || budget.wait_until(),
            timed_out,
            || {
                let verdict = load(trace)?;
                Ok(match &verdict {
                    Verdict::Active(Identity { expires_at, .. }) => {
                        let max = now.saturating_add(life.max_ttl);
                        let fresh_until = expires_at.map_or(max, |exp| exp.min(max));
                        // While IdP A fails, a known-good answer may serve a little longer, but never
                        // past the token's own expiry.
                        let stale = fresh_until.saturating_add(life.stale_if_error);
                        let usable_until = expires_at.map_or(stale, |exp| exp.min(stale));
                        Entry { value: verdict, fresh_until, usable_until }
                    }
                    Verdict::Invalid(_) => Entry::until(verdict, now.saturating_add(life.inactive_ttl)),
                })
            },
        )?;
        trace.validation = Some(lookup);
        Ok(verdict)
    }

    /// IdP A's verdict (RFC 7662).
    fn introspect(&self, idp: &Idp, token: &str, budget: Budget, trace: &mut Trace) -> Result<Verdict, Cause> {
        // Configuration validation requires introspection wherever it can be reached.
        let endpoint = self.introspection.as_ref().ok_or(Cause::new(Dependency::Configuration, Failure::Invalid))?;
        let now = budget.now;
        let required_type = self.introspection_token_type.as_deref();
        let read = |status: u16, body: &[u8]| {
            introspection::read_answer(status, body, now, self.leeway, &self.wanted, required_type)
        };
        let [url, client] = endpoint.asker();
        let tier = idp.shared.as_ref();
        let name = tier.and_then(|t| t.name(budget, Kind::Introspection, &[url, client], token));
        let shared = tier.zip(name.as_ref());
        // Another instance's answer, judged here as if it had just come (and no older than this
        // instance would keep its own).
        if let Some((tier, name)) = shared
            && let Some(stored) = tier.get(budget, name)
            && stored.at <= now
            && let Ok(verdict) = read(stored.status, &stored.body)
            && let Some(verdict) = self.kept_since(verdict, stored.at, now)
        {
            return Ok(verdict);
        }
        let kept = RefCell::new(None);
        let form = [("token", token), ("token_type_hint", "access_token")];
        let verdict = idp.call(endpoint, &form, budget, trace, |a| {
            let verdict = read(a.status, &a.body);
            if verdict.is_ok() && shared.is_some() {
                *kept.borrow_mut() = Some(Stored { at: now, status: a.status, body: a.body.clone() });
            }
            verdict
        })?;
        if let (Some((tier, name)), Some(stored)) = (shared, kept.into_inner()) {
            let life = &self.lifetimes;
            let until = match &verdict {
                Verdict::Active(identity) => {
                    let max = now.saturating_add(life.max_ttl);
                    identity.expires_at.map_or(max, |exp| exp.min(max))
                }
                Verdict::Invalid(_) => now.saturating_add(life.inactive_ttl),
            };
            tier.put(budget, name, &stored, until.saturating_sub(now));
        }
        Ok(verdict)
    }

    /// A verdict read from an answer IdP A gave at `at`, as far as this instance would still
    /// keep it: an active one no longer than `max_ttl` from `at` (its expiry brought in to that,
    /// so that neither this cache nor a gateway's keeps it longer), a refusal no longer than
    /// `inactive_ttl`.
    fn kept_since(&self, verdict: Verdict, at: UnixTime, now: UnixTime) -> Option<Verdict> {
        let life = &self.lifetimes;
        match verdict {
            Verdict::Active(mut identity) => {
                let bound = at.saturating_add(life.max_ttl);
                if now >= bound {
                    return None;
                }
                identity.expires_at = Some(identity.expires_at.map_or(bound, |exp| exp.min(bound)));
                Some(Verdict::Active(identity))
            }
            Verdict::Invalid(_) if now >= at.saturating_add(life.inactive_ttl) => None,
            invalid => Some(invalid),
        }
    }

    /// An introspected token must carry one of its issuer's configured audiences (RFC 7662 §2.2
    /// `aud`), like a locally verified JWT. The issuer is the one the answer names and, for a
    /// JWT, the one the token names: a missing `iss` in either place must not skip the check.
    /// When neither names any issuer, the audiences of every introspected issuer apply.
    ///
    /// In `auto` mode a locally verified issuer's JWTs are verified here, never by IdP A: a JWT
    /// that reached IdP A and comes back as that issuer's (its `iss` spelt otherwise, say) is
    /// refused, since none of that issuer's checks were made.
    fn audience_checked(&self, named_by_token: Option<&str>, jwt: bool, verdict: Verdict) -> Verdict {
        let Verdict::Active(identity) = &verdict else { return verdict };
        if jwt && self.mode == Mode::Auto && identity.issuer.as_deref().is_some_and(|i| self.is_local(i)) {
            return Verdict::Invalid(Reason::NotVerifiedLocally);
        }
        // Issuers whose tokens are introspected: all of them in introspection mode, else those
        // marked `"mode":"introspection"` (a local issuer's tokens were checked when verified).
        let introspected = |jwks: &&Jwks| !jwks.issuer.local || self.mode == Mode::Introspection;
        let named: Vec<&Jwks> = [named_by_token, identity.issuer.as_deref()]
            .into_iter()
            .flatten()
            .filter_map(|n| self.issuer_named(n))
            .collect();
        let accepted = if named_by_token.is_none() && identity.issuer.is_none() {
            let audiences: Vec<String> =
                self.jwks.values().filter(introspected).flat_map(|j| j.issuer.audiences.iter().cloned()).collect();
            introspection::audience_accepted(&identity.audiences, &audiences)
        } else {
            let required = |jwks: &&Jwks| introspection::audience_accepted(&identity.audiences, &jwks.issuer.audiences);
            named.into_iter().filter(introspected).all(|jwks| required(&jwks))
        };
        if accepted { verdict } else { Verdict::Invalid(Reason::WrongAudience) }
    }

    /// Loads every local issuer's keys now, all by `deadline`; each issuer that cannot be had,
    /// with why.
    pub(crate) fn load_keys(&self, idp: &Idp, now: UnixTime, deadline: Instant) -> Vec<(&Jwks, Cause)> {
        self.local_issuers().filter_map(|j| j.warm(idp, now, deadline).err().map(|c| (j, c))).collect()
    }

    /// Whether every local issuer's keys are held.
    pub(crate) fn keys_held(&self, now: UnixTime) -> bool {
        self.local_issuers().all(|j| j.is_warm(now))
    }
}

/// An introspected JWT's binding: IdP A's `cnf`, or its payload's when the answer has none (an
/// answer that leaves `cnf` out does not unbind a token that says it is bound); the two
/// disagreeing, or the payload's unreadable, the token is refused rather than one picked.
fn with_payload_binding(token: &str, verdict: Verdict) -> Verdict {
    let Verdict::Active(mut identity) = verdict else { return verdict };
    match (jwt::payload_binding(token), &identity.cnf) {
        (Err(()), _) => Verdict::Invalid(Reason::MalformedClaim),
        (Ok(None), _) => Verdict::Active(identity),
        (Ok(Some(payload)), None) => {
            identity.cnf = Some(payload);
            Verdict::Active(identity)
        }
        (Ok(Some(payload)), Some(answer)) if payload == *answer => Verdict::Active(identity),
        (Ok(Some(_)), Some(_)) => Verdict::Invalid(Reason::MalformedClaim),
    }
}
