//! Cases an adversarial review found in the staged engine and the parsed JWKS keys: the first
//! failed before its fix; the others pin behaviour the change introduced.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokenbridge_core::testing::{Clock, ManualClock};
use tokenbridge_core::{Config, Denial, Dependency, Engine, Failure, Outcome, Request};
use tokenbridge_tests::fake_idp::unix_now;
use tokenbridge_tests::jwt_keys::{FakeIssuer, SigningKey};
use tokenbridge_tests::{Fault, IdpPair};

fn engine(env: HashMap<String, String>, clock: Arc<ManualClock>) -> (Engine, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let engine = Engine::builder(Config::from_lookup(&|k| env.get(k).cloned()))
        .clock(clock)
        .log_sink(move |line| sink.lock().unwrap().push(line.to_string()))
        .build();
    (engine, log)
}

fn bearer(token: &str) -> Request {
    Request::bearer(format!("Bearer {token}"))
}

/// The decision's clock was read once, before
/// validation, and the backend stage judges the cached backend token with that reading. Time
/// spent validating (a slow introspection here, up to the call timeout; a JWKS fetch, a secret
/// fetch or a wait for another caller's load elsewhere) is not counted, so while IdP B is down
/// a backend token past its usable end (`TOKENBRIDGE_BACKEND_MIN_REMAINING_SECONDS`, the 60 s
/// the OCI gateway replays a decision) is still handed out. 0bcdb6f read the clock again in
/// the backend stage and answered Unavailable here.
#[test]
fn a_backend_token_past_its_usable_end_is_not_handed_out_after_a_slow_validation() {
    let idp = IdpPair::start();
    let clock = Arc::new(ManualClock::at(unix_now()));
    let (engine, _log) = engine(idp.env().into_iter().collect(), clock.clone());
    idp.b.set_token_ttl(Some(300));
    // At T: the backend token lives until T+300, is handed out until T+240.
    let first = idp.a.issue("alice", "", 3600);
    assert!(matches!(engine.decide(&bearer(&first)), Outcome::Allow(_)));
    idp.b.set_token_fault(Some(Fault::Status(503, String::new())));
    clock.advance(237);
    // A caller token not seen before, so IdP A is asked; it takes 1.5 s to answer, during
    // which 5 s pass on the engine's clock (within the default 5 s call timeout).
    let second = idp.a.issue("bob", "", 3600);
    idp.a.set_introspect_fault(Some(Fault::Delay(Duration::from_millis(1500))));
    let outcome = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            clock.advance(5);
        });
        engine.decide(&bearer(&second))
    });
    let now = clock.now();
    match outcome {
        Outcome::Unavailable(c) => {
            assert_eq!((c.dependency, c.failure), (Dependency::BackendToken, Failure::Status(503)))
        }
        Outcome::Allow(g) => panic!(
            "a backend token with {} s left (less than the 60 s the gateway may replay it) was handed out",
            g.expires_at - now
        ),
        other => panic!("{other:?}"),
    }
}

fn jwt_fixture(keys: Vec<Value>) -> (Engine, FakeIssuer, Arc<ManualClock>) {
    let idp = IdpPair::start();
    let issuer = FakeIssuer::start(&[]);
    issuer.publish_raw(keys);
    let mut env: HashMap<String, String> = idp.env().into_iter().collect();
    env.insert("TOKENBRIDGE_ISSUER".into(), issuer.url.clone());
    env.insert("TOKENBRIDGE_AUDIENCE".into(), "api".into());
    env.insert("TOKENBRIDGE_MODE".into(), "jwt".into());
    env.insert("TOKENBRIDGE_JWKS_URL".into(), issuer.jwks_url());
    let clock = Arc::new(ManualClock::at(unix_now()));
    let (engine, _) = engine(env, clock.clone());
    // Dropping the pair stops nothing: its servers answer until the test process ends.
    drop(idp);
    (engine, issuer, clock)
}

/// JWKs whose material aws-lc-rs refuses when the key is parsed (0bcdb6f kept such a key and
/// failed at each verification instead): an RSA modulus with a leading zero octet, an Ed25519
/// key of 31 bytes, and a P-256 point that is not on the curve.
fn unparseable(key: &SigningKey) -> Value {
    let mut jwk = key.jwk.clone();
    let member = match key.alg {
        Algorithm::RS256 => "n",
        _ => "x",
    };
    let mut bytes = URL_SAFE_NO_PAD.decode(jwk[member].as_str().unwrap()).unwrap();
    match key.alg {
        Algorithm::RS256 => bytes.insert(0, 0),
        Algorithm::EdDSA => {
            bytes.pop();
        }
        _ => bytes[31] ^= 1,
    }
    jwk[member] = json!(URL_SAFE_NO_PAD.encode(bytes));
    jwk
}

/// A key whose material cannot be parsed is dropped from the
/// set when the JWKS is read. A JWKS whose only key is such a key is therefore an unusable
/// document (Unavailable, 5xx), as a JWKS of only symmetric or encryption keys already was;
/// in 0bcdb6f the key was kept and every token was denied as `bad_signature`. Unavailable is
/// the right answer: no token of this issuer can be judged, which is the IdP's fault, and a
/// deny would send callers refreshing tokens that are fine.
#[test]
fn a_jwks_whose_only_key_cannot_be_parsed_is_unavailable_not_a_deny() {
    for key in [SigningKey::rsa("k", Algorithm::RS256), SigningKey::ed25519("k"), SigningKey::ec("k", Algorithm::ES256)]
    {
        let (engine, issuer, clock) = jwt_fixture(vec![unparseable(&key)]);
        let token = key.sign(&issuer.claims("api", "alice", "", clock.now()));
        match engine.decide(&bearer(&token)) {
            Outcome::Unavailable(c) => {
                assert_eq!((c.dependency, c.failure), (Dependency::Jwks, Failure::Malformed), "{:?}", key.alg)
            }
            other => panic!("{:?}: {other:?}", key.alg),
        }
    }
}

/// Beside a usable key, an unparseable one
/// is as if unpublished; a token naming its `kid` is refused (`unknown_key`, after the one
/// refetch per penalty window), never verified.
#[test]
fn a_token_naming_an_unparseable_key_is_denied_as_an_unknown_key() {
    let good = SigningKey::ec("good", Algorithm::ES256);
    for key in [SigningKey::rsa("bad", Algorithm::RS256), SigningKey::ed25519("bad")] {
        let (engine, issuer, clock) = jwt_fixture(vec![unparseable(&key), good.jwk.clone()]);
        let token = key.sign(&issuer.claims("api", "alice", "", clock.now()));
        assert_eq!(engine.decide(&bearer(&token)), Outcome::Deny(Denial::InvalidToken), "{:?}", key.alg);
        assert!(matches!(
            engine.decide(&bearer(&good.sign(&issuer.claims("api", "alice", "", clock.now())))),
            Outcome::Allow(_)
        ));
    }
}
