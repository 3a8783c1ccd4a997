//! Client authentication at IdP A and IdP B against the fake IdP, which accepts only the method
//! each client is registered with: `client_secret_post` and `private_key_jwt` beside the default
//! `client_secret_basic`, the assertions' claims and headers, a fresh assertion for every call,
//! and a rotated key fetched again after `invalid_client`.

use tokenbridge_core::testing::Clock as _;
use tokenbridge_core::{Dependency, Failure, Outcome, SecretError};
use tokenbridge_tests::IdpPair;

mod common;
use common::{Fixture, bearer, fixture_at};
use tokenbridge_tests::fake_idp::{A_CLIENT, Assertion, B_CLIENT, ClientAuth, ClientKey, Fault};

fn allowed(f: &Fixture) -> bool {
    let token = f.idp.a.issue("alice", "", 3600);
    matches!(f.engine.decide(&bearer(&token)), Outcome::Allow(_))
}

fn unavailable(f: &Fixture) -> (Dependency, Failure) {
    let token = f.idp.a.issue("alice", "", 3600);
    match f.engine.decide(&bearer(&token)) {
        Outcome::Unavailable(c) => (c.dependency, c.failure),
        other => panic!("expected unavailable, got {other:?}"),
    }
}

/// A pair whose clients for tokenbridge use private_key_jwt with these keys.
fn key_pair(a: &ClientKey, b: &ClientKey) -> IdpPair {
    let idp = IdpPair::start();
    idp.a.add_client_with(A_CLIENT.0, ClientAuth::PrivateKeyJwt(a.public.clone()));
    idp.b.add_client_with(B_CLIENT.0, ClientAuth::PrivateKeyJwt(b.public.clone()));
    idp
}

const SECRETS: [&str; 2] = ["TOKENBRIDGE_INTROSPECTION_CLIENT_SECRET", "TOKENBRIDGE_BACKEND_CLIENT_SECRET"];

#[test]
fn client_secret_post_sends_the_secret_in_the_form_at_both_idps() {
    let idp = IdpPair::start();
    idp.a.add_client_with(A_CLIENT.0, ClientAuth::Post(A_CLIENT.1.into()));
    idp.b.add_client_with(B_CLIENT.0, ClientAuth::Post(B_CLIENT.1.into()));
    let f = fixture_at(
        idp,
        &[
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH", "client_secret_post"),
            ("TOKENBRIDGE_BACKEND_CLIENT_AUTH", "client_secret_post"),
        ],
        &[],
    );
    assert!(allowed(&f));
    assert_eq!((f.idp.a.rejected_auth(), f.idp.b.rejected_auth()), (0, 0));
}

#[test]
fn the_idp_refuses_a_client_that_authenticates_by_another_method() {
    // IdP B expects client_secret_post; tokenbridge sends client_secret_basic (the default).
    let idp = IdpPair::start();
    idp.b.add_client_with(B_CLIENT.0, ClientAuth::Post(B_CLIENT.1.into()));
    let f = fixture_at(idp, &[], &[]);
    assert_eq!(unavailable(&f), (Dependency::BackendToken, Failure::ClientRejected));
    assert_eq!(f.idp.b.rejected_auth(), 1, "no retry: the secret did not change");

    // IdP A expects private_key_jwt; tokenbridge sends its secret in the form.
    let idp = IdpPair::start();
    idp.a.add_client_with(A_CLIENT.0, ClientAuth::PrivateKeyJwt(ClientKey::ec().public));
    let f = fixture_at(idp, &[("TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH", "client_secret_post")], &[]);
    assert_eq!(unavailable(&f), (Dependency::Introspection, Failure::ClientRejected));
    assert_eq!(f.idp.a.rejected_auth(), 1);
}

#[test]
fn private_key_jwt_authenticates_at_both_idps_with_an_assertion_for_each_endpoint() {
    let (a, b) = (ClientKey::rsa("RS256"), ClientKey::ec());
    let f = fixture_at(
        key_pair(&a, &b),
        &[
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH", "private_key_jwt"),
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_KEY", &a.pem),
            ("TOKENBRIDGE_BACKEND_CLIENT_AUTH", "private_key_jwt"),
            ("TOKENBRIDGE_BACKEND_CLIENT_KEY", &b.pem),
        ],
        &SECRETS,
    );
    assert!(allowed(&f));
    let [at_a]: [Assertion; 1] = f.idp.a.assertions().try_into().unwrap();
    let [at_b]: [Assertion; 1] = f.idp.b.assertions().try_into().unwrap();
    for (assertion, client, endpoint, alg) in
        [(&at_a, A_CLIENT.0, f.idp.a.introspection_url(), "RS256"), (&at_b, B_CLIENT.0, f.idp.b.token_url(), "ES256")]
    {
        assert_eq!(assertion.header, serde_json::json!({"alg": alg, "typ": "JWT"}));
        let c = &assertion.claims;
        assert_eq!((c["iss"].as_str(), c["sub"].as_str()), (Some(client), Some(client)));
        assert_eq!(c["aud"].as_str(), Some(endpoint.as_str()), "the endpoint's URL by default");
        assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 60);
        assert_eq!(assertion.client_id.as_deref(), Some(client));
    }
    let log = f.log.lock().unwrap().join("\n");
    assert!(!log.contains("PRIVATE KEY") && !log.contains("eyJ"), "{log}");
}

