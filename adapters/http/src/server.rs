//! The HTTP server: a fixed pool of worker threads fed by one acceptor through a bounded queue,
//! keep-alive with idle and slow-client timeouts, and a graceful stop on SIGTERM.
//!
//! A worker serves one connection at a time, so no connection may hold one for long: a request
//! must arrive whole within `REQUEST_TIMEOUT` however slowly it trickles, and an idle kept-alive
//! connection is closed as soon as another connection is waiting for a worker.

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokenbridge_core::Engine;
use tokenbridge_oci::http1::{self, ReadError};
use tokenbridge_wire as gateway;

use crate::forward::{self, Rendering, Reply};

/// Largest body read (`POST /authorize` payloads are a few KiB).
pub const MAX_BODY: usize = 64 * 1024;
/// A request must arrive completely within this once its first byte has.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A kept-alive connection with nothing to say is closed after this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// How often an idle connection looks up from waiting to check for shutdown.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// Where to listen: `TOKENBRIDGE_LISTEN`, else `0.0.0.0:$PORT` (Cloud Run, Knative), else
/// `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT` (Azure Functions, whose host calls on loopback),
/// else `0.0.0.0:8080`.
pub fn listen_address(env: impl Fn(&str) -> Option<String>) -> Result<SocketAddr, String> {
    let chosen = if let Some(addr) = env("TOKENBRIDGE_LISTEN") {
        addr
    } else if let Some(port) = env("PORT") {
        format!("0.0.0.0:{port}")
    } else if let Some(port) = env("FUNCTIONS_CUSTOMHANDLER_PORT") {
        format!("127.0.0.1:{port}")
    } else {
        "0.0.0.0:8080".to_string()
    };
    chosen.trim().parse().map_err(|_| format!("{chosen:?} is not a listen address (host:port)"))
}

/// What the acceptor and the workers share.
#[derive(Default)]
struct Shared {
    stopping: AtomicBool,
    /// Connections accepted and not yet taken by a worker.
    queued: AtomicUsize,
}

/// Serves until SIGTERM or SIGINT, then finishes the requests in flight and returns.
pub fn serve(engine: &'static Engine, listener: TcpListener, workers: usize) -> io::Result<()> {
    let shared = Arc::new(Shared::default());
    watch_signals(shared.clone(), listener.local_addr()?)?;
    let (queue, connections) = sync_channel::<TcpStream>(workers * 4);
    let connections = Arc::new(Mutex::new(connections));
    let pool: Vec<_> = (0..workers.max(1))
        .map(|_| {
            let (connections, shared) = (connections.clone(), shared.clone());
            std::thread::spawn(move || work(engine, &connections, &shared))
        })
        .collect();
    accept(&listener, &queue, &shared);
    drop(queue);
    for worker in pool {
        let _ = worker.join();
    }
    Ok(())
}

fn accept(listener: &TcpListener, queue: &SyncSender<TcpStream>, shared: &Shared) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            // Out of file descriptors, typically: give connections in flight time to end
            // rather than spin on accept.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        shared.queued.fetch_add(1, Ordering::SeqCst);
        match queue.try_send(stream) {
            Ok(()) => {}
            Err(TrySendError::Full(mut stream)) => {
                shared.queued.fetch_sub(1, Ordering::SeqCst);
                // Every worker is busy and the queue is full: say so at once rather than hang.
                let mut reply = Reply::json(503, json!({"error": "overloaded"}));
                reply.headers.push(("Retry-After".into(), "1".into()));
                let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                let _ = write_reply(&mut stream, &reply, Framing { close: true, head_only: false });
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

fn watch_signals(shared: Arc<Shared>, local: SocketAddr) -> io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            shared.stopping.store(true, Ordering::SeqCst);
            // Wake the acceptor, which is blocked in accept().
            let wake =
                if local.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], local.port())) } else { local };
            let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        }
    });
    Ok(())
}

fn work(engine: &Engine, connections: &Mutex<Receiver<TcpStream>>, shared: &Shared) {
    loop {
        let next = connections.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(stream) = next else { return };
        shared.queued.fetch_sub(1, Ordering::SeqCst);
        serve_connection(engine, stream, shared);
    }
}

fn serve_connection(engine: &Engine, stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(REQUEST_TIMEOUT));
    let Ok(read_half) = stream.try_clone() else { return };
    let mut input = BufReader::new(Timed { stream: read_half, deadline: Instant::now() });
    let mut output = stream;
    let mut kept_alive = false;
    loop {
        if input.buffer().is_empty() && !wait_for_request(&input.get_ref().stream, kept_alive, shared) {
            return;
        }
        kept_alive = true;
        input.get_mut().deadline = Instant::now() + REQUEST_TIMEOUT;
        let (reply, close, head_only) = match http1::read_request(&mut input, MAX_BODY) {
            Ok(request) => (answer(engine, &request), request.close, request.method == "HEAD"),
            Err(ReadError::Closed | ReadError::Io(_)) => return,
            Err(ReadError::Malformed(why)) => {
                (Reply::json(400, json!({"error": "bad_request", "message": why})), true, false)
            }
            Err(ReadError::HeadTooLarge) => (Reply::json(431, json!({"error": "headers_too_large"})), true, false),
            // Closed even when the body was drained: the method is not known here, and after a
            // HEAD the client would take this body for the start of the next answer.
            Err(ReadError::TooLarge { .. }) => (Reply::json(413, json!({"error": "too_large"})), true, false),
        };
        let framing = Framing { close: close || shared.stopping.load(Ordering::SeqCst), head_only };
        if write_reply(&mut output, &reply, framing).is_err() || framing.close {
            return;
        }
    }
}

