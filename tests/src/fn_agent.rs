//! Does what the OCI Functions (Fn) agent does with a function container: starts it with
//! `FN_LISTENER`/`FN_FORMAT`, waits for the socket to be published, checks how it was published,
//! and posts `/call` over one kept-alive connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::harness::Process;

/// The agent's patience for a container's socket (docs/oci.md).
pub const SOCKET_WAIT: Duration = Duration::from_secs(5);

pub struct FnAgent {
    /// `None` once stopped.
    process: Option<Process>,
    dir: PathBuf,
    pub socket: PathBuf,
    connection: Option<BufReader<UnixStream>>,
    /// Time from exec to the published socket.
    pub ready_after: Duration,
}

/// One answer on the socket.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body {:?} is not JSON: {e}", String::from_utf8_lossy(&self.body)))
    }
}

/// How a call's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    ContentLength,
    /// As the gateway's calls arrive: `Transfer-Encoding: chunked`, here in 7-byte chunks.
    Chunked,
}

impl FnAgent {
    /// Starts `tokenbridge` with no arguments (the mode must come from `FN_LISTENER`), with
    /// exactly `env` plus the Fn variables, and waits for its socket.
    pub fn start(env: &[(String, String)]) -> Self {
        static SERIAL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SERIAL.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("tb-iofs-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("socket directory");
        let socket = dir.join("lsnr.sock");
        let started = Instant::now();
        let mut env = env.to_vec();
        env.extend([
            ("FN_FORMAT".to_string(), "http-stream".to_string()),
            ("FN_LISTENER".to_string(), format!("unix:{}", socket.display())),
            ("FN_APP_NAME".to_string(), "tokenbridge-test".to_string()),
            ("FN_FN_NAME".to_string(), "authorizer".to_string()),
        ]);
        // No arguments: the mode must come from FN_LISTENER.
        let process = Process::start(&[], &env);
        while std::fs::symlink_metadata(&socket).is_err() {
            assert!(started.elapsed() < SOCKET_WAIT, "no socket at {} within {SOCKET_WAIT:?}", socket.display());
            std::thread::sleep(Duration::from_millis(2));
        }
        let ready_after = started.elapsed();
        let mut agent = FnAgent { process: Some(process), dir, socket, connection: None, ready_after };
        agent.connect();
        agent
    }

    /// The published path is a relative symlink to a socket that everyone may use.
    pub fn check_publication(&self) -> Result<(), String> {
        let link = std::fs::symlink_metadata(&self.socket).map_err(|e| e.to_string())?;
        if !link.file_type().is_symlink() {
            return Err("the listener path is not a symlink".into());
        }
        let target = std::fs::read_link(&self.socket).map_err(|e| e.to_string())?;
        if target.is_absolute() || target.components().count() != 1 {
            return Err(format!(
                "the symlink target {} is not a relative name in the same directory",
                target.display()
            ));
        }
        let phony = std::fs::metadata(self.dir.join(&target)).map_err(|e| e.to_string())?;
        if !phony.file_type().is_socket() {
            return Err("the symlink does not point at a socket".into());
        }
        let mode = phony.permissions().mode() & 0o777;
        if mode != 0o666 {
            return Err(format!("the socket's mode is {mode:o}, not 666"));
        }
        Ok(())
    }

    /// Opens a new connection (the agent reconnects after a closed one).
    pub fn connect(&mut self) {
        let stream = UnixStream::connect(&self.socket).expect("connect to the function socket");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
        self.connection = Some(BufReader::new(stream));
    }

    /// Posts `body` to `/call` with `Fn-Call-Id` and an `Fn-Deadline` `deadline` from now.
    pub fn call(&mut self, body: &[u8], framing: Framing, deadline: Duration) -> Reply {
        let deadline = time::OffsetDateTime::now_utc() + deadline;
        let deadline = deadline.format(&time::format_description::well_known::Rfc3339).expect("format deadline");
        self.send_raw(&request_bytes("POST", "/call", body, framing, &deadline))
    }

    /// Sends raw bytes as one request and reads one response. If the server closed the
    /// connection, reconnects for the next call.
    pub fn send_raw(&mut self, request: &[u8]) -> Reply {
        let connection = self.connection.as_mut().expect("connected");
        connection.get_mut().write_all(request).expect("write request");
        let reply = read_reply(connection).expect("read a complete reply");
        if reply.header("connection") == Some("close") {
            self.connect();
        }
        reply
    }

    /// The function's process id.
    pub fn pid(&self) -> u32 {
        self.process.as_ref().map_or(0, Process::pid)
    }

    /// The process has not exited.
    pub fn is_alive(&mut self) -> bool {
        self.process.as_mut().is_some_and(Process::is_alive)
    }

    /// Stops the function and returns its stderr.
    pub fn stop(mut self) -> String {
        self.process.take().map(Process::stop).unwrap_or_default()
    }
}

impl Drop for FnAgent {
    fn drop(&mut self) {
        drop(self.process.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An HTTP/1.1 request to the function, as the agent frames it.
pub fn request_bytes(method: &str, path: &str, body: &[u8], framing: Framing, deadline: &str) -> Vec<u8> {
    let mut out = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nFn-Call-Id: 01TESTCALL\r\nFn-Deadline: {deadline}\r\nContent-Type: application/json\r\n"
    )
    .into_bytes();
    match framing {
        Framing::ContentLength => {
            out.extend(format!("Content-Length: {}\r\n\r\n", body.len()).bytes());
            out.extend_from_slice(body);
        }
        Framing::Chunked => {
            out.extend(b"Transfer-Encoding: chunked\r\n\r\n");
            for chunk in body.chunks(7) {
                out.extend(format!("{:x}\r\n", chunk.len()).bytes());
                out.extend_from_slice(chunk);
                out.extend(b"\r\n");
            }
            out.extend(b"0\r\n\r\n");
        }
    }
    out
}

fn read_reply(input: &mut BufReader<UnixStream>) -> Result<Reply, String> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let n = input.read_until(b'\n', &mut head).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("connection closed after {:?}", String::from_utf8_lossy(&head)));
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Response::new(&mut headers);
    parsed.parse(&head).map_err(|e| e.to_string())?;
    let status = parsed.code.ok_or("no status")?;
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .ok_or("a reply without Content-Length")?;
    let mut body = vec![0; length];
    input.read_exact(&mut body).map_err(|e| e.to_string())?;
    Ok(Reply { status, headers, body })
}