#[test]
fn every_call_signs_a_new_assertion() {
    // The fake IdP refuses a jti it has seen: three introspections pass only with three assertions.
    let key = ClientKey::rsa("PS256");
    let idp = IdpPair::start();
    idp.a.add_client_with(A_CLIENT.0, ClientAuth::PrivateKeyJwt(key.public.clone()));
    let f = fixture_at(
        idp,
        &[
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH", "private_key_jwt"),
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_KEY", &key.pem),
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_ASSERTION_ALG", "PS256"),
        ],
        &SECRETS[..1],
    );
    for _ in 0..3 {
        assert!(allowed(&f));
    }
    let jtis: std::collections::HashSet<String> =
        f.idp.a.assertions().iter().map(|a| a.claims["jti"].as_str().unwrap().to_string()).collect();
    assert_eq!(jtis.len(), 3);
    assert_eq!(f.idp.a.rejected_auth(), 0);
}

#[test]
fn the_configured_audience_key_id_and_thumbprint_are_in_the_assertion() {
    let key = ClientKey::ec_sec1();
    let idp = IdpPair::start();
    idp.b.add_client_with(B_CLIENT.0, ClientAuth::PrivateKeyJwt(key.public.clone()));
    idp.b.accept_assertion_audience("https://idp-b.example/issuer");
    let thumbprint = "x4Jz-vJqK6WyqQm2-7H7lYdGfQ5eQvb9NDpD3Yd2a1M";
    let f = fixture_at(
        idp,
        &[
            ("TOKENBRIDGE_BACKEND_CLIENT_AUTH", "private_key_jwt"),
            ("TOKENBRIDGE_BACKEND_CLIENT_KEY", &key.pem),
            ("TOKENBRIDGE_BACKEND_CLIENT_KEY_ID", "tokenbridge-2026"),
            ("TOKENBRIDGE_BACKEND_CLIENT_ASSERTION_AUDIENCE", "https://idp-b.example/issuer"),
            ("TOKENBRIDGE_BACKEND_CLIENT_CERT_SHA256", thumbprint),
        ],
        &SECRETS[1..],
    );
    assert!(allowed(&f));
    let [assertion]: [Assertion; 1] = f.idp.b.assertions().try_into().unwrap();
    assert_eq!(
        assertion.header,
        serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": "tokenbridge-2026", "x5t#S256": thumbprint})
    );
    assert_eq!(assertion.claims["aud"], "https://idp-b.example/issuer");
}

#[test]
fn a_rotated_key_is_fetched_again_after_invalid_client() {
    let (old, new) = (ClientKey::ec(), ClientKey::ec());
    let idp = IdpPair::start();
    idp.a.add_client_with(A_CLIENT.0, ClientAuth::PrivateKeyJwt(old.public.clone()));
    let path = std::env::temp_dir().join(format!("tb-client-key-{}.pem", std::process::id()));
    std::fs::write(&path, &old.pem).unwrap();
    let reference = format!("file:{}", path.display());
    let f = fixture_at(
        idp,
        &[
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH", "private_key_jwt"),
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_KEY", &reference),
            // Short, so the clock moves on less than the IdP's 15 s of skew.
            ("TOKENBRIDGE_SECRET_REFRESH_SECONDS", "10"),
        ],
        &SECRETS[..1],
    );
    assert!(allowed(&f));
    // The key is rotated at the IdP and in the file.
    f.idp.a.add_client_with(A_CLIENT.0, ClientAuth::PrivateKeyJwt(new.public.clone()));
    std::fs::write(&path, &new.pem).unwrap();
    f.clock.advance(11);
    assert!(allowed(&f), "the new key was read and the call retried");
    assert_eq!(f.idp.a.rejected_auth(), 1, "one assertion refused, then one with the new key");
    assert_eq!(f.idp.a.assertions().len(), 2);
    // Rejected again within the refresh interval: no refetch, and Unavailable.
    f.idp.a.add_client_with(A_CLIENT.0, ClientAuth::PrivateKeyJwt(old.public.clone()));
    f.clock.advance(1);
    assert_eq!(unavailable(&f), (Dependency::Introspection, Failure::ClientRejected));
    assert_eq!(f.idp.a.rejected_auth(), 2);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_key_that_cannot_sign_is_unavailable_and_reported_without_its_content() {
    let f = fixture_at(
        IdpPair::start(),
        &[
            ("TOKENBRIDGE_BACKEND_CLIENT_AUTH", "private_key_jwt"),
            (
                "TOKENBRIDGE_BACKEND_CLIENT_KEY",
                "-----BEGIN RSA PRIVATE KEY-----\nhunter2\n-----END RSA PRIVATE KEY-----",
            ),
        ],
        &SECRETS[1..],
    );
    assert_eq!(unavailable(&f), (Dependency::Secret, Failure::Invalid));
    assert_eq!(f.idp.b.token_requests(), 0, "nothing is sent without a usable key");
    let last = f.log.lock().unwrap().last().cloned().unwrap();
    assert!(last.contains("TOKENBRIDGE_BACKEND_CLIENT_KEY: "), "{last}");
    assert!(!last.contains("hunter2"), "{last}");

    let problems = f.engine.check_secrets();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].setting, "TOKENBRIDGE_BACKEND_CLIENT_KEY");
    assert!(
        matches!(&problems[0].error, SecretError::Unresolvable(why) if why.starts_with("not a usable private key"))
    );
    assert!(!problems[0].to_string().contains("hunter2"));
}

