//! The shared cache tier against a real `redis-server`: instances that share it ask the IdPs
//! about as often as one instance would, what Redis holds is sealed and names no token, and
//! every Redis fault costs IdP calls, never a wrong answer.

use std::net::TcpListener;

use tokenbridge_tests::harness::{Run, stdio, token_payload};
use tokenbridge_tests::redis_server::RedisServer;
use tokenbridge_tests::{Fault, IdpPair};

const KEY: &str = "a shared cache key of forty characters..";

fn env(idp: &IdpPair, url: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = idp.env();
    env.push(("TOKENBRIDGE_SHARED_CACHE_URL".into(), url.into()));
    env.push(("TOKENBRIDGE_SHARED_CACHE_KEY".into(), KEY.into()));
    // Generous: the tests run beside other builds on a small machine.
    env.push(("TOKENBRIDGE_SHARED_CACHE_TIMEOUT_MS".into(), "500".into()));
    for (k, v) in extra {
        env.retain(|(name, _)| name != k);
        env.push((k.to_string(), v.to_string()));
    }
    env
}

fn tokens(idp: &IdpPair, n: usize) -> Vec<String> {
    (0..n).map(|i| idp.a.issue(&format!("user{i}"), "orders.read", 600)).collect()
}

fn decide(env: &[(String, String)], tokens: &[String]) -> Run {
    let input: Vec<String> = tokens.iter().map(|t| token_payload(t)).collect();
    let run = stdio(env, &input.join("\n"));
    assert_eq!(run.answers.len(), tokens.len(), "{}", run.stdout);
    run
}

fn allowed(run: &Run) -> usize {
    run.answers.iter().filter(|a| a["active"] == true).count()
}

#[test]
fn processes_sharing_a_redis_ask_the_idps_as_one_process_would() {
    let redis = RedisServer::start(&[]);
    let idp = IdpPair::start();
    let tokens = tokens(&idp, 20);
    let env = env(&idp, &redis.url(), &[]);
    for _ in 0..4 {
        let run = decide(&env, &tokens);
        assert_eq!(allowed(&run), 20, "{}", run.stdout);
    }
    assert_eq!(idp.a.introspections(), 20, "one introspection per token, not per process");
    assert_eq!(idp.b.token_requests(), 1, "one backend token for every process");
    // Without the tier, each process asks again.
    let alone = decide(&idp.env(), &tokens);
    assert_eq!(allowed(&alone), 20);
    assert_eq!((idp.a.introspections(), idp.b.token_requests()), (40, 2));
}

#[test]
fn redis_holds_neither_tokens_nor_answers_in_the_clear() {
    let redis = RedisServer::start(&[]);
    let idp = IdpPair::start();
    let tokens = tokens(&idp, 3);
    let run = decide(&env(&idp, &redis.url(), &[]), &tokens);
    let backend = run.answers[0]["context"]["back_end_token"].as_str().expect("backend token").to_string();
    let backend = backend.trim_start_matches("Bearer ");
    let entries = redis.entries();
    assert!(entries.len() >= 4, "three introspections and a backend token: {:?}", entries.len());
    for (key, value) in &entries {
        assert!(key.starts_with("tokenbridge:v1:"), "{key}");
        for secret in tokens.iter().map(String::as_str).chain([backend, "user0", "orders.read", "active"]) {
            assert!(!key.contains(secret), "a key names {secret}");
            assert!(
                !value.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a value holds {secret} in the clear"
            );
        }
    }
}

