//! Nothing leaks: every adapter is driven through allow, deny, insufficient scope, an IdP outage,
//! a bad configuration and bad input with distinctive client secrets and caller tokens, and every
//! captured output — answers, error bodies, Lambda errors, logs — is scanned for them. Backend
//! tokens may appear only where the contract puts them (the allow's context, a Lambda route
//! answer's context, or `Authorization`).

use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokenbridge_tests::fake_idp::{A_CLIENT, B_CLIENT, ClientAuth, ClientKey, unix_now};
use tokenbridge_tests::fn_agent::{FnAgent, Framing};
use tokenbridge_tests::http_server::{HttpServer, raw_exchange};
use tokenbridge_tests::jwt_keys::{SigningKey, access_claims};
use tokenbridge_tests::lambda_runtime_api::{Answer, FakeRuntimeApi};
use tokenbridge_tests::{Fault, IdpPair, stdio, token_payload};

const ARN: &str = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/orders/7";

/// The caller tokens of a scenario, and the environment with a scope requirement.
struct Scenario {
    idp: IdpPair,
    env: Vec<(String, String)>,
    good: String,
    weak: String,
    forged: String,
    /// Active, but only ever sent while an IdP is down.
    fresh: String,
}

impl Scenario {
    fn new() -> Self {
        let idp = IdpPair::start();
        let good = idp.a.issue("alice", "orders.read", 600);
        let weak = idp.a.issue("bob", "other", 600);
        let fresh = idp.a.issue("carol", "orders.read", 600);
        let mut env = idp.env();
        env.push(("TOKENBRIDGE_REQUIRED_SCOPES".into(), "orders.read".into()));
        Scenario { idp, env, good, weak, forged: "forged-caller-token-7f3a9c".into(), fresh }
    }

    /// The tokens sent while the IdPs are healthy.
    fn tokens(&self) -> [&str; 3] {
        [&self.good, &self.weak, &self.forged]
    }

    /// Panics if `text` holds a caller token or a client secret.
    fn scan(&self, place: &str, text: &str) {
        for secret in self.tokens().into_iter().chain([self.fresh.as_str(), A_CLIENT.1, B_CLIENT.1]) {
            assert!(!text.contains(secret), "{place} leaks {secret:?}:\n{text}");
        }
        // Percent-encoded, as in a form or a Basic header.
        assert!(!text.contains("s3cr%25t"), "{place} leaks the encoded secret");
    }
}

/// The principals of the scenario's tokens, and the path its HTTP requests name.
const PRINCIPALS: [&str; 3] = ["alice", "bob", "carol"];
const PATH: &str = "/orders/path-that-must-not-be-a-label";

/// Panics if the metrics `text` holds a token, a secret, a principal, a path or a backend token:
/// labels are closed sets chosen by tokenbridge, never something a request brought.
fn scan_metrics(s: &Scenario, place: &str, text: &str) {
    s.scan(place, text);
    for word in PRINCIPALS.iter().chain([&"path-that-must-not-be-a-label", &"backend-", &"caller-app"]) {
        assert!(!text.contains(word), "{place} holds {word:?}:\n{text}");
    }
}

fn backend_tokens_outside(text: &str, allowed: &[&str]) -> bool {
    let mut rest = text.to_string();
    for a in allowed {
        rest = rest.replace(a, "");
    }
    rest.contains("backend-")
}

