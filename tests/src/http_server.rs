//! Runs `tokenbridge http` on a free loopback port, and a real nginx in front of it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::{Process, wait_for_port};

/// A running `tokenbridge http`.
pub struct HttpServer {
    process: Process,
    pub addr: String,
}

impl HttpServer {
    /// Starts it with exactly `env` (plus `TOKENBRIDGE_LISTEN=127.0.0.1:0`) and waits until it
    /// says where it listens.
    pub fn start(env: &[(String, String)]) -> Self {
        let mut env = env.to_vec();
        env.push(("TOKENBRIDGE_LISTEN".into(), "127.0.0.1:0".into()));
        let process = Process::start(&["http"], &env);
        let line = process
            .wait_for_line(Duration::from_secs(30), |l| l.contains("\"event\":\"listening\""))
            .unwrap_or_else(|| panic!("tokenbridge http did not listen:\n{}", process.log()));
        let line: serde_json::Value = serde_json::from_str(&line).expect("the listening line is JSON");
        let addr = line["address"].as_str().expect("listening address").to_string();
        HttpServer { process, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn is_alive(&mut self) -> bool {
        self.process.is_alive()
    }

    /// Sends SIGTERM and waits for the exit: its success, and everything logged.
    pub fn terminate(self) -> (bool, String) {
        self.process.terminate()
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// An HTTP answer: status, headers (names lower-cased), body.
pub type Exchange = (u16, Vec<(String, String)>, String);

/// A raw HTTP/1.1 exchange on a fresh connection, read to the end of the connection.
pub fn raw_exchange(addr: &str, request: &[u8]) -> Option<Exchange> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    stream.write_all(request).ok()?;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some((status, headers, body.to_string()))
}

/// A real nginx (Debian's package) on a loopback port, configured by the caller's `http {}`
/// server blocks; `{port}` in them is replaced by its port.
pub struct Nginx {
    child: Child,
    dir: PathBuf,
    pub port: u16,
}

/// Where nginx is: `$NGINX`, else `nginx` on PATH, else Debian's `/usr/sbin/nginx`.
pub fn nginx_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NGINX") {
        return Some(p.into());
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("nginx"))
        .find(|p| p.exists());
    on_path.or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.exists()))
}

impl Nginx {
    /// Starts nginx with `server_block` inside `http {}`. Returns `None` when nginx is not
    /// installed (scripts/test installs it; CI fails instead of skipping).
    pub fn start(server_block: &str) -> Option<Self> {
        let binary = nginx_binary()?;
        let port = free_port();
        static SERIAL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SERIAL.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("tb-nginx-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("logs")).ok()?;
        let d = dir.display();
        let config = format!(
            "worker_processes 1;\ndaemon off;\nmaster_process off;\nerror_log {d}/logs/error.log notice;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{}\n}}\n",
            server_block.replace("{port}", &port.to_string())
        );
        std::fs::write(dir.join("nginx.conf"), config).ok()?;
        let child = Command::new(binary)
            .args(["-p", &dir.display().to_string(), "-c", &dir.join("nginx.conf").display().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        if !wait_for_port(port, Duration::from_secs(10)) {
            panic!("nginx did not listen: {}", std::fs::read_to_string(dir.join("logs/error.log")).unwrap_or_default());
        }
        Some(Nginx { child, dir, port })
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("logs/error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // At `info` nginx would write a duplicate header's value (a caller's token) here.
        if !std::thread::panicking() {
            crate::harness::assert_no_secret_logged(&self.error_log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A backend that answers every request with the `Authorization` it received, and counts them.
pub struct EchoBackend {
    pub port: u16,
    hits: Arc<std::sync::atomic::AtomicUsize>,
}

impl EchoBackend {
    pub fn start() -> Self {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind echo backend");
        let port = server.server_addr().to_ip().map(|a| a.port()).expect("port");
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for request in server.incoming_requests() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let header = |name: &'static str| {
                    request.headers().iter().find(|h| h.field.equiv(name)).map(|h| h.value.to_string())
                };
                let body = serde_json::json!({
                    "authorization": header("Authorization"),
                    "principal": header("X-Auth-Principal"),
                    "path": request.url(),
                });
                let _ = request.respond(tiny_http::Response::from_string(body.to_string()));
            }
        });
        EchoBackend { port, hits }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}