#[test]
fn tampered_moved_or_foreign_values_are_misses_and_never_answers() {
    let redis = RedisServer::start(&[]);
    let idp = IdpPair::start();
    let good = idp.a.issue("alice", "orders.read", 600);
    let revoked = idp.a.issue("mallory", "orders.read", 600);
    idp.a.revoke(&revoked);
    let env = env(&idp, &redis.url(), &[]);
    let first = decide(&env, &[good.clone(), revoked.clone()]);
    assert_eq!(first.answers[0]["active"], true);
    assert_eq!(first.answers[1]["active"], false);
    let introspection = |redis: &RedisServer| {
        let mut e: Vec<(String, Vec<u8>)> =
            redis.entries().into_iter().filter(|(k, _)| k.contains(":introspection:")).collect();
        e.sort();
        e
    };
    let before = introspection(&redis);
    assert_eq!(before.len(), 2);
    // Whoever can write Redis copies the good token's answer under the revoked token's key: it
    // does not open there (the key is the associated data), so IdP A is asked, and says no.
    // One of the two values under both keys: whichever it is, one key holds another's value.
    let good_value = before[0].1.clone();
    for (key, _) in &before {
        redis.set(key, &good_value);
    }
    let moved = decide(&env, &[good.clone(), revoked.clone()]);
    assert_eq!(moved.answers[1]["active"], false, "a moved value allowed a revoked token: {}", moved.stdout);
    assert_eq!(moved.answers[0]["active"], true);
    // Flipped bits and garbage: misses.
    for (key, value) in introspection(&redis) {
        let mut flipped = value.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x01;
        redis.set(&key, &flipped);
    }
    let calls = idp.a.introspections();
    let tampered = decide(&env, &[good.clone(), revoked.clone()]);
    assert_eq!(
        (tampered.answers[0]["active"].clone(), tampered.answers[1]["active"].clone()),
        (true.into(), false.into())
    );
    assert_eq!(idp.a.introspections(), calls + 2, "tampered values are asked again");
    assert!(tampered.stderr.contains("did not open under the configured key"), "{}", tampered.stderr);
    // Another deployment's key: its values are misses, never read.
    let calls = idp.a.introspections();
    let foreign = env_with_key(&idp, &redis, "another key, also forty characters long..");
    let run = decide(&foreign, std::slice::from_ref(&good));
    assert_eq!(run.answers[0]["active"], true);
    assert_eq!(idp.a.introspections(), calls + 1);
}

fn env_with_key(idp: &IdpPair, redis: &RedisServer, key: &str) -> Vec<(String, String)> {
    env(idp, &redis.url(), &[("TOKENBRIDGE_SHARED_CACHE_KEY", key)])
}

#[test]
fn a_redis_that_is_down_or_silent_costs_idp_calls_not_answers() {
    let idp = IdpPair::start();
    let tokens = tokens(&idp, 3);
    // Nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let run = decide(&env(&idp, &format!("redis://127.0.0.1:{closed}"), &[]), &tokens);
    assert_eq!(allowed(&run), 3, "{}", run.stdout);
    assert!(run.stderr.contains("cannot be reached"), "{}", run.stderr);
    assert_eq!(run.stderr.matches("cannot be reached").count(), 1, "warnings are rate-limited: {}", run.stderr);
    // Accepts connections and never answers: each call ends at the tier's timeout.
    let silent = TcpListener::bind("127.0.0.1:0").expect("listener");
    let url = format!("redis://{}", silent.local_addr().expect("address"));
    let run = decide(&env(&idp, &url, &[("TOKENBRIDGE_SHARED_CACHE_TIMEOUT_MS", "50")]), &tokens);
    assert_eq!(allowed(&run), 3, "{}", run.stdout);
    assert_eq!(idp.a.introspections(), 6);
    drop(silent);
}

#[test]
fn a_full_redis_refusing_writes_costs_idp_calls_not_answers() {
    let redis = RedisServer::start(&["maxmemory 1", "maxmemory-policy noeviction"]);
    let idp = IdpPair::start();
    let tokens = tokens(&idp, 3);
    let env = env(&idp, &redis.url(), &[]);
    let first = decide(&env, &tokens);
    let second = decide(&env, &tokens);
    assert_eq!((allowed(&first), allowed(&second)), (3, 3), "{}", second.stdout);
    assert_eq!(idp.a.introspections(), 6, "nothing could be kept");
    assert!(first.stderr.contains("refused a command"), "{}", first.stderr);
}

#[test]
fn an_idp_a_outage_is_still_unavailable_when_redis_has_nothing() {
    let redis = RedisServer::start(&[]);
    let idp = IdpPair::start();
    let tokens = tokens(&idp, 1);
    idp.a.set_introspect_fault(Some(Fault::Status(503, String::new())));
    let run = decide(&env(&idp, &redis.url(), &[]), &tokens);
    assert_eq!(run.answers[0]["error"], "unavailable", "{}", run.stdout);
    assert!(redis.entries().iter().all(|(k, _)| !k.contains(":introspection:")), "an outage is not kept");
}

#[test]
fn exchanged_tokens_are_shared_per_caller_token() {
    let redis = RedisServer::start(&[]);
    let idp = IdpPair::start();
    let tokens = tokens(&idp, 3);
    let env = env(&idp, &redis.url(), &[("TOKENBRIDGE_BACKEND_GRANT", "token_exchange")]);
    let first = decide(&env, &tokens);
    let second = decide(&env, &tokens);
    assert_eq!((allowed(&first), allowed(&second)), (3, 3), "{}", second.stdout);
    assert_eq!(idp.b.exchanged().len(), 3, "one exchange per caller token, not per process");
    for (a, b) in first.answers.iter().zip(&second.answers) {
        assert_eq!(a["context"]["back_end_token"], b["context"]["back_end_token"]);
    }
    let distinct: std::collections::BTreeSet<String> =
        first.answers.iter().map(|a| a["context"]["back_end_token"].to_string()).collect();
    assert_eq!(distinct.len(), 3, "each caller gets the token exchanged for its own");
}

