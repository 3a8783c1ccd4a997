//! DPoP (RFC 9449) through the engine: proofs made here for tokens bound to their keys, each
//! field of a proof wrong in turn, replays, another key, bound tokens sent as bearer tokens, and
//! the modes. Tokens are introspected at the fake IdP A, whose answers carry `cnf.jkt`.

mod common;

use common::{Fixture, fixture_at};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokenbridge_core::testing::Clock;
use tokenbridge_core::{Cause, Denial, Dependency, Failure, Outcome, Request, Route};
use tokenbridge_tests::IdpPair;
use tokenbridge_tests::dpop::DpopClient;
use tokenbridge_tests::jwt_keys::SigningKey;

const ORIGIN: &str = "https://api.example.com";
const HTU: &str = "https://api.example.com/orders/7";

fn fixture(mode: &str, extra: &[(&str, &str)]) -> Fixture {
    let mut set = vec![("TOKENBRIDGE_DPOP", mode), ("TOKENBRIDGE_DPOP_ORIGINS", ORIGIN)];
    set.extend_from_slice(extra);
    fixture_at(IdpPair::start(), &set, &[])
}

/// A caller token at IdP A, bound to `jkt` when given.
fn token(f: &Fixture, name: &str, jkt: Option<&str>) -> String {
    let mut answer = json!({"active": true, "sub": "alice", "scope": "orders.read",
                            "exp": f.clock.now() + 600, "token_type": "DPoP"});
    if let Some(jkt) = jkt {
        answer["cnf"] = json!({"jkt": jkt});
    }
    f.idp.a.add_token(name, answer);
    name.to_string()
}

fn request(scheme: &str, token: &str, proof: Option<String>, method: &str, path: &str) -> Request {
    Request {
        route: Route { method: Some(method.into()), path: Some(path.into()), ..Route::default() },
        dpop: proof,
        ..Request::bearer(format!("{scheme} {token}"))
    }
}

fn last_reason(f: &Fixture) -> String {
    let log = f.log.lock().unwrap();
    let line: Value = serde_json::from_str(log.last().expect("a log line")).unwrap();
    line["reason"].as_str().unwrap_or("").to_string()
}

fn assert_allowed(outcome: &Outcome) {
    assert!(matches!(outcome, Outcome::Allow(g) if g.principal == "alice"), "{outcome:?}");
}

fn assert_refused(f: &Fixture, outcome: Outcome, denial: Denial, reason: &str) {
    assert_eq!(outcome, Outcome::Deny(denial), "{reason}");
    assert_eq!(last_reason(f), reason);
}

#[test]
fn a_proof_of_the_bound_key_is_allowed_for_this_request_only() {
    for key in [
        SigningKey::ec("k", Algorithm::ES256),
        SigningKey::ec("k", Algorithm::ES384),
        SigningKey::rsa("k", Algorithm::PS256),
        SigningKey::rsa("k", Algorithm::RS256),
        SigningKey::ed25519("k"),
    ] {
        let f = fixture("allowed", &[]);
        let client = DpopClient::with(key);
        let t = token(&f, "bound", Some(&client.jkt()));
        let proof = client.proof("GET", HTU, &t, f.clock.now());
        let outcome = f.engine.decide(&request("DPoP", &t, Some(proof), "GET", "/orders/7"));
        assert_allowed(&outcome);
        let Outcome::Allow(grant) = outcome else { unreachable!() };
        assert_eq!(grant.expires_at, f.clock.now(), "a gateway must not reuse a DPoP allow for another request");
        assert!(grant.context["back_end_token"].starts_with("Bearer "));
    }
}

