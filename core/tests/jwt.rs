//! JWT access tokens verified locally against a (fake) issuer's JWKS: the algorithms, every
//! forgery and claim failure, key rotation, JWKS outages, unknown-`kid` floods, and the warm
//! path that makes no network request.

use std::collections::HashMap;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, Header};
use serde_json::json;
use tokenbridge_core::testing::ManualClock;
use tokenbridge_core::{Cause, Config, Denial, Dependency, Engine, Failure, Outcome, Request, Route};
use tokenbridge_tests::IdpPair;
use tokenbridge_tests::fake_idp::unix_now;
use tokenbridge_tests::jwt_keys::{FakeIssuer, SigningKey, forged, hs256};

struct Fixture {
    idp: IdpPair,
    issuer: FakeIssuer,
    engine: Engine,
    clock: Arc<ManualClock>,
    log: Arc<Mutex<Vec<String>>>,
}

fn fixture(keys: &[&SigningKey], extra: &[(&str, &str)]) -> Fixture {
    fixture_with(keys, |_| extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

/// A fixture whose extra settings may name the fake issuer (its URL, its JWKS).
fn fixture_with(keys: &[&SigningKey], extra: impl FnOnce(&FakeIssuer) -> Vec<(String, String)>) -> Fixture {
    let idp = IdpPair::start();
    let issuer = FakeIssuer::start(keys);
    let mut env: HashMap<String, String> = idp.env().into_iter().collect();
    env.insert("TOKENBRIDGE_ISSUER".into(), issuer.url.clone());
    env.insert("TOKENBRIDGE_AUDIENCE".into(), "api".into());
    env.insert("TOKENBRIDGE_MODE".into(), "jwt".into());
    env.extend(extra(&issuer));
    let clock = Arc::new(ManualClock::at(unix_now()));
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let config = Config::from_lookup(&|k| env.get(k).cloned());
    let engine = Engine::builder(config)
        .clock(clock.clone())
        .log_sink(move |l| sink.lock().unwrap().push(l.to_string()))
        .build();
    Fixture { idp, issuer, engine, clock, log }
}

impl Fixture {
    fn decide(&self, token: &str) -> Outcome {
        self.engine.decide(&Request::bearer(format!("Bearer {token}")))
    }

    /// Decides every token at once, one thread each, released together.
    fn decide_together(&self, tokens: &[String]) -> Vec<Outcome> {
        let start = Barrier::new(tokens.len());
        std::thread::scope(|s| {
            let threads: Vec<_> = tokens
                .iter()
                .map(|token| {
                    let start = &start;
                    s.spawn(move || {
                        start.wait();
                        self.decide(token)
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        })
    }

    fn now(&self) -> i64 {
        use tokenbridge_core::testing::Clock;
        self.clock.now()
    }

    fn valid(&self, key: &SigningKey) -> String {
        key.sign(&self.issuer.claims("api", "alice", "orders.read", self.now()))
    }

    fn last_reason(&self) -> String {
        let line = self.log.lock().unwrap().last().cloned().unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(&line).unwrap()["reason"].as_str().unwrap_or("").to_string()
    }
}

/// A valid token for `sub`, so that concurrent callers do not share one cached verdict.
/// A fixture whose issuer signed with `old` (one decision made with it), then published `new`
/// beside it: the keys in hand lack `new`.
fn rotated(extra: &[(&str, &str)]) -> (Fixture, SigningKey, SigningKey) {
    let old = SigningKey::ec("old", Algorithm::ES256);
    let new = SigningKey::ec("new", Algorithm::ES256);
    let f = fixture(&[&old], extra);
    assert_allowed(&f.decide(&f.valid(&old)));
    f.issuer.publish(&[&old, &new]);
    (f, old, new)
}

fn key_token(f: &Fixture, key: &SigningKey, sub: &str) -> String {
    key.sign(&f.issuer.claims("api", sub, "orders.read", f.now()))
}

fn assert_allowed(outcome: &Outcome) {
    assert!(matches!(outcome, Outcome::Allow(g) if g.principal == "alice"), "{outcome:?}");
}

fn assert_denied(f: &Fixture, outcome: Outcome, reason: &str) {
    assert_eq!(outcome, Outcome::Deny(Denial::InvalidToken));
    assert_eq!(f.last_reason(), reason);
}

#[test]
fn every_asymmetric_algorithm_verifies() {
    let keys = [
        SigningKey::rsa("rs256", Algorithm::RS256),
        SigningKey::rsa("rs512", Algorithm::RS512),
        SigningKey::rsa("ps256", Algorithm::PS256),
        SigningKey::ec("es256", Algorithm::ES256),
        SigningKey::ec("es384", Algorithm::ES384),
        SigningKey::ed25519("ed"),
    ];
    let f = fixture(&keys.iter().collect::<Vec<_>>(), &[]);
    for key in &keys {
        assert_allowed(&f.decide(&f.valid(key)));
    }
    assert_eq!(f.idp.a.introspections(), 0, "JWT mode never introspects");
}

#[test]
fn a_tampered_signature_is_refused() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[]);
    let token = f.valid(&key);
    let (rest, sig) = token.rsplit_once('.').unwrap();
    let mut bytes = sig.as_bytes().to_vec();
    bytes[5] = if bytes[5] == b'A' { b'B' } else { b'A' };
    assert_denied(&f, f.decide(&format!("{rest}.{}", String::from_utf8(bytes).unwrap())), "bad_signature");
}

#[test]
fn claims_changed_after_signing_are_refused() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[]);
    let token = f.valid(&key);
    let parts: Vec<&str> = token.split('.').collect();
    let evil = forged(&json!({"alg": "ES256", "kid": "k"}), &f.issuer.claims("api", "mallory", "admin", f.now()), b"x");
    let evil_claims = evil.split('.').nth(1).unwrap();
    assert_denied(&f, f.decide(&format!("{}.{}.{}", parts[0], evil_claims, parts[2])), "bad_signature");
}

#[test]
fn alg_none_is_refused() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[]);
    let token = forged(&json!({"alg": "none", "kid": "k"}), &f.issuer.claims("api", "alice", "", f.now()), b"");
    let outcome = f.decide(&token);
    assert_eq!(outcome, Outcome::Deny(Denial::InvalidToken), "{outcome:?}");
}

#[test]
fn hs256_signed_with_the_public_key_is_refused() {
    let key = SigningKey::rsa("k", Algorithm::RS256);
    let f = fixture(&[&key], &[]);
    let public = serde_json::to_vec(&key.jwk).unwrap();
    let token = hs256("k", &public, &f.issuer.claims("api", "alice", "", f.now()));
    assert_eq!(f.decide(&token), Outcome::Deny(Denial::InvalidToken));
    let n = key.jwk["n"].as_str().unwrap().as_bytes().to_vec();
    assert_eq!(
        f.decide(&hs256("k", &n, &f.issuer.claims("api", "alice", "", f.now()))),
        Outcome::Deny(Denial::InvalidToken)
    );
}

#[test]
fn a_header_alg_that_does_not_fit_the_key_is_refused() {
    let rsa = SigningKey::rsa("k", Algorithm::RS256);
    let f = fixture(&[&rsa], &[]);
    // The same RSA key, declared RS256 in the JWKS, used for PS256.
    let ps = SigningKey::rsa("k", Algorithm::PS256);
    assert_eq!(f.decide(&f.valid(&ps)), Outcome::Deny(Denial::InvalidToken));
}

