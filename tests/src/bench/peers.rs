//! Issue 13: tokenbridge beside the authorizers users would pick instead, in the same run, with
//! the same JWKS and the same backend token, and the verify-alone baseline of an uncached JWT
//! decision.
//!
//! The peers live in `bench/peers/` and are installed by `scripts/bench` from their lock files
//! into `BENCH_PEERS_DIR` (`target/bench-peers`): `node` (Node.js and `aws-jwt-verify`'s
//! `JwtVerifier`) and `pyjwt` (PyJWT's `PyJWKClient` and `jwt.decode`). Each reads the JSON lines
//! `tokenbridge stdio` reads and answers each in tokenbridge's format. Every answer is checked: only
//! an allow carrying IdP B's backend token counts, anything else is an error and is not counted in
//! the rate, so a broken peer cannot look fast. A peer that is not installed is left out of the
//! rows with a notice saying why (never silently).
//!
//! Every process, tokenbridge's and the peers', is pinned to the same CPU when `taskset` exists
//! (cold starts excepted: a start mostly waits on the IdPs and this harness, which share that
//! CPU), and the runs are interleaved (tokenbridge, node, pyjwt, then again), so load on the
//! machine falls on all of them alike.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokenbridge_tests::fake_idp::unix_now;
use tokenbridge_tests::jwt_keys::{FakeIssuer, SigningKey};
use tokenbridge_tests::{binary, token_payload};

use crate::clients::peak_rss_kib;
use crate::report::{Better, Results, Target};
use crate::stats::Repeated;
use crate::{Knobs, World, knob, with};

/// The first argument that makes the bench binary the verify-alone child (pinned by `taskset`).
pub const VERIFY_ALONE: &str = "verify-alone";

/// The sizes the issue's targets are stated for.
const TARGET_TOKENS: usize = 10_000;

/// A peer that has not answered everything by then is killed and its run counted as failed.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// One implementation: tokenbridge itself or a peer.
struct Contender {
    key: &'static str,
    name: String,
    program: PathBuf,
    args: Vec<String>,
    /// Where its stderr goes (tokenbridge's decision log: /dev/null, as in every other row).
    stderr: Option<PathBuf>,
}

/// One measured value of one contender: the median over runs, the runs, and what went wrong.
#[derive(Default, Clone)]
pub struct Cell {
    pub runs: Vec<f64>,
    /// Answers that were not the expected allow (or missing), over every run.
    pub errors: usize,
    /// One of the wrong answers (or what stopped the run), cut short.
    pub sample: Option<String>,
}

impl Cell {
    pub fn value(&self) -> Option<f64> {
        let v = Repeated { runs: self.runs.clone() }.median();
        v.is_finite().then_some(v)
    }
}

/// One row of the comparison: a cell per column of [`Peers::columns`].
pub struct PeerRow {
    pub key: &'static str,
    pub label: String,
    pub unit: &'static str,
    pub better: Better,
    pub cells: Vec<Cell>,
}

/// One signature verification alone, beside tokenbridge's uncached decision on that algorithm.
pub struct Verify {
    pub alg: &'static str,
    /// Microseconds per verification, one value per pass over the tokens.
    pub passes: Vec<f64>,
    pub verified: usize,
    pub tokens: usize,
    /// tokenbridge's whole decision per distinct token, µs (from its stdio rate).
    pub decision_us: Option<f64>,
}

impl Verify {
    pub fn verify_us(&self) -> Option<f64> {
        let v = Repeated { runs: self.passes.clone() }.median();
        v.is_finite().then_some(v)
    }
    pub fn ratio(&self) -> Option<f64> {
        Some(self.decision_us? / self.verify_us()?)
    }
}

