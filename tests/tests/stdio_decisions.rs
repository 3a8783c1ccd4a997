//! The built binary in stdio mode against fake IdPs: every outcome, the expiry arithmetic, the
//! caches (by counting IdP requests) and the failures that must end as Unavailable.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenbridge_tests::fake_idp::{A_CLIENT, B_CLIENT, unix_now};
use tokenbridge_tests::harness::{self, Session};
use tokenbridge_tests::{FakeIdp, Fault, IdpPair, stdio, token_payload};

fn with(mut env: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    for (k, v) in extra {
        env.retain(|(name, _)| name != k);
        env.push((k.to_string(), v.to_string()));
    }
    env
}

fn parse_time(s: &Value) -> i64 {
    let s = s.as_str().expect("expiresAt is a string");
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).expect("RFC 3339").unix_timestamp()
}

#[test]
fn valid_token_is_allowed_with_the_backend_token_in_context() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "orders.read", 600);
    let run = stdio(&idp.env(), &token_payload(&token));
    let answer = &run.answers[0];
    assert_eq!(answer["active"], true, "{}", run.stdout);
    assert_eq!(answer["principal"], "alice");
    assert_eq!(answer["scope"], json!(["orders.read"]));
    assert_eq!(answer["clientId"], "caller-app");
    let backend = answer["context"]["back_end_token"].as_str().unwrap();
    assert!(backend.starts_with("Bearer backend-"), "{backend}");
    assert_eq!((idp.a.introspections(), idp.b.token_requests()), (1, 1));
}

#[test]
fn expires_at_is_the_callers_expiry_when_the_backend_token_lives_longer() {
    let idp = IdpPair::start();
    idp.b.set_token_ttl(Some(3600));
    let token = idp.a.issue("alice", "", 600);
    let before = unix_now();
    let run = stdio(&idp.env(), &token_payload(&token));
    let expires = parse_time(&run.answers[0]["expiresAt"]);
    assert!((before + 600..=unix_now() + 600).contains(&expires), "{expires} vs now {before}");
}

