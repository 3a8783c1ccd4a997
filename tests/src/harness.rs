//! Runs the built `tokenbridge` binary the way a platform or a user would.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `tokenbridge` binary: `$TOKENBRIDGE_BIN`, else the one cargo built next to this test
/// (`scripts/test` builds it first).
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TOKENBRIDGE_BIN") {
        return PathBuf::from(path);
    }
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(build_binary).clone()
}

/// Builds `tokenbridge` (all adapters) into its own target directory, `target/harness`, so a
/// plain `cargo test` never runs a stale binary, and the build's feature set never fights the
/// test build's over shared dependencies (which would rebuild both, every time).
fn build_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/
    let target = exe.parent().and_then(|d| d.parent()).and_then(|d| d.parent()).expect("target directory");
    let dir = target.join("harness");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", "tokenbridge", "--bin", "tokenbridge"]).env("CARGO_TARGET_DIR", &dir);
    // Cargo describes the running test's package in these; build scripts (cc's, aws-lc-sys's) watch some of
    // them, so passing them on would rebuild aws-lc-sys and all above it for every test package.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_BIN_", "CARGO_CRATE_", "CARGO_PRIMARY_", "CARGO_TARGET_TMPDIR"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            build.env_remove(&*name);
        }
    }
    let status = build.status().expect("run cargo build");
    assert!(status.success(), "building tokenbridge failed");
    dir.join("debug").join("tokenbridge")
}

/// Starts the binary with `args` and exactly `env`, all three standard streams piped.
pub fn spawn(args: &[&str], env: &[(String, String)]) -> std::process::Child {
    Command::new(binary())
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tokenbridge")
}

/// What one run of `tokenbridge stdio` produced.
#[derive(Debug)]
pub struct Run {
    /// One parsed JSON value per stdout line.
    pub answers: Vec<Value>,
    pub stdout: String,
    pub stderr: String,
    /// One parsed JSON value per stderr line that is JSON, but the metrics summary (the
    /// decision log).
    pub log: Vec<Value>,
    /// The metrics summary `tokenbridge stdio` writes on exit, if it wrote one.
    pub summary: Option<Value>,
    pub success: bool,
    pub elapsed: Duration,
}

/// Runs `tokenbridge stdio` with exactly `env` as its environment (plus PATH) and `input` on
/// stdin, and waits for it to finish.
pub fn stdio(env: &[(String, String)], input: &str) -> Run {
    run(&["stdio"], env, input)
}

/// Runs the binary with `args`, exactly `env`, and `input` on stdin.
pub fn run(args: &[&str], env: &[(String, String)], input: &str) -> Run {
    binary(); // built (once) before the clock starts
    let started = Instant::now();
    let mut child = spawn(args, env);
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("tokenbridge output");
    let _ = writer.join();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_no_secret_logged(&stderr);
    let parse = |s: &str| s.lines().filter_map(|l| serde_json::from_str(l).ok()).collect::<Vec<Value>>();
    Run {
        answers: parse(&stdout),
        log: parse(&stderr).into_iter().filter(|l| l["event"] != "metrics").collect(),
        summary: parse(&stderr).into_iter().find(|l| l["event"] == "metrics"),
        stdout,
        stderr,
        success: out.status.success(),
        elapsed: started.elapsed(),
    }
}

/// An OCI API Gateway TOKEN payload for `Authorization: Bearer <token>`, as one line.
pub fn token_payload(token: &str) -> String {
    serde_json::json!({"type": "TOKEN", "token": format!("Bearer {token}")}).to_string()
}

/// A `tokenbridge stdio` process to talk to one line at a time.
pub struct Session {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Session {
    pub fn start(env: &[(String, String)]) -> Self {
        let mut child = spawn(&["stdio"], env);
        let stdin = child.stdin.take();
        let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        Self { child, stdin, stdout }
    }

    /// Sends one payload line and reads the answer line.
    pub fn ask(&mut self, line: &str) -> Value {
        use std::io::BufRead;
        let stdin = self.stdin.as_mut().expect("session still open");
        writeln!(stdin, "{line}").expect("write to tokenbridge");
        stdin.flush().expect("flush to tokenbridge");
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).expect("read from tokenbridge");
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("answer {answer:?} is not JSON: {e}"))
    }

    /// Closes stdin, waits for the exit, and returns stderr.
    pub fn finish(mut self) -> String {
        use std::io::Read;
        drop(self.stdin.take());
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        let _ = self.child.wait();
        assert_no_secret_logged(&stderr);
        stderr
    }
}

/// What a child process wrote, line by line as it arrives; waiters wake at each line.
#[derive(Default)]
pub struct OutputLog {
    text: std::sync::Mutex<String>,
    changed: std::sync::Condvar,
}

