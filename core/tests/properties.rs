//! Properties of the whole engine against the fake IdPs with a controlled clock: for any
//! configuration, caller token lifetimes, backend token lifetimes, IdP B outages and clock moves,
//! an allow's `expires_at` is the earlier of the two tokens' expiries, and a backend token is
//! never handed out at or after the end of its usable life.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;
use serde_json::json;
use tokenbridge_core::testing::{Clock, ManualClock};
use tokenbridge_core::{Config, Denial, Dependency, Engine, Outcome, Request};
use tokenbridge_tests::{Fault, IdpPair};

/// How long the cache serves a stale backend token, without asking again, after a failed refresh.
const STALE_RETRY_SECONDS: i64 = 5;

/// One IdP pair for every case: each case has its own engine, clock and caller tokens.
fn idp() -> &'static IdpPair {
    static IDP: OnceLock<IdpPair> = OnceLock::new();
    IDP.get_or_init(IdpPair::start)
}

fn unique(prefix: &str) -> String {
    static SERIAL: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}", SERIAL.fetch_add(1, Ordering::SeqCst))
}

#[derive(Debug, Clone)]
struct Settings {
    leeway: i64,
    cache_max_ttl: i64,
    min_remaining: i64,
    refresh: i64,
    default_ttl: i64,
}

fn settings() -> impl Strategy<Value = Settings> {
    (0..=300i64, 0..=3_600i64, 0..=3_600i64, 0..=3_600i64, 1..=7_200i64).prop_map(
        |(leeway, cache_max_ttl, min_remaining, refresh, default_ttl)| Settings {
            leeway,
            cache_max_ttl,
            min_remaining,
            refresh,
            default_ttl,
        },
    )
}

/// One decision: the clock moves, IdP B may be down or change its tokens' lifetime.
#[derive(Debug, Clone)]
struct Step {
    advance: i64,
    caller: usize,
    backend_ttl: Option<i64>,
    idp_b_down: bool,
}

fn step() -> impl Strategy<Value = Step> {
    (0..900i64, 0..3usize, proptest::option::weighted(0.8, 1..=7_200i64), proptest::bool::weighted(0.25))
        .prop_map(|(advance, caller, backend_ttl, idp_b_down)| Step { advance, caller, backend_ttl, idp_b_down })
}

/// A backend token the engine handed out, as IdP B issued it.
struct Issued {
    issued_at: i64,
    expires_at: i64,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn allows_never_outlive_either_token_nor_hand_out_an_unusable_backend_token(
        s in settings(),
        // Caller token lifetimes from the start (`None`: the IdP gives no `exp`).
        callers in proptest::collection::vec(proptest::option::of(-120..=7_200i64), 3),
        steps in proptest::collection::vec(step(), 1..16),
    ) {
        let idp = idp();
        let start = 1_800_000_000;
        let tokens: Vec<(String, Option<i64>)> = callers
            .iter()
            .map(|ttl| {
                let token = unique("prop-caller");
                let exp = ttl.map(|t| start + t);
                let mut answer = json!({"active": true, "sub": "alice", "client_id": "caller-app", "scope": "read"});
                if let Some(exp) = exp {
                    answer["exp"] = json!(exp);
                }
                idp.a.add_token(&token, answer);
                (token, exp)
            })
            .collect();
        let mut env: HashMap<String, String> = idp.env().into_iter().collect();
        for (k, v) in [
            ("TOKENBRIDGE_CLOCK_LEEWAY_SECONDS", s.leeway),
            ("TOKENBRIDGE_CACHE_MAX_TTL_SECONDS", s.cache_max_ttl),
            ("TOKENBRIDGE_BACKEND_MIN_REMAINING_SECONDS", s.min_remaining),
            ("TOKENBRIDGE_BACKEND_REFRESH_SECONDS", s.refresh),
            ("TOKENBRIDGE_BACKEND_DEFAULT_TTL_SECONDS", s.default_ttl),
        ] {
            env.insert(k.to_string(), v.to_string());
        }
        let clock = Arc::new(ManualClock::at(start));
        let engine = Engine::builder(Config::from_lookup(&|k| env.get(k).cloned()))
            .clock(clock.clone())
            .log_sink(|_| {})
            .build();

        let mut issued: HashMap<String, Issued> = HashMap::new();
        let mut last_failure: Option<i64> = None;
        for step in steps {
            clock.advance(step.advance);
            let now = clock.now();
            idp.b.set_token_ttl(step.backend_ttl);
            idp.b.set_token_fault(step.idp_b_down.then(|| Fault::Status(503, String::new())));
            let (token, exp) = &tokens[step.caller];
            let outcome = engine.decide(&Request::bearer(format!("Bearer {token}")));
            let expired = exp.is_some_and(|exp| exp.saturating_add(s.leeway) <= now);
            match outcome {
                Outcome::Allow(grant) => {
                    prop_assert!(!expired, "an expired caller token allowed: exp {:?} at {}", exp, now);
                    let backend = grant.context["back_end_token"].clone();
                    if !issued.contains_key(&backend) {
                        prop_assert!(!step.idp_b_down, "a new backend token while IdP B is down");
                        let life = step.backend_ttl.unwrap_or(s.default_ttl);
                        issued.insert(backend.clone(), Issued { issued_at: now, expires_at: now + life });
                    }
                    let b = &issued[&backend];
                    let life = b.expires_at - b.issued_at;
                    let usable_until = b.expires_at - s.min_remaining.min(life / 2);
                    prop_assert!(now < usable_until, "backend token handed out at {} past its usable end {}", now, usable_until);
                    // The caller token without `exp` counts as expiring after the cache maximum.
                    let caller_expiry = exp.unwrap_or(now + s.cache_max_ttl);
                    // A caller token accepted within the leeway after its `exp` is reported as
                    // expiring now: gateways are never told a time in the past.
                    prop_assert_eq!(grant.expires_at, caller_expiry.min(b.expires_at).max(now));
                    // With IdP B up, a token is reused past its refresh point only during the
                    // back-off after a failed refresh.
                    let refresh_at = usable_until - s.refresh.max(life / 10).min((usable_until - b.issued_at) / 2);
                    if !step.idp_b_down && now >= refresh_at {
                        prop_assert!(
                            b.issued_at == now || last_failure.is_some_and(|t| now < t + STALE_RETRY_SECONDS),
                            "a backend token reused at {} past its refresh point {}", now, refresh_at
                        );
                    }
                }
                Outcome::Deny(denial) => {
                    prop_assert_eq!(denial, Denial::InvalidToken);
                    prop_assert!(expired, "a valid caller token denied: exp {:?} at {}", exp, now);
                }
                Outcome::Unavailable(cause) => {
                    prop_assert_eq!(cause.dependency, Dependency::BackendToken);
                    prop_assert!(step.idp_b_down, "unavailable with both IdPs up: {}", cause);
                }
            }
            if step.idp_b_down && !expired {
                last_failure = Some(now);
            }
        }
        idp.b.set_token_fault(None);
        idp.b.set_token_ttl(Some(3600));
    }
}