#[test]
fn stdio_writes_no_secret_anywhere() {
    let s = Scenario::new();
    let input = [
        token_payload(&s.good),
        token_payload(&s.weak),
        token_payload(&s.forged),
        format!("{{\"type\":\"TOKEN\",\"token\":\"Bearer {}\"", s.forged),
        json!({"type": "WHAT", "token": format!("Bearer {}", s.good)}).to_string(),
    ]
    .join("\n");
    let run = stdio(&s.env, &input);
    s.scan("stdio stdout", &run.stdout);
    s.scan("stdio stderr", &run.stderr);
    let backend = run.answers[0]["context"]["back_end_token"].as_str().unwrap().to_string();
    assert!(!run.stderr.contains(backend.trim_start_matches("Bearer ")), "the log holds the backend token");
    assert!(!backend_tokens_outside(&run.stdout, &[&backend]));

    s.idp.a.set_introspect_fault(Some(Fault::Status(500, format!("{{\"echo\":\"{}\"}}", s.good))));
    let outage = stdio(&s.env, &token_payload(&s.good));
    s.scan("stdio outage", &(outage.stdout.clone() + &outage.stderr));
    let bad_config =
        stdio(&[("TOKENBRIDGE_INTROSPECTION_CLIENT_SECRET".into(), A_CLIENT.1.into())], &token_payload(&s.good));
    s.scan("stdio bad configuration", &(bad_config.stdout + &bad_config.stderr));
    for (place, run) in [("stdio summary", &run), ("stdio outage summary", &outage)] {
        let summary = run.summary.as_ref().unwrap_or_else(|| panic!("{place} is missing:\n{}", run.stderr));
        assert!(summary["counters"].as_array().is_some_and(|c| !c.is_empty()), "{summary}");
        scan_metrics(&s, place, &summary.to_string());
    }
}

#[test]
fn the_oci_function_writes_no_secret_anywhere() {
    let s = Scenario::new();
    let mut agent = FnAgent::start(&s.env);
    let mut bodies = String::new();
    for token in s.tokens() {
        let reply = agent.call(&token_payload(token).into_bytes(), Framing::Chunked, Duration::from_secs(30));
        bodies.push_str(&without_backend_token(&String::from_utf8_lossy(&reply.body)));
    }
    // The backend token is cached by now; the outage is at IdP A.
    s.idp.a.set_introspect_fault(Some(Fault::Status(503, String::new())));
    let outage = agent.call(&token_payload(&s.fresh).into_bytes(), Framing::Chunked, Duration::from_secs(30));
    assert_eq!(outage.status, 502, "{:?}", String::from_utf8_lossy(&outage.body));
    bodies.push_str(&String::from_utf8_lossy(&outage.body));
    let broken = agent.call(
        format!("{{\"type\":\"TOKEN\",\"token\":\"Bearer {}", s.good).as_bytes(),
        Framing::ContentLength,
        Duration::from_secs(30),
    );
    bodies.push_str(&String::from_utf8_lossy(&broken.body));
    let log = agent.stop();
    s.scan("OCI bodies", &bodies);
    assert!(!bodies.contains("backend-"), "a backend token outside the context:\n{bodies}");
    s.scan("OCI stderr", &log);
    assert!(!log.contains("backend-"), "the log holds a backend token");
}

/// An OCI answer without `context.back_end_token`, the one place a backend token belongs; a
/// body that is not JSON is kept whole.
fn without_backend_token(body: &str) -> String {
    let Ok(mut answer) = serde_json::from_str::<Value>(body) else { return body.to_string() };
    if let Some(context) = answer.get_mut("context").and_then(Value::as_object_mut) {
        context.remove("back_end_token");
    }
    answer.to_string()
}

#[test]
fn the_http_server_writes_no_secret_anywhere() {
    let s = Scenario::new();
    let server = HttpServer::start(&s.env);
    let mut answers = String::new();
    for token in s.tokens() {
        let request = format!(
            "GET /auth HTTP/1.1\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nX-Forwarded-Method: GET\r\n\
             X-Forwarded-Uri: {PATH}\r\n\r\n"
        );
        let (status, headers, body) = raw_exchange(&server.addr, request.as_bytes()).unwrap();
        let backend = headers.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.clone());
        assert_eq!(backend.is_some(), status == 200);
        answers.push_str(&body);
        for (k, v) in headers.iter().filter(|(k, _)| k != "authorization") {
            answers.push_str(&format!("{k}: {v}\n"));
        }
    }
    // A truncated document that still holds the whole forged token.
    let body = format!("{{\"type\":\"TOKEN\",\"token\":\"Bearer {}", s.forged);
    let post = format!("POST /authorize HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    let (status, _, refusal) =
        raw_exchange(&server.addr, post.as_bytes()).expect("an answer to the truncated document");
    assert_eq!(status, 400, "{refusal}");
    answers.push_str(&refusal);
    let (status, _, metrics) =
        raw_exchange(&server.addr, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("tokenbridge_decisions_total{outcome=\"allow\""), "{metrics}");
    scan_metrics(&s, "HTTP /metrics", &metrics);
    let (_, log) = server.terminate();
    s.scan("HTTP answers", &answers);
    assert!(!answers.contains("backend-"), "a backend token outside the Authorization header");
    s.scan("HTTP log", &log);
}