#[test]
fn expires_at_is_the_backend_expiry_when_the_caller_token_lives_longer() {
    let idp = IdpPair::start();
    idp.b.set_token_ttl(Some(120));
    let token = idp.a.issue("alice", "", 3600);
    let before = unix_now();
    let run = stdio(&idp.env(), &token_payload(&token));
    let expires = parse_time(&run.answers[0]["expiresAt"]);
    assert!((before + 120..=unix_now() + 120).contains(&expires), "{expires} vs now {before}");
    assert!(run.answers[0]["expiresAt"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn caller_token_without_exp_is_bounded_by_the_cache_maximum() {
    let idp = IdpPair::start();
    idp.a.add_token("no-exp", json!({"active": true, "client_id": "svc"}));
    let before = unix_now();
    let run = stdio(&with(idp.env(), &[("TOKENBRIDGE_CACHE_MAX_TTL_SECONDS", "90")]), &token_payload("no-exp"));
    assert_eq!(run.answers[0]["principal"], "svc", "principal falls back to client_id");
    let expires = parse_time(&run.answers[0]["expiresAt"]);
    assert!((before + 90..=unix_now() + 90).contains(&expires));
}

#[test]
fn missing_token_is_denied_without_an_error_code_and_without_calling_an_idp() {
    let idp = IdpPair::start();
    let run = stdio(&idp.env(), r#"{"type":"TOKEN"}"#);
    assert_eq!(run.answers[0], json!({"active": false, "wwwAuthenticate": "Bearer realm=\"tokenbridge\""}));
    assert_eq!((idp.a.introspections(), idp.b.token_requests()), (0, 0));
}

#[test]
fn malformed_credentials_are_invalid_without_calling_an_idp() {
    let idp = IdpPair::start();
    let input = [
        json!({"type":"TOKEN","token":"Basic dXNlcjpwYXNz"}),
        json!({"type":"TOKEN","token":"Bearer"}),
        json!({"type":"TOKEN","token":"Bearer a b"}),
        json!({"type":"TOKEN","token":"token-without-scheme"}),
        json!({"type":"USER_DEFINED","data":{"token":"Bearer \"quoted\""}}),
    ]
    .map(|v| v.to_string())
    .join("\n");
    let run = stdio(&idp.env(), &input);
    assert_eq!(run.answers.len(), 5, "{}", run.stdout);
    for a in &run.answers {
        assert_eq!(a["wwwAuthenticate"], "Bearer realm=\"tokenbridge\", error=\"invalid_token\"");
    }
    assert_eq!((idp.a.introspections(), idp.b.token_requests()), (0, 0));
}

#[test]
fn inactive_token_is_denied_and_no_backend_token_is_fetched() {
    let idp = IdpPair::start();
    let run = stdio(&idp.env(), &token_payload("unknown-token"));
    assert_eq!(run.answers[0]["active"], false);
    assert_eq!(run.answers[0]["wwwAuthenticate"], "Bearer realm=\"tokenbridge\", error=\"invalid_token\"");
    assert_eq!((idp.a.introspections(), idp.b.token_requests()), (1, 0));
}

#[test]
fn expired_token_that_the_idp_still_calls_active_is_denied() {
    let idp = IdpPair::start();
    idp.a.add_token("stale", json!({"active": true, "sub": "a", "exp": unix_now() - 3600}));
    let run = stdio(&idp.env(), &token_payload("stale"));
    assert_eq!(run.answers[0]["active"], false);
    assert_eq!(run.log[0]["reason"], "expired");
}

#[test]
fn token_lacking_a_required_scope_gets_insufficient_scope() {
    let idp = IdpPair::start();
    let env = with(idp.env(), &[("TOKENBRIDGE_REQUIRED_SCOPES", "orders.read orders.write")]);
    let partial = idp.a.issue("alice", "orders.read", 600);
    let full = idp.a.issue("bob", "orders.write other orders.read", 600);
    let run = stdio(&env, &format!("{}\n{}", token_payload(&partial), token_payload(&full)));
    assert_eq!(
        run.answers[0],
        json!({"active": false, "wwwAuthenticate":
            "Bearer realm=\"tokenbridge\", error=\"insufficient_scope\", scope=\"orders.read orders.write\""})
    );
    assert_eq!(run.answers[1]["active"], true);
    assert_eq!(run.answers[1]["principal"], "bob");
    assert_eq!(run.log[0]["principal"], "alice", "a scope denial names whom it refused");
}

#[test]
fn a_hundred_decisions_for_one_token_cost_one_call_to_each_idp() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    let input = vec![token_payload(&token); 100].join("\n");
    let run = stdio(&idp.env(), &input);
    assert_eq!(run.answers.len(), 100);
    assert!(run.answers.iter().all(|a| a["active"] == true));
    assert_eq!((idp.a.introspections(), idp.b.token_requests()), (1, 1));
}

#[test]
fn a_hundred_tokens_cost_a_hundred_introspections_and_one_backend_token() {
    let idp = IdpPair::start();
    let input: Vec<String> = (0..100).map(|i| token_payload(&idp.a.issue(&format!("user{i}"), "", 600))).collect();
    let run = stdio(&idp.env(), &input.join("\n"));
    assert!(run.answers.iter().all(|a| a["active"] == true));
    assert_eq!(run.answers.len(), 100);
    assert_eq!((idp.a.introspections(), idp.b.token_requests()), (100, 1));
}

#[test]
fn inactive_answers_are_cached_briefly() {
    let idp = IdpPair::start();
    let input = vec![token_payload("unknown"); 5].join("\n");
    let run = stdio(&idp.env(), &input);
    assert!(run.answers.iter().all(|a| a["active"] == false));
    assert_eq!(idp.a.introspections(), 1);
}

#[test]
fn a_revoked_token_is_refused_once_its_cache_entry_ends() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    let env = with(idp.env(), &[("TOKENBRIDGE_CACHE_MAX_TTL_SECONDS", "1")]);
    let mut session = Session::start(&env);
    assert_eq!(session.ask(&token_payload(&token))["active"], true);
    idp.a.revoke(&token);
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(session.ask(&token_payload(&token))["active"], false);
    session.finish();
    assert_eq!(idp.a.introspections(), 2);
}

#[test]
fn a_malformed_line_gets_its_own_error_and_the_next_line_is_answered() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    let input = format!(
        "this is not json\n{{\"type\":\"NOPE\"}}\n[1,2]\n{}\n{{\"type\":\"TOKEN\",\n \"token\": \"Bearer {token}\"\n}}\n",
        token_payload(&token)
    );
    let run = stdio(&idp.env(), &input);
    assert_eq!(run.answers.len(), 5, "{}", run.stdout);
    for a in &run.answers[..3] {
        assert_eq!(a["error"], "invalid_payload", "{a}");
        assert!(a.get("active").is_none());
    }
    assert_eq!(run.answers[3]["active"], true);
    assert_eq!(run.answers[4]["active"], true, "a document spread over lines is one request");
    assert!(run.success);
}

/// The IdP a failure is at.
#[derive(Debug, Clone, Copy)]
enum Side {
    /// IdP A, introspection.
    A,
    /// IdP B, backend tokens.
    B,
}

/// How the IdP fails.
#[derive(Debug)]
enum Break {
    /// It plays this fault.
    Fault(Fault),
    /// Nothing listens at its address.
    Refused,
    /// It no longer knows our client secret.
    ClientRotated,
}

impl Side {
    fn fake(self, idp: &IdpPair) -> &FakeIdp {
        match self {
            Side::A => &idp.a,
            Side::B => &idp.b,
        }
    }

    fn client(self) -> (&'static str, &'static str) {
        match self {
            Side::A => A_CLIENT,
            Side::B => B_CLIENT,
        }
    }

    fn set_fault(self, idp: &IdpPair, fault: Option<Fault>) {
        match self {
            Side::A => idp.a.set_introspect_fault(fault),
            Side::B => idp.b.set_token_fault(fault),
        }
    }

    /// The setting that points at this IdP, and the path of its endpoint.
    fn url_setting(self) -> (&'static str, &'static str) {
        match self {
            Side::A => ("TOKENBRIDGE_INTROSPECTION_URL", "/introspect"),
            Side::B => ("TOKENBRIDGE_BACKEND_TOKEN_URL", "/token"),
        }
    }
}

/// Each IdP failure at either IdP ends as Unavailable (no `active`, `error: unavailable`) within
/// the timeout, never as allow or deny; failures are not remembered, so the next decision once
/// the IdP is healthy again succeeds.
fn assert_unavailable_then_recovered(side: Side, how: Break, expected_cause: &str) {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    let mut env = with(idp.env(), &[("TOKENBRIDGE_TIMEOUT_MS", "700"), ("TOKENBRIDGE_CONNECT_TIMEOUT_MS", "300")]);
    let (setting, path) = side.url_setting();
    let closed = closed_port_url(path);
    match &how {
        Break::Fault(fault) => side.set_fault(&idp, Some(fault.clone())),
        Break::Refused => env = with(env, &[(setting, &closed)]),
        Break::ClientRotated => side.fake(&idp).add_client(side.client().0, "rotated-elsewhere"),
    }
    let mut session = Session::start(&env);
    let started = Instant::now();
    let a = session.ask(&token_payload(&token));
    let took = started.elapsed();
    assert_eq!(a["error"], "unavailable", "{how:?}: {a}");
    assert_eq!(a["cause"], expected_cause, "{how:?}: {a}");
    assert!(a.get("active").is_none(), "{how:?}: {a}");
    if let Break::Fault(Fault::StatusRetryAfter(_, secs)) = how {
        assert_eq!(a["retryAfter"], secs, "{a}");
    }
    // The 700 ms timeout, and some slack for a debug build; a hang would take minutes.
    assert!(took < Duration::from_secs(2), "{how:?} took {took:?}");
    if let Side::A = side {
        assert_eq!(idp.b.token_requests(), 0, "{how:?}: no backend token for an undecided caller");
    }

    // Healthy again: the fault cleared, the IdP up at its address, our secret known again.
    let _revived = match how {
        Break::Fault(_) => {
            side.set_fault(&idp, None);
            None
        }
        Break::ClientRotated => {
            side.fake(&idp).add_client(side.client().0, side.client().1);
            None
        }
        Break::Refused => Some(revive(side, &closed, &token)),
    };
    let a = session.ask(&token_payload(&token));
    assert_eq!(a["active"], true, "{how:?}: after recovery {a}");
    let log = session.finish();
    let first: Value = log.lines().find_map(|l| serde_json::from_str(l).ok()).unwrap_or_default();
    assert_eq!(first["outcome"], "unavailable", "{log}");
}

/// An IdP at `url`, where nothing listened before, that knows our client and `token`.
fn revive(side: Side, url: &str, token: &str) -> FakeIdp {
    let addr = url.trim_start_matches("http://").split('/').next().unwrap_or_default();
    let idp = FakeIdp::start_on(addr);
    idp.add_client(side.client().0, side.client().1);
    idp.add_token(token, json!({"active": true, "sub": "alice", "exp": unix_now() + 600}));
    idp
}

fn closed_port_url(path: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}{path}")
}