#[test]
fn every_field_of_a_proof_is_checked() {
    let f = fixture("allowed", &[]);
    let client = DpopClient::es256();
    let t = token(&f, "bound", Some(&client.jkt()));
    let now = f.clock.now();
    let private = {
        // The proof's key with its private part: a proof must carry a public key only.
        let mut jwk = client.public_jwk();
        jwk["d"] = json!("c2VjcmV0");
        jwk
    };
    type Break = Box<dyn Fn(&mut Value, &mut Value)>;
    let cases: Vec<(&str, Break, &str)> = vec![
        ("typ jwt", Box::new(|h, _| h["typ"] = json!("jwt")), "dpop_proof_malformed"),
        ("typ missing", Box::new(|h, _| drop(h.as_object_mut().unwrap().remove("typ"))), "dpop_proof_malformed"),
        ("alg none", Box::new(|h, _| h["alg"] = json!("none")), "dpop_proof_malformed"),
        ("alg HS256", Box::new(|h, _| h["alg"] = json!("HS256")), "dpop_proof_malformed"),
        ("alg of another key type", Box::new(|h, _| h["alg"] = json!("RS256")), "dpop_proof_malformed"),
        ("no jwk", Box::new(|h, _| drop(h.as_object_mut().unwrap().remove("jwk"))), "dpop_proof_malformed"),
        ("private jwk", Box::new(move |h, _| h["jwk"] = private.clone()), "dpop_proof_malformed"),
        ("symmetric jwk", Box::new(|h, _| h["jwk"] = json!({"kty": "oct", "k": "c2VjcmV0"})), "dpop_proof_malformed"),
        ("crit", Box::new(|h, _| h["crit"] = json!(["x"])), "dpop_proof_malformed"),
        ("no jti", Box::new(|_, c| drop(c.as_object_mut().unwrap().remove("jti"))), "dpop_proof_malformed"),
        ("htm POST", Box::new(|_, c| c["htm"] = json!("POST")), "dpop_proof_wrong_request"),
        ("htm get", Box::new(|_, c| c["htm"] = json!("get")), "dpop_proof_wrong_request"),
        (
            "another host",
            Box::new(|_, c| c["htu"] = json!("https://evil.example.com/orders/7")),
            "dpop_proof_wrong_request",
        ),
        (
            "another path",
            Box::new(|_, c| c["htu"] = json!("https://api.example.com/orders/8")),
            "dpop_proof_wrong_request",
        ),
        (
            "another port",
            Box::new(|_, c| c["htu"] = json!("https://api.example.com:8443/orders/7")),
            "dpop_proof_wrong_request",
        ),
        (
            "another scheme",
            Box::new(|_, c| c["htu"] = json!("http://api.example.com/orders/7")),
            "dpop_proof_wrong_request",
        ),
        (
            "path case",
            Box::new(|_, c| c["htu"] = json!("https://api.example.com/Orders/7")),
            "dpop_proof_wrong_request",
        ),
        (
            "trailing slash",
            Box::new(|_, c| c["htu"] = json!("https://api.example.com/orders/7/")),
            "dpop_proof_wrong_request",
        ),
        (
            "dot segment",
            Box::new(|_, c| c["htu"] = json!("https://api.example.com/x/../orders/7")),
            "dpop_proof_wrong_request",
        ),
        (
            "with a query",
            Box::new(|_, c| c["htu"] = json!("https://api.example.com/orders/7?a=1")),
            "dpop_proof_wrong_request",
        ),
        ("ath of another token", Box::new(|_, c| c["ath"] = json!("AAAA")), "dpop_proof_wrong_request"),
        ("no ath", Box::new(|_, c| drop(c.as_object_mut().unwrap().remove("ath"))), "dpop_proof_malformed"),
        ("iat as text", Box::new(move |_, c| c["iat"] = json!(now.to_string())), "dpop_proof_malformed"),
        ("iat 61 s old", Box::new(move |_, c| c["iat"] = json!(now - 61)), "dpop_proof_expired"),
        ("iat 61 s ahead", Box::new(move |_, c| c["iat"] = json!(now + 61)), "dpop_proof_expired"),
    ];
    for (what, damage, reason) in cases {
        let mut parts = client.parts("GET", HTU, &t, now);
        damage(&mut parts.header, &mut parts.claims);
        let proof = client.sign(&parts);
        let outcome = f.engine.decide(&request("DPoP", &t, Some(proof), "GET", "/orders/7"));
        assert_eq!(outcome, Outcome::Deny(Denial::InvalidDpopProof), "{what}");
        assert_eq!(last_reason(&f), reason, "{what}");
    }
    // A signature over other bytes, and none at all.
    let proof = client.proof("GET", HTU, &t, now);
    let (signed, _) = proof.rsplit_once('.').unwrap();
    let other = client.proof("GET", HTU, &t, now);
    let forged = format!("{signed}.{}", other.rsplit_once('.').unwrap().1);
    for (what, proof, reason) in [
        ("another proof's signature", forged, "dpop_proof_bad_signature"),
        ("no signature", format!("{signed}."), "dpop_proof_bad_signature"),
        ("not a JWS", "abc".to_string(), "dpop_proof_malformed"),
    ] {
        let outcome = f.engine.decide(&request("DPoP", &t, Some(proof), "GET", "/orders/7"));
        assert_refused(&f, outcome, Denial::InvalidDpopProof, reason);
        let _ = what;
    }
    assert_allowed(&f.engine.decide(&request("DPoP", &t, Some(client.proof("GET", HTU, &t, now)), "GET", "/orders/7")));
}