#[test]
fn the_lambda_function_writes_no_secret_anywhere() {
    let s = Scenario::new();
    let api = FakeRuntimeApi::start();
    let function = api.start_function(&s.env);
    let mut answers = String::new();
    let event =
        |token: &str| json!({"type": "TOKEN", "authorizationToken": format!("Bearer {token}"), "methodArn": ARN});
    for token in s.tokens() {
        match api.invoke(&event(token), Duration::from_secs(20)) {
            Answer::Response(v) => answers.push_str(&without_backend_token(&v.to_string())),
            Answer::Error(kind, message) => answers.push_str(&format!("{kind}: {message}\n")),
        }
    }
    s.idp.a.set_introspect_fault(Some(Fault::Status(502, String::new())));
    match api.invoke(&event(&s.fresh), Duration::from_secs(20)) {
        Answer::Error(kind, message) if kind == "Unavailable" => {
            assert!(message.contains("introspection_bad_status"), "{message}");
            answers.push_str(&message);
        }
        other => panic!("an introspection outage must be Unavailable: {other:?}"),
    }
    // SIGTERM, as Lambda sends before a shutdown: the final EMF flush.
    let (_, log) = function.terminate();
    s.scan("Lambda answers", &answers);
    assert!(!answers.contains("backend-"), "a backend token outside the context");
    s.scan("Lambda stderr", &log);
    let emf: Vec<&str> = log.lines().filter(|l| l.contains("\"_aws\"")).collect();
    assert!(emf.iter().any(|l| l.contains("\"unavailable\"")), "the EMF lines count the outage:\n{log}");
    scan_metrics(&s, "Lambda EMF lines", &emf.join("\n"));
}

/// With route policies a REST answer covers every route, and an insufficient-scope Deny carries
/// the backend token for the routes it allows: in its context's `back_end_token`, nowhere else,
/// and only when some route is allowed.
#[test]
fn lambda_route_answers_carry_a_backend_token_only_in_their_context() {
    let s = Scenario::new();
    let policy = r#"{"routes": [{"method": "GET", "path": "/orders/*", "scopes": ["orders.read"]},
                                {"method": "DELETE", "path": "/orders/*", "scopes": ["orders.admin"]}]}"#;
    let api = FakeRuntimeApi::start();
    // The policy instead of the scenario's one scope requirement (both are a configuration error).
    let mut env: Vec<(String, String)> =
        s.env.iter().filter(|(k, _)| k != "TOKENBRIDGE_REQUIRED_SCOPES").cloned().collect();
    env.push(("TOKENBRIDGE_POLICY".into(), policy.into()));
    let function = api.start_function(&env);
    let event = |token: &str, verb: &str| json!({"type": "TOKEN", "authorizationToken": format!("Bearer {token}"), "methodArn": ARN.replace("/GET/", &format!("/{verb}/"))});
    let mut answers = String::new();
    for (token, verb, carries) in [(&s.good, "DELETE", true), (&s.good, "GET", true), (&s.weak, "GET", false)] {
        let Answer::Response(answer) = api.invoke(&event(token, verb), Duration::from_secs(20)) else {
            panic!("a policy expected for {verb}")
        };
        let token = answer["context"]["back_end_token"].as_str();
        assert_eq!(token.is_some_and(|t| t.starts_with("Bearer backend-")), carries, "{verb}: {answer}");
        answers.push_str(&without_backend_token(&answer.to_string()));
    }
    let log = function.stop();
    s.scan("Lambda route answers", &answers);
    assert!(!answers.contains("backend-"), "a backend token outside the context: {answers}");
    s.scan("Lambda stderr", &log);
}