#[derive(Default)]
pub struct Peers {
    /// Why a peer (or every peer) is not in the rows, and anything else a reader must know.
    pub notices: Vec<String>,
    /// Column keys and names, tokenbridge first.
    pub columns: Vec<(&'static str, String)>,
    pub rows: Vec<PeerRow>,
    pub verify: Vec<Verify>,
    /// Distinct tokens per run, lines per repeated-token run, runs.
    pub tokens: usize,
    pub repeated: usize,
    pub runs: usize,
    pub pinned: String,
}

/// What one process did with its input.
struct Outcome {
    /// exec → the first answer line.
    to_first: Option<Duration>,
    /// Answers per second between the first and the last, counting only the expected allows.
    rate: Option<f64>,
    errors: usize,
    sample: Option<String>,
    rss_kib: Option<u64>,
    /// Write system calls the process made (`syscw` of /proc/<pid>/io), and the answers.
    writes: Option<u64>,
    answers: usize,
    idp_requests: usize,
}

/// Runs the rows (called by `main` after the other rows).
pub fn run(w: &World, k: &Knobs, r: &mut Results) {
    let mut p = Peers {
        tokens: knob("PEER_TOKENS", TARGET_TOKENS).max(2),
        repeated: knob("PEER_REPEAT", 20_000).max(2),
        runs: knob("PEER_RUNS", 3).max(1),
        ..Default::default()
    };
    let cpu = pinned_cpu();
    p.pinned = cpu.map_or("unpinned (no taskset)".into(), |c| format!("each pinned to CPU {c}"));
    let mut contenders = vec![Contender {
        key: "tokenbridge",
        name: "tokenbridge".into(),
        program: binary(),
        args: vec!["stdio".into()],
        stderr: None,
    }];
    if knob("PEERS", 1) == 0 {
        p.notices.push("the peers were left out by `BENCH_PEERS=0`".into());
    } else {
        contenders.extend(find_peers(&mut p.notices));
    }
    p.columns = contenders.iter().map(|c| (c.key, c.name.clone())).collect();

    // The same JWKS for everyone: one issuer with an RSA and an EC key; IdP B is the bench's.
    let rsa = SigningKey::rsa("bench-rs256", Algorithm::RS256);
    let ec = SigningKey::ec("bench-peers-es256", Algorithm::ES256);
    let issuer = FakeIssuer::start(&[&rsa, &ec]);
    let env = with(
        &w.opaque,
        &[
            ("TOKENBRIDGE_ISSUER", &issuer.url),
            ("TOKENBRIDGE_AUDIENCE", "api"),
            ("TOKENBRIDGE_JWKS_URL", &issuer.jwks_url()),
        ],
    );
    let requests = || w.idp.b.token_requests() + issuer.jwks_requests() + issuer.discovery_requests();

    eprintln!("bench: peers: signing {} RS256 and {} ES256 tokens", p.tokens, p.tokens);
    let rs256 = sign_many(&issuer, &rsa, p.tokens, "rs");
    let es256 = sign_many(&issuer, &ec, p.tokens, "es");
    let lines = |tokens: &[String]| tokens.iter().map(|t| token_payload(t) + "\n").collect::<String>();
    let (rs_input, es_input) = (lines(&rs256), lines(&es256));
    let repeated_input = (token_payload(&rs256[0]) + "\n").repeat(p.repeated);

    let n = contenders.len();
    let blank = || vec![Cell::default(); n];
    let (mut cold, mut distinct_rs, mut distinct_es, mut repeated) = (blank(), blank(), blank(), blank());
    let (mut rss, mut writes, mut idp) = (blank(), blank(), blank());
    let verify =
        |alg, tokens: &[String]| Verify { alg, passes: vec![], verified: 0, tokens: tokens.len(), decision_us: None };
    let (mut verify_rs, mut verify_es) = (verify("RS256", &rs256), verify("ES256", &es256));

    eprintln!("bench: peers: cold starts ({} each)", k.runs);
    for run in 0..k.runs.max(1) {
        for (i, c) in contenders.iter().enumerate() {
            // A token no process has seen: each start fetches the JWKS and the backend token.
            // Unpinned: a start is a few milliseconds of waiting on other processes (the IdPs,
            // this harness), and pinning it to a core they share made it wait for them.
            let line = token_payload(&rs256[(run * n + i) % rs256.len()]) + "\n";
            let o = pipe(c, &env, &line, None, &requests);
            if let Some(d) = o.to_first.filter(|_| o.errors == 0) {
                cold[i].runs.push(d.as_secs_f64() * 1000.0);
            }
            note(&mut cold[i], &o);
        }
    }
    for run in 0..p.runs {
        eprintln!("bench: peers: throughput, run {} of {}", run + 1, p.runs);
        for (i, c) in contenders.iter().enumerate() {
            let o = pipe(c, &env, &rs_input, cpu, &requests);
            if let Some(rate) = o.rate {
                distinct_rs[i].runs.push(rate);
            }
            note(&mut distinct_rs[i], &o);
            if let Some(kib) = o.rss_kib {
                rss[i].runs.push(kib as f64 / 1024.0);
            }
            if let Some(syscw) = o.writes.filter(|_| o.answers > 0) {
                writes[i].runs.push(syscw as f64 / o.answers as f64);
            }
            idp[i].runs.push(o.idp_requests as f64);

            let o = pipe(c, &env, &es_input, cpu, &requests);
            if let Some(rate) = o.rate {
                distinct_es[i].runs.push(rate);
            }
            note(&mut distinct_es[i], &o);

            let o = pipe(c, &env, &repeated_input, cpu, &requests);
            if let Some(rate) = o.rate {
                repeated[i].runs.push(rate);
            }
            note(&mut repeated[i], &o);
        }
        // One pass each per run, beside the decisions it is the baseline of, under the same load.
        for (v, jwk, tokens) in [(&mut verify_rs, &rsa.jwk, &rs256), (&mut verify_es, &ec.jwk, &es256)] {
            match verify_alone(v.alg, jwk, tokens, 1, cpu) {
                Ok((passes, verified)) => {
                    v.passes.extend(passes);
                    v.verified = verified;
                }
                Err(e) => p.notices.push(format!("verify alone ({}) failed: {e}", v.alg)),
            }
        }
    }

    let t = p.tokens;
    let row = |key, label: String, unit, better, cells| PeerRow { key, label, unit, better, cells };
    p.rows = vec![
        row("distinct_rs256", format!("{t} distinct RS256 tokens, decisions/s"), "/s", Better::More, distinct_rs),
        row("distinct_es256", format!("{t} distinct ES256 tokens, decisions/s"), "/s", Better::More, distinct_es),
        row(
            "repeated_rs256",
            format!("one RS256 token repeated {} times, decisions/s", p.repeated),
            "/s",
            Better::More,
            repeated,
        ),
        row(
            "cold_first",
            "cold start: exec → first answer (new RS256 token: JWKS and backend token fetched; unpinned), median"
                .into(),
            "ms",
            Better::Less,
            cold,
        ),
        row("peak_rss", format!("peak RSS (VmHWM) after {t} distinct RS256 tokens"), "MiB", Better::Less, rss),
        row(
            "writes_per_decision",
            format!("write system calls per decision ({t} distinct RS256 tokens, /proc/<pid>/io syscw)"),
            "",
            Better::Less,
            writes,
        ),
        row(
            "idp_requests",
            format!("IdP requests per process ({t} distinct RS256 tokens: JWKS, discovery, backend token)"),
            "",
            Better::Less,
            idp,
        ),
    ];

    let decision = |key: &str| {
        p.rows.iter().find(|r| r.key == key).and_then(|r| r.cells.first()).and_then(Cell::value).map(|rate| 1e6 / rate)
    };
    for (mut v, key) in [(verify_rs, "distinct_rs256"), (verify_es, "distinct_es256")] {
        v.decision_us = decision(key);
        if v.passes.is_empty() {
            p.notices.push(format!("verify alone ({}) measured nothing", v.alg));
        }
        p.verify.push(v);
    }
    r.peers = p;
}

/// The CPU every process of these rows is pinned to (as `stdio_throughput` picks it).
fn pinned_cpu() -> Option<usize> {
    let taskset = Command::new("taskset").arg("-V").output().is_ok_and(|o| o.status.success());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (taskset && cores >= 2).then_some(cores - 1)
}

fn note(cell: &mut Cell, o: &Outcome) {
    cell.errors += o.errors;
    if cell.sample.is_none() {
        cell.sample.clone_from(&o.sample);
    }
}

/// `n` JWTs of `issuer` signed with `key`, each with its own subject, valid for an hour (signed
/// before any timing, on every core: RSA signing is the slow part of the setup).
fn sign_many(issuer: &FakeIssuer, key: &SigningKey, n: usize, tag: &str) -> Vec<String> {
    let now = unix_now();
    let claims = |i: usize| {
        let mut c = issuer.claims("api", &format!("peer-{tag}-{i}"), "orders.read", now);
        c["exp"] = json!(now + 3600);
        c
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).max(1);
    let chunk = n.div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = (0..threads)
            .map(|t| {
                let claims = &claims;
                s.spawn(move || (t * chunk..((t + 1) * chunk).min(n)).map(|i| key.sign(&claims(i))).collect::<Vec<_>>())
            })
            .collect();
        parts.into_iter().flat_map(|h| h.join().expect("signing thread")).collect()
    })
}