#[test]
fn every_introspection_failure_is_unavailable_until_idp_a_is_healthy_again() {
    let cases = [
        (Break::Refused, "introspection_unreachable"),
        (Break::Fault(Fault::Silent), "introspection_timeout"),
        (Break::Fault(Fault::Status(500, "{}".into())), "introspection_bad_status"),
        (Break::Fault(Fault::Status(503, "down".into())), "introspection_bad_status"),
        (Break::Fault(Fault::StatusRetryAfter(429, 17)), "introspection_bad_status"),
        (Break::Fault(Fault::Status(200, "<html>login</html>".into())), "introspection_malformed_answer"),
        (Break::Fault(Fault::Status(200, r#"{"active":true,"#.into())), "introspection_malformed_answer"),
        (
            Break::Fault(Fault::Status(200, r#"{"active":"true","sub":"alice"}"#.into())),
            "introspection_malformed_answer",
        ),
        (Break::ClientRotated, "introspection_client_rejected"),
    ];
    for (how, cause) in cases {
        assert_unavailable_then_recovered(Side::A, how, cause);
    }
}

#[test]
fn every_backend_token_failure_is_unavailable_until_idp_b_is_healthy_again() {
    let cases = [
        (Break::Refused, "backend_token_unreachable"),
        (Break::Fault(Fault::Silent), "backend_token_timeout"),
        (Break::Fault(Fault::Status(500, "{}".into())), "backend_token_bad_status"),
        (Break::Fault(Fault::Status(503, "down".into())), "backend_token_bad_status"),
        (Break::Fault(Fault::StatusRetryAfter(429, 17)), "backend_token_bad_status"),
        (Break::Fault(Fault::Status(200, "<html>login</html>".into())), "backend_token_malformed_answer"),
        (Break::Fault(Fault::Status(200, "not json".into())), "backend_token_malformed_answer"),
        (Break::ClientRotated, "backend_token_client_rejected"),
    ];
    for (how, cause) in cases {
        assert_unavailable_then_recovered(Side::B, how, cause);
    }
}

#[test]
fn a_rotated_secret_is_fetched_again_after_invalid_client() {
    let idp = IdpPair::start();
    let dir = std::env::temp_dir().join(format!("tb-rotate-{}", std::process::id()));
    std::fs::write(&dir, format!("{}\n", A_CLIENT.1)).unwrap();
    let file_ref = format!("file:{}", dir.display());
    let env = with(
        idp.env(),
        &[("TOKENBRIDGE_INTROSPECTION_CLIENT_SECRET", &file_ref), ("TOKENBRIDGE_SECRET_REFRESH_SECONDS", "1")],
    );
    let mut session = Session::start(&env);
    assert_eq!(session.ask(&token_payload(&idp.a.issue("a", "", 600)))["active"], true);
    // Rotation: the IdP and the secret store change together.
    idp.a.add_client(A_CLIENT.0, "rotated-s3cret");
    std::fs::write(&dir, "rotated-s3cret\n").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let answer = session.ask(&token_payload(&idp.a.issue("b", "", 600)));
    let log = session.finish();
    std::fs::remove_file(&dir).unwrap();
    assert_eq!(answer["active"], true, "{answer}\n{log}");
    assert_eq!(idp.a.rejected_auth(), 1, "one rejected call, then the retry with the new secret");
}

#[test]
fn a_bad_configuration_answers_unavailable_and_logs_every_problem() {
    let env = vec![("TOKENBRIDGE_INTROSPECTION_URL".to_string(), "http://idp.example/introspect".to_string())];
    let run = stdio(&env, &format!("{}\n{}", token_payload("t"), token_payload("u")));
    assert_eq!(run.answers.len(), 2, "the process keeps answering");
    for a in &run.answers {
        assert_eq!(a["cause"], "configuration_invalid");
    }
    let detail = run.log[0]["detail"].as_str().unwrap();
    assert!(detail.contains("must use https"), "{detail}");
    assert!(detail.contains("TOKENBRIDGE_BACKEND_TOKEN_URL (or back_end_token_endpoint) is required"), "{detail}");
}

#[test]
fn the_seeds_six_keys_alone_give_a_working_authorizer() {
    let idp = IdpPair::start();
    let env = idp.seed_env();
    let token = idp.a.issue("alice", "", 600);
    let run = stdio(&env, &token_payload(&token));
    assert_eq!(run.answers[0]["active"], true, "{}", run.stdout);
}

#[test]
fn vault_secret_references_without_a_resource_principal_say_what_is_missing() {
    let idp = IdpPair::start();
    let env = with(idp.env(), &[("TOKENBRIDGE_BACKEND_CLIENT_SECRET", "ocid1.vaultsecret.oc1.iad.example")]);
    let token = idp.a.issue("alice", "", 600);
    let run = stdio(&env, &token_payload(&token));
    assert_eq!(run.answers[0]["cause"], "secret_invalid");
    let missing = "OCI_RESOURCE_PRINCIPAL_RPST is not set";
    assert!(run.log[0]["detail"].as_str().unwrap().contains(missing), "{}", run.stderr);
    let check = harness::run(&["check-config"], &env, "");
    assert!(!check.success);
    assert!(check.stdout.contains(&format!("TOKENBRIDGE_BACKEND_CLIENT_SECRET: {missing}")), "{}", check.stdout);
}

#[test]
fn check_config_lists_every_problem_and_redacts_secrets() {
    let idp = IdpPair::start();
    let good = harness::run(&["check-config"], &idp.env(), "");
    assert!(good.success, "{}", good.stdout);
    assert!(good.stdout.contains("configuration OK"));
    assert!(!good.stdout.contains(A_CLIENT.1) && !good.stdout.contains(B_CLIENT.1), "{}", good.stdout);

    let bad = harness::run(
        &["check-config"],
        &with(idp.env(), &[("TOKENBRIDGE_TIMEOUT_MS", "never"), ("TOKENBRIDGE_BACKEND_TOKEN_URL", "ftp://x/")]),
        "",
    );
    assert!(!bad.success);
    assert!(bad.stdout.contains("2 problem(s) found"), "{}", bad.stdout);
}

#[test]
fn check_config_resolves_the_secrets_even_when_other_settings_are_invalid() {
    let idp = IdpPair::start();
    let env = with(
        idp.env(),
        &[("TOKENBRIDGE_TIMEOUT_MS", "never"), ("TOKENBRIDGE_BACKEND_CLIENT_SECRET", "file:/nonexistent/secret")],
    );
    let check = harness::run(&["check-config"], &env, "");
    assert!(!check.success);
    assert!(check.stdout.contains("problem: TOKENBRIDGE_TIMEOUT_MS must be"), "{}", check.stdout);
    assert!(check.stdout.contains("problem: TOKENBRIDGE_BACKEND_CLIENT_SECRET: "), "{}", check.stdout);
    assert!(check.stdout.contains("2 problem(s) found"), "{}", check.stdout);
}

#[test]
fn check_config_reports_adapter_settings_that_would_stop_a_mode_at_start() {
    let idp = IdpPair::start();
    let env = with(
        idp.env(),
        &[
            ("TOKENBRIDGE_LAMBDA_POLICY_RESOURCE", "everything"),
            ("TOKENBRIDGE_HTTP_WORKERS", "0"),
            ("TOKENBRIDGE_LISTEN", "nowhere"),
        ],
    );
    let check = harness::run(&["check-config"], &env, "");
    assert!(!check.success);
    for expected in [
        "problem: TOKENBRIDGE_LAMBDA_POLICY_RESOURCE must be stage, method or routes, got \"everything\"",
        "problem: TOKENBRIDGE_HTTP_WORKERS must be 1-1024",
        "problem: \"nowhere\" is not a listen address",
        "3 problem(s) found",
    ] {
        assert!(check.stdout.contains(expected), "missing {expected:?} in:\n{}", check.stdout);
    }
}

#[test]
fn a_secret_in_an_idp_url_is_not_repeated_by_check_config_or_the_decision_log() {
    let idp = IdpPair::start();
    for url in ["https://u:hunter2@/t", "https://idp.example/t?client_secret=hunter2"] {
        let env = with(idp.env(), &[("TOKENBRIDGE_INTROSPECTION_URL", url)]);
        let check = harness::run(&["check-config"], &env, "");
        assert!(check.stdout.contains("problem: TOKENBRIDGE_INTROSPECTION_URL: "), "{}", check.stdout);
        let run = stdio(&env, &token_payload("t"));
        assert_eq!(run.answers[0]["cause"], "configuration_invalid");
        for output in [&check.stdout, &check.stderr, &run.stdout, &run.stderr] {
            assert!(!output.contains("hunter2"), "{url}: {output}");
        }
    }
}

#[test]
fn no_token_or_secret_reaches_stdout_or_stderr_except_the_backend_token_in_context() {
    let idp = IdpPair::start();
    let env = with(idp.env(), &[("TOKENBRIDGE_REQUIRED_SCOPES", "needed")]);
    let good = idp.a.issue("alice", "needed", 600);
    let weak = idp.a.issue("bob", "other", 600);
    let input = [
        token_payload(&good),
        token_payload(&weak),
        token_payload("some-unknown-caller-token"),
        format!(r#"{{"type":"TOKEN","token":"Bearer {good}"#),
        format!("{{\"type\":\"TOKEN\",\"token\":\"Bearer {good}\"}} trailing"),
    ]
    .join("\n");
    let run = stdio(&env, &input);
    for needle in [good.as_str(), weak.as_str(), "some-unknown-caller-token", A_CLIENT.1, B_CLIENT.1] {
        assert!(!run.stderr.contains(needle), "stderr leaks {needle}:\n{}", run.stderr);
        assert!(!run.stdout.contains(needle), "stdout leaks {needle}:\n{}", run.stdout);
    }
    let backend = run.answers[0]["context"]["back_end_token"].as_str().unwrap().trim_start_matches("Bearer ");
    assert!(!run.stderr.contains(backend), "the backend token is logged");
}

#[test]
fn every_decision_logs_one_json_line() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    let run =
        stdio(&idp.env(), &format!("{}\n{}\n{}", token_payload(&token), token_payload(&token), "{\"type\":\"TOKEN\"}"));
    assert_eq!(run.log.len(), 3, "{}", run.stderr);
    assert_eq!(run.log[0]["validation"], "miss");
    assert_eq!(run.log[1]["validation"], "hit");
    assert_eq!(run.log[1]["backend"], "hit");
    assert_eq!(run.log[0]["token"], run.log[1]["token"]);
    assert_eq!(run.log[0]["token"].as_str().unwrap().len(), 12);
    assert_eq!(run.log[2]["reason"], "missing_token");
}

#[test]
fn check_config_reports_a_client_authentication_method_the_idps_discovery_document_does_not_list() {
    let idp = IdpPair::start();
    idp.a.serve_discovery(&[], &["client_secret_basic", "private_key_jwt"]);
    idp.b.serve_discovery(&["client_secret_post", "private_key_jwt"], &[]);
    let check = harness::run(&["check-config"], &idp.env(), "");
    assert!(!check.success, "{}", check.stdout);
    let a =
        format!("TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH=client_secret_basic: listed by {}/.well-known/", idp.a.url());
    assert!(check.stdout.contains(&a), "{}", check.stdout);
    let b = "problem: client authentication: TOKENBRIDGE_BACKEND_CLIENT_AUTH=client_secret_basic: ";
    assert!(check.stdout.contains(b), "{}", check.stdout);
    assert!(check.stdout.contains("(it lists: client_secret_post, private_key_jwt)"), "{}", check.stdout);
    // Without a discovery document, nothing is claimed either way.
    let quiet = IdpPair::start();
    let check = harness::run(&["check-config"], &quiet.env(), "");
    assert!(check.success, "{}", check.stdout);
    assert!(check.stdout.contains("no discovery document lists this endpoint; not checked"), "{}", check.stdout);
}

/// check-config reports a bad Lambda metrics setting, as the Lambda runtime would refuse it.
#[test]
fn check_config_names_a_bad_lambda_metrics_setting() {
    let idp = tokenbridge_tests::IdpPair::start();
    let mut env = idp.env();
    env.push(("TOKENBRIDGE_LAMBDA_METRICS_INTERVAL_SECONDS".into(), "0".into()));
    let run = tokenbridge_tests::harness::run(&["check-config"], &env, "");
    assert!(!run.success, "{}", run.stdout);
    assert!(run.stdout.contains("TOKENBRIDGE_LAMBDA_METRICS_INTERVAL_SECONDS"), "{}", run.stdout);
}
