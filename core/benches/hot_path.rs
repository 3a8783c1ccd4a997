//! The core's hot path (`scripts/bench --micro`): bearer extraction, a cached decision (the
//! validation cache and the backend-token cache both hit), and JWT verification per algorithm
//! (the same decision with the validation cache off, so every call verifies the signature), and
//! what counting a decision in the metrics costs.
//!
//! The cache is crate-private, so its hit is measured through `Engine::decide`, the way every
//! adapter reaches it; the decision log goes to a no-op sink. Fake IdPs and a fake issuer serve
//! on loopback for the first (uncached) call only.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::Algorithm;
use serde_json::json;
use tokenbridge_core::testing::{count_cached_allow, extract_bearer, fingerprint};
use tokenbridge_core::{Config, Engine, Outcome, Request};
use tokenbridge_tests::IdpPair;
use tokenbridge_tests::fake_idp::unix_now;
use tokenbridge_tests::jwt_keys::{FakeIssuer, SigningKey};

fn engine(env: &[(String, String)]) -> Engine {
    let env: HashMap<String, String> = env.iter().cloned().collect();
    Engine::builder(Config::from_lookup(&|k| env.get(k).cloned())).log_sink(|_| {}).build()
}

fn allowed(engine: &Engine, request: &Request) {
    assert!(matches!(engine.decide(request), Outcome::Allow(_)), "the warm-up decision was not an allow");
}

fn bearer(c: &mut Criterion) {
    let opaque = "Bearer 2YotnFZFEjr1zCsicMWpAA2YotnFZFEjr1zCsicMWpAA";
    let jwt = format!("Bearer {}.{}.{}", "e".repeat(100), "c".repeat(400), "s".repeat(86));
    let mut g = c.benchmark_group("bearer");
    g.bench_function("extract/opaque_43", |b| b.iter(|| extract_bearer(black_box(Some(opaque)))));
    g.bench_function("extract/jwt_590", |b| b.iter(|| extract_bearer(black_box(Some(jwt.as_str())))));
    g.bench_function("fingerprint_sha256/jwt_590", |b| b.iter(|| fingerprint(black_box(&jwt[7..]))));
    g.finish();
}

/// What counting a decision adds to it (`Engine::decide` does it once per decision): the
/// decisions counter, both stages' counters and the duration histogram.
fn metrics(c: &mut Criterion) {
    let mut g = c.benchmark_group("metrics");
    g.bench_function("count_decision/cached_allow", |b| b.iter(count_cached_allow));
    g.bench_function("encode", |b| b.iter(tokenbridge_core::metrics::encode));
    g.finish();
}

fn decisions(c: &mut Criterion) {
    let idp = IdpPair::start();
    let rsa = SigningKey::rsa("rs", Algorithm::RS256);
    let ec = SigningKey::ec("es", Algorithm::ES256);
    let ed = SigningKey::ed25519("ed");
    let issuer = FakeIssuer::start(&[&rsa, &ec, &ed]);
    let mut env = idp.env();
    env.extend([
        ("TOKENBRIDGE_ISSUER".to_string(), issuer.url.clone()),
        ("TOKENBRIDGE_AUDIENCE".to_string(), "api".to_string()),
        ("TOKENBRIDGE_JWKS_URL".to_string(), issuer.jwks_url()),
    ]);
    let cached = engine(&env);
    let mut no_cache_env = env.clone();
    no_cache_env.push(("TOKENBRIDGE_CACHE_MAX_TTL_SECONDS".into(), "0".into()));
    let verifying = engine(&no_cache_env);
    let jwt = |key: &SigningKey| {
        let mut claims = issuer.claims("api", "bench", "orders.read", unix_now());
        claims["exp"] = json!(unix_now() + 3600);
        Request::bearer(format!("Bearer {}", key.sign(&claims)))
    };

    let mut g = c.benchmark_group("decide");
    let opaque = Request::bearer(format!("Bearer {}", idp.a.issue("bench", "orders.read", 3600)));
    allowed(&cached, &opaque);
    g.bench_function("cache_hit/opaque", |b| b.iter(|| cached.decide(black_box(&opaque))));
    let es = jwt(&ec);
    allowed(&cached, &es);
    g.bench_function("cache_hit/jwt_es256", |b| b.iter(|| cached.decide(black_box(&es))));
    g.finish();

    let mut g = c.benchmark_group("jwt_verify");
    for (name, key) in [("RS256", &rsa), ("ES256", &ec), ("EdDSA", &ed)] {
        let request = jwt(key);
        allowed(&verifying, &request);
        g.bench_function(format!("decide_uncached/{name}"), |b| b.iter(|| verifying.decide(black_box(&request))));
    }
    g.finish();

    // The introspection path in-process, next to the bare round trip it cannot avoid: the
    // difference is the engine's own work (no socket hop, no process switch on our side).
    let mut g = c.benchmark_group("introspection");
    let token = idp.a.issue("bench", "orders.read", 3600);
    let request = Request::bearer(format!("Bearer {token}"));
    allowed(&verifying, &request);
    g.bench_function("decide_uncached/opaque", |b| b.iter(|| verifying.decide(black_box(&request))));
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let (id, secret) = tokenbridge_tests::fake_idp::A_CLIENT;
    let form =
        |s: &str| s.replace('%', "%25").replace(':', "%3A").replace('/', "%2F").replace('+', "%2B").replace(' ', "+");
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{}:{}", form(id), form(secret)))
    );
    let url = idp.a.introspection_url();
    g.bench_function("round_trip_only/opaque", |b| {
        b.iter(|| {
            let mut answer = agent
                .post(&url)
                .header("Authorization", &basic)
                .send_form([("token", token.as_str()), ("token_type_hint", "access_token")])
                .expect("introspection");
            assert_eq!(answer.status(), 200);
            answer.body_mut().read_to_vec()
        })
    });
    g.finish();
}

criterion_group!(benches, bearer, metrics, decisions);
criterion_main!(benches);