#[test]
fn the_window_for_iat_has_edges() {
    let f = fixture("allowed", &[("TOKENBRIDGE_CLOCK_LEEWAY_SECONDS", "5")]);
    let client = DpopClient::es256();
    let t = token(&f, "bound", Some(&client.jkt()));
    let now = f.clock.now();
    let at =
        |iat: i64| f.engine.decide(&request("DPoP", &t, Some(client.proof("GET", HTU, &t, iat)), "GET", "/orders/7"));
    assert_allowed(&at(now - 60));
    assert_allowed(&at(now + 5));
    assert_eq!(at(now - 61), Outcome::Deny(Denial::InvalidDpopProof));
    assert_eq!(at(now + 6), Outcome::Deny(Denial::InvalidDpopProof));
}

#[test]
fn a_proof_is_good_for_one_allow() {
    let f = fixture("allowed", &[]);
    let client = DpopClient::es256();
    let t = token(&f, "bound", Some(&client.jkt()));
    let proof = client.proof("GET", HTU, &t, f.clock.now());
    assert_allowed(&f.engine.decide(&request("DPoP", &t, Some(proof.clone()), "GET", "/orders/7")));
    let again = f.engine.decide(&request("DPoP", &t, Some(proof.clone()), "GET", "/orders/7"));
    assert_refused(&f, again, Denial::InvalidDpopProof, "dpop_proof_replayed");
    // Still a replay after the window, when the iat check refuses it first.
    f.clock.advance(120);
    let late = f.engine.decide(&request("DPoP", &t, Some(proof), "GET", "/orders/7"));
    assert_eq!(late, Outcome::Deny(Denial::InvalidDpopProof));
}

#[test]
fn a_decision_from_the_caches_alone_does_not_spend_the_proof() {
    let f = fixture("allowed", &[]);
    let client = DpopClient::es256();
    let t = token(&f, "bound", Some(&client.jkt()));
    let proof = client.proof("GET", HTU, &t, f.clock.now());
    let r = request("DPoP", &t, Some(proof), "GET", "/orders/7");
    assert_eq!(f.engine.decide_now(&r), None, "nothing cached yet");
    assert_allowed(&f.engine.decide(&r));
    let fresh = request("DPoP", &t, Some(client.proof("GET", HTU, &t, f.clock.now())), "GET", "/orders/7");
    assert!(matches!(f.engine.decide_now(&fresh), Some(Outcome::Allow(_))), "a warm DPoP decision needs no IdP");
}

#[test]
fn a_proof_made_with_another_key_is_refused() {
    let f = fixture("allowed", &[]);
    let (owner, thief) = (DpopClient::es256(), DpopClient::es256());
    let t = token(&f, "bound", Some(&owner.jkt()));
    let proof = thief.proof("GET", HTU, &t, f.clock.now());
    let outcome = f.engine.decide(&request("DPoP", &t, Some(proof), "GET", "/orders/7"));
    assert_refused(&f, outcome, Denial::InvalidDpopProof, "dpop_key_mismatch");
}

