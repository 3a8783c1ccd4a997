//! A real authorization server for interop tests: node `oidc-provider` (pinned in
//! `tests/interop/package-lock.json`) run by `tests/interop/server.mjs`, started as a child
//! process on loopback — one instance as IdP A (introspection, JWT access tokens), one as IdP B
//! (backend tokens) — and the client side of its endpoints: client_credentials (opaque, or a JWT
//! for a resource), the authorization code flow through its development login and consent pages,
//! introspection and revocation. A third instance, started on demand ([`grants_idp`]), is an IdP B
//! that issues tokens for IdP A's callers: RFC 8693 token exchange and RFC 7523 jwt-bearer
//! (on-behalf-of).
//!
//! Without `node` on PATH or without `tests/interop/node_modules` (`npm ci` there installs it),
//! the build script leaves `cfg(interop)` unset and the suite's tests are ignored (cargo lists
//! them so) — unless `CI` is set, where they run and fail: CI must never skip the suite.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// A client registered at one of the servers.
#[derive(Clone, Copy)]
pub struct Client {
    pub id: &'static str,
    pub secret: &'static str,
}

/// tokenbridge at IdP A: a resource server, allowed to introspect every client's tokens. The
/// secret (visible ASCII, as RFC 6749 Appendix A requires: the server refuses anything else)
/// needs form-urlencoding before base64 (RFC 6749 §2.3.1), which the real server undoes.
pub const TOKENBRIDGE_AT_A: Client = Client { id: "tokenbridge-a", secret: "a: s3cr%t/+ with spaces & =?" };
/// A caller that gets its tokens with client_credentials (no `sub`: principal = client_id).
pub const CALLER: Client = Client { id: "caller-app", secret: "caller-secret" };
/// A caller whose client_credentials tokens live [`BRIEF_TTL`] seconds.
pub const BRIEF_CALLER: Client = Client { id: "brief-caller", secret: "brief-secret" };
/// A web application of user alice: authorization code flow, refresh tokens (`offline_access`).
pub const WEB_APP: Client = Client { id: "web-app", secret: "web-secret" };
/// tokenbridge at IdP B.
pub const TOKENBRIDGE_AT_B: Client = Client { id: "tokenbridge-b", secret: "b-s3cret" };

/// IdP B's client at IdP A, with which the grants IdP ([`grants_idp`]) introspects callers' tokens.
pub const GRANTS_IDP_AT_A: Client = Client { id: "idp-b-introspector", secret: "idp b: s3cret" };
/// tokenbridge at the grants IdP, allowed RFC 8693 token exchange, and client_credentials for
/// its own token as the exchange's actor token.
pub const EXCHANGER_AT_B: Client = Client { id: "tb-exchange", secret: "tb-exchange-secret" };
/// tokenbridge at the grants IdP, allowed the RFC 7523 jwt-bearer grant only (on-behalf-of).
pub const OBO_AT_B: Client = Client { id: "tb-obo", secret: "tb-obo-secret" };
/// The scope a caller's token must hold for the grants IdP to exchange it (its policy, RFC 8693
/// §2.2.2 "unacceptable based on policy"); a token without it is refused.
pub const EXCHANGEABLE_SCOPE: &str = "orders.read";
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The scopes [`CALLER`] and [`BRIEF_CALLER`] may ask for.
pub const CALLER_SCOPES: &str = "orders.read orders.write";
/// Lifetime of [`BRIEF_CALLER`]'s tokens.
pub const BRIEF_TTL: i64 = 3;
/// Lifetime of every other client_credentials token, and of [`TOKENBRIDGE_AT_B`]'s.
pub const CALLER_TTL: i64 = 600;
pub const BACKEND_TTL: i64 = 3600;
/// The scope tokenbridge asks IdP B for (`TOKENBRIDGE_BACKEND_SCOPE`).
pub const BACKEND_SCOPE: &str = "inventory.read";
/// The resource (RFC 8707) whose access tokens are JWTs with this audience: the API behind
/// tokenbridge.
pub const ORDERS_API: &str = "https://orders.example/api";
/// Another resource server of the same issuer: its JWTs are not for tokenbridge.
pub const OTHER_API: &str = "https://billing.example/api";
/// Where [`WEB_APP`] is sent back to; nothing listens there, the code is read off the redirect.
const WEB_REDIRECT: &str = "http://127.0.0.1/cb";