/// The installed peers, and a notice for each one that is not.
fn find_peers(notices: &mut Vec<String>) -> Vec<Contender> {
    let dir = PathBuf::from(std::env::var("BENCH_PEERS_DIR").unwrap_or_else(|_| "target/bench-peers".into()));
    // What scripts/bench could not install, and why.
    if let Ok(text) = std::fs::read_to_string(dir.join("notices")) {
        notices.extend(text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string));
    }
    let mut found = Vec::new();
    let node_dir = dir.join("node");
    let module = node_dir.join("node_modules/aws-jwt-verify/package.json");
    match (which("node"), std::fs::read_to_string(&module).ok()) {
        (Some(node), Some(package)) => {
            let version =
                serde_json::from_str::<Value>(&package).ok().and_then(|v| v["version"].as_str().map(String::from));
            let node_version = output(&node, &["--version"]).unwrap_or_else(|| "unknown".into());
            if !node_version.starts_with("v20.") {
                notices.push(format!("the Node peer runs on Node {node_version}, not the Node 20 the issue names"));
            }
            found.push(Contender {
                key: "node",
                name: format!("Node {node_version} + aws-jwt-verify {}", version.as_deref().unwrap_or("?")),
                program: node,
                args: vec![node_dir.join("authorizer.mjs").display().to_string()],
                stderr: Some(dir.join("node.stderr")),
            });
        }
        (None, _) => notices.push("the Node peer is left out: no `node` on PATH".into()),
        (_, None) => notices.push(format!(
            "the Node peer is left out: {} is missing (scripts/bench installs it with `npm ci`)",
            module.display()
        )),
    }
    let python = dir.join("python/bin/python");
    let script = std::path::absolute("bench/peers/python/authorizer.py").unwrap_or_default();
    match output(&python, &["-c", "import jwt, cryptography; print(jwt.__version__, cryptography.__version__)"]) {
        Some(versions) if script.is_file() => {
            let (jwt, crypto) = versions.split_once(' ').unwrap_or((&versions, "?"));
            let py = output(&python, &["-c", "import platform; print(platform.python_version())"]).unwrap_or_default();
            found.push(Contender {
                key: "pyjwt",
                name: format!("Python {py} + PyJWT {jwt} (cryptography {crypto})"),
                program: python,
                args: vec![script.display().to_string()],
                stderr: Some(dir.join("pyjwt.stderr")),
            });
        }
        Some(_) => notices.push(format!("the PyJWT peer is left out: no {}", script.display())),
        None => notices.push(format!(
            "the PyJWT peer is left out: {} cannot import PyJWT (scripts/bench installs it with pip)",
            python.display()
        )),
    }
    found
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

