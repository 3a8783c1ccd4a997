//! The serving-layer rows of issue 12, measured in one run for the new binary and a baseline
//! (`TOKENBRIDGE_BASELINE_BIN`, which scripts/bench builds from `BENCH_BASELINE`, default
//! `1bffb5b`: the hand-written HTTP/1.1 server with a fixed pool of 32 workers).
//!
//! `tokenbridge http` with a cached JWT: throughput at 1 to 1,024 connections, kept alive and
//! not; the connection limit; a legitimate client's latency with nothing else open and with a
//! crowd of idle and slowloris connections open. The OCI Fn socket: cold start and a cached
//! `/call`. Release binary sizes. Every request has a bounded timeout, so a server that stalls
//! shows up as counted timeouts rather than a hung bench.
//!
//! Knobs: `BENCH_SERVE_MS` (ms per throughput point, 1000), `BENCH_SERVE_CONNS` (comma-separated
//! connection counts, `1,8,64,256,1024`), `BENCH_SERVE_TIMEOUT_MS` (per request, 2000),
//! `BENCH_SERVE_RATE` (the legitimate client's requests per second, 1000), `BENCH_SERVE_QUIET_MS`
//! and `BENCH_SERVE_CROWD_MS` (its windows without and with the crowd, 3000 and 5000),
//! `BENCH_SERVE_IDLE` and `BENCH_SERVE_SLOW` (the crowd, 10000 and 1000), `BENCH_SERVE_LIMIT`
//! (the configured connection limit, 512), `BENCH_SERVE_OCI` (timed cached `/call`s per binary,
//! 10000); `BENCH_RUNS` cold starts per binary.

use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenbridge_tests::{binary, token_payload};

use crate::clients::{Oci, far_deadline, forward_auth, oci_call, read_reply};
use crate::report::{Better, Target};
use crate::stats::{Summary, summarize};
use crate::{World, knob};

/// A binary under measurement.
#[derive(Clone)]
pub struct Binary {
    pub label: String,
    pub path: PathBuf,
}

/// The baseline scripts/bench built, if any.
fn baseline() -> Option<Binary> {
    let path = PathBuf::from(std::env::var_os("TOKENBRIDGE_BASELINE_BIN")?);
    let label = std::env::var("TOKENBRIDGE_BASELINE_LABEL").unwrap_or_else(|_| "baseline".into());
    Some(Binary { label: format!("old `{label}`"), path })
}

struct Knobs {
    window: Duration,
    conns: Vec<usize>,
    timeout: Duration,
    rate: usize,
    quiet: Duration,
    crowd: Duration,
    idle: usize,
    slow: usize,
    limit: usize,
    oci: usize,
    runs: usize,
}