/// With `private_key_jwt` at both IdPs, neither private key nor any client assertion reaches an
/// answer, a log line or check-config: on an allow, on a refusal of the assertion (which makes
/// tokenbridge fetch the key again), and in the configuration report.
#[test]
fn private_key_jwt_writes_no_key_and_no_assertion_anywhere() {
    let s = Scenario::new();
    let (a_key, b_key) = (ClientKey::ec(), ClientKey::ec());
    s.idp.a.add_client_with(A_CLIENT.0, ClientAuth::PrivateKeyJwt(a_key.public.clone()));
    s.idp.b.add_client_with(B_CLIENT.0, ClientAuth::PrivateKeyJwt(b_key.public.clone()));
    let mut env: Vec<(String, String)> =
        s.env.iter().filter(|(k, _)| !k.ends_with("_CLIENT_SECRET")).cloned().collect();
    for (name, value) in [
        ("TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH", "private_key_jwt"),
        ("TOKENBRIDGE_INTROSPECTION_CLIENT_KEY", a_key.pem.as_str()),
        ("TOKENBRIDGE_BACKEND_CLIENT_AUTH", "private_key_jwt"),
        ("TOKENBRIDGE_BACKEND_CLIENT_KEY", b_key.pem.as_str()),
    ] {
        env.push((name.into(), value.into()));
    }
    let scan = |place: &str, text: &str| {
        s.scan(place, text);
        assert!(!text.contains("PRIVATE KEY"), "{place} holds a PEM header:\n{text}");
        for key in [&a_key.pem, &b_key.pem] {
            for line in key.lines().filter(|l| !l.starts_with("-----") && l.len() > 16) {
                assert!(!text.contains(line), "{place} holds private key material:\n{text}");
            }
        }
        // Every client assertion is a JWT, and nothing else here is: its header starts `eyJ`.
        assert!(!text.contains("eyJ"), "{place} holds a JWT (a client assertion?):\n{text}");
    };

    let run = stdio(&env, &[token_payload(&s.good), token_payload(&s.forged)].join("\n"));
    assert_eq!(run.answers[0]["active"], true, "{}", run.stdout);
    assert_eq!(s.idp.a.assertions().len() + s.idp.b.assertions().len(), 3, "two introspections, one token");
    scan("private_key_jwt stdio", &(run.stdout + &run.stderr));

    // IdP A no longer knows the key: its assertion is refused, the key fetched again, no decision.
    s.idp.a.add_client_with(A_CLIENT.0, ClientAuth::PrivateKeyJwt(ClientKey::ec().public));
    let refused = stdio(&env, &token_payload(&s.fresh));
    assert_eq!(refused.answers[0]["error"], "unavailable", "{}", refused.stdout);
    scan("private_key_jwt refused", &(refused.stdout + &refused.stderr));

    let report = tokenbridge_tests::harness::run(&["check-config"], &env, "");
    scan("private_key_jwt check-config", &(report.stdout + &report.stderr));
}

