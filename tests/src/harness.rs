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
    // Cargo describes the running test's package in these; ring's build script watches some of
    // them, so passing them on would rebuild ring and all above it for every test package.
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
    /// One parsed JSON value per stderr line that is JSON (the decision log).
    pub log: Vec<Value>,
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
    let parse = |s: &str| s.lines().filter_map(|l| serde_json::from_str(l).ok()).collect::<Vec<Value>>();
    Run {
        answers: parse(&stdout),
        log: parse(&stderr),
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
        stderr
    }
}