impl Knobs {
    fn read() -> Self {
        let ms = |name, default| Duration::from_millis(knob(name, default) as u64);
        let conns = std::env::var("BENCH_SERVE_CONNS")
            .ok()
            .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).filter(|n| *n > 0).collect::<Vec<_>>())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| vec![1, 8, 64, 256, 1024]);
        Knobs {
            window: ms("SERVE_MS", 1000),
            conns,
            timeout: ms("SERVE_TIMEOUT_MS", 2000),
            rate: knob("SERVE_RATE", 1000).max(1),
            quiet: ms("SERVE_QUIET_MS", 3000),
            crowd: ms("SERVE_CROWD_MS", 5000),
            idle: knob("SERVE_IDLE", 10_000),
            slow: knob("SERVE_SLOW", 1_000),
            limit: knob("SERVE_LIMIT", 512).max(2),
            oci: knob("SERVE_OCI", 10_000).max(1),
            runs: knob("RUNS", 20).max(1),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Failures, counted by kind.

/// Requests that did not get their expected answer.
#[derive(Debug, Clone, Default)]
pub struct Errors {
    /// No answer within the per-request timeout (or no connection within it).
    pub timeouts: usize,
    /// A 503 (the connection limit, or the old server's full queue).
    pub overloaded: usize,
    /// Another status than the one expected.
    pub status: usize,
    /// The connection was closed or reset before the answer, or could not be made.
    pub closed: usize,
}

enum Fail {
    Timeout,
    Status(u16),
    Closed,
}

impl Errors {
    pub fn total(&self) -> usize {
        self.timeouts + self.overloaded + self.status + self.closed
    }
    fn count(&mut self, fail: &Fail) {
        match fail {
            Fail::Timeout => self.timeouts += 1,
            Fail::Status(503) => self.overloaded += 1,
            Fail::Status(_) => self.status += 1,
            Fail::Closed => self.closed += 1,
        }
    }
    fn add(&mut self, other: &Errors) {
        self.timeouts += other.timeouts;
        self.overloaded += other.overloaded;
        self.status += other.status;
        self.closed += other.closed;
    }
    pub fn text(&self) -> String {
        if self.total() == 0 {
            return "0".into();
        }
        let parts: Vec<String> = [
            (self.timeouts, "timed out"),
            (self.overloaded, "503"),
            (self.status, "other status"),
            (self.closed, "closed or refused"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        format!("{} ({})", self.total(), parts.join(", "))
    }
    fn json(&self) -> Value {
        json!({"total": self.total(), "timeouts": self.timeouts, "503": self.overloaded,
               "other_status": self.status, "closed": self.closed})
    }
}

fn classify(e: &std::io::Error) -> Fail {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Fail::Timeout,
        _ => Fail::Closed,
    }
}

// ---------------------------------------------------------------------------------------------
// Where a server's time goes: its threads' CPU time and context switches, from /proc.

/// CPU time (ns, from each thread's `schedstat`) and context switches (voluntary and not) of all
/// of a process's threads, so a difference over some requests is their cost in the server.
#[derive(Clone, Copy, Default)]
struct Usage {
    cpu_ns: u64,
    switches: u64,
}

fn usage(pid: u32) -> Usage {
    let mut u = Usage::default();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return u };
    for task in tasks.flatten() {
        let dir = task.path();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        u.cpu_ns += read("schedstat").split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        for line in read("status").lines() {
            if let Some(v) =
                line.strip_prefix("voluntary_ctxt_switches:").or(line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                u.switches += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    u
}

/// CPU ms per second of `wall` between two `usage` readings.
fn cpu_share(before: Usage, after: Usage, wall: Duration) -> f64 {
    after.cpu_ns.saturating_sub(before.cpu_ns) as f64 / 1e6 / wall.as_secs_f64().max(1e-9)
}

/// Per request: the server's CPU µs and context switches between two `usage` readings.
#[derive(Clone, Copy, Default)]
pub struct Cost {
    pub cpu_us: f64,
    pub switches: f64,
}

impl Cost {
    fn between(before: Usage, after: Usage, requests: usize) -> Self {
        let n = requests.max(1) as f64;
        Cost {
            cpu_us: after.cpu_ns.saturating_sub(before.cpu_ns) as f64 / 1000.0 / n,
            switches: after.switches.saturating_sub(before.switches) as f64 / n,
        }
    }
    fn text(&self) -> String {
        format!("{:.1} µs CPU, {:.1} context switches", self.cpu_us, self.switches)
    }
    fn json(&self) -> Value {
        json!({"server_cpu_us": crate::stats::r(self.cpu_us), "context_switches": crate::stats::r(self.switches)})
    }
}

// ---------------------------------------------------------------------------------------------
// A `tokenbridge http` process of a given binary.

/// A running `tokenbridge http`; its log's first lines are kept (the listening line, or why it
/// did not start), the rest read and dropped so the pipe never fills.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// The listening line's `max_connections` (the old binary has none).
    max_connections: Option<u64>,
}

impl Server {
    fn start(bin: &Binary, env: &[(String, String)]) -> Self {
        let mut child = Command::new(&bin.path)
            .arg("http")
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("TOKENBRIDGE_LISTEN", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {} http: {e}", bin.path.display()));
        let head = Arc::new((Mutex::new(Vec::<String>::new()), Condvar::new()));
        if let Some(pipe) = child.stderr.take() {
            let head = head.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                let mut lines = std::io::BufReader::new(pipe).lines().map_while(Result::ok);
                for line in lines.by_ref().take(50) {
                    head.0.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                    head.1.notify_all();
                }
                lines.for_each(drop);
            });
        }
        let started = Instant::now();
        let mut kept = head.0.lock().unwrap_or_else(|p| p.into_inner());
        let line = loop {
            if let Some(l) = kept.iter().find(|l| l.contains("\"event\":\"listening\"")) {
                break l.clone();
            }
            let left = Duration::from_secs(30).saturating_sub(started.elapsed());
            assert!(!left.is_zero(), "{} http did not listen:\n{}", bin.label, kept.join("\n"));
            kept = head.1.wait_timeout(kept, left).map_or_else(|p| p.into_inner().0, |(g, _)| g);
        };
        drop(kept);
        let line: Value = serde_json::from_str(&line).expect("the listening line is JSON");
        let addr = line["address"].as_str().and_then(|a| a.parse().ok()).expect("listening address");
        Server { child, addr, max_connections: line["max_connections"].as_u64() }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Clients.

/// The forward-auth request on a connection of its own (`Connection: close`).
fn forward_auth_close(token: &str) -> Vec<u8> {
    let kept = String::from_utf8(forward_auth(token)).expect("ASCII request");
    kept.replacen("\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1).into_bytes()
}

fn connect(addr: &SocketAddr, timeout: Duration) -> Result<BufReader<TcpStream>, Fail> {
    let stream = TcpStream::connect_timeout(addr, timeout).map_err(|e| classify(&e))?;
    let _ = stream.set_nodelay(true);
    stream.set_read_timeout(Some(timeout)).map_err(|e| classify(&e))?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| classify(&e))?;
    Ok(BufReader::new(stream))
}

/// One request on `connection` (made first when there is none); the connection is dropped
/// after a failure, so the next request makes a new one.
fn exchange(
    connection: &mut Option<BufReader<TcpStream>>,
    addr: &SocketAddr,
    request: &[u8],
    timeout: Duration,
) -> Result<(), Fail> {
    let result = (|| {
        if connection.is_none() {
            *connection = Some(connect(addr, timeout)?);
        }
        let c = connection.as_mut().ok_or(Fail::Closed)?;
        c.get_mut().write_all(request).map_err(|e| classify(&e))?;
        match read_reply(c) {
            Ok((200, _)) => Ok(()),
            Ok((status, _)) => Err(Fail::Status(status)),
            Err(e) => Err(classify(&e)),
        }
    })();
    if result.is_err() {
        *connection = None;
    }
    result
}

/// A legitimate client's requests, one due every `1 / rate` s for `window` on one kept-alive
/// connection, each timed from when it was due. A failed request counts as a sample of the time
/// it took to fail (at least the timeout when it timed out), so failures cannot make the
/// percentiles look better.
#[derive(Clone)]
pub struct Legit {
    pub summary: Summary,
    pub errors: Errors,
}

fn legit(addr: &SocketAddr, request: &[u8], k: &Knobs, window: Duration) -> Legit {
    let period = Duration::from_secs_f64(1.0 / k.rate as f64);
    let (mut connection, mut samples, mut errors) = (None, Vec::new(), Errors::default());
    let started = Instant::now();
    let mut due = started;
    while started.elapsed() < window {
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if let Err(fail) = exchange(&mut connection, addr, request, k.timeout) {
            errors.count(&fail);
        }
        // From when the request was due, not when it could be sent: a stall counts for every
        // request it held back (no coordinated omission).
        samples.push(due.elapsed());
        due += period;
    }
    Legit { summary: summarize(&samples), errors }
}

/// Decisions per second at one connection count, and how the requests fared.
#[derive(Clone)]
pub struct Rate {
    pub connections: usize,
    pub kept_alive: bool,
    pub per_s: f64,
    pub ok: usize,
    pub errors: Errors,
    /// Latency of the answered requests (a new connection's included when not kept alive).
    pub summary: Summary,
    /// The server's cost per answered request.
    pub cost: Cost,
}

fn throughput(server: &Server, token: &str, connections: usize, kept_alive: bool, k: &Knobs) -> Rate {
    let addr = &server.addr;
    let request = Arc::new(if kept_alive { forward_auth(token) } else { forward_auth_close(token) });
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(connections + 1));
    let timeout = k.timeout;
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let (addr, request, stop, start) = (*addr, request.clone(), stop.clone(), start.clone());
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let (mut connection, mut samples, mut errors) = (None, Vec::new(), Errors::default());
                    start.wait();
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        match exchange(&mut connection, &addr, &request, timeout) {
                            Ok(()) => samples.push(t.elapsed()),
                            Err(fail) => {
                                errors.count(&fail);
                                // Not a hot loop of refused connections.
                                std::thread::sleep(Duration::from_millis(10));
                            }
                        }
                        if !kept_alive {
                            connection = None;
                        }
                    }
                    (samples, errors)
                })
                .expect("a client thread")
        })
        .collect();
    start.wait();
    let before = usage(server.child.id());
    let started = Instant::now();
    std::thread::sleep(k.window);
    stop.store(true, Ordering::Relaxed);
    // Requests still under way when the window ended finish (or time out) before the count.
    let (mut samples, mut errors) = (Vec::new(), Errors::default());
    for t in threads {
        let (s, e) = t.join().expect("client thread");
        samples.extend(s);
        errors.add(&e);
    }
    let elapsed = started.elapsed();
    let cost = Cost::between(before, usage(server.child.id()), samples.len());
    Rate {
        cost,
        connections,
        kept_alive,
        per_s: samples.len() as f64 / elapsed.as_secs_f64(),
        ok: samples.len(),
        errors,
        summary: summarize(&samples),
    }
}

// ---------------------------------------------------------------------------------------------
// The crowd: idle kept-alive connections and slowloris ones, kept topped up.

