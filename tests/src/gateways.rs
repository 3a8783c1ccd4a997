//! The shipped gateway recipes (`adapters/http/deploy/`) running in the real gateways: nginx,
//! Envoy, Traefik and Caddy, each in front of a recording backend and asking a `tokenbridge http`
//! that asks the fake IdPs.
//!
//! A recipe is loaded as shipped and only its marked placeholders (listen port, the
//! `tokenbridge:8080` and `backend:9000` addresses) are replaced; each placeholder must be found,
//! so a renamed one fails the test instead of leaving the recipe pointing nowhere.
//!
//! Each gateway's stack is started once per test process and shared by its tests. Statics are
//! never dropped, so every process is started under a supervising shell that kills it when its
//! stdin closes — that is, when the test process ends, however it ends.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::fake_idp::IdpPair;
use crate::harness::{OutputLog, assert_no_secret_logged, binary};
use crate::http_server::{Exchange, free_port, nginx_binary, raw_exchange};

/// The gateways with a tested recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gateway {
    Nginx,
    Envoy,
    Traefik,
    Caddy,
}

impl Gateway {
    pub fn name(self) -> &'static str {
        match self {
            Gateway::Nginx => "nginx",
            Gateway::Envoy => "envoy",
            Gateway::Traefik => "traefik",
            Gateway::Caddy => "caddy",
        }
    }

    /// The header and format this gateway reports a mutual TLS client certificate in, as its
    /// documented setup configures it (`TOKENBRIDGE_HTTP_CLIENT_CERT`); the test stacks have no
    /// mutual TLS, so any value of it there is a client's forgery.
    pub fn client_cert_setting(self) -> &'static str {
        match self {
            Gateway::Nginx => "X-Client-Cert:pem-urlencoded",
            Gateway::Envoy => "x-forwarded-client-cert:xfcc",
            Gateway::Traefik => "X-Forwarded-Tls-Client-Cert:base64-der",
            Gateway::Caddy => "X-Client-Cert:base64-der",
        }
    }

    /// The variable `scripts/gateways-install` exports with the binary's path.
    pub fn variable(self) -> &'static str {
        match self {
            Gateway::Nginx => "TOKENBRIDGE_NGINX",
            Gateway::Envoy => "TOKENBRIDGE_ENVOY",
            Gateway::Traefik => "TOKENBRIDGE_TRAEFIK",
            Gateway::Caddy => "TOKENBRIDGE_CADDY",
        }
    }

    /// The gateway's binary, or why there is none.
    fn binary(self) -> Result<PathBuf, String> {
        let from_variable = std::env::var_os(self.variable()).map(PathBuf::from);
        // nginx is a Debian package: found where http_adapter.rs finds it, too.
        let found = from_variable.or_else(|| if self == Gateway::Nginx { nginx_binary() } else { None });
        match found {
            Some(path) if path.exists() => Ok(path),
            Some(path) => Err(format!("{} names {}, which does not exist", self.variable(), path.display())),
            None => Err(format!("{} is not set (eval \"$(scripts/gateways-install)\" sets it)", self.variable())),
        }
    }
}

/// Orders are open to every valid caller for reading and need `orders.write` for writing; admin
/// needs `admin`; anything else is denied.
pub const POLICY: &str = r#"{"routes": [
  {"method": "GET", "path": "/orders/**"},
  {"method": "POST", "path": "/orders/**", "scopes": ["orders.write"]},
  {"path": "/admin/**", "scopes": ["admin"]}]}"#;

/// One gateway with its recipe, in front of a recording backend, asking one `tokenbridge http`.
pub struct Stack {
    pub gateway: Gateway,
    pub idp: IdpPair,
    pub backend: Backend,
    tokenbridge: Mutex<Supervised>,
    tokenbridge_addr: String,
    /// Every tokenbridge log line of every run, for the leak check.
    tokenbridge_logs: Mutex<Vec<Arc<OutputLog>>>,
    process: Supervised,
    pub addr: String,
    /// Tests that break the stack for a moment (an IdP outage, tokenbridge stopped) hold it
    /// exclusively; the others share it.
    turn: RwLock<()>,
}

