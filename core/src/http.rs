//! The one HTTP client: a shared `ureq::Agent` (connection reuse), per-call timeouts clamped to
//! the request's deadline, no redirects, answers read up to a size cap. Every outbound agent —
//! this one for the IdPs, and the secret stores' ([`crate::StoreClient`]) — comes from [`agent`],
//! so they trust the same roots and resolve names the same way.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::metrics::{self, Call, CallResult};
use crate::outcome::Failure;
use crate::resolver::Resolver;

/// What an IdP answered: status, body (capped) and a `Retry-After` in seconds if given. No
/// `Debug`: the body may hold a token.
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub retry_after: Option<u64>,
    /// `Cache-Control: max-age`, in seconds.
    pub max_age: Option<u64>,
}

pub(crate) struct HttpClient {
    agent: ureq::Agent,
    /// `TOKENBRIDGE_CA_BUNDLE`'s roots, for the agents that present a client certificate.
    roots: Option<Vec<Vec<u8>>>,
    connect_timeout: Duration,
    call_timeout: Duration,
    max_body: u64,
}

/// Time kept back from the platform's deadline so the answer can still be written.
pub(crate) const DEADLINE_MARGIN: Duration = Duration::from_millis(50);

impl HttpClient {
    pub(crate) fn new(
        connect_timeout: Duration,
        call_timeout: Duration,
        max_body: u64,
        roots: Option<&[Vec<u8>]>,
    ) -> Self {
        let agent = agent(roots, connect_timeout, call_timeout);
        Self { agent, roots: roots.map(<[_]>::to_vec), connect_timeout, call_timeout, max_body }
    }

    /// An agent like this client's own that presents `cert` on every TLS connection
    /// (`tls_client_auth`). Built once per identity by the caller and kept: it holds the
    /// connection pool, and the TLS configuration is built at its first connection.
    pub(crate) fn agent_presenting(&self, cert: ureq::tls::ClientCert) -> ureq::Agent {
        agent_with_identity(self.roots.as_deref(), Some(cert), self.connect_timeout, self.call_timeout)
    }

    /// The configured timeout of one call.
    pub(crate) fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// The time one call may take: the configured timeout, cut short by the deadline.
    pub(crate) fn budget(&self, deadline: Option<Instant>) -> Result<Duration, Failure> {
        let Some(deadline) = deadline else {
            return Ok(self.call_timeout);
        };
        let left = deadline.saturating_duration_since(Instant::now()).saturating_sub(DEADLINE_MARGIN);
        if left < Duration::from_millis(1) {
            return Err(Failure::DeadlineExceeded);
        }
        Ok(left.min(self.call_timeout))
    }

    /// POSTs a form, with this `Authorization` header when given (`client_secret_basic`); the
    /// other client authentication methods travel in the form itself, or for `tls_client_auth`
    /// on the TLS connection of `via`, an agent from [`HttpClient::agent_presenting`].
    pub(crate) fn post_form(
        &self,
        url: &str,
        authorization: Option<&str>,
        form: &[(&str, &str)],
        deadline: Option<Instant>,
        via: Option<&ureq::Agent>,
    ) -> Result<Answer, Failure> {
        let budget = self.budget(deadline)?;
        let mut request = via
            .unwrap_or(&self.agent)
            .post(url)
            .config()
            .timeout_global(Some(budget))
            .timeout_connect(Some(self.connect_timeout.min(budget)))
            .build()
            .header("Accept", "application/json");
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        request = with_trace(request);
        let started = Instant::now();
        let answer = self.read(request.send_form(form.iter().copied()), budget);
        metrics::call(form_call(form), call_result(&answer), started);
        answer
    }

    /// GETs a public JSON document (discovery, JWKS).
    pub(crate) fn get(&self, url: &str, deadline: Option<Instant>) -> Result<Answer, Failure> {
        self.get_authorized(url, None, deadline)
    }

    /// GETs a JSON document, with this `Authorization` header when given (a JWKS that only an
    /// authenticated client may read).
    pub(crate) fn get_authorized(
        &self,
        url: &str,
        authorization: Option<&str>,
        deadline: Option<Instant>,
    ) -> Result<Answer, Failure> {
        let budget = self.budget(deadline)?;
        let started = Instant::now();
        let mut request = self
            .agent
            .get(url)
            .config()
            .timeout_global(Some(budget))
            .timeout_connect(Some(self.connect_timeout.min(budget)))
            .build()
            .header("Accept", "application/json");
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        request = with_trace(request);
        let answer = self.read(request.call(), budget);
        // The only GETs are of issuer metadata: discovery documents at their well-known paths, and key sets.
        let call = if url.contains("/.well-known/") { Call::Discovery } else { Call::Jwks };
        metrics::call(call, call_result(&answer), started);
        answer
    }

