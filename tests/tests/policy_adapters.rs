//! Route policies fed by each adapter's route information: OCI USER_DEFINED `method`/`path`
//! arguments (stdio and the Fn socket), and forward-auth's original method and URI over HTTP.
//! Plus JWT issuers through the binary: readiness and check-config's account of the policy.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokenbridge_tests::fake_idp::unix_now;
use tokenbridge_tests::fn_agent::{FnAgent, Framing};
use tokenbridge_tests::http_server::{HttpServer, raw_exchange};
use tokenbridge_tests::jwt_keys::{FakeIssuer, SigningKey};
use tokenbridge_tests::{IdpPair, harness, stdio};

const POLICY: &str = r#"{"routes": [
    {"method": "GET",  "path": "/orders/*", "scopes": ["orders.read"]},
    {"method": "POST", "path": "/orders",   "scopes": ["orders.write"]}
]}"#;

fn env(idp: &IdpPair) -> Vec<(String, String)> {
    let mut env = idp.env();
    env.push(("TOKENBRIDGE_POLICY".into(), POLICY.into()));
    env
}

fn routed(token: &str, method: &str, path: &str) -> String {
    json!({"type": "USER_DEFINED", "data": {"token": format!("Bearer {token}"), "method": method, "path": path}})
        .to_string()
}

fn challenge(answer: &Value) -> &str {
    answer["wwwAuthenticate"].as_str().unwrap_or("")
}

#[test]
fn stdio_applies_the_route_of_user_defined_arguments() {
    let idp = IdpPair::start();
    let reader = idp.a.issue("alice", "orders.read", 600);
    let input = [
        routed(&reader, "GET", "/orders/7"),
        routed(&reader, "POST", "/orders"),
        routed(&reader, "GET", "/invoices/1"),
        json!({"type": "TOKEN", "token": format!("Bearer {reader}")}).to_string(),
    ]
    .join("\n");
    let run = stdio(&env(&idp), &input);
    assert_eq!(run.answers[0]["active"], true, "{}", run.stdout);
    assert_eq!(
        challenge(&run.answers[1]),
        "Bearer realm=\"tokenbridge\", error=\"insufficient_scope\", scope=\"orders.write\""
    );
    assert_eq!(
        challenge(&run.answers[2]),
        "Bearer realm=\"tokenbridge\", error=\"insufficient_scope\"",
        "unmatched → deny"
    );
    assert_eq!(
        challenge(&run.answers[3]),
        "Bearer realm=\"tokenbridge\", error=\"insufficient_scope\"",
        "no route → deny"
    );
    assert_eq!(idp.a.introspections(), 1, "denied routes cost no introspection");
}

#[test]
fn the_fn_socket_applies_the_route_of_user_defined_arguments() {
    let idp = IdpPair::start();
    let writer = idp.a.issue("bob", "orders.write", 600);
    let mut agent = FnAgent::start(&env(&idp));
    let post = agent.call(routed(&writer, "POST", "/orders").as_bytes(), Framing::Chunked, Duration::from_secs(30));
    assert_eq!(post.json()["active"], true);
    let get = agent.call(routed(&writer, "GET", "/orders/1").as_bytes(), Framing::Chunked, Duration::from_secs(30));
    assert_eq!(get.status, 200);
    assert_eq!(get.json()["active"], false);
}

#[test]
fn forward_auth_applies_the_original_method_and_uri() {
    let idp = IdpPair::start();
    let reader = idp.a.issue("alice", "orders.read", 600);
    let server = HttpServer::start(&env(&idp));
    let ask = |method: &str, uri: &str| {
        let request = format!(
            "GET /auth HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {reader}\r\nX-Forwarded-Method: {method}\r\nX-Forwarded-Uri: {uri}\r\n\r\n"
        );
        raw_exchange(&server.addr, request.as_bytes()).unwrap().0
    };
    assert_eq!(ask("GET", "/orders/7?expand=items"), 200);
    assert_eq!(ask("POST", "/orders"), 403);
    assert_eq!(ask("GET", "/elsewhere"), 403);
}

#[test]
fn check_config_explains_the_policy_it_loaded() {
    let idp = IdpPair::start();
    let run = harness::run(&["check-config"], &env(&idp), "");
    assert!(run.success, "{}", run.stdout);
    assert!(run.stdout.contains("GET /orders/* → scopes all of [orders.read]"), "{}", run.stdout);
    assert!(run.stdout.contains("anything else → deny"), "{}", run.stdout);
    let broken = harness::run(
        &["check-config"],
        &[env(&idp), vec![("TOKENBRIDGE_POLICY".into(), "{\"routes\":[{\"path\":\"x\"}]}".into())]].concat(),
        "",
    );
    assert!(!broken.success);
    assert!(broken.stdout.contains("must start with /"), "{}", broken.stdout);
}

#[test]
fn jwt_mode_through_the_binary_is_ready_once_the_keys_are_loaded() {
    let idp = IdpPair::start();
    let key = SigningKey::ec("k", Algorithm::ES256);
    let issuer = FakeIssuer::start(&[&key]);
    let mut env = idp.env();
    env.extend([
        ("TOKENBRIDGE_MODE".to_string(), "jwt".to_string()),
        ("TOKENBRIDGE_ISSUER".to_string(), issuer.url.clone()),
        ("TOKENBRIDGE_AUDIENCE".to_string(), "api".to_string()),
    ]);
    let server = HttpServer::start(&env);
    let ready = || raw_exchange(&server.addr, b"GET /readyz HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap().0;
    let started = std::time::Instant::now();
    while ready() != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never ready: {} jwks requests, {} discovery\n{}",
            issuer.jwks_requests(),
            issuer.discovery_requests(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(issuer.jwks_requests(), 1, "keys loaded at start-up, before any request");
    let token = key.sign(&issuer.claims("api", "alice", "", unix_now()));
    let request = format!("GET /auth HTTP/1.1\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n");
    assert_eq!(raw_exchange(&server.addr, request.as_bytes()).unwrap().0, 200);
    assert_eq!((issuer.jwks_requests(), idp.a.introspections()), (1, 0));
}

#[test]
fn jwt_mode_is_not_ready_while_the_jwks_is_unreachable() {
    let idp = IdpPair::start();
    let key = SigningKey::ec("k", Algorithm::ES256);
    let issuer = FakeIssuer::start(&[&key]);
    issuer.set_down(true);
    let mut env = idp.env();
    env.extend([
        ("TOKENBRIDGE_ISSUER".to_string(), issuer.url.clone()),
        ("TOKENBRIDGE_JWKS_URL".to_string(), issuer.jwks_url()),
        ("TOKENBRIDGE_AUDIENCE".to_string(), "api".to_string()),
    ]);
    let server = HttpServer::start(&env);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(raw_exchange(&server.addr, b"GET /readyz HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap().0, 503);
    assert_eq!(raw_exchange(&server.addr, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap().0, 200);
}