fn output(program: &Path, args: &[&str]) -> Option<String> {
    let o = Command::new(program).args(args).output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn command(c: &Contender, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut command = Command::new("taskset");
            command.arg("-c").arg(cpu.to_string()).arg(&c.program).args(&c.args);
            command
        }
        None => {
            let mut command = Command::new(&c.program);
            command.args(&c.args);
            command
        }
    }
}

/// Whether one answer line is the allow every input line here deserves: tokenbridge's allow
/// shape with IdP B's backend token in it.
fn is_allow(line: &[u8]) -> bool {
    line.starts_with(b"{\"active\":true")
        && std::str::from_utf8(line).is_ok_and(|l| l.contains("\"back_end_token\":\"Bearer backend-"))
}

/// Feeds `input` (lines) to a new process of `c` and reads one answer per line.
fn pipe(
    c: &Contender,
    env: &[(String, String)],
    input: &str,
    cpu: Option<usize>,
    requests: &dyn Fn() -> usize,
) -> Outcome {
    let expected = input.bytes().filter(|&b| b == b'\n').count();
    let mut o = Outcome {
        to_first: None,
        rate: None,
        errors: expected,
        sample: None,
        rss_kib: None,
        writes: None,
        answers: 0,
        idp_requests: 0,
    };
    let stderr = match &c.stderr {
        Some(path) => std::fs::File::create(path).map_or(Stdio::null(), Stdio::from),
        None => Stdio::null(),
    };
    let before = requests();
    let started = Instant::now();
    let spawned = command(c, cpu)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn();
    let mut child: Child = match spawned {
        Ok(child) => child,
        Err(e) => {
            o.sample = Some(format!("{} did not start: {e}", c.name));
            return o;
        }
    };
    let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return o;
    };
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        // A peer that dies makes this fail (EPIPE); the reader sees the missing answers.
        let _ = stdin.write_all(input.as_bytes());
        stdin
    });
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (done, pid) = (done.clone(), child.id());
        std::thread::spawn(move || {
            let until = Instant::now() + RUN_LIMIT;
            while !done.load(Ordering::Relaxed) {
                if Instant::now() >= until {
                    // Our own child, by its pid: a hung peer must not hang the bench.
                    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        })
    };

    let mut buf = vec![0u8; 1 << 16];
    let mut partial = Vec::new();
    let (mut lines, mut allows, mut first, mut last) = (0usize, 0usize, None, Instant::now());
    while lines < expected {
        let got = match stdout.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(got) => got,
        };
        let now = Instant::now();
        let mut rest = &buf[..got];
        while let Some(at) = rest.iter().position(|&b| b == b'\n') {
            let line = if partial.is_empty() {
                &rest[..at]
            } else {
                partial.extend_from_slice(&rest[..at]);
                &partial[..]
            };
            if is_allow(line) {
                allows += 1;
            } else if o.sample.is_none() {
                o.sample = Some(String::from_utf8_lossy(&line[..line.len().min(160)]).into_owned());
            }
            partial.clear();
            lines += 1;
            if first.is_none() {
                first = Some(now);
                o.to_first = Some(now - started);
            }
            last = now;
            rest = &rest[at + 1..];
        }
        partial.extend_from_slice(rest);
    }
    done.store(true, Ordering::Relaxed);
    let killed = watchdog.join().unwrap_or(false);
    o.rss_kib = peak_rss_kib(child.id());
    o.writes = write_calls(child.id());
    o.answers = lines;
    o.errors = expected - allows;
    if lines < expected && o.sample.is_none() {
        let why = if killed { format!("killed after {} s", RUN_LIMIT.as_secs()) } else { "output ended".into() };
        o.sample = Some(format!("{why} after {lines} of {expected} answers"));
    }
    if let Some(first) = first.filter(|_| allows > 1) {
        let elapsed = last.duration_since(first).as_secs_f64();
        // Only the expected allows count: between the first answer and the last there were
        // lines - 1 answers, of which this share was right.
        o.rate = (elapsed > 0.0).then(|| (lines - 1) as f64 * (allows as f64 / lines as f64) / elapsed);
    }
    drop(writer.join());
    let _ = child.kill();
    let _ = child.wait();
    o.idp_requests = requests() - before;
    o
}

/// `syscw` of a live process: how many write-family system calls it made.
fn write_calls(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines().find_map(|l| l.strip_prefix("syscw:"))?.trim().parse().ok()
}