    fn read(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        budget: Duration,
    ) -> Result<Answer, Failure> {
        // A timeout that the deadline imposed is the deadline's failure, not the IdP's.
        let cut_by_deadline = budget < self.call_timeout;
        let classify = |e| match classify(e) {
            Failure::Timeout if cut_by_deadline => Failure::DeadlineExceeded,
            f => f,
        };
        let mut response = response.map_err(classify)?;
        let status = response.status().as_u16();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let retry_after = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok());
        let max_age = header("cache-control").and_then(|v| max_age(&v));
        let body = response.body_mut().with_config().limit(self.max_body).read_to_vec().map_err(classify)?;
        Ok(Answer { status, body, retry_after, max_age })
    }
}

/// What a POSTed form asks for, for the metrics: a grant's `grant_type` names a token request
/// (client_credentials) or one that carries the caller on; a form without one is introspection.
fn form_call(form: &[(&str, &str)]) -> Call {
    match form.iter().find(|(k, _)| *k == "grant_type").map(|(_, v)| *v) {
        None => Call::Introspection,
        Some("client_credentials") => Call::Token,
        Some(_) => Call::Exchange,
    }
}

fn call_result(answer: &Result<Answer, Failure>) -> CallResult {
    match answer {
        Ok(a) => CallResult::of_status(a.status),
        Err(f) => CallResult::of_failure(*f),
    }
}

/// An agent for outbound calls: exactly `roots` trusted when given (`TOKENBRIDGE_CA_BUNDLE`),
/// else the built-in Mozilla roots; TLS always verified; the caching resolver; statuses as
/// answers, not errors; no redirects (one from an IdP or a secret store is a misconfiguration or
/// an attack). The timeouts are defaults that each call cuts to its own budget.
pub(crate) fn agent(roots: Option<&[Vec<u8>]>, connect_timeout: Duration, call_timeout: Duration) -> ureq::Agent {
    agent_with_identity(roots, None, connect_timeout, call_timeout)
}

/// [`agent`], presenting `client_cert` when the server asks for one. The certificate and key
/// must have been checked to belong together ([`crate::client_auth::ClientIdentity`]): ureq
/// panics at the first handshake otherwise.
fn agent_with_identity(
    roots: Option<&[Vec<u8>]>,
    client_cert: Option<ureq::tls::ClientCert>,
    connect_timeout: Duration,
    call_timeout: Duration,
) -> ureq::Agent {
    // rustls on aws-lc-rs, the provider jsonwebtoken verifies with: one crypto library linked.
    // ureq has no provider of its own (feature `rustls-no-provider`), so an agent built without
    // this one would panic on its first TLS connection.
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = ureq::tls::TlsConfig::builder().unversioned_rustls_crypto_provider(provider);
    if let Some(roots) = roots {
        let certs: Vec<ureq::tls::Certificate<'static>> =
            roots.iter().map(|der| ureq::tls::Certificate::from_der(der).to_owned()).collect();
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
    }
    let config_tls = tls.client_cert(client_cert).build();
    let config = ureq::Agent::config_builder()
        .tls_config(config_tls)
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("tokenbridge/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(connect_timeout))
        .timeout_global(Some(call_timeout))
        .build();
    ureq::Agent::with_parts(config, ureq::unversioned::transport::DefaultConnector::default(), Resolver::default())
}

/// The setting that names the PEM file of trusted roots.
pub(crate) const CA_BUNDLE: &str = "TOKENBRIDGE_CA_BUNDLE";

/// The certificates of the PEM file `path` (as `TOKENBRIDGE_CA_BUNDLE` names it), as DER; an
/// unreadable file or one without a certificate is an error, never "trust the built-in roots".
pub(crate) fn read_ca_bundle(path: &str) -> Result<Vec<Vec<u8>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{CA_BUNDLE} {path}: {}", e.kind()))?;
    let certs: Vec<Vec<u8>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c.der().to_vec()),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(format!("{CA_BUNDLE} {path} holds no PEM certificate"));
    }
    Ok(certs)
}

/// The `max-age` of a `Cache-Control` value; `no-cache`/`no-store` count as 0.
fn max_age(cache_control: &str) -> Option<u64> {
    let mut age = None;
    for directive in cache_control.split(',').map(str::trim) {
        if directive.eq_ignore_ascii_case("no-cache") || directive.eq_ignore_ascii_case("no-store") {
            return Some(0);
        }
        match directive.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("max-age") => age = v.trim().trim_matches('"').parse().ok(),
            _ => {}
        }
    }
    age
}

/// Maps ureq's errors onto the few failure kinds the decision distinguishes. The error itself
/// is dropped: its text may carry a URL, and the failure kind is what callers act on.
fn classify(e: ureq::Error) -> Failure {
    match e {
        ureq::Error::Timeout(_) => Failure::Timeout,
        ureq::Error::Io(io) if matches!(io.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) => {
            Failure::Timeout
        }
        ureq::Error::Io(io) if io.get_ref().is_some_and(|inner| refuses_our_certificate(inner)) => {
            Failure::ClientRejected
        }
        ureq::Error::Rustls(tls) if refuses_our_certificate(&tls) => Failure::ClientRejected,
        ureq::Error::BodyExceedsLimit(_) => Failure::TooLarge,
        ureq::Error::Protocol(_) | ureq::Error::BadUri(_) | ureq::Error::Http(_) => Failure::Malformed,
        _ => Failure::Unreachable,
    }
}

