//! `scripts/bench`: measures the built binary against the local fake IdPs and prints a Markdown
//! report. Set `TOKENBRIDGE_BIN` to the binary to measure (scripts/bench passes the release one).
//!
//! - OCI cold start: exec → socket published, and exec → first decision answered (new token:
//!   one introspection and one backend-token request on loopback).
//! - OCI warm latency over the socket: cache hit, and a no-IdP deny (the floor of a `/call`).
//! - Peak resident memory of the OCI process after the warm runs.
//! - stdio throughput with one cached token.

use std::time::{Duration, Instant};

use serde_json::json;
use tokenbridge_tests::fn_agent::{FnAgent, Framing};
use tokenbridge_tests::{IdpPair, stdio, token_payload};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let ms = |d: Duration| format!("{:.3}", d.as_secs_f64() * 1000.0);
    format!(
        "{} | {} | {} | {} | {}",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.9)),
        ms(percentile(&samples, 0.99)),
        ms(samples[samples.len() - 1])
    )
}

fn payload(token: &str) -> Vec<u8> {
    json!({"type": "TOKEN", "token": format!("Bearer {token}")}).to_string().into_bytes()
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(30);
    let warm: usize = std::env::var("BENCH_WARM").ok().and_then(|r| r.parse().ok()).unwrap_or(20_000);
    let idp = IdpPair::start();
    let env = idp.env();
    let long = Duration::from_secs(30);

    let (mut ready, mut first) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let token = idp.a.issue("bench", "", 600);
        let started = Instant::now();
        let mut agent = FnAgent::start(&env);
        ready.push(agent.ready_after);
        let reply = agent.call(&payload(&token), Framing::Chunked, long);
        first.push(started.elapsed());
        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    }

    let mut agent = FnAgent::start(&env);
    let token = idp.a.issue("bench", "", 3600);
    agent.call(&payload(&token), Framing::Chunked, long);
    let (mut hit, mut floor) = (Vec::new(), Vec::new());
    for _ in 0..warm {
        let t = Instant::now();
        agent.call(&payload(&token), Framing::ContentLength, long);
        hit.push(t.elapsed());
        let t = Instant::now();
        agent.call(br#"{"type":"TOKEN"}"#, Framing::ContentLength, long);
        floor.push(t.elapsed());
    }
    let rss = peak_rss_kib(agent.pid());

    let n = 200_000;
    let input = vec![token_payload(&token); n].join("\n");
    let run = stdio(&env, &input);
    assert_eq!(run.answers.len(), n);
    let per_second = n as f64 / run.elapsed.as_secs_f64();

    let size = std::fs::metadata(tokenbridge_tests::binary()).map(|m| m.len()).unwrap_or(0);
    println!("| measurement | n | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    println!("| OCI cold start: exec → socket published | {} |", summary(ready));
    println!("| OCI cold start: exec → first decision (new token, 2 IdP calls) | {} |", summary(first));
    println!("| OCI warm `/call`, cached token (allow) | {} |", summary(hit));
    println!("| OCI warm `/call`, no token (deny, no IdP call: the socket floor) | {} |", summary(floor));
    println!();
    println!(
        "- OCI peak resident memory after {} calls: {} KiB",
        2 * warm + 1,
        rss.map_or("n/a".into(), |k| k.to_string())
    );
    println!(
        "- stdio, one cached token: {n} decisions in {:.2} s = {per_second:.0} decisions/s (includes process start and log writing)",
        run.elapsed.as_secs_f64()
    );
    println!("- binary size: {:.2} MiB", size as f64 / 1024.0 / 1024.0);
}
