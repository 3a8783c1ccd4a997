//! The engine against in-process fake IdPs with a controlled clock: cache lifetimes, early
//! refresh, stale serving, single-flight and deadlines, without sleeping through lifetimes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenbridge_core::{
    Config, Denial, Dependency, Engine, Failure, NoRule, Outcome, Policy, Request, Route, RouteDecision, SecretError,
};
use tokenbridge_tests::fake_idp::unix_now;
use tokenbridge_tests::jwt_keys::{forged, hs256};
use tokenbridge_tests::{Fault, IdpPair};

mod common;
use common::{Fixture, bearer, fixture_at};

fn fixture(extra: &[(&str, &str)]) -> Fixture {
    fixture_at(IdpPair::start(), extra, &[])
}

fn backend_token(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Allow(g) => g.context["back_end_token"].clone(),
        other => panic!("expected allow, got {other:?}"),
    }
}

#[test]
fn backend_token_is_reused_until_its_refresh_point_then_refetched() {
    let f = fixture(&[]);
    f.idp.b.set_token_ttl(Some(300));
    let token = f.idp.a.issue("alice", "", 3600);
    let first = backend_token(&f.engine.decide(&bearer(&token)));
    // Usable while 60 s are left (until 240 s); refreshed max(30 s, 10 % of 300 s) before that.
    f.clock.advance(209);
    assert_eq!(backend_token(&f.engine.decide(&bearer(&token))), first);
    assert_eq!(f.idp.b.token_requests(), 1);
    f.clock.advance(1);
    let second = backend_token(&f.engine.decide(&bearer(&token)));
    assert_ne!(second, first);
    assert_eq!(f.idp.b.token_requests(), 2);
}

#[test]
fn a_failed_refresh_keeps_serving_the_valid_token_but_never_past_its_expiry() {
    let f = fixture(&[]);
    f.idp.b.set_token_ttl(Some(300));
    let token = f.idp.a.issue("alice", "", 3600);
    let first = backend_token(&f.engine.decide(&bearer(&token)));
    f.idp.b.set_token_fault(Some(Fault::Status(503, String::new())));
    f.clock.advance(220);
    assert_eq!(backend_token(&f.engine.decide(&bearer(&token))), first, "stale but valid");
    let last = f.log.lock().unwrap().last().cloned().unwrap();
    assert!(last.contains("\"backend\":\"stale\"") && last.contains("\"level\":\"warn\""), "{last}");
    assert!(last.contains("backend token refresh failed"), "{last}");
    // During the outage IdP B is asked again at most every few seconds, not on every decision.
    let asked = f.idp.b.token_requests();
    f.clock.advance(1);
    assert_eq!(backend_token(&f.engine.decide(&bearer(&token))), first);
    assert_eq!(f.idp.b.token_requests(), asked);
    assert!(f.log.lock().unwrap().last().unwrap().contains("\"backend\":\"stale\""));
    // 60 s before its expiry it is no longer handed out: the gateway may replay it that long.
    f.clock.advance(19);
    match f.engine.decide(&bearer(&token)) {
        Outcome::Unavailable(c) => {
            assert_eq!((c.dependency, c.failure), (Dependency::BackendToken, Failure::Status(503)))
        }
        other => panic!("an expired backend token was handed out: {other:?}"),
    }
}

#[test]
fn grant_expiry_follows_the_clock_and_the_backend_token() {
    let f = fixture(&[]);
    f.idp.b.set_token_ttl(Some(100));
    let token = f.idp.a.issue("alice", "", 3600);
    let start = f.clock_now();
    match f.engine.decide(&bearer(&token)) {
        Outcome::Allow(g) => assert_eq!(g.expires_at, start + 100),
        other => panic!("{other:?}"),
    }
}

impl Fixture {
    fn clock_now(&self) -> i64 {
        use tokenbridge_core::testing::Clock;
        self.clock.now()
    }
}

