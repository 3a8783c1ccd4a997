//! Calls to the IdP endpoints where tokenbridge is a client: introspection at IdP A, the token
//! endpoint at IdP B. Each call authenticates with the client's secret, fetches the secret again
//! when the IdP rejects it (a rotation), and retries once after a transient failure, all within
//! the call's limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::budget::Budget;
use crate::clock::{Clock, UnixTime};
use crate::config::Client;
use crate::http::{Answer, HttpClient};
use crate::log::Trace;
use crate::outcome::{Cause, Dependency, Failure};
use crate::secret::{Secret, SecretCell, Secrets};

/// The pause before the one quick retry, and the time that must be left for it.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
const RETRY_NEEDS: Duration = Duration::from_millis(250);

/// One endpoint and our client there.
pub(crate) struct Endpoint {
    dependency: Dependency,
    client: Client,
    secret: SecretCell,
    /// The setting that names the secret, for `check-config`.
    secret_setting: &'static str,
}

impl Endpoint {
    pub(crate) fn new(dependency: Dependency, client: &Client, secret_setting: &'static str) -> Self {
        let secret = SecretCell::new(client.secret.clone());
        Self { dependency, client: client.clone(), secret, secret_setting }
    }

    /// Why this endpoint's secret cannot be had, if it cannot.
    pub(crate) fn check_secret(&self, secrets: &Secrets, now: UnixTime) -> Option<crate::secret::SecretProblem> {
        secrets.check(self.secret_setting, &self.secret, now)
    }
}

/// What every IdP call shares: the one HTTP agent, the secret sources, and the clock.
pub(crate) struct Idp {
    pub http: HttpClient,
    secrets: Arc<Secrets>,
    clock: Arc<dyn Clock>,
    /// Fewest seconds between two refetches of a secret after `invalid_client`.
    secret_refresh_interval: i64,
}

impl Idp {
    pub(crate) fn new(
        http: HttpClient,
        secrets: Arc<Secrets>,
        clock: Arc<dyn Clock>,
        secret_refresh_interval: i64,
    ) -> Self {
        Self { http, secrets, clock, secret_refresh_interval }
    }

    /// The time now, for a stage that follows IdP calls.
    pub(crate) fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// POSTs `form` to the endpoint with our client credentials and reads its answer with
    /// `read`. When the IdP rejects our client, the secret is fetched again and the call retried
    /// once if it changed; a refused connection or a 5xx is retried once when time allows.
    pub(crate) fn call<T>(
        &self,
        endpoint: &Endpoint,
        form: &[(&str, &str)],
        budget: Budget,
        trace: &mut Trace,
        read: impl Fn(&Answer) -> Result<T, Failure>,
    ) -> Result<T, Cause> {
        let dependency = endpoint.dependency;
        let mut secret = self.secrets.get(&endpoint.secret, budget).map_err(|e| {
            trace.detail = Some(e.to_string());
            e.cause()
        })?;
        let limit = budget.call_limit();
        let (mut rotated, mut retried) = (false, false);
        loop {
            let result = self
                .post(&endpoint.client, &secret, form, limit.until(), trace)
                .map_err(|failure| Cause::new(dependency, limit.name(failure)))
                .and_then(|a| read(&a).map_err(|failure| Cause { dependency, failure, retry_after: a.retry_after }));
            match result {
                Err(c) if c.failure == Failure::ClientRejected && !rotated => {
                    rotated = true;
                    let interval = self.secret_refresh_interval;
                    match self.secrets.refresh(&endpoint.secret, &secret, interval, budget) {
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
        client: &Client,
        secret: &Secret,
        form: &[(&str, &str)],
        until: Instant,
        trace: &mut Trace,
    ) -> Result<Answer, Failure> {
        let started = Instant::now();
        let answer = self.http.post_form(&client.endpoint, &client.client_id, secret.expose(), form, Some(until));
        trace.idp_micros += started.elapsed().as_micros();
        answer
    }
}

fn transient(failure: Failure) -> bool {
    matches!(failure, Failure::Unreachable | Failure::Status(500..=599))
}