#[test]
fn a_key_of_the_wrong_type_for_the_configured_algorithm_is_reported_by_check_config() {
    let f = fixture_at(
        IdpPair::start(),
        &[
            ("TOKENBRIDGE_BACKEND_CLIENT_AUTH", "private_key_jwt"),
            ("TOKENBRIDGE_BACKEND_CLIENT_KEY", &ClientKey::ec().pem),
            ("TOKENBRIDGE_BACKEND_CLIENT_ASSERTION_ALG", "RS256"),
        ],
        &SECRETS[1..],
    );
    let problems: Vec<String> = f.engine.check_secrets().iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        ["TOKENBRIDGE_BACKEND_CLIENT_KEY: not a usable private key: this EC P-256 key cannot sign RS256"]
    );
}

#[test]
fn an_assertion_signed_for_a_retry_is_dated_by_the_clock_when_it_is_signed() {
    // The first introspection answers 503 only after a while, during which tokenbridge's clock
    // moves on by two assertion lifetimes (a stand-in for a slow IdP with TOKENBRIDGE_TIMEOUT_MS
    // above 60 s): dated by the decision's start, the retry's assertion would be expired when
    // signed, and a real IdP would refuse it as invalid_client.
    let key = ClientKey::ec();
    let idp = IdpPair::start();
    idp.a.add_client_with(A_CLIENT.0, ClientAuth::PrivateKeyJwt(key.public.clone()));
    let f = fixture_at(
        idp,
        &[
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH", "private_key_jwt"),
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_KEY", &key.pem),
        ],
        &SECRETS[..1],
    );
    let token = f.idp.a.issue("alice", "", 3600);
    // This IdP trusts tokenbridge's clock, however far it moves: the test is about which
    // reading of it dates the assertion.
    f.idp.a.set_assertion_skew(1_000);
    f.idp.a.set_introspect_fault(Some(Fault::SlowStatus(std::time::Duration::from_millis(400), 503)));
    std::thread::scope(|s| {
        s.spawn(|| {
            // Once the first attempt holds its (slow) fault, and well before its 503.
            while f.idp.a.introspections() == 0 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            f.clock.advance(120);
            f.idp.a.set_introspect_fault(None);
        });
        assert!(matches!(f.engine.decide(&bearer(&token)), Outcome::Allow(_)));
    });
    assert_eq!(f.idp.a.introspections(), 2, "one slow 503, then the retry");
    let [retry]: [Assertion; 1] = f.idp.a.assertions().try_into().unwrap();
    let (iat, exp) = (retry.claims["iat"].as_i64().unwrap(), retry.claims["exp"].as_i64().unwrap());
    let signed_at = f.clock.now();
    assert!(exp > signed_at, "the retry's assertion (iat {iat}, exp {exp}) was expired when signed at {signed_at}");
}

#[test]
fn the_fake_idp_refuses_an_assertion_not_yet_valid() {
    // An assertion dated minutes ahead is refused, as a real IdP refuses it (oidc-provider
    // allows 15 s of skew): the fake is as strict about `iat`/`nbf` as about `exp`.
    let key = ClientKey::ec();
    let idp = IdpPair::start();
    idp.a.add_client_with(A_CLIENT.0, ClientAuth::PrivateKeyJwt(key.public.clone()));
    let f = fixture_at(
        idp,
        &[
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_AUTH", "private_key_jwt"),
            ("TOKENBRIDGE_INTROSPECTION_CLIENT_KEY", &key.pem),
        ],
        &SECRETS[..1],
    );
    f.clock.advance(300);
    assert_eq!(unavailable(&f), (Dependency::Introspection, Failure::ClientRejected));
}
