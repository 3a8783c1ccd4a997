//! Calls to the IdP endpoints where tokenbridge is a client: introspection at IdP A, the token
//! endpoint at IdP B. Each call authenticates with the client's credential (a secret, or a
//! private key that signs a fresh assertion), fetches the credential again when the IdP rejects
//! it (a rotation), and retries once after a transient failure, all within the call's limit.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::budget::Budget;
use crate::client_auth::{self, CertError, ClientIdentity, KeyError, Method, SigningKey};
use crate::clock::{Clock, UnixTime};
use crate::config::Client;
use crate::http::{Answer, HttpClient, basic_auth};
use crate::log::Trace;
use crate::outcome::{Cause, Dependency, Failure};
use crate::secret::{Secret, SecretCell, SecretError, SecretProblem, Secrets};
use crate::shared_cache::SharedCache;
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
    /// For the TLS methods, the PEM of the certificate chain presented with that key.
    certificate: Option<SecretCell>,
    /// The private key last read, with the PEM it was read from: parsed once per value, not
    /// once per call.
    key: Mutex<Option<(Secret, Arc<SigningKey>)>>,
    /// For the TLS methods, the agent presenting the identity last read, with the PEMs (chain,
    /// key) it was built from: one per identity, so connections are reused and a rotated
    /// credential gets an agent of its own.
    tls: Mutex<Option<(Secret, Secret, ureq::Agent)>>,
}

/// The resolved credential of one call: the secret or key, and for the TLS methods the
/// certificate chain. No `Debug`: [`Secret`]'s own redacts, but nothing here needs printing.
#[derive(Clone)]
struct Credential {
    secret: Secret,
    certificate: Option<Secret>,
}

/// How one call authenticates: an `Authorization` header, parameters added to its form, or
/// (the TLS methods) the agent whose connections present our certificate.
struct Authentication {
    header: Option<String>,
    form: Vec<(&'static str, String)>,
    agent: Option<ureq::Agent>,
}

/// Why a resolved credential cannot authenticate a call. Never holds any part of it.
#[derive(Debug, thiserror::Error)]
enum CredentialError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Certificate(#[from] CertError),
}

impl Endpoint {
    /// Who asks where, for the shared cache's namespaces: the URL and the client id.
    pub(crate) fn asker(&self) -> [&str; 2] {
        [&self.client.endpoint, &self.client.client_id]
    }

    pub(crate) fn new(dependency: Dependency, client: &Client) -> Self {
        let credential = SecretCell::new(client.credential.clone());
        let certificate = client.certificate.clone().map(SecretCell::new);
        Self {
            dependency,
            client: client.clone(),
            credential,
            certificate,
            key: Mutex::new(None),
            tls: Mutex::new(None),
        }
    }

    /// Why this endpoint's credential cannot be had (or, for a private key, cannot sign; for a
    /// client certificate, cannot make a TLS identity with the key), if so.
    pub(crate) fn check_secret(&self, secrets: &Secrets, now: UnixTime) -> Option<SecretProblem> {
        let setting = self.client.credential_setting();
        if let Some(problem) = secrets.check(setting, &self.credential, now) {
            return Some(problem);
        }
        if let Some(cell) = &self.certificate
            && let Some(problem) = secrets.check(self.client.settings.cert, cell, now)
        {
            return Some(problem);
        }
        let budget = Budget::new(now, None, Duration::ZERO);
        let secret = secrets.get(&self.credential, budget).ok()?;
        let certificate = self.certificate.as_ref().and_then(|cell| secrets.get(cell, budget).ok());
        let error = match &self.client.method {
            Method::PrivateKeyJwt(_) => CredentialError::from(self.signing_key(&secret).err()?),
            Method::TlsClientAuth | Method::SelfSignedTlsClientAuth => {
                CredentialError::from(ClientIdentity::from_pem(certificate.as_ref()?, &secret).err()?)
            }
            Method::SecretBasic | Method::SecretPost => return None,
        };
        let (setting, what) = self.blame(&error);
        Some(SecretProblem { setting, error: SecretError::Unresolvable(format!("{what}: {error}")) })
    }

    /// The certificate the TLS methods present, in words (subject and SHA-256 fingerprint),
    /// with the setting that names it; `None` for the other methods. For `check-config`.
    pub(crate) fn describe_certificate(&self, secrets: &Secrets, now: UnixTime) -> Option<(&'static str, String)> {
        let cell = self.certificate.as_ref()?;
        let setting = self.client.settings.cert;
        let described = match secrets.get(cell, Budget::new(now, None, Duration::ZERO)) {
            Ok(pem) => match client_auth::Chain::from_pem(&pem) {
                Ok(chain) => format!("subject {}, SHA-256 {}", chain.subject, chain.sha256),
                Err(e) => format!("unreadable ({e})"),
            },
            Err(_) => "(cannot be had)".to_string(),
        };
        Some((setting, described))
    }