#[test]
fn time_claims_are_checked_with_the_leeway() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[("TOKENBRIDGE_CLOCK_LEEWAY_SECONDS", "60")]);
    let now = f.now();
    let with = |patch: serde_json::Value| {
        let mut c = f.issuer.claims("api", "alice", "", now);
        c.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
        key.sign(&c)
    };
    assert_denied(&f, f.decide(&with(json!({"exp": now - 61}))), "expired");
    assert_allowed(&f.decide(&with(json!({"exp": now - 59}))));
    assert_denied(&f, f.decide(&with(json!({"nbf": now + 61}))), "not_yet_valid");
    assert_denied(&f, f.decide(&with(json!({"iat": now + 61}))), "issued_in_the_future");
}

#[test]
fn missing_exp_wrong_audience_and_wrong_issuer_are_refused() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[]);
    let mut no_exp = f.issuer.claims("api", "alice", "", f.now());
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_denied(&f, f.decide(&key.sign(&no_exp)), "missing_claim");
    assert_denied(&f, f.decide(&key.sign(&f.issuer.claims("other-api", "alice", "", f.now()))), "wrong_audience");
    let mut elsewhere = f.issuer.claims("api", "alice", "", f.now());
    elsewhere["iss"] = json!("https://attacker.example");
    assert_denied(&f, f.decide(&key.sign(&elsewhere)), "unknown_issuer");
    assert_denied(&f, f.decide("an-opaque-token"), "not_a_jwt");
}

#[test]
fn at_jwt_can_be_required() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[("TOKENBRIDGE_JWT_TYP", "at+jwt")]);
    assert_allowed(&f.decide(&f.valid(&key)));
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k".into());
    header.typ = Some("JWT".into());
    let plain = key.sign_with(header, &f.issuer.claims("api", "alice", "", f.now()));
    assert_denied(&f, f.decide(&plain), "not_an_access_token");
}

#[test]
fn a_new_key_in_the_jwks_is_picked_up_on_its_first_use() {
    let (f, _, new) = rotated(&[]);
    assert_allowed(&f.decide(&f.valid(&new)));
    assert_eq!(f.issuer.jwks_requests(), 2, "one refetch for the unknown kid");
}

#[test]
fn concurrent_tokens_signed_with_a_new_key_all_wait_for_the_one_refetch() {
    let (f, _, new) = rotated(&[]);
    f.issuer.set_jwks_delay(Duration::from_millis(800));
    let tokens: Vec<String> = (0..4).map(|i| key_token(&f, &new, &format!("alice{i}"))).collect();
    let outcomes = f.decide_together(&tokens);
    for outcome in &outcomes {
        assert!(matches!(outcome, Outcome::Allow(_)), "{outcome:?}");
    }
    assert_eq!(f.issuer.jwks_requests(), 2, "the first load and one refetch, shared");
}

#[test]
fn a_request_whose_deadline_passes_while_the_refetch_runs_is_unavailable_not_denied() {
    let (f, _, new) = rotated(&[]);
    f.issuer.set_jwks_delay(Duration::from_millis(800));
    let hurried = key_token(&f, &new, "alice-in-a-hurry");
    std::thread::scope(|s| {
        let first = s.spawn(|| f.decide(&key_token(&f, &new, "alice")));
        while f.issuer.jwks_requests() < 2 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut request = Request::bearer(format!("Bearer {hurried}"));
        request.deadline = Some(Instant::now() + Duration::from_millis(200));
        match f.engine.decide(&request) {
            Outcome::Unavailable(c) => assert_eq!(c.dependency, Dependency::Jwks),
            other => panic!("{other:?}"),
        }
        assert_allowed(&first.join().unwrap());
    });
    let retried = f.decide(&hurried);
    assert!(matches!(retried, Outcome::Allow(_)), "nothing was cached for it: {retried:?}");
    assert_eq!(f.issuer.jwks_requests(), 2);
}

#[test]
fn a_flood_of_unknown_kids_costs_the_idp_one_request_per_penalty_window() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[]);
    assert_allowed(&f.decide(&f.valid(&key)));
    for i in 0..50 {
        let stranger = SigningKey::ec(&format!("forged-{i}"), Algorithm::ES256);
        assert_eq!(f.decide(&f.valid(&stranger)), Outcome::Deny(Denial::InvalidToken));
    }
    assert_eq!(f.issuer.jwks_requests(), 2, "the first load and one refetch");
    f.clock.advance(11);
    let stranger = SigningKey::ec("after-the-window", Algorithm::ES256);
    f.decide(&f.valid(&stranger));
    assert_eq!(f.issuer.jwks_requests(), 3);
}

#[test]
fn keys_are_kept_while_the_jwks_is_down() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[]);
    assert_allowed(&f.decide(&f.valid(&key)));
    f.issuer.set_down(true);
    f.clock.advance(3600);
    let fresh = key.sign(&f.issuer.claims("api", "alice", "", f.now()));
    assert_allowed(&f.decide(&fresh));
    assert!(f.issuer.jwks_requests() >= 2, "a refresh was tried");
}

#[test]
fn a_jwks_outage_without_any_key_is_unavailable_not_a_deny() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    // A refusal would stay cached this long: the retry below shows none was.
    let f = fixture(&[&key], &[("TOKENBRIDGE_CACHE_INACTIVE_TTL_SECONDS", "3600")]);
    f.issuer.set_down(true);
    let token = f.valid(&key);
    assert_unavailable_jwks(f.decide(&token));
    f.issuer.set_down(false);
    assert_allowed(&f.decide(&token));
}

/// The cause of an outcome that must be Unavailable for want of the JWKS.
fn assert_unavailable_jwks(outcome: Outcome) -> Cause {
    match outcome {
        Outcome::Unavailable(c) if c.dependency == Dependency::Jwks => c,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_key_rotated_in_while_the_jwks_is_down_is_unavailable_until_it_is_back_then_allowed() {
    let (f, old, new) = rotated(&[("TOKENBRIDGE_CACHE_INACTIVE_TTL_SECONDS", "3600")]);
    f.issuer.set_down(true);
    let token = f.valid(&new);
    assert_eq!(assert_unavailable_jwks(f.decide(&token)).failure, Failure::Status(503));
    assert_eq!(f.issuer.jwks_requests(), 2, "the refetch for the new kid was tried");
    // Within the penalty window the stale keys answer, and still cannot decide.
    assert_unavailable_jwks(f.decide(&key_token(&f, &new, "alice-again")));
    assert_eq!(f.issuer.jwks_requests(), 2);
    assert_allowed(&f.decide(&f.valid(&old)));
    f.issuer.set_down(false);
    f.clock.advance(11); // past the unknown-kid penalty window
    assert_allowed(&f.decide(&token));
}

#[test]
fn requests_waiting_for_a_refetch_that_fails_are_unavailable_not_denied() {
    let (f, _, new) = rotated(&[]);
    f.issuer.set_down(true);
    f.issuer.set_jwks_delay(Duration::from_millis(500));
    let tokens: Vec<String> = (0..3).map(|i| key_token(&f, &new, &format!("alice{i}"))).collect();
    let outcomes = f.decide_together(&tokens);
    for outcome in outcomes {
        assert_unavailable_jwks(outcome);
    }
    assert_eq!(f.issuer.jwks_requests(), 2, "the first load and one refetch, shared");
}

#[test]
fn a_kid_still_unknown_after_a_successful_refetch_is_refused() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[]);
    assert_allowed(&f.decide(&f.valid(&key)));
    let stranger = SigningKey::ec("stranger", Algorithm::ES256);
    assert_denied(&f, f.decide(&f.valid(&stranger)), "unknown_key");
    assert_eq!(f.issuer.jwks_requests(), 2);
}