#[test]
fn a_bound_token_sent_as_a_bearer_token_is_refused_in_every_mode() {
    for mode in ["off", "allowed", "required"] {
        let f = fixture(mode, &[]);
        let client = DpopClient::es256();
        let t = token(&f, "bound", Some(&client.jkt()));
        let outcome = f.engine.decide(&request("Bearer", &t, None, "GET", "/orders/7"));
        let expected = if mode == "required" { Denial::DpopRequired } else { Denial::InvalidToken };
        assert_eq!(outcome, Outcome::Deny(expected), "{mode}");
        let reason = if mode == "required" { "dpop_required" } else { "dpop_bound_token_as_bearer" };
        assert_eq!(last_reason(&f), reason, "{mode}");
    }
}

#[test]
fn the_modes_decide_what_a_bearer_token_and_a_dpop_request_may_do() {
    let client = DpopClient::es256();
    let off = fixture("off", &[]);
    let t = token(&off, "unbound", None);
    assert_allowed(&off.engine.decide(&request("Bearer", &t, None, "GET", "/orders/7")));
    let proof = client.proof("GET", HTU, &t, off.clock.now());
    let dpop_where_off = off.engine.decide(&request("DPoP", &t, Some(proof), "GET", "/orders/7"));
    assert_refused(&off, dpop_where_off, Denial::InvalidToken, "malformed_token");

    let allowed = fixture("allowed", &[]);
    let t = token(&allowed, "unbound", None);
    assert_allowed(&allowed.engine.decide(&request("Bearer", &t, None, "GET", "/orders/7")));
    let proof = client.proof("GET", HTU, &t, allowed.clock.now());
    let unbound = allowed.engine.decide(&request("DPoP", &t, Some(proof), "GET", "/orders/7"));
    assert_refused(&allowed, unbound, Denial::InvalidToken, "dpop_token_not_bound");
    let no_proof = allowed.engine.decide(&request("DPoP", &t, None, "GET", "/orders/7"));
    assert_refused(&allowed, no_proof, Denial::InvalidDpopProof, "dpop_proof_malformed");

    let required = fixture("required", &[]);
    let t = token(&required, "unbound", None);
    let bearer = required.engine.decide(&request("Bearer", &t, None, "GET", "/orders/7"));
    assert_refused(&required, bearer, Denial::DpopRequired, "dpop_required");
    assert_eq!(required.idp.a.introspections(), 0, "refused before IdP A is asked");
}

#[test]
fn a_route_may_set_its_own_mode() {
    let policy = r#"{"routes": [{"path": "/orders/**", "dpop": "required"}], "default": {"scopes": []}}"#;
    let f = fixture("off", &[("TOKENBRIDGE_POLICY", policy)]);
    let t = token(&f, "unbound", None);
    let orders = f.engine.decide(&request("Bearer", &t, None, "GET", "/orders/7"));
    assert_refused(&f, orders, Denial::DpopRequired, "dpop_required");
    assert_allowed(&f.engine.decide(&request("Bearer", &t, None, "GET", "/public")));
}

#[test]
fn a_dpop_request_without_its_method_or_path_cannot_be_checked() {
    let f = fixture("allowed", &[]);
    let client = DpopClient::es256();
    let t = token(&f, "bound", Some(&client.jkt()));
    let proof = client.proof("GET", HTU, &t, f.clock.now());
    let r = Request { dpop: Some(proof), ..Request::bearer(format!("DPoP {t}")) };
    assert_refused(&f, f.engine.decide(&r), Denial::InvalidDpopProof, "dpop_proof_wrong_request");
}

#[test]
fn the_challenges_are_dpops() {
    assert_eq!(
        Denial::InvalidDpopProof.challenge("api"),
        "DPoP realm=\"api\", error=\"invalid_dpop_proof\", algs=\"ES256 ES384 PS256 PS384 PS512 RS256 RS384 RS512 EdDSA\""
    );
    assert!(Denial::DpopRequired.challenge("api").starts_with("DPoP realm=\"api\", error=\"invalid_token\", algs="));
    assert_eq!((Denial::InvalidDpopProof.http_status(), Denial::DpopRequired.http_status()), (401, 401));
}