/// Whether `e` is the TLS peer's alert that it will not take our client certificate (or wants
/// one): an IdP refusing our client in the handshake, as `invalid_client` does in HTTP, so that
/// the credential is fetched again (`tls_client_auth`), not retried as an outage.
fn refuses_our_certificate(e: &(dyn std::error::Error + 'static)) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        e.downcast_ref::<rustls::Error>(),
        Some(rustls::Error::AlertReceived(
            A::BadCertificate
                | A::CertificateRequired
                | A::UnknownCA
                | A::CertificateUnknown
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::UnsupportedCertificate
                | A::AccessDenied
        ))
    )
}

/// Characters left as they are by `application/x-www-form-urlencoded`; all others are encoded.
const FORM: &AsciiSet = &NON_ALPHANUMERIC.remove(b'*').remove(b'-').remove(b'.').remove(b'_');

/// `Basic base64(urlencode(id) ":" urlencode(secret))`, as RFC 6749 §2.3.1 requires.
pub(crate) fn basic_auth(client_id: &str, client_secret: &str) -> String {
    let pair = format!("{}:{}", utf8_percent_encode(client_id, FORM), utf8_percent_encode(client_secret, FORM));
    format!("Basic {}", STANDARD.encode(pair))
}

/// The request with the decision's trace context headers (validated, rebuilt values only).
fn with_trace<B>(request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
    let headers: Vec<(&'static str, String)> =
        crate::trace_context::with_current(|trace| trace.headers().map(|(n, v)| (n, v.to_string())).collect());
    headers.into_iter().fold(request, |request, (name, value)| request.header(name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_urlencodes_before_base64() {
        // "a b:c:d%" → "a%20b:c%3Ad%25"
        assert_eq!(basic_auth("a b", "c:d%"), format!("Basic {}", STANDARD.encode("a%20b:c%3Ad%25")));
        assert_eq!(basic_auth("client", "s3cr3t"), "Basic Y2xpZW50OnMzY3IzdA==");
    }

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(max_age("public, max-age=3600"), Some(3600));
        assert_eq!(max_age("max-age=\"60\", must-revalidate"), Some(60));
        assert_eq!(max_age("no-store"), Some(0));
        assert_eq!(max_age("private"), None);
    }

    #[test]
    fn every_agent_carries_the_crypto_provider() {
        // ureq links no provider of its own: an agent without one would panic at its first handshake.
        let der = vec![0u8; 4];
        for roots in [None, Some(&[der][..])] {
            let agent = agent(roots, Duration::from_secs(1), Duration::from_secs(1));
            assert!(agent.config().tls_config().unversioned_rustls_crypto_provider().is_some());
        }
    }

    #[test]
    fn an_agent_presenting_a_certificate_keeps_the_roots_provider_and_limits() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");
        let read = |name: &str| crate::secret::Secret::new(std::fs::read_to_string(format!("{dir}/{name}")).unwrap());
        let identity =
            crate::client_auth::ClientIdentity::from_pem(&read("client-cert.pem"), &read("client-key.pem")).unwrap();
        let root = vec![0u8; 4];
        let c = HttpClient::new(Duration::from_secs(1), Duration::from_secs(5), 1024, Some(&[root][..]));
        let agent = c.agent_presenting(identity.cert);
        let config = agent.config();
        assert!(config.tls_config().unversioned_rustls_crypto_provider().is_some());
        assert_eq!(config.tls_config().client_cert().map(|c| c.certs().len()), Some(1));
        assert!(matches!(config.tls_config().root_certs(), ureq::tls::RootCerts::Specific(r) if r.len() == 1));
        assert_eq!(config.max_redirects(), 0);
        assert_eq!(config.timeouts().global, Some(Duration::from_secs(5)));
        assert!(c.agent.config().tls_config().client_cert().is_none(), "the shared agent presents none");
    }

    #[test]
    fn a_handshake_alert_about_our_certificate_is_a_client_rejection_and_others_are_not() {
        let alert = |a| std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::AlertReceived(a));
        for refusal in [rustls::AlertDescription::CertificateRequired, rustls::AlertDescription::UnknownCA] {
            assert_eq!(classify(ureq::Error::Io(alert(refusal))), Failure::ClientRejected);
            assert_eq!(classify(ureq::Error::Rustls(rustls::Error::AlertReceived(refusal))), Failure::ClientRejected);
        }
        assert_eq!(classify(ureq::Error::Io(alert(rustls::AlertDescription::HandshakeFailure))), Failure::Unreachable);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify(ureq::Error::Io(refused)), Failure::Unreachable);
    }

    #[test]
    fn budget_is_clamped_by_the_deadline() {
        let c = HttpClient::new(Duration::from_secs(1), Duration::from_secs(5), 1024, None);
        assert_eq!(c.budget(None), Ok(Duration::from_secs(5)));
        let soon = c.budget(Some(Instant::now() + Duration::from_millis(500))).unwrap();
        assert!(soon <= Duration::from_millis(450), "{soon:?}");
        assert_eq!(c.budget(Some(Instant::now())), Err(Failure::DeadlineExceeded));
    }
}