/// Times the bare signature check (aws-lc-rs, tokenbridge's crypto, key parsed once) over
/// `tokens`, in a child of this binary pinned to `cpu`:
/// microseconds per verification for each of `passes` passes, and how many tokens verified.
fn verify_alone(
    alg: &str,
    jwk: &Value,
    tokens: &[String],
    passes: usize,
    cpu: Option<usize>,
) -> Result<(Vec<f64>, usize), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut command = match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    let mut child = command
        .args([VERIFY_ALONE, alg, &passes.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut input = format!("{jwk}\n");
    for t in tokens {
        input.push_str(t);
        input.push('\n');
    }
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut answer = String::new();
    child.stdout.take().ok_or("no stdout")?.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    let _ = writer.join();
    let status = child.wait().map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(answer.trim()).map_err(|e| format!("{status}: {e}: {answer}"))?;
    let passes = v["passes_us"].as_array().ok_or("no passes")?.iter().filter_map(Value::as_f64).collect();
    let verified = v["verified"].as_u64().ok_or("no count")? as usize;
    if verified != tokens.len() {
        return Err(format!("only {verified} of {} tokens verified", tokens.len()));
    }
    Ok((passes, verified))
}

/// The verify-alone child: reads a JWK, then tokens, one a line, from stdin; verifies every token
/// `passes` times and prints the microseconds per verification of each pass as JSON. The
/// baseline is the signature check and nothing else: aws-lc-rs (tokenbridge's crypto) with the
/// key parsed once, and each signature decoded from base64 outside the timing.
pub fn verify_alone_child(args: &[String]) {
    use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
    use base64::Engine as _;
    let fail = |why: String| -> ! {
        eprintln!("verify-alone: {why}");
        std::process::exit(2)
    };
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok();
    let passes: usize = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(3).max(1);
    let mut lines = BufReader::new(std::io::stdin().lock()).lines().map_while(Result::ok);
    let jwk = lines.next().unwrap_or_else(|| fail("no JWK".into()));
    let jwk: Value = serde_json::from_str(&jwk).unwrap_or_else(|e| fail(format!("JWK: {e}")));
    let part = |name: &str| jwk[name].as_str().and_then(b64).unwrap_or_else(|| fail(format!("JWK {name}")));
    let key: ParsedPublicKey = match args.first().map(String::as_str) {
        Some("RS256") => RsaPublicKeyComponents { n: &part("n")[..], e: &part("e")[..] }
            .to_parsed_public_key(&sig::RSA_PKCS1_2048_8192_SHA256)
            .unwrap_or_else(|e| fail(format!("key: {e}"))),
        Some("ES256") => {
            let point = [&[0x04][..], &part("x"), &part("y")].concat();
            ParsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point).unwrap_or_else(|e| fail(format!("key: {e}")))
        }
        other => fail(format!("unsupported algorithm {other:?}")),
    };
    let tokens: Vec<(String, Vec<u8>)> =
        lines.filter_map(|t| t.rsplit_once('.').and_then(|(m, s)| Some((m.to_string(), b64(s)?)))).collect();
    if tokens.is_empty() {
        fail("no tokens".into());
    }
    let verified = tokens.iter().filter(|(m, s)| key.verify_sig(m.as_bytes(), s).is_ok()).count();
    let mut times = Vec::with_capacity(passes);
    for _ in 0..passes {
        let started = Instant::now();
        for (m, s) in &tokens {
            std::hint::black_box(key.verify_sig(m.as_bytes(), s).is_ok());
        }
        times.push(started.elapsed().as_secs_f64() * 1e6 / tokens.len() as f64);
    }
    println!("{}", json!({"passes_us": times, "verified": verified}));
}

impl Peers {
    fn column(&self, key: &str) -> Option<usize> {
        self.columns.iter().position(|(k, _)| *k == key)
    }

    fn row(&self, key: &str) -> Option<&PeerRow> {
        self.rows.iter().find(|r| r.key == key)
    }

    /// The value of `row` for contender `who`.
    pub fn value(&self, row: &str, who: &str) -> Option<f64> {
        self.row(row)?.cells.get(self.column(who)?)?.value()
    }

    /// How many times better tokenbridge is than `who` on `row` (above 1: tokenbridge is ahead).
    pub fn advantage(&self, row: &str, who: &str) -> Option<f64> {
        let (tb, peer) = (self.value(row, "tokenbridge")?, self.value(row, who)?);
        Some(match self.row(row)?.better {
            Better::More => tb / peer,
            Better::Less => peer / tb,
        })
    }