#[test]
fn a_full_replay_cache_is_unavailable_not_a_guess() {
    let f = fixture("allowed", &[("TOKENBRIDGE_DPOP_REPLAY_CAPACITY", "1")]);
    let client = DpopClient::es256();
    let t = token(&f, "bound", Some(&client.jkt()));
    let now = f.clock.now();
    assert_allowed(&f.engine.decide(&request("DPoP", &t, Some(client.proof("GET", HTU, &t, now)), "GET", "/orders/7")));
    let second = f.engine.decide(&request("DPoP", &t, Some(client.proof("GET", HTU, &t, now)), "GET", "/orders/7"));
    assert_eq!(second, Outcome::Unavailable(Cause::new(Dependency::DpopReplays, Failure::Full)));
}

#[test]
fn dpop_needs_the_origins_clients_call() {
    let f = fixture_at(IdpPair::start(), &[("TOKENBRIDGE_DPOP", "allowed")], &[]);
    let problems = f.engine.config().err().expect("a configuration error").to_string();
    assert!(problems.contains("TOKENBRIDGE_DPOP_ORIGINS"), "{problems}");
    let f = fixture_at(
        IdpPair::start(),
        &[
            ("TOKENBRIDGE_DPOP", "maybe"),
            ("TOKENBRIDGE_DPOP_ORIGINS", "https://api.example.com/%zz https://b.example.com/?x"),
        ],
        &[],
    );
    let problems = f.engine.config().err().expect("a configuration error").to_string();
    for says in ["off, allowed or required", "not an origin", "must not have a query string"] {
        assert!(problems.contains(says), "{says}: {problems}");
    }
}

#[test]
fn a_base_path_origin_names_the_path_clients_call() {
    let f = fixture_at(
        IdpPair::start(),
        &[
            ("TOKENBRIDGE_DPOP", "allowed"),
            ("TOKENBRIDGE_DPOP_ORIGINS", "https://a.example.com https://gw.example.com/prod/"),
        ],
        &[],
    );
    let client = DpopClient::es256();
    let t = token(&f, "bound", Some(&client.jkt()));
    for htu in ["https://a.example.com/orders/7", "https://GW.example.com:443/prod/orders/7"] {
        let proof = client.proof("GET", htu, &t, f.clock.now());
        assert_allowed(&f.engine.decide(&request("DPoP", &t, Some(proof), "GET", "/orders/7")));
    }
}

#[test]
fn a_token_bound_to_anything_but_its_proof_or_certificate_is_never_accepted() {
    // A token bound by a `cnf` member tokenbridge cannot check (RFC 7800 `jwk`, `kid`, …) is worth
    // nothing to a thief only if the binding is checked: accepted as a bearer token, it would be.
    // A certificate binding (RFC 8705 `x5t#S256`) needs its certificate, which no request here has.
    let client = DpopClient::es256();
    let x5t = "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2";
    for mode in ["off", "allowed"] {
        let cases = [
            (json!({"x5t#S256": x5t}), "certificate_missing", "dpop_token_not_bound"),
            (json!({"jwk": client.public_jwk()}), "bound_token_unverifiable", "bound_token_unverifiable"),
            (json!({"kid": "k1"}), "bound_token_unverifiable", "bound_token_unverifiable"),
            (json!({"jkt": client.jkt(), "x5t#S256": x5t}), "dpop_bound_token_as_bearer", "certificate_missing"),
        ];
        for (cnf, as_bearer, with_proof) in cases {
            let f = fixture(mode, &[]);
            f.idp.a.add_token("bound", json!({"active": true, "sub": "alice", "exp": f.clock.now() + 600, "cnf": cnf}));
            let bearer = f.engine.decide(&request("Bearer", "bound", None, "GET", "/orders/7"));
            assert_refused(&f, bearer, Denial::InvalidToken, as_bearer);
            if mode == "allowed" {
                let proof = client.proof("GET", HTU, "bound", f.clock.now());
                let dpop = f.engine.decide(&request("DPoP", "bound", Some(proof), "GET", "/orders/7"));
                assert_refused(&f, dpop, Denial::InvalidToken, with_proof);
            }
        }
    }
}

