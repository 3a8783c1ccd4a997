//! The built binary against a real authorization server: node `oidc-provider` as IdP A
//! (introspection, JWT access tokens and their JWKS) and as IdP B (backend tokens), both on
//! loopback (`tokenbridge_tests::interop`). The introspection tests run tokenbridge twice, as
//! `tokenbridge stdio` and as an OCI Function driven the way the Fn agent drives it, and ask both
//! the same questions, comparing whole answers; the end-to-end tests (introspection, `jwt` and
//! `auto` mode) run it through every adapter — stdio, OCI, HTTP forward-auth and Lambda behind a
//! fake Runtime API — and compare the decisions each gives in its own form. The backend-grant
//! tests do the same with a third oidc-provider as IdP B that exchanges each caller's token
//! (RFC 8693 token exchange, RFC 7523 jwt-bearer on-behalf-of) after validating it at IdP A.
//!
//! Without node or the npm packages these tests skip themselves, except in CI (`CI` set), where
//! they fail; `scripts/test` installs the packages.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokenbridge_tests::fn_agent::{FnAgent, Framing};
use tokenbridge_tests::harness::{Process, Session};
use tokenbridge_tests::http_server::{HttpServer, raw_exchange};
use tokenbridge_tests::interop::{
    self, ACCESS_TOKEN_TYPE, BACKEND_SCOPE, BACKEND_TTL, BRIEF_CALLER, BRIEF_TTL, CALLER, CALLER_SCOPES, Client,
    EXCHANGEABLE_SCOPE, EXCHANGER_AT_B, JWT_BEARER, OBO_AT_B, ORDERS_API, OTHER_API, Pair, TOKEN_EXCHANGE,
    TOKENBRIDGE_AT_A, TOKENBRIDGE_AT_B, WEB_APP, redacted,
};
use tokenbridge_tests::lambda_runtime_api::{Answer, FakeRuntimeApi};
use tokenbridge_tests::token_payload;

const INVALID_TOKEN: &str = "Bearer realm=\"tokenbridge\", error=\"invalid_token\"";

/// The adapter a tokenbridge runs as.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Stdio,
    Oci,
    Http,
    Lambda,
}

/// One running tokenbridge.
enum Tokenbridge {
    Stdio(Session),
    Oci(FnAgent),
    Http(HttpServer),
    /// The fake Runtime API and the function polling it.
    Lambda(FakeRuntimeApi, Process),
}

/// A decision reduced to what every adapter can say; [`Tokenbridge::decide`] checks each
/// adapter's own form on the way. No `Debug`: it holds a token.
enum Decision {
    /// The principal and the backend token (without `Bearer `) handed to the API.
    Allow { principal: String, backend_token: String },
    /// The 401 of an `invalid_token`.
    InvalidToken,
    /// No decision (each adapter's 5xx or error), with its cause code.
    Unavailable { cause: String },
}