#[test]
fn keys_come_from_discovery_when_no_jwks_url_is_set_and_follow_max_age() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[]);
    f.issuer.set_cache_control(Some("max-age=120"));
    assert_allowed(&f.decide(&f.valid(&key)));
    assert_eq!((f.issuer.discovery_requests(), f.issuer.jwks_requests()), (1, 1));
    f.clock.advance(119);
    let again = key.sign(&f.issuer.claims("api", "bob", "", f.now()));
    f.decide(&again);
    assert_eq!(f.issuer.jwks_requests(), 1);
    f.clock.advance(2);
    let later = key.sign(&f.issuer.claims("api", "carol", "", f.now()));
    f.decide(&later);
    assert_eq!(f.issuer.jwks_requests(), 2, "refreshed once max-age passed");
    assert_eq!(f.issuer.discovery_requests(), 1, "discovery is remembered");
}

#[test]
fn a_warm_decision_makes_no_network_request() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[]);
    assert!(f.engine.warm(Duration::from_secs(2)));
    assert!(f.engine.is_ready());
    f.decide(&f.valid(&key)); // fetches the backend token once
    let before =
        (f.issuer.jwks_requests(), f.issuer.discovery_requests(), f.idp.a.introspections(), f.idp.b.token_requests());
    for sub in ["u1", "u2", "u3"] {
        let token = key.sign(&f.issuer.claims("api", sub, "", f.now()));
        assert!(matches!(f.decide(&token), Outcome::Allow(_)));
    }
    let after =
        (f.issuer.jwks_requests(), f.issuer.discovery_requests(), f.idp.a.introspections(), f.idp.b.token_requests());
    assert_eq!(before, after);
}

#[test]
fn auto_mode_verifies_known_jwts_locally_and_introspects_the_rest() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[("TOKENBRIDGE_MODE", "auto")]);
    assert_allowed(&f.decide(&f.valid(&key)));
    assert_eq!(f.idp.a.introspections(), 0);
    let opaque = f.idp.a.issue("bob", "", 600);
    assert!(matches!(f.decide(&opaque), Outcome::Allow(g) if g.principal == "bob"));
    assert_eq!(f.idp.a.introspections(), 1);
}

#[test]
fn a_sensitive_route_introspects_even_a_valid_jwt() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let policy = r#"{"routes":[{"path":"/admin/**","introspect":true}],"default":{"scopes":[]}}"#;
    let f = fixture(&[&key], &[("TOKENBRIDGE_MODE", "auto"), ("TOKENBRIDGE_POLICY", policy)]);
    let token = f.valid(&key);
    let admin = |t: &str| Request {
        credential: Some(format!("Bearer {t}")),
        route: Route { method: Some("GET".into()), path: Some("/admin/users".into()), ..Route::default() },
        ..Request::default()
    };
    // IdP A does not know this JWT (as if revoked): refused on the sensitive route only.
    assert_eq!(f.engine.decide(&admin(&token)), Outcome::Deny(Denial::InvalidToken));
    assert_eq!(f.idp.a.introspections(), 1);
    assert_allowed(&f.decide(&token));
    f.idp.a.add_token(&token, json!({"active": true, "sub": "alice"}));
    f.clock.advance(11);
    assert!(matches!(f.engine.decide(&admin(&token)), Outcome::Allow(_)));
}

#[test]
fn configured_claims_reach_the_context() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[("TOKENBRIDGE_CONTEXT_CLAIMS", "sub email groups address")]);
    let mut claims = f.issuer.claims("api", "alice", "orders.read orders.write", f.now());
    claims["email"] = json!("alice@example.com");
    claims["groups"] = json!(["a", "b"]);
    claims["address"] = json!({"city": "x"});
    match f.decide(&key.sign(&claims)) {
        Outcome::Allow(g) => {
            assert_eq!(g.context["sub"], "alice");
            assert_eq!(g.context["email"], "alice@example.com");
            assert_eq!(g.context["groups"], "a b");
            assert!(!g.context.contains_key("address"));
            assert!(g.context["back_end_token"].starts_with("Bearer "));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_audience_is_required_unless_the_check_is_switched_off() {
    let missing = Config::from_lookup(&|k| match k {
        "TOKENBRIDGE_ISSUER" => Some("https://idp.example".into()),
        "TOKENBRIDGE_BACKEND_TOKEN_URL" => Some("https://b.example/t".into()),
        "TOKENBRIDGE_BACKEND_CLIENT_ID" => Some("b".into()),
        "TOKENBRIDGE_BACKEND_CLIENT_SECRET" => Some("s".into()),
        _ => None,
    });
    assert!(missing.err().unwrap().to_string().contains("an audience is required"));
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[("TOKENBRIDGE_AUDIENCE_CHECK", "off")]);
    assert_allowed(&f.decide(&key.sign(&f.issuer.claims("any-audience", "alice", "", f.now()))));
}

#[test]
fn claims_of_the_wrong_type_make_the_token_malformed_not_skipped() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[]);
    for (claim, value) in
        [("nbf", json!("9999999999")), ("iat", json!("9999999999")), ("sub", json!(5)), ("client_id", json!(["x"]))]
    {
        let mut claims = f.issuer.claims("api", "alice", "", f.now());
        claims[claim] = value.clone();
        assert_denied(&f, f.decide(&key.sign(&claims)), "malformed_claim");
    }
}

#[test]
fn a_token_without_kid_that_stale_keys_cannot_verify_is_unavailable_not_denied() {
    let old = SigningKey::ec("old", Algorithm::ES256);
    let new = SigningKey::ec("new", Algorithm::ES256);
    let f = fixture(&[&old], &[("TOKENBRIDGE_CACHE_INACTIVE_TTL_SECONDS", "3600")]);
    let without_kid = |key: &SigningKey, sub: &str| {
        key.sign_with(Header::new(key.alg), &f.issuer.claims("api", sub, "orders.read", f.now()))
    };
    assert_allowed(&f.decide(&without_kid(&old, "alice")));
    // The keys come due while the JWKS is down, and the issuer has since rotated to a new key.
    f.issuer.publish(&[&old, &new]);
    f.issuer.set_down(true);
    f.clock.advance(301);
    let token = without_kid(&new, "alice");
    assert_unavailable_jwks(f.decide(&token));
    assert_allowed(&f.decide(&without_kid(&old, "alice")));
    f.issuer.set_down(false);
    f.clock.advance(6); // past the failed reload's back-off
    assert_allowed(&f.decide(&token));
}

#[test]
fn a_discovery_outage_is_reported_as_itself_not_as_the_fallbacks_not_found() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[]);
    f.issuer.set_discovery_fault(Some(tokenbridge_tests::Fault::Status(503, String::new())));
    assert_eq!(assert_unavailable_jwks(f.decide(&f.valid(&key))).failure, Failure::Status(503));
    f.issuer.set_discovery_fault(None);
    assert_allowed(&f.decide(&f.valid(&key)));
}

