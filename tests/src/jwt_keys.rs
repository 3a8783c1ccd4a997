//! JWT signing keys made inside the tests (EC P-256 and P-384, Ed25519; RSA from the test key of
//! `adapters/oci/tests/vectors`), tokens signed with them, and a fake issuer that serves their
//! JWKS and discovery document on loopback, counting requests, with the faults of `fake_idp`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tiny_http::{Header as HttpHeader, Response, Server};

use crate::fake_idp::{Fault, play};
use crate::fake_secrets::vectors_dir;

/// A private key, its algorithm and `kid`, and its public JWK.
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
    /// Public JWK, as a JWKS lists it.
    pub jwk: Value,
}

impl SigningKey {
    /// The RSA test key (2048 bits), for RS* and PS*.
    pub fn rsa(kid: &str, alg: Algorithm) -> Self {
        let pem = std::fs::read_to_string(vectors_dir().join("key-pkcs1.pem")).expect("RSA test key");
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD.decode(body).expect("PEM body");
        Self::new(kid, alg, EncodingKey::from_rsa_der(&der))
    }

    /// A new EC key: P-256 for ES256, P-384 for ES384.
    pub fn ec(kid: &str, alg: Algorithm) -> Self {
        let curve =
            if alg == Algorithm::ES384 { &ECDSA_P384_SHA384_FIXED_SIGNING } else { &ECDSA_P256_SHA256_FIXED_SIGNING };
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(curve, &SystemRandom::new()).expect("EC key");
        Self::new(kid, alg, EncodingKey::from_ec_der(pkcs8.as_ref()))
    }

    /// A new Ed25519 key.
    pub fn ed25519(kid: &str) -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new()).expect("Ed25519 key");
        Self::new(kid, Algorithm::EdDSA, EncodingKey::from_ed_der(pkcs8.as_ref()))
    }

    fn new(kid: &str, alg: Algorithm, encoding: EncodingKey) -> Self {
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).expect("public JWK");
        jwk.common.key_id = Some(kid.to_string());
        let jwk = serde_json::to_value(jwk).expect("JWK as JSON");
        SigningKey { kid: kid.to_string(), alg, encoding, jwk }
    }

    /// Signs `claims` with header `{"alg", "kid", "typ":"at+jwt"}`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".into());
        self.sign_with(header, claims)
    }

    pub fn sign_with(&self, header: Header, claims: &Value) -> String {
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }

    /// Signs a header and claims written byte for byte as given (duplicate members and all),
    /// which no JSON serializer would produce.
    pub fn sign_raw(&self, header: &str, claims: &str) -> String {
        let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, self.alg).expect("sign");
        format!("{message}.{signature}")
    }
}

/// A token with any header and claims and a made-up signature, e.g. `alg: none`.
pub fn forged(header: &Value, claims: &Value, signature: &[u8]) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{}", part(header), part(claims), URL_SAFE_NO_PAD.encode(signature))
}

/// An HS256 token whose secret is `secret` (for the "HMAC with the public key" attack).
pub fn hs256(kid: &str, secret: &[u8], claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).expect("sign HS256")
}

/// What the issuer's two endpoints do instead of their normal job.
#[derive(Default)]
struct Faults {
    jwks: Option<Fault>,
    discovery: Option<Fault>,
}

/// Claims of a valid access token from `issuer` for `aud`, `sub`, `scope`, valid ten minutes
/// from `now` (for an issuer that is not up yet).
pub fn access_claims(issuer: &str, aud: &str, sub: &str, scope: &str, now: i64) -> Value {
    json!({"iss": issuer, "aud": aud, "sub": sub, "client_id": "caller-app", "scope": scope,
           "iat": now, "nbf": now, "exp": now + 600, "jti": format!("{sub}-{now}")})
}

/// An issuer on loopback: `/.well-known/openid-configuration` and `/jwks`.
#[derive(Clone)]
pub struct FakeIssuer {
    pub url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    jwks_requests: Arc<AtomicUsize>,
    discovery_requests: Arc<AtomicUsize>,
    faults: Arc<Mutex<Faults>>,
    cache_control: Arc<Mutex<Option<String>>>,
    jwks_delay: Arc<Mutex<Duration>>,
}