/// How long a server may take to start and print its issuer.
const STARTUP: Duration = Duration::from_secs(30);

/// The directory of the node project.
pub fn project_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// `node` on PATH and the installed packages, or why the suite cannot run. The build script
/// asks the same (`cfg(interop)`): where the answer is no, the suite's tests are ignored,
/// visibly, rather than passing without running.
pub fn prerequisites() -> Result<PathBuf, String> {
    node_prerequisites::check(&project_dir())
}

#[path = "node_prerequisites.rs"]
mod node_prerequisites;

/// Both servers, started once per test process and shared by its tests (tokens of different
/// tests never meet), and the `tokenbridge` binary built. Panics when they cannot start: the
/// tests that call it are ignored where the build found no Node.js (see `build.rs`).
///
/// The servers exit when their stdin closes, that is when the test process ends.
pub fn pair() -> &'static Pair {
    static PAIR: OnceLock<Pair> = OnceLock::new();
    PAIR.get_or_init(|| match prerequisites() {
        Ok(node) => Pair::start(&node),
        Err(why) => panic!("the interop suite cannot run: {why}"),
    })
}

/// IdP A and IdP B.
pub struct Pair {
    pub a: AuthServer,
    pub b: AuthServer,
}

impl Pair {
    fn start(node: &Path) -> Pair {
        let a_clients = json!([
            {"client_id": TOKENBRIDGE_AT_A.id, "client_secret": TOKENBRIDGE_AT_A.secret, "introspect": true},
            {"client_id": GRANTS_IDP_AT_A.id, "client_secret": GRANTS_IDP_AT_A.secret, "introspect": true},
            {"client_id": CALLER.id, "client_secret": CALLER.secret, "grant_types": ["client_credentials"],
             "scope": CALLER_SCOPES, "ttl": CALLER_TTL},
            {"client_id": BRIEF_CALLER.id, "client_secret": BRIEF_CALLER.secret, "grant_types": ["client_credentials"],
             "scope": CALLER_SCOPES, "ttl": BRIEF_TTL},
            {"client_id": WEB_APP.id, "client_secret": WEB_APP.secret,
             "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": [WEB_REDIRECT],
             "scope": format!("openid offline_access {CALLER_SCOPES}")},
        ]);
        let b_clients = json!([
            {"client_id": TOKENBRIDGE_AT_B.id, "client_secret": TOKENBRIDGE_AT_B.secret,
             "grant_types": ["client_credentials"], "scope": BACKEND_SCOPE, "ttl": BACKEND_TTL},
        ]);
        // Both start at once, and tokenbridge is built meanwhile, so that no test spends a
        // short-lived token's life waiting for a build.
        let a = Starting::spawn(node, "idp-a", &a_clients, None);
        let b = Starting::spawn(node, "idp-b", &b_clients, None);
        crate::harness::binary();
        Pair { a: a.wait(), b: b.wait() }
    }