impl OutputLog {
    /// Reads `pipe` to its end on a thread of its own, keeping each line.
    pub fn drain(
        self: &std::sync::Arc<Self>,
        pipe: impl std::io::Read + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        let log = self.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                log.text.lock().unwrap_or_else(|p| p.into_inner()).push_str(&format!("{line}\n"));
                log.changed.notify_all();
            }
        })
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        self.text.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits up to `timeout` for a line that `wanted` accepts, and returns it.
    pub fn wait_for_line(&self, timeout: Duration, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let started = Instant::now();
        let mut log = self.text.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(line) = log.lines().find(|l| wanted(l)) {
                return Some(line.to_string());
            }
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return None;
            }
            log = self.changed.wait_timeout(log, left).map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
    }
}

/// A background `tokenbridge` whose stderr is drained continuously (so a chatty process never
/// blocks on a full pipe) and kept; killed when dropped.
pub struct Process {
    child: std::process::Child,
    log: std::sync::Arc<OutputLog>,
    drain: Option<std::thread::JoinHandle<()>>,
}

impl Process {
    /// Starts the binary with `args` and exactly `env`; stdin and stdout go nowhere.
    pub fn start(args: &[&str], env: &[(String, String)]) -> Self {
        let mut child = Command::new(binary())
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tokenbridge");
        let log = std::sync::Arc::new(OutputLog::default());
        let drain = child.stderr.take().map(|pipe| log.drain(pipe));
        Process { child, log, drain }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process has not exited.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything logged so far (which must hold no secret of the fake IdPs).
    pub fn log(&self) -> String {
        let log = self.log.text();
        assert_no_secret_logged(&log);
        log
    }

    /// Waits up to `timeout` for a logged line that `wanted` accepts, and returns it.
    pub fn wait_for_line(&self, timeout: Duration, wanted: impl Fn(&str) -> bool) -> Option<String> {
        self.log.wait_for_line(timeout, wanted)
    }

    /// Kills the process and returns everything it logged.
    pub fn stop(self) -> String {
        self.end(false).1
    }

    /// Sends SIGTERM, waits for the exit, and returns whether it succeeded and the log.
    pub fn terminate(self) -> (bool, String) {
        self.end(true)
    }

    fn end(mut self, gracefully: bool) -> (bool, String) {
        if gracefully {
            let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        } else {
            let _ = self.child.kill();
        }
        let success = self.child.wait().is_ok_and(|s| s.success());
        // The pipe ends with the process, and with it the drain.
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
        (success, self.log())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            assert_no_secret_logged(&self.log.text());
        }
    }
}

/// Waits up to `timeout` until something accepts connections on loopback `port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Every log the harness captures, in every suite, is checked for what must never be logged:
/// the fake IdPs' client secrets (as they are, form-encoded, and as the `Basic` credential) and
/// the tokens they issue (`caller-<n>-…`, `backend-<n>-…`).
pub fn assert_no_secret_logged(log: &str) {
    use crate::fake_idp::{A_CLIENT, B_CLIENT};
    use base64::Engine as _;
    for (id, secret) in [A_CLIENT, B_CLIENT] {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", form(id), form(secret)));
        for form in [secret.to_string(), form(secret), basic] {
            assert!(!log.contains(&form), "a client secret was logged:\n{log}");
        }
    }
    for kind in ["caller-", "backend-"] {
        let issued = log
            .match_indices(kind)
            .any(|(at, _)| log[at + kind.len()..].bytes().next().is_some_and(|b| b.is_ascii_digit()));
        assert!(!issued, "a token the fake IdP issued ({kind}…) was logged:\n{log}");
    }
}

/// `application/x-www-form-urlencoded` as tokenbridge writes it (RFC 6749 §2.3.1).
fn form(text: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const FORM: &AsciiSet = &NON_ALPHANUMERIC.remove(b'*').remove(b'-').remove(b'.').remove(b'_');
    utf8_percent_encode(text, FORM).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_check_passes_a_decision_log_and_catches_an_issued_token() {
        assert_no_secret_logged(r#"{"backend":"miss","token":"2885509c2576","event":"decision"}"#);
        let leaked = std::panic::catch_unwind(|| assert_no_secret_logged("detail: Bearer caller-0-2aaeb559-40227"));
        assert!(leaked.is_err());
        let leaked = std::panic::catch_unwind(|| assert_no_secret_logged(crate::fake_idp::B_CLIENT.1));
        assert!(leaked.is_err());
        // A's secret form-encoded ("a: s3cr%t/+ …" → "a%3A%20s3cr%25t%2F%2B…"), as the body would carry it.
        let leaked = std::panic::catch_unwind(|| assert_no_secret_logged("a%3A%20s3cr%25t%2F%2B%20with%20spaces"));
        assert!(leaked.is_err());
    }
}