impl FakeIssuer {
    /// Starts on 127.0.0.1 with a free port.
    pub fn start(keys: &[&SigningKey]) -> Self {
        Self::start_on("127.0.0.1:0", keys)
    }

    /// Starts on `addr`, e.g. a port that refused connections until now.
    pub fn start_on(addr: &str, keys: &[&SigningKey]) -> Self {
        let server = Server::http(addr).expect("bind fake issuer");
        let port = server.server_addr().to_ip().map(|a| a.port()).expect("port");
        let issuer = FakeIssuer {
            url: format!("http://127.0.0.1:{port}"),
            keys: Arc::new(Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect())),
            jwks_requests: Arc::default(),
            discovery_requests: Arc::default(),
            faults: Arc::default(),
            cache_control: Arc::default(),
            jwks_delay: Arc::default(),
        };
        let handler = issuer.clone();
        std::thread::spawn(move || {
            for request in server.incoming_requests() {
                // One thread per request, so a silent fault holds only its own connection.
                let handler = handler.clone();
                std::thread::spawn(move || handler.handle(request));
            }
        });
        issuer
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.url)
    }

    /// Replaces the published keys (rotation).
    pub fn publish(&self, keys: &[&SigningKey]) {
        *self.keys.lock().unwrap_or_else(|p| p.into_inner()) = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    /// Publishes a raw key list (for odd keys).
    pub fn publish_raw(&self, keys: Vec<Value>) {
        *self.keys.lock().unwrap_or_else(|p| p.into_inner()) = keys;
    }

    /// Answers 503 to everything while down.
    pub fn set_down(&self, down: bool) {
        let fault = down.then(|| Fault::Status(503, "{}".into()));
        *self.lock_faults() = Faults { jwks: fault.clone(), discovery: fault };
    }

    /// What `/jwks` does instead of serving the keys; `None` serves them again.
    pub fn set_jwks_fault(&self, fault: Option<Fault>) {
        self.lock_faults().jwks = fault;
    }

    /// What the discovery document does instead of naming `/jwks`; `None` serves it again.
    pub fn set_discovery_fault(&self, fault: Option<Fault>) {
        self.lock_faults().discovery = fault;
    }

    fn lock_faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_cache_control(&self, value: Option<&str>) {
        *self.cache_control.lock().unwrap_or_else(|p| p.into_inner()) = value.map(str::to_string);
    }

    /// Holds every JWKS answer back this long (a slow IdP).
    pub fn set_jwks_delay(&self, delay: Duration) {
        *self.jwks_delay.lock().unwrap_or_else(|p| p.into_inner()) = delay;
    }

    pub fn jwks_requests(&self) -> usize {
        self.jwks_requests.load(Ordering::SeqCst)
    }

    pub fn discovery_requests(&self) -> usize {
        self.discovery_requests.load(Ordering::SeqCst)
    }

    /// Claims of a valid access token from this issuer for `aud`, `sub`, `scope`.
    pub fn claims(&self, aud: &str, sub: &str, scope: &str, now: i64) -> Value {
        access_claims(&self.url, aud, sub, scope, now)
    }

    fn handle(&self, request: tiny_http::Request) {
        let path = request.url().to_string();
        let (body, fault) = match path.as_str() {
            "/jwks" => {
                self.jwks_requests.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(*self.jwks_delay.lock().unwrap_or_else(|p| p.into_inner()));
                let keys = json!({"keys": *self.keys.lock().unwrap_or_else(|p| p.into_inner())});
                (keys, self.lock_faults().jwks.clone())
            }
            "/.well-known/openid-configuration" => {
                self.discovery_requests.fetch_add(1, Ordering::SeqCst);
                (json!({"issuer": self.url, "jwks_uri": self.jwks_url()}), self.lock_faults().discovery.clone())
            }
            _ => {
                let _ = request.respond(Response::from_string("{}").with_status_code(404));
                return;
            }
        };
        let Some(request) = play(fault, request, || body.to_string().into_bytes()) else { return };
        let mut response = Response::from_string(body.to_string());
        let cache_control = self.cache_control.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(h) = cache_control.and_then(|cc| HttpHeader::from_bytes("Cache-Control", cc).ok()) {
            response.add_header(h);
        }
        let _ = request.respond(response);
    }
}
