//! The benchmark's own clients: processes started with a fast readiness poll, a kept-alive
//! client for the OCI socket and for HTTP, and a direct client of the fake IdP (the floor).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use tokenbridge_tests::binary;
use tokenbridge_tests::fn_agent::{Framing, request_bytes};

/// Starts the binary with `args` and exactly `env`; stdin and stdout piped, the decision log
/// (stderr) to /dev/null. With `cpu`, pinned to that CPU by `taskset` (which execs the binary,
/// so the pid is the binary's).
pub fn spawn(args: &[&str], env: &[(String, String)], cpu: Option<usize>) -> Child {
    spawn_logging(&binary(), args, env, cpu, None)
}

/// `spawn` of the binary at `bin`, with the decision log written to `log` when given.
fn spawn_logging(bin: &Path, args: &[&str], env: &[(String, String)], cpu: Option<usize>, log: Option<&Path>) -> Child {
    let stderr = match log {
        Some(path) => Stdio::from(std::fs::File::create(path).expect("create the decision log file")),
        None => Stdio::null(),
    };
    let mut command = match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    command
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start tokenbridge")
}

/// Peak resident set size of a live process, KiB (`VmHWM`).
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// Reads one HTTP/1.1 response with `Content-Length` (what every server here sends).
pub fn read_reply(input: &mut impl BufRead) -> std::io::Result<(u16, Vec<u8>)> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut line = String::new();
    input.read_line(&mut line)?;
    let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("status line"))?;
    let mut length = None;
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Err(bad("connection closed in the head"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().ok();
        }
    }
    let mut body = vec![0; length.ok_or_else(|| bad("no Content-Length"))?];
    input.read_exact(&mut body)?;
    Ok((status, body))
}

/// An `Fn-Deadline` an hour away (warm calls are never cut short by it).
pub fn far_deadline() -> String {
    (time::OffsetDateTime::now_utc() + Duration::from_secs(3600))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format deadline")
}

/// A `/call` as the Fn agent frames it, with `body`.
pub fn oci_call(body: &[u8], deadline: &str) -> Vec<u8> {
    request_bytes("POST", "/call", body, Framing::ContentLength, deadline)
}

/// `tokenbridge` as an OCI function: started with `FN_LISTENER`, connected once published.
pub struct Oci {
    child: Child,
    dir: PathBuf,
    connection: BufReader<UnixStream>,
    /// exec → socket published (polled every 50 µs).
    pub ready: Duration,
    pub started: Instant,
}

impl Oci {
    pub fn start(env: &[(String, String)]) -> Self {
        Self::start_logging(env, None)
    }

    /// `start`, with the decision log written to `log` when given.
    pub fn start_logging(env: &[(String, String)], log: Option<&Path>) -> Self {
        Self::start_with(&binary(), env, log)
    }

    /// `start_logging` of the binary at `bin` (the serving rows run a baseline beside it).
    pub fn start_with(bin: &Path, env: &[(String, String)], log: Option<&Path>) -> Self {
        static SERIAL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SERIAL.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("tb-bench-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("socket directory");
        let socket = dir.join("lsnr.sock");
        let mut env = env.to_vec();
        env.extend([
            ("FN_FORMAT".to_string(), "http-stream".to_string()),
            ("FN_LISTENER".to_string(), format!("unix:{}", socket.display())),
            ("FN_APP_NAME".to_string(), "bench".to_string()),
            ("FN_FN_NAME".to_string(), "authorizer".to_string()),
        ]);
        let started = Instant::now();
        let child = spawn_logging(bin, &[], &env, None, log);
        while std::fs::symlink_metadata(&socket).is_err() {
            assert!(started.elapsed() < Duration::from_secs(5), "no socket within 5 s");
            std::thread::sleep(Duration::from_micros(50));
        }
        let ready = started.elapsed();
        let stream = UnixStream::connect(&socket).expect("connect to the function socket");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
        Oci { child, dir, connection: BufReader::new(stream), ready, started }
    }

    /// Sends a framed request, reads the reply.
    pub fn send(&mut self, request: &[u8]) -> (u16, Vec<u8>) {
        self.connection.get_mut().write_all(request).expect("write /call");
        read_reply(&mut self.connection).expect("read the /call reply")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Oci {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A kept-alive HTTP/1.1 client on loopback.
pub struct Http {
    connection: BufReader<TcpStream>,
}

impl Http {
    pub fn connect(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).expect("connect to tokenbridge http");
        stream.set_nodelay(true).expect("nodelay");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
        Http { connection: BufReader::new(stream) }
    }

    pub fn send(&mut self, request: &[u8]) -> (u16, Vec<u8>) {
        self.connection.get_mut().write_all(request).expect("write request");
        read_reply(&mut self.connection).expect("read the reply")
    }
}

/// A forward-auth request as nginx or Traefik sends it.
pub fn forward_auth(token: &str) -> Vec<u8> {
    format!(
        "GET /auth HTTP/1.1\r\nHost: tokenbridge\r\nAuthorization: Bearer {token}\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Uri: /orders/1\r\n\r\n"
    )
    .into_bytes()
}

/// `application/x-www-form-urlencoded` encoding.
pub fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `client_secret_basic` as RFC 6749 §2.3.1 has it.
pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{}:{}", form_encode(id), form_encode(secret))))
}

/// A direct client of one fake IdP, over one kept-alive `ureq` agent (the HTTP client
/// tokenbridge itself uses): what one IdP round trip costs, with no decision around it.
pub struct IdpClient {
    agent: ureq::Agent,
    authorization: String,
}

impl IdpClient {
    pub fn new(client: (&str, &str)) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        IdpClient { agent, authorization: basic(client.0, client.1) }
    }

    /// POSTs a form, reads the whole answer; returns the status.
    pub fn post(&self, url: &str, form: &str) -> u16 {
        let mut answer = self
            .agent
            .post(url)
            .header("Authorization", &self.authorization)
            .content_type("application/x-www-form-urlencoded")
            .send(form)
            .expect("IdP round trip");
        let _ = answer.body_mut().read_to_vec();
        answer.status().as_u16()
    }
}

/// The medians of `idp_ms` and `duration_ms` over the decision log lines that called an IdP:
/// where tokenbridge itself says an uncached decision's time went, in microseconds.
pub fn logged_idp_split(log: &str) -> Option<(f64, f64)> {
    let (mut idp, mut total) = (Vec::new(), Vec::new());
    for line in log.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
        if let (Some(i), Some(d)) = (line["idp_ms"].as_f64(), line["duration_ms"].as_f64()) {
            idp.push(i * 1000.0);
            total.push(d * 1000.0);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    Some((median(idp)?, median(total)?))
}