#[test]
fn configuration_problems_of_the_tier_are_reported() {
    let idp = IdpPair::start();
    for (extra, says) in [
        (vec![("TOKENBRIDGE_SHARED_CACHE_KEY", "short")], "32 characters"),
        (vec![("TOKENBRIDGE_SHARED_CACHE_URL", "redis://u:pw@127.0.0.1:6379")], "holds a password"),
        (vec![("TOKENBRIDGE_SHARED_CACHE_URL", "http://127.0.0.1:6379")], "redis:// or rediss://"),
        (vec![("TOKENBRIDGE_SHARED_CACHE_PREFIX", "a:b")], "TOKENBRIDGE_SHARED_CACHE_PREFIX"),
    ] {
        let run = tokenbridge_tests::harness::run(&["check-config"], &env(&idp, "redis://127.0.0.1:1", &extra), "");
        let text = run.stdout + &run.stderr;
        assert!(text.contains(says), "{says}: {text}");
        assert!(!text.contains(KEY) && !text.contains("pw@"), "check-config names a secret: {text}");
    }
    let redis = RedisServer::start(&[]);
    let extra = [("TOKENBRIDGE_SHARED_CACHE_PASSWORD", "the-redis-password")];
    let run = tokenbridge_tests::harness::run(&["check-config"], &env(&idp, &redis.url(), &extra), "");
    let text = run.stdout + &run.stderr;
    assert!(text.contains(&format!("TOKENBRIDGE_SHARED_CACHE_URL = {}", redis.url())), "{text}");
    assert!(text.contains("TOKENBRIDGE_SHARED_CACHE_PREFIX = tokenbridge"), "{text}");
    assert!(!text.contains(KEY) && !text.contains("the-redis-password"), "check-config names a secret: {text}");
}

fn subscribers(redis: &RedisServer) -> i64 {
    match redis.command(&["PUBSUB", "NUMSUB", "tokenbridge:v1:revocations"]) {
        redis::Value::Array(items) => match items.get(1) {
            Some(redis::Value::Int(n)) => *n,
            _ => 0,
        },
        _ => 0,
    }
}

#[test]
fn a_revoked_token_is_refused_by_every_instance_even_one_that_holds_it() {
    let redis = RedisServer::start(&[]);
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "orders.read", 600);
    let other = idp.a.issue("bob", "orders.read", 600);
    let env = env(&idp, &redis.url(), &[]);
    let mut running = tokenbridge_tests::harness::Session::start(&env);
    assert_eq!(running.ask(&token_payload(&token))["active"], true);
    assert_eq!(running.ask(&token_payload(&other))["active"], true);
    let started = std::time::Instant::now();
    while subscribers(&redis) < 1 {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "the instance never listened for revocations");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let revoked = tokenbridge_tests::harness::run(&["revoke"], &env, &format!("Bearer {token}\n"));
    assert!(revoked.stdout.contains("\"revoked\""), "{} {}", revoked.stdout, revoked.stderr);
    assert!(!revoked.stdout.contains(&token), "the command's output names the token");
    // The running instance had the verdict in its own cache: the channel told it to forget it.
    let started = std::time::Instant::now();
    while running.ask(&token_payload(&token))["active"] == true {
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "the running instance still allows the token");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(running.ask(&token_payload(&other))["active"], true, "another token stays allowed");
    let log = running.finish();
    assert!(log.contains("\"revoked\""), "the denial's reason: {log}");
    // A new instance refuses it from the marker, though IdP A still says it is active.
    let fresh = decide(&env, &[token.clone(), other.clone()]);
    assert_eq!(fresh.answers[0]["active"], false, "{}", fresh.stdout);
    assert_eq!(fresh.answers[1]["active"], true);
    // Another deployment (another key) has revocations of its own.
    let foreign = decide(&env_with_key(&idp, &redis, "another key, also forty characters long.."), &[token]);
    assert_eq!(foreign.answers[0]["active"], true, "another deployment's revocation applied here");
}

#[test]
fn revoke_without_a_tier_or_a_token_says_why_and_fails() {
    let idp = IdpPair::start();
    let run = tokenbridge_tests::harness::run(&["revoke"], &idp.env(), "some-token\n");
    assert!(run.stderr.contains("not configured"), "{}", run.stderr);
    assert!(!run.stderr.contains("some-token"));
    let redis = RedisServer::start(&[]);
    let run = tokenbridge_tests::harness::run(&["revoke"], &env(&idp, &redis.url(), &[]), "\n");
    assert!(run.stderr.contains("no token on stdin"), "{}", run.stderr);
}

