//! Nothing leaks: every adapter is driven through allow, deny, insufficient scope, an IdP outage,
//! a bad configuration and bad input with distinctive client secrets and caller tokens, and every
//! captured output — answers, error bodies, Lambda errors, logs — is scanned for them. Backend
//! tokens may appear only where the contract puts them (the allow's context or `Authorization`).

use std::time::Duration;

use serde_json::{Value, json};
use tokenbridge_tests::fake_idp::{A_CLIENT, B_CLIENT};
use tokenbridge_tests::fn_agent::{FnAgent, Framing};
use tokenbridge_tests::http_server::{HttpServer, raw_exchange};
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
}

impl Scenario {
    fn new() -> Self {
        let idp = IdpPair::start();
        let good = idp.a.issue("alice", "orders.read", 600);
        let weak = idp.a.issue("bob", "other", 600);
        let mut env = idp.env();
        env.push(("TOKENBRIDGE_REQUIRED_SCOPES".into(), "orders.read".into()));
        Scenario { idp, env, good, weak, forged: "forged-caller-token-7f3a9c".into() }
    }

    fn tokens(&self) -> [&str; 3] {
        [&self.good, &self.weak, &self.forged]
    }

    /// Panics if `text` holds a caller token or a client secret (or, outside `allowed`, a
    /// backend token).
    fn scan(&self, place: &str, text: &str) {
        for secret in self.tokens().into_iter().chain([A_CLIENT.1, B_CLIENT.1]) {
            assert!(!text.contains(secret), "{place} leaks {secret:?}:\n{text}");
        }
        // Percent-encoded, as in a form or a Basic header.
        assert!(!text.contains("s3cr%25t"), "{place} leaks the encoded secret");
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
    s.scan("stdio outage", &(outage.stdout + &outage.stderr));
    let bad_config =
        stdio(&[("TOKENBRIDGE_INTROSPECTION_CLIENT_SECRET".into(), A_CLIENT.1.into())], &token_payload(&s.good));
    s.scan("stdio bad configuration", &(bad_config.stdout + &bad_config.stderr));
}

#[test]
fn the_oci_function_writes_no_secret_anywhere() {
    let s = Scenario::new();
    let mut agent = FnAgent::start(&s.env);
    let mut bodies = String::new();
    for token in s.tokens() {
        let reply = agent.call(&token_payload(token).into_bytes(), Framing::Chunked, Duration::from_secs(30));
        bodies.push_str(&String::from_utf8_lossy(&reply.body));
    }
    s.idp.b.set_token_fault(Some(Fault::Status(503, String::new())));
    let fresh = s.idp.a.issue("carol", "orders.read", 600);
    let outage = agent.call(&token_payload(&fresh).into_bytes(), Framing::Chunked, Duration::from_secs(30));
    let outage = String::from_utf8_lossy(&outage.body).to_string();
    assert!(!outage.contains(&fresh));
    let broken = agent.call(
        format!("{{\"type\":\"TOKEN\",\"token\":\"Bearer {}", s.good).as_bytes(),
        Framing::ContentLength,
        Duration::from_secs(30),
    );
    bodies.push_str(&String::from_utf8_lossy(&broken.body));
    let log = agent.stop();
    s.scan("OCI bodies", &bodies);
    s.scan("OCI stderr", &log);
    assert!(!log.contains("backend-"), "the log holds a backend token");
}

#[test]
fn the_http_server_writes_no_secret_anywhere() {
    let s = Scenario::new();
    let server = HttpServer::start(&s.env);
    let mut answers = String::new();
    for token in s.tokens() {
        let request = format!("GET /auth HTTP/1.1\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n");
        let (status, headers, body) = raw_exchange(&server.addr, request.as_bytes()).unwrap();
        let backend = headers.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.clone());
        assert_eq!(backend.is_some(), status == 200);
        answers.push_str(&body);
        for (k, v) in headers.iter().filter(|(k, _)| k != "authorization") {
            answers.push_str(&format!("{k}: {v}\n"));
        }
    }
    let post = format!(
        "POST /authorize HTTP/1.1\r\nConnection: close\r\nContent-Length: 40\r\n\r\n{{\"type\":\"TOKEN\",\"token\":\"Bearer {}",
        s.forged
    );
    answers.push_str(&raw_exchange(&server.addr, post.as_bytes()).map(|r| r.2).unwrap_or_default());
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
            Answer::Response(v) => {
                let mut v = v;
                if let Some(context) = v.get_mut("context").and_then(Value::as_object_mut) {
                    context.remove("back_end_token");
                }
                answers.push_str(&v.to_string());
            }
            Answer::Error(kind, message) => answers.push_str(&format!("{kind}: {message}\n")),
        }
    }
    s.idp.a.set_introspect_fault(Some(Fault::Status(502, String::new())));
    let fresh = s.idp.a.issue("carol", "orders.read", 600);
    if let Answer::Error(_, message) = api.invoke(&event(&fresh), Duration::from_secs(20)) {
        assert!(!message.contains(&fresh));
        answers.push_str(&message);
    }
    let log = function.stop();
    s.scan("Lambda answers", &answers);
    assert!(!answers.contains("backend-"), "a backend token outside the context");
    s.scan("Lambda stderr", &log);
}