/// RFC 7515 §4.1.11: tokenbridge understands no JWS extension, so any `crit` (and `b64`, which
/// must be critical) is refused, however good the signature.
#[test]
fn a_critical_header_is_refused_whatever_it_names() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[]);
    let claims = f.issuer.claims("api", "alice", "orders.read", f.now());
    let with = |extra: &[(&str, serde_json::Value)]| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k".into());
        header.typ = Some("at+jwt".into());
        for (name, value) in extra {
            match *name {
                "crit" => header.crit = Some(serde_json::from_value(value.clone()).unwrap()),
                other => header.extras.insert(other.to_string(), value.clone()),
            }
        }
        key.sign_with(header, &claims)
    };
    assert!(matches!(f.decide(&with(&[])), Outcome::Allow(_)), "the same token without crit is good");
    for extra in [
        vec![("crit", json!(["urn:x:unknown"])), ("urn:x:unknown", json!(1))],
        vec![("crit", json!(["b64"])), ("b64", json!(false))],
        vec![("crit", json!([]))],
        vec![("b64", json!(false))],
    ] {
        assert_denied(&f, f.decide(&with(&extra)), "critical_header");
    }
}

/// RFC 7515 §4 and RFC 7519 §4: a header or claims set naming a member twice is refused, not
/// read as the last (or first) one says.
#[test]
fn a_member_named_twice_in_header_or_claims_is_refused() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[]);
    let (iss, exp) = (f.issuer.url.clone(), f.now() + 600);
    let claims = format!(r#"{{"iss":"{iss}","aud":"api","sub":"alice","scope":"orders.read","exp":{exp}}}"#);
    let header = r#"{"alg":"ES256","kid":"k","typ":"at+jwt"}"#;
    assert!(matches!(f.decide(&key.sign_raw(header, &claims)), Outcome::Allow(_)), "written by hand, it is good");
    let twice =
        format!(r#"{{"iss":"{iss}","aud":"api","sub":"alice","scope":"orders.read","scope":"admin","exp":{exp}}}"#);
    assert_denied(&f, f.decide(&key.sign_raw(header, &twice)), "malformed_claims");
    let escaped = format!(r#"{{"iss":"{iss}","aud":"api","sub":"alice","\u0073ub":"root","exp":{exp}}}"#);
    assert_denied(&f, f.decide(&key.sign_raw(header, &escaped)), "malformed_claims");
    let header_twice = r#"{"alg":"ES256","kid":"k","typ":"at+jwt","typ":"JWT"}"#;
    assert_denied(&f, f.decide(&key.sign_raw(header_twice, &claims)), "malformed_header");
}

/// RFC 7517 §4.3: a key whose `key_ops` leave out `verify` (or whose `use` is not `sig`) never
/// verifies a signature, even one its material would verify.
#[test]
fn only_keys_published_for_verifying_verify() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let decide_with = |extra: &serde_json::Value| {
        let f = fixture(&[&key], &[]);
        let mut jwk = key.jwk.clone();
        jwk.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        // Beside a usable key, so the set itself is good and only this key is left out.
        f.issuer.publish_raw(vec![jwk, SigningKey::ec("other", Algorithm::ES256).jwk]);
        f.decide(&f.valid(&key))
    };
    for refused in [
        json!({"key_ops": ["encrypt", "wrapKey"]}),
        json!({"key_ops": ["sign"]}),
        json!({"key_ops": []}),
        json!({"use": "enc"}),
        json!({"use": "other"}),
        json!({"use": "sig", "key_ops": ["encrypt"]}),
    ] {
        assert_eq!(decide_with(&refused), Outcome::Deny(Denial::InvalidToken), "{refused}");
    }
    for accepted in [json!({"key_ops": ["verify"]}), json!({"use": "sig", "key_ops": ["sign", "verify"]}), json!({})] {
        assert!(matches!(decide_with(&accepted), Outcome::Allow(_)), "{accepted}");
    }
}

/// A key is parsed for the algorithm its `crv` names: a P-256 point published as `P-384`, or
/// an Ed25519 key published as another curve, verifies nothing.
#[test]
fn a_key_whose_curve_does_not_fit_its_algorithm_verifies_nothing() {
    let ec = SigningKey::ec("ec", Algorithm::ES256);
    let ed = SigningKey::ed25519("ed");
    for (key, crv) in [(&ec, "P-384"), (&ec, "P-521"), (&ed, "Ed448")] {
        let f = fixture(&[key], &[]);
        let mut jwk = key.jwk.clone();
        jwk["crv"] = json!(crv);
        f.issuer.publish_raw(vec![jwk, SigningKey::ec("other", Algorithm::ES256).jwk]);
        assert_eq!(f.decide(&f.valid(key)), Outcome::Deny(Denial::InvalidToken), "{crv}");
    }
}

/// OpenID Connect Discovery §4.3, RFC 8414 §3.3: a discovery document for another issuer lends
/// it no keys; the decision cannot be made (5xx), and the log says why.
#[test]
fn a_discovery_document_for_another_issuer_makes_the_keys_unusable() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    for other in ["https://attacker.example", "{url}/", "{url}/x", ""] {
        let f = fixture(&[&key], &[]);
        let named = other.replace("{url}", &f.issuer.url);
        let doc = json!({"issuer": named, "jwks_uri": f.issuer.jwks_url()});
        f.issuer.set_discovery_fault(Some(tokenbridge_tests::Fault::Status(200, doc.to_string())));
        match f.decide(&f.valid(&key)) {
            Outcome::Unavailable(cause) => {
                assert_eq!((cause.dependency, cause.failure), (Dependency::Jwks, Failure::IssuerMismatch), "{named}")
            }
            other => panic!("{named}: {other:?}"),
        }
        assert!(f.log.lock().unwrap().last().unwrap().contains("jwks_issuer_mismatch"));
        let problems = f.engine.check_keys(Duration::from_secs(2));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].cause, Cause::new(Dependency::Jwks, Failure::IssuerMismatch), "{problems:?}");
        assert!(problems[0].to_string().contains("names another issuer"), "{problems:?}");
    }
}

#[test]
fn times_past_what_rfc_3339_can_write_are_malformed_claims() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[]);
    for exp in [json!(1e300), json!(253_402_300_800i64), json!(-1)] {
        let mut claims = f.issuer.claims("api", "alice", "orders.read", f.now());
        claims["exp"] = exp.clone();
        assert_denied(&f, f.decide(&key.sign(&claims)), "malformed_claim");
    }
}