/// A connection's reading side whose reads all end by one deadline: a client that sends a byte
/// now and then cannot stretch a request past it.
struct Timed {
    stream: TcpStream,
    deadline: Instant,
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

/// Waits for the first byte of the next request; false when the peer left, the connection
/// idled too long, the server is stopping, or — between requests of a kept-alive connection —
/// another connection waits for a worker.
fn wait_for_request(stream: &TcpStream, kept_alive: bool, shared: &Shared) -> bool {
    let patience = if kept_alive { IDLE_TIMEOUT } else { REQUEST_TIMEOUT };
    let idle_since = Instant::now();
    let _ = stream.set_read_timeout(Some(IDLE_POLL));
    // A connection seen waiting at two polls in a row found no free worker in between.
    let mut saw_waiting = false;
    let mut byte = [0u8; 1];
    loop {
        match stream.peek(&mut byte) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                let waiting = kept_alive && shared.queued.load(Ordering::SeqCst) > 0;
                let wanted = waiting && saw_waiting;
                saw_waiting = waiting;
                if wanted || shared.stopping.load(Ordering::SeqCst) || idle_since.elapsed() >= patience {
                    return false;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Routes one request.
pub fn answer(engine: &Engine, request: &http1::Request) -> Reply {
    let rendering = engine.config().map_or_else(
        |_| Rendering { realm: "", context_key: "" },
        |c| Rendering { realm: &c.realm, context_key: &c.context_key },
    );
    let path = request.path.split('?').next().unwrap_or("");
    match (request.method.as_str(), path) {
        ("GET" | "HEAD", "/healthz") => Reply::json(200, json!({"status": "ok"})),
        ("GET" | "HEAD", "/readyz") => match engine.config() {
            Ok(_) if engine.is_ready() => Reply::json(200, json!({"status": "ready"})),
            Ok(_) => Reply::json(503, json!({"status": "not_ready", "waiting_for": "jwks"})),
            Err(problems) => Reply::json(503, json!({"status": "not_ready", "problems": problems.0.len()})),
        },
        ("POST", "/authorize") => {
            let token_argument = engine.config().map_or("token", |c| c.token_argument.as_str());
            match gateway::parse(&request.body, token_argument) {
                Ok(mut decision) => {
                    decision.call_id = request_id(request);
                    forward::render_json(&engine.decide(&decision), &rendering)
                }
                Err(e) => forward::render_payload_error(&e),
            }
        }
        _ => match forward::forward_request(request) {
            Ok(mut decision) => {
                decision.call_id = request_id(request);
                forward::render_forward(&engine.decide(&decision), &rendering)
            }
            Err(refusal) => refusal,
        },
    }
}

fn request_id(request: &http1::Request) -> Option<String> {
    ["x-request-id", "x-cloud-trace-context", "traceparent"]
        .iter()
        .find_map(|h| request.header(h))
        .map(|v| v.chars().take(128).collect())
}

/// How an answer goes on the wire: whether the connection closes after it, and whether it
/// answers a HEAD request (headers only).
#[derive(Clone, Copy)]
struct Framing {
    close: bool,
    head_only: bool,
}

fn write_reply(out: &mut impl Write, reply: &Reply, framing: Framing) -> io::Result<()> {
    let mut headers: Vec<(&str, &str)> = reply.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    headers.push(("Cache-Control", "no-store"));
    if framing.close {
        headers.push(("Connection", "close"));
    }
    let body = reply.body.to_string();
    if framing.head_only {
        http1::write_head(out, reply.status, &headers, body.len())
    } else {
        http1::write_response(out, reply.status, &headers, body.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_trickling_in_is_cut_off_at_its_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let trickler = std::thread::spawn(move || {
            let mut client = TcpStream::connect(addr).unwrap();
            // One byte every 20 ms: each read succeeds long before a per-read timeout would fire.
            for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
                if client.write_all(&[*byte]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let (server_side, _) = listener.accept().unwrap();
        let started = Instant::now();
        let mut input = BufReader::new(Timed { stream: server_side, deadline: started + Duration::from_millis(300) });
        let result = http1::read_request(&mut input, MAX_BODY);
        assert!(
            matches!(result, Err(ReadError::Io(ref e)) if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_millis(1500), "cut at the deadline, not at the end of the trickle");
        drop(input);
        trickler.join().unwrap();
    }

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn listen_address_follows_the_platform_conventions_in_order() {
        assert_eq!(listen_address(env(&[])).unwrap(), "0.0.0.0:8080".parse().unwrap());
        assert_eq!(
            listen_address(env(&[("FUNCTIONS_CUSTOMHANDLER_PORT", "7071")])).unwrap(),
            "127.0.0.1:7071".parse().unwrap()
        );
        assert_eq!(
            listen_address(env(&[("PORT", "9000"), ("FUNCTIONS_CUSTOMHANDLER_PORT", "7071")])).unwrap(),
            "0.0.0.0:9000".parse().unwrap()
        );
        assert_eq!(
            listen_address(env(&[("TOKENBRIDGE_LISTEN", "127.0.0.1:1"), ("PORT", "9000")])).unwrap(),
            "127.0.0.1:1".parse().unwrap()
        );
        assert!(listen_address(env(&[("PORT", "http")])).is_err());
    }
}