#[test]
fn a_dpop_proof_used_at_one_instance_is_a_replay_at_another() {
    use tokenbridge_tests::dpop::DpopClient;
    use tokenbridge_tests::http_server::{HttpServer, raw_exchange};
    let redis = RedisServer::start(&[]);
    let idp = IdpPair::start();
    let client = DpopClient::es256();
    let exp = tokenbridge_tests::fake_idp::unix_now() + 600;
    let answer = serde_json::json!({"active": true, "sub": "alice", "scope": "orders.read", "exp": exp, "cnf": {"jkt": client.jkt()}});
    idp.a.add_token("dpop-bound", answer);
    let origin = "https://api.example.com";
    let env = env(&idp, &redis.url(), &[("TOKENBRIDGE_DPOP", "allowed"), ("TOKENBRIDGE_DPOP_ORIGINS", origin)]);
    let (one, two) = (HttpServer::start(&env), HttpServer::start(&env));
    let ask = |server: &HttpServer, proof: &str| {
        let request = format!(
            "GET /auth HTTP/1.1\r\nHost: test\r\nConnection: close\r\nAuthorization: DPoP dpop-bound\r\nDPoP: {proof}\r\n\
             X-Forwarded-Method: GET\r\nX-Forwarded-Uri: /orders/1\r\n\r\n"
        );
        raw_exchange(&server.addr, request.as_bytes()).expect("an answer").0
    };
    let now = tokenbridge_tests::fake_idp::unix_now;
    let proof = client.proof("GET", &format!("{origin}/orders/1"), "dpop-bound", now());
    assert_eq!(ask(&one, &proof), 200);
    assert_eq!(ask(&two, &proof), 401, "the proof replayed at another instance");
    assert_eq!(ask(&one, &proof), 401, "and at the same one");
    let fresh = client.proof("GET", &format!("{origin}/orders/1"), "dpop-bound", now());
    assert_eq!(ask(&two, &fresh), 200, "a new proof is allowed");
    // A marker that does not open under the key is garbage, not a replay: `fresh`, which the
    // first instance has not seen itself, is let through there once its marker is overwritten.
    let markers: Vec<String> = redis.entries().into_iter().map(|(k, _)| k).filter(|k| k.contains(":dpop:")).collect();
    assert_eq!(markers.len(), 2);
    for key in &markers {
        redis.set(key, b"garbage");
    }
    assert_eq!(ask(&one, &fresh), 200);
}

#[test]
fn an_answer_replayed_into_redis_is_not_used_past_what_the_reader_would_keep() {
    let redis = RedisServer::start(&[]);
    let idp = IdpPair::start();
    let good = idp.a.issue("alice", "orders.read", 600);
    let gone = idp.a.issue("mallory", "orders.read", 600);
    idp.a.revoke(&gone);
    let lifetimes = [("TOKENBRIDGE_CACHE_MAX_TTL_SECONDS", "4"), ("TOKENBRIDGE_CACHE_INACTIVE_TTL_SECONDS", "1")];
    let env = env(&idp, &redis.url(), &lifetimes);
    let first = decide(&env, &[good.clone(), gone.clone()]);
    assert_eq!((first.answers[0]["active"].clone(), first.answers[1]["active"].clone()), (true.into(), false.into()));
    let kept: Vec<(String, Vec<u8>)> =
        redis.entries().into_iter().filter(|(k, _)| k.contains(":introspection:")).collect();
    assert_eq!(kept.len(), 2);
    // Read back right away: shared, and the allow's expiry is brought in to the answer's age.
    let calls = idp.a.introspections();
    let again = decide(&env, std::slice::from_ref(&good));
    assert_eq!(idp.a.introspections(), calls, "the shared answer was used");
    let expires = time::OffsetDateTime::parse(
        again.answers[0]["expiresAt"].as_str().expect("expiresAt"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339")
    .unix_timestamp();
    assert!(expires <= tokenbridge_tests::fake_idp::unix_now() + 4, "expiresAt {expires} outlives the answer's bound");
    std::thread::sleep(std::time::Duration::from_millis(1_300));
    // Someone who can write Redis puts the old sealed answers back, without a TTL.
    for (key, value) in &kept {
        redis.set(key, value);
    }
    let calls = idp.a.introspections();
    let late = decide(&env, &[good, gone]);
    assert_eq!((late.answers[0]["active"].clone(), late.answers[1]["active"].clone()), (true.into(), false.into()));
    // The refusal is older than a refusal is kept; the allow is not yet older than an allow is.
    assert_eq!(idp.a.introspections(), calls + 1, "a refusal older than the reader keeps one was used");
}