/// In `auto` mode a local issuer's JWT is verified here or refused: it never reaches IdP A to
/// come back allowed without this issuer's audience check (a reviewer's finding: claims this
/// reader refuses, or an `iss` spelt otherwise, used to send it there).
#[test]
fn in_auto_mode_a_local_issuers_jwt_never_dodges_its_checks_through_introspection() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[("TOKENBRIDGE_MODE", "auto")]);
    let (iss, exp) = (f.issuer.url.clone(), f.now() + 600);
    let vouched = json!({"active": true, "sub": "alice", "iss": iss, "aud": "other", "exp": exp});
    let header = r#"{"alg":"ES256","kid":"k","typ":"at+jwt"}"#;
    let twice = format!(r#"{{"iss":"{iss}","aud":"other","aud":"other","sub":"alice","exp":{exp}}}"#);
    let surrogate = format!(r#"{{"iss":"{iss}","aud":"other","sub":"alice","name":"\ud800","exp":{exp}}}"#);
    for claims in [twice, surrogate] {
        let token = key.sign_raw(header, &claims);
        f.idp.a.add_token(&token, vouched.clone());
        assert_denied(&f, f.decide(&token), "malformed_claims");
    }
    let respelt = key.sign(&json!({"iss": format!("{iss}/"), "aud": "other", "sub": "alice", "exp": exp}));
    f.idp.a.add_token(&respelt, vouched.clone());
    assert_denied(&f, f.decide(&respelt), "not_verified_locally");
    assert_eq!(f.idp.a.introspections(), 1, "only the token tokenbridge could read reached IdP A");
    // An opaque token of the same issuer is IdP A's to vouch for, as before.
    f.idp.a.add_token("opaque-of-the-local-issuer", vouched);
    assert!(matches!(f.decide("opaque-of-the-local-issuer"), Outcome::Allow(_)));
}

/// Amazon Cognito access tokens: no `aud`, the app client in `client_id`, `token_use: access`.
fn cognito_claims(f: &Fixture, client_id: &str, token_use: &str) -> serde_json::Value {
    let now = f.now();
    json!({"iss": f.issuer.url, "sub": "alice", "client_id": client_id, "token_use": token_use,
           "scope": "orders.read", "iat": now, "exp": now + 600, "jti": "j"})
}

#[test]
fn a_cognito_access_token_is_accepted_by_its_client_id_without_an_audience() {
    let key = SigningKey::rsa("k", Algorithm::RS256);
    let f = fixture(&[&key], &[("TOKENBRIDGE_AUDIENCE", ""), ("TOKENBRIDGE_ACCEPTED_CLIENT_IDS", "app1 app2")]);
    for client in ["app1", "app2"] {
        match f.decide(&key.sign(&cognito_claims(&f, client, "access"))) {
            Outcome::Allow(g) => assert_eq!((g.principal.as_str(), g.client_id.as_deref()), ("alice", Some(client))),
            other => panic!("{other:?}"),
        }
    }
    assert_denied(&f, f.decide(&key.sign(&cognito_claims(&f, "other-app", "access"))), "client_not_allowed");
}

#[test]
fn a_cognito_id_token_or_a_token_without_token_use_is_refused() {
    let key = SigningKey::rsa("k", Algorithm::RS256);
    let f = fixture(&[&key], &[("TOKENBRIDGE_AUDIENCE", ""), ("TOKENBRIDGE_ACCEPTED_CLIENT_IDS", "app1")]);
    // Cognito's ID token names the app client in `aud` and says `token_use: id`.
    let mut id_token = cognito_claims(&f, "app1", "id");
    id_token.as_object_mut().unwrap().remove("client_id");
    id_token["aud"] = json!("app1");
    assert_denied(&f, f.decide(&key.sign(&id_token)), "not_an_access_token");
    let mut without = cognito_claims(&f, "app1", "access");
    without.as_object_mut().unwrap().remove("token_use");
    assert_denied(&f, f.decide(&key.sign(&without)), "missing_claim");
    let mut typed = cognito_claims(&f, "app1", "access");
    typed["token_use"] = json!(["access"]);
    assert_denied(&f, f.decide(&key.sign(&typed)), "malformed_claim");
    let mut no_client = cognito_claims(&f, "app1", "access");
    no_client.as_object_mut().unwrap().remove("client_id");
    assert_denied(&f, f.decide(&key.sign(&no_client)), "missing_claim");
}

#[test]
fn client_ids_in_issuers_apply_to_that_issuer_and_stand_in_for_its_audience() {
    let key = SigningKey::rsa("k", Algorithm::RS256);
    let f = fixture_with(&[&key], |issuer| {
        let issuers = json!([{"issuer": format!("{}/pool", issuer.url), "jwks_url": issuer.jwks_url(),
                              "client_ids": ["app1"]}]);
        vec![("TOKENBRIDGE_ISSUERS".into(), issuers.to_string())]
    });
    let mut claims = cognito_claims(&f, "app1", "access");
    claims["iss"] = json!(format!("{}/pool", f.issuer.url));
    assert_allowed(&f.decide(&key.sign(&claims)));
    claims["token_use"] = json!("id");
    assert_denied(&f, f.decide(&key.sign(&claims)), "not_an_access_token");
    // The other issuer (TOKENBRIDGE_ISSUER) still wants its audience, and no client check.
    assert_allowed(&f.decide(&f.valid(&key)));
}

/// Entra's multi-tenant issuer, with tenants `t1` and `t2` accepted and the shared JWKS.
fn entra(keys: &[&SigningKey]) -> Fixture {
    fixture_with(keys, |issuer| {
        let issuers = json!([{"issuer": format!("{}/{{tenantid}}/v2.0", issuer.url), "tenants": ["t1", "t2"],
                              "audiences": ["api"], "jwks_url": issuer.jwks_url()}]);
        vec![("TOKENBRIDGE_ISSUERS".into(), issuers.to_string())]
    })
}

fn tenant_claims(f: &Fixture, iss_tenant: &str, tid: Option<&str>) -> serde_json::Value {
    let mut claims = f.issuer.claims("api", "alice", "orders.read", f.now());
    claims["iss"] = json!(format!("{}/{iss_tenant}/v2.0", f.issuer.url));
    if let Some(tid) = tid {
        claims["tid"] = json!(tid);
    }
    claims
}

#[test]
fn a_multi_tenant_issuer_accepts_the_listed_tenants_each_under_its_own_issuer() {
    let key = SigningKey::rsa("k", Algorithm::RS256);
    let f = entra(&[&key]);
    assert_allowed(&f.decide(&key.sign(&tenant_claims(&f, "t1", Some("t1")))));
    assert_allowed(&f.decide(&key.sign(&tenant_claims(&f, "t2", Some("t2")))));
    // Another tenant is not accepted implicitly, however good its signature.
    assert_denied(&f, f.decide(&key.sign(&tenant_claims(&f, "t3", Some("t3")))), "unknown_issuer");
}

#[test]
fn a_multi_tenant_token_must_name_its_tenant_in_tid_as_in_iss() {
    let key = SigningKey::rsa("k", Algorithm::RS256);
    let f = entra(&[&key]);
    assert_denied(&f, f.decide(&key.sign(&tenant_claims(&f, "t1", Some("t2")))), "wrong_issuer");
    assert_denied(&f, f.decide(&key.sign(&tenant_claims(&f, "t1", Some("t3")))), "tenant_not_allowed");
    assert_denied(&f, f.decide(&key.sign(&tenant_claims(&f, "t1", None))), "missing_claim");
    let mut typed = tenant_claims(&f, "t1", None);
    typed["tid"] = json!(["t1"]);
    assert_denied(&f, f.decide(&key.sign(&typed)), "malformed_claim");
    // The template's own spelling names no tenant.
    let literal = tenant_claims(&f, "{tenantid}", Some("{tenantid}"));
    assert_denied(&f, f.decide(&key.sign(&literal)), "unknown_issuer");
}

/// The configuration of a lone issuer with these extra settings, as its problems or `Ok`.
fn issuer_config(extra: &[(&str, &str)]) -> Result<(), String> {
    let env: HashMap<&str, &str> = [
        ("TOKENBRIDGE_BACKEND_TOKEN_URL", "https://b.example/t"),
        ("TOKENBRIDGE_BACKEND_CLIENT_ID", "b"),
        ("TOKENBRIDGE_BACKEND_CLIENT_SECRET", "s"),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    .collect();
    Config::from_lookup(&|k| env.get(k).map(|v| v.to_string())).map(|_| ()).map_err(|e| e.to_string())
}

#[test]
fn a_tenant_template_needs_its_tenants_and_its_jwks_url() {
    let entra = "https://login.microsoftonline.com/{tenantid}/v2.0";
    let keys = "https://login.microsoftonline.com/common/discovery/v2.0/keys";
    let base = [("TOKENBRIDGE_ISSUER", entra), ("TOKENBRIDGE_AUDIENCE", "api")];
    let with = |extra: &[(&'static str, &'static str)]| issuer_config(&[&base[..], extra].concat());
    assert!(with(&[("TOKENBRIDGE_TENANTS", "t1"), ("TOKENBRIDGE_JWKS_URL", keys)]).is_ok());
    let no_tenants = with(&[("TOKENBRIDGE_JWKS_URL", keys)]).unwrap_err();
    assert!(no_tenants.contains("no tenant is accepted implicitly"), "{no_tenants}");
    let no_jwks = with(&[("TOKENBRIDGE_TENANTS", "t1")]).unwrap_err();
    assert!(no_jwks.contains("needs the JWKS URL"), "{no_jwks}");
    let bad = with(&[("TOKENBRIDGE_TENANTS", "t1 x/y"), ("TOKENBRIDGE_JWKS_URL", keys)]).unwrap_err();
    assert!(bad.contains("tenant \"x/y\""), "{bad}");
    let stray = issuer_config(&[
        ("TOKENBRIDGE_ISSUER", "https://idp.example"),
        ("TOKENBRIDGE_AUDIENCE", "api"),
        ("TOKENBRIDGE_TENANTS", "t1"),
    ])
    .unwrap_err();
    assert!(stray.contains("has no {tenantid}"), "{stray}");
}

#[test]
fn accepted_client_ids_stand_in_for_the_audience_only_where_tokens_are_verified_here() {
    let cognito = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example";
    assert!(issuer_config(&[("TOKENBRIDGE_ISSUER", cognito), ("TOKENBRIDGE_ACCEPTED_CLIENT_IDS", "app1")]).is_ok());
    let issuers = format!(r#"[{{"issuer":"{cognito}","mode":"introspection","client_ids":["app1"]}}]"#);
    let introspected = issuer_config(&[
        ("TOKENBRIDGE_ISSUERS", &issuers),
        ("TOKENBRIDGE_INTROSPECTION_URL", "https://a.example/i"),
        ("TOKENBRIDGE_INTROSPECTION_CLIENT_ID", "a"),
        ("TOKENBRIDGE_INTROSPECTION_CLIENT_SECRET", "s"),
    ])
    .unwrap_err();
    assert!(introspected.contains("need the tokens verified here"), "{introspected}");
}

/// Entra's JWKS lists its keys without `alg` (and with `x5t`, `x5c`): each key then verifies the
/// algorithms of its family.
#[test]
fn a_jwks_key_without_alg_as_entra_publishes_it_verifies() {
    let key = SigningKey::rsa("k", Algorithm::RS256);
    let f = fixture(&[&key], &[]);
    let mut jwk = key.jwk.clone();
    let members = jwk.as_object_mut().unwrap();
    members.remove("alg");
    members.insert("use".into(), json!("sig"));
    members.insert("x5t".into(), json!("k"));
    members.insert("x5c".into(), json!(["MIIC"]));
    f.issuer.publish_raw(vec![jwk]);
    assert_allowed(&f.decide(&f.valid(&key)));
    assert_allowed(&f.decide(&SigningKey::rsa("k", Algorithm::PS256).sign(&f.issuer.claims(
        "api",
        "alice",
        "",
        f.now(),
    ))));
}

/// Tokens for Microsoft Graph carry a `nonce` header and are signed over a transformed nonce:
/// refused as such, and without fetching any key.
#[test]
fn a_graph_token_is_refused_before_any_key_is_fetched() {
    let key = SigningKey::rsa("k", Algorithm::RS256);
    let f = fixture(&[&key], &[]);
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k".into());
    header.extras.insert("nonce".to_string(), json!("AQABAAAAAAB"));
    let graph = key.sign_with(header, &f.issuer.claims("api", "alice", "", f.now()));
    assert_denied(&f, f.decide(&graph), "graph_token");
    assert_eq!((f.issuer.discovery_requests(), f.issuer.jwks_requests()), (0, 0));
}

/// OCI IAM identity domains may rotate a key and keep its `kid`.
#[test]
fn a_key_rotated_under_the_same_kid_is_picked_up_on_its_first_use() {
    let old = SigningKey::ec("k", Algorithm::ES256);
    let new = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&old], &[]);
    assert_allowed(&f.decide(&f.valid(&old)));
    f.issuer.publish(&[&new]);
    assert_allowed(&f.decide(&f.valid(&new)));
    assert_eq!(f.issuer.jwks_requests(), 2, "one refetch for the signature");
}

#[test]
fn forged_signatures_under_a_known_kid_cost_the_idp_one_request_per_penalty_window() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[]);
    assert_allowed(&f.decide(&f.valid(&key)));
    for _ in 0..30 {
        let forger = SigningKey::ec("k", Algorithm::ES256);
        assert_denied(&f, f.decide(&f.valid(&forger)), "bad_signature");
    }
    assert_eq!(f.issuer.jwks_requests(), 2, "the first load and one refetch");
    f.clock.advance(11);
    assert_denied(&f, f.decide(&f.valid(&SigningKey::ec("k", Algorithm::ES256))), "bad_signature");
    assert_eq!(f.issuer.jwks_requests(), 3);
}