impl Stack {
    /// The shared stack of `gateway`, started on first use. `None` (the test should return) when
    /// the gateway is not installed, except under CI, where that fails the test.
    pub fn of(gateway: Gateway) -> Option<&'static Stack> {
        type Cell = OnceLock<Result<Option<Stack>, String>>;
        static STACKS: OnceLock<Mutex<HashMap<Gateway, &'static Cell>>> = OnceLock::new();
        let cell: &'static Cell = {
            let mut cells = STACKS.get_or_init(Mutex::default).lock().unwrap_or_else(|p| p.into_inner());
            cells.entry(gateway).or_insert_with(|| Box::leak(Box::new(OnceLock::new())))
        };
        // A stack that failed to start fails every test of its gateway at once, with the first
        // test's reason, rather than being tried again by each.
        let started = cell.get_or_init(|| match gateway.binary() {
            Ok(path) => std::panic::catch_unwind(|| Some(Stack::start(gateway, &path))).map_err(|panic| {
                let text = panic.downcast_ref::<String>().cloned();
                text.or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
            }),
            Err(why) if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) => {
                Err(format!("the {} recipe tests cannot run, and CI must not skip them: {why}", gateway.name()))
            }
            Err(why) => {
                // Past the test harness's capture, so that the skip shows even in a passing run.
                let _ = writeln!(std::io::stderr(), "SKIPPING the {} recipe tests: {why}", gateway.name());
                Ok(None)
            }
        });
        match started {
            Ok(stack) => stack.as_ref(),
            Err(why) => panic!("the {} stack did not start: {why}", gateway.name()),
        }
    }

    fn start(gateway: Gateway, program: &Path) -> Stack {
        let idp = IdpPair::start();
        let backend = Backend::start();
        let tokenbridge_addr = format!("127.0.0.1:{}", free_port());
        let tokenbridge = start_tokenbridge(gateway, &idp, &tokenbridge_addr);
        let dir = scratch_dir(gateway.name());
        let port = free_port();
        let process = launch(gateway, program, &dir, port, &tokenbridge_addr, backend.port);
        let stack = Stack {
            gateway,
            idp,
            backend,
            tokenbridge_logs: Mutex::new(vec![tokenbridge.log.clone()]),
            tokenbridge: Mutex::new(tokenbridge),
            tokenbridge_addr,
            process,
            addr: format!("127.0.0.1:{port}"),
            turn: RwLock::new(()),
        };
        stack.wait_until_routed();
        stack
    }

    /// Waits until a call without a token gets tokenbridge's 401 through the gateway: the
    /// gateway listens, has loaded its routes, and reaches tokenbridge.
    fn wait_until_routed(&self) {
        let started = Instant::now();
        loop {
            let answer =
                raw_exchange(&self.addr, b"GET /orders/ready HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n");
            if answer.as_ref().is_some_and(|(status, _, _)| *status == 401) {
                return;
            }
            if started.elapsed() > Duration::from_secs(30) {
                panic!(
                    "{} never answered 401 through the recipe: {answer:?}\n{}",
                    self.gateway.name(),
                    self.gateway_log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The stack as the other tests leave it (shared with them).
    pub fn shared(&self) -> RwLockReadGuard<'_, ()> {
        self.turn.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The stack to oneself, to break it for a moment.
    pub fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.turn.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops tokenbridge, runs `during`, and starts it again at the same address.
    pub fn with_tokenbridge_stopped<T>(&self, _turn: &RwLockWriteGuard<'_, ()>, during: impl FnOnce() -> T) -> T {
        let mut tokenbridge = self.tokenbridge.lock().unwrap_or_else(|p| p.into_inner());
        tokenbridge.stop();
        // Started again even when `during` fails, so that the gateway's other tests still run.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(during));
        *tokenbridge = start_tokenbridge(self.gateway, &self.idp, &self.tokenbridge_addr);
        self.tokenbridge_logs.lock().unwrap_or_else(|p| p.into_inner()).push(tokenbridge.log.clone());
        drop(tokenbridge);
        self.wait_until_routed();
        result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// A request through the gateway, without a body.
    pub fn call(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> Exchange {
        let mut request = format!("{method} {target} HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if method == "POST" {
            request.push_str("Content-Length: 0\r\n");
        }
        request.push_str("\r\n");
        raw_exchange(&self.addr, request.as_bytes())
            .unwrap_or_else(|| panic!("no answer from {} to {method} {target}", self.gateway.name()))
    }

    /// Everything tokenbridge logged so far, checked for secrets and tokens.
    pub fn tokenbridge_log(&self) -> String {
        let logs = self.tokenbridge_logs.lock().unwrap_or_else(|p| p.into_inner());
        let log: String = logs.iter().map(|l| l.text()).collect();
        assert_no_secret_logged(&log);
        log
    }

    /// Everything the gateway logged so far (its own log files included).
    pub fn gateway_log(&self) -> String {
        let mut log = self.process.log.text();
        if let Ok(entries) = std::fs::read_dir(self.process.dir.join("logs")) {
            for entry in entries.flatten() {
                log.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        log
    }

    /// Both logs hold no secret and no token (the gateways' too: a recipe must not log headers).
    pub fn assert_nothing_leaked(&self) {
        self.tokenbridge_log();
        assert_no_secret_logged(&self.gateway_log());
    }
}

/// Where the gateway tests' clients call the API, as DPoP proofs name it.
pub const DPOP_ORIGIN: &str = "https://api.example";

fn start_tokenbridge(gateway: Gateway, idp: &IdpPair, addr: &str) -> Supervised {
    let mut env = idp.env();
    env.push(("TOKENBRIDGE_POLICY".into(), POLICY.into()));
    env.push(("TOKENBRIDGE_LISTEN".into(), addr.into()));
    // DPoP requests are checked (bearer tokens still accepted); clients call https://api.example.
    env.push(("TOKENBRIDGE_DPOP".into(), "allowed".into()));
    env.push(("TOKENBRIDGE_DPOP_ORIGINS".into(), DPOP_ORIGIN.into()));
    env.push(("TOKENBRIDGE_HTTP_CLIENT_CERT".into(), gateway.client_cert_setting().into()));
    let process = Supervised::start(&binary(), &["http"], Some(&env), None);
    let listening = process.wait_for_line(Duration::from_secs(60), |l| l.contains("\"event\":\"listening\""));
    assert!(listening.is_some(), "tokenbridge http did not listen:\n{}", process.log());
    process
}

fn scratch_dir(name: &str) -> PathBuf {
    static SERIAL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = SERIAL.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("tb-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("logs")).expect("a scratch directory");
    dir
}

/// A recipe from adapters/http/deploy/ with each placeholder replaced; every placeholder must
/// occur in it.
pub fn recipe(file: &str, substitutions: &[(&str, String)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../adapters/http/deploy").join(file);
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (placeholder, value) in substitutions {
        assert!(text.contains(placeholder), "{file} has no placeholder {placeholder:?}");
        text = text.replace(placeholder, value);
    }
    text
}

/// Starts `gateway` with its recipe on loopback `port`.
fn launch(gateway: Gateway, program: &Path, dir: &Path, port: u16, tokenbridge: &str, backend_port: u16) -> Supervised {
    let dir_text = dir.display().to_string();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write a gateway configuration");
        path.display().to_string()
    };
    let backend = format!("127.0.0.1:{backend_port}");
    match gateway {
        Gateway::Nginx => {
            let site = recipe(
                "nginx.conf",
                &[
                    ("listen 8000;", format!("listen 127.0.0.1:{port};")),
                    ("tokenbridge:8080", tokenbridge.to_string()),
                    ("backend:9000", backend),
                ],
            );
            // The frame every nginx.conf has (paths into the scratch directory, one process in
            // the foreground); the recipe goes inside `http {}` as it says. The log level is
            // `warn`: at `info`, nginx logs the value of a client's duplicate header line,
            // Authorization included (docs/gateways.md).
            let d = &dir_text;
            let main = format!(
                "worker_processes 1;\ndaemon off;\nmaster_process off;\nerror_log {d}/logs/error.log warn;\npid {d}/nginx.pid;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {d}/site.conf;\n}}\n"
            );
            write("site.conf", &site);
            let conf = write("nginx.conf", &main);
            Supervised::start(program, &["-p", &dir_text, "-c", &conf], None, Some(dir))
        }
        Gateway::Envoy => {
            let (tb_host, tb_port) = tokenbridge.rsplit_once(':').expect("host:port");
            let bootstrap = recipe(
                "envoy.yaml",
                &[
                    ("address: 0.0.0.0, port_value: 8000", format!("address: 127.0.0.1, port_value: {port}")),
                    ("address: tokenbridge, port_value: 8080", format!("address: {tb_host}, port_value: {tb_port}")),
                    ("address: backend, port_value: 9000", format!("address: 127.0.0.1, port_value: {backend_port}")),
                ],
            );
            let conf = write("envoy.yaml", &bootstrap);
            // Several Envoys may run on one machine (other test processes): no shared memory.
            let args = ["-c", &conf, "--disable-hot-restart", "--log-level", "warn"];
            Supervised::start(program, &args, None, Some(dir))
        }
        Gateway::Traefik => {
            let dynamic = recipe(
                "traefik.yaml",
                &[
                    ("http://tokenbridge:8080", format!("http://{tokenbridge}")),
                    ("http://backend:9000", format!("http://{backend}")),
                ],
            );
            let dynamic = write("dynamic.yaml", &dynamic);
            let static_config = recipe(
                "traefik-static.yaml",
                &[
                    ("address: \":8000\"", format!("address: \"127.0.0.1:{port}\"")),
                    ("/etc/traefik/tokenbridge.yaml", dynamic),
                ],
            );
            let conf = write("traefik.yaml", &static_config);
            Supervised::start(program, &[&format!("--configFile={conf}")], None, Some(dir))
        }
        Gateway::Caddy => {
            let caddyfile = recipe(
                "Caddyfile",
                &[
                    (":8000 {", format!(":{port} {{")),
                    ("tokenbridge:8080", tokenbridge.to_string()),
                    ("backend:9000", backend),
                ],
            );
            let conf = write("Caddyfile", &caddyfile);
            // Caddy's admin endpoint and storage: a free port and the scratch directory, set
            // through Caddy's own variables so the recipe stays as shipped.
            let env = [
                ("CADDY_ADMIN".to_string(), format!("127.0.0.1:{}", free_port())),
                ("XDG_CONFIG_HOME".to_string(), format!("{dir_text}/config")),
                ("XDG_DATA_HOME".to_string(), format!("{dir_text}/data")),
                ("HOME".to_string(), dir_text.clone()),
            ];
            let mut supervised_env: Vec<(String, String)> = std::env::vars().collect();
            supervised_env.extend(env);
            Supervised::start(
                program,
                &["run", "--config", &conf, "--adapter", "caddyfile"],
                Some(&supervised_env),
                Some(dir),
            )
        }
    }
}

/// A process under `/bin/sh`, which kills it once its own stdin closes (the test process ended,
/// or [`Supervised::stop`]). Its stdout and stderr are kept.
pub struct Supervised {
    child: Child,
    stdin: Option<ChildStdin>,
    log: Arc<OutputLog>,
    dir: PathBuf,
}

/// Runs "$@" in the background, waits for stdin to close, stops it, waits for it, and removes its
/// scratch directory (the first argument, when not empty).
const SUPERVISOR: &str = r#"dir=$1; shift; "$@" </dev/null & child=$!; read -r _; kill "$child" 2>/dev/null; wait "$child"; [ -z "$dir" ] || rm -rf "$dir""#;

impl Supervised {
    /// Starts `program` with `args`; with `env`, exactly that environment (plus nothing else).
    pub fn start(program: &Path, args: &[&str], env: Option<&[(String, String)]>, dir: Option<&Path>) -> Self {
        let mut command = Command::new("/bin/sh");
        command.args(["-c", SUPERVISOR, "supervisor"]).arg(dir.unwrap_or(Path::new(""))).arg(program).args(args);
        if let Some(env) = env {
            command.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
        }
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let log = Arc::new(OutputLog::default());
        log.drain(child.stdout.take().expect("stdout"));
        log.drain(child.stderr.take().expect("stderr"));
        let stdin = child.stdin.take();
        Supervised { child, stdin, log, dir: dir.map_or_else(std::env::temp_dir, Path::to_path_buf) }
    }

    pub fn log(&self) -> String {
        self.log.text()
    }

    /// Waits up to `timeout` for an output line that `wanted` accepts.
    pub fn wait_for_line(&self, timeout: Duration, wanted: impl Fn(&str) -> bool) -> Option<String> {
        self.log.wait_for_line(timeout, wanted)
    }

    /// Stops the process and waits until it has exited.
    pub fn stop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let _ = self.child.wait();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the backend received for one request.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub target: String,
    /// Names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
}

impl Received {
    /// Every value of the headers a backend could read as `name`: a CGI-style backend (PHP,
    /// WSGI, Rack) folds `_` into `-` and case away, so `X_Auth_Principal` counts.
    pub fn read_as(&self, name: &str) -> Vec<&str> {
        let fold = |n: &str| n.to_ascii_lowercase().replace('_', "-");
        self.headers.iter().filter(|(k, _)| fold(k) == fold(name)).map(|(_, v)| v.as_str()).collect()
    }
}

/// A backend that records every request and answers with it, as JSON.
pub struct Backend {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Backend {
    pub fn start() -> Self {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind the backend");
        let port = server.server_addr().to_ip().map(|a| a.port()).expect("port");
        let received = Arc::new(Mutex::new(Vec::new()));
        let record = received.clone();
        std::thread::spawn(move || {
            for request in server.incoming_requests() {
                let seen = Received {
                    method: request.method().to_string(),
                    target: request.url().to_string(),
                    headers: request
                        .headers()
                        .iter()
                        .map(|h| (h.field.as_str().as_str().to_ascii_lowercase(), h.value.as_str().to_string()))
                        .collect(),
                };
                let body = json!({"method": seen.method, "target": seen.target, "headers": seen.headers});
                record.lock().unwrap_or_else(|p| p.into_inner()).push(seen);
                let _ = request.respond(tiny_http::Response::from_string(body.to_string()));
            }
        });
        Backend { port, received }
    }

    /// The requests whose target holds `marker` (each test marks its calls).
    pub fn received(&self, marker: &str) -> Vec<Received> {
        let all = self.received.lock().unwrap_or_else(|p| p.into_inner());
        all.iter().filter(|r| r.target.contains(marker)).cloned().collect()
    }
}