    /// The setting at fault for `error`, and what it should have held.
    fn blame(&self, error: &CredentialError) -> (&'static str, &'static str) {
        let s = self.client.settings;
        match error {
            CredentialError::Key(_) => (s.key, "not a usable private key"),
            CredentialError::Certificate(e) if e.is_about_the_key() => (s.key, "not a usable TLS client key"),
            CredentialError::Certificate(_) => (s.cert, "not a usable TLS client certificate"),
        }
    }

    /// The credential the next call authenticates with, fetched on first use.
    fn credential(&self, secrets: &Secrets, budget: Budget) -> Result<Credential, SecretProblem> {
        let get = |setting, cell| secrets.get(cell, budget).map_err(|error| SecretProblem { setting, error });
        let secret = get(self.client.credential_setting(), &self.credential)?;
        let certificate = match &self.certificate {
            Some(cell) => Some(get(self.client.settings.cert, cell)?),
            None => None,
        };
        Ok(Credential { secret, certificate })
    }

    /// A new credential after the IdP rejected `rejected`: each part fetched again (at most once
    /// per `interval`), `None` when neither changed, so a retry would not help.
    fn refreshed(&self, secrets: &Secrets, rejected: &Credential, interval: i64, budget: Budget) -> Option<Credential> {
        let secret = secrets.refresh(&self.credential, &rejected.secret, interval, budget);
        let certificate = match (&self.certificate, &rejected.certificate) {
            (Some(cell), Some(old)) => secrets.refresh(cell, old, interval, budget),
            _ => None,
        };
        if secret.is_none() && certificate.is_none() {
            return None;
        }
        Some(Credential {
            secret: secret.unwrap_or_else(|| rejected.secret.clone()),
            certificate: certificate.or_else(|| rejected.certificate.clone()),
        })
    }

    /// The parameters that authenticate one call made with `credential` at `now`: for
    /// `private_key_jwt` a new assertion each time, as many IdPs accept each one only once;
    /// for the TLS methods the agent presenting the certificate, and our `client_id` in the
    /// form (RFC 8705 §2: the IdP identifies the client by it).
    fn authentication(
        &self,
        credential: &Credential,
        http: &HttpClient,
        now: UnixTime,
    ) -> Result<Authentication, CredentialError> {
        let id = &self.client.client_id;
        let secret = &credential.secret;
        Ok(match &self.client.method {
            Method::SecretBasic => {
                Authentication { header: Some(basic_auth(id, secret.expose())), form: vec![], agent: None }
            }
            Method::SecretPost => Authentication {
                header: None,
                form: vec![("client_id", id.clone()), ("client_secret", secret.expose().to_string())],
                agent: None,
            },
            Method::TlsClientAuth | Method::SelfSignedTlsClientAuth => {
                let chain = credential.certificate.as_ref().ok_or(CertError::NoCertificate)?;
                let agent = self.tls_agent(chain, secret, http)?;
                Authentication { header: None, form: vec![("client_id", id.clone())], agent: Some(agent) }
            }
            Method::PrivateKeyJwt(settings) => {
                let key = self.signing_key(secret)?;
                let jwt = client_auth::assertion(&key, settings, id, &self.client.endpoint, now)?;
                // `client_id` is optional beside an assertion (RFC 7521 §4.2), but Entra asks for it.
                let form = vec![
                    ("client_id", id.clone()),
                    ("client_assertion_type", client_auth::JWT_BEARER.to_string()),
                    ("client_assertion", jwt),
                ];
                Authentication { header: None, form, agent: None }
            }
        })
    }

    /// The agent presenting this chain and key, built once per pair of values.
    fn tls_agent(&self, chain: &Secret, key: &Secret, http: &HttpClient) -> Result<ureq::Agent, CertError> {
        let mut last = lock(&self.tls);
        if let Some((_, _, agent)) = last.as_ref().filter(|(c, k, _)| c == chain && k == key) {
            return Ok(agent.clone());
        }
        let identity = ClientIdentity::from_pem(chain, key)?;
        let agent = http.agent_presenting(identity.cert);
        *last = Some((chain.clone(), key.clone(), agent.clone()));
        Ok(agent)
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
    /// The shared cache tier, when configured.
    pub(crate) shared: Option<SharedCache>,
}

impl Idp {
    /// With the shared cache tier `shared`.
    pub(crate) fn with_shared(mut self, shared: Option<SharedCache>) -> Self {
        self.shared = shared;
        self
    }