#[test]
fn unknown_kids_and_forged_signatures_share_one_refetch_window() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[]);
    assert_allowed(&f.decide(&f.valid(&key)));
    assert_denied(&f, f.decide(&f.valid(&SigningKey::ec("stranger", Algorithm::ES256))), "unknown_key");
    assert_denied(&f, f.decide(&f.valid(&SigningKey::ec("k", Algorithm::ES256))), "bad_signature");
    assert_eq!(f.issuer.jwks_requests(), 2);
    f.clock.advance(11);
    assert_denied(&f, f.decide(&f.valid(&SigningKey::ec("k", Algorithm::ES256))), "bad_signature");
    assert_denied(&f, f.decide(&f.valid(&SigningKey::ec("stranger-2", Algorithm::ES256))), "unknown_key");
    assert_eq!(f.issuer.jwks_requests(), 3);
}

#[test]
fn a_key_rotated_under_its_kid_while_the_jwks_is_down_is_unavailable_not_denied() {
    let old = SigningKey::ec("k", Algorithm::ES256);
    let new = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&old], &[("TOKENBRIDGE_CACHE_INACTIVE_TTL_SECONDS", "3600")]);
    assert_allowed(&f.decide(&f.valid(&old)));
    f.issuer.publish(&[&new]);
    f.issuer.set_down(true);
    let token = f.valid(&new);
    assert_unavailable_jwks(f.decide(&token));
    f.issuer.set_down(false);
    f.clock.advance(11);
    assert_allowed(&f.decide(&token));
}

