//! A JWKS that only an authenticated client may read, as OCI IAM identity domains serve
//! `/admin/v1/SigningCert/jwk`: tokenbridge gets a bearer token by client_credentials at the
//! domain's token endpoint (here with the introspection client, which is at the same domain),
//! keeps it across JWKS refetches, replaces it once when the JWKS refuses it, and answers
//! Unavailable — never a deny — when the keys cannot be had.

mod common;

use common::{Fixture, bearer, fixture_at};
use jsonwebtoken::Algorithm;
use tokenbridge_core::testing::Clock;
use tokenbridge_core::{Cause, Dependency, Failure, Outcome};
use tokenbridge_tests::fake_idp::A_CLIENT;
use tokenbridge_tests::jwt_keys::{SigningKey, access_claims};
use tokenbridge_tests::{Fault, IdpPair};

/// Every identity domain's tokens name this issuer.
const ISSUER: &str = "https://identity.oraclecloud.com/";
const SCOPE: &str = "urn:opc:idm:__myscopes__";

/// tokenbridge at a domain (IdP A: introspection, token endpoint and JWKS) that publishes `key`,
/// with the JWKS fetched with a token from the domain's token endpoint, for the introspection client.
fn domain(key: &SigningKey) -> Fixture {
    let idp = IdpPair::start();
    idp.a.serve_jwks(&[&key.jwk], SCOPE);
    let (jwks, token) = (idp.a.jwks_url(), idp.a.token_url());
    fixture_at(
        idp,
        &[
            ("TOKENBRIDGE_ISSUER", ISSUER),
            ("TOKENBRIDGE_AUDIENCE", "api"),
            ("TOKENBRIDGE_JWKS_URL", &jwks),
            ("TOKENBRIDGE_JWKS_TOKEN_URL", &token),
            ("TOKENBRIDGE_JWKS_SCOPE", SCOPE),
            // A silent token endpoint ends the call within this.
            ("TOKENBRIDGE_TIMEOUT_MS", "1000"),
        ],
        &[],
    )
}

fn token(f: &Fixture, key: &SigningKey, sub: &str) -> String {
    key.sign(&access_claims(ISSUER, "api", sub, "orders.read", f.clock.now()))
}

fn assert_allowed(outcome: &Outcome, sub: &str) {
    assert!(matches!(outcome, Outcome::Allow(g) if g.principal == sub), "{outcome:?}");
}

fn assert_unavailable(outcome: &Outcome, failure: Failure) {
    assert_eq!(*outcome, Outcome::Unavailable(Cause::new(Dependency::Jwks, failure)), "{outcome:?}");
}

#[test]
fn a_jwks_that_demands_a_bearer_token_is_read_with_one_from_the_same_domain_and_the_caller_allowed() {
    let key = SigningKey::ec("k1", Algorithm::ES256);
    let f = domain(&key);
    assert_allowed(&f.engine.decide(&bearer(&token(&f, &key, "alice"))), "alice");
    let a = &f.idp.a;
    assert_eq!((a.token_requests(), a.jwks_requests(), a.jwks_refused()), (1, 1, 0));
    assert_eq!(a.introspections(), 0, "the JWT was verified here");
    assert_eq!(f.idp.b.token_requests(), 1, "the backend token is IdP B's, as ever");
}

#[test]
fn the_bearer_token_is_kept_across_jwks_refetches_until_shortly_before_it_expires() {
    let key = SigningKey::ec("k1", Algorithm::ES256);
    let f = domain(&key);
    assert_allowed(&f.engine.decide(&bearer(&token(&f, &key, "alice"))), "alice");
    // The keys are due again after the default JWKS lifetime (300 s); the token lives an hour.
    for (n, sub) in ["bob", "carol", "dave"].into_iter().enumerate() {
        f.clock.advance(301);
        assert_allowed(&f.engine.decide(&bearer(&token(&f, &key, sub))), sub);
        assert_eq!(f.idp.a.jwks_requests(), n + 2);
    }
    assert_eq!(f.idp.a.token_requests(), 1, "one token for every refetch");
    let bearers = f.idp.a.jwks_bearers();
    assert!(bearers.windows(2).all(|w| w[0] == w[1]), "{bearers:?}");

    // 3,600 s after it was issued it is not sent any more: refreshed before.
    f.clock.advance(3_600 - 3 * 301);
    assert_allowed(&f.engine.decide(&bearer(&token(&f, &key, "erin"))), "erin");
    assert_eq!(f.idp.a.token_requests(), 2);
    let bearers = f.idp.a.jwks_bearers();
    assert_ne!(bearers.first(), bearers.last(), "the JWKS was read with the new token");
}

#[test]
fn a_401_to_the_kept_token_gets_one_new_token_and_then_the_keys() {
    let key = SigningKey::ec("k1", Algorithm::ES256);
    let f = domain(&key);
    assert_allowed(&f.engine.decide(&bearer(&token(&f, &key, "alice"))), "alice");
    f.idp.a.revoke_issued_tokens();
    f.clock.advance(301);
    assert_allowed(&f.engine.decide(&bearer(&token(&f, &key, "bob"))), "bob");
    let a = &f.idp.a;
    assert_eq!((a.token_requests(), a.jwks_requests(), a.jwks_refused()), (2, 3, 1));
}

