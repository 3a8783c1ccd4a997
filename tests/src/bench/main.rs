//! `scripts/bench`: measures the built binary against fake IdPs on loopback and writes
//! `bench/results/latest.{md,json}` and `bench/results/latency.svg`.
//!
//! `TOKENBRIDGE_BIN` is the binary to measure (scripts/bench passes the release one);
//! `BENCH_OUT` the results directory (default `bench/results`); `BENCH_SIZES_DIR` a directory
//! with single-adapter builds named `tokenbridge-<adapter>` (`scripts/bench --sizes`);
//! `BENCH_PEERS_DIR` where scripts/bench installed the peers (`target/bench-peers`). The
//! `BENCH_*` knobs below trade time for precision; the defaults run in about four minutes once
//! built, most of it the peers (PyJWT answers a few thousand tokens a second).
//!
//! What runs, in order: cold starts per mode; warm latency per decision path over the OCI
//! socket, with every cache on, with every cache that configuration can turn off (the backend
//! token cache cannot be), and seed-like (that, plus the client_credentials round trip the
//! backend token cache saves); the floors (one IdP round trip by the harness itself, and the
//! seed's two); stdio throughput (pinned to one CPU when `taskset` exists); HTTP forward-auth
//! latency, caches on and off, and throughput under concurrent load; Lambda under the fake
//! Runtime API, caches on and off; peak resident memory per mode; IdP requests per 1,000 token
//! decisions (no-token calls counted apart); tokenbridge stdio beside its peers and the
//! verify-alone baseline (`peers.rs`, issue 13); binary sizes.

mod clients;
mod peers;
mod report;
mod serving;
mod stats;
mod svg;

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokenbridge_tests::fake_idp::{A_CLIENT, B_CLIENT, unix_now};
use tokenbridge_tests::http_server::HttpServer;
use tokenbridge_tests::jwt_keys::{FakeIssuer, SigningKey};
use tokenbridge_tests::lambda_runtime_api::{Answer, FakeRuntimeApi};
use tokenbridge_tests::{IdpPair, binary, token_payload};

use clients::{Http, IdpClient, Oci, far_deadline, forward_auth, logged_idp_split, oci_call, peak_rss_kib, spawn};
use report::{IdpCount, Results, Row, Rss};
use stats::Repeated;