#[test]
fn concurrent_forged_signatures_under_a_known_kid_make_one_refetch() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[]);
    assert_allowed(&f.decide(&f.valid(&key)));
    f.issuer.set_jwks_delay(Duration::from_millis(300));
    let forged: Vec<String> =
        (0..8).map(|i| key_token(&f, &SigningKey::ec("k", Algorithm::ES256), &format!("m{i}"))).collect();
    for outcome in f.decide_together(&forged) {
        assert_eq!(outcome, Outcome::Deny(Denial::InvalidToken));
    }
    assert_eq!(f.issuer.jwks_requests(), 2, "the first load and one refetch, shared");
}

/// Entra's shared JWKS lists a tenant's own key under that tenant's issuer: it verifies that
/// issuer's tokens only, and a key for the `{tenantid}` template those of the issuer it spells
/// with the token's `tid`.
#[test]
fn a_key_published_for_one_issuer_verifies_only_that_issuers_tokens() {
    let key = SigningKey::rsa("k", Algorithm::RS256);
    let f = entra(&[&key]);
    let publish_for = |issuer: serde_json::Value| {
        let mut jwk = key.jwk.clone();
        jwk["issuer"] = issuer;
        f.issuer.publish_raw(vec![jwk, SigningKey::ec("other", Algorithm::ES256).jwk]);
        f.clock.advance(301); // past the keys' lifetime, so the new document is read
    };
    let t1 = |sub: &str| {
        let mut claims = tenant_claims(&f, "t1", Some("t1"));
        claims["sub"] = json!(sub);
        key.sign(&claims)
    };
    publish_for(json!(format!("{}/t2/v2.0", f.issuer.url)));
    assert_denied(&f, f.decide(&t1("alice")), "bad_signature");
    publish_for(json!(format!("{}/t1/v2.0", f.issuer.url)));
    assert!(matches!(f.decide(&t1("bob")), Outcome::Allow(_)));
    publish_for(json!(format!("{}/{{tenantid}}/v2.0", f.issuer.url)));
    assert!(matches!(f.decide(&t1("carol")), Outcome::Allow(_)));
    publish_for(json!(format!("{}/{{tenantid}}/v1.0", f.issuer.url)));
    assert_denied(&f, f.decide(&t1("erin")), "bad_signature");
    publish_for(json!(5));
    assert_eq!(f.decide(&t1("dave")), Outcome::Deny(Denial::InvalidToken));
}

#[test]
fn the_effective_configuration_shows_the_tenants_and_client_ids_an_issuer_accepts() {
    let env: HashMap<&str, &str> = [
        ("TOKENBRIDGE_BACKEND_TOKEN_URL", "https://b.example/t"),
        ("TOKENBRIDGE_BACKEND_CLIENT_ID", "b"),
        ("TOKENBRIDGE_BACKEND_CLIENT_SECRET", "s"),
        ("TOKENBRIDGE_ISSUERS", r#"[{"issuer":"https://login.microsoftonline.com/{tenantid}/v2.0","tenants":["t1","t2"],"audiences":["api"],"jwks_url":"https://login.microsoftonline.com/common/discovery/v2.0/keys"},{"issuer":"https://cognito-idp.eu-west-1.amazonaws.com/pool","client_ids":["app1"]}]"#),
    ]
    .into_iter()
    .collect();
    let shown =
        Config::from_lookup(&|k| env.get(k).map(|v| v.to_string())).map_err(|e| e.to_string()).unwrap().to_string();
    assert!(shown.contains("{tenantid}/v2.0 = verified locally, audiences [api]"), "{shown}");
    assert!(shown.contains(", tenants [t1 t2]"), "{shown}");
    assert!(shown.contains(", access tokens of the clients [app1]"), "{shown}");
}

#[test]
fn a_forged_signature_checked_against_keys_just_fetched_makes_no_refetch() {
    let key = SigningKey::ec("k", Algorithm::ES256);
    let f = fixture(&[&key], &[]);
    assert_denied(&f, f.decide(&f.valid(&SigningKey::ec("k", Algorithm::ES256))), "bad_signature");
    assert_eq!(f.issuer.jwks_requests(), 1);
}

#[test]
fn client_ids_and_tenants_are_refused_when_every_token_is_introspected() {
    let cognito = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example";
    let refused = issuer_config(&[
        ("TOKENBRIDGE_ISSUER", cognito),
        ("TOKENBRIDGE_ACCEPTED_CLIENT_IDS", "app1"),
        ("TOKENBRIDGE_MODE", "introspection"),
        ("TOKENBRIDGE_INTROSPECTION_URL", "https://a.example/i"),
        ("TOKENBRIDGE_INTROSPECTION_CLIENT_ID", "a"),
        ("TOKENBRIDGE_INTROSPECTION_CLIENT_SECRET", "s"),
    ])
    .unwrap_err();
    assert!(refused.contains("need the tokens verified here"), "{refused}");
}

/// A route's claim conditions read the verified JWT's own claims (nested, namespaced), and the
/// verdict cache keeps what they read: a second request decides from the cache alone.
#[test]
fn claim_conditions_read_the_verified_jwt() {
    let key = SigningKey::rsa("k1", Algorithm::RS256);
    let policy = r#"{"routes": [{"path": "/hr/**", "claims": [
        {"claim": "/realm_access/roles", "contains_any": ["hr"]},
        {"any": [{"claim": "/acr", "one_of": ["mfa"]}, {"claim": "/amr", "contains_all": ["hwk", "pin"]}]}
    ]}], "default": {"scopes": []}}"#;
    let f = fixture(&[&key], &[("TOKENBRIDGE_POLICY", policy)]);
    let token = |extra: serde_json::Value| {
        let mut claims = f.issuer.claims("api", "alice", "orders.read", f.now());
        claims.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        key.sign(&claims)
    };
    let at = |token: &str, path: &str| {
        let route = Route { method: Some("GET".into()), path: Some(path.into()), ..Route::default() };
        f.engine.decide(&Request { route, ..Request::bearer(format!("Bearer {token}")) })
    };
    let hr_mfa = token(json!({"realm_access": {"roles": ["hr"]}, "acr": "mfa"}));
    let hr_keys = token(json!({"realm_access": {"roles": ["hr"]}, "amr": ["pin", "hwk"]}));
    let hr_pin = token(json!({"realm_access": {"roles": ["hr"]}, "amr": ["pin"]}));
    let not_hr = token(json!({"realm_access": {"roles": ["user"]}, "acr": "mfa"}));
    assert_allowed(&at(&hr_mfa, "/hr/payroll"));
    assert_allowed(&at(&hr_keys, "/hr/payroll"));
    for refused in [&hr_pin, &not_hr] {
        assert_eq!(at(refused, "/hr/payroll"), Outcome::Deny(Denial::InsufficientScope { required: vec![] }));
        assert!(f.log.lock().unwrap().last().unwrap().contains("\"reason\":\"claim_condition_failed\""));
        assert_allowed(&at(refused, "/public"));
    }
    let route = Route { method: Some("GET".into()), path: Some("/hr/x".into()), ..Route::default() };
    let cached = f.engine.decide_now(&Request { route, ..Request::bearer(format!("Bearer {not_hr}")) });
    assert_eq!(cached, Some(Outcome::Deny(Denial::InsufficientScope { required: vec![] })));
}

