//! Backend grants that carry the caller on — RFC 8693 token exchange and RFC 7523 jwt-bearer
//! (Entra on-behalf-of) — against the fake IdPs: a token per caller, cached per caller within
//! both tokens' lives, a refusal of the caller's token denied rather than retried, and IdP B's
//! own failures unavailable.

use std::sync::Arc;
use std::thread;

use tokenbridge_core::testing::Clock as _;
use tokenbridge_core::{Config, Denial, Dependency, Failure, Outcome};
use tokenbridge_tests::IdpPair;

mod common;
use common::{Fixture, bearer, fixture_at};

const EXCHANGE: [(&str, &str); 2] =
    [("TOKENBRIDGE_BACKEND_GRANT", "token_exchange"), ("TOKENBRIDGE_BACKEND_AUDIENCE", "orders")];
const ON_BEHALF_OF: [(&str, &str); 3] = [
    ("TOKENBRIDGE_BACKEND_GRANT", "jwt_bearer"),
    ("TOKENBRIDGE_BACKEND_REQUESTED_TOKEN_USE", "on_behalf_of"),
    ("TOKENBRIDGE_BACKEND_SCOPE", "api://orders/.default"),
];

fn fixture(set: &[(&str, &str)]) -> Fixture {
    fixture_at(IdpPair::start(), set, &[])
}

/// The backend token an allow carries.
fn backend_token(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Allow(grant) => grant.context["back_end_token"].strip_prefix("Bearer ").unwrap().to_string(),
        other => panic!("expected allow, got {other:?}"),
    }
}

fn last_log(f: &Fixture) -> String {
    f.log.lock().unwrap().last().cloned().unwrap()
}

#[test]
fn each_caller_gets_a_backend_token_exchanged_for_its_own_token() {
    for grant in [&EXCHANGE[..], &ON_BEHALF_OF[..]] {
        let f = fixture(grant);
        let alice = f.idp.a.issue("alice", "", 3600);
        let bob = f.idp.a.issue("bob", "", 3600);
        let for_alice = backend_token(&f.engine.decide(&bearer(&alice)));
        let for_bob = backend_token(&f.engine.decide(&bearer(&bob)));
        assert_ne!(for_alice, for_bob);
        assert_eq!(f.idp.b.exchanged(), vec![(alice, for_alice), (bob, for_bob)], "{grant:?}");
    }
}