/// The Lambda event's method ARN, and the stage-wide resource its allow policy names.
const LAMBDA_ARN: &str = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/orders/7";
const LAMBDA_STAGE: &str = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/*/*";

impl Tokenbridge {
    fn start(mode: Mode, env: &[(String, String)]) -> Self {
        match mode {
            Mode::Stdio => Tokenbridge::Stdio(Session::start(env)),
            Mode::Oci => Tokenbridge::Oci(FnAgent::start(env)),
            Mode::Http => Tokenbridge::Http(HttpServer::start(env)),
            Mode::Lambda => {
                let api = FakeRuntimeApi::start();
                let function = api.start_function(env);
                Tokenbridge::Lambda(api, function)
            }
        }
    }

    /// The answer to `Authorization: Bearer <token>`: the output line in stdio mode; in OCI mode
    /// the body of the function's reply, whose status must be 200 for a decision and 502 for
    /// none.
    fn ask(&mut self, token: &str) -> Value {
        match self {
            Tokenbridge::Stdio(session) => session.ask(&token_payload(token)),
            Tokenbridge::Oci(agent) => {
                let reply = agent.call(token_payload(token).as_bytes(), Framing::Chunked, Duration::from_secs(30));
                let body = reply.json();
                let expected = if body.get("active").is_some() { 200 } else { 502 };
                assert_eq!(reply.status, expected, "status of {}", redacted(&body));
                body
            }
            Tokenbridge::Http(_) | Tokenbridge::Lambda(..) => panic!("only stdio and OCI answer gateway payloads"),
        }
    }

    /// The decision on `Authorization: Bearer <token>`: stdio and OCI through [`Self::ask`],
    /// HTTP as nginx's `auth_request` asks (`GET /auth`), Lambda as an API Gateway REST `TOKEN`
    /// authorizer event. Anything but an allow, an `invalid_token` or an Unavailable fails the
    /// test.
    fn decide(&mut self, token: &str) -> Decision {
        match self {
            Tokenbridge::Stdio(_) | Tokenbridge::Oci(_) => {
                let mode = if matches!(self, Tokenbridge::Stdio(_)) { Mode::Stdio } else { Mode::Oci };
                let answer = self.ask(token);
                if answer["active"] == true {
                    let principal = answer["principal"].as_str().expect("an allow names its principal").to_string();
                    Decision::Allow { principal, backend_token: backend_token(&answer).to_string() }
                } else if answer.get("active").is_none() && answer["error"] == "unavailable" {
                    Decision::Unavailable { cause: answer["cause"].as_str().unwrap_or("-").to_string() }
                } else {
                    assert_answer(mode, &answer, json!({"active": false, "wwwAuthenticate": INVALID_TOKEN}));
                    Decision::InvalidToken
                }
            }
            Tokenbridge::Http(server) => forward_auth(server, token),
            Tokenbridge::Lambda(api, _) => lambda_token_authorizer(api, token),
        }
    }

    /// Stops it and returns its decision log lines.
    fn log(self) -> Vec<Value> {
        let stderr = match self {
            Tokenbridge::Stdio(session) => session.finish(),
            Tokenbridge::Oci(agent) => agent.stop(),
            Tokenbridge::Http(server) => server.terminate().1,
            Tokenbridge::Lambda(_, function) => function.stop(),
        };
        stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["event"] == "decision")
            .collect()
    }
}

/// `GET /auth` with the token, the way nginx's `auth_request` asks: 200 with the backend token
/// in `Authorization` and the principal in `X-Auth-Principal`, or 401 with the challenge.
fn forward_auth(server: &HttpServer, token: &str) -> Decision {
    let request = format!(
        "GET /auth HTTP/1.1\r\nHost: tokenbridge\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
         X-Original-Method: GET\r\nX-Original-URI: /orders/7\r\n\r\n"
    );
    let (status, headers, body) = raw_exchange(&server.addr, request.as_bytes()).expect("an HTTP answer");
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    match status {
        200 => {
            let backend = header("authorization").and_then(|v| v.strip_prefix("Bearer ")).expect("the backend token");
            let principal = header("x-auth-principal").expect("X-Auth-Principal").to_string();
            Decision::Allow { principal, backend_token: backend.to_string() }
        }
        401 => {
            assert_eq!(header("www-authenticate"), Some(INVALID_TOKEN), "Http");
            Decision::InvalidToken
        }
        503 => {
            let body: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("Http: 503 {body}"));
            assert_eq!(body["error"], "unavailable", "Http");
            Decision::Unavailable { cause: body["cause"].as_str().unwrap_or("-").to_string() }
        }
        // Neither a decision nor an Unavailable: its body names the cause and holds no token.
        _ => panic!("Http: {status} {body}"),
    }
}

/// A REST API `TOKEN` authorizer event: an Allow policy for the stage with the backend token in
/// its context, or the `Unauthorized` error that API Gateway turns into a 401.
fn lambda_token_authorizer(api: &FakeRuntimeApi, token: &str) -> Decision {
    let event = json!({"type": "TOKEN", "authorizationToken": format!("Bearer {token}"), "methodArn": LAMBDA_ARN});
    match api.invoke(&event, Duration::from_secs(20)) {
        Answer::Response(policy) => {
            let statement = json!([{"Action": ["execute-api:Invoke"], "Effect": "Allow", "Resource": [LAMBDA_STAGE]}]);
            assert!(policy["policyDocument"]["Statement"] == statement, "Lambda: {}", redacted(&policy));
            let principal = policy["principalId"].as_str().expect("principalId").to_string();
            Decision::Allow { principal, backend_token: backend_token(&policy).to_string() }
        }
        Answer::Error(kind, message) if kind == "Unavailable" => {
            // "tokenbridge could not decide: <cause> (<why>)"
            let cause = message.strip_prefix("tokenbridge could not decide: ").and_then(|m| m.split(' ').next());
            Decision::Unavailable { cause: cause.unwrap_or_else(|| panic!("Lambda: {message}")).to_string() }
        }
        Answer::Error(kind, message) => {
            assert_eq!((kind.as_str(), message.as_str()), ("Unauthorized", "Unauthorized"), "Lambda");
            Decision::InvalidToken
        }
    }
}

/// One tokenbridge in each mode, all with `env`.
fn both(env: &[(String, String)]) -> Vec<(Mode, Tokenbridge)> {
    [Mode::Stdio, Mode::Oci].into_iter().map(|mode| (mode, Tokenbridge::start(mode, env))).collect()
}

/// One tokenbridge per adapter, all with `env`.
fn every_adapter(env: &[(String, String)]) -> Vec<(Mode, Tokenbridge)> {
    [Mode::Stdio, Mode::Oci, Mode::Http, Mode::Lambda]
        .into_iter()
        .map(|mode| (mode, Tokenbridge::start(mode, env)))
        .collect()
}

/// `decision` is an allow of `principal` with a live backend token of ours at IdP B.
fn assert_allowed_with_live_backend_token(idps: &Pair, mode: Mode, decision: Decision, principal: &str) {
    let Decision::Allow { principal: allowed, backend_token } = decision else { panic!("{mode:?}: not allowed") };
    assert_eq!(allowed, principal, "{mode:?}");
    let at_b = idps.b.introspect(TOKENBRIDGE_AT_B, &backend_token);
    assert_eq!(at_b["active"], true, "{mode:?}: IdP B does not know the backend token");
    assert_eq!(at_b["client_id"], TOKENBRIDGE_AT_B.id, "{mode:?}");
}

/// `decision` is no decision, for `cause`.
fn assert_unavailable(mode: Mode, decision: Decision, cause: &str) {
    let Decision::Unavailable { cause: given } = decision else { panic!("{mode:?}: a decision, not unavailable") };
    assert_eq!(given, cause, "{mode:?}");
}

fn assert_denied(mode: Mode, decision: Decision) {
    assert!(matches!(decision, Decision::InvalidToken), "{mode:?}: not denied as invalid_token");
}

/// The pair's environment with `extra` set (replacing what was there).
fn env_with(idps: &Pair, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    with(idps.env(), extra)
}

/// `env` with `extra` set (replacing what was there).
fn with(mut env: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    for (k, v) in extra {
        env.retain(|(name, _)| name != k);
        env.push((k.to_string(), v.to_string()));
    }
    env
}

fn expires_at(answer: &Value) -> i64 {
    let text = answer["expiresAt"].as_str().unwrap_or_else(|| panic!("no expiresAt in {}", redacted(answer)));
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("expiresAt {text:?}: {e}"))
        .unix_timestamp()
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Sleeps until the wall clock has passed the start of second `unix` (with a small margin).
fn sleep_until(unix: i64) {
    let left = unix as f64 + 0.05 - unix_now();
    if left > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(left));
    }
}

fn assert_allowed(mode: Mode, answer: &Value) {
    assert_eq!(answer["active"], true, "{mode:?}: {}", redacted(answer));
}

/// `answer` is exactly `expected`; a failure shows `answer` without its backend token.
fn assert_answer(mode: Mode, answer: &Value, expected: Value) {
    assert!(*answer == expected, "{mode:?}: expected {expected}, got {}", redacted(answer));
}

fn assert_invalid_token(mode: Mode, answer: &Value) {
    assert_answer(mode, answer, json!({"active": false, "wwwAuthenticate": INVALID_TOKEN}));
}

/// The backend token out of an allow's context (stdio, OCI or Lambda), without `Bearer `.
fn backend_token(answer: &Value) -> &str {
    let context = answer["context"]["back_end_token"].as_str().expect("context.back_end_token is a string");
    context.strip_prefix("Bearer ").expect("context.back_end_token starts with `Bearer `")
}

/// The `reason` of each decision that was a deny.
fn deny_reasons(log: &[Value]) -> Vec<&str> {
    log.iter().filter(|l| l["outcome"] == "deny").filter_map(|l| l["reason"].as_str()).collect()
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn an_opaque_client_credentials_token_is_allowed_with_a_backend_token_from_idp_b() {
    let idps = interop::pair();
    let caller = idps.a.client_credentials(CALLER, Some(CALLER_SCOPES));
    let at_a = idps.a.introspect(TOKENBRIDGE_AT_A, &caller.access_token);
    assert_eq!((at_a["active"].as_bool(), at_a.get("sub")), (Some(true), None), "{at_a}");
    let caller_exp = at_a["exp"].as_i64().expect("IdP A gives exp");

    let env = env_with(idps, &[("TOKENBRIDGE_REQUIRED_SCOPES", "orders.read")]);
    for (mode, mut tb) in both(&env) {
        let answer = tb.ask(&caller.access_token);
        assert_allowed(mode, &answer);
        // A client_credentials token has no `sub`: the principal is its client.
        assert_eq!(answer["principal"], CALLER.id, "{mode:?}");
        assert_eq!(answer["clientId"], CALLER.id, "{mode:?}");
        assert_eq!(answer["scope"], json!(["orders.read", "orders.write"]), "{mode:?}");

        // The backend token is a live token of ours at IdP B, for the scope we asked for.
        let backend = backend_token(&answer);
        assert!(backend != caller.access_token, "{mode:?}: the caller's token was passed on");
        let at_b = idps.b.introspect(TOKENBRIDGE_AT_B, backend);
        assert_eq!(at_b["active"], true, "{mode:?}: IdP B does not know the backend token");
        assert_eq!(at_b["client_id"], TOKENBRIDGE_AT_B.id, "{mode:?}");
        assert_eq!(at_b["scope"], BACKEND_SCOPE, "{mode:?}");
        assert_eq!(at_b["iss"], idps.b.issuer.as_str(), "{mode:?}");
        let backend_exp = at_b["exp"].as_i64().expect("IdP B gives exp");

        // The gateway may replay this decision until expiresAt: never past either token.
        let expires = expires_at(&answer);
        assert!(expires <= caller_exp && expires <= backend_exp, "{mode:?}: {expires} vs {caller_exp}/{backend_exp}");
        assert_eq!(expires, caller_exp.min(backend_exp), "{mode:?}: expiresAt is the earlier expiry");
        assert!(expires as f64 > unix_now(), "{mode:?}");

        let log = tb.log();
        assert_eq!(log.iter().filter(|l| l["outcome"] == "allow").count(), 1, "{mode:?}");
    }
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn a_users_token_from_the_authorization_code_flow_is_allowed_with_the_user_as_principal() {
    let idps = interop::pair();
    let alice = idps.a.authorization_code(WEB_APP, "alice", "openid offline_access orders.read");
    let env = env_with(idps, &[("TOKENBRIDGE_REQUIRED_SCOPES", "orders.read")]);
    for (mode, mut tb) in both(&env) {
        let answer = tb.ask(&alice.access_token);
        assert_allowed(mode, &answer);
        assert_eq!(answer["principal"], "alice", "{mode:?}: the principal is the user (`sub`), not the client");
        assert_eq!(answer["clientId"], WEB_APP.id, "{mode:?}");
        assert_eq!(answer["scope"], json!(["openid", "offline_access", "orders.read"]), "{mode:?}");
    }
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn a_token_without_a_required_scope_gets_insufficient_scope() {
    let idps = interop::pair();
    let partial = idps.a.client_credentials(CALLER, Some("orders.read"));
    let unscoped = idps.a.client_credentials(CALLER, None);
    let full = idps.a.client_credentials(CALLER, Some(CALLER_SCOPES));
    let env = env_with(idps, &[("TOKENBRIDGE_REQUIRED_SCOPES", "orders.write orders.read")]);
    let challenge = "Bearer realm=\"tokenbridge\", error=\"insufficient_scope\", scope=\"orders.write orders.read\"";
    for (mode, mut tb) in both(&env) {
        for token in [&partial.access_token, &unscoped.access_token] {
            assert_answer(mode, &tb.ask(token), json!({"active": false, "wwwAuthenticate": challenge}));
        }
        assert_allowed(mode, &tb.ask(&full.access_token));
        assert_eq!(deny_reasons(&tb.log()), ["insufficient_scope"; 2], "{mode:?}");
    }
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn a_revoked_token_is_served_from_the_cache_until_its_entry_ends_then_denied() {
    let idps = interop::pair();
    let caller = idps.a.client_credentials(CALLER, Some(CALLER_SCOPES));
    let env = env_with(idps, &[("TOKENBRIDGE_CACHE_MAX_TTL_SECONDS", "2")]);
    let mut tbs = both(&env);
    for (mode, tb) in &mut tbs {
        assert_allowed(*mode, &tb.ask(&caller.access_token));
    }
    let cached_until = unix_now() as i64 + 2;

    idps.a.revoke(CALLER, &caller.access_token);
    assert_eq!(idps.a.introspect(TOKENBRIDGE_AT_A, &caller.access_token), json!({"active": false}));
    // The revocation is not seen while the validation is cached …
    for (mode, tb) in &mut tbs {
        assert_allowed(*mode, &tb.ask(&caller.access_token));
    }
    // … and is once the entry ends.
    sleep_until(cached_until);
    for (mode, tb) in &mut tbs {
        assert_invalid_token(*mode, &tb.ask(&caller.access_token));
    }
    for (mode, tb) in tbs {
        let log = tb.log();
        let validations: Vec<_> = log.iter().map(|l| l["validation"].as_str().unwrap_or("-")).collect();
        assert_eq!(validations, ["miss", "hit", "miss"], "{mode:?}");
        assert_eq!(deny_reasons(&log), ["inactive"], "{mode:?}");
    }
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn a_short_lived_token_is_allowed_until_it_expires_then_denied() {
    let idps = interop::pair();
    let brief = idps.a.client_credentials(BRIEF_CALLER, Some("orders.read"));
    assert_eq!(brief.expires_in, Some(BRIEF_TTL));
    let exp = idps.a.introspect(TOKENBRIDGE_AT_A, &brief.access_token)["exp"].as_i64().expect("exp");
    let mut tbs = both(&idps.env());
    for (mode, tb) in &mut tbs {
        let answer = tb.ask(&brief.access_token);
        assert_allowed(*mode, &answer);
        assert_eq!(expires_at(&answer), exp, "{mode:?}: the gateway must not replay the allow past the token's exp");
    }
    sleep_until(exp);
    for (mode, tb) in &mut tbs {
        assert_invalid_token(*mode, &tb.ask(&brief.access_token));
    }
    for (mode, tb) in tbs {
        assert_eq!(deny_reasons(&tb.log()), ["inactive"], "{mode:?}");
    }
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn an_unknown_token_is_denied_as_invalid_token() {
    let idps = interop::pair();
    for (mode, mut tb) in both(&idps.env()) {
        for token in ["never-issued-by-this-idp", "0000000000000000000000000000000000000000000"] {
            assert_invalid_token(mode, &tb.ask(token));
        }
        assert_eq!(deny_reasons(&tb.log()), ["inactive"; 2], "{mode:?}");
    }
}

/// tokenbridge answers Unavailable with `cause` when one of its own client secrets is wrong,
/// and its answer holds neither secret.
fn assert_client_rejected(env: &[(String, String)], token: &str, cause: &str, wrong_secret: &str) {
    for (mode, mut tb) in both(env) {
        let answer = tb.ask(token);
        assert_eq!(
            (answer["error"].as_str(), answer["cause"].as_str()),
            (Some("unavailable"), Some(cause)),
            "{mode:?}"
        );
        assert!(answer.get("active").is_none(), "{mode:?}: an unavailable answer is not a decision");
        let text = answer.to_string();
        for secret in [wrong_secret, TOKENBRIDGE_AT_A.secret, TOKENBRIDGE_AT_B.secret] {
            assert!(!text.contains(secret), "{mode:?}: a client secret is in the answer");
        }
        // Not cached: the next call asks again, with the same result.
        assert_eq!(tb.ask(token)["cause"], cause, "{mode:?}");
    }
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn a_wrong_client_secret_at_idp_a_is_unavailable_as_introspection_client_rejected() {
    let idps = interop::pair();
    let caller = idps.a.client_credentials(CALLER, Some(CALLER_SCOPES));
    let wrong = "not-the-secret-at-a";
    let env = env_with(idps, &[("TOKENBRIDGE_INTROSPECTION_CLIENT_SECRET", wrong)]);
    assert_client_rejected(&env, &caller.access_token, "introspection_client_rejected", wrong);
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn a_wrong_client_secret_at_idp_b_is_unavailable_as_backend_token_client_rejected() {
    let idps = interop::pair();
    let caller = idps.a.client_credentials(CALLER, Some(CALLER_SCOPES));
    let wrong = "not-the-secret-at-b";
    let env = env_with(idps, &[("TOKENBRIDGE_BACKEND_CLIENT_SECRET", wrong)]);
    assert_client_rejected(&env, &caller.access_token, "backend_token_client_rejected", wrong);
}

// Found by this suite, which the core has since been fixed for: the ID token was Unavailable
// (the IdP's `unsupported_token_type` was not read as a deny) and the refresh token was allowed.

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn a_refresh_token_presented_as_a_bearer_token_is_denied_when_the_token_type_is_required() {
    let idps = interop::pair();
    let alice = idps.a.authorization_code(WEB_APP, "alice", "openid offline_access orders.read");
    let refresh = alice.refresh_token.expect("offline_access with consent brings a refresh token");
    let at_a = idps.a.introspect(TOKENBRIDGE_AT_A, &refresh);
    assert_eq!((at_a["active"].as_bool(), at_a.get("token_type")), (Some(true), None), "what the IdP says");
    let mut env = idps.env();
    env.push(("TOKENBRIDGE_INTROSPECTION_TOKEN_TYPE".into(), "Bearer".into()));
    for (mode, mut tb) in both(&env) {
        assert_invalid_token(mode, &tb.ask(&refresh));
    }
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn an_id_token_presented_as_a_bearer_token_is_denied_not_unavailable() {
    let idps = interop::pair();
    let alice = idps.a.authorization_code(WEB_APP, "alice", "openid orders.read");
    let id_token = alice.id_token.expect("the code flow with openid brings an ID token");
    for (mode, mut tb) in both(&idps.env()) {
        assert_invalid_token(mode, &tb.ask(&id_token));
    }
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn every_adapter_allows_a_client_credentials_token_with_a_backend_token_and_denies_unknown_and_revoked_ones() {
    let idps = interop::pair();
    let caller = idps.a.client_credentials(CALLER, Some(CALLER_SCOPES));
    let revoked = idps.a.client_credentials(CALLER, Some(CALLER_SCOPES));
    idps.a.revoke(CALLER, &revoked.access_token);
    for (mode, mut tb) in every_adapter(&idps.env()) {
        assert_allowed_with_live_backend_token(idps, mode, tb.decide(&caller.access_token), CALLER.id);
        assert_denied(mode, tb.decide(&revoked.access_token));
        assert_denied(mode, tb.decide("never-issued-by-this-idp"));
        assert_eq!(deny_reasons(&tb.log()), ["inactive"; 2], "{mode:?}");
    }
}

/// The claims of a JWT, unverified.
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON claims")
}

/// `jwt` with one character in the middle of its signature changed.
fn with_tampered_signature(jwt: &str) -> String {
    let (signed, signature) = jwt.rsplit_once('.').expect("a JWT has a signature");
    let mut signature = signature.as_bytes().to_vec();
    let middle = signature.len() / 2;
    signature[middle] = if signature[middle] == b'A' { b'B' } else { b'A' };
    format!("{signed}.{}", String::from_utf8_lossy(&signature))
}

/// `jwt` with its claims changed (`sub` and a scope it was not given) and its signature kept.
fn with_forged_claims(jwt: &str) -> String {
    let mut parts = jwt.split('.');
    let (header, signature) = (parts.next().unwrap_or_default(), parts.nth(1).unwrap_or_default());
    let mut forged = claims(jwt);
    forged["sub"] = json!("admin");
    forged["scope"] = json!("orders.read orders.write orders.admin");
    format!("{header}.{}.{signature}", URL_SAFE_NO_PAD.encode(forged.to_string()))
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn in_jwt_mode_an_access_token_verified_against_the_issuers_jwks_is_allowed_with_a_backend_token() {
    let idps = interop::pair();
    let jwt = idps.a.jwt_client_credentials(CALLER, "orders.read", ORDERS_API);
    let sent = claims(&jwt.access_token);
    assert_eq!((&sent["aud"], &sent["iss"]), (&json!(ORDERS_API), &json!(idps.a.issuer)), "what the IdP issued");
    // The IdP will not introspect its JWTs: an allow can only come from the local verification.
    let (status, refusal) = idps.a.try_introspect(TOKENBRIDGE_AT_A, &jwt.access_token);
    assert_eq!((status, &refusal["error"]), (400, &json!("unsupported_token_type")));

    let env =
        with(idps.jwt_env("jwt"), &[("TOKENBRIDGE_JWT_TYP", "at+jwt"), ("TOKENBRIDGE_REQUIRED_SCOPES", "orders.read")]);
    for (mode, mut tb) in every_adapter(&env) {
        assert_allowed_with_live_backend_token(idps, mode, tb.decide(&jwt.access_token), CALLER.id);
        let gateway_payloads = matches!(mode, Mode::Stdio | Mode::Oci);
        if gateway_payloads {
            let answer = tb.ask(&jwt.access_token);
            assert_eq!(
                (&answer["clientId"], &answer["scope"]),
                (&json!(CALLER.id), &json!(["orders.read"])),
                "{mode:?}"
            );
            assert!(
                expires_at(&answer) <= sent["exp"].as_i64().expect("exp"),
                "{mode:?}: expiresAt past the JWT's exp"
            );
        }
        let outcomes: Vec<_> = tb.log().iter().map(|l| l["outcome"].clone()).collect();
        assert_eq!(outcomes, vec![json!("allow"); if gateway_payloads { 2 } else { 1 }], "{mode:?}");
    }
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn in_jwt_mode_tokens_for_another_audience_or_issuer_tampered_or_opaque_are_denied_as_invalid_token() {
    let idps = interop::pair();
    let valid = idps.a.jwt_client_credentials(CALLER, CALLER_SCOPES, ORDERS_API).access_token;
    let other_audience = idps.a.jwt_client_credentials(CALLER, CALLER_SCOPES, OTHER_API).access_token;
    // IdP B signs with a key of its own, for the same audience.
    let other_issuer = idps.b.jwt_client_credentials(TOKENBRIDGE_AT_B, BACKEND_SCOPE, ORDERS_API).access_token;
    let opaque = idps.a.client_credentials(CALLER, Some(CALLER_SCOPES)).access_token;
    let denied = [
        (other_audience, "wrong_audience"),
        (with_tampered_signature(&valid), "bad_signature"),
        (with_forged_claims(&valid), "bad_signature"),
        (other_issuer, "unknown_issuer"),
        (opaque, "not_a_jwt"),
    ];
    for (mode, mut tb) in every_adapter(&idps.jwt_env("jwt")) {
        for (token, _) in &denied {
            assert_denied(mode, tb.decide(token));
        }
        // The genuine token still passes: the denials were about the tokens.
        assert_allowed_with_live_backend_token(idps, mode, tb.decide(&valid), CALLER.id);
        let reasons: Vec<_> = denied.iter().map(|(_, reason)| *reason).collect();
        assert_eq!(deny_reasons(&tb.log()), reasons, "{mode:?}");
    }
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn in_jwt_mode_a_short_lived_jwt_is_allowed_until_its_exp_then_denied_as_expired() {
    let idps = interop::pair();
    let brief = idps.a.jwt_client_credentials(BRIEF_CALLER, "orders.read", ORDERS_API);
    assert_eq!(brief.expires_in, Some(BRIEF_TTL));
    let exp = claims(&brief.access_token)["exp"].as_i64().expect("exp");
    // No clock leeway, so that the token is refused at its exp, not a minute later.
    let env = with(idps.jwt_env("jwt"), &[("TOKENBRIDGE_CLOCK_LEEWAY_SECONDS", "0")]);
    let mut tbs = every_adapter(&env);
    for (mode, tb) in &mut tbs {
        assert_allowed_with_live_backend_token(idps, *mode, tb.decide(&brief.access_token), BRIEF_CALLER.id);
        if matches!(mode, Mode::Stdio | Mode::Oci) {
            let answer = tb.ask(&brief.access_token);
            assert_eq!(expires_at(&answer), exp, "{mode:?}: the gateway must not replay the allow past the JWT's exp");
        }
    }
    sleep_until(exp);
    for (mode, tb) in &mut tbs {
        assert_denied(*mode, tb.decide(&brief.access_token));
    }
    for (mode, tb) in tbs {
        assert_eq!(deny_reasons(&tb.log()), ["expired"], "{mode:?}");
    }
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn in_auto_mode_jwts_are_verified_locally_and_opaque_tokens_introspected() {
    let idps = interop::pair();
    let jwt = idps.a.jwt_client_credentials(CALLER, CALLER_SCOPES, ORDERS_API).access_token;
    let other_audience = idps.a.jwt_client_credentials(CALLER, CALLER_SCOPES, OTHER_API).access_token;
    let opaque = idps.a.client_credentials(CALLER, Some(CALLER_SCOPES)).access_token;
    let revoked = idps.a.client_credentials(CALLER, Some(CALLER_SCOPES)).access_token;
    idps.a.revoke(CALLER, &revoked);
    for (mode, mut tb) in every_adapter(&idps.jwt_env("auto")) {
        // IdP A refuses to introspect JWTs, so this allow is the local verification's.
        assert_allowed_with_live_backend_token(idps, mode, tb.decide(&jwt), CALLER.id);
        assert_allowed_with_live_backend_token(idps, mode, tb.decide(&opaque), CALLER.id);
        assert_denied(mode, tb.decide(&revoked));
        // A JWT of the configured issuer that fails verification is not handed to IdP A instead.
        assert_denied(mode, tb.decide(&other_audience));
        assert_eq!(deny_reasons(&tb.log()), ["inactive", "wrong_audience"], "{mode:?}");
    }
}

// Client authentication: tokenbridge at one more oidc-provider, which holds a client of
// tokenbridge's for each method and refuses any client that authenticates by another method
// than its registered one (and a client assertion whose `jti` it has seen).

/// The clients of the methods server; the caller authenticates with client_secret_basic.
const METHODS_CALLER: (&str, &str) = ("methods-caller", "methods-caller-secret");
const POST_AT_A: (&str, &str) = ("tb-a-post", "a-post: s3cr%t/+ &=?");
const POST_AT_B: (&str, &str) = ("tb-b-post", "b-post-s3cret");
const JWT_AT_A: &str = "tb-a-private-key-jwt";
const JWT_AT_B: &str = "tb-b-private-key-jwt";
/// The `kid` of tokenbridge's key at B, as registered there.
const EC_KEY_ID: &str = "tb-b-key-1";

/// One oidc-provider, IdP A and IdP B at once, with a client of tokenbridge's per method and
/// side: RSA keys at A (RS256 or PS256 as configured), an EC P-256 key at B. Started once per
/// test process; it exits when the process does (its stdin closes).
struct MethodsServer {
    provider: Provider,
    rsa: tokenbridge_tests::fake_idp::ClientKey,
    ec: tokenbridge_tests::fake_idp::ClientKey,
}

/// A running oidc-provider for the client authentication tests, with [`METHODS_CALLER`] (a
/// client_secret_basic caller) and [`POST_AT_A`] (a resource server) among its clients.
struct Provider {
    routes: Value,
    /// The test's own client of the server (trusting its CA when it serves HTTPS).
    agent: ureq::Agent,
    _process: std::sync::Mutex<(std::process::Child, Option<std::process::ChildStdin>)>,
}

fn methods_server() -> &'static MethodsServer {
    use tokenbridge_tests::fake_idp::ClientKey;
    static SERVER: std::sync::OnceLock<MethodsServer> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| {
        let (rsa, ec) = (ClientKey::rsa("RS256"), ClientKey::ec());
        let mut ec_jwk = ec.jwk();
        ec_jwk["kid"] = EC_KEY_ID.into();
        let clients = json!([
            {"client_id": POST_AT_B.0, "client_secret": POST_AT_B.1, "grant_types": ["client_credentials"],
             "scope": BACKEND_SCOPE, "token_endpoint_auth_method": "client_secret_post"},
            {"client_id": JWT_AT_A, "introspect": true, "token_endpoint_auth_method": "private_key_jwt",
             "jwks": {"keys": [rsa.jwk()]}},
            {"client_id": JWT_AT_B, "grant_types": ["client_credentials"], "scope": BACKEND_SCOPE,
             "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [ec_jwk]}},
        ]);
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        MethodsServer { provider: Provider::start(clients, None, agent), rsa, ec }
    })
}

impl Provider {
    /// Starts oidc-provider with `clients` besides the caller and the resource server, on
    /// HTTPS when `tls` gives its `INTEROP_TLS`, and builds tokenbridge meanwhile.
    fn start(clients: Value, tls: Option<Value>, agent: ureq::Agent) -> Provider {
        use std::io::BufRead;
        let node = interop::prerequisites().unwrap_or_else(|why| panic!("the interop suite cannot run: {why}"));
        let mut all = json!([
            {"client_id": METHODS_CALLER.0, "client_secret": METHODS_CALLER.1, "grant_types": ["client_credentials"],
             "scope": CALLER_SCOPES},
            {"client_id": POST_AT_A.0, "client_secret": POST_AT_A.1, "introspect": true,
             "token_endpoint_auth_method": "client_secret_post"},
        ]);
        all.as_array_mut().expect("an array").extend(clients.as_array().cloned().unwrap_or_default());
        let mut command = std::process::Command::new(node);
        command
            .args(["server.mjs", "--port=0"])
            .current_dir(interop::project_dir())
            .env("INTEROP_CLIENTS", all.to_string());
        if let Some(tls) = tls {
            command.env("INTEROP_TLS", tls.to_string());
        }
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start the methods server");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("server stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("the methods server printed its routes");
        let routes: Value = serde_json::from_str(&line).expect("routes JSON");
        tokenbridge_tests::harness::binary();
        Provider { routes, agent, _process: std::sync::Mutex::new((child, stdin)) }
    }

    fn route(&self, name: &str) -> String {
        self.routes[name].as_str().unwrap_or_else(|| panic!("no {name}")).to_string()
    }

    /// A fresh client_credentials token of the caller.
    fn caller_token(&self) -> String {
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", METHODS_CALLER.0, METHODS_CALLER.1))
        );
        let mut response = self
            .agent
            .post(&self.route("token_endpoint"))
            .header("Authorization", basic)
            .send_form([("grant_type", "client_credentials"), ("scope", CALLER_SCOPES)])
            .expect("caller token request");
        let answer: Value = serde_json::from_str(&response.body_mut().read_to_string().expect("token answer"))
            .expect("token answer JSON");
        answer["access_token"].as_str().expect("a caller token").to_string()
    }

    /// The server's introspection answer for `token`, asked as the client_secret_post client
    /// at A (a resource server: it may introspect every client's tokens).
    fn introspect(&self, token: &str) -> Value {
        let mut response = self
            .agent
            .post(&self.route("introspection_endpoint"))
            .send_form([("token", token), ("client_id", POST_AT_A.0), ("client_secret", POST_AT_A.1)])
            .expect("introspection request");
        serde_json::from_str(&response.body_mut().read_to_string().expect("introspection answer"))
            .expect("introspection answer JSON")
    }

    /// tokenbridge's settings for this server, with `extra` on top.
    fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let base = [
            ("TOKENBRIDGE_INTROSPECTION_URL", self.route("introspection_endpoint")),
            ("TOKENBRIDGE_BACKEND_TOKEN_URL", self.route("token_endpoint")),
            ("TOKENBRIDGE_BACKEND_SCOPE", BACKEND_SCOPE.to_string()),
            // The allows' lines are read (the default logs denials only).
            ("TOKENBRIDGE_DECISION_LOG", "all".to_string()),
        ];
        with(base.into_iter().map(|(k, v)| (k.to_string(), v)).collect(), extra)
    }
}

/// Two callers in a row are allowed (the second decision makes new IdP calls, with new
/// assertions where there are any), the backend token is for `backend_client`, and nothing of
/// the credentials is in the answers or the log.
fn assert_methods_allow(server: &Provider, env: &[(String, String)], backend_client: &str, credentials: &[&str]) {
    for (mode, mut tb) in both(env) {
        for _ in 0..2 {
            let answer = tb.ask(&server.caller_token());
            assert_allowed(mode, &answer);
            assert_eq!(answer["principal"], METHODS_CALLER.0, "{mode:?}");
            let at_b = server.introspect(backend_token(&answer));
            assert_eq!((at_b["active"].as_bool(), at_b["client_id"].as_str()), (Some(true), Some(backend_client)));
            let text = answer.to_string();
            assert!(credentials.iter().all(|c| !text.contains(c)), "{mode:?}: a credential is in the answer");
        }
        let log = tb.log();
        assert_eq!(log.iter().filter(|l| l["outcome"] == "allow").count(), 2, "{mode:?}");
        let log = serde_json::to_string(&log).unwrap_or_default();
        assert!(credentials.iter().all(|c| !log.contains(c)), "{mode:?}: a credential is in the log");
    }
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn client_secret_post_is_accepted_by_oidc_provider_at_idp_a_and_idp_b() {
    let server = methods_server();
    let env = server.provider.env(&[
        ("TOKENBRIDGE_INTROSPECTION_CLIENT_ID", POST_AT_A.0),
        ("TOKENBRIDGE_INTROSPECTION_CLIENT_SECRET", POST_AT_A.1),
        ("TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH", "client_secret_post"),
        ("TOKENBRIDGE_BACKEND_CLIENT_ID", POST_AT_B.0),
        ("TOKENBRIDGE_BACKEND_CLIENT_SECRET", POST_AT_B.1),
        ("TOKENBRIDGE_BACKEND_CLIENT_AUTH", "client_secret_post"),
    ]);
    assert_methods_allow(&server.provider, &env, POST_AT_B.0, &[POST_AT_A.1, POST_AT_B.1]);
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn private_key_jwt_is_accepted_by_oidc_provider_at_idp_a_and_idp_b() {
    let server = methods_server();
    let issuer = server.provider.route("issuer");
    let base = [
        ("TOKENBRIDGE_INTROSPECTION_CLIENT_ID", JWT_AT_A),
        ("TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH", "private_key_jwt"),
        ("TOKENBRIDGE_INTROSPECTION_CLIENT_KEY", server.rsa.pem.as_str()),
        ("TOKENBRIDGE_BACKEND_CLIENT_ID", JWT_AT_B),
        ("TOKENBRIDGE_BACKEND_CLIENT_AUTH", "private_key_jwt"),
        ("TOKENBRIDGE_BACKEND_CLIENT_KEY", server.ec.pem.as_str()),
    ];
    // RS256 and the endpoint as the audience (the defaults), no key id; then PS256, the issuer
    // as the audience, and the key id (which oidc-provider matches against the registered one).
    let variants: [&[(&str, &str)]; 2] = [
        &[],
        &[
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_ASSERTION_ALG", "PS256"),
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_ASSERTION_AUDIENCE", &issuer),
            ("TOKENBRIDGE_BACKEND_CLIENT_ASSERTION_AUDIENCE", &issuer),
            ("TOKENBRIDGE_BACKEND_CLIENT_KEY_ID", EC_KEY_ID),
        ],
    ];
    for extra in variants {
        let env = with(server.provider.env(&base), extra);
        assert_methods_allow(&server.provider, &env, JWT_AT_B, &["PRIVATE KEY", "eyJ"]);
    }
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn oidc_provider_refuses_tokenbridge_when_it_authenticates_by_another_method() {
    let server = methods_server();
    let token = server.provider.caller_token();
    // (oidc-provider takes client_secret_basic for a client_secret_post client and the other way
    // round, so the mismatches here are between a secret and a key.)
    let jwt_client_by_basic = server.provider.env(&[
        ("TOKENBRIDGE_INTROSPECTION_CLIENT_ID", JWT_AT_A),
        ("TOKENBRIDGE_INTROSPECTION_CLIENT_SECRET", "a-secret-it-never-had"),
        ("TOKENBRIDGE_BACKEND_CLIENT_ID", POST_AT_B.0),
        ("TOKENBRIDGE_BACKEND_CLIENT_SECRET", POST_AT_B.1),
        ("TOKENBRIDGE_BACKEND_CLIENT_AUTH", "client_secret_post"),
    ]);
    assert_client_rejected(&jwt_client_by_basic, &token, "introspection_client_rejected", POST_AT_A.1);
    let jwt_client_by_post = server.provider.env(&[
        ("TOKENBRIDGE_INTROSPECTION_CLIENT_ID", POST_AT_A.0),
        ("TOKENBRIDGE_INTROSPECTION_CLIENT_SECRET", POST_AT_A.1),
        ("TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH", "client_secret_post"),
        ("TOKENBRIDGE_BACKEND_CLIENT_ID", JWT_AT_B),
        ("TOKENBRIDGE_BACKEND_CLIENT_SECRET", "a-secret-it-never-had"),
        ("TOKENBRIDGE_BACKEND_CLIENT_AUTH", "client_secret_post"),
    ]);
    assert_client_rejected(&jwt_client_by_post, &token, "backend_token_client_rejected", POST_AT_A.1);
}

// Backend tokens for the caller: oidc-provider as an IdP B with RFC 8693 token exchange and the
// RFC 7523 jwt-bearer grant as Entra's on-behalf-of uses it (`interop::grants_idp`), which
// validates each caller's token at IdP A and issues a token whose `sub` is the caller.

/// tokenbridge's settings for `grant` at the grants IdP: token exchange as [`EXCHANGER_AT_B`],
/// or on-behalf-of as [`OBO_AT_B`]; IdP A's JWTs verified locally, its opaque tokens introspected.
fn grant_env(idps: &Pair, grant: &str) -> Vec<(String, String)> {
    let (client, extra): (Client, &[(&str, &str)]) = match grant {
        "token_exchange" => (EXCHANGER_AT_B, &[("TOKENBRIDGE_BACKEND_GRANT", "token_exchange")]),
        "jwt_bearer" => (
            OBO_AT_B,
            &[("TOKENBRIDGE_BACKEND_GRANT", "jwt_bearer"), ("TOKENBRIDGE_BACKEND_REQUESTED_TOKEN_USE", "on_behalf_of")],
        ),
        other => panic!("no grant {other}"),
    };
    with(idps.grants_env(client), extra)
}

/// The grant's tokenbridge client at the grants IdP.
fn grant_client(grant: &str) -> Client {
    if grant == "token_exchange" { EXCHANGER_AT_B } else { OBO_AT_B }
}

/// A caller's token, the principal tokenbridge must see, and the token's `exp`.
struct Caller {
    token: String,
    principal: &'static str,
    exp: i64,
}

/// Three callers of IdP A: an opaque client_credentials token (`sub` = its client), alice's
/// authorization-code token, and a client_credentials JWT for [`ORDERS_API`].
fn three_callers(idps: &Pair) -> Vec<Caller> {
    let exp_at_a = |token: &str| idps.a.introspect(TOKENBRIDGE_AT_A, token)["exp"].as_i64().expect("exp at A");
    let opaque = idps.a.client_credentials(CALLER, Some(CALLER_SCOPES)).access_token;
    let alice = idps.a.authorization_code(WEB_APP, "alice", "openid orders.read").access_token;
    let jwt = idps.a.jwt_client_credentials(CALLER, CALLER_SCOPES, ORDERS_API).access_token;
    vec![
        Caller { exp: exp_at_a(&opaque), token: opaque, principal: CALLER.id },
        Caller { exp: exp_at_a(&alice), token: alice, principal: "alice" },
        Caller { exp: claims(&jwt)["exp"].as_i64().expect("exp"), token: jwt, principal: CALLER.id },
    ]
}

/// Through every adapter: each caller is allowed twice with the same backend token, which the
/// grants IdP issued to `client` for the caller (`sub`), for [`BACKEND_SCOPE`], expiring no later
/// than the caller's token; no two callers share one; the second decision of each caller costs
/// no grant request (the log's backend lookup is a `hit`).
fn assert_a_backend_token_per_caller(idps: &Pair, env: &[(String, String)], client: Client) {
    let grants = interop::grants_idp();
    let callers = three_callers(idps);
    for (mode, mut tb) in every_adapter(env) {
        let mut issued: Vec<String> = Vec::new();
        for caller in &callers {
            let Decision::Allow { principal, backend_token } = tb.decide(&caller.token) else {
                panic!("{mode:?}: {} not allowed", caller.principal)
            };
            assert_eq!(principal, caller.principal, "{mode:?}");
            assert!(backend_token != caller.token, "{mode:?}: the caller's token was passed on");
            let at_b = grants.introspect(client, &backend_token);
            assert_eq!(
                (&at_b["active"], &at_b["sub"], &at_b["client_id"], &at_b["scope"]),
                (&json!(true), &json!(caller.principal), &json!(client.id), &json!(BACKEND_SCOPE)),
                "{mode:?}: the backend token at IdP B"
            );
            assert!(at_b.get("act").is_none(), "{mode:?}: no actor was sent, none is named");
            let backend_exp = at_b["exp"].as_i64().expect("exp at B");
            assert!(backend_exp <= caller.exp, "{mode:?}: the backend token outlives the caller's");
            let Decision::Allow { backend_token: again, .. } = tb.decide(&caller.token) else {
                panic!("{mode:?}: {} not allowed the second time", caller.principal)
            };
            assert!(again == backend_token, "{mode:?}: the same caller got another backend token");
            assert!(!issued.contains(&backend_token), "{mode:?}: two callers share a backend token");
            issued.push(backend_token);
        }
        let backend: Vec<_> = tb.log().iter().map(|l| l["backend"].as_str().unwrap_or("-").to_string()).collect();
        assert_eq!(backend, ["miss", "hit", "miss", "hit", "miss", "hit"], "{mode:?}: backend lookups");
    }
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn the_grants_idp_exchanges_live_caller_tokens_only_and_answers_as_rfc_8693_and_entra_do() {
    let idps = interop::pair();
    let grants = interop::grants_idp();
    let caller = idps.a.client_credentials(CALLER, Some(CALLER_SCOPES)).access_token;
    let brief = idps.a.client_credentials(BRIEF_CALLER, Some(EXCHANGEABLE_SCOPE)).access_token;
    let exchange = |client: Client, subject: &str, extra: &[(&str, &str)]| {
        let mut form =
            vec![("grant_type", TOKEN_EXCHANGE), ("subject_token", subject), ("subject_token_type", ACCESS_TOKEN_TYPE)];
        form.extend_from_slice(extra);
        grants.grant(client, &form)
    };
    let obo = |subject: &str, extra: &[(&str, &str)]| {
        let mut form = vec![("grant_type", JWT_BEARER), ("assertion", subject)];
        form.extend_from_slice(extra);
        grants.grant(OBO_AT_B, &form)
    };
    let error = |(status, answer): (u16, Value)| (status, answer["error"].as_str().unwrap_or("-").to_string());

    let (status, answer) = exchange(EXCHANGER_AT_B, &caller, &[("scope", BACKEND_SCOPE), ("audience", ORDERS_API)]);
    assert_eq!(status, 200, "{}", redacted(&answer));
    assert_eq!((&answer["issued_token_type"], &answer["token_type"]), (&json!(ACCESS_TOKEN_TYPE), &json!("Bearer")));
    // The caller token's remaining life, counted in whole seconds: a second boundary between its
    // issue and the exchange takes one off.
    let longest = BACKEND_TTL.min(interop::CALLER_TTL);
    let expires_in = answer["expires_in"].as_i64().unwrap_or(-1);
    assert!((longest - 1..=longest).contains(&expires_in), "expires_in {expires_in}, expected {longest}");
    let at_b = grants.introspect(EXCHANGER_AT_B, answer["access_token"].as_str().expect("access_token"));
    assert_eq!((&at_b["sub"], &at_b["aud"]), (&json!(CALLER.id), &json!(ORDERS_API)), "{at_b}");
    // Never longer-lived than the caller's token.
    let (_, answer) = exchange(EXCHANGER_AT_B, &brief, &[]);
    assert!(answer["expires_in"].as_i64().is_some_and(|s| s <= BRIEF_TTL), "{}", redacted(&answer));

    let (status, answer) = obo(&caller, &[("requested_token_use", "on_behalf_of"), ("scope", BACKEND_SCOPE)]);
    assert_eq!(status, 200, "{}", redacted(&answer));
    assert!(answer.get("issued_token_type").is_none(), "Entra's on-behalf-of answer names no issued type");

    let refused = idps.a.client_credentials(CALLER, Some("orders.write")).access_token;
    let jwt_type = [("requested_token_type", "urn:ietf:params:oauth:token-type:jwt")];
    assert_eq!(error(exchange(EXCHANGER_AT_B, "never-issued", &[])), (400, "invalid_grant".into()));
    assert_eq!(error(exchange(EXCHANGER_AT_B, &refused, &[])), (400, "invalid_grant".into()));
    assert_eq!(error(exchange(EXCHANGER_AT_B, &caller, &jwt_type)), (400, "invalid_request".into()));
    assert_eq!(error(exchange(EXCHANGER_AT_B, &caller, &[("scope", "orders.admin")])), (400, "invalid_scope".into()));
    assert_eq!(error(obo("never-issued", &[("requested_token_use", "on_behalf_of")])), (400, "invalid_grant".into()));
    assert_eq!(error(obo(&caller, &[])), (400, "invalid_request".into()));
    // Only a client registered with the grant may use it (oidc-provider's own check and code).
    assert_eq!(error(exchange(OBO_AT_B, &caller, &[])), (400, "invalid_request".into()));
    // An actor token must be an active client_credentials token of the exchanging client.
    let own = grants.client_credentials(EXCHANGER_AT_B, None).access_token;
    let (status, answer) =
        exchange(EXCHANGER_AT_B, &caller, &[("actor_token", &own), ("actor_token_type", ACCESS_TOKEN_TYPE)]);
    assert_eq!(status, 200, "{}", redacted(&answer));
    let at_b = grants.introspect(EXCHANGER_AT_B, answer["access_token"].as_str().expect("access_token"));
    assert_eq!(at_b["act"], json!({"sub": EXCHANGER_AT_B.id}), "{at_b}");
    let unknown_actor = [("actor_token", "never-issued"), ("actor_token_type", ACCESS_TOKEN_TYPE)];
    assert_eq!(error(exchange(EXCHANGER_AT_B, &caller, &unknown_actor)), (400, "invalid_request".into()));
    let untyped_actor = [("actor_token", own.as_str())];
    assert_eq!(error(exchange(EXCHANGER_AT_B, &caller, &untyped_actor)), (400, "invalid_request".into()));
    idps.a.revoke(CALLER, &caller);
    assert_eq!(error(exchange(EXCHANGER_AT_B, &caller, &[])), (400, "invalid_grant".into()));
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn token_exchange_at_oidc_provider_gives_each_caller_a_backend_token_of_its_own_for_its_sub() {
    let idps = interop::pair();
    assert_a_backend_token_per_caller(idps, &grant_env(idps, "token_exchange"), EXCHANGER_AT_B);
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn jwt_bearer_on_behalf_of_at_oidc_provider_gives_each_caller_a_backend_token_of_its_own_for_its_sub() {
    let idps = interop::pair();
    assert_a_backend_token_per_caller(idps, &grant_env(idps, "jwt_bearer"), OBO_AT_B);
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn a_caller_token_revoked_at_idp_a_is_denied_once_its_validation_entry_ends_and_its_exchanged_token_not_used_again() {
    let idps = interop::pair();
    let caller = idps.a.client_credentials(CALLER, Some(CALLER_SCOPES)).access_token;
    let short = [("TOKENBRIDGE_CACHE_MAX_TTL_SECONDS", "2"), ("TOKENBRIDGE_CACHE_INACTIVE_TTL_SECONDS", "1")];
    let mut tbs: Vec<_> = ["token_exchange", "jwt_bearer"]
        .into_iter()
        .flat_map(|grant| every_adapter(&with(grant_env(idps, grant), &short)))
        .collect();
    for (mode, tb) in &mut tbs {
        assert!(matches!(tb.decide(&caller), Decision::Allow { .. }), "{mode:?}: not allowed");
    }
    let cached_until = unix_now() as i64 + 2;
    idps.a.revoke(CALLER, &caller);
    sleep_until(cached_until);
    for (mode, tb) in &mut tbs {
        for _ in 0..2 {
            assert_denied(*mode, tb.decide(&caller));
        }
    }
    for (mode, tb) in tbs {
        let log = tb.log();
        let outcomes: Vec<_> = log.iter().map(|l| l["outcome"].as_str().unwrap_or("-")).collect();
        assert_eq!(outcomes, ["allow", "deny", "deny"], "{mode:?}");
        // Denied by IdP A's answer, before any exchange: the exchanged token stays unused.
        assert_eq!(deny_reasons(&log), ["inactive"; 2], "{mode:?}");
    }
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn a_caller_token_idp_b_refuses_is_denied_as_invalid_token_with_reason_backend_refused_caller_token() {
    let idps = interop::pair();
    // Active at IdP A, but without the scope the grants IdP exchanges tokens for.
    let refused = idps.a.client_credentials(CALLER, Some("orders.write")).access_token;
    let accepted = idps.a.client_credentials(CALLER, Some(CALLER_SCOPES)).access_token;
    for grant in ["token_exchange", "jwt_bearer"] {
        for (mode, mut tb) in every_adapter(&grant_env(idps, grant)) {
            assert_denied(mode, tb.decide(&refused));
            assert_denied(mode, tb.decide(&refused));
            // The refusal was about that token: another caller is still allowed.
            assert!(matches!(tb.decide(&accepted), Decision::Allow { .. }), "{grant} {mode:?}: not allowed");
            let log = tb.log();
            assert_eq!(deny_reasons(&log), ["backend_refused_caller_token"; 2], "{grant} {mode:?}");
            // The refusal is remembered: the second deny asked IdP B nothing.
            assert_eq!(log[1]["backend"], "hit", "{grant} {mode:?}");
        }
    }
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn idp_b_refusing_tokenbridges_grant_request_is_unavailable_not_a_deny() {
    let idps = interop::pair();
    let caller = idps.a.client_credentials(CALLER, Some(CALLER_SCOPES)).access_token;
    for grant in ["token_exchange", "jwt_bearer"] {
        // A scope tokenbridge's client may not have: invalid_scope is not about the caller.
        let env = with(grant_env(idps, grant), &[("TOKENBRIDGE_BACKEND_SCOPE", "orders.admin")]);
        for (mode, mut tb) in every_adapter(&env) {
            // Not remembered either: the second decision asks IdP B again, with the same answer.
            for _ in 0..2 {
                assert_unavailable(mode, tb.decide(&caller), "backend_token_bad_status");
            }
            let outcomes: Vec<_> = tb.log().iter().map(|l| l["outcome"].as_str().unwrap_or("-").to_string()).collect();
            assert_eq!(outcomes, ["unavailable"; 2], "{grant} {mode:?}");
        }
    }
}

// oidc-provider refuses a client the grant type with `400 invalid_request` ("requested grant type
// is not allowed for this client"), the code RFC 8693 §2.2.2 also gives a refused subject token:
// tokenbridge's own misconfiguration, Unavailable, never a deny of every caller.
#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn a_tokenbridge_client_not_allowed_the_grant_at_oidc_provider_is_unavailable() {
    let idps = interop::pair();
    let caller = idps.a.client_credentials(CALLER, Some(CALLER_SCOPES)).access_token;
    // Each grant's settings with the other grant's client, which oidc-provider refuses the grant.
    for (grant, other) in [("token_exchange", "jwt_bearer"), ("jwt_bearer", "token_exchange")] {
        let client = grant_client(other);
        let env = with(
            grant_env(idps, grant),
            &[("TOKENBRIDGE_BACKEND_CLIENT_ID", client.id), ("TOKENBRIDGE_BACKEND_CLIENT_SECRET", client.secret)],
        );
        for (mode, mut tb) in every_adapter(&env) {
            assert_unavailable(mode, tb.decide(&caller), "backend_token_bad_status");
        }
    }
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn the_backend_audience_resource_and_token_type_settings_reach_oidc_provider_as_rfc_8693_parameters() {
    let idps = interop::pair();
    let grants = interop::grants_idp();
    let opaque = idps.a.client_credentials(CALLER, Some(CALLER_SCOPES)).access_token;
    let jwt = idps.a.jwt_client_credentials(CALLER, CALLER_SCOPES, ORDERS_API).access_token;
    let audience = with(
        grant_env(idps, "token_exchange"),
        &[("TOKENBRIDGE_BACKEND_AUDIENCE", ORDERS_API), ("TOKENBRIDGE_BACKEND_REQUESTED_TOKEN_TYPE", "access_token")],
    );
    let resource = with(grant_env(idps, "jwt_bearer"), &[("TOKENBRIDGE_BACKEND_RESOURCE", OTHER_API)]);
    for (env, client, aud) in [(audience, EXCHANGER_AT_B, ORDERS_API), (resource, OBO_AT_B, OTHER_API)] {
        for (mode, mut tb) in every_adapter(&env) {
            let Decision::Allow { backend_token, .. } = tb.decide(&opaque) else { panic!("{mode:?}: not allowed") };
            let at_b = grants.introspect(client, &backend_token);
            assert_eq!((&at_b["sub"], &at_b["aud"]), (&json!(CALLER.id), &json!(aud)), "{mode:?}: {at_b}");
        }
    }
    // A caller token sent as `…:token-type:jwt`: the grants IdP takes only a JWT as that type.
    let jwt_type = with(grant_env(idps, "token_exchange"), &[("TOKENBRIDGE_BACKEND_SUBJECT_TOKEN_TYPE", "jwt")]);
    for (mode, mut tb) in every_adapter(&jwt_type) {
        assert_allowed_at_grants_idp(mode, tb.decide(&jwt), EXCHANGER_AT_B);
        assert_denied(mode, tb.decide(&opaque));
        assert_eq!(deny_reasons(&tb.log()), ["backend_refused_caller_token"], "{mode:?}");
    }
}

/// `decision` is an allow of [`CALLER`] with a live token of `client`'s at the grants IdP for it.
fn assert_allowed_at_grants_idp(mode: Mode, decision: Decision, client: Client) {
    let Decision::Allow { principal, backend_token } = decision else { panic!("{mode:?}: not allowed") };
    let at_b = interop::grants_idp().introspect(client, &backend_token);
    assert_eq!((principal.as_str(), &at_b["active"], &at_b["sub"]), (CALLER.id, &json!(true), &json!(CALLER.id)));
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn token_exchange_with_tokenbridge_as_the_actor_gives_backend_tokens_for_the_caller_acted_for_by_tokenbridge() {
    let idps = interop::pair();
    let grants = interop::grants_idp();
    let callers = three_callers(idps);
    let env = with(grant_env(idps, "token_exchange"), &[("TOKENBRIDGE_BACKEND_ACTOR_TOKEN", "client_credentials")]);
    for (mode, mut tb) in every_adapter(&env) {
        for caller in &callers {
            let Decision::Allow { principal, backend_token } = tb.decide(&caller.token) else {
                panic!("{mode:?}: {} not allowed", caller.principal)
            };
            let at_b = grants.introspect(EXCHANGER_AT_B, &backend_token);
            assert_eq!(
                (principal.as_str(), &at_b["sub"], &at_b["act"]),
                (caller.principal, &json!(caller.principal), &json!({"sub": EXCHANGER_AT_B.id})),
                "{mode:?}: the backend token is the caller's, with tokenbridge acting for it"
            );
        }
        let outcomes: Vec<_> = tb.log().iter().map(|l| l["outcome"].as_str().unwrap_or("-").to_string()).collect();
        assert_eq!(outcomes, ["allow"; 3], "{mode:?}");
    }
}

// RFC 8705 client authentication: tokenbridge presents a client certificate on the TLS
// connection to an oidc-provider that serves HTTPS (its certificate from a private CA, trusted
// through TOKENBRIDGE_CA_BUNDLE) and authenticates tokenbridge's clients by their certificates:
// tls_client_auth (a certificate the CA signed, with the registered subject) and
// self_signed_tls_client_auth (the registered certificate itself).

const TLS_AT_A: &str = "tb-a-tls-client-auth";
const TLS_AT_B: &str = "tb-b-tls-client-auth";
const SELF_SIGNED_AT_A: &str = "tb-a-self-signed-tls-client-auth";
const SELF_SIGNED_AT_B: &str = "tb-b-self-signed-tls-client-auth";

/// The HTTPS oidc-provider, with its certificates.
struct MtlsServer {
    provider: Provider,
    pki: interop::MtlsPki,
}

fn mtls_server() -> &'static MtlsServer {
    static SERVER: std::sync::OnceLock<MtlsServer> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| {
        let pki = interop::MtlsPki::make();
        let self_signed = std::fs::read_to_string(&pki.self_signed.0).expect("the self-signed certificate");
        let clients = json!([
            {"client_id": TLS_AT_A, "introspect": true, "token_endpoint_auth_method": "tls_client_auth",
             "tls_client_auth_subject_dn": interop::MTLS_SUBJECT},
            {"client_id": TLS_AT_B, "grant_types": ["client_credentials"], "scope": BACKEND_SCOPE,
             "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": interop::MTLS_SUBJECT},
            {"client_id": SELF_SIGNED_AT_A, "introspect": true,
             "token_endpoint_auth_method": "self_signed_tls_client_auth", "certificate": self_signed},
            {"client_id": SELF_SIGNED_AT_B, "grant_types": ["client_credentials"], "scope": BACKEND_SCOPE,
             "token_endpoint_auth_method": "self_signed_tls_client_auth", "certificate": self_signed},
        ]);
        let provider = Provider::start(clients, Some(pki.server_env()), trusting(&pki.ca));
        MtlsServer { provider, pki }
    })
}

/// The test's own HTTPS client, trusting only the CA at `ca`.
fn trusting(ca: &std::path::Path) -> ureq::Agent {
    let pem = std::fs::read(ca).expect("the test CA");
    let ca = ureq::tls::Certificate::from_pem(&pem).expect("the test CA's PEM");
    let tls = ureq::tls::TlsConfig::builder()
        .unversioned_rustls_crypto_provider(std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .root_certs(ureq::tls::RootCerts::new_with_certs(&[ca]))
        .build();
    ureq::Agent::config_builder().tls_config(tls).http_status_as_error(false).build().new_agent()
}

impl MtlsServer {
    /// tokenbridge's settings: `method` with `client` and the certificate and key `(cert, key)` at
    /// each IdP (`who` = INTROSPECTION or BACKEND), the CA trusted. IdP A's key is given as a
    /// literal PEM, the rest as `file:` references.
    fn env(&self, sides: [(&str, &str, &str, &(std::path::PathBuf, std::path::PathBuf)); 2]) -> Vec<(String, String)> {
        let mut env = self.provider.env(&[("TOKENBRIDGE_CA_BUNDLE", &self.pki.ca.display().to_string())]);
        for (who, method, client, (cert, key)) in sides {
            let key = if who == "INTROSPECTION" {
                std::fs::read_to_string(key).expect("the client key")
            } else {
                format!("file:{}", key.display())
            };
            env = with(
                env,
                &[
                    (&format!("TOKENBRIDGE_{who}_CLIENT_AUTH"), method),
                    (&format!("TOKENBRIDGE_{who}_CLIENT_ID"), client),
                    (&format!("TOKENBRIDGE_{who}_CLIENT_CERT"), &format!("file:{}", cert.display())),
                    (&format!("TOKENBRIDGE_{who}_CLIENT_KEY"), &key),
                ],
            );
        }
        env
    }

    /// What must never be in an answer or a log: PEM armour, and a line of each key's body.
    fn key_material(&self) -> Vec<String> {
        let mut material = vec!["PRIVATE KEY".to_string(), "BEGIN CERTIFICATE".to_string()];
        for (_, key) in [&self.pki.ca_signed, &self.pki.self_signed, &self.pki.impostor] {
            let pem = std::fs::read_to_string(key).expect("a client key");
            material.extend(pem.lines().filter(|l| !l.starts_with("-----")).map(str::to_string));
        }
        material
    }
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn tls_client_auth_at_idp_a_and_self_signed_tls_client_auth_at_idp_b_are_accepted_by_oidc_provider() {
    let server = mtls_server();
    let env = server.env([
        ("INTROSPECTION", "tls_client_auth", TLS_AT_A, &server.pki.ca_signed),
        ("BACKEND", "self_signed_tls_client_auth", SELF_SIGNED_AT_B, &server.pki.self_signed),
    ]);
    let material = server.key_material();
    let material: Vec<&str> = material.iter().map(String::as_str).collect();
    assert_methods_allow(&server.provider, &env, SELF_SIGNED_AT_B, &material);
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn self_signed_tls_client_auth_at_idp_a_and_tls_client_auth_at_idp_b_are_accepted_by_oidc_provider() {
    let server = mtls_server();
    let env = server.env([
        ("INTROSPECTION", "self_signed_tls_client_auth", SELF_SIGNED_AT_A, &server.pki.self_signed),
        ("BACKEND", "tls_client_auth", TLS_AT_B, &server.pki.ca_signed),
    ]);
    let material = server.key_material();
    let material: Vec<&str> = material.iter().map(String::as_str).collect();
    assert_methods_allow(&server.provider, &env, TLS_AT_B, &material);
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn a_certificate_oidc_provider_does_not_accept_is_unavailable_as_client_rejected_at_either_idp() {
    let server = mtls_server();
    let token = server.provider.caller_token();
    let good_a = ("INTROSPECTION", "tls_client_auth", TLS_AT_A, &server.pki.ca_signed);
    let good_b = ("BACKEND", "self_signed_tls_client_auth", SELF_SIGNED_AT_B, &server.pki.self_signed);
    let key_line = |key: &std::path::Path| {
        let pem = std::fs::read_to_string(key).expect("a client key");
        pem.lines().nth(1).expect("a key line").to_string()
    };
    // At A, the CA-signed certificate's subject on a certificate the CA never signed.
    let impostor = server.env([("INTROSPECTION", "tls_client_auth", TLS_AT_A, &server.pki.impostor), good_b]);
    assert_client_rejected(&impostor, &token, "introspection_client_rejected", &key_line(&server.pki.impostor.1));
    // At B, a valid certificate, but not the one registered for the self-signed client.
    let unregistered =
        server.env([good_a, ("BACKEND", "self_signed_tls_client_auth", SELF_SIGNED_AT_B, &server.pki.ca_signed)]);
    assert_client_rejected(&unregistered, &token, "backend_token_client_rejected", &key_line(&server.pki.ca_signed.1));
}

/// `openssl s_server` requiring a client certificate the test CA signed (`-Verify`, and
/// `-verify_return_error`, without which it only reports a bad one), answering
/// every request with its status page: a TLS terminator that refuses a client in the handshake.
struct VerifyingTlsServer {
    child: std::process::Child,
    url: String,
}

impl VerifyingTlsServer {
    fn start(pki: &interop::MtlsPki) -> VerifyingTlsServer {
        let port = tokenbridge_tests::http_server::free_port();
        let child = std::process::Command::new("openssl")
            .args([
                "s_server",
                "-quiet",
                "-www",
                "-Verify",
                "1",
                "-verify_return_error",
                "-accept",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("-cert")
            .arg(&pki.server.0)
            .arg("-key")
            .arg(&pki.server.1)
            .arg("-CAfile")
            .arg(&pki.ca)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("openssl s_server");
        let server = VerifyingTlsServer { child, url: format!("https://127.0.0.1:{port}/token") };
        assert!(tokenbridge_tests::harness::wait_for_port(port, Duration::from_secs(5)), "s_server listens");
        server
    }
}

impl Drop for VerifyingTlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[cfg_attr(not(interop), ignore = "needs Node.js 20.12+ and `npm ci` in tests/interop")]
fn a_certificate_refused_in_the_tls_handshake_is_client_rejected_not_an_outage() {
    let server = mtls_server();
    let terminator = VerifyingTlsServer::start(&server.pki);
    let token = server.provider.caller_token();
    let at_terminator = |pair| {
        let env = server.env([
            ("INTROSPECTION", "tls_client_auth", TLS_AT_A, &server.pki.ca_signed),
            ("BACKEND", "tls_client_auth", TLS_AT_B, pair),
        ]);
        with(env, &[("TOKENBRIDGE_BACKEND_TOKEN_URL", &terminator.url)])
    };
    let impostor_key = std::fs::read_to_string(&server.pki.impostor.1).expect("the impostor's key");
    let key_line = impostor_key.lines().nth(1).expect("a key line").to_string();
    assert_client_rejected(&at_terminator(&server.pki.impostor), &token, "backend_token_client_rejected", &key_line);
    // The CA's certificate gets through the handshake; s_server answers GETs only, so the POST
    // then waits for an answer until tokenbridge's timeout.
    let env = with(at_terminator(&server.pki.ca_signed), &[("TOKENBRIDGE_TIMEOUT_MS", "1000")]);
    let (_, mut tb) = both(&env).remove(0);
    let answer = tb.ask(&token);
    assert_eq!(
        (answer["error"].as_str(), answer["cause"].as_str()),
        (Some("unavailable"), Some("backend_token_timeout"))
    );
}
