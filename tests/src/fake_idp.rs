//! A scriptable OAuth 2.0 identity provider on loopback: a token endpoint (`POST /token`:
//! client_credentials, RFC 8693 token exchange and RFC 7523 jwt-bearer) and an RFC 7662
//! introspection endpoint (`POST /introspect`), both requiring
//! client authentication by the method each client is registered with (`client_secret_basic`,
//! `client_secret_post` or `private_key_jwt`, exactly one per request, as RFC 6749 §2.3
//! demands), with faults a real IdP will not produce on demand (the fake issuer of `jwt_keys`
//! plays the same faults at its JWKS). Like an OCI IAM identity domain, it can also serve a JWKS
//! (`GET /admin/v1/SigningCert/jwk`) only to a bearer of a client_credentials token it issued.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tiny_http::{Header, Response, Server};

/// What an endpoint does instead of its normal job.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer this status with this body (`Content-Type: application/json`).
    Status(u16, String),
    /// Answer with `Retry-After`.
    StatusRetryAfter(u16, u64),
    /// Accept the request, then say nothing for this long before answering normally.
    Delay(Duration),
    /// Say nothing for this long, then answer this status (an empty JSON object as the body).
    SlowStatus(Duration, u16),
    /// Accept the request and never answer.
    Silent,
    /// Answer 200 with a valid-looking body, one byte per this interval.
    Trickle(Duration),
    /// Redirect (302) to this location.
    Redirect(String),
}

/// How a client must authenticate at the fake IdP.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// `client_secret_basic` with this secret.
    Basic(String),
    /// `client_secret_post` with this secret.
    Post(String),
    /// `private_key_jwt`, assertions signed with this key's private half.
    PrivateKeyJwt(PublicKey),
}

/// A client's public key, as the IdP holds it to verify assertions.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicKey {
    /// The JWS algorithm it verifies: `RS256`, `PS256` or `ES256`.
    pub alg: &'static str,
    /// RSA: the `RSAPublicKey` DER; EC: the uncompressed point.
    pub der: Vec<u8>,
}

/// A client key pair made for a test: the PEM tokenbridge signs with, the public half the fake
/// IdP verifies with.
pub struct ClientKey {
    pub pem: String,
    pub public: PublicKey,
}

impl PublicKey {
    fn ec_jwk(&self) -> Value {
        // The uncompressed point: 0x04, then x and y.
        let (x, y) = (self.der.get(1..33).unwrap_or_default(), self.der.get(33..65).unwrap_or_default());
        json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)})
    }
}

impl ClientKey {
    /// The RSA test key of `adapters/oci/tests/vectors` (PKCS#8 PEM), for `alg` RS256 or PS256.
    pub fn rsa(alg: &'static str) -> Self {
        let pem = std::fs::read_to_string(crate::fake_secrets::vectors_dir().join("key-pkcs8.pem")).expect("RSA key");
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let key = RsaKeyPair::from_pkcs8(&STANDARD.decode(body).expect("PEM body")).expect("RSA key");
        ClientKey { pem, public: PublicKey { alg, der: key.public_key().as_ref().to_vec() } }
    }