#[test]
fn a_callers_exchanged_token_is_reused_from_the_cache() {
    let f = fixture(&EXCHANGE);
    let alice = f.idp.a.issue("alice", "", 3600);
    let first = backend_token(&f.engine.decide(&bearer(&alice)));
    f.clock.advance(5);
    assert_eq!(backend_token(&f.engine.decide(&bearer(&alice))), first);
    assert_eq!(f.idp.b.token_requests(), 1);
    assert!(last_log(&f).contains(r#""backend":"hit""#), "{}", last_log(&f));
    // From the caches alone, too; another caller's cannot be answered so.
    assert_eq!(f.engine.decide_now(&bearer(&alice)).map(|o| backend_token(&o)), Some(first));
    let bob = f.idp.a.issue("bob", "", 3600);
    f.engine.decide(&bearer(&bob));
    let carol = f.idp.a.issue("carol", "", 3600);
    assert!(f.engine.decide_now(&bearer(&carol)).is_none());
}

#[test]
fn concurrent_decisions_for_one_caller_share_one_exchange() {
    let f = Arc::new(fixture(&EXCHANGE));
    f.idp.b.set_token_fault(Some(tokenbridge_tests::fake_idp::Fault::Delay(std::time::Duration::from_millis(200))));
    let alice = f.idp.a.issue("alice", "", 3600);
    let decisions: Vec<_> = (0..4)
        .map(|_| {
            let (f, alice) = (f.clone(), alice.clone());
            thread::spawn(move || backend_token(&f.engine.decide(&bearer(&alice))))
        })
        .collect();
    let tokens: Vec<String> = decisions.into_iter().map(|d| d.join().unwrap()).collect();
    assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    assert_eq!(f.idp.b.token_requests(), 1);
}

#[test]
fn an_exchanged_token_is_kept_no_longer_than_the_cache_maximum() {
    let f = fixture(&[EXCHANGE[0], ("TOKENBRIDGE_CACHE_MAX_TTL_SECONDS", "60")]);
    let alice = f.idp.a.issue("alice", "", 3600);
    let first = backend_token(&f.engine.decide(&bearer(&alice)));
    f.clock.advance(61);
    let second = backend_token(&f.engine.decide(&bearer(&alice)));
    assert_ne!(first, second);
    assert_eq!(f.idp.b.exchanged().len(), 2);
}

#[test]
fn the_decision_expires_with_the_earlier_of_the_caller_token_and_the_exchanged_token() {
    let f = fixture(&EXCHANGE);
    let now = f.clock.now();
    let alice = f.idp.a.issue("alice", "", 600);
    let Outcome::Allow(grant) = f.engine.decide(&bearer(&alice)) else { panic!() };
    // The fake's tokens live an hour; alice's ten minutes.
    assert!((now + 595..=now + 605).contains(&grant.expires_at), "{} vs {now}", grant.expires_at);
    f.idp.b.set_token_ttl(Some(120));
    let bob = f.idp.a.issue("bob", "", 3600);
    let Outcome::Allow(grant) = f.engine.decide(&bearer(&bob)) else { panic!() };
    assert_eq!(grant.expires_at, now + 120);
}

#[test]
fn a_revoked_caller_is_denied_once_its_validation_entry_ends_whatever_the_exchange_cache_holds() {
    let f = fixture(&[EXCHANGE[0], ("TOKENBRIDGE_CACHE_MAX_TTL_SECONDS", "30")]);
    let alice = f.idp.a.issue("alice", "", 3600);
    backend_token(&f.engine.decide(&bearer(&alice)));
    f.idp.a.revoke(&alice);
    f.clock.advance(31);
    assert_eq!(f.engine.decide(&bearer(&alice)), Outcome::Deny(Denial::InvalidToken));
    assert!(last_log(&f).contains(r#""reason":"inactive""#));
    assert_eq!(f.idp.b.token_requests(), 1);
}

#[test]
fn idp_b_refusing_the_callers_token_denies_that_caller_and_remembers_it_briefly() {
    for code in ["invalid_grant", "invalid_token", "interaction_required"] {
        let f = fixture(&ON_BEHALF_OF);
        let alice = f.idp.a.issue("alice", "", 3600);
        f.idp.b.refuse_subject(&alice, code);
        assert_eq!(f.engine.decide(&bearer(&alice)), Outcome::Deny(Denial::InvalidToken), "{code}");
        assert!(last_log(&f).contains(r#""reason":"backend_refused_caller_token""#), "{}", last_log(&f));
        assert_eq!(f.engine.decide(&bearer(&alice)), Outcome::Deny(Denial::InvalidToken));
        assert_eq!(f.idp.b.token_requests(), 1, "a refusal is remembered");
        // Past the inactive TTL (10 s by default), IdP B is asked again.
        f.clock.advance(11);
        f.engine.decide(&bearer(&alice));
        assert_eq!(f.idp.b.token_requests(), 2);
        // Another caller is not affected.
        let bob = f.idp.a.issue("bob", "", 3600);
        backend_token(&f.engine.decide(&bearer(&bob)));
    }
}

#[test]
fn idp_b_failures_that_are_not_about_the_caller_are_unavailable() {
    let unavailable = |f: &Fixture| {
        let token = f.idp.a.issue("alice", "", 3600);
        match f.engine.decide(&bearer(&token)) {
            Outcome::Unavailable(c) => (c.dependency, c.failure),
            other => panic!("expected unavailable, got {other:?}"),
        }
    };
    for (code, status) in
        [("invalid_request", 400), ("invalid_target", 400), ("unauthorized_client", 400), ("invalid_scope", 400)]
    {
        let f = fixture(&EXCHANGE);
        let body = format!(r#"{{"error":"{code}"}}"#);
        f.idp.b.set_token_fault(Some(tokenbridge_tests::fake_idp::Fault::Status(status, body)));
        assert_eq!(unavailable(&f), (Dependency::BackendToken, Failure::Status(400)), "{code}");
    }
    let f = fixture(&EXCHANGE);
    f.idp.b.set_token_fault(Some(tokenbridge_tests::fake_idp::Fault::Status(503, "{}".into())));
    assert_eq!(unavailable(&f), (Dependency::BackendToken, Failure::Status(503)));
}

#[test]
fn an_exchange_answer_that_does_not_say_it_issued_a_bearer_token_is_unavailable() {
    for issued in
        [None, Some("urn:ietf:params:oauth:token-type:id_token"), Some("urn:ietf:params:oauth:token-type:jwt")]
    {
        let f = fixture(&[EXCHANGE[0], ("TOKENBRIDGE_BACKEND_REQUESTED_TOKEN_TYPE", "access_token")]);
        f.idp.b.set_issued_token_type(issued);
        let token = f.idp.a.issue("alice", "", 3600);
        let Outcome::Unavailable(cause) = f.engine.decide(&bearer(&token)) else { panic!("{issued:?}") };
        assert_eq!((cause.dependency, cause.failure), (Dependency::BackendToken, Failure::Malformed), "{issued:?}");
    }
}

#[test]
fn the_grants_settings_are_checked_and_shown() {
    let idp = IdpPair::start();
    let config = |set: &[(&str, &str)]| {
        let mut env: std::collections::HashMap<String, String> = idp.env().into_iter().collect();
        env.extend(set.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_lookup(&|k| env.get(k).cloned())
    };
    let problems = |set: &[(&str, &str)]| config(set).err().map(|e| e.0.join("\n")).unwrap_or_default();
    assert!(problems(&[("TOKENBRIDGE_BACKEND_GRANT", "password")]).contains("TOKENBRIDGE_BACKEND_GRANT must be"));
    assert!(
        problems(&[EXCHANGE[0], ("TOKENBRIDGE_BACKEND_SUBJECT_TOKEN_TYPE", "id_token")])
            .contains("TOKENBRIDGE_BACKEND_SUBJECT_TOKEN_TYPE must be access_token or jwt")
    );
    assert!(problems(&[EXCHANGE[0], ON_BEHALF_OF[1]]).contains("TOKENBRIDGE_BACKEND_REQUESTED_TOKEN_USE is set, but"));
    // Entra answers these for every caller: they are configuration problems, not denials.
    assert!(
        problems(&ON_BEHALF_OF[..2]).contains("TOKENBRIDGE_BACKEND_REQUESTED_TOKEN_USE = on_behalf_of needs a scope")
    );
    assert!(
        problems(&[ON_BEHALF_OF[0], ("TOKENBRIDGE_BACKEND_REQUESTED_TOKEN_USE", "on-behalf-of"), ON_BEHALF_OF[2]])
            .contains("TOKENBRIDGE_BACKEND_REQUESTED_TOKEN_USE must be on_behalf_of")
    );
    assert!(problems(&[("TOKENBRIDGE_BACKEND_REQUESTED_TOKEN_TYPE", "jwt")]).contains("does not use it"));
    let shown = config(&[EXCHANGE[0], ("TOKENBRIDGE_BACKEND_SUBJECT_TOKEN_TYPE", "jwt")]).unwrap().to_string();
    assert!(shown.contains("TOKENBRIDGE_BACKEND_GRANT = token_exchange"), "{shown}");
    assert!(shown.contains("TOKENBRIDGE_BACKEND_SUBJECT_TOKEN_TYPE = urn:ietf:params:oauth:token-type:jwt"), "{shown}");
    let shown = config(&[]).unwrap().to_string();
    assert!(shown.contains("TOKENBRIDGE_BACKEND_GRANT = client_credentials") && !shown.contains("SUBJECT_TOKEN_TYPE"));
}

const ROUTED: &str = r#"{
  "routes": [
    {"path": "/orders/**", "backend": "orders"},
    {"path": "/hr/**", "backend": "hr"},
    {"path": "/**"}
  ],
  "backends": {
    "orders": {"audience": "orders-api"},
    "hr": {"grant": "token_exchange", "audience": "hr-api", "requested_token_type": "access_token"}
  }
}"#;

fn at(path: &str, token: &str) -> tokenbridge_core::Request {
    let mut request = bearer(token);
    request.route =
        tokenbridge_core::Route { method: Some("GET".into()), path: Some(path.into()), ..Default::default() };
    request
}

#[test]
fn a_route_gets_the_backend_token_its_policy_backend_names() {
    let f = fixture(&[("TOKENBRIDGE_POLICY", ROUTED), ("TOKENBRIDGE_BACKEND_AUDIENCE", "default-api")]);
    let alice = f.idp.a.issue("alice", "", 3600);
    let bob = f.idp.a.issue("bob", "", 3600);
    let orders = backend_token(&f.engine.decide(&at("/orders/1", &alice)));
    let hr = backend_token(&f.engine.decide(&at("/hr/payroll", &alice)));
    let other = backend_token(&f.engine.decide(&at("/status", &alice)));
    assert!(orders != hr && hr != other && orders != other);
    let cc = "client_credentials".to_string();
    let exchange = "urn:ietf:params:oauth:grant-type:token-exchange".to_string();
    assert_eq!(
        f.idp.b.issued(),
        vec![
            (cc.clone(), Some("orders-api".into())),
            (exchange.clone(), Some("hr-api".into())),
            (cc.clone(), Some("default-api".into()))
        ]
    );
    // A client_credentials backend serves every caller one token; the exchange, one each.
    assert_eq!(backend_token(&f.engine.decide(&at("/orders/2", &bob))), orders);
    assert_ne!(backend_token(&f.engine.decide(&at("/hr/payroll", &bob))), hr);
    assert_eq!(f.idp.b.exchanged().iter().map(|(caller, _)| caller.clone()).collect::<Vec<_>>(), vec![alice, bob]);
    let shown = f.engine.config().unwrap().to_string();
    assert!(shown.contains("/hr/** → scopes all of [], backend hr"), "{shown}");
    assert!(shown.contains("policy backend hr: grant token_exchange, audience=hr-api"), "{shown}");
}

#[test]
fn policy_backends_that_are_unknown_unused_or_wrongly_written_are_configuration_problems() {
    let idp = IdpPair::start();
    let problems = |policy: &str| {
        let mut env: std::collections::HashMap<String, String> = idp.env().into_iter().collect();
        env.insert("TOKENBRIDGE_POLICY".into(), policy.into());
        Config::from_lookup(&|k| env.get(k).cloned()).err().map(|e| e.0.join("\n")).unwrap_or_default()
    };
    let cases = [
        (r#"{"routes":[{"path":"/a/**","backend":"nope"}]}"#, r#"names backend "nope""#),
        (r#"{"routes":[{"path":"/a/**"}],"backends":{"b":{}}}"#, r#"policy backend "b" is named by no route"#),
        (r#"{"routes":[{"path":"/a/**","backend":"b"}],"backends":{"b":{"token_url":"https://x"}}}"#, "unknown field"),
        (
            r#"{"routes":[{"path":"/a/**","backend":"b"}],"backends":{"b":{"grant":"password"}}}"#,
            r#"policy backend "b": grant must be client_credentials, token_exchange or jwt_bearer"#,
        ),
        (
            r#"{"routes":[{"path":"/a/**","backend":"b"}],"backends":{"b":{"requested_token_use":"on_behalf_of"}}}"#,
            r#"policy backend "b": requested_token_use is set, but the grant client_credentials does not use it"#,
        ),
    ];
    for (policy, expected) in cases {
        assert!(problems(policy).contains(expected), "{policy}: {}", problems(policy));
    }
    // The default may name a backend too.
    assert_eq!(problems(r#"{"default":{"backend":"b"},"backends":{"b":{"audience":"x"}}}"#), "");
}

#[test]
fn an_exchange_can_name_tokenbridge_as_the_actor_with_its_own_cached_token() {
    let f = fixture(&[EXCHANGE[0], ("TOKENBRIDGE_BACKEND_ACTOR_TOKEN", "client_credentials")]);
    let alice = f.idp.a.issue("alice", "", 3600);
    let bob = f.idp.a.issue("bob", "", 3600);
    backend_token(&f.engine.decide(&bearer(&alice)));
    backend_token(&f.engine.decide(&bearer(&bob)));
    let actors = f.idp.b.actors();
    assert_eq!(actors.len(), 2);
    assert!(actors.iter().all(|(token, ours)| *ours && *token == actors[0].0), "one own token, reused: {actors:?}");
    // Its own token is got once, plus one exchange per caller.
    assert_eq!(f.idp.b.token_requests(), 3);
    let shown = f.engine.config().unwrap().to_string();
    assert!(shown.contains("TOKENBRIDGE_BACKEND_ACTOR_TOKEN = client_credentials"), "{shown}");
    // Without the setting, no actor is sent.
    let f = fixture(&EXCHANGE);
    backend_token(&f.engine.decide(&bearer(&f.idp.a.issue("alice", "", 3600))));
    assert!(f.idp.b.actors().is_empty());
}

#[test]
fn a_refresh_idp_b_refuses_ends_the_callers_old_token_and_only_an_outage_keeps_it() {
    for (status, body, served) in [
        (403, r#"{"error":"access_denied"}"#, false),
        (400, r#"{"error":"unauthorized_client"}"#, false),
        (503, "{}", true),
    ] {
        let f = fixture(&[EXCHANGE[0], ("TOKENBRIDGE_CACHE_MAX_TTL_SECONDS", "86400")]);
        let alice = f.idp.a.issue("alice", "", 7200);
        let first = backend_token(&f.engine.decide(&bearer(&alice)));
        // Past the early refresh of the fake's one-hour token, before its usable end.
        f.clock.advance(3200);
        f.idp.b.set_token_fault(Some(tokenbridge_tests::fake_idp::Fault::Status(status, body.into())));
        match f.engine.decide(&bearer(&alice)) {
            Outcome::Allow(grant) if served => assert!(grant.context["back_end_token"].ends_with(&first)),
            Outcome::Unavailable(cause) if !served => assert_eq!(cause.dependency, Dependency::BackendToken),
            other => panic!("{status}: {other:?}"),
        }
    }
}

#[test]
fn a_caller_token_inside_the_clock_leeway_is_exchanged_once_not_per_request() {
    let f = fixture(&EXCHANGE);
    let alice = f.idp.a.issue("alice", "", 30);
    backend_token(&f.engine.decide(&bearer(&alice)));
    // Past its `exp`, within the 60 s leeway: the validation cache ended with the token.
    f.clock.advance(40);
    for _ in 0..3 {
        backend_token(&f.engine.decide(&bearer(&alice)));
    }
    assert_eq!(f.idp.b.token_requests(), 2);
}