    /// The environment that points tokenbridge at this pair, asking IdP B for [`BACKEND_SCOPE`].
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("TOKENBRIDGE_INTROSPECTION_URL", self.a.introspection_endpoint.as_str()),
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_ID", TOKENBRIDGE_AT_A.id),
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_SECRET", TOKENBRIDGE_AT_A.secret),
            ("TOKENBRIDGE_BACKEND_TOKEN_URL", self.b.token_endpoint.as_str()),
            ("TOKENBRIDGE_BACKEND_CLIENT_ID", TOKENBRIDGE_AT_B.id),
            ("TOKENBRIDGE_BACKEND_CLIENT_SECRET", TOKENBRIDGE_AT_B.secret),
            ("TOKENBRIDGE_BACKEND_SCOPE", BACKEND_SCOPE),
            // Every decision logged: the tests read allows' lines too (the default logs denials only).
            ("TOKENBRIDGE_DECISION_LOG", "all"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The environment for `TOKENBRIDGE_MODE=mode` (`jwt` or `auto`) with IdP A as the issuer
    /// whose JWTs for [`ORDERS_API`] are verified against its discovered JWKS. `jwt` mode gets no
    /// introspection settings: it must not need them.
    pub fn jwt_env(&self, mode: &str) -> Vec<(String, String)> {
        let mut env = self.env();
        if mode == "jwt" {
            env.retain(|(k, _)| !k.starts_with("TOKENBRIDGE_INTROSPECTION_"));
        }
        let jwt =
            [("TOKENBRIDGE_MODE", mode), ("TOKENBRIDGE_ISSUER", &self.a.issuer), ("TOKENBRIDGE_AUDIENCE", ORDERS_API)];
        env.extend(jwt.into_iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }
}

/// The IdP B that exchanges IdP A's callers' tokens (token exchange for [`EXCHANGER_AT_B`],
/// jwt-bearer for [`OBO_AT_B`], both for [`BACKEND_SCOPE`] and only caller tokens with
/// [`EXCHANGEABLE_SCOPE`]), validating them at IdP A as [`GRANTS_IDP_AT_A`]. Started once per
/// test process, after [`pair`].
pub fn grants_idp() -> &'static AuthServer {
    static GRANTS: OnceLock<AuthServer> = OnceLock::new();
    GRANTS.get_or_init(|| {
        let a = &pair().a;
        let node = prerequisites().unwrap_or_else(|why| panic!("the interop suite cannot run: {why}"));
        let exchange_from = json!({
            "issuer": a.issuer, "introspection_endpoint": a.introspection_endpoint, "jwks_uri": a.jwks_uri,
            "client_id": GRANTS_IDP_AT_A.id, "client_secret": GRANTS_IDP_AT_A.secret,
        });
        let clients = json!([
            {"client_id": EXCHANGER_AT_B.id, "client_secret": EXCHANGER_AT_B.secret, "grant_types": [TOKEN_EXCHANGE, "client_credentials"],
             "scope": BACKEND_SCOPE, "ttl": BACKEND_TTL, "subject_scope": EXCHANGEABLE_SCOPE},
            {"client_id": OBO_AT_B.id, "client_secret": OBO_AT_B.secret, "grant_types": [JWT_BEARER],
             "scope": BACKEND_SCOPE, "ttl": BACKEND_TTL, "subject_scope": EXCHANGEABLE_SCOPE},
        ]);
        Starting::spawn(&node, "idp-b-grants", &clients, Some(&exchange_from)).wait()
    })
}

impl Pair {
    /// [`Pair::jwt_env`]`("auto")` (IdP A's JWTs verified locally, its opaque tokens introspected)
    /// with IdP B replaced by the grants IdP ([`grants_idp`]) as `client`; the grant itself
    /// (`TOKENBRIDGE_BACKEND_GRANT`, …) is the caller's to add.
    pub fn grants_env(&self, client: Client) -> Vec<(String, String)> {
        let grants = grants_idp();
        let mut env = self.jwt_env("auto");
        env.retain(|(k, _)| {
            !matches!(
                k.as_str(),
                "TOKENBRIDGE_BACKEND_TOKEN_URL" | "TOKENBRIDGE_BACKEND_CLIENT_ID" | "TOKENBRIDGE_BACKEND_CLIENT_SECRET"
            )
        });
        env.extend(
            [
                ("TOKENBRIDGE_BACKEND_TOKEN_URL", grants.token_endpoint.as_str()),
                ("TOKENBRIDGE_BACKEND_CLIENT_ID", client.id),
                ("TOKENBRIDGE_BACKEND_CLIENT_SECRET", client.secret),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        env
    }
}

/// A server process that has not yet said where it listens.
struct Starting {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    first_line: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Starting {
    /// `exchange_from`: IdP A's routes and client, for an IdP B with the caller grants.
    fn spawn(node: &Path, name: &'static str, clients: &Value, exchange_from: Option<&Value>) -> Starting {
        let mut command = Command::new(node);
        command
            .arg("server.mjs")
            .arg("--port=0")
            .current_dir(project_dir())
            .env("INTEROP_CLIENTS", clients.to_string());
        if let Some(from) = exchange_from {
            command.env("INTEROP_EXCHANGE_FROM", from.to_string());
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({}): {e}", node.display()));
        let stdin = child.stdin.take();
        let (tx, first_line) = mpsc::channel();
        let stdout = child.stdout.take().expect("server stdout");
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let pipe = child.stderr.take().expect("server stderr");
        std::thread::spawn(move || {
            let mut pipe = pipe;
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                lock(&sink).push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Starting { name, child, stdin, first_line, stderr }
    }

    fn wait(mut self) -> AuthServer {
        let line = match self.first_line.recv_timeout(STARTUP) {
            Ok(line) => line,
            Err(_) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!("{} did not start within {STARTUP:?}; its stderr:\n{}", self.name, lock(&self.stderr));
            }
        };
        let routes: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{}'s first line {line:?} is not the JSON of its routes: {e}", self.name));
        let route =
            |key: &str| routes[key].as_str().unwrap_or_else(|| panic!("{} gave no {key}", self.name)).to_string();
        AuthServer {
            issuer: route("issuer"),
            token_endpoint: route("token_endpoint"),
            introspection_endpoint: route("introspection_endpoint"),
            revocation_endpoint: route("revocation_endpoint"),
            jwks_uri: route("jwks_uri"),
            http: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_global(Some(Duration::from_secs(10)))
                .build()
                .new_agent(),
            child: Mutex::new(self.child),
            _stdin: self.stdin.take(),
            stderr: self.stderr,
        }
    }
}

/// One running oidc-provider.
pub struct AuthServer {
    pub issuer: String,
    pub token_endpoint: String,
    pub introspection_endpoint: String,
    pub revocation_endpoint: String,
    pub jwks_uri: String,
    http: ureq::Agent,
    child: Mutex<Child>,
    /// Held open: the server exits when it closes.
    _stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<String>>,
}

/// A token endpoint's successful answer. No `Debug`: it holds tokens.
pub struct Tokens {
    pub access_token: String,
    pub expires_in: Option<i64>,
    pub scope: Option<String>,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
}

impl Tokens {
    fn from_answer(answer: &Value) -> Tokens {
        let text = |k: &str| answer[k].as_str().map(str::to_string);
        Tokens {
            access_token: text("access_token").expect("a token answer has an access_token"),
            expires_in: answer["expires_in"].as_i64(),
            scope: text("scope"),
            refresh_token: text("refresh_token"),
            id_token: text("id_token"),
        }
    }
}

impl AuthServer {
    /// What the server wrote to stderr so far (warnings, server errors; never tokens).
    pub fn stderr(&self) -> String {
        lock(&self.stderr).clone()
    }

    /// The process is still running.
    pub fn is_running(&self) -> bool {
        matches!(lock(&self.child).try_wait(), Ok(None))
    }

    /// A client_credentials token for `client`, with `scope` if given.
    pub fn client_credentials(&self, client: Client, scope: Option<&str>) -> Tokens {
        self.token_request(client, scope, None)
    }

    /// A client_credentials JWT access token for `resource` (its `aud`), with `scope`.
    pub fn jwt_client_credentials(&self, client: Client, scope: &str, resource: &str) -> Tokens {
        let tokens = self.token_request(client, Some(scope), Some(resource));
        assert_eq!(tokens.access_token.split('.').count(), 3, "a token for a resource is a JWT");
        tokens
    }

    fn token_request(&self, client: Client, scope: Option<&str>, resource: Option<&str>) -> Tokens {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend(scope.map(|s| ("scope", s)));
        form.extend(resource.map(|r| ("resource", r)));
        let (status, answer) = self.post(&self.token_endpoint, client, &form);
        assert_eq!(status, 200, "client_credentials for {} refused: {}", client.id, redacted(&answer));
        Tokens::from_answer(&answer)
    }

    /// The status and body of a token request with `form` (`grant_type` included) as `client`.
    pub fn grant(&self, client: Client, form: &[(&str, &str)]) -> (u16, Value) {
        self.post(&self.token_endpoint, client, form)
    }

    /// The server's own introspection answer for `token`, asked as `client`.
    pub fn introspect(&self, client: Client, token: &str) -> Value {
        let (status, answer) = self.try_introspect(client, token);
        assert_eq!(status, 200, "introspection as {} refused: {answer}", client.id);
        answer
    }

    /// The status and body of the introspection of `token`, asked as `client`, refused or not.
    pub fn try_introspect(&self, client: Client, token: &str) -> (u16, Value) {
        self.post(&self.introspection_endpoint, client, &[("token", token)])
    }

    /// Revokes `token` (RFC 7009) as `client`, its owner.
    pub fn revoke(&self, client: Client, token: &str) {
        let form = [("token", token), ("token_type_hint", "access_token")];
        let (status, answer) = self.post(&self.revocation_endpoint, client, &form);
        assert_eq!(status, 200, "revocation as {} refused: {answer}", client.id);
    }

    /// Tokens for user `login` through the authorization code flow, as a browser would get them:
    /// the authorization request, the development login and consent pages (`prompt=consent`, so
    /// that `offline_access` brings a refresh token), then the code exchanged at the token
    /// endpoint as `client`.
    pub fn authorization_code(&self, client: Client, login: &str, scope: &str) -> Tokens {
        let mut browser = Browser { http: &self.http, cookies: Vec::new() };
        let start = url_with_query(
            &format!("{}/auth", self.issuer),
            &[
                ("client_id", client.id),
                ("response_type", "code"),
                ("redirect_uri", WEB_REDIRECT),
                ("scope", scope),
                ("prompt", "consent"),
                ("state", "interop"),
            ],
        );
        let mut next = browser.get(&start);
        let mut code = None;
        for _ in 0..8 {
            let location = self.absolute(&next);
            if let Some(query) = location.strip_prefix(&format!("{WEB_REDIRECT}?")) {
                code = query_value(query, "code");
                assert!(code.is_some(), "the authorization ended without a code: {query}");
                break;
            }
            next = if location.contains("/interaction/") {
                // The login page first, then the consent page; each posts its prompt back.
                let page = browser.page(&location);
                if page.contains("name=\"login\"") {
                    browser.post(&location, &[("prompt", "login"), ("login", login), ("password", "any")])
                } else {
                    browser.post(&location, &[("prompt", "consent")])
                }
            } else {
                browser.get(&location)
            };
        }
        let code = code.expect("the authorization code flow ended at the redirect URI");
        let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", WEB_REDIRECT)];
        let (status, answer) = self.post(&self.token_endpoint, client, &form);
        assert_eq!(status, 200, "code exchange refused: {}", redacted(&answer));
        Tokens::from_answer(&answer)
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with('/') { format!("{}{location}", self.issuer) } else { location.to_string() }
    }

    /// POSTs a form with `client_secret_basic`.
    fn post(&self, url: &str, client: Client, form: &[(&str, &str)]) -> (u16, Value) {
        let mut response = self
            .http
            .post(url)
            .header("Authorization", basic_auth(client))
            .header("Accept", "application/json")
            .send_form(form.iter().copied())
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
    }
}

/// Follows the authorization flow one redirect at a time, keeping cookies by name.
struct Browser<'a> {
    http: &'a ureq::Agent,
    cookies: Vec<(String, String)>,
}

impl Browser<'_> {
    /// GETs `url` and returns the redirect's `Location`.
    fn get(&mut self, url: &str) -> String {
        let response = self.http.get(url).header("Cookie", self.cookie_header()).call();
        self.location(url, response.unwrap_or_else(|e| panic!("GET {url}: {e}")))
    }

    /// POSTs a form to `url` and returns the redirect's `Location`.
    fn post(&mut self, url: &str, form: &[(&str, &str)]) -> String {
        let response = self.http.post(url).header("Cookie", self.cookie_header()).send_form(form.iter().copied());
        self.location(url, response.unwrap_or_else(|e| panic!("POST {url}: {e}")))
    }

    /// GETs a page (no redirect expected) and returns its text.
    fn page(&mut self, url: &str) -> String {
        let mut response = self
            .http
            .get(url)
            .header("Cookie", self.cookie_header())
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        self.keep_cookies(&response);
        assert_eq!(response.status().as_u16(), 200, "GET {url}");
        response.body_mut().read_to_string().unwrap_or_default()
    }

    fn location(&mut self, url: &str, mut response: ureq::http::Response<ureq::Body>) -> String {
        self.keep_cookies(&response);
        let status = response.status().as_u16();
        match response.headers().get("location").and_then(|v| v.to_str().ok()) {
            Some(location) if (300..400).contains(&status) => location.to_string(),
            _ => {
                let body = response.body_mut().read_to_string().unwrap_or_default();
                let body: String = body.chars().take(2000).collect();
                panic!("{url} answered {status} without a redirect: {body}")
            }
        }
    }

    fn keep_cookies(&mut self, response: &ureq::http::Response<ureq::Body>) {
        for header in response.headers().get_all("set-cookie") {
            let Ok(header) = header.to_str() else { continue };
            let pair = header.split(';').next().unwrap_or("");
            let Some((name, value)) = pair.split_once('=') else { continue };
            self.cookies.retain(|(n, _)| n != name.trim());
            let expired = header.to_ascii_lowercase().contains("expires=thu, 01 jan 1970");
            if !expired && !value.is_empty() {
                self.cookies.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn basic_auth(client: Client) -> String {
    format!("Basic {}", STANDARD.encode(format!("{}:{}", form_encode(client.id), form_encode(client.secret))))
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => (b as char).to_string(),
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn url_with_query(base: &str, query: &[(&str, &str)]) -> String {
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect();
    format!("{base}?{}", query.join("&"))
}

fn query_value(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| crate::fake_idp::form_decode(v))
}

/// `answer` with every token value replaced, for assertion messages.
pub fn redacted(answer: &Value) -> Value {
    let mut answer = answer.clone();
    if let Some(object) = answer.as_object_mut() {
        for key in ["access_token", "refresh_token", "id_token"] {
            if object.contains_key(key) {
                object.insert(key.into(), json!("<redacted>"));
            }
        }
        if let Some(Value::Object(context)) = object.get_mut("context") {
            for value in context.values_mut() {
                *value = json!("<redacted>");
            }
        }
    }
    answer
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Certificates for an oidc-provider that serves HTTPS and authenticates clients by theirs
/// (RFC 8705), made with the `openssl` CLI in a directory of their own: a CA, the server's
/// certificate for 127.0.0.1, a client certificate the CA signed ([`MTLS_SUBJECT`]), a
/// self-signed client certificate, and a self-signed impostor with the CA-signed one's subject.
/// Each `(cert, key)` is a pair of PEM file paths.
pub struct MtlsPki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server: (PathBuf, PathBuf),
    pub ca_signed: (PathBuf, PathBuf),
    pub self_signed: (PathBuf, PathBuf),
    pub impostor: (PathBuf, PathBuf),
}

/// The subject of [`MtlsPki::ca_signed`] (and of the impostor), as oidc-provider registers it.
pub const MTLS_SUBJECT: &str = "CN=tokenbridge-mtls";

impl MtlsPki {
    /// Panics when openssl cannot make them: the interop suite needs it, and must not skip.
    pub fn make() -> MtlsPki {
        let dir = std::env::temp_dir().join(format!("tb-interop-mtls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for the test certificates");
        let path = |name: &str| dir.join(name);
        let pair = |name: &str| (path(&format!("{name}.pem")), path(&format!("{name}.key")));
        let pki = MtlsPki {
            ca: path("ca.pem"),
            server: pair("server"),
            ca_signed: pair("ca-signed"),
            self_signed: pair("self-signed"),
            impostor: pair("impostor"),
            dir: dir.clone(),
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"];
        let self_signed = |subject: &str, (cert, key): &(PathBuf, PathBuf), ext: &str| {
            openssl(
                &[&["req", "-x509", "-subj", subject, "-addext", ext][..], &ec].concat(),
                &[("-keyout", key), ("-out", cert)],
            )
        };
        let ca_key = path("ca.key");
        self_signed(
            "/CN=tokenbridge interop CA",
            &(pki.ca.clone(), ca_key.clone()),
            "basicConstraints=critical,CA:TRUE",
        );
        let leaf = "basicConstraints=critical,CA:FALSE";
        self_signed("/CN=tokenbridge-self-signed", &pki.self_signed, leaf);
        // The CA-signed certificate's subject without the CA's signature: refused by its issuer.
        self_signed(&format!("/{MTLS_SUBJECT}"), &pki.impostor, leaf);
        let signed = |subject: &str, (cert, key): &(PathBuf, PathBuf), ext: &str| {
            let (csr, extfile) = (cert.with_extension("csr"), cert.with_extension("ext"));
            std::fs::write(&extfile, format!("{ext}\nbasicConstraints=critical,CA:FALSE\n")).expect("extension file");
            openssl(&[&["req", "-subj", subject][..], &ec[..5]].concat(), &[("-keyout", key), ("-out", &csr)]);
            openssl(
                &["x509", "-req", "-CAcreateserial", "-days", "2"],
                &[("-in", &csr), ("-CA", &pki.ca), ("-CAkey", &ca_key), ("-extfile", &extfile), ("-out", cert)],
            );
        };
        signed("/CN=127.0.0.1", &pki.server, "subjectAltName=IP:127.0.0.1");
        signed(&format!("/{MTLS_SUBJECT}"), &pki.ca_signed, "extendedKeyUsage=clientAuth");
        pki
    }

    /// `INTEROP_TLS` for `tests/interop/server.mjs`: serve with the server certificate, and
    /// take client certificates the CA signed as verified.
    pub fn server_env(&self) -> Value {
        json!({"cert": self.server.0, "key": self.server.1, "ca": self.ca})
    }
}

impl Drop for MtlsPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `openssl args files…`, panicking with its stderr when it fails.
fn openssl(args: &[&str], files: &[(&str, &Path)]) {
    let mut command = Command::new("openssl");
    command.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    for (flag, path) in files {
        command.arg(flag).arg(path);
    }
    let output =
        command.output().unwrap_or_else(|e| panic!("openssl {args:?} (needed by the mTLS interop tests): {e}"));
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encode_escapes_everything_but_the_unreserved_set() {
        assert_eq!(form_encode("a: s3cr%t/+ with ü"), "a%3A+s3cr%25t%2F%2B+with+%C3%BC");
        assert_eq!(crate::fake_idp::form_decode(&form_encode(TOKENBRIDGE_AT_A.secret)), TOKENBRIDGE_AT_A.secret);
    }

    #[test]
    fn redacted_hides_tokens_and_context_values() {
        let shown = redacted(&json!({"access_token": "t", "active": true, "context": {"back_end_token": "Bearer x"}}));
        assert_eq!(
            shown,
            json!({"access_token": "<redacted>", "active": true, "context": {"back_end_token": "<redacted>"}})
        );
    }
}