/// `TOKENBRIDGE_ACCEPTED_CLIENT_IDS`, `TOKENBRIDGE_TENANTS`, `TOKENBRIDGE_AUDIENCE`,
/// `TOKENBRIDGE_JWT_TYP` and `TOKENBRIDGE_JWKS_URL` belong to `TOKENBRIDGE_ISSUER`: set beside
/// `TOKENBRIDGE_ISSUERS` alone they restrict nothing, so a Cognito ID token (its app client in
/// `aud`, `token_use: id`) would pass an issuer whose audience check is off, and an ignored
/// `at+jwt` requirement would accept ID tokens.
#[test]
fn settings_of_tokenbridge_issuer_without_it_are_a_configuration_problem() {
    let cognito = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example";
    let issuers = format!(r#"[{{"issuer":"{cognito}","audience_check":false}}]"#);
    assert!(issuer_config(&[("TOKENBRIDGE_ISSUERS", &issuers)]).is_ok());
    for (setting, value) in [
        ("TOKENBRIDGE_ACCEPTED_CLIENT_IDS", "app1"),
        ("TOKENBRIDGE_TENANTS", "t1"),
        ("TOKENBRIDGE_AUDIENCE", "api"),
        ("TOKENBRIDGE_JWT_TYP", "at+jwt"),
        ("TOKENBRIDGE_JWKS_URL", "https://keys.example/jwks"),
    ] {
        let problem = issuer_config(&[("TOKENBRIDGE_ISSUERS", &issuers), (setting, value)]).unwrap_err();
        assert!(problem.contains(&format!("{setting} is set, but TOKENBRIDGE_ISSUER is not")), "{problem}");
    }
}

#[test]
fn a_cognito_id_token_is_not_accepted_through_client_ids_given_beside_tokenbridge_issuers() {
    let key = SigningKey::rsa("k", Algorithm::RS256);
    let (idp, issuer) = (IdpPair::start(), FakeIssuer::start(&[&key]));
    let issuers = json!([{"issuer": issuer.url, "jwks_url": issuer.jwks_url(), "audience_check": false}]);
    let mut env: HashMap<String, String> = idp.env().into_iter().collect();
    env.insert("TOKENBRIDGE_MODE".into(), "jwt".into());
    env.insert("TOKENBRIDGE_ISSUERS".into(), issuers.to_string());
    env.insert("TOKENBRIDGE_ACCEPTED_CLIENT_IDS".into(), "app1".into());
    let engine = Engine::builder(Config::from_lookup(&|k| env.get(k).cloned())).build();
    let now = unix_now();
    let id_token = json!({"iss": issuer.url, "sub": "alice", "aud": "app1", "token_use": "id",
                          "iat": now, "exp": now + 600});
    let request = Request::bearer(format!("Bearer {}", key.sign(&id_token)));
    assert!(!matches!(engine.decide(&request), Outcome::Allow(_)), "an ID token is no access token");
}

#[test]
fn a_tenant_that_is_empty_or_a_dot_segment_is_a_configuration_problem() {
    let entra = "https://login.microsoftonline.com/{tenantid}/v2.0";
    let keys = "https://login.microsoftonline.com/common/discovery/v2.0/keys";
    for tenant in ["", ".", ".."] {
        let issuers = json!([{"issuer": entra, "tenants": [tenant], "audiences": ["api"], "jwks_url": keys}]);
        let problem = issuer_config(&[("TOKENBRIDGE_ISSUERS", &issuers.to_string())]).unwrap_err();
        assert!(problem.contains(&format!("tenant {tenant:?}")), "{tenant:?}: {problem}");
    }
}

/// One issuer configured twice (`TOKENBRIDGE_ISSUER` and an entry of `TOKENBRIDGE_ISSUERS`, or
/// two entries) keeps one of them only: the other's `client_ids`, `tenants` or audiences would
/// be dropped without a word, so it is a configuration problem.
#[test]
fn an_issuer_configured_twice_is_a_configuration_problem_not_the_last_one_winning() {
    let key = SigningKey::rsa("k", Algorithm::RS256);
    let (idp, issuer) = (IdpPair::start(), FakeIssuer::start(&[&key]));
    let again = json!([{"issuer": issuer.url, "jwks_url": issuer.jwks_url(), "audience_check": false}]);
    let mut env: HashMap<String, String> = idp.env().into_iter().collect();
    env.insert("TOKENBRIDGE_MODE".into(), "jwt".into());
    env.insert("TOKENBRIDGE_ISSUER".into(), issuer.url.clone());
    env.insert("TOKENBRIDGE_JWKS_URL".into(), issuer.jwks_url());
    env.insert("TOKENBRIDGE_ACCEPTED_CLIENT_IDS".into(), "app1".into());
    env.insert("TOKENBRIDGE_ISSUERS".into(), again.to_string());
    let config = Config::from_lookup(&|k| env.get(k).cloned());
    let problems = config.as_ref().err().map(ToString::to_string).unwrap_or_default();
    assert!(problems.contains("is configured more than once"), "{problems:?}");
    let engine = Engine::builder(config).build();
    let now = unix_now();
    let id_token = json!({"iss": issuer.url, "sub": "alice", "aud": "app1", "token_use": "id",
                          "iat": now, "exp": now + 600});
    let outcome = engine.decide(&Request::bearer(format!("Bearer {}", key.sign(&id_token))));
    assert!(!matches!(outcome, Outcome::Allow(_)), "the ID token passed the second entry");

    let cognito = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example";
    let two = format!(r#"[{{"issuer":"{cognito}","client_ids":["app1"]}},{{"issuer":"{cognito}","audiences":["x"]}}]"#);
    let problem = issuer_config(&[("TOKENBRIDGE_ISSUERS", &two)]).unwrap_err();
    assert!(problem.contains(&format!("issuer {cognito} is configured more than once")), "{problem}");
}

/// A tenant's issuer spelt by a `{tenantid}` entry and by another entry (an exact issuer, or a
/// second template) is one issuer configured twice: which entry judged its tokens would depend
/// on the order of a hash map.
#[test]
fn a_tenant_issuer_that_two_entries_name_is_a_configuration_problem() {
    let keys = "https://login.microsoftonline.com/common/discovery/v2.0/keys";
    let template = json!({"issuer": "https://login.microsoftonline.com/{tenantid}/v2.0", "tenants": ["t1", "t2"],
                          "audiences": ["api"], "jwks_url": keys});
    let exact =
        json!({"issuer": "https://login.microsoftonline.com/t2/v2.0", "audience_check": false, "jwks_url": keys});
    let overlapping = json!({"issuer": "https://login.microsoftonline.com/t1/{tenantid}", "tenants": ["v2.0"],
                             "audiences": ["other"], "jwks_url": keys});
    for (other, named) in [
        (&exact, "https://login.microsoftonline.com/t2/v2.0"),
        (&overlapping, "https://login.microsoftonline.com/t1/v2.0"),
    ] {
        for issuers in [json!([template, other]), json!([other, template])] {
            let problem = issuer_config(&[("TOKENBRIDGE_ISSUERS", &issuers.to_string())]).unwrap_err();
            assert!(problem.contains(&format!("{named} is configured more than once")), "{problem}");
        }
    }
    let apart = json!([template, {"issuer": "https://login.microsoftonline.com/t3/v2.0", "audiences": ["api"], "jwks_url": keys}]);
    assert!(issuer_config(&[("TOKENBRIDGE_ISSUERS", &apart.to_string())]).is_ok());
}