    pub(crate) fn new(
        http: HttpClient,
        secrets: Arc<Secrets>,
        clock: Arc<dyn Clock>,
        secret_refresh_interval: i64,
    ) -> Self {
        Self { http, secrets, clock, secret_refresh_interval, shared: None }
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
        let mut credential = endpoint.credential(&self.secrets, budget).map_err(|p| {
            trace.detail = Some(p.error.to_string());
            p.error.cause()
        })?;
        let limit = budget.call_limit();
        let (mut rotated, mut retried) = (false, false);
        loop {
            // Authenticated anew for every attempt: a retry never replays an assertion.
            let now = self.clock.now().max(budget.now);
            let auth = endpoint.authentication(&credential, &self.http, now).map_err(|e| {
                trace.detail = Some(format!("{}: {e}", endpoint.blame(&e).0));
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
                    match endpoint.refreshed(&self.secrets, &credential, interval, budget) {
                        Some(new) => credential = new,
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
        let answer = self.http.post_form(url, auth.header.as_deref(), &form, Some(until), auth.agent.as_ref());
        trace.idp_micros += started.elapsed().as_micros();
        answer
    }
}

fn transient(failure: Failure) -> bool {
    matches!(failure, Failure::Unreachable | Failure::Status(500..=599))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Client;
    use crate::secret::SecretRef;
    use crate::settings::BACKEND_CLIENT;

    fn testdata(name: &str) -> String {
        std::fs::read_to_string(format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    /// An endpoint on `tls_client_auth` whose certificate and key are read from files in `dir`.
    fn tls_endpoint(dir: &std::path::Path) -> Endpoint {
        let file = |name: &str| SecretRef::File(dir.join(name).display().to_string());
        let client = Client {
            endpoint: "https://idp-b.example/token".into(),
            client_id: "tb".into(),
            method: Method::TlsClientAuth,
            credential: file("key.pem"),
            certificate: Some(file("cert.pem")),
            settings: &BACKEND_CLIENT,
        };
        Endpoint::new(Dependency::BackendToken, &client)
    }

    #[test]
    fn a_rotated_key_after_a_rejection_gives_a_new_tls_identity() {
        let dir = std::env::temp_dir().join(format!("tb-mtls-rotation-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), testdata("client-cert.pem")).unwrap();
        std::fs::write(dir.join("key.pem"), testdata("other-key.pem")).unwrap();
        let endpoint = tls_endpoint(&dir);
        let secrets = Secrets::new(vec![], Box::new(|_| None));
        let http = HttpClient::new(Duration::from_secs(1), Duration::from_secs(1), 1024, None);
        let budget = Budget::new(1_000, None, Duration::from_secs(1));

        let first = endpoint.credential(&secrets, budget).unwrap();
        let e = endpoint.authentication(&first, &http, 1_000).err().unwrap();
        assert!(matches!(e, CredentialError::Certificate(CertError::KeyMismatch)), "{e}");
        assert_eq!(endpoint.blame(&e).0, "TOKENBRIDGE_BACKEND_CLIENT_CERT");
        assert!(endpoint.refreshed(&secrets, &first, 0, budget).is_none(), "nothing changed: no retry");

        std::fs::write(dir.join("key.pem"), testdata("client-key.pem")).unwrap();
        let rotated = endpoint.refreshed(&secrets, &first, 0, budget).expect("the new key");
        assert_eq!(rotated.certificate, first.certificate);
        let auth = endpoint.authentication(&rotated, &http, 1_000).unwrap();
        assert!(auth.agent.is_some_and(|a| a.config().tls_config().client_cert().is_some()));
        assert_eq!(auth.form, [("client_id", "tb".to_string())]);
        assert!(auth.header.is_none());
        assert!(
            lock(&endpoint.tls).as_ref().is_some_and(|(_, key, _)| *key == rotated.secret),
            "kept for the next call"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn check_config_describes_the_certificate_and_reports_a_key_that_does_not_fit() {
        let dir = std::env::temp_dir().join(format!("tb-mtls-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), testdata("client-cert.pem")).unwrap();
        std::fs::write(dir.join("key.pem"), testdata("other-key.pem")).unwrap();
        let endpoint = tls_endpoint(&dir);
        let secrets = Secrets::new(vec![], Box::new(|_| None));
        let (setting, described) = endpoint.describe_certificate(&secrets, 1_000).unwrap();
        assert_eq!(setting, "TOKENBRIDGE_BACKEND_CLIENT_CERT");
        assert!(
            described.starts_with("subject C=DE, O=Example Org, CN=tokenbridge-test, SHA-256 F2:25:0D"),
            "{described}"
        );
        let problem = endpoint.check_secret(&secrets, 1_000).expect("a problem").to_string();
        assert_eq!(
            problem,
            "TOKENBRIDGE_BACKEND_CLIENT_CERT: not a usable TLS client certificate: the key does not belong to the certificate"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