    /// Issue 13's targets, judged on this run.
    pub fn targets(&self, r: &Results) -> Vec<Target> {
        let mut t = Vec::new();
        let node = self.columns.iter().find(|(k, _)| *k == "node").map(|(_, n)| n.as_str()).unwrap_or("Node peer");
        let not_there = || self.notices.iter().find(|n| n.contains("Node")).cloned();
        let per = |row: &str, who: &str| self.value(row, who).map(|rate| 1e6 / rate);
        for v in &self.verify {
            let key = if v.alg == "RS256" { "verify_ratio_rs256" } else { "verify_ratio_es256" };
            let what = if v.alg == "RS256" {
                "uncached RS256 decision (stdio, distinct tokens) vs one RS256 verification alone"
            } else {
                "uncached ES256 decision (stdio, distinct tokens) vs one ES256 verification alone"
            };
            let text = v.ratio().zip(v.verify_us()).zip(v.decision_us).map(|((x, verify), decision)| {
                format!("{x:.2}× ({decision:.1} µs per decision, {verify:.1} µs per verification)")
            });
            let mut target = Target::new(key, what, "≤ 1.3×", 1.3, Better::Less).measured(v.ratio(), text);
            target.undersized = (self.tokens < TARGET_TOKENS).then(|| format!("{} tokens", self.tokens));
            t.push(target.because(|| {
                let (decision, verify) = (v.decision_us?, v.verify_us()?);
                let line = r.throughput.iter().find(|(k, _, _)| *k == "stdio_empty").map(|(_, _, x)| 1e6 / x.median());
                let mut why = format!(
                    "of {decision:.1} µs per decision, {verify:.1} µs ({:.0} %) is the signature check",
                    100.0 * verify / decision
                );
                if let Some(line) = line {
                    why.push_str(&format!(
                        ", {line:.1} µs what any line costs (read, answer, log: a no-token line's cost on the \
                         same core) and the remaining {:.1} µs the rest of the JWT path (decoding header and \
                         claims, the key lookup, checking the claims, hashing, the cache entry)",
                        decision - verify - line
                    ));
                }
                Some(why)
            }));
        }
        let stdio =
            |key: &str| r.throughput.iter().find(|(k, _, _)| *k == key).map(|(_, l, x)| (l.clone(), x.median()));
        for (key, from, what) in [
            ("stdio_jwt_250k", "stdio_jwt", "stdio, cached JWT decisions per second on one core"),
            ("stdio_opaque_250k", "stdio_opaque", "stdio, cached opaque-token decisions per second on one core"),
        ] {
            let m = stdio(from);
            t.push(
                Target::new(key, what, "≥ 250,000 /s", 250_000.0, Better::More)
                    .measured(m.as_ref().map(|(_, x)| *x), m.as_ref().map(|(_, x)| format!("{x:.0} /s")))
                    .because(|| {
                        let (_, rate) = m.clone()?;
                        let (_, empty) = stdio("stdio_empty")?;
                        let (per, line) = (1e6 / rate, 1e6 / empty);
                        Some(format!(
                            "{per:.1} µs per decision, of which {line:.1} µs ({:.0} %) is what a no-token line \
                             costs on the same core (read, answer, log line) and {:.1} µs the cached decision \
                             (hash, cache lookup, answer built); 250,000 /s is 4 µs",
                            100.0 * line / per,
                            per - line
                        ))
                    }),
            );
        }
        let writes = self.value("writes_per_decision", "tokenbridge");
        t.push(
            Target::new(
                "stdio_writes_per_decision",
                "stdio, write calls per decision (answer and log line, each whole)",
                "≤ 2",
                2.0,
                Better::Less,
            )
            .measured(writes, writes.map(|x| format!("{x:.2}")))
            .because(|| {
                Some(format!(
                    "{:.2} write system calls per decision over {} decisions (the answer, the log line and its \
                     newline apart)",
                    writes?, self.tokens
                ))
            }),
        );
        let mut ratio = |key, what, goal: &str, limit: f64, row: &'static str, shown: fn(f64) -> String| {
            let x = self.advantage(row, "node");
            // The goal is a multiple of the peer; the value, tokenbridge's multiple of it.
            let (value, better) = match self.row(row).map(|r| r.better) {
                Some(Better::Less) => (x.map(|x| 1.0 / x), Better::Less),
                _ => (x, Better::More),
            };
            let text = x.map(|x| {
                let (tb, peer) =
                    (self.value(row, "tokenbridge").unwrap_or(0.0), self.value(row, "node").unwrap_or(0.0));
                let unit = self.row(row).map_or("", |r| r.unit);
                format!("{} ({} {unit} vs {} {unit})", shown(x), num(tb), num(peer))
            });
            let mut target = Target::new(key, what, goal, limit, better).measured(value, text);
            if row.starts_with("distinct") && self.tokens < TARGET_TOKENS {
                target.undersized = Some(format!("{} tokens", self.tokens));
            }
            let target = target.because(|| {
                let tb = self.value(row, "tokenbridge")?;
                let peer = self.value(row, "node")?;
                Some(match row {
                    "distinct_rs256" => {
                        let verify = self.verify.iter().find(|v| v.alg == "RS256")?.verify_us()?;
                        format!(
                            "{node} takes {:.1} µs per decision and tokenbridge {:.1} µs, of which one RS256 \
                             verification alone is {verify:.1} µs: even a decision that cost only its verification \
                             would be {:.2}× the peer",
                            1e6 / peer,
                            1e6 / tb,
                            1e6 / peer / verify
                        )
                    }
                    "repeated_rs256" => format!(
                        "{node} verifies every time ({:.1} µs); tokenbridge's cached decision is {:.1} µs{}",
                        1e6 / peer,
                        1e6 / tb,
                        per("repeated_rs256", "tokenbridge")
                            .zip(stdio("stdio_empty").map(|(_, e)| 1e6 / e))
                            .map_or(String::new(), |(_, line)| format!(
                                ", {line:.1} µs of it what any line costs (read, answer, log)"
                            ))
                    ),
                    "cold_first" => {
                        let min =
                            |who| self.row(row)?.cells.get(self.column(who)?)?.runs.iter().copied().reduce(f64::min);
                        format!(
                            "medians {tb:.2} ms vs {peer:.2} ms (fastest {:.2} vs {:.2} ms); both include the \
                             same two loopback IdP round trips (JWKS, backend token)",
                            min("tokenbridge").unwrap_or(f64::NAN),
                            min("node").unwrap_or(f64::NAN)
                        )
                    }
                    _ => format!("tokenbridge {tb:.1} MiB vs {node} {peer:.1} MiB"),
                })
            });
            t.push(target);
        };
        ratio(
            "node_distinct_rs256",
            "vs the Node peer: 10,000 distinct RS256 tokens",
            "≥ 3×",
            3.0,
            "distinct_rs256",
            |x| format!("{x:.2}×"),
        );
        ratio("node_repeated", "vs the Node peer: one repeated token", "≥ 10×", 10.0, "repeated_rs256", |x| {
            format!("{x:.2}×")
        });
        ratio(
            "node_cold_start",
            "vs the Node peer: cold start to the first answer",
            "≤ 1/20",
            0.05,
            "cold_first",
            |x| format!("1/{x:.1}"),
        );
        ratio("node_rss", "vs the Node peer: peak RSS", "≤ 1/5", 0.2, "peak_rss", |x| format!("1/{x:.1}"));
        if self.column("node").is_none() {
            for target in t.iter_mut().filter(|t| t.key.starts_with("node_")) {
                target.why = not_there();
            }
        }
        t
    }

    pub fn markdown(&self, line: &mut dyn FnMut(String)) {
        line("## tokenbridge beside its peers (issue 13)".into());
        line(String::new());
        line(format!(
            "Same run, same JWKS (one fake issuer with an RSA-2048 and a P-256 key), same IdP B for the backend \
             token (fetched once per process and reused); every process reads the same `tokenbridge stdio` JSON \
             lines, {}; runs interleaved, {} per throughput row. Rates count only answers that are the expected \
             allow with the backend token. The peers are in `bench/peers/` (pinned by lock files, installed by \
             `scripts/bench` into `target/bench-peers/`); they verify every token (neither library caches \
             decisions), tokenbridge caches its decisions unless a row says otherwise.",
            self.pinned, self.runs
        ));
        line(String::new());
        for n in &self.notices {
            line(format!("> **Notice:** {n}."));
            line(String::new());
        }
        let mut head = "| row |".to_string();
        let mut rule = "|---|".to_string();
        for (i, (key, name)) in self.columns.iter().enumerate() {
            head.push_str(&format!(" {name} |"));
            rule.push_str("---|");
            if i > 0 {
                head.push_str(&format!(" tokenbridge ÷ {key} |"));
                rule.push_str("---|");
            }
        }
        line(head);
        line(rule);
        for row in &self.rows {
            let mut l = format!("| {} |", row.label);
            for (i, (key, _)) in self.columns.iter().enumerate() {
                let cell = &row.cells[i];
                let mut text =
                    cell.value().map_or("n/a".into(), |v| format!("{} {}", num(v), row.unit).trim().to_string());
                if cell.runs.len() > 1 && row.key != "cold_first" {
                    let spread = Repeated { runs: cell.runs.clone() };
                    text.push_str(&format!(" ({} – {})", num(spread.min()), num(spread.max())));
                }
                if cell.errors > 0 {
                    text.push_str(&format!(" **{} wrong answers**", cell.errors));
                }
                l.push_str(&format!(" {text} |"));
                if i > 0 {
                    // Counts are shown side by side, not as a multiple.
                    let x = self.advantage(row.key, key).filter(|_| !row.unit.is_empty());
                    let shown = match (row.better, x) {
                        (_, None) => String::new(),
                        (Better::More, Some(x)) => format!("{x:.2}×"),
                        (Better::Less, Some(x)) => format!("1/{x:.1}"),
                    };
                    l.push_str(&format!(" {shown} |"));
                }
            }
            line(l);
        }
        line(String::new());
        let wrong: Vec<String> = self
            .rows
            .iter()
            .flat_map(|row| {
                row.cells.iter().zip(&self.columns).filter_map(move |(c, (k, _))| {
                    c.sample.as_ref().map(|s| format!("{k}, {}: {} (e.g. `{s}`)", row.key, c.errors))
                })
            })
            .collect();
        if !wrong.is_empty() {
            line("Wrong or missing answers (not counted in the rates):".into());
            line(String::new());
            for w in wrong {
                line(format!("- {w}"));
            }
            line(String::new());
        }
        line("### Verify alone: the signature check beside tokenbridge's uncached decision".into());
        line(String::new());
        line(format!(
            "aws-lc-rs `ParsedPublicKey::verify_sig` (tokenbridge's own crypto) with the key parsed once from the \
             same JWK and each signature decoded beforehand, over the same {} distinct tokens, in a process {}, one pass per \
             throughput run, right after that run's decisions; the decision is tokenbridge's stdio rate on the \
             distinct-token row above, inverted.",
            self.tokens, self.pinned
        ));
        line(String::new());
        line("| algorithm | one verification (µs, median of passes) | passes | uncached decision (µs) | decision ÷ verification |".into());
        line("|---|---|---|---|---|".into());
        for v in &self.verify {
            let passes: Vec<String> = v.passes.iter().map(|p| format!("{p:.1}")).collect();
            line(format!(
                "| {} | {} | {} | {} | {} |",
                v.alg,
                v.verify_us().map_or("n/a".into(), |x| format!("{x:.1}")),
                passes.join(", "),
                v.decision_us.map_or("n/a".into(), |x| format!("{x:.1}")),
                v.ratio().map_or("n/a".into(), |x| format!("{x:.2}×"))
            ));
        }
        line(String::new());
    }

    pub fn json(&self) -> Value {
        let rows: serde_json::Map<String, Value> = self
            .rows
            .iter()
            .map(|row| {
                let cells: serde_json::Map<String, Value> = self
                    .columns
                    .iter()
                    .zip(&row.cells)
                    .map(|((k, _), c)| (k.to_string(), json!({"value": c.value(), "runs": c.runs, "errors": c.errors})))
                    .collect();
                let ratios: serde_json::Map<String, Value> = self
                    .columns
                    .iter()
                    .skip(1)
                    .map(|(k, _)| (k.to_string(), json!(self.advantage(row.key, k))))
                    .collect();
                (
                    row.key.to_string(),
                    json!({"label": row.label, "unit": row.unit, "values": cells, "tokenbridge_advantage": ratios}),
                )
            })
            .collect();
        json!({
            "columns": self.columns.iter().map(|(k, n)| json!({"key": k, "name": n})).collect::<Vec<_>>(),
            "notices": self.notices,
            "tokens": self.tokens, "repeated": self.repeated, "runs": self.runs, "pinned": self.pinned,
            "rows": rows,
            "verify_alone": self.verify.iter().map(|v| json!({
                "alg": v.alg, "passes_us": v.passes, "verify_us": v.verify_us(), "verified": v.verified,
                "tokens": v.tokens, "decision_us": v.decision_us, "ratio": v.ratio()
            })).collect::<Vec<_>>(),
        })
    }
}