#[test]
fn a_jwks_refusing_a_new_token_and_its_replacement_is_unavailable_not_a_deny() {
    let key = SigningKey::ec("k1", Algorithm::ES256);
    let f = domain(&key);
    // A token just issued that the JWKS refuses is not replaced: another would fare no better.
    f.idp.a.set_jwks_fault(Some(Fault::Status(401, "{}".into())));
    assert_unavailable(&f.engine.decide(&bearer(&token(&f, &key, "alice"))), Failure::Status(401));
    assert_eq!((f.idp.a.token_requests(), f.idp.a.jwks_requests()), (1, 1));
    f.idp.a.set_jwks_fault(Some(Fault::Status(403, "{}".into())));
    assert_unavailable(&f.engine.decide(&bearer(&token(&f, &key, "alice"))), Failure::Status(403));
    assert_eq!((f.idp.a.token_requests(), f.idp.a.jwks_requests()), (1, 2), "a 403 is not the token's age");

    // With the keys held, a new `kid` makes a refetch: the kept token is refused, so is the new
    // one, and without the newest keys that token cannot be judged.
    f.idp.a.set_jwks_fault(None);
    assert_allowed(&f.engine.decide(&bearer(&token(&f, &key, "alice"))), "alice");
    f.idp.a.set_jwks_fault(Some(Fault::Status(401, "{}".into())));
    let rotated = SigningKey::ec("k2", Algorithm::ES256);
    assert_unavailable(&f.engine.decide(&bearer(&token(&f, &rotated, "bob"))), Failure::Status(401));
    assert_eq!((f.idp.a.token_requests(), f.idp.a.jwks_requests()), (2, 5), "one new token, one retry");
    assert_allowed(&f.engine.decide(&bearer(&token(&f, &key, "carol"))), "carol");
}

/// Without keys held, every decision asks the JWKS again: one refusing every token costs the
/// token endpoint one new token per 10 s, not one per decision.
#[test]
fn a_jwks_refusing_every_token_has_it_replaced_at_most_once_per_window() {
    let key = SigningKey::ec("k1", Algorithm::ES256);
    let f = domain(&key);
    f.idp.a.set_jwks_fault(Some(Fault::Status(401, "{}".into())));
    for sub in ["alice", "bob", "carol", "dave"] {
        assert_unavailable(&f.engine.decide(&bearer(&token(&f, &key, sub))), Failure::Status(401));
    }
    // The first token was just issued (kept, not replaced); the second decision replaced it.
    assert_eq!((f.idp.a.token_requests(), f.idp.a.jwks_requests()), (2, 5));
    f.clock.advance(11);
    assert_unavailable(&f.engine.decide(&bearer(&token(&f, &key, "erin"))), Failure::Status(401));
    assert_eq!((f.idp.a.token_requests(), f.idp.a.jwks_requests()), (3, 7));
    f.idp.a.set_jwks_fault(None);
    assert_allowed(&f.engine.decide(&bearer(&token(&f, &key, "frank"))), "frank");
}

#[test]
fn a_token_endpoint_outage_is_unavailable_and_the_caller_allowed_once_it_is_back() {
    let key = SigningKey::ec("k1", Algorithm::ES256);
    let f = domain(&key);
    f.idp.a.set_token_fault(Some(Fault::Status(503, "{}".into())));
    let caller = token(&f, &key, "alice");
    assert_unavailable(&f.engine.decide(&bearer(&caller)), Failure::Status(503));
    assert_eq!(f.idp.a.jwks_requests(), 0, "no JWKS request without a token");
    f.idp.a.set_token_fault(Some(Fault::Silent));
    let outcome = f.engine.decide(&bearer(&caller));
    assert!(
        matches!(outcome, Outcome::Unavailable(Cause { dependency: Dependency::Jwks, failure: Failure::Timeout, .. })),
        "{outcome:?}"
    );
    f.idp.a.set_token_fault(None);
    assert_allowed(&f.engine.decide(&bearer(&caller)), "alice");
}

#[test]
fn a_refused_client_is_unavailable_not_a_deny() {
    let key = SigningKey::ec("k1", Algorithm::ES256);
    let f = domain(&key);
    f.idp.a.add_client(A_CLIENT.0, "rotated-elsewhere");
    let outcome = f.engine.decide(&bearer(&token(&f, &key, "alice")));
    assert_unavailable(&outcome, Failure::ClientRejected);
    let Outcome::Unavailable(cause) = outcome else { unreachable!() };
    assert_eq!(cause.code(), "jwks_client_rejected");
    assert_eq!((f.idp.a.rejected_auth(), f.idp.a.jwks_requests()), (1, 0));
}

/// Identity domains may renew a key under its `kid`: the refetch it causes is authenticated
/// like any, with the kept token.
#[test]
fn a_key_rotated_under_its_kid_is_fetched_with_the_kept_token_and_verifies() {
    let old = SigningKey::ec("k1", Algorithm::ES256);
    let f = domain(&old);
    assert_allowed(&f.engine.decide(&bearer(&token(&f, &old, "alice"))), "alice");
    let renewed = SigningKey::ec("k1", Algorithm::ES256);
    f.idp.a.serve_jwks(&[&renewed.jwk], SCOPE);
    assert_allowed(&f.engine.decide(&bearer(&token(&f, &renewed, "bob"))), "bob");
    let a = &f.idp.a;
    assert_eq!((a.token_requests(), a.jwks_requests(), a.jwks_refused()), (1, 2, 0));
}

#[test]
fn check_config_loads_the_keys_with_the_token_and_names_what_failed() {
    let key = SigningKey::ec("k1", Algorithm::ES256);
    let f = domain(&key);
    f.idp.a.add_client(A_CLIENT.0, "rotated-elsewhere");
    let problems = f.engine.check_keys(std::time::Duration::from_secs(2));
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [format!(
            "issuer {ISSUER}: its keys cannot be loaded: JWKS endpoint: rejected our client credentials (invalid_client)"
        )]
    );
    f.idp.a.add_client(A_CLIENT.0, A_CLIENT.1);
    assert!(f.engine.check_keys(std::time::Duration::from_secs(2)).is_empty());
    assert_eq!(f.idp.a.jwks_requests(), 1);
}