#[test]
fn a_path_that_does_not_start_with_a_slash_names_no_uri_of_the_origins() {
    // Glued to the origin, such a path would write its authority: a proof made for another host,
    // port or base path would pass.
    let f = fixture_at(
        IdpPair::start(),
        &[
            ("TOKENBRIDGE_DPOP", "allowed"),
            ("TOKENBRIDGE_DPOP_ORIGINS", "https://api.example.com https://gw.example.com/prod"),
        ],
        &[],
    );
    let client = DpopClient::es256();
    let t = token(&f, "bound", Some(&client.jkt()));
    for (htu, path) in [
        ("https://api.example.com.evil.example.com/orders/7", ".evil.example.com/orders/7"),
        ("https://api.example.com:8443/orders/7", ":8443/orders/7"),
        ("https://gw.example.com/production/orders/7", "uction/orders/7"),
    ] {
        let proof = client.proof("GET", htu, &t, f.clock.now());
        let outcome = f.engine.decide(&request("DPoP", &t, Some(proof), "GET", path));
        assert_refused(&f, outcome, Denial::InvalidDpopProof, "dpop_proof_wrong_request");
    }
}

#[test]
fn an_introspected_jwt_bound_in_its_payload_is_bound_though_the_answer_omits_cnf() {
    // IdP A's answer is the authority on the token, but an answer without `cnf` does not unbind a
    // JWT that says it is bound: the stricter reading wins.
    use base64::Engine;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let client = DpopClient::es256();
    let f = fixture("allowed", &[]);
    let jwt = |cnf: Value| {
        let claims = json!({"iss": "https://other.example.com", "sub": "alice", "cnf": cnf});
        format!("{}.{}.c2ln", b64(json!({"alg": "RS256", "typ": "at+jwt"})), b64(claims))
    };
    let answer = json!({"active": true, "sub": "alice", "exp": f.clock.now() + 600});
    let bound = jwt(json!({"jkt": client.jkt()}));
    f.idp.a.add_token(&bound, answer.clone());
    let bearer = f.engine.decide(&request("Bearer", &bound, None, "GET", "/orders/7"));
    assert_refused(&f, bearer, Denial::InvalidToken, "dpop_bound_token_as_bearer");
    let proof = client.proof("GET", HTU, &bound, f.clock.now());
    assert_allowed(&f.engine.decide(&request("DPoP", &bound, Some(proof), "GET", "/orders/7")));
    // An answer that binds the token to another key than its payload does: no guess.
    let other = jwt(json!({"jkt": DpopClient::es256().jkt()}));
    let mut disagreeing = answer.clone();
    disagreeing["cnf"] = json!({"jkt": client.jkt()});
    f.idp.a.add_token(&other, disagreeing);
    let proof = client.proof("GET", HTU, &other, f.clock.now());
    let outcome = f.engine.decide(&request("DPoP", &other, Some(proof), "GET", "/orders/7"));
    assert_refused(&f, outcome, Denial::InvalidToken, "malformed_claim");
}

#[test]
fn a_proof_key_spliced_from_the_victims_public_key_and_the_thiefs_is_refused() {
    // The thumbprint is taken over the members `kty` names; the key that verifies must be made of
    // those same members, or a thief would put the victim's public `n`/`e` beside its own EC
    // point and sign with its own key. Nor may a name be sent twice, even spelt with escapes.
    let f = fixture("allowed", &[]);
    let (victim, thief) = (DpopClient::with(SigningKey::rsa("k", Algorithm::RS256)), DpopClient::es256());
    let t = token(&f, "bound", Some(&victim.jkt()));
    let mut spliced = thief.public_jwk();
    let victim_jwk = victim.public_jwk();
    spliced["n"] = victim_jwk["n"].clone();
    spliced["e"] = victim_jwk["e"].clone();
    spliced["kty"] = json!("RSA");
    let mut parts = thief.parts("GET", HTU, &t, f.clock.now());
    parts.header["jwk"] = spliced;
    let outcome = f.engine.decide(&request("DPoP", &t, Some(thief.sign(&parts)), "GET", "/orders/7"));
    assert_eq!(outcome, Outcome::Deny(Denial::InvalidDpopProof));
    assert_eq!(last_reason(&f), "dpop_proof_malformed");
}