/// A knob: `BENCH_<name>` from the environment, else `default`.
fn knob(name: &str, default: usize) -> usize {
    std::env::var(format!("BENCH_{name}")).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Knobs {
    /// Cold starts per mode.
    runs: usize,
    /// Timed cache hits (and as many empty `/call`s, interleaved) per process.
    warm: usize,
    /// Distinct opaque tokens (each one a timed introspection miss, then cycled for hits).
    tokens: usize,
    /// Decisions the OCI process has made when its peak memory is read.
    decisions: usize,
    /// Timed JWT misses (each a new JWT), and timed decisions with caches off, and floor round trips.
    misses: usize,
    /// Decisions per stdio throughput run, and runs.
    stdio: usize,
    stdio_runs: usize,
    /// HTTP load: client threads, milliseconds per run, runs.
    http_clients: usize,
    http_ms: usize,
    http_runs: usize,
    /// Timed warm Lambda invocations.
    lambda: usize,
}

fn with(env: &[(String, String)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = env.to_vec();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

const NO_CACHE: &[(&str, &str)] =
    &[("TOKENBRIDGE_CACHE_MAX_TTL_SECONDS", "0"), ("TOKENBRIDGE_CACHE_INACTIVE_TTL_SECONDS", "0")];

const METHOD_ARN: &str = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/orders";

fn lambda_event(token: &str) -> Value {
    json!({"type": "TOKEN", "authorizationToken": format!("Bearer {token}"), "methodArn": METHOD_ARN})
}

fn allowed(status: u16, body: &[u8]) -> bool {
    status == 200 && serde_json::from_slice::<Value>(body).is_ok_and(|v| v["active"] == true)
}

/// The IdPs, and what each decision path needs.
struct World {
    idp: IdpPair,
    issuer: FakeIssuer,
    key: SigningKey,
    opaque: Vec<(String, String)>,
    jwt: Vec<(String, String)>,
    serial: std::cell::Cell<usize>,
}

impl World {
    fn start() -> Self {
        let idp = IdpPair::start();
        let key = SigningKey::ec("bench-es256", Algorithm::ES256);
        let issuer = FakeIssuer::start(&[&key]);
        let opaque = idp.env();
        let jwt = with(
            &opaque,
            &[
                ("TOKENBRIDGE_ISSUER", &issuer.url),
                ("TOKENBRIDGE_AUDIENCE", "api"),
                ("TOKENBRIDGE_JWKS_URL", &issuer.jwks_url()),
            ],
        );
        World { idp, issuer, key, opaque, jwt, serial: Default::default() }
    }

    /// A new opaque token IdP A knows.
    fn opaque_token(&self) -> String {
        self.idp.a.issue("bench-user", "orders.read", 3600)
    }

    /// A new ES256 JWT of the issuer (signed here, outside any timing).
    fn jwt_token(&self) -> String {
        let n = self.serial.get();
        self.serial.set(n + 1);
        let mut claims = self.issuer.claims("api", &format!("user-{n}"), "orders.read", unix_now());
        claims["exp"] = json!(unix_now() + 3600);
        self.key.sign(&claims)
    }

    fn idp_requests(&self) -> usize {
        self.idp.a.introspections()
            + self.idp.b.token_requests()
            + self.issuer.jwks_requests()
            + self.issuer.discovery_requests()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(peers::VERIFY_ALONE) {
        return peers::verify_alone_child(&args[1..]);
    }
    let k = Knobs {
        runs: knob("RUNS", 20),
        warm: knob("WARM", 20_000),
        tokens: knob("TOKENS", 5_000),
        decisions: knob("DECISIONS", 100_000),
        misses: knob("MISSES", 2_000),
        stdio: knob("STDIO", 100_000),
        stdio_runs: knob("STDIO_RUNS", 3),
        http_clients: knob("HTTP_CLIENTS", 8),
        http_ms: knob("HTTP_MS", 1_500),
        http_runs: knob("HTTP_RUNS", 3),
        lambda: knob("LAMBDA", 1_000),
    };
    let out = std::path::PathBuf::from(std::env::var("BENCH_OUT").unwrap_or_else(|_| "bench/results".into()));
    let w = World::start();
    let mut r = Results::new(report::machine(k.runs, k.warm));
    let step = |what: &str| eprintln!("bench: {what}");

    step("cold starts");
    cold_starts(&w, &k, &mut r);
    step("OCI: opaque tokens (introspection), caches on");
    oci_opaque(&w, &k, &mut r);
    step("OCI: JWT, caches on");
    oci_jwt(&w, &k, &mut r);
    step("OCI: token exchange at IdP B");
    oci_exchange(&w, &k, &mut r);
    step("OCI: caches off");
    oci_no_cache(&w, &k, &mut r);
    step("OCI: seed-like (no cache, both IdP calls)");
    oci_seed_like(&w, &k, &mut r);
    step("floors: the harness's own IdP round trips");
    floors(&w, &k, &mut r);
    step("stdio throughput");
    stdio_throughput(&w, &k, &mut r);
    step("HTTP forward-auth");
    http(&w, &k, &mut r);
    step("serving layer: the old binary beside the new");
    r.serving = Some(serving::run(&w));
    step("Lambda under the fake Runtime API");
    lambda_warm(&w, &k, &mut r);
    step("peers (issue 13)");
    peers::run(&w, &k, &mut r);
    sizes(&mut r);

    std::fs::create_dir_all(&out).expect("results directory");
    let markdown = r.markdown();
    std::fs::write(out.join("latest.md"), &markdown).expect("write latest.md");
    let json = serde_json::to_string_pretty(&r.json()).expect("JSON");
    std::fs::write(out.join("latest.json"), json + "\n").expect("write latest.json");
    std::fs::write(out.join("latency.svg"), svg::latency_chart(&r)).expect("write latency.svg");
    print!("{markdown}");
}

fn cold_starts(w: &World, k: &Knobs, r: &mut Results) {
    binary();
    let (mut stdio_first, mut oci_ready, mut oci_first) = (Vec::new(), Vec::new(), Vec::new());
    let (mut lambda_first, mut http_ready, mut http_first) = (Vec::new(), Vec::new(), Vec::new());
    let deadline = far_deadline();
    for _ in 0..k.runs {
        // stdio: exec → the answer to the first line (one introspection, one backend token).
        let line = token_payload(&w.opaque_token()) + "\n";
        let started = Instant::now();
        let mut child = spawn(&["stdio"], &w.opaque, None);
        child.stdin.as_mut().expect("stdin").write_all(line.as_bytes()).expect("write");
        let mut answer = String::new();
        BufReader::new(child.stdout.as_mut().expect("stdout")).read_line(&mut answer).expect("read");
        stdio_first.push(started.elapsed());
        assert!(allowed(200, answer.as_bytes()), "stdio cold start answered {answer}");
        let _ = child.kill();
        let _ = child.wait();

        // OCI: exec → socket published → first /call answered.
        let call = oci_call(token_payload(&w.opaque_token()).as_bytes(), &deadline);
        let mut oci = Oci::start(&w.opaque);
        oci_ready.push(oci.ready);
        let (status, body) = oci.send(&call);
        oci_first.push(oci.started.elapsed());
        assert!(allowed(status, &body), "OCI cold start answered {status}");
        drop(oci);

        // Lambda: exec → the first invocation answered through the Runtime API.
        let api = FakeRuntimeApi::start();
        let event = lambda_event(&w.opaque_token());
        let env = [api.env(), w.opaque.clone()].concat();
        let started = Instant::now();
        let mut child = spawn(&[], &env, None);
        let answer = api.invoke(&event, Duration::from_secs(10));
        lambda_first.push(started.elapsed());
        assert!(matches!(answer, Answer::Response(ref v) if v["policyDocument"]["Statement"][0]["Effect"] == "Allow"));
        let _ = child.kill();
        let _ = child.wait();

        // HTTP: exec → listening (its first log line) → first forward-auth answered.
        let request = forward_auth(&w.opaque_token());
        let started = Instant::now();
        let server = HttpServer::start(&w.opaque);
        http_ready.push(started.elapsed());
        let (status, _) = Http::connect(&server.addr).send(&request);
        http_first.push(started.elapsed());
        assert_eq!(status, 200);
    }
    r.cold.push(Row::new("stdio_first", "stdio: exec → first answer (new token, 2 IdP calls)", &stdio_first));
    r.cold.push(Row::new("oci_ready", "OCI: exec → socket published", &oci_ready));
    r.cold.push(Row::new("oci_first", "OCI: exec → first `/call` answered (new token, 2 IdP calls)", &oci_first));
    r.cold.push(Row::new("lambda_first", "Lambda: exec → first invocation answered (2 IdP calls)", &lambda_first));
    r.cold.push(Row::new("http_ready", "HTTP: exec → listening", &http_ready));
    r.cold.push(Row::new("http_first", "HTTP: exec → first forward-auth answered (2 IdP calls)", &http_first));
}

fn oci_opaque(w: &World, k: &Knobs, r: &mut Results) {
    let deadline = far_deadline();
    let tokens: Vec<String> = (0..k.tokens.max(1)).map(|_| w.opaque_token()).collect();
    let calls: Vec<Vec<u8>> = tokens.iter().map(|t| oci_call(token_payload(t).as_bytes(), &deadline)).collect();
    let empty = oci_call(br#"{"type":"TOKEN"}"#, &deadline);
    let before = w.idp_requests();
    let mut oci = Oci::start(&w.opaque);
    let warmup = oci.send(&oci_call(token_payload(&w.opaque_token()).as_bytes(), &deadline));
    assert!(allowed(warmup.0, &warmup.1));
    // Token decisions and no-token calls apart: only the former can need an IdP.
    let (mut decisions, mut no_token) = (1, 0);

    let mut miss = Vec::with_capacity(calls.len());
    for call in &calls {
        let t = Instant::now();
        let (status, body) = oci.send(call);
        miss.push(t.elapsed());
        assert!(allowed(status, &body), "a new token was not allowed");
        decisions += 1;
    }
    let (mut hit, mut floor) = (Vec::with_capacity(k.warm), Vec::with_capacity(k.warm));
    for i in 0..k.warm {
        let t = Instant::now();
        let (status, _) = oci.send(&calls[i % calls.len()]);
        hit.push(t.elapsed());
        assert_eq!(status, 200);
        let t = Instant::now();
        let (status, _) = oci.send(&empty);
        floor.push(t.elapsed());
        assert_eq!(status, 200);
        decisions += 1;
        no_token += 1;
    }
    // The last decision is checked, so fill up to one short of the target count.
    let mut i = 0;
    while decisions + 1 < k.decisions {
        oci.send(&calls[i % calls.len()]);
        i += 1;
        decisions += 1;
    }
    let (status, body) = oci.send(&calls[0]);
    assert!(allowed(status, &body));
    decisions += 1;
    let distinct = calls.len() + 1;
    r.rss.push(Rss {
        key: "oci",
        label: format!(
            "OCI, after {decisions} token decisions and {no_token} no-token calls ({distinct} distinct tokens cached)"
        ),
        kib: peak_rss_kib(oci.pid()),
        token_decisions: decisions,
    });
    r.idp.push(IdpCount {
        key: "oci_opaque",
        label: format!("OCI, {distinct} distinct opaque tokens (cold start included)"),
        token_decisions: decisions,
        no_token_calls: no_token,
        requests: w.idp_requests() - before,
    });
    r.warm.push(Row::new("oci_empty", "OCI `/call`, no token (a deny without IdP call): the socket floor", &floor));
    r.warm.push(
        Row::new("oci_hit", "OCI, opaque token, cached", &hit).baseline("oci_nocache_opaque").seed("oci_seed_like"),
    );
    r.warm.push(
        Row::new("oci_miss", "OCI, new opaque token (1 introspection)", &miss)
            .baseline("oci_nocache_opaque")
            .seed("oci_seed_like"),
    );
}

/// A backend token exchanged for each caller (RFC 8693): a new caller costs an introspection
/// and an exchange; a known one, neither.
fn oci_exchange(w: &World, k: &Knobs, r: &mut Results) {
    let deadline = far_deadline();
    let env = with(&w.opaque, &[("TOKENBRIDGE_BACKEND_GRANT", "token_exchange")]);
    let calls: Vec<Vec<u8>> =
        (0..k.misses.max(1)).map(|_| oci_call(token_payload(&w.opaque_token()).as_bytes(), &deadline)).collect();
    let mut oci = Oci::start(&env);
    let warmup = oci.send(&oci_call(token_payload(&w.opaque_token()).as_bytes(), &deadline));
    assert!(allowed(warmup.0, &warmup.1), "{}", String::from_utf8_lossy(&warmup.1));
    let exchanges = w.idp.b.exchanged().len();
    let mut miss = Vec::with_capacity(calls.len());
    for call in &calls {
        let t = Instant::now();
        let (status, body) = oci.send(call);
        miss.push(t.elapsed());
        assert!(allowed(status, &body), "a new caller was not allowed");
    }
    assert_eq!(w.idp.b.exchanged().len() - exchanges, calls.len(), "one exchange per new caller");
    let mut hit = Vec::with_capacity(k.warm);
    for i in 0..k.warm {
        let t = Instant::now();
        let (status, _) = oci.send(&calls[i % calls.len()]);
        hit.push(t.elapsed());
        assert_eq!(status, 200);
    }
    assert_eq!(w.idp.b.exchanged().len() - exchanges, calls.len(), "a known caller's exchange is cached");
    r.warm.push(
        Row::new("oci_exchange_miss", "OCI, new opaque token, token exchange (1 introspection + 1 exchange)", &miss)
            .seed("oci_seed_like"),
    );
    r.warm.push(Row::new("oci_exchange_hit", "OCI, opaque token, exchanged token cached", &hit));
}

fn oci_jwt(w: &World, k: &Knobs, r: &mut Results) {
    let deadline = far_deadline();
    let calls: Vec<Vec<u8>> =
        (0..k.misses.max(1)).map(|_| oci_call(token_payload(&w.jwt_token()).as_bytes(), &deadline)).collect();
    let mut oci = Oci::start(&w.jwt);
    let warmup = oci.send(&oci_call(token_payload(&w.jwt_token()).as_bytes(), &deadline));
    assert!(allowed(warmup.0, &warmup.1), "{}", String::from_utf8_lossy(&warmup.1));
    let before = w.idp_requests();
    let mut miss = Vec::with_capacity(calls.len());
    for call in &calls {
        let t = Instant::now();
        let (status, body) = oci.send(call);
        miss.push(t.elapsed());
        assert!(allowed(status, &body));
    }
    let mut hit = Vec::with_capacity(k.warm);
    for i in 0..k.warm {
        let t = Instant::now();
        let (status, _) = oci.send(&calls[i % calls.len()]);
        hit.push(t.elapsed());
        assert_eq!(status, 200);
    }
    r.idp.push(IdpCount {
        key: "oci_jwt",
        label: format!("OCI, {} distinct JWTs (JWKS warm)", calls.len()),
        token_decisions: calls.len() + k.warm,
        no_token_calls: 0,
        requests: w.idp_requests() - before,
    });
    r.warm.push(
        Row::new("oci_jwt_hit", "OCI, JWT (ES256), cached", &hit).baseline("oci_nocache_jwt").seed("oci_seed_like"),
    );
    r.warm.push(
        Row::new("oci_jwt_miss", "OCI, new JWT (ES256, JWKS warm)", &miss)
            .baseline("oci_nocache_jwt")
            .seed("oci_seed_like"),
    );
}

fn oci_no_cache(w: &World, k: &Knobs, r: &mut Results) {
    let deadline = far_deadline();
    for (key, label, env, token) in [
        (
            "oci_nocache_opaque",
            "OCI, opaque token, caches off (introspection every time)",
            with(&w.opaque, NO_CACHE),
            w.opaque_token(),
        ),
        ("oci_nocache_jwt", "OCI, JWT, caches off (verified every time)", with(&w.jwt, NO_CACHE), w.jwt_token()),
    ] {
        let call = oci_call(token_payload(&token).as_bytes(), &deadline);
        // The introspection process keeps its decision log: its idp_ms and duration_ms split
        // the uncached decision for the report.
        let log = (key == "oci_nocache_opaque")
            .then(|| std::env::temp_dir().join(format!("tb-bench-{}-decisions.log", std::process::id())));
        let mut oci = Oci::start_logging(&env, log.as_deref());
        let (status, body) = oci.send(&call);
        assert!(allowed(status, &body));
        let before = w.idp_requests();
        let mut samples = Vec::with_capacity(k.misses);
        for _ in 0..k.misses {
            let t = Instant::now();
            let (status, _) = oci.send(&call);
            samples.push(t.elapsed());
            assert_eq!(status, 200);
        }
        r.idp.push(IdpCount {
            key,
            label: format!("{label}, one token"),
            token_decisions: k.misses,
            no_token_calls: 0,
            requests: w.idp_requests() - before,
        });
        r.warm.push(Row::new(key, label, &samples));
        drop(oci);
        if let Some(log) = log {
            r.logged_split = std::fs::read_to_string(&log).ok().as_deref().and_then(logged_idp_split);
            let _ = std::fs::remove_file(&log);
        }
    }
}

/// What the seed does for every decision, through the same socket: the caches-off decision
/// (its introspection included), then the client_credentials round trip tokenbridge's backend
/// token cache saves, which no setting turns off, so the harness makes it, timed together.
fn oci_seed_like(w: &World, k: &Knobs, r: &mut Results) {
    let deadline = far_deadline();
    let call = oci_call(token_payload(&w.opaque_token()).as_bytes(), &deadline);
    let mut oci = Oci::start(&with(&w.opaque, NO_CACHE));
    let (status, body) = oci.send(&call);
    assert!(allowed(status, &body));
    let b = IdpClient::new(B_CLIENT);
    let token_url = w.idp.b.token_url();
    assert_eq!(b.post(&token_url, "grant_type=client_credentials"), 200);
    let mut samples = Vec::with_capacity(k.misses);
    for _ in 0..k.misses {
        let t = Instant::now();
        let (status, _) = oci.send(&call);
        let backend = b.post(&token_url, "grant_type=client_credentials");
        samples.push(t.elapsed());
        assert_eq!((status, backend), (200, 200));
    }
    r.warm.push(Row::new(
        "oci_seed_like",
        "seed-like: OCI, opaque token, caches off, + the client_credentials round trip (every decision)",
        &samples,
    ));
}

fn floors(w: &World, k: &Knobs, r: &mut Results) {
    let a = IdpClient::new(A_CLIENT);
    let b = IdpClient::new(B_CLIENT);
    let token = w.opaque_token();
    let introspect = format!("token={}&token_type_hint=access_token", clients::form_encode(&token));
    let (intro_url, token_url) = (w.idp.a.introspection_url(), w.idp.b.token_url());
    assert_eq!(a.post(&intro_url, &introspect), 200);
    assert_eq!(b.post(&token_url, "grant_type=client_credentials"), 200);
    let (mut one, mut two) = (Vec::with_capacity(k.misses), Vec::with_capacity(k.misses));
    for _ in 0..k.misses {
        let t = Instant::now();
        a.post(&intro_url, &introspect);
        one.push(t.elapsed());
        let t = Instant::now();
        a.post(&intro_url, &introspect);
        b.post(&token_url, "grant_type=client_credentials");
        two.push(t.elapsed());
    }
    r.warm.push(Row::new("floor_idp", "floor: one introspection round trip (harness → IdP A, kept alive)", &one));
    let mut fresh = Vec::with_capacity(k.misses / 4);
    for _ in 0..k.misses / 4 {
        let t = Instant::now();
        IdpClient::new(A_CLIENT).post(&intro_url, &introspect);
        fresh.push(t.elapsed());
    }
    r.warm.push(Row::new("floor_idp_fresh", "one introspection round trip on a new connection (harness)", &fresh));
    r.warm.push(Row::new(
        "floor_seed",
        "floor: introspection + client_credentials round trips (harness, no decision)",
        &two,
    ));
}

/// Streams `n` copies of `line` through `tokenbridge stdio`: decisions per second between the
/// first and the last answer, and the peak memory at the end.
fn stdio_run(env: &[(String, String)], line: &str, n: usize, cpu: Option<usize>) -> (f64, Option<u64>, String) {
    let input = format!("{line}\n").repeat(n);
    let mut child = spawn(&["stdio"], env, cpu);
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let writer = std::thread::spawn(move || {
        stdin.write_all(input.as_bytes()).expect("write to tokenbridge");
        stdin
    });
    let mut buf = vec![0u8; 1 << 16];
    let (mut lines, mut first, mut last) = (0, None, Instant::now());
    let mut first_line = Vec::new();
    while lines < n {
        let got = stdout.read(&mut buf).expect("read from tokenbridge");
        assert!(got > 0, "tokenbridge stdio stopped after {lines} answers");
        let now = Instant::now();
        if first.is_none() {
            first_line.extend_from_slice(&buf[..got]);
        }
        let newlines = buf[..got].iter().filter(|&&b| b == b'\n').count();
        if newlines > 0 && first.is_none() {
            first = Some(now);
        }
        lines += newlines;
        last = now;
    }
    let stdin = writer.join().expect("writer");
    let rss = peak_rss_kib(child.id());
    drop(stdin);
    let _ = child.wait();
    let first_line = String::from_utf8_lossy(first_line.split(|&b| b == b'\n').next().unwrap_or_default()).into_owned();
    let elapsed = last.duration_since(first.expect("an answer")).as_secs_f64();
    ((n - 1) as f64 / elapsed, rss, first_line)
}

fn stdio_throughput(w: &World, k: &Knobs, r: &mut Results) {
    let pinned = std::process::Command::new("taskset").arg("-V").output().is_ok_and(|o| o.status.success());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = (pinned && cores >= 2).then_some(cores - 1);
    let where_ = cpu.map_or("unpinned".to_string(), |c| format!("pinned to CPU {c}"));
    for (key, label, env, line) in [
        ("stdio_jwt", format!("stdio, one cached JWT, {where_}"), &w.jwt, token_payload(&w.jwt_token())),
        (
            "stdio_opaque",
            format!("stdio, one cached opaque token, {where_}"),
            &w.opaque,
            token_payload(&w.opaque_token()),
        ),
        // What every line costs whatever its token: read, answer, log. For the stdio target's "why".
        (
            "stdio_empty",
            format!("stdio, no token (a deny without IdP call), {where_}"),
            &w.jwt,
            r#"{"type":"TOKEN"}"#.into(),
        ),
    ] {
        let runs = if key == "stdio_jwt" { k.stdio_runs } else { 1 };
        let mut rates = Repeated::default();
        let mut rss = None;
        let before = w.idp_requests();
        for _ in 0..runs.max(1) {
            let (rate, peak, first) = stdio_run(env, &line, k.stdio, cpu);
            assert_eq!(first.starts_with("{\"active\":true"), key != "stdio_empty", "stdio answered {first}");
            rates.runs.push(rate);
            rss = rss.max(peak);
        }
        let lines = runs.max(1) * k.stdio;
        let processes = format!("{lines} lines in {} processes", runs.max(1));
        if key != "stdio_empty" {
            r.idp.push(IdpCount {
                key,
                label: format!("{label}, {processes}"),
                token_decisions: lines,
                no_token_calls: 0,
                requests: w.idp_requests() - before,
            });
        }
        if key == "stdio_jwt" {
            let label = format!("stdio, after {} decisions (one cached JWT)", k.stdio);
            r.rss.push(Rss { key: "stdio", label, kib: rss, token_decisions: k.stdio });
        }
        r.throughput.push((key, label, rates));
    }
}

fn http(w: &World, k: &Knobs, r: &mut Results) {
    let server = HttpServer::start(&w.jwt);
    let token = w.jwt_token();
    let request = Arc::new(forward_auth(&token));
    let health = b"GET /healthz HTTP/1.1\r\nHost: tokenbridge\r\n\r\n".to_vec();
    let mut client = Http::connect(&server.addr);
    assert_eq!(client.send(&request).0, 200);
    let n = k.warm / 4;
    let (mut hit, mut floor) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let t = Instant::now();
        let (status, _) = client.send(&request);
        hit.push(t.elapsed());
        assert_eq!(status, 200);
        let t = Instant::now();
        client.send(&health);
        floor.push(t.elapsed());
    }
    r.warm.push(Row::new("http_empty", "HTTP `GET /healthz` (no decision): the connection floor", &floor));
    r.warm.push(
        Row::new("http_hit", "HTTP forward-auth, JWT, cached (one connection)", &hit).baseline("http_nocache_jwt"),
    );
    http_no_cache(w, k, r);

    let mut rates = Repeated::default();
    let mut loaded = Vec::new();
    for _ in 0..k.http_runs.max(1) {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let threads: Vec<_> = (0..k.http_clients.max(1))
            .map(|_| {
                let (addr, request, stop) = (server.addr.clone(), request.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut client = Http::connect(&addr);
                    let mut samples = Vec::new();
                    while !stop.load(Ordering::Relaxed) && samples.len() < 1_000_000 {
                        let t = Instant::now();
                        let (status, _) = client.send(&request);
                        samples.push(t.elapsed());
                        assert_eq!(status, 200);
                    }
                    samples
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(k.http_ms as u64));
        stop.store(true, Ordering::Relaxed);
        let samples: Vec<Duration> = threads.into_iter().flat_map(|t| t.join().expect("load thread")).collect();
        rates.runs.push(samples.len() as f64 / started.elapsed().as_secs_f64());
        loaded.extend(samples);
    }
    r.warm.push(Row::new(
        "http_loaded",
        &format!("HTTP forward-auth, JWT, cached, under load ({} connections)", k.http_clients),
        &loaded,
    ));
    r.throughput.push((
        "http_jwt",
        format!("HTTP forward-auth, one cached JWT, {} kept-alive connections, 32 workers, unpinned", k.http_clients),
        rates,
    ));
    let decisions = loaded.len() + n + 1;
    let label = format!("HTTP, after {decisions} decisions");
    r.rss.push(Rss { key: "http", label, kib: peak_rss_kib(server.pid()), token_decisions: decisions });
}

/// The cached HTTP row's baseline: the same request, verified every time.
fn http_no_cache(w: &World, k: &Knobs, r: &mut Results) {
    let server = HttpServer::start(&with(&w.jwt, NO_CACHE));
    let request = forward_auth(&w.jwt_token());
    let mut client = Http::connect(&server.addr);
    assert_eq!(client.send(&request).0, 200);
    let mut samples = Vec::with_capacity(k.misses);
    for _ in 0..k.misses {
        let t = Instant::now();
        let (status, _) = client.send(&request);
        samples.push(t.elapsed());
        assert_eq!(status, 200);
    }
    r.warm.push(Row::new("http_nocache_jwt", "HTTP forward-auth, JWT, caches off (one connection)", &samples));
}

/// `n` timed invocations of one event by a new Lambda process with `env`, and its peak memory.
fn lambda_run(env: &[(String, String)], token: &str, n: usize) -> (Vec<Duration>, Option<u64>) {
    let api = FakeRuntimeApi::start();
    let env = [api.env(), env.to_vec()].concat();
    let mut child = spawn(&[], &env, None);
    let event = lambda_event(token);
    assert!(matches!(api.invoke(&event, Duration::from_secs(10)), Answer::Response(_)));
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let answer = api.invoke(&event, Duration::from_secs(10));
        samples.push(t.elapsed());
        assert!(matches!(answer, Answer::Response(_)));
    }
    let rss = peak_rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    (samples, rss)
}

fn lambda_warm(w: &World, k: &Knobs, r: &mut Results) {
    let (samples, rss) = lambda_run(&w.opaque, &w.opaque_token(), k.lambda);
    r.warm.push(
        Row::new("lambda_hit", "Lambda invocation, opaque token, cached (through the fake Runtime API)", &samples)
            .baseline("lambda_nocache"),
    );
    let label = format!("Lambda, after {} invocations", k.lambda + 1);
    r.rss.push(Rss { key: "lambda", label, kib: rss, token_decisions: k.lambda + 1 });
    let (samples, _) = lambda_run(&with(&w.opaque, NO_CACHE), &w.opaque_token(), k.lambda.min(k.misses));
    r.warm.push(Row::new(
        "lambda_nocache",
        "Lambda invocation, opaque token, caches off (introspection every time)",
        &samples,
    ));
}

fn sizes(r: &mut Results) {
    let size = |p: &std::path::Path| std::fs::metadata(p).ok().map(|m| m.len());
    r.sizes.push(("all adapters".into(), size(&binary())));
    if let Some(dir) = std::env::var_os("BENCH_SIZES_DIR") {
        for adapter in ["stdio", "oci", "http", "lambda"] {
            if let Some(bytes) = size(&std::path::Path::new(&dir).join(format!("tokenbridge-{adapter}"))) {
                r.sizes.push((format!("`--no-default-features --features {adapter}`"), Some(bytes)));
            }
        }
    }
}