const SLOW_HEAD: &[u8] = b"GET /auth HTTP/1.1\r\nHost: tokenbridge\r\nX-Slowloris: ";
/// A slowloris connection sends one more header byte this often.
const SLOW_EVERY: Duration = Duration::from_secs(2);
/// How often the crowd's sockets are looked at once it is complete.
const SWEEP_EVERY: Duration = Duration::from_millis(250);
/// New connections per second once the first pass has made every one (that pass is not
/// limited), so a server that closes them at once is not hammered with a reconnect storm.
const RECONNECTS_PER_S: f64 = 2000.0;
/// Sockets looked at in one go, and the pause between such pieces of a sweep.
const SWEEP_CHUNK: usize = 500;
const CHUNK_PAUSE: Duration = Duration::from_millis(10);

#[derive(PartialEq)]
enum State {
    Closed,
    /// Idle: the request is sent, the answer not yet read.
    Asked,
    /// Idle: answered with a 200 and kept alive. Slow: sending its head byte by byte.
    Open,
}

struct Slot {
    slow: bool,
    stream: Option<TcpStream>,
    state: State,
    last_write: Instant,
}

/// What the crowd looked like: counts of the last sweep, and over the measurement window.
#[derive(Debug, Clone, Default)]
pub struct CrowdCount {
    pub idle_open: usize,
    pub slow_open: usize,
    pub idle_min: usize,
    pub idle_max: usize,
    pub slow_min: usize,
    pub slow_max: usize,
    /// Connections made during the window to replace closed ones.
    pub reconnects: usize,
    /// Idle connections whose request got a 503 (during the whole run of the crowd).
    pub refused: usize,
    /// Connects that failed or timed out.
    pub connect_failures: usize,
    /// Sweeps during the window, and the harness's busy time in them (its sleeps excluded).
    pub sweeps: usize,
    pub sweep_busy: Duration,
}