    /// The public JWK, as a client's registered `jwks` lists it.
    pub fn jwk(&self) -> Value {
        if self.public.alg == "ES256" {
            return self.public.ec_jwk();
        }
        let body: String = self.pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let key = RsaKeyPair::from_pkcs8(&STANDARD.decode(body).expect("PEM body")).expect("RSA key");
        let (n, e) = (key.public_key().modulus(), key.public_key().exponent());
        json!({
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(n.big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(e.big_endian_without_leading_zero()),
        })
    }

    /// A new EC P-256 key, as a PKCS#8 PEM.
    pub fn ec() -> Self {
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new()).expect("EC key");
        let key = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).expect("EC key");
        let pem = pem("PRIVATE KEY", pkcs8.as_ref());
        ClientKey { pem, public: PublicKey { alg: "ES256", der: key.public_key().as_ref().to_vec() } }
    }

    /// A new EC P-256 key, as a SEC1 `EC PRIVATE KEY` PEM.
    pub fn ec_sec1() -> Self {
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let key = EcdsaKeyPair::generate(alg).expect("EC key");
        let sec1 = key.private_key().as_der().expect("SEC1 DER");
        let pem = pem("EC PRIVATE KEY", sec1.as_ref());
        ClientKey { pem, public: PublicKey { alg: "ES256", der: key.public_key().as_ref().to_vec() } }
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).filter_map(|c| std::str::from_utf8(c).ok()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client assertion the fake IdP accepted: its header and claims.
#[derive(Debug, Clone)]
pub struct Assertion {
    pub header: Value,
    pub claims: Value,
    /// The form's `client_id`, if it had one.
    pub client_id: Option<String>,
}

#[derive(Default)]
struct State {
    clients: HashMap<String, ClientAuth>,
    /// Every `jti` accepted: an assertion is good for one request only.
    seen_jtis: HashSet<String>,
    assertions: Vec<Assertion>,
    /// The `aud` assertions must carry besides the endpoint's URL or the IdP's URL.
    assertion_audience: Option<String>,
    /// How far ahead of this IdP's clock an assertion's `iat`/`nbf` may be (`None`: 15 s, as
    /// oidc-provider allows).
    assertion_skew: Option<i64>,
    /// token → introspection answer
    tokens: HashMap<String, Value>,
    introspect_fault: Option<Fault>,
    token_fault: Option<Fault>,
    /// expires_in of issued tokens; `None` leaves it out of the answer.
    token_ttl: Option<i64>,
    /// scope of issued backend tokens
    token_scope: Option<String>,
    /// Caller tokens a token-exchange or jwt-bearer grant is refused for, with the error code.
    refused_subjects: HashMap<String, String>,
    /// Per caller token exchanged (subject token or assertion): the backend tokens issued for it.
    exchanged: Vec<(String, String)>,
    /// The grant type and `audience` of every token issued, oldest first.
    issued: Vec<(String, Option<String>)>,
    /// The `actor_token` of every exchange that sent one, and whether this IdP issued it.
    actors: Vec<(String, bool)>,
    /// The client_credentials tokens issued.
    own_tokens: HashSet<String>,
    /// The trace headers (`traceparent`, `X-Amzn-Trace-Id`, `opc-request-id`) of every
    /// introspection and token request, in order.
    trace_headers: Vec<Vec<(String, String)>>,
    /// The auth methods its discovery document lists for (token, introspection) endpoints;
    /// without them it serves none.
    discovery_methods: Option<(Vec<String>, Vec<String>)>,
    /// The `issued_token_type` an exchange answers with instead of the requested one (or
    /// access_token); `Some(None)` leaves it out.
    issued_token_type: Option<Option<String>>,
    /// The `scope` each client_credentials token was asked for with.
    own_token_scopes: HashMap<String, Option<String>>,
    /// The keys of its JWKS, and the scope a bearer token must have been issued with to read
    /// them; `None`: no JWKS is served.
    jwks: Option<(Vec<Value>, String)>,
    jwks_fault: Option<Fault>,
    /// Every bearer token presented at the JWKS, oldest first.
    jwks_bearers: Vec<String>,
}

/// One fake IdP. Dropping it stops nothing: its thread ends with the test process.
#[derive(Clone)]
pub struct FakeIdp {
    url: String,
    state: Arc<Mutex<State>>,
    introspections: Arc<AtomicUsize>,
    token_requests: Arc<AtomicUsize>,
    rejected_auth: Arc<AtomicUsize>,
    jwks_requests: Arc<AtomicUsize>,
    jwks_refused: Arc<AtomicUsize>,
    serial: Arc<AtomicU64>,
}

/// IdP A (introspection) and IdP B (backend tokens), each with one client of ours.
pub struct IdpPair {
    pub a: FakeIdp,
    pub b: FakeIdp,
}

pub const A_CLIENT: (&str, &str) = ("tokenbridge-at-a", "a: s3cr%t/+ with spaces");
pub const B_CLIENT: (&str, &str) = ("tokenbridge-at-b", "b-s3cret");

impl IdpPair {
    pub fn start() -> Self {
        let a = FakeIdp::start();
        a.add_client(A_CLIENT.0, A_CLIENT.1);
        let b = FakeIdp::start();
        b.add_client(B_CLIENT.0, B_CLIENT.1);
        Self { a, b }
    }

    /// The same settings under the seed's six configuration keys (its `*_ocid` keys hold the
    /// secrets themselves here).
    pub fn seed_env(&self) -> Vec<(String, String)> {
        [
            ("idcs_introspection_endpoint", self.a.introspection_url()),
            ("idcs_app_client_id", A_CLIENT.0.to_string()),
            ("idcs_app_client_secret_ocid", A_CLIENT.1.to_string()),
            ("back_end_token_endpoint", self.b.token_url()),
            ("back_end_app_client_id", B_CLIENT.0.to_string()),
            ("back_end_client_secret_ocid", B_CLIENT.1.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The environment that points tokenbridge at this pair.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("TOKENBRIDGE_INTROSPECTION_URL", self.a.introspection_url()),
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_ID", A_CLIENT.0.to_string()),
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_SECRET", A_CLIENT.1.to_string()),
            ("TOKENBRIDGE_BACKEND_TOKEN_URL", self.b.token_url()),
            ("TOKENBRIDGE_BACKEND_CLIENT_ID", B_CLIENT.0.to_string()),
            ("TOKENBRIDGE_BACKEND_CLIENT_SECRET", B_CLIENT.1.to_string()),
            // Every decision logged: the tests read allows' lines too (the default logs denials only).
            ("TOKENBRIDGE_DECISION_LOG", "all".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl FakeIdp {
    /// Starts on 127.0.0.1 with a free port.
    pub fn start() -> Self {
        Self::start_on("127.0.0.1:0")
    }

    pub fn start_on(addr: &str) -> Self {
        let server = Server::http(addr).expect("bind fake IdP");
        let port = server.server_addr().to_ip().map(|a| a.port()).expect("fake IdP port");
        let idp = FakeIdp {
            url: format!("http://127.0.0.1:{port}"),
            state: Arc::new(Mutex::new(State { token_ttl: Some(3600), ..State::default() })),
            introspections: Arc::default(),
            token_requests: Arc::default(),
            rejected_auth: Arc::default(),
            jwks_requests: Arc::default(),
            jwks_refused: Arc::default(),
            serial: Arc::default(),
        };
        let server = Arc::new(server);
        let handler = idp.clone();
        std::thread::spawn(move || {
            for request in server.incoming_requests() {
                let handler = handler.clone();
                std::thread::spawn(move || handler.handle(request));
            }
        });
        idp
    }

    pub fn url(&self) -> &str {
        &self.url
    }
    pub fn introspection_url(&self) -> String {
        format!("{}/introspect", self.url)
    }
    pub fn token_url(&self) -> String {
        format!("{}/token", self.url)
    }

    /// Where it serves its JWKS (see [`FakeIdp::serve_jwks`]), as an identity domain does.
    pub fn jwks_url(&self) -> String {
        format!("{}/admin/v1/SigningCert/jwk", self.url)
    }

    /// Serves these public JWKs at [`FakeIdp::jwks_url`] to a bearer of a client_credentials
    /// token this IdP issued with `scope` among its scopes; 401 to any other request, 403 to a
    /// token issued without that scope. Called again, it publishes new keys (rotation).
    pub fn serve_jwks(&self, keys: &[&Value], scope: &str) {
        self.lock().jwks = Some((keys.iter().map(|k| (*k).clone()).collect(), scope.to_string()));
    }

    /// What the JWKS does instead of its normal job; `None` serves it again.
    pub fn set_jwks_fault(&self, fault: Option<Fault>) {
        self.lock().jwks_fault = fault;
    }

    /// Forgets every client_credentials token issued so far: the JWKS refuses them (401), as
    /// after a revocation or a restart.
    pub fn revoke_issued_tokens(&self) {
        let mut state = self.lock();
        state.own_tokens.clear();
        state.own_token_scopes.clear();
    }

    /// JWKS requests, and those refused for their bearer token.
    pub fn jwks_requests(&self) -> usize {
        self.jwks_requests.load(Ordering::SeqCst)
    }
    pub fn jwks_refused(&self) -> usize {
        self.jwks_refused.load(Ordering::SeqCst)
    }

    /// Every bearer token presented at the JWKS, oldest first.
    pub fn jwks_bearers(&self) -> Vec<String> {
        self.lock().jwks_bearers.clone()
    }

    /// Registers (or re-registers) a `client_secret_basic` client.
    pub fn add_client(&self, id: &str, secret: &str) {
        self.add_client_with(id, ClientAuth::Basic(secret.to_string()));
    }

    /// Registers (or re-registers) a client that authenticates as `auth` says.
    pub fn add_client_with(&self, id: &str, auth: ClientAuth) {
        self.lock().clients.insert(id.to_string(), auth);
    }

    /// The client assertions accepted so far, oldest first.
    pub fn assertions(&self) -> Vec<Assertion> {
        self.lock().assertions.clone()
    }

    /// Also accepts assertions whose `aud` is this (e.g. an issuer identifier).
    pub fn accept_assertion_audience(&self, audience: &str) {
        self.lock().assertion_audience = Some(audience.to_string());
    }

    /// Registers a caller token whose introspection answer is `answer`.
    pub fn add_token(&self, token: &str, answer: Value) {
        self.lock().tokens.insert(token.to_string(), answer);
    }

    /// Registers a fresh active caller token for `sub` with `scope`, valid `ttl` seconds.
    pub fn issue(&self, sub: &str, scope: &str, ttl: i64) -> String {
        let token = self.fresh_token("caller");
        let now = unix_now();
        self.add_token(
            &token,
            json!({"active":true,"sub":sub,"client_id":"caller-app","scope":scope,"iat":now,"exp":now + ttl,"token_type":"Bearer"}),
        );
        token
    }

    /// Marks a caller token inactive, as after revocation.
    pub fn revoke(&self, token: &str) {
        self.add_token(token, json!({"active": false}));
    }

    /// Lets assertions be dated up to `seconds` ahead of this IdP's clock.
    pub fn set_assertion_skew(&self, seconds: i64) {
        self.lock().assertion_skew = Some(seconds);
    }

    pub fn set_introspect_fault(&self, fault: Option<Fault>) {
        self.lock().introspect_fault = fault;
    }
    pub fn set_token_fault(&self, fault: Option<Fault>) {
        self.lock().token_fault = fault;
    }
    /// Refuses grants that carry this caller token with a 400 and `error`.
    pub fn refuse_subject(&self, token: &str, error: &str) {
        self.lock().refused_subjects.insert(token.to_string(), error.to_string());
    }

    /// (caller token, backend token) for every token issued by token exchange or jwt-bearer,
    /// oldest first.
    pub fn exchanged(&self) -> Vec<(String, String)> {
        self.lock().exchanged.clone()
    }

    /// Serves a discovery document at `/.well-known/openid-configuration` (issuer: this IdP's
    /// URL) listing these client authentication methods for its token and introspection endpoints.
    pub fn serve_discovery(&self, token_methods: &[&str], introspection_methods: &[&str]) {
        let owned = |m: &[&str]| m.iter().map(|s| s.to_string()).collect();
        self.lock().discovery_methods = Some((owned(token_methods), owned(introspection_methods)));
    }

    /// The `actor_token` of every exchange that sent one, and whether this IdP issued it (by
    /// client_credentials).
    pub fn actors(&self) -> Vec<(String, bool)> {
        self.lock().actors.clone()
    }

    /// The grant type and `audience` of every token issued, oldest first.
    pub fn issued(&self) -> Vec<(String, Option<String>)> {
        self.lock().issued.clone()
    }

    /// Token exchange answers name this `issued_token_type` (`None`: none at all).
    pub fn set_issued_token_type(&self, issued: Option<&str>) {
        self.lock().issued_token_type = Some(issued.map(str::to_string));
    }

    /// `expires_in` of tokens from `/token`; `None` leaves it out.
    pub fn set_token_ttl(&self, ttl: Option<i64>) {
        self.lock().token_ttl = ttl;
    }

    /// The trace headers of every introspection and token request so far, lower-case names.
    pub fn trace_headers(&self) -> Vec<Vec<(String, String)>> {
        self.lock().trace_headers.clone()
    }

    pub fn introspections(&self) -> usize {
        self.introspections.load(Ordering::SeqCst)
    }
    pub fn token_requests(&self) -> usize {
        self.token_requests.load(Ordering::SeqCst)
    }
    /// Requests refused for bad client authentication.
    pub fn rejected_auth(&self) -> usize {
        self.rejected_auth.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fresh_token(&self, kind: &str) -> String {
        let n = self.serial.fetch_add(1, Ordering::SeqCst);
        let salt = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        format!("{kind}-{n}-{salt:08x}-{}", self.url.rsplit(':').next().unwrap_or(""))
    }

    fn handle(&self, mut request: tiny_http::Request) {
        let mut body = String::new();
        let _ = request.as_reader().read_to_string(&mut body);
        let path = request.url().split('?').next().unwrap_or("").to_string();
        let (counter, fault) = match (request.method(), path.as_str()) {
            (tiny_http::Method::Post, "/introspect") => (&self.introspections, self.lock().introspect_fault.clone()),
            (tiny_http::Method::Post, "/token") => (&self.token_requests, self.lock().token_fault.clone()),
            (tiny_http::Method::Get, "/.well-known/openid-configuration") => return self.discovery(request),
            (tiny_http::Method::Get, "/admin/v1/SigningCert/jwk") => return self.signing_certs(request),
            _ => return respond(request, 404, json!({"error":"not_found"}).to_string(), None),
        };
        counter.fetch_add(1, Ordering::SeqCst);
        let traced = request
            .headers()
            .iter()
            .filter(|h| ["traceparent", "x-amzn-trace-id", "opc-request-id"].iter().any(|n| h.field.equiv(n)))
            .map(|h| (h.field.as_str().as_str().to_ascii_lowercase(), h.value.as_str().to_string()))
            .collect();
        self.lock().trace_headers.push(traced);
        let trickled = || json!({"active": true, "sub": "trickle", "exp": unix_now() + 600}).to_string().into_bytes();
        let Some(request) = play(fault, request, trickled) else { return };
        let form = parse_form(&body);
        if !self.client_authenticated(&request, &form, &path) {
            self.rejected_auth.fetch_add(1, Ordering::SeqCst);
            return respond(request, 401, json!({"error":"invalid_client"}).to_string(), None);
        }
        let answer = if path == "/introspect" { self.introspect(&form) } else { self.token(&form) };
        match answer {
            Ok(v) => respond(request, 200, v.to_string(), None),
            Err(v) => respond(request, 400, v.to_string(), None),
        }
    }

    /// The JWKS, to a bearer of a token issued here with the JWKS's scope.
    fn signing_certs(&self, request: tiny_http::Request) {
        self.jwks_requests.fetch_add(1, Ordering::SeqCst);
        let header = request.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.to_string());
        let bearer = header.as_deref().and_then(|h| h.strip_prefix("Bearer ")).map(str::to_string);
        // Recorded whatever the answer, so that tests can look for every token sent.
        self.lock().jwks_bearers.extend(bearer.clone());
        let fault = self.lock().jwks_fault.clone();
        let Some(request) = play(fault, request, || b"{\"keys\":[]}".to_vec()) else { return };
        let state = self.lock();
        let Some((keys, needed)) = state.jwks.clone() else {
            drop(state);
            return respond(request, 404, json!({"error":"not_found"}).to_string(), None);
        };
        let scope = bearer.as_ref().and_then(|b| state.own_token_scopes.get(b).cloned());
        drop(state);
        match scope {
            None => {
                self.jwks_refused.fetch_add(1, Ordering::SeqCst);
                respond(request, 401, json!({"error":"invalid_token"}).to_string(), None)
            }
            Some(scope) if !scope.as_deref().unwrap_or_default().split(' ').any(|s| s == needed) => {
                self.jwks_refused.fetch_add(1, Ordering::SeqCst);
                respond(request, 403, json!({"error":"insufficient_scope"}).to_string(), None)
            }
            Some(_) => respond(request, 200, json!({ "keys": keys }).to_string(), None),
        }
    }

    fn discovery(&self, request: tiny_http::Request) {
        let Some((token, introspection)) = self.lock().discovery_methods.clone() else {
            return respond(request, 404, json!({"error":"not_found"}).to_string(), None);
        };
        let doc = json!({
            "issuer": self.url,
            "token_endpoint": self.token_url(),
            "introspection_endpoint": self.introspection_url(),
            "token_endpoint_auth_methods_supported": token,
            "introspection_endpoint_auth_methods_supported": introspection,
        });
        respond(request, 200, doc.to_string(), None)
    }

    /// Whether the request authenticates a registered client by that client's method, and by
    /// no other method besides (RFC 6749 §2.3: one method per request).
    fn client_authenticated(&self, request: &tiny_http::Request, form: &HashMap<String, String>, path: &str) -> bool {
        let header = request.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.to_string());
        let presented = [header.is_some(), form.contains_key("client_secret"), form.contains_key("client_assertion")];
        if presented.iter().filter(|p| **p).count() != 1 {
            return false;
        }
        if let Some(header) = header {
            let Some((id, secret)) = basic_credentials(&header) else { return false };
            return matches!(self.lock().clients.get(&id), Some(ClientAuth::Basic(s)) if *s == secret);
        }
        if let Some(secret) = form.get("client_secret") {
            let Some(id) = form.get("client_id") else { return false };
            return matches!(self.lock().clients.get(id), Some(ClientAuth::Post(s)) if s == secret);
        }
        self.assertion_accepted(form, path)
    }

    /// A `private_key_jwt` client assertion: the right type, a signature by the client's key with
    /// the client's algorithm, `iss` = `sub` = the client (and the form's `client_id`, if any),
    /// `aud` this endpoint or this IdP, unexpired, and a `jti` never seen before.
    fn assertion_accepted(&self, form: &HashMap<String, String>, path: &str) -> bool {
        if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
            return false;
        }
        let Some((header, claims)) = form.get("client_assertion").and_then(|jwt| self.verified_assertion(jwt)) else {
            return false;
        };
        let (iss, sub) = (claims["iss"].as_str(), claims["sub"].as_str());
        let client_id = form.get("client_id").cloned();
        if iss.is_none() || iss != sub || client_id.as_deref().is_some_and(|id| Some(id) != sub) {
            return false;
        }
        let now = unix_now();
        let endpoint = format!("{}{path}", self.url);
        let mut state = self.lock();
        let audiences = [Some(endpoint.as_str()), Some(self.url.as_str()), state.assertion_audience.as_deref()];
        let aud_ok = claims["aud"].as_str().is_some_and(|aud| audiences.contains(&Some(aud)));
        let exp_ok = claims["exp"].as_i64().is_some_and(|exp| exp > now && exp <= now + 600);
        let skew = state.assertion_skew.unwrap_or(15);
        let started_ok = ["iat", "nbf"].iter().all(|c| claims[c].as_i64().is_none_or(|t| t <= now + skew));
        let Some(jti) = claims["jti"].as_str() else { return false };
        if !aud_ok || !exp_ok || !started_ok || !state.seen_jtis.insert(jti.to_string()) {
            return false;
        }
        state.assertions.push(Assertion { header, claims, client_id });
        true
    }

    /// The header and claims of `jwt`, if its `sub` is a `private_key_jwt` client whose key
    /// signed it with that key's algorithm.
    fn verified_assertion(&self, jwt: &str) -> Option<(Value, Value)> {
        let mut parts = jwt.split('.');
        let (Some(h), Some(c), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return None;
        };
        let json = |p: &str| serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(p).ok()?).ok();
        let (header, claims) = (json(h)?, json(c)?);
        let Some(ClientAuth::PrivateKeyJwt(key)) = self.lock().clients.get(claims["sub"].as_str()?).cloned() else {
            return None;
        };
        if header["alg"].as_str() != Some(key.alg) {
            return None;
        }
        let algorithm: &dyn signature::VerificationAlgorithm = match key.alg {
            "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
            "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
            "ES256" => &signature::ECDSA_P256_SHA256_FIXED,
            _ => return None,
        };
        let message = format!("{h}.{c}");
        let signature = URL_SAFE_NO_PAD.decode(sig).ok()?;
        signature::UnparsedPublicKey::new(algorithm, &key.der).verify(message.as_bytes(), &signature).ok()?;
        Some((header, claims))
    }

    fn introspect(&self, form: &HashMap<String, String>) -> Result<Value, Value> {
        let token = form.get("token").ok_or_else(|| json!({"error":"invalid_request"}))?;
        Ok(self.lock().tokens.get(token).cloned().unwrap_or_else(|| json!({"active": false})))
    }

    fn token(&self, form: &HashMap<String, String>) -> Result<Value, Value> {
        let error = |code: &str| json!({ "error": code });
        let (caller, issued_type) = match form.get("grant_type").map(String::as_str) {
            Some("client_credentials") => (None, None),
            Some(TOKEN_EXCHANGE) => {
                let subject_type = form.get("subject_token_type").map(String::as_str);
                if !subject_type.is_some_and(|t| t.starts_with("urn:ietf:params:oauth:token-type:")) {
                    return Err(error("invalid_request"));
                }
                let requested = form.get("requested_token_type").cloned();
                let issued = self.lock().issued_token_type.clone().unwrap_or(Some(
                    requested.unwrap_or_else(|| "urn:ietf:params:oauth:token-type:access_token".into()),
                ));
                (Some(form.get("subject_token").ok_or_else(|| error("invalid_request"))?), issued)
            }
            Some(JWT_BEARER_GRANT) => (Some(form.get("assertion").ok_or_else(|| error("invalid_request"))?), None),
            _ => return Err(error("unsupported_grant_type")),
        };
        if let Some(code) = caller.and_then(|c| self.lock().refused_subjects.get(c).cloned()) {
            return Err(error(&code));
        }
        let token = self.fresh_token("backend");
        let (ttl, scope) = {
            let s = self.lock();
            (s.token_ttl, form.get("scope").cloned().or_else(|| s.token_scope.clone()))
        };
        let mut answer = json!({"access_token": token, "token_type": "Bearer"});
        if let Some(ttl) = ttl {
            answer["expires_in"] = json!(ttl);
        }
        if let Some(scope) = scope {
            answer["scope"] = json!(scope);
        }
        if let Some(issued) = issued_type {
            answer["issued_token_type"] = json!(issued);
        }
        let mut state = self.lock();
        if let Some(actor) = form.get("actor_token") {
            if form.get("actor_token_type").map(String::as_str) != Some("urn:ietf:params:oauth:token-type:access_token")
            {
                return Err(error("invalid_request"));
            }
            let ours = state.own_tokens.contains(actor);
            state.actors.push((actor.clone(), ours));
        }
        state.issued.push((form["grant_type"].clone(), form.get("audience").cloned()));
        if caller.is_none() {
            state.own_tokens.insert(token.clone());
            state.own_token_scopes.insert(token.clone(), form.get("scope").cloned());
        }
        if let Some(caller) = caller {
            state.exchanged.push((caller.clone(), token));
        }
        Ok(answer)
    }
}

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The id and secret of an `Authorization: Basic` header, each form-urlencoded before base64.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let decoded = String::from_utf8(STANDARD.decode(header.strip_prefix("Basic ")?).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

/// Plays `fault` on `request`. Gives the request back when it is still to be answered normally
/// (no fault, or after the delay); `trickled` is the valid-looking body a trickle sends.
pub(crate) fn play(
    fault: Option<Fault>,
    request: tiny_http::Request,
    trickled: impl FnOnce() -> Vec<u8>,
) -> Option<tiny_http::Request> {
    match fault {
        None => return Some(request),
        Some(Fault::Delay(d)) => {
            std::thread::sleep(d);
            return Some(request);
        }
        Some(Fault::Status(status, text)) => respond(request, status, text, None),
        Some(Fault::SlowStatus(d, status)) => {
            std::thread::sleep(d);
            respond(request, status, "{}".into(), None);
        }
        Some(Fault::StatusRetryAfter(status, secs)) => {
            respond(request, status, json!({"error":"slow_down"}).to_string(), Some(secs));
        }
        // Hold the connection open without a byte of answer.
        Some(Fault::Silent) => std::thread::sleep(Duration::from_secs(600)),
        Some(Fault::Trickle(pause)) => {
            let body = trickled();
            let len = body.len();
            let reader = Trickle { body, at: 0, pause };
            let _ = request.respond(Response::new(200.into(), Vec::new(), reader, Some(len), None));
        }
        Some(Fault::Redirect(location)) => {
            let mut response = Response::from_string("").with_status_code(302);
            if let Ok(h) = Header::from_bytes("Location", location) {
                response.add_header(h);
            }
            let _ = request.respond(response);
        }
    }
    None
}

/// A body that arrives one byte at a time.
struct Trickle {
    body: Vec<u8>,
    at: usize,
    pause: Duration,
}

impl std::io::Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let (Some(byte), Some(slot)) = (self.body.get(self.at), buf.first_mut()) else { return Ok(0) };
        std::thread::sleep(self.pause);
        *slot = *byte;
        self.at += 1;
        Ok(1)
    }
}

fn respond(request: tiny_http::Request, status: u16, body: String, retry_after: Option<u64>) {
    let mut response = Response::from_string(body).with_status_code(status);
    if let Ok(h) = Header::from_bytes("Content-Type", "application/json") {
        response.add_header(h);
    }
    if let Some(secs) = retry_after.and_then(|s| Header::from_bytes("Retry-After", s.to_string()).ok()) {
        response.add_header(secs);
    }
    let _ = request.respond(response);
}

fn parse_form(body: &str) -> HashMap<String, String> {
    body.split('&').filter_map(|pair| pair.split_once('=')).map(|(k, v)| (form_decode(k), form_decode(v))).collect()
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
pub fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped =
            (bytes[i] == b'%').then(|| Some(hex(*bytes.get(i + 1)?)? * 16 + hex(*bytes.get(i + 2)?)?)).flatten();
        match (bytes[i], escaped) {
            (_, Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn form_decode_handles_plus_escapes_and_stray_percent() {
        assert_eq!(super::form_decode("a+b%3Ac%25%2"), "a b:c%%2");
        assert_eq!(super::form_decode("%20%"), " %");
    }
}
