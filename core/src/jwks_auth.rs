//! The bearer token some JWKS endpoints ask for: OCI IAM identity domains serve
//! `/admin/v1/SigningCert/jwk` to authenticated clients only, unless the domain makes it public.
//! The token comes from a client_credentials grant at the same domain, made like every call where
//! tokenbridge is a client ([`Idp::call`]: client authentication, the credential fetched again
//! after `invalid_client`, the one quick retry, the call's limit) and read like tokenbridge's own
//! backend token ([`read_grant_answer`]). It is kept until shortly before it expires; a JWKS
//! endpoint that answers 401 to a kept token has it dropped and asked for once more.

use std::sync::Mutex;

use crate::backend::{BackendToken, Issued, read_grant_answer};
use crate::budget::Budget;
use crate::cache::{Cache, Entry, Lookup};
use crate::clock::UnixTime;
use crate::config::JwksAuth;
use crate::grant::BackendGrant;
use crate::http::Answer;
use crate::idp::{Endpoint, Idp};
use crate::log::Trace;
use crate::outcome::{Cause, Dependency, Failure};
use crate::sync::lock;

/// A token is asked for again this long (or a tenth of its life, when that is longer) before it
/// stops being sent.
const REFRESH_MARGIN: i64 = 30;
/// A token is not sent in its last seconds: clocks differ, and the JWKS answer takes a moment.
const LAST_SECONDS: i64 = 10;
/// A refused token is replaced at most this often: a JWKS that refuses every token (while no
/// keys are held, each decision asks it again) costs the token endpoint one request per window,
/// not one per decision.
const REPLACED_AT_MOST_EVERY: i64 = 10;

/// The token endpoint, our client there, and the token it gave.
pub(crate) struct JwksBearer {
    endpoint: Endpoint,
    /// `grant_type=client_credentials`, and the `scope` when one is configured.
    form: Vec<(&'static str, String)>,
    token: Cache<(), BackendToken, Cause>,
    /// Until when a token refused by the JWKS is not replaced again.
    no_replacement_until: Mutex<UnixTime>,
    /// Lifetime assumed for an answer without `expires_in`.
    default_ttl: i64,
}

impl JwksBearer {
    pub(crate) fn new(auth: &JwksAuth, default_ttl: i64) -> Self {
        let scope: Vec<(&'static str, String)> = auth.scope.iter().map(|s| ("scope", s.clone())).collect();
        Self {
            // Every failure to get the token is the JWKS's: its keys cannot be loaded.
            endpoint: Endpoint::new(Dependency::Jwks, &auth.client),
            form: BackendGrant::ClientCredentials.form(&scope),
            token: Cache::new(1),
            no_replacement_until: Mutex::new(UnixTime::MIN),
            default_ttl,
        }
    }

    /// The token endpoint and our client there, for `check-config`.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// GETs `url` with the bearer token. A 401 to a token kept from earlier (revoked, or the
    /// domain's clock ahead of ours) drops it and asks once more with a new one, at most once per
    /// window; a 401 to a token just issued is the answer, as another would fare no better.
    pub(crate) fn get(&self, idp: &Idp, url: &str, budget: Budget) -> Result<Answer, Cause> {
        let (token, how) = self.token(idp, budget)?;
        let answer = self.get_with(idp, url, &token, budget)?;
        if answer.status != 401 || matches!(how, Lookup::Miss | Lookup::Shared) || !self.may_replace(budget.now) {
            return Ok(answer);
        }
        // Dropped only while it is still the one refused: a concurrent fetch may have replaced it.
        if self.token.peek_usable(&(), budget.now).as_ref() == Some(&token) {
            self.token.forget(&());
        }
        let (token, _) = self.token(idp, budget)?;
        self.get_with(idp, url, &token, budget)
    }

    /// Whether a refused token may be replaced now; claims the window if so.
    fn may_replace(&self, now: UnixTime) -> bool {
        let mut until = lock(&self.no_replacement_until);
        let free = now >= *until;
        if free {
            *until = now.saturating_add(REPLACED_AT_MOST_EVERY);
        }
        free
    }

    fn get_with(&self, idp: &Idp, url: &str, token: &BackendToken, budget: Budget) -> Result<Answer, Cause> {
        let authorization = format!("Bearer {}", token.access_token.expose());
        idp.http
            .get_authorized(url, Some(&authorization), budget.deadline())
            .map_err(|failure| Cause::new(Dependency::Jwks, failure))
    }

    /// The kept token, or a new one; a kept one still valid is used when a new one cannot be had.
    fn token(&self, idp: &Idp, budget: Budget) -> Result<(BackendToken, Lookup<Cause>), Cause> {
        let timed_out = budget.waited_too_long(Dependency::Jwks);
        self.token.get_or_load(
            &(),
            budget.now,
            || budget.wait_until(),
            timed_out,
            || {
                let form: Vec<(&str, &str)> = self.form.iter().map(|(k, v)| (*k, v.as_str())).collect();
                // The keys are loaded outside any one decision's log line.
                let mut trace = Trace::default();
                let (now, grant) = (budget.now, &BackendGrant::ClientCredentials);
                let token = idp.call(&self.endpoint, &form, budget, &mut trace, |a| {
                    match read_grant_answer(grant, a.status, &a.body, now, self.default_ttl)? {
                        Issued::Token(token) => Ok(token),
                        // Only a grant that carries a caller's token can refuse one.
                        Issued::Refused => Err(Failure::Status(a.status)),
                    }
                })?;
                Ok(kept(token))
            },
        )
    }
}

/// How long a token is kept: sent until its last seconds, asked for again a while before.
fn kept(token: BackendToken) -> Entry<BackendToken> {
    Entry {
        fresh_until: token.refresh_at(REFRESH_MARGIN, LAST_SECONDS),
        usable_until: token.usable_until(LAST_SECONDS),
        value: token,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn token(life: i64) -> BackendToken {
        BackendToken { access_token: Secret::new("t"), issued_at: 1_000, expires_at: 1_000 + life }
    }

    #[test]
    fn a_token_is_kept_until_shortly_before_it_expires_and_renewed_before_that() {
        // An identity domain's hour-long token: renewed 6 minutes (a tenth) before its last 10 s.
        let hour = kept(token(3_600));
        assert_eq!((hour.fresh_until, hour.usable_until), (1_000 + 3_230, 1_000 + 3_590));
        // A short one is not asked for again in the first half of the time it is sent.
        let minute = kept(token(60));
        assert_eq!((minute.fresh_until, minute.usable_until), (1_000 + 25, 1_000 + 50));
        for life in [1, 2, 5, 20, 300, 86_400] {
            let entry = kept(token(life));
            let (fresh, usable) = (entry.fresh_until, entry.usable_until);
            assert!(1_000 <= fresh && fresh <= usable && usable <= 1_000 + life, "life {life}: {fresh} {usable}");
        }
    }
}