#[test]
fn token_exchange_writes_no_caller_token_anywhere_even_when_idp_b_echoes_it() {
    // `fresh` is refused by IdP B here, not sent during an outage.
    let mut s = Scenario::new();
    s.env.push(("TOKENBRIDGE_BACKEND_GRANT".into(), "token_exchange".into()));
    s.idp.b.refuse_subject(&s.fresh, "invalid_grant");
    let run = stdio(&s.env, &[token_payload(&s.good), token_payload(&s.fresh)].join("\n"));
    assert_eq!(run.answers[0]["active"], true, "{}", run.stdout);
    assert_eq!(run.answers[1]["active"], false, "{}", run.stdout);
    assert!(run.stderr.contains("backend_refused_caller_token"), "{}", run.stderr);
    s.scan("exchange stdout", &run.stdout);
    s.scan("exchange stderr", &run.stderr);
    let backend = run.answers[0]["context"]["back_end_token"].as_str().unwrap().to_string();
    assert!(!run.stderr.contains(backend.trim_start_matches("Bearer ")), "the log holds the exchanged token");
    // IdP B failing with the caller's token in its error body.
    let echo = format!(r#"{{"error":"invalid_target","error_description":"{}"}}"#, s.good);
    s.idp.b.set_token_fault(Some(Fault::Status(400, echo)));
    let outage = stdio(&s.env, &token_payload(&s.good));
    assert_eq!(outage.answers[0]["error"], "unavailable", "{}", outage.stdout);
    s.scan("exchange failure", &(outage.stdout + &outage.stderr));
}

/// With `tls_client_auth` at IdP B, neither the key nor any PEM reaches an answer, a log line or
/// check-config: with a key that does not fit the certificate (Unavailable, and a problem in
/// check-config), and with the right one (check-config then names the certificate by subject and
/// fingerprint). Nothing listens at the https endpoint: the handshake is not what is tested here.
#[test]
fn tls_client_auth_writes_no_key_and_no_pem_anywhere() {
    let s = Scenario::new();
    let pki = tokenbridge_tests::interop::MtlsPki::make();
    let read = |path: &std::path::Path| std::fs::read_to_string(path).expect("a test certificate or key");
    let (cert, key, other_key) = (read(&pki.ca_signed.0), read(&pki.ca_signed.1), read(&pki.impostor.1));
    let env_with_key = |key: &str| {
        let mut env: Vec<(String, String)> = s
            .env
            .iter()
            .filter(|(k, _)| k != "TOKENBRIDGE_BACKEND_CLIENT_SECRET" && k != "TOKENBRIDGE_BACKEND_TOKEN_URL")
            .cloned()
            .collect();
        for (name, value) in [
            ("TOKENBRIDGE_BACKEND_TOKEN_URL", "https://127.0.0.1:9/token"),
            ("TOKENBRIDGE_BACKEND_CLIENT_AUTH", "tls_client_auth"),
            ("TOKENBRIDGE_BACKEND_CLIENT_CERT", cert.as_str()),
            ("TOKENBRIDGE_BACKEND_CLIENT_KEY", key),
        ] {
            env.push((name.into(), value.into()));
        }
        env
    };
    let scan = |place: &str, text: &str| {
        s.scan(place, text);
        assert!(!text.contains("-----BEGIN"), "{place} holds a PEM:\n{text}");
        for pem in [&cert, &key, &other_key] {
            for line in pem.lines().filter(|l| !l.starts_with("-----") && l.len() > 16) {
                assert!(!text.contains(line), "{place} holds certificate or key material:\n{text}");
            }
        }
    };

    let mismatched = env_with_key(&other_key);
    let run = stdio(&mismatched, &token_payload(&s.good));
    assert_eq!(run.answers[0]["error"], "unavailable", "{}", run.stdout);
    assert!(run.stderr.contains("TOKENBRIDGE_BACKEND_CLIENT_CERT"), "the log names the setting:\n{}", run.stderr);
    scan("tls_client_auth with a mismatched key, stdio", &(run.stdout + &run.stderr));
    let report = tokenbridge_tests::harness::run(&["check-config"], &mismatched, "");
    assert!(report.stdout.contains("the key does not belong to the certificate"), "{}", report.stdout);
    scan("tls_client_auth with a mismatched key, check-config", &(report.stdout + &report.stderr));

    let matching = env_with_key(&key);
    let run = stdio(&matching, &token_payload(&s.good));
    assert_eq!(run.answers[0]["error"], "unavailable", "{}", run.stdout);
    scan("tls_client_auth, stdio", &(run.stdout + &run.stderr));
    let report = tokenbridge_tests::harness::run(&["check-config"], &matching, "");
    assert!(report.stdout.contains("TOKENBRIDGE_BACKEND_CLIENT_AUTH = tls_client_auth\n"), "{}", report.stdout);
    assert!(
        report.stdout.contains("TOKENBRIDGE_BACKEND_CLIENT_CERT: subject CN=tokenbridge-mtls, SHA-256 "),
        "{}",
        report.stdout
    );
    scan("tls_client_auth check-config", &(report.stdout + &report.stderr));
}

/// An identity domain's JWKS read with a bearer token from its token endpoint, by a client of its
/// own: neither the token nor that client's secret reaches an answer, a log line or check-config
/// — when the keys load, when the token endpoint echoes the secret in its refusal, and when the
/// JWKS echoes an earlier token in its own.
#[test]
fn an_authenticated_jwks_fetch_writes_no_bearer_token_and_no_client_secret_anywhere() {
    const ISSUER: &str = "https://identity.oraclecloud.com/";
    const SCOPE: &str = "urn:opc:idm:__myscopes__";
    const JWKS_SECRET: &str = "jwks-s3cret-4b1e";
    let s = Scenario::new();
    s.idp.a.add_client("jwks-reader", JWKS_SECRET);
    let key = SigningKey::ec("k1", Algorithm::ES256);
    s.idp.a.serve_jwks(&[&key.jwk], SCOPE);
    let mut env = s.env.clone();
    for (name, value) in [
        ("TOKENBRIDGE_ISSUER", ISSUER.to_string()),
        ("TOKENBRIDGE_AUDIENCE", "api".into()),
        ("TOKENBRIDGE_JWKS_URL", s.idp.a.jwks_url()),
        ("TOKENBRIDGE_JWKS_TOKEN_URL", s.idp.a.token_url()),
        ("TOKENBRIDGE_JWKS_SCOPE", SCOPE.into()),
        ("TOKENBRIDGE_JWKS_CLIENT_ID", "jwks-reader".into()),
        ("TOKENBRIDGE_JWKS_CLIENT_SECRET", JWKS_SECRET.into()),
    ] {
        env.push((name.into(), value));
    }
    let jwt = key.sign(&access_claims(ISSUER, "api", "alice", "orders.read", unix_now()));
    let scan = |place: &str, text: &str| {
        s.scan(place, text);
        assert!(!text.contains(JWKS_SECRET), "{place} leaks the JWKS client's secret:\n{text}");
        assert!(!text.contains("jwks-s3cret"), "{place} leaks part of the JWKS client's secret:\n{text}");
        for bearer in s.idp.a.jwks_bearers() {
            assert!(!text.contains(&bearer), "{place} leaks the JWKS bearer token {bearer:?}:\n{text}");
        }
        assert!(!text.contains("backend-"), "{place} holds an issued token:\n{text}");
    };

    let run = stdio(&env, &[token_payload(&jwt), token_payload(&s.forged)].join("\n"));
    assert_eq!(run.answers[0]["active"], true, "{}", run.stdout);
    assert_eq!(s.idp.a.jwks_bearers().len(), 1, "the keys were read with a bearer token");
    let backend = run.answers[0]["context"]["back_end_token"].as_str().unwrap_or_default().to_string();
    scan("authenticated JWKS, stdio", &(run.stdout.replace(&backend, "") + &run.stderr));
    let report = tokenbridge_tests::harness::run(&["check-config"], &env, "");
    assert!(report.stdout.contains("configuration OK"), "{}", report.stdout);
    assert!(report.stdout.contains("TOKENBRIDGE_JWKS_CLIENT_SECRET = <redacted literal>"), "{}", report.stdout);
    scan("authenticated JWKS, check-config", &(report.stdout + &report.stderr));

    let echo = format!(r#"{{"error":"invalid_client","error_description":"{JWKS_SECRET}"}}"#);
    s.idp.a.set_token_fault(Some(Fault::Status(401, echo)));
    let refused = stdio(&env, &token_payload(&jwt));
    assert_eq!(refused.answers[0]["error"], "unavailable", "{}", refused.stdout);
    assert!(refused.stderr.contains("jwks_client_rejected"), "{}", refused.stderr);
    scan("JWKS client refused, stdio", &(refused.stdout + &refused.stderr));
    let report = tokenbridge_tests::harness::run(&["check-config"], &env, "");
    assert!(report.stdout.contains("rejected our client credentials"), "{}", report.stdout);
    scan("JWKS client refused, check-config", &(report.stdout + &report.stderr));

    s.idp.a.set_token_fault(None);
    let earlier = s.idp.a.jwks_bearers().concat();
    s.idp.a.set_jwks_fault(Some(Fault::Status(401, format!(r#"{{"error":"invalid_token","token":"{earlier}"}}"#))));
    let refused = stdio(&env, &token_payload(&jwt));
    assert_eq!(refused.answers[0]["error"], "unavailable", "{}", refused.stdout);
    scan("JWKS refusing the token, stdio", &(refused.stdout + &refused.stderr));
}