/// A number at a precision fit for its size.
fn num(v: f64) -> String {
    if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_allow_with_the_backend_token_counts_as_a_right_answer() {
        assert!(is_allow(br#"{"active":true,"principal":"u","context":{"back_end_token":"Bearer backend-1-ab"}}"#));
        assert!(!is_allow(br#"{"active":true,"principal":"u"}"#));
        assert!(!is_allow(br#"{"active":false,"wwwAuthenticate":"Bearer error=\"invalid_token\""}"#));
        assert!(!is_allow(br#"{"error":"unavailable","context":{"back_end_token":"Bearer backend-1"}}"#));
    }

    fn peers_with(rows: Vec<(&'static str, Better, f64, f64)>) -> Peers {
        let cell = |v: f64| Cell { runs: vec![v], ..Default::default() };
        Peers {
            columns: vec![("tokenbridge", "tokenbridge".into()), ("node", "Node".into())],
            rows: rows
                .into_iter()
                .map(|(key, better, tb, node)| PeerRow {
                    key,
                    label: key.into(),
                    unit: "",
                    better,
                    cells: vec![cell(tb), cell(node)],
                })
                .collect(),
            tokens: TARGET_TOKENS,
            ..Default::default()
        }
    }

    #[test]
    fn the_advantage_over_a_peer_is_its_rate_ratio_or_its_cost_ratio_inverted() {
        let p = peers_with(vec![
            ("distinct_rs256", Better::More, 30_000.0, 12_000.0),
            ("cold_first", Better::Less, 4.0, 80.0),
        ]);
        assert_eq!(p.advantage("distinct_rs256", "node"), Some(2.5));
        assert_eq!(p.advantage("cold_first", "node"), Some(20.0));
        assert_eq!(p.advantage("cold_first", "pyjwt"), None);
    }

    #[test]
    fn a_peer_target_is_judged_on_tokenbridge_s_multiple_of_the_peer() {
        let p = peers_with(vec![
            ("distinct_rs256", Better::More, 30_000.0, 12_000.0),
            ("cold_first", Better::Less, 4.0, 100.0),
            ("peak_rss", Better::Less, 8.0, 32.0),
        ]);
        let r = Results::new(crate::report::machine(0, 0));
        let targets = p.targets(&r);
        let by_key = |k: &str| targets.iter().find(|t| t.key == k).expect("target");
        assert_eq!(by_key("node_distinct_rs256").met(), Some(false), "2.5× is short of 3×");
        assert_eq!(by_key("node_cold_start").met(), Some(true), "1/25 is within 1/20");
        assert_eq!(by_key("node_rss").met(), Some(false), "1/4 is more than 1/5");
        assert!(by_key("node_rss").why.is_some());
    }

    #[test]
    fn a_run_with_fewer_distinct_tokens_than_the_target_states_is_not_judged() {
        let mut p = peers_with(vec![("distinct_rs256", Better::More, 90_000.0, 12_000.0)]);
        p.tokens = 500;
        let r = Results::new(crate::report::machine(0, 0));
        let t = p.targets(&r).into_iter().find(|t| t.key == "node_distinct_rs256").expect("target");
        assert_eq!(t.met(), None);
    }
}
