//! The built binary as an OCI Function, driven by a harness that does what the Fn agent does:
//! socket publication, kept-alive `/call`s framed both ways, deadlines, and bad input — every
//! status in {200, 502, 504} and the process still serving afterwards.

use std::time::Duration;

use serde_json::json;
use tokenbridge_tests::fake_idp::{A_CLIENT, B_CLIENT};
use tokenbridge_tests::fn_agent::{FnAgent, Framing, Reply, request_bytes};
use tokenbridge_tests::{Fault, IdpPair};

const ALLOWED: [u16; 3] = [200, 502, 504];
const LONG: Duration = Duration::from_secs(30);

fn payload(token: &str) -> Vec<u8> {
    json!({"type": "TOKEN", "token": format!("Bearer {token}")}).to_string().into_bytes()
}

fn env_with(idp: &IdpPair, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = idp.env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn assert_fn_headers(reply: &Reply) {
    assert!(ALLOWED.contains(&reply.status), "status {} would make the agent kill the container", reply.status);
    assert!(reply.header("fn-fdk-version").is_some_and(|v| v.starts_with("fdk-tokenbridge/")), "{:?}", reply.headers);
    assert_eq!(reply.header("fn-fdk-runtime"), Some("rust"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
}

#[test]
fn the_socket_is_a_relative_symlink_to_a_world_writable_socket_published_in_time() {
    let idp = IdpPair::start();
    let agent = FnAgent::start(&idp.env());
    agent.check_publication().unwrap();
    assert!(agent.ready_after < tokenbridge_tests::fn_agent::SOCKET_WAIT);
}

#[test]
fn allow_and_deny_over_one_kept_alive_connection_in_both_framings() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "orders.read", 600);
    let mut agent = FnAgent::start(&env_with(&idp, &[("TOKENBRIDGE_REQUIRED_SCOPES", "orders.read")]));
    let weak = idp.a.issue("bob", "other", 600);
    for framing in [Framing::ContentLength, Framing::Chunked] {
        let allow = agent.call(&payload(&token), framing, LONG);
        assert_fn_headers(&allow);
        assert_eq!(allow.status, 200);
        let body = allow.json();
        assert_eq!(body["active"], true, "{body}");
        assert_eq!(body["principal"], "alice");
        assert_eq!(body["scope"], json!(["orders.read"]));
        assert!(body["context"]["back_end_token"].as_str().unwrap().starts_with("Bearer backend-"));

        let deny = agent.call(&payload("not-known"), framing, LONG);
        assert_eq!(
            (deny.status, deny.json()["wwwAuthenticate"].as_str()),
            (200, Some("Bearer realm=\"tokenbridge\", error=\"invalid_token\""))
        );

        let scope = agent.call(&payload(&weak), framing, LONG);
        assert_eq!(scope.status, 200);
        assert_eq!(
            scope.json()["wwwAuthenticate"],
            "Bearer realm=\"tokenbridge\", error=\"insufficient_scope\", scope=\"orders.read\""
        );

        let missing = agent.call(br#"{"type":"TOKEN"}"#, framing, LONG);
        assert_eq!(missing.json(), json!({"active": false, "wwwAuthenticate": "Bearer realm=\"tokenbridge\""}));
    }
    assert_eq!((idp.a.introspections(), idp.b.token_requests()), (3, 1), "cached across calls");
    assert!(agent.is_alive());
}

#[test]
fn user_defined_payload_takes_the_configured_argument() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    let mut agent = FnAgent::start(&env_with(&idp, &[("TOKENBRIDGE_TOKEN_ARGUMENT", "auth")]));
    let body = json!({"type":"USER_DEFINED","data":{"auth":[format!("Bearer {token}")],"path":"/x"}}).to_string();
    let reply = agent.call(body.as_bytes(), Framing::Chunked, LONG);
    assert_eq!(reply.json()["active"], true);
}

#[test]
fn an_idp_outage_is_a_502_naming_the_cause_and_holding_no_secret() {
    let idp = IdpPair::start();
    idp.a.set_introspect_fault(Some(Fault::Status(503, "maintenance".into())));
    let mut agent = FnAgent::start(&idp.env());
    let reply = agent.call(&payload("some-caller-token"), Framing::Chunked, LONG);
    assert_fn_headers(&reply);
    assert_eq!(reply.status, 502);
    let body = reply.json();
    assert_eq!(body["cause"], "introspection_bad_status");
    let text = String::from_utf8_lossy(&reply.body).to_string();
    for secret in ["some-caller-token", A_CLIENT.1, B_CLIENT.1] {
        assert!(!text.contains(secret), "{text}");
    }
    // The IdP recovers; the same connection answers again.
    idp.a.set_introspect_fault(None);
    let token = idp.a.issue("alice", "", 600);
    assert_eq!(agent.call(&payload(&token), Framing::Chunked, LONG).status, 200);
}

#[test]
fn a_deadline_that_has_passed_is_a_504_without_calling_an_idp() {
    let idp = IdpPair::start();
    let mut agent = FnAgent::start(&idp.env());
    let request = request_bytes("POST", "/call", &payload("t"), Framing::ContentLength, "2001-01-01T00:00:00Z");
    let reply = agent.send_raw(&request);
    assert_fn_headers(&reply);
    assert_eq!(reply.status, 504);
    assert_eq!(idp.a.introspections(), 0);
}

#[test]
fn a_silent_idp_is_cut_off_by_the_fn_deadline_with_a_504() {
    let idp = IdpPair::start();
    idp.a.set_introspect_fault(Some(Fault::Silent));
    let mut agent = FnAgent::start(&env_with(&idp, &[("TOKENBRIDGE_TIMEOUT_MS", "60000")]));
    let started = std::time::Instant::now();
    let reply = agent.call(&payload("t"), Framing::ContentLength, Duration::from_millis(400));
    assert_fn_headers(&reply);
    assert_eq!(reply.status, 504, "{}", String::from_utf8_lossy(&reply.body));
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(agent.is_alive());
}

#[test]
fn bad_bodies_are_502s_and_the_function_keeps_serving() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    let mut agent = FnAgent::start(&idp.env());
    let huge = vec![b'x'; 1_000_000];
    let cases: [(&str, &[u8]); 5] = [
        ("malformed JSON", b"{\"type\":"),
        ("unknown type", br#"{"type":"REQUEST","methodArn":"x"}"#),
        ("empty body", b""),
        ("not an object", b"[1,2,3]"),
        ("1 MB body", &huge),
    ];
    for (name, body) in cases {
        for framing in [Framing::ContentLength, Framing::Chunked] {
            let reply = agent.call(body, framing, LONG);
            assert_fn_headers(&reply);
            assert_eq!(reply.status, 502, "{name} ({framing:?})");
            assert!(reply.json()["error"].is_string(), "{name}");
            assert_eq!(agent.call(&payload(&token), Framing::ContentLength, LONG).status, 200, "after {name}");
        }
    }
    assert!(agent.is_alive());
}

#[test]
fn broken_http_gets_a_502_and_a_reconnect_works() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    let mut agent = FnAgent::start(&idp.env());
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..],
        b"POST /call HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        b"POST /call HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /other HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    ] {
        let reply = agent.send_raw(garbage);
        assert_fn_headers(&reply);
        assert_eq!(reply.status, 502, "{:?}", String::from_utf8_lossy(garbage));
        assert_eq!(agent.call(&payload(&token), Framing::Chunked, LONG).status, 200);
    }
    // An abandoned connection does not block a new one.
    agent.connect();
    assert_eq!(agent.call(&payload(&token), Framing::Chunked, LONG).status, 200);
    assert!(agent.is_alive());
}

#[test]
fn the_seeds_six_keys_alone_give_a_working_function() {
    let idp = IdpPair::start();
    let env = idp.seed_env();
    let token = idp.a.issue("alice", "", 600);
    let mut agent = FnAgent::start(&env);
    let reply = agent.call(&payload(&token), Framing::Chunked, LONG);
    assert_eq!((reply.status, reply.json()["active"].as_bool()), (200, Some(true)));
}

#[test]
fn a_bad_configuration_is_a_502_not_a_crash_loop() {
    let mut agent = FnAgent::start(&[]);
    let reply = agent.call(&payload("t"), Framing::Chunked, LONG);
    assert_eq!(reply.status, 502);
    assert_eq!(reply.json()["cause"], "configuration_invalid");
    assert!(agent.is_alive());
    let stderr = agent.stop();
    assert!(stderr.contains("TOKENBRIDGE_INTROSPECTION_URL (or idcs_introspection_endpoint) is required"), "{stderr}");
}
