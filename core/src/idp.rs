//! Calls to the IdP endpoints where tokenbridge is a client: introspection at IdP A, the token
//! endpoint at IdP B. Each call authenticates with the client's credential (a secret, or a
//! private key that signs a fresh assertion), fetches the credential again when the IdP rejects
//! it (a rotation), and retries once after a transient failure, all within the call's limit.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::budget::Budget;
use crate::client_auth::{self, KeyError, Method, SigningKey};
use crate::clock::{Clock, UnixTime};
use crate::config::Client;
use crate::http::{Answer, HttpClient, basic_auth};
use crate::log::Trace;
use crate::outcome::{Cause, Dependency, Failure};
use crate::secret::{Secret, SecretCell, SecretError, SecretProblem, Secrets};
use crate::sync::lock;

/// The pause before the one quick retry, and the time that must be left for it.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
const RETRY_NEEDS: Duration = Duration::from_millis(250);

/// One endpoint and our client there.
pub(crate) struct Endpoint {
    dependency: Dependency,
    client: Client,
    /// The client secret, or the PEM of the private key.
    credential: SecretCell,
    /// The private key last read, with the PEM it was read from: parsed once per value, not
    /// once per call.
    key: Mutex<Option<(Secret, Arc<SigningKey>)>>,
}

/// How one call authenticates: an `Authorization` header, or parameters added to its form.
struct Authentication {
    header: Option<String>,
    form: Vec<(&'static str, String)>,
}

impl Endpoint {
    pub(crate) fn new(dependency: Dependency, client: &Client) -> Self {
        let credential = SecretCell::new(client.credential.clone());
        Self { dependency, client: client.clone(), credential, key: Mutex::new(None) }
    }

    /// Why this endpoint's credential cannot be had (or, for a private key, cannot sign), if so.
    pub(crate) fn check_secret(&self, secrets: &Secrets, now: UnixTime) -> Option<SecretProblem> {
        let setting = self.client.credential_setting();
        if let Some(problem) = secrets.check(setting, &self.credential, now) {
            return Some(problem);
        }
        let Method::PrivateKeyJwt(_) = &self.client.method else { return None };
        let pem = secrets.get(&self.credential, Budget::new(now, None, Duration::ZERO)).ok()?;
        let error = self.signing_key(&pem).err()?;
        Some(SecretProblem { setting, error: SecretError::Unresolvable(format!("not a usable private key: {error}")) })
    }

    /// The parameters that authenticate one call made with `credential` at `now`: for
    /// `private_key_jwt` a new assertion each time, as many IdPs accept each one only once.
    fn authentication(&self, credential: &Secret, now: UnixTime) -> Result<Authentication, KeyError> {
        let id = &self.client.client_id;
        Ok(match &self.client.method {
            Method::SecretBasic => Authentication { header: Some(basic_auth(id, credential.expose())), form: vec![] },
            Method::SecretPost => Authentication {
                header: None,
                form: vec![("client_id", id.clone()), ("client_secret", credential.expose().to_string())],
            },
            Method::PrivateKeyJwt(settings) => {
                let key = self.signing_key(credential)?;
                let jwt = client_auth::assertion(&key, settings, id, &self.client.endpoint, now)?;
                // `client_id` is optional beside an assertion (RFC 7521 §4.2), but Entra asks for it.
                let form = vec![
                    ("client_id", id.clone()),
                    ("client_assertion_type", client_auth::JWT_BEARER.to_string()),
                    ("client_assertion", jwt),
                ];
                Authentication { header: None, form }
            }
        })
    }

    fn signing_key(&self, pem: &Secret) -> Result<Arc<SigningKey>, KeyError> {
        let alg = match &self.client.method {
            Method::PrivateKeyJwt(settings) => settings.alg,
            _ => None,
        };
        let mut last = lock(&self.key);
        if let Some((_, key)) = last.as_ref().filter(|(read_from, _)| read_from == pem) {
            return Ok(key.clone());
        }
        let key = Arc::new(SigningKey::from_pem(pem, alg)?);
        *last = Some((pem.clone(), key.clone()));
        Ok(key)
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
        let mut secret = self.secrets.get(&endpoint.credential, budget).map_err(|e| {
            trace.detail = Some(e.to_string());
            e.cause()
        })?;
        let limit = budget.call_limit();
        let (mut rotated, mut retried) = (false, false);
        loop {
            // Authenticated anew for every attempt: a retry never replays an assertion.
            let auth = endpoint.authentication(&secret, self.clock.now().max(budget.now)).map_err(|e| {
                trace.detail = Some(format!("{}: {e}", endpoint.client.credential_setting()));
                Cause::new(Dependency::Secret, Failure::Invalid)
            })?;
            let result = self
                .post(&endpoint.client.endpoint, &auth, form, limit.until(), trace)
                .map_err(|failure| Cause::new(dependency, limit.name(failure)))
                .and_then(|a| read(&a).map_err(|failure| Cause { dependency, failure, retry_after: a.retry_after }));
            match result {
                Err(c) if c.failure == Failure::ClientRejected && !rotated => {
                    rotated = true;
                    let interval = self.secret_refresh_interval;
                    match self.secrets.refresh(&endpoint.credential, &secret, interval, budget) {
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
        url: &str,
        auth: &Authentication,
        form: &[(&str, &str)],
        until: Instant,
        trace: &mut Trace,
    ) -> Result<Answer, Failure> {
        let mut form = form.to_vec();
        form.extend(auth.form.iter().map(|(k, v)| (*k, v.as_str())));
        let started = Instant::now();
        let answer = self.http.post_form(url, auth.header.as_deref(), &form, Some(until));
        trace.idp_micros += started.elapsed().as_micros();
        answer
    }
}

fn transient(failure: Failure) -> bool {
    matches!(failure, Failure::Unreachable | Failure::Status(500..=599))
}