#[test]
fn missing_expires_in_gets_the_conservative_default() {
    let f = fixture(&[("TOKENBRIDGE_BACKEND_DEFAULT_TTL_SECONDS", "120")]);
    f.idp.b.set_token_ttl(None);
    let token = f.idp.a.issue("alice", "", 3600);
    let start = f.clock_now();
    match f.engine.decide(&bearer(&token)) {
        Outcome::Allow(g) => assert_eq!(g.expires_at, start + 120),
        other => panic!("{other:?}"),
    }
}

#[test]
fn validation_is_cached_until_the_token_expires() {
    let f = fixture(&[]);
    let token = f.idp.a.issue("alice", "", 50);
    assert!(matches!(f.engine.decide(&bearer(&token)), Outcome::Allow(_)));
    f.clock.advance(49);
    assert!(matches!(f.engine.decide(&bearer(&token)), Outcome::Allow(_)));
    assert_eq!(f.idp.a.introspections(), 1);
    f.clock.advance(1);
    f.engine.decide(&bearer(&token));
    assert_eq!(f.idp.a.introspections(), 2, "re-asked once the cached result reached exp");
}

#[test]
fn validation_is_cached_no_longer_than_the_configured_maximum() {
    let f = fixture(&[("TOKENBRIDGE_CACHE_MAX_TTL_SECONDS", "60")]);
    let token = f.idp.a.issue("alice", "", 3600);
    f.engine.decide(&bearer(&token));
    f.clock.advance(59);
    f.engine.decide(&bearer(&token));
    assert_eq!(f.idp.a.introspections(), 1);
    f.clock.advance(1);
    f.engine.decide(&bearer(&token));
    assert_eq!(f.idp.a.introspections(), 2);
}

#[test]
fn an_inactive_answer_is_cached_for_the_inactive_ttl() {
    let f = fixture(&[("TOKENBRIDGE_CACHE_INACTIVE_TTL_SECONDS", "10")]);
    assert_eq!(f.engine.decide(&bearer("nobody")), Outcome::Deny(Denial::InvalidToken));
    f.clock.advance(9);
    f.engine.decide(&bearer("nobody"));
    assert_eq!(f.idp.a.introspections(), 1);
    f.clock.advance(1);
    f.engine.decide(&bearer("nobody"));
    assert_eq!(f.idp.a.introspections(), 2);
}

#[test]
fn concurrent_decisions_for_a_new_token_make_one_call_to_each_idp() {
    let f = Arc::new(fixture(&[]));
    f.idp.a.set_introspect_fault(Some(Fault::Delay(Duration::from_millis(150))));
    let token = f.idp.a.issue("alice", "", 3600);
    let threads: Vec<_> = (0..12)
        .map(|_| {
            let (f, token) = (f.clone(), token.clone());
            std::thread::spawn(move || f.engine.decide(&bearer(&token)))
        })
        .collect();
    for t in threads {
        assert!(matches!(t.join().unwrap(), Outcome::Allow(_)));
    }
    assert_eq!((f.idp.a.introspections(), f.idp.b.token_requests()), (1, 1));
}

