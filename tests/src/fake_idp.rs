//! A scriptable OAuth 2.0 identity provider on loopback: a client_credentials token endpoint
//! (`POST /token`) and an RFC 7662 introspection endpoint (`POST /introspect`), both requiring
//! `client_secret_basic`, with faults a real IdP will not produce on demand (the fake issuer of
//! `jwt_keys` plays the same faults at its JWKS).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
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

#[derive(Default)]
struct State {
    /// client_id → secret
    clients: HashMap<String, String>,
    /// token → introspection answer
    tokens: HashMap<String, Value>,
    introspect_fault: Option<Fault>,
    token_fault: Option<Fault>,
    /// expires_in of issued tokens; `None` leaves it out of the answer.
    token_ttl: Option<i64>,
    /// scope of issued backend tokens
    token_scope: Option<String>,
}

/// One fake IdP. Dropping it stops nothing: its thread ends with the test process.
#[derive(Clone)]
pub struct FakeIdp {
    url: String,
    state: Arc<Mutex<State>>,
    introspections: Arc<AtomicUsize>,
    token_requests: Arc<AtomicUsize>,
    rejected_auth: Arc<AtomicUsize>,
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

    pub fn add_client(&self, id: &str, secret: &str) {
        self.lock().clients.insert(id.to_string(), secret.to_string());
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

    pub fn set_introspect_fault(&self, fault: Option<Fault>) {
        self.lock().introspect_fault = fault;
    }
    pub fn set_token_fault(&self, fault: Option<Fault>) {
        self.lock().token_fault = fault;
    }
    /// `expires_in` of tokens from `/token`; `None` leaves it out.
    pub fn set_token_ttl(&self, ttl: Option<i64>) {
        self.lock().token_ttl = ttl;
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
            _ => return respond(request, 404, json!({"error":"not_found"}).to_string(), None),
        };
        counter.fetch_add(1, Ordering::SeqCst);
        let trickled = || json!({"active": true, "sub": "trickle", "exp": unix_now() + 600}).to_string().into_bytes();
        let Some(request) = play(fault, request, trickled) else { return };
        if !self.client_authenticated(&request) {
            self.rejected_auth.fetch_add(1, Ordering::SeqCst);
            return respond(request, 401, json!({"error":"invalid_client"}).to_string(), None);
        }
        let form = parse_form(&body);
        let answer = if path == "/introspect" { self.introspect(&form) } else { self.token(&form) };
        match answer {
            Ok(v) => respond(request, 200, v.to_string(), None),
            Err(v) => respond(request, 400, v.to_string(), None),
        }
    }

    fn client_authenticated(&self, request: &tiny_http::Request) -> bool {
        let header = request.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.to_string());
        let Some(encoded) = header.as_deref().and_then(|h| h.strip_prefix("Basic ")) else { return false };
        let Ok(decoded) = STANDARD.decode(encoded) else { return false };
        let Ok(decoded) = String::from_utf8(decoded) else { return false };
        let Some((id, secret)) = decoded.split_once(':') else { return false };
        let (id, secret) = (form_decode(id), form_decode(secret));
        self.lock().clients.get(&id) == Some(&secret)
    }

    fn introspect(&self, form: &HashMap<String, String>) -> Result<Value, Value> {
        let token = form.get("token").ok_or_else(|| json!({"error":"invalid_request"}))?;
        Ok(self.lock().tokens.get(token).cloned().unwrap_or_else(|| json!({"active": false})))
    }

    fn token(&self, form: &HashMap<String, String>) -> Result<Value, Value> {
        if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return Err(json!({"error":"unsupported_grant_type"}));
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
        Ok(answer)
    }
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