struct Crowd {
    stop: Arc<AtomicBool>,
    refresh: Arc<AtomicBool>,
    window: Arc<AtomicBool>,
    count: Arc<Mutex<CrowdCount>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Crowd {
    fn start(addr: SocketAddr, request: Vec<u8>, idle: usize, slow: usize, timeout: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let refresh = Arc::new(AtomicBool::new(false));
        let window = Arc::new(AtomicBool::new(false));
        let count = Arc::new(Mutex::new(CrowdCount::default()));
        let (s, r, w, c) = (stop.clone(), refresh.clone(), window.clone(), count.clone());
        let thread = std::thread::spawn(move || {
            keep_crowd(addr, &request, idle, slow, timeout.min(SWEEP_EVERY), [&s, &r, &w], &c)
        });
        Crowd { stop, refresh, window, count, thread: Some(thread) }
    }

    fn count(&self) -> CrowdCount {
        self.count.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until the crowd is complete or `within` has passed.
    fn wait_complete(&self, idle: usize, slow: usize, within: Duration) -> CrowdCount {
        let started = Instant::now();
        loop {
            let c = self.count();
            if (c.idle_open >= idle && c.slow_open >= slow) || started.elapsed() > within {
                return c;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends every idle connection one more request, so that their idle timers start afresh
    /// (filling the crowd took a while) and none expires in the window; they are idle again
    /// once answered. Waits for the answers like `wait_complete`.
    fn refresh(&self, idle: usize, slow: usize, within: Duration) -> CrowdCount {
        self.refresh.store(true, Ordering::SeqCst);
        while self.refresh.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.wait_complete(idle, slow, within)
    }

    fn begin_window(&self) {
        let mut c = self.count.lock().unwrap_or_else(|p| p.into_inner());
        (c.idle_min, c.idle_max, c.slow_min, c.slow_max) = (c.idle_open, c.idle_open, c.slow_open, c.slow_open);
        (c.reconnects, c.sweeps, c.sweep_busy) = (0, 0, Duration::ZERO);
        self.window.store(true, Ordering::SeqCst);
    }

    fn end(mut self) -> CrowdCount {
        self.window.store(false, Ordering::SeqCst);
        let c = self.count();
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        c
    }
}

fn keep_crowd(
    addr: SocketAddr,
    request: &[u8],
    idle: usize,
    slow: usize,
    connect_timeout: Duration,
    [stop, refresh, window]: [&AtomicBool; 3],
    count: &Mutex<CrowdCount>,
) {
    let now = Instant::now();
    let mut slots: Vec<Slot> = (0..idle + slow)
        .map(|i| Slot { slow: i >= idle, stream: None, state: State::Closed, last_write: now })
        .collect();
    let mut buf = [0u8; 4096];
    // Reconnects are paid from a bucket refilled at RECONNECTS_PER_S and holding at most 20 ms
    // worth, so replacements come smoothly rather than in a burst each sweep; the first pass,
    // which makes every connection, is not limited.
    let mut first_pass = true;
    let (mut tokens, mut refilled) = (0.0_f64, Instant::now());
    let (mut refused, mut connect_failures) = (0, 0);
    while !stop.load(Ordering::SeqCst) {
        let sweep = Instant::now();
        let in_window = window.load(Ordering::SeqCst);
        if refresh.load(Ordering::SeqCst) {
            for slot in slots.iter_mut().filter(|s| !s.slow && s.state == State::Open) {
                let sent = slot.stream.as_ref().is_some_and(|mut s| s.write_all(request).is_ok());
                slot.state = if sent { State::Asked } else { State::Closed };
            }
            refresh.store(false, Ordering::SeqCst);
        }
        let mut reconnects = 0;
        let mut busy = Duration::ZERO;
        let mut chunk = Instant::now();
        for (i, slot) in slots.iter_mut().enumerate() {
            // After the first pass, a sweep is spread out in small pieces, so the harness's own
            // work does not come in one burst that stalls the legitimate client beside it.
            if !first_pass && i > 0 && i % SWEEP_CHUNK == 0 {
                busy += chunk.elapsed();
                std::thread::sleep(CHUNK_PAUSE);
                chunk = Instant::now();
            }
            // What the server sent or did since the last sweep.
            if let Some(stream) = &slot.stream {
                let mut reader = stream;
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) => {
                            slot.state = State::Closed;
                            break;
                        }
                        Ok(n) => {
                            if slot.state == State::Asked {
                                let status = buf[..n].get(9..12).and_then(|s| std::str::from_utf8(s).ok());
                                if status == Some("200") {
                                    slot.state = State::Open;
                                } else {
                                    refused += usize::from(status == Some("503"));
                                    slot.state = State::Closed;
                                }
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => {
                            slot.state = State::Closed;
                            break;
                        }
                    }
                }
            }
            if slot.slow && slot.state == State::Open && slot.last_write.elapsed() >= SLOW_EVERY {
                let wrote = slot.stream.as_ref().is_some_and(|mut s| s.write(b"a").is_ok_and(|n| n == 1));
                slot.last_write = Instant::now();
                if !wrote {
                    slot.state = State::Closed;
                }
            }
            if slot.state == State::Closed {
                slot.stream = None;
                if !first_pass {
                    tokens =
                        (tokens + refilled.elapsed().as_secs_f64() * RECONNECTS_PER_S).min(RECONNECTS_PER_S * 0.02);
                    refilled = Instant::now();
                    if tokens < 1.0 {
                        continue;
                    }
                    tokens -= 1.0;
                }
                reconnects += 1;
                let Ok(mut stream) = TcpStream::connect_timeout(&addr, connect_timeout) else {
                    connect_failures += 1;
                    continue;
                };
                let first: &[u8] = if slot.slow { SLOW_HEAD } else { request };
                if stream.write_all(first).is_err() || stream.set_nonblocking(true).is_err() {
                    continue;
                }
                slot.state = if slot.slow { State::Open } else { State::Asked };
                slot.last_write = Instant::now();
                slot.stream = Some(stream);
            }
        }
        first_pass = false;
        let open = |slow: bool| slots.iter().filter(|s| s.slow == slow && s.state == State::Open).count();
        let (idle_open, slow_open) = (open(false), open(true));
        let asked = slots.iter().any(|s| s.state == State::Asked);
        {
            let mut c = count.lock().unwrap_or_else(|p| p.into_inner());
            (c.idle_open, c.slow_open, c.refused, c.connect_failures) =
                (idle_open, slow_open, refused, connect_failures);
            if in_window {
                c.idle_min = c.idle_min.min(idle_open);
                c.idle_max = c.idle_max.max(idle_open);
                c.slow_min = c.slow_min.min(slow_open);
                c.slow_max = c.slow_max.max(slow_open);
                c.reconnects += reconnects;
                c.sweeps += 1;
                c.sweep_busy += busy + chunk.elapsed();
            }
        }
        // Answers still to be read: look again soon; else at the sweep's pace.
        let pause = if asked { Duration::from_millis(20) } else { SWEEP_EVERY };
        std::thread::sleep(pause.saturating_sub(sweep.elapsed()));
    }
}

/// The legitimate client with nothing else open, then with the crowd open.
#[derive(Clone)]
pub struct CrowdRow {
    pub quiet: Legit,
    pub crowded: Legit,
    /// The control: the legitimate client on this server while the crowd is open on another
    /// process, and how many were open then.
    pub control: Option<(Legit, CrowdCount)>,
    /// The server's CPU time per second of each window, ms/s (1000 is one core's worth).
    pub quiet_cpu: f64,
    pub crowd_cpu: f64,
    /// The server's peak resident memory with the crowd open.
    pub rss_kib: Option<u64>,
    pub count: CrowdCount,
    /// How long the crowd took to be complete (or until the fill gave up).
    pub fill: Duration,
    pub wanted_idle: usize,
    /// Idle connections opened beyond the wanted ones.
    pub spare: usize,
    pub wanted_slow: usize,
    pub max_connections: Option<u64>,
}

/// With `control`, the legitimate client is measured once more while the same crowd is open on a
/// second server process instead: what the crowd costs the harness and the machine, apart from
/// what it costs the server that holds it.
fn crowd_row(bin: &Binary, w: &World, k: &Knobs, control: bool) -> CrowdRow {
    // Idle connections close after 15 s without a request and are replaced at once, but not in
    // the same instant: a few spare ones keep the count at or above the wanted one meanwhile.
    let spare = k.idle / 20;
    let limit = (k.idle + spare + k.slow + 1_000).to_string();
    let env = crate::with(&w.jwt, &[("TOKENBRIDGE_HTTP_MAX_CONNECTIONS", &limit)]);
    let server = Server::start(bin, &env);
    let request = forward_auth(&w.jwt_token());
    let mut warm = None;
    assert!(exchange(&mut warm, &server.addr, &request, k.timeout).is_ok(), "{}: the first request failed", bin.label);
    drop(warm);
    let pid = server.child.id();
    let (before, started) = (usage(pid), Instant::now());
    let quiet = legit(&server.addr, &request, k, k.quiet);
    let quiet_cpu = cpu_share(before, usage(pid), started.elapsed());
    let started = Instant::now();
    let crowd = Crowd::start(server.addr, request.clone(), k.idle + spare, k.slow, k.timeout);
    let filled = crowd.wait_complete(k.idle, k.slow, Duration::from_secs(15));
    let fill = started.elapsed();
    eprintln!(
        "bench:   {}: crowd of {} idle + {} slow open after {:.1} s; measuring for {:.1} s",
        bin.label,
        filled.idle_open,
        filled.slow_open,
        fill.as_secs_f64(),
        k.crowd.as_secs_f64()
    );
    crowd.refresh(k.idle, k.slow, Duration::from_secs(5));
    crowd.begin_window();
    let (before, started) = (usage(pid), Instant::now());
    let crowded = legit(&server.addr, &request, k, k.crowd);
    let crowd_cpu = cpu_share(before, usage(pid), started.elapsed());
    let rss_kib = crate::clients::peak_rss_kib(pid);
    let count = crowd.end();
    let control = control.then(|| {
        let other = Server::start(bin, &env);
        let crowd = Crowd::start(other.addr, request.clone(), k.idle + spare, k.slow, k.timeout);
        crowd.wait_complete(k.idle, k.slow, Duration::from_secs(15));
        crowd.refresh(k.idle, k.slow, Duration::from_secs(5));
        crowd.begin_window();
        let beside = legit(&server.addr, &request, k, k.crowd);
        let count = crowd.end();
        (beside, count)
    });
    CrowdRow {
        quiet,
        crowded,
        control,
        quiet_cpu,
        crowd_cpu,
        rss_kib,
        count,
        fill,
        wanted_idle: k.idle,
        spare,
        wanted_slow: k.slow,
        max_connections: server.max_connections,
    }
}

// ---------------------------------------------------------------------------------------------
// The connection limit.

#[derive(Clone)]
pub struct LimitRow {
    pub limit: usize,
    /// Of the `limit - 1` idle connections opened first: answered 200, and still open when the
    /// legitimate request was sent.
    pub idle_asked: usize,
    pub idle_ok: usize,
    pub idle_errors: Errors,
    pub idle_still_open: usize,
    /// The legitimate request on the `limit`-th connection.
    pub legit_ok: bool,
    pub legit_error: Errors,
    /// Connections past the limit: how many got a 503, and how many something else.
    pub over_asked: usize,
    pub over_503: usize,
    pub over_other: Errors,
    /// The first idle connection (1-based) that did not get a 200.
    pub first_refused: Option<usize>,
}

/// A connection (kept when its request was answered with a 200) and how its request fared.
type Asked = (Option<BufReader<TcpStream>>, Result<(), Fail>);

/// Opens `n` connections, sends each the request at once, then reads every answer: a batch
/// costs one timeout at most, not one per connection. Returns the connections with their results.
fn batch(addr: &SocketAddr, request: &[u8], n: usize, timeout: Duration) -> Vec<Asked> {
    let mut opened: Vec<Asked> = (0..n)
        .map(|_| match connect(addr, timeout) {
            Ok(mut c) => match c.get_mut().write_all(request) {
                Ok(()) => (Some(c), Ok(())),
                Err(e) => (None, Err(classify(&e))),
            },
            Err(f) => (None, Err(f)),
        })
        .collect();
    for (connection, result) in &mut opened {
        if let (Some(c), Ok(())) = (connection.as_mut(), &result) {
            *result = match read_reply(c) {
                Ok((200, _)) => Ok(()),
                Ok((status, _)) => Err(Fail::Status(status)),
                Err(e) => Err(classify(&e)),
            };
        }
        if result.is_err() {
            *connection = None;
        }
    }
    opened
}

/// Whether the server has closed `c` (a read would say end of file or fail), without waiting.
fn still_open(c: &BufReader<TcpStream>) -> bool {
    let stream = c.get_ref();
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    let open = matches!(stream.peek(&mut byte), Err(ref e) if e.kind() == ErrorKind::WouldBlock);
    let _ = stream.set_nonblocking(false);
    open
}

fn limit_row(bin: &Binary, w: &World, k: &Knobs) -> LimitRow {
    let limit = k.limit.to_string();
    let server = Server::start(bin, &crate::with(&w.jwt, &[("TOKENBRIDGE_HTTP_MAX_CONNECTIONS", &limit)]));
    let request = forward_auth(&w.jwt_token());
    let idle_asked = k.limit - 1;
    let (mut idle, mut idle_errors, mut first_refused) = (Vec::new(), Errors::default(), None);
    let mut i = 0;
    while i < idle_asked {
        let n = (idle_asked - i).min(64);
        for (connection, result) in batch(&server.addr, &request, n, k.timeout) {
            i += 1;
            match result {
                Ok(()) => idle.extend(connection),
                Err(fail) => {
                    idle_errors.count(&fail);
                    first_refused.get_or_insert(i);
                }
            }
        }
    }
    let idle_ok = idle.len();
    let idle_still_open = idle.iter().filter(|c| still_open(c)).count();
    let mut legit = None;
    let mut legit_error = Errors::default();
    let legit_ok = match exchange(&mut legit, &server.addr, &request, k.timeout) {
        Ok(()) => true,
        Err(fail) => {
            legit_error.count(&fail);
            false
        }
    };
    let over_asked = 8;
    let (mut over_503, mut over_other) = (0, Errors::default());
    for (_, result) in batch(&server.addr, &request, over_asked, k.timeout) {
        match result {
            Err(Fail::Status(503)) => over_503 += 1,
            Ok(()) => over_other.status += 1,
            Err(fail) => over_other.count(&fail),
        }
    }
    drop((idle, legit));
    LimitRow {
        limit: k.limit,
        idle_asked,
        idle_ok,
        idle_errors,
        idle_still_open,
        legit_ok,
        legit_error,
        over_asked,
        over_503,
        over_other,
        first_refused,
    }
}

// ---------------------------------------------------------------------------------------------
// The OCI Fn socket.

fn oci_cold_and_warm(bins: &[Binary], w: &World, k: &Knobs) -> Vec<(Summary, Summary, Cost)> {
    let deadline = far_deadline();
    // Cold starts interleaved, so both binaries see the same machine.
    let mut ready: Vec<Vec<Duration>> = vec![Vec::new(); bins.len()];
    for _ in 0..k.runs {
        for (i, bin) in bins.iter().enumerate() {
            let mut oci = Oci::start_with(&bin.path, &w.opaque, None);
            ready[i].push(oci.ready);
            let (status, _) = oci.send(&oci_call(b"{\"type\":\"TOKEN\"}", &deadline));
            assert_eq!(status, 200, "{}: the first /call", bin.label);
        }
    }
    // Cached `/call`s in interleaved blocks, one process per binary.
    let call = oci_call(token_payload(&w.opaque_token()).as_bytes(), &deadline);
    let mut procs: Vec<Oci> = bins.iter().map(|b| Oci::start_with(&b.path, &w.opaque, None)).collect();
    for (oci, bin) in procs.iter_mut().zip(bins) {
        let (status, body) = oci.send(&call);
        assert!(crate::allowed(status, &body), "{}: the token was not allowed", bin.label);
    }
    let mut hits: Vec<Vec<Duration>> = vec![Vec::with_capacity(k.oci); bins.len()];
    let block = 500.min(k.oci);
    let before: Vec<Usage> = procs.iter().map(|p| usage(p.pid())).collect();
    while hits[0].len() < k.oci {
        for (oci, samples) in procs.iter_mut().zip(&mut hits) {
            for _ in 0..block.min(k.oci - samples.len()) {
                let t = Instant::now();
                let (status, _) = oci.send(&call);
                samples.push(t.elapsed());
                assert_eq!(status, 200);
            }
        }
    }
    let costs: Vec<Cost> =
        procs.iter().zip(before).zip(&hits).map(|((p, b), h)| Cost::between(b, usage(p.pid()), h.len())).collect();
    ready.iter().zip(&hits).zip(costs).map(|((r, h), c)| (summarize(r), summarize(h), c)).collect()
}

// ---------------------------------------------------------------------------------------------
// The measurements of one binary, and of the run.

#[derive(Clone)]
pub struct Side {
    pub bin: String,
    pub rates: Vec<Rate>,
    pub limit: LimitRow,
    pub crowd: Option<CrowdRow>,
    pub oci_ready: Summary,
    pub oci_call: Summary,
    /// The OCI process's cost per cached `/call`.
    pub oci_cost: Cost,
    pub size: Option<u64>,
}

pub struct Serving {
    pub new: Side,
    pub old: Option<Side>,
    /// Why there is no baseline, or why the crowd was not measured.
    pub notes: Vec<String>,
    pub crowd_ms: u64,
    pub rate: usize,
    pub window_ms: u64,
    pub timeout_ms: u64,
}

/// Open files the harness may hold (the soft limit, from /proc).
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    limits.lines().find(|l| l.starts_with("Max open files"))?.split_whitespace().nth(3)?.parse().ok()
}

/// Measures the new binary and, when there is one, the baseline. One call from main().
pub fn run(w: &World) -> Serving {
    let k = Knobs::read();
    let new = Binary { label: "new".into(), path: binary() };
    let old = baseline();
    let mut notes = Vec::new();
    if old.is_none() {
        notes.push(
            "no baseline binary (`BENCH_BASELINE=none`, or the bench was run without scripts/bench): the new \
             binary is measured alone and the \"no worse than today's\" targets are not judged"
                .into(),
        );
    }
    let bins: Vec<Binary> = std::iter::once(new.clone()).chain(old.clone()).collect();
    let token = w.jwt_token();

    eprintln!("bench: serving: throughput at {:?} connections, kept alive and not", k.conns);
    let servers: Vec<Server> = bins.iter().map(|b| Server::start(b, &w.jwt)).collect();
    let mut rates: Vec<Vec<Rate>> = vec![Vec::new(); bins.len()];
    for kept_alive in [true, false] {
        for &n in &k.conns {
            for ((server, bin), out) in servers.iter().zip(&bins).zip(&mut rates) {
                let rate = throughput(server, &token, n, kept_alive, &k);
                eprintln!(
                    "bench:   {} {n} {}: {:.0} /s, errors {}",
                    bin.label,
                    if kept_alive { "kept alive" } else { "new connections" },
                    rate.per_s,
                    rate.errors.text()
                );
                out.push(rate);
            }
        }
    }
    drop(servers);

    eprintln!("bench: serving: a connection limit of {}", k.limit);
    let limits: Vec<LimitRow> = bins.iter().map(|b| limit_row(b, w, &k)).collect();

    let needed = k.idle + k.idle / 20 + k.slow + 200;
    let crowds: Vec<Option<CrowdRow>> = match open_files_limit() {
        Some(have) if have < needed => {
            notes.push(format!(
                "the crowd was not measured: the open-files limit is {have}, it needs {needed} (scripts/bench raises \
                 the soft limit to the hard one)"
            ));
            bins.iter().map(|_| None).collect()
        }
        _ => bins
            .iter()
            .enumerate()
            .map(|(i, b)| {
                eprintln!("bench: serving: {}: {} idle + {} slowloris connections", b.label, k.idle, k.slow);
                // The control only for the new binary: the old one cannot hold the crowd anyway.
                Some(crowd_row(b, w, &k, i == 0))
            })
            .collect(),
    };

    eprintln!("bench: serving: OCI cold start and cached /call");
    let oci = oci_cold_and_warm(&bins, w, &k);
    let size = |p: &Path| std::fs::metadata(p).ok().map(|m| m.len());
    let mut sides: Vec<Side> = bins
        .iter()
        .zip(rates)
        .zip(limits)
        .zip(crowds)
        .zip(oci)
        .map(|((((bin, rates), limit), crowd), (ready, call, oci_cost))| Side {
            bin: bin.label.clone(),
            rates,
            limit,
            crowd,
            oci_ready: ready,
            oci_call: call,
            oci_cost,
            size: size(&bin.path),
        })
        .collect();
    let old = (sides.len() > 1).then(|| sides.remove(1));
    Serving {
        new: sides.remove(0),
        old,
        notes,
        crowd_ms: k.crowd.as_millis() as u64,
        rate: k.rate,
        window_ms: k.window.as_millis() as u64,
        timeout_ms: k.timeout.as_millis() as u64,
    }
}

// ---------------------------------------------------------------------------------------------
// Targets and report.

fn ms(us: f64) -> String {
    format!("{:.2}", us / 1000.0)
}

fn crowd_text(c: &CrowdRow) -> String {
    format!(
        "quiet p99 {} ms, crowded p99 {} ms ({:.2}×); {}–{} idle + {}–{} slow open; legitimate errors {}",
        ms(c.quiet.summary.p99),
        ms(c.crowded.summary.p99),
        c.crowded.summary.p99 / c.quiet.summary.p99,
        c.count.idle_min,
        c.count.idle_max,
        c.count.slow_min,
        c.count.slow_max,
        c.crowded.errors.text()
    )
}

impl LimitRow {
    /// Requests answered otherwise than the limit promises: a non-200 before it, a non-503 past it.
    fn wrong(&self) -> usize {
        (self.idle_asked - self.idle_ok) + usize::from(!self.legit_ok) + (self.over_asked - self.over_503)
    }
    fn text(&self) -> String {
        format!(
            "{}/{} idle answered 200 ({} still open), the {}th connection {}, {}/{} past it got 503",
            self.idle_ok,
            self.idle_asked,
            self.idle_still_open,
            self.limit,
            if self.legit_ok { "answered 200".to_string() } else { format!("failed: {}", self.legit_error.text()) },
            self.over_503,
            self.over_asked
        )
    }
}

impl Serving {
    fn rate(side: &Side, n: usize, kept_alive: bool) -> Option<&Rate> {
        side.rates.iter().find(|r| r.connections == n && r.kept_alive == kept_alive)
    }

    pub fn targets(&self) -> Vec<Target> {
        let (new, old) = (&self.new, self.old.as_ref());
        let beside = |text: String, old_text: Option<String>| match old_text {
            Some(o) => format!("new: {text}; {}: {o}", old.map_or("old", |s| s.bin.as_str())),
            None => text,
        };
        let mut t = Vec::new();

        let mut crowd = Target::new(
            "serve_crowd_p99",
            "HTTP, cached JWT: a legitimate client's p99 with 10,000 idle + 1,000 slowloris connections open, vs none open",
            "≤ 2×",
            2.0,
            Better::Less,
        );
        if let Some(c) = &new.crowd {
            crowd = crowd.measured(
                Some(c.crowded.summary.p99 / c.quiet.summary.p99),
                Some(beside(crowd_text(c), old.and_then(|o| o.crowd.as_ref()).map(crowd_text))),
            );
            if c.count.idle_min < 10_000 || c.count.slow_min < 1_000 {
                crowd.undersized = Some(format!(
                    "{} idle and {} slow connections at least during the window",
                    c.count.idle_min, c.count.slow_min
                ));
            }
        }
        let crowd = crowd.because(|| {
            let c = new.crowd.as_ref()?;
            let (q, x) = (&c.quiet.summary, &c.crowded.summary);
            Some(format!(
                "with the crowd open the legitimate client's p50 went from {} to {} ms, p90 from {} to {} ms, the slowest \
                 request from {} to {} ms; the server used {:.0} ms of CPU a second with the crowd open and {:.0} \
                 without it (decisions for the legitimate client included); the harness's own thread keeping the \
                 crowd (every socket looked at in {} sweeps, a byte to each slowloris connection every {} s) was busy \
                 {:.1} ms a sweep, on the same {} cores{}",
                ms(q.p50),
                ms(x.p50),
                ms(q.p90),
                ms(x.p90),
                ms(q.max),
                ms(x.max),
                c.crowd_cpu,
                c.quiet_cpu,
                c.count.sweeps,
                SLOW_EVERY.as_secs(),
                c.count.sweep_busy.as_secs_f64() * 1000.0 / c.count.sweeps.max(1) as f64,
                std::thread::available_parallelism().map_or(1, |n| n.get()),
                c.control.as_ref().map_or(String::new(), |(b, _)| format!(
                    "; with the same crowd open on another server process instead (the control), this server's p99 \
                     was {} ms ({:.2}× the quiet p99): that much of the rise is the harness and the machine, not \
                     the server holding the crowd",
                    ms(b.summary.p99),
                    b.summary.p99 / q.p99
                ))
            ))
        });
        let crowd_undersized = crowd.undersized.clone();
        t.push(crowd);

        let mut errors = Target::new(
            "serve_crowd_errors",
            "HTTP: the legitimate client's failed requests while the crowd is open",
            "0",
            0.0,
            Better::Less,
        );
        errors.undersized = crowd_undersized;
        if let Some(c) = &new.crowd {
            let old_text = old.and_then(|o| o.crowd.as_ref()).map(|o| o.crowded.errors.text());
            errors = errors.measured(
                Some(c.crowded.errors.total() as f64),
                Some(beside(format!("{} of {}", c.crowded.errors.text(), c.crowded.summary.n), old_text)),
            );
        }
        t.push(errors);

        t.push(
            Target::new(
                "serve_limit",
                "HTTP: no 503 until the configured connection limit, a 503 past it (answers otherwise)",
                "0",
                0.0,
                Better::Less,
            )
            .measured(
                Some(new.limit.wrong() as f64),
                Some(beside(
                    new.limit.text(),
                    old.map(|o| {
                        let first = o.limit.first_refused.map_or("none".into(), |i| format!("connection {i}"));
                        format!("{} (no such setting; first refusal: {first})", o.limit.text())
                    }),
                )),
            ),
        );

        for (key, what, n) in [
            ("serve_256_errors", "HTTP: 256 concurrent clients, failed requests (kept alive + new connections)", 256),
            (
                "serve_1024_errors",
                "HTTP: 1,024 concurrent clients, failed requests (kept alive + new connections)",
                1024,
            ),
        ] {
            let errors = |side: &Side| -> Option<(usize, String)> {
                let (a, b) = (Self::rate(side, n, true)?, Self::rate(side, n, false)?);
                Some((
                    a.errors.total() + b.errors.total(),
                    format!(
                        "{} of {} kept alive, {} of {} new",
                        a.errors.text(),
                        a.ok + a.errors.total(),
                        b.errors.text(),
                        b.ok + b.errors.total()
                    ),
                ))
            };
            let mine = errors(new);
            t.push(Target::new(key, what, "0", 0.0, Better::Less).measured(
                mine.as_ref().map(|(n, _)| *n as f64),
                mine.map(|(_, text)| beside(text, old.and_then(errors).map(|(_, o)| o))),
            ));
        }

        let vs_old = |key: &'static str,
                      what: &'static str,
                      goal: &str,
                      value: fn(&Side) -> Option<f64>,
                      text: fn(f64) -> String| {
            let pair = old.and_then(|o| Some((value(new)?, value(o)?)));
            Target::new(key, what, goal, 1.0, Better::Less).measured(
                pair.map(|(n, o)| n / o),
                pair.map(|(n, o)| format!("new {}, old {} ({:.2}×)", text(n), text(o), n / o)),
            )
        };
        t.push(vs_old(
            "serve_oci_ready_vs_old",
            "OCI cold start (exec → socket published), median, vs the old binary",
            "≤ 1× (no worse)",
            |s| Some(s.oci_ready.p50),
            |v| format!("{} ms", ms(v)),
        )
        .because(|| {
            let o = old?;
            Some(format!(
                "fastest of {} runs: new {} ms, old {} ms; p10 – p90 new {} – {} ms, old {} – {} ms (exec to the socket's \
                 symlink; the serving layer starts after it)",
                new.oci_ready.n,
                ms(new.oci_ready.min),
                ms(o.oci_ready.min),
                ms(new.oci_ready.p10),
                ms(new.oci_ready.p90),
                ms(o.oci_ready.p10),
                ms(o.oci_ready.p90)
            ))
        }));
        t.push(
            vs_old(
                "serve_oci_call_vs_old",
                "OCI cached `/call` p50 vs the old binary",
                "≤ 1× (no worse)",
                |s| Some(s.oci_call.p50),
                |v| format!("{v:.1} µs"),
            )
            .because(|| {
                let o = old?;
                Some(format!(
                    "per cached `/call` the new process spends {}, the old {}: a cached decision is answered on the \
                 connection's one I/O thread, but that thread parks in the runtime between calls (epoll and a \
                 wake-up per call) where the old one blocked in read",
                    new.oci_cost.text(),
                    o.oci_cost.text()
                ))
            }),
        );
        t.push(vs_old(
            "serve_size_vs_old",
            "release binary size vs the old binary",
            "≤ 1× (no larger)",
            |s| s.size.map(|b| b as f64),
            |v| format!("{v:.0} bytes"),
        ));
        t
    }

    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let mut line = |s: String| {
            o.push_str(&s);
            o.push('\n');
        };
        let sides: Vec<&Side> = std::iter::once(&self.new).chain(&self.old).collect();
        line("## Serving layer: the old binary beside the new (issue 12)".into());
        line(String::new());
        line(format!(
            "`tokenbridge http` with one cached JWT (`GET /auth` as nginx or Traefik sends it) and the OCI Fn socket, \
             the binaries {} measured in this run. Every request has a {} ms timeout; failures are counted by kind.",
            sides.iter().map(|s| s.bin.as_str()).collect::<Vec<_>>().join(" and "),
            self.timeout_ms
        ));
        for n in &self.notes {
            line(String::new());
            line(format!("Note: {n}."));
        }
        line(String::new());
        line(format!(
            "### Throughput (decisions per second, {} ms per point; p50/p99 of the answered requests in ms)",
            self.window_ms
        ));
        line(String::new());
        line(
            "Each cell: decisions/s (p50 / p99 ms), then the server's CPU time and context switches per answered \
             request (all its threads, from /proc), then the failed requests."
                .into(),
        );
        line(String::new());
        let mut head = "| connections | connection per request? |".to_string();
        let mut rule = "|---|---|".to_string();
        for s in &sides {
            head.push_str(&format!(" {} | {} cost | {} errors |", s.bin, s.bin, s.bin));
            rule.push_str("---|---|---|");
        }
        line(head);
        line(rule);
        for r in &self.new.rates {
            let mut row =
                format!("| {} | {} |", r.connections, if r.kept_alive { "no, kept alive" } else { "yes, new each" });
            for s in &sides {
                match Self::rate(s, r.connections, r.kept_alive) {
                    Some(x) => row.push_str(&format!(
                        " {:.0} ({} / {}) | {} | {} |",
                        x.per_s,
                        ms(x.summary.p50),
                        ms(x.summary.p99),
                        x.cost.text(),
                        x.errors.text()
                    )),
                    None => row.push_str(" n/a | | |"),
                }
            }
            line(row);
        }
        line(String::new());
        line(format!(
            "### A legitimate client beside idle and slowloris connections ({} requests/s on one kept-alive connection; \
             ms)",
            self.rate
        ));
        line(String::new());
        line(
            "Each request is timed from when it was due (at the rate above), not from when the client could \
             send it, so a stall counts for every request it held back. \"Open\" is what the client sees: not closed by the server (a connection the old server has not \
             accepted yet, waiting in the kernel's backlog, counts too). Server CPU: its threads' CPU time per \
             second of the window."
                .into(),
        );
        line(String::new());
        line(
            "| binary | crowd | open during the window (min–max) | n | p50 | p99 | max | errors | server CPU ms/s |"
                .into(),
        );
        line("|---|---|---|---|---|---|---|---|---|".into());
        for s in &sides {
            match &s.crowd {
                Some(c) => {
                    line(format!(
                        "| {} | none | | {} | {} | {} | {} | {} | {:.0} |",
                        s.bin,
                        c.quiet.summary.n,
                        ms(c.quiet.summary.p50),
                        ms(c.quiet.summary.p99),
                        ms(c.quiet.summary.max),
                        c.quiet.errors.text(),
                        c.quiet_cpu
                    ));
                    line(format!(
                        "| {} | {} idle (+{} spare) + {} slowloris wanted | {}–{} idle, {}–{} slow; {} reconnects, {} idle refused with 503, {} failed connects; filled in {:.1} s; server peak memory {} | {} | {} | {} | {} | {} | {:.0} |",
                        s.bin,
                        c.wanted_idle,
                        c.spare,
                        c.wanted_slow,
                        c.count.idle_min,
                        c.count.idle_max,
                        c.count.slow_min,
                        c.count.slow_max,
                        c.count.reconnects,
                        c.count.refused,
                        c.count.connect_failures,
                        c.fill.as_secs_f64(),
                        c.rss_kib.map_or("n/a".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0)),
                        c.crowded.summary.n,
                        ms(c.crowded.summary.p50),
                        ms(c.crowded.summary.p99),
                        ms(c.crowded.summary.max),
                        c.crowded.errors.text(),
                        c.crowd_cpu
                    ));
                    if let Some((b, n)) = &c.control {
                        line(format!(
                            "| {} | control: the same crowd open on another `tokenbridge http` process | {}–{} idle, \
                             {}–{} slow | {} | {} | {} | {} | {} | |",
                            s.bin,
                            n.idle_min,
                            n.idle_max,
                            n.slow_min,
                            n.slow_max,
                            b.summary.n,
                            ms(b.summary.p50),
                            ms(b.summary.p99),
                            ms(b.summary.max),
                            b.errors.text()
                        ));
                    }
                }
                None => line(format!("| {} | not measured | | | | | | | |", s.bin)),
            }
        }
        line(String::new());
        line("### A configured connection limit".into());
        line(String::new());
        line("| binary | limit | result |".into());
        line("|---|---|---|".into());
        for s in &sides {
            let first = s.limit.first_refused.map_or("none".into(), |i| format!("connection {i}"));
            line(format!(
                "| {} | {} | {}; first idle connection refused: {first} |",
                s.bin,
                s.limit.limit,
                s.limit.text()
            ));
        }
        line(String::new());
        line("### OCI Fn socket and binary size".into());
        line(String::new());
        line(
            "| binary | exec → socket published, median (min, p10 – p90) ms | cached `/call` p50 (p99) µs | its cost in \
             the process per `/call` | release binary bytes |"
                .into(),
        );
        line("|---|---|---|---|---|".into());
        for s in &sides {
            line(format!(
                "| {} | {} ({}, {} – {}) | {:.1} ({:.1}) | {} | {} |",
                s.bin,
                ms(s.oci_ready.p50),
                ms(s.oci_ready.min),
                ms(s.oci_ready.p10),
                ms(s.oci_ready.p90),
                s.oci_call.p50,
                s.oci_call.p99,
                s.oci_cost.text(),
                s.size.map_or("n/a".into(), |b| b.to_string())
            ));
        }
        line(String::new());
        o
    }

    pub fn json(&self) -> Value {
        let side = |s: &Side| {
            json!({
                "binary": s.bin,
                "throughput": s.rates.iter().map(|r| json!({
                    "connections": r.connections, "kept_alive": r.kept_alive, "per_s": crate::stats::r(r.per_s),
                    "ok": r.ok, "errors": r.errors.json(), "latency_us": r.summary.json(), "cost": r.cost.json()
                })).collect::<Vec<_>>(),
                "limit": {
                    "limit": s.limit.limit, "idle_asked": s.limit.idle_asked, "idle_ok": s.limit.idle_ok,
                    "idle_errors": s.limit.idle_errors.json(), "idle_still_open": s.limit.idle_still_open,
                    "legit_ok": s.limit.legit_ok, "over_asked": s.limit.over_asked, "over_503": s.limit.over_503,
                    "over_other": s.limit.over_other.json(), "first_refused": s.limit.first_refused
                },
                "crowd": s.crowd.as_ref().map(|c| json!({
                    "wanted_idle": c.wanted_idle, "spare_idle": c.spare, "wanted_slow": c.wanted_slow,
                    "max_connections": c.max_connections,
                    "fill_s": crate::stats::r(c.fill.as_secs_f64()),
                    "idle_open_min": c.count.idle_min, "idle_open_max": c.count.idle_max,
                    "slow_open_min": c.count.slow_min, "slow_open_max": c.count.slow_max,
                    "reconnects": c.count.reconnects, "idle_refused_503": c.count.refused,
                    "connect_failures": c.count.connect_failures, "sweeps": c.count.sweeps,
                    "server_peak_rss_kib": c.rss_kib,
                    "sweep_busy_ms": crate::stats::r(c.count.sweep_busy.as_secs_f64() * 1000.0),
                    "server_cpu_ms_per_s_quiet": crate::stats::r(c.quiet_cpu),
                    "server_cpu_ms_per_s_crowded": crate::stats::r(c.crowd_cpu),
                    "quiet_us": c.quiet.summary.json(), "quiet_errors": c.quiet.errors.json(),
                    "crowded_us": c.crowded.summary.json(), "crowded_errors": c.crowded.errors.json(),
                    "control_us": c.control.as_ref().map(|(b, _)| b.summary.json()),
                    "control_errors": c.control.as_ref().map(|(b, _)| b.errors.json()),
                    "control_idle_open_min": c.control.as_ref().map(|(_, n)| n.idle_min),
                    "control_slow_open_min": c.control.as_ref().map(|(_, n)| n.slow_min)
                })),
                "oci_ready_us": s.oci_ready.json(),
                "oci_call_us": s.oci_call.json(),
                "oci_call_cost": s.oci_cost.json(),
                "binary_bytes": s.size
            })
        };
        json!({
            "new": side(&self.new),
            "old": self.old.as_ref().map(side),
            "notes": self.notes,
            "legit_rate_per_s": self.rate, "crowd_window_ms": self.crowd_ms,
            "throughput_window_ms": self.window_ms, "request_timeout_ms": self.timeout_ms
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit_row(idle_ok: usize, legit_ok: bool, over_503: usize) -> LimitRow {
        LimitRow {
            limit: 512,
            idle_asked: 511,
            idle_ok,
            idle_errors: Errors::default(),
            idle_still_open: idle_ok,
            legit_ok,
            legit_error: Errors::default(),
            over_asked: 8,
            over_503,
            over_other: Errors::default(),
            first_refused: None,
        }
    }

    #[test]
    fn the_limit_row_counts_a_refusal_before_the_limit_and_an_answer_past_it_as_wrong() {
        assert_eq!(limit_row(511, true, 8).wrong(), 0);
        assert_eq!(limit_row(510, true, 8).wrong(), 1);
        assert_eq!(limit_row(511, false, 8).wrong(), 1);
        assert_eq!(limit_row(511, true, 6).wrong(), 2);
    }

    #[test]
    fn failures_are_counted_by_kind_and_named_in_the_text() {
        let mut e = Errors::default();
        assert_eq!(e.text(), "0");
        for fail in [Fail::Timeout, Fail::Status(503), Fail::Status(503), Fail::Status(500), Fail::Closed] {
            e.count(&fail);
        }
        assert_eq!(e.total(), 5);
        assert_eq!(e.text(), "5 (1 timed out, 2 503, 1 other status, 1 closed or refused)");
    }
}