#[test]
fn the_request_deadline_bounds_the_idp_call() {
    let f = fixture(&[("TOKENBRIDGE_TIMEOUT_MS", "10000")]);
    f.idp.a.set_introspect_fault(Some(Fault::Silent));
    let mut request = bearer("t");
    request.deadline = Some(Instant::now() + Duration::from_millis(300));
    let started = Instant::now();
    match f.engine.decide(&request) {
        Outcome::Unavailable(c) => assert_eq!(c.failure, Failure::DeadlineExceeded),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[test]
fn a_passed_deadline_calls_no_idp() {
    let f = fixture(&[]);
    let mut request = bearer("t");
    request.deadline = Some(Instant::now());
    match f.engine.decide(&request) {
        Outcome::Unavailable(c) => assert_eq!(c.failure, Failure::DeadlineExceeded),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.idp.a.introspections(), 0);
}

#[test]
fn an_oversized_idp_answer_is_unavailable() {
    let f = fixture(&[("TOKENBRIDGE_MAX_ANSWER_BYTES", "1024")]);
    let big = json!({"active": true, "sub": "a", "pad": "x".repeat(4096)}).to_string();
    f.idp.a.set_introspect_fault(Some(Fault::Status(200, big)));
    match f.engine.decide(&bearer("t")) {
        Outcome::Unavailable(c) => assert_eq!(c.failure, Failure::TooLarge),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_redirect_is_not_followed() {
    let f = fixture(&[]);
    f.idp.a.set_introspect_fault(Some(Fault::Status(302, String::new())));
    match f.engine.decide(&bearer("t")) {
        Outcome::Unavailable(c) => assert_eq!(c.failure, Failure::Status(302)),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.idp.a.introspections(), 1);
}

#[test]
fn a_refused_connection_or_5xx_gets_one_quick_retry_and_a_4xx_none() {
    let f = fixture(&[]);
    let token = f.idp.a.issue("alice", "", 3600);
    f.idp.a.set_introspect_fault(Some(Fault::Status(503, String::new())));
    assert!(matches!(f.engine.decide(&bearer(&token)), Outcome::Unavailable(_)));
    assert_eq!(f.idp.a.introspections(), 2, "one retry");
    f.idp.a.set_introspect_fault(Some(Fault::StatusRetryAfter(429, 1)));
    assert!(matches!(f.engine.decide(&bearer(&token)), Outcome::Unavailable(_)));
    assert_eq!(f.idp.a.introspections(), 3, "no retry for a 4xx");
}

#[test]
fn a_retry_gets_only_what_is_left_of_the_configured_timeout() {
    let f = fixture(&[("TOKENBRIDGE_TIMEOUT_MS", "1500")]);
    f.idp.a.set_introspect_fault(Some(Fault::SlowStatus(Duration::from_secs(1), 503)));
    let failure = match f.engine.decide(&bearer("t")) {
        Outcome::Unavailable(c) => c.failure,
        other => panic!("{other:?}"),
    };
    // With a full timeout of its own, the retry would have seen the second 503 a second later.
    match f.idp.a.introspections() {
        2 => assert_eq!(failure, Failure::Timeout, "the retry is cut at 1.5 s after the first call started"),
        // A slow machine may leave too little of the 1.5 s to retry at all.
        1 => assert_eq!(failure, Failure::Status(503)),
        n => panic!("{n} introspections"),
    }
}

const INTROSPECTED_ISSUER: &str = "https://idp-x.example";

fn with_introspected_issuer() -> Fixture {
    let issuers = json!([{"issuer": INTROSPECTED_ISSUER, "audiences": ["orders"], "mode": "introspection"}]);
    fixture(&[("TOKENBRIDGE_ISSUERS", &issuers.to_string())])
}

fn active(iss: Option<&str>, aud: Value) -> Value {
    json!({"active": true, "sub": "alice", "iss": iss, "aud": aud, "exp": unix_now() + 600})
}

#[test]
fn an_introspected_issuers_audiences_are_required_of_the_answer() {
    let f = with_introspected_issuer();
    f.idp.a.add_token("for-orders", active(Some(INTROSPECTED_ISSUER), json!(["billing", "orders"])));
    f.idp.a.add_token("for-billing", active(Some(INTROSPECTED_ISSUER), json!("billing")));
    f.idp.a.add_token("for-nobody", active(Some(INTROSPECTED_ISSUER), Value::Null));
    f.idp.a.add_token("elsewhere", active(Some("https://elsewhere.example"), json!("billing")));
    assert!(matches!(f.engine.decide(&bearer("for-orders")), Outcome::Allow(_)));
    assert_eq!(f.engine.decide(&bearer("for-billing")), Outcome::Deny(Denial::InvalidToken));
    assert_eq!(f.engine.decide(&bearer("for-nobody")), Outcome::Deny(Denial::InvalidToken));
    assert!(matches!(f.engine.decide(&bearer("elsewhere")), Outcome::Allow(_)), "other issuers are not bound");
    assert!(f.log.lock().unwrap().iter().any(|l| l.contains("wrong_audience")));
}

#[test]
fn a_jwt_of_an_introspected_issuer_needs_its_audience_even_if_the_answer_names_no_issuer() {
    let f = with_introspected_issuer();
    let claims = |aud: &str| json!({"iss": INTROSPECTED_ISSUER, "sub": "alice", "aud": aud});
    let (wrong, right) = (hs256("k", b"key", &claims("billing")), hs256("k", b"key", &claims("orders")));
    f.idp.a.add_token(&wrong, active(None, json!("billing")));
    f.idp.a.add_token(&right, active(None, json!("orders")));
    assert_eq!(f.engine.decide(&bearer(&wrong)), Outcome::Deny(Denial::InvalidToken));
    assert!(matches!(f.engine.decide(&bearer(&right)), Outcome::Allow(_)));
}

#[test]
fn an_opaque_token_whose_answer_names_no_issuer_needs_an_introspected_issuers_audience() {
    let f = with_introspected_issuer();
    f.idp.a.add_token("no-iss-billing", active(None, json!("billing")));
    f.idp.a.add_token("no-iss-orders", active(None, json!("orders")));
    assert_eq!(f.engine.decide(&bearer("no-iss-billing")), Outcome::Deny(Denial::InvalidToken));
    assert!(matches!(f.engine.decide(&bearer("no-iss-orders")), Outcome::Allow(_)));
}

#[test]
fn in_introspection_mode_a_configured_issuers_audience_is_required_of_the_answer() {
    let f = fixture(&[
        ("TOKENBRIDGE_MODE", "introspection"),
        ("TOKENBRIDGE_ISSUER", INTROSPECTED_ISSUER),
        ("TOKENBRIDGE_AUDIENCE", "orders"),
    ]);
    let claims = |aud: &str| json!({"iss": INTROSPECTED_ISSUER, "sub": "alice", "aud": aud});
    let (wrong, right) = (hs256("k", b"key", &claims("billing")), hs256("k", b"key", &claims("orders")));
    f.idp.a.add_token(&wrong, active(Some(INTROSPECTED_ISSUER), json!("billing")));
    f.idp.a.add_token(&right, active(Some(INTROSPECTED_ISSUER), json!("orders")));
    assert_eq!(f.engine.decide(&bearer(&wrong)), Outcome::Deny(Denial::InvalidToken));
    assert!(matches!(f.engine.decide(&bearer(&right)), Outcome::Allow(_)));
}

#[test]
fn secrets_are_checked_even_when_other_settings_are_invalid() {
    let idp = IdpPair::start();
    let mut env: HashMap<String, String> = idp.env().into_iter().collect();
    env.insert("TOKENBRIDGE_TIMEOUT_MS".into(), "never".into());
    env.insert("TOKENBRIDGE_BACKEND_CLIENT_SECRET".into(), "file:/nonexistent/secret".into());
    let lookup = |k: &str| env.get(k).cloned();
    let engine = Engine::builder(Config::from_lookup(&lookup)).log_sink(|_| {}).build();
    assert!(engine.config().is_err());
    let problems = engine.check_secret_refs(&Config::secrets_from_lookup(&lookup));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].setting, "TOKENBRIDGE_BACKEND_CLIENT_SECRET", "{problems:?}");
    assert!(matches!(problems[0].error, SecretError::Unresolvable(_)), "{problems:?}");
    assert!(problems[0].to_string().starts_with("TOKENBRIDGE_BACKEND_CLIENT_SECRET: "), "{problems:?}");
}

#[test]
fn stale_if_error_serves_a_valid_result_while_idp_a_fails_but_never_past_exp() {
    let f =
        fixture(&[("TOKENBRIDGE_CACHE_MAX_TTL_SECONDS", "60"), ("TOKENBRIDGE_CACHE_STALE_IF_ERROR_SECONDS", "300")]);
    let token = f.idp.a.issue("alice", "", 200);
    assert!(matches!(f.engine.decide(&bearer(&token)), Outcome::Allow(_)));
    f.idp.a.set_introspect_fault(Some(Fault::Status(502, String::new())));
    f.clock.advance(100);
    assert!(matches!(f.engine.decide(&bearer(&token)), Outcome::Allow(_)), "served stale past the 60 s lifetime");
    f.clock.advance(100);
    assert!(matches!(f.engine.decide(&bearer(&token)), Outcome::Unavailable(_)), "never past exp");
}

#[test]
fn a_decision_during_a_revalidation_waits_for_it_instead_of_taking_the_stale_verdict() {
    let f = Arc::new(fixture(&[
        ("TOKENBRIDGE_CACHE_MAX_TTL_SECONDS", "60"),
        ("TOKENBRIDGE_CACHE_STALE_IF_ERROR_SECONDS", "300"),
    ]));
    let token = f.idp.a.issue("alice", "", 3600);
    assert!(matches!(f.engine.decide(&bearer(&token)), Outcome::Allow(_)));
    f.clock.advance(100);
    f.idp.a.revoke(&token);
    f.idp.a.set_introspect_fault(Some(Fault::Delay(Duration::from_millis(400))));
    let leader = {
        let (f, token) = (f.clone(), token.clone());
        std::thread::spawn(move || f.engine.decide(&bearer(&token)))
    };
    while f.idp.a.introspections() < 2 {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        f.engine.decide(&bearer(&token)),
        Outcome::Deny(Denial::InvalidToken),
        "the revocation, not the stale allow"
    );
    assert_eq!(leader.join().unwrap(), Outcome::Deny(Denial::InvalidToken));
    assert_eq!(f.idp.a.introspections(), 2);
    let log = f.log.lock().unwrap();
    let mut lookups: Vec<String> = log[1..]
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["validation"].to_string())
        .collect();
    lookups.sort();
    assert_eq!(lookups, [r#""miss""#, r#""shared""#]);
}

#[test]
fn stale_if_error_is_off_by_default() {
    let f = fixture(&[("TOKENBRIDGE_CACHE_MAX_TTL_SECONDS", "60")]);
    let token = f.idp.a.issue("alice", "", 3600);
    assert!(matches!(f.engine.decide(&bearer(&token)), Outcome::Allow(_)));
    f.idp.a.set_introspect_fault(Some(Fault::Status(502, String::new())));
    f.clock.advance(61);
    assert!(matches!(f.engine.decide(&bearer(&token)), Outcome::Unavailable(_)));
}

#[test]
fn a_short_configured_timeout_is_not_eaten_by_the_deadline_margin() {
    let f = fixture(&[("TOKENBRIDGE_TIMEOUT_MS", "40")]);
    let token = f.idp.a.issue("alice", "", 600);
    let outcome = f.engine.decide(&bearer(&token));
    assert!(matches!(outcome, Outcome::Allow(_)), "{outcome:?}");
}

/// In introspection mode every token is IdP A's to judge, JWTs tokenbridge could never verify
/// itself included (a `crit` header, an algorithm it does not know, a null `typ`).
#[test]
fn introspection_mode_asks_idp_a_about_jwts_tokenbridge_could_not_verify() {
    let f = fixture(&[("TOKENBRIDGE_MODE", "introspection")]);
    let claims = json!({"iss": "https://idp.example", "sub": "alice"});
    for header in [
        json!({"alg": "ES256", "crit": ["urn:x:unknown"], "urn:x:unknown": 1}),
        json!({"alg": "ES512"}),
        json!({"alg": "Ed25519", "typ": null, "kid": null}),
    ] {
        let token = forged(&header, &claims, b"sig");
        f.idp.a.add_token(&token, json!({"active": true, "sub": "alice", "exp": unix_now() + 600}));
        assert!(matches!(f.engine.decide(&bearer(&token)), Outcome::Allow(_)), "{header}");
    }
    assert_eq!(f.idp.a.introspections(), 3);
}

/// `decide_now` answers only what the caches hold as plain hits, exactly as `decide` would, and
/// otherwise leaves the request to `decide`: no IdP call, no wait, no log line.
#[test]
fn deciding_now_answers_from_the_caches_alone_and_otherwise_leaves_it_to_decide() {
    let f = fixture(&[]);
    f.idp.b.set_token_ttl(Some(300));
    let token = f.idp.a.issue("alice", "", 3600);
    let lines = || f.log.lock().unwrap().len();

    assert_eq!(f.engine.decide_now(&bearer(&token)), None, "a new token needs IdP A");
    assert_eq!((f.idp.a.introspections(), f.idp.b.token_requests(), lines()), (0, 0, 0));
    let decided = f.engine.decide(&bearer(&token));
    assert_eq!(f.engine.decide_now(&bearer(&token)), Some(decided), "the same allow, from the caches");
    assert_eq!((f.idp.a.introspections(), f.idp.b.token_requests(), lines()), (1, 1, 2));
    assert!(f.log.lock().unwrap()[1].contains(r#""validation":"hit","backend":"hit""#));
    assert_eq!(f.engine.decide_now(&Request::default()), Some(Outcome::Deny(Denial::MissingToken)));

    // At the backend token's refresh point the cache no longer has a plain hit.
    f.clock.advance(210);
    assert_eq!(f.engine.decide_now(&bearer(&token)), None);
    // While a refresh has failed, the stale token is served only by `decide`, which logs it.
    f.idp.b.set_token_fault(Some(Fault::Status(503, String::new())));
    assert!(matches!(f.engine.decide(&bearer(&token)), Outcome::Allow(_)));
    assert_eq!(f.engine.decide_now(&bearer(&token)), None);
    // A refused token is a plain hit too.
    let unknown = "not-a-token-idp-a-knows";
    assert_eq!(f.engine.decide(&bearer(unknown)), Outcome::Deny(Denial::InvalidToken));
    assert_eq!(f.engine.decide_now(&bearer(unknown)), Some(Outcome::Deny(Denial::InvalidToken)));
}

const ROUTES: &str = r#"{"routes": [
    {"method": "GET", "path": "/orders/*", "scopes": ["orders.read"]},
    {"method": "DELETE", "path": "/orders/*", "scopes": ["orders.admin"]},
    {"path": "/audit/**", "scopes": ["orders.read"], "introspect": true}
]}"#;

fn routed(token: &str, method: &str, path: &str) -> Request {
    let mut request = bearer(token);
    request.route = Route { method: Some(method.into()), path: Some(path.into()), ..Route::default() };
    request
}

fn verdicts(decision: &RouteDecision) -> Vec<bool> {
    decision.routes.iter().map(|v| v.allowed).collect()
}

#[test]
fn a_route_decision_is_the_decision_with_the_route_table_judged_for_the_token() {
    let f = fixture(&[("TOKENBRIDGE_POLICY", ROUTES)]);
    let reader = f.idp.a.issue("alice", "orders.read", 3600);
    let decision = f.engine.decide_routes(&routed(&reader, "GET", "/orders/7"));
    assert!(matches!(decision.outcome, Outcome::Allow(_)), "{decision:?}");
    assert_eq!(verdicts(&decision), [true, false, true, false], "GET, DELETE, audit, the default (deny)");
    assert_eq!(decision.routes[0].route, Some(("GET".to_string(), vec!["orders".to_string(), "*".to_string()])));
    assert_eq!(decision.routes[3].route, None);
    let context = decision.context.unwrap();
    assert_eq!((context.backend, context.introspected), (None, false));
    assert_eq!(Outcome::Allow(context.grant), f.engine.decide(&routed(&reader, "GET", "/orders/7")));
}

#[test]
fn an_insufficient_scope_route_decision_carries_a_grant_for_the_routes_the_token_may_call() {
    let f = fixture(&[("TOKENBRIDGE_POLICY", ROUTES)]);
    let reader = f.idp.a.issue("alice", "orders.read", 3600);
    let decision = f.engine.decide_routes(&routed(&reader, "DELETE", "/orders/7"));
    assert_eq!(decision.outcome, Outcome::Deny(Denial::InsufficientScope { required: vec!["orders.admin".into()] }));
    assert_eq!(verdicts(&decision), [true, false, true, false]);
    let context = decision.context.expect("a grant for GET /orders/*");
    assert!(context.grant.context["back_end_token"].starts_with("Bearer "));
    assert_eq!((context.backend, context.introspected), (None, false));
    assert_eq!(f.log.lock().unwrap().len(), 1, "one decision, one log line");
}

#[test]
fn a_request_no_route_matches_still_judges_the_route_table() {
    let f = fixture(&[("TOKENBRIDGE_POLICY", ROUTES)]);
    let reader = f.idp.a.issue("alice", "orders.read", 3600);
    for path in ["/elsewhere", "/orders/%2e%2e/admin"] {
        let decision = f.engine.decide_routes(&routed(&reader, "GET", path));
        assert_eq!(decision.outcome, Outcome::Deny(Denial::InsufficientScope { required: Vec::new() }), "{path}");
        assert_eq!(verdicts(&decision), [true, false, true, false], "{path}");
        assert!(decision.context.is_some_and(|c| !c.introspected), "{path}");
    }
}

#[test]
fn a_route_decision_for_a_token_that_is_not_valid_has_no_route_table() {
    let f = fixture(&[("TOKENBRIDGE_POLICY", ROUTES)]);
    let decision = f.engine.decide_routes(&routed("forged", "GET", "/orders/7"));
    assert_eq!(decision.outcome, Outcome::Deny(Denial::InvalidToken));
    assert!(decision.routes.is_empty() && decision.context.is_none());
    let nobody = f.idp.a.issue("bob", "other", 3600);
    let decision = f.engine.decide_routes(&routed(&nobody, "GET", "/orders/7"));
    assert_eq!(verdicts(&decision), [false, false, false, false]);
    assert_eq!(decision.context, None, "no route to carry a grant for");
}

#[test]
fn the_route_table_names_each_routes_entry_and_route_index_finds_it() {
    let policy = Policy::from_json(ROUTES).unwrap();
    let table = policy.route_table(|rule| rule.introspect);
    assert_eq!(table.iter().map(|v| v.allowed).collect::<Vec<_>>(), [false, false, true, false]);
    assert!(table[2].introspect);
    let at = |method: &str, path: &str| {
        policy.route_index(&Route { method: Some(method.into()), path: Some(path.into()), ..Route::default() })
    };
    assert_eq!(at("GET", "/ORDERS/7"), Ok(0));
    assert_eq!(at("HEAD", "/orders/7"), Ok(0));
    assert_eq!(at("DELETE", "/orders/7"), Ok(1));
    assert_eq!(at("POST", "/audit"), Ok(2));
    assert_eq!(at("POST", "/orders/7"), Err(NoRule::NotAllowed));
    let lax = Policy::from_json(r#"{"routes": [{"path": "/a"}], "default": {"scopes": []}}"#).unwrap();
    assert_eq!(lax.route_index(&Route { path: Some("/b".into()), ..Route::default() }), Ok(1), "the default, last");
}
