//! The HTTP server: a fixed pool of worker threads fed by one acceptor through a bounded queue,
//! keep-alive with idle and slow-client timeouts, and a graceful stop on SIGTERM.

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokenbridge_core::Engine;
use tokenbridge_oci::gateway;
use tokenbridge_oci::http1::{self, ReadError};

use crate::forward::{self, Rendering, Reply};

/// Largest body read (`POST /authorize` payloads are a few KiB).
pub const MAX_BODY: usize = 64 * 1024;
/// A request must arrive completely within this once it has started.
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

/// Serves until SIGTERM or SIGINT, then finishes the requests in flight and returns.
pub fn serve(engine: &'static Engine, listener: TcpListener, workers: usize) -> io::Result<()> {
    let stopping = Arc::new(AtomicBool::new(false));
    watch_signals(stopping.clone(), listener.local_addr()?)?;
    let (queue, connections) = sync_channel::<TcpStream>(workers * 4);
    let connections = Arc::new(Mutex::new(connections));
    let pool: Vec<_> = (0..workers.max(1))
        .map(|_| {
            let (connections, stopping) = (connections.clone(), stopping.clone());
            std::thread::spawn(move || work(engine, &connections, &stopping))
        })
        .collect();
    accept(&listener, &queue, &stopping);
    drop(queue);
    for worker in pool {
        let _ = worker.join();
    }
    Ok(())
}

fn accept(listener: &TcpListener, queue: &SyncSender<TcpStream>, stopping: &AtomicBool) {
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        match queue.try_send(stream) {
            Ok(()) => {}
            Err(TrySendError::Full(mut stream)) => {
                // Every worker is busy and the queue is full: say so at once rather than hang.
                let reply = Reply::json(503, json!({"error": "overloaded"}));
                let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                let _ = write_reply(&mut stream, &reply, true);
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

fn watch_signals(stopping: Arc<AtomicBool>, local: SocketAddr) -> io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            stopping.store(true, Ordering::SeqCst);
            // Wake the acceptor, which is blocked in accept().
            let wake =
                if local.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], local.port())) } else { local };
            let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        }
    });
    Ok(())
}

fn work(engine: &Engine, connections: &Mutex<Receiver<TcpStream>>, stopping: &AtomicBool) {
    loop {
        let next = connections.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(stream) = next else { return };
        serve_connection(engine, stream, stopping);
    }
}

fn serve_connection(engine: &Engine, stream: TcpStream, stopping: &AtomicBool) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(REQUEST_TIMEOUT));
    let Ok(read_half) = stream.try_clone() else { return };
    let mut input = BufReader::new(read_half);
    let mut output = stream;
    loop {
        if input.buffer().is_empty() && !wait_for_request(input.get_ref(), stopping) {
            return;
        }
        let _ = input.get_ref().set_read_timeout(Some(REQUEST_TIMEOUT));
        let (reply, close) = match http1::read_request(&mut input, MAX_BODY) {
            Ok(request) => (answer(engine, &request), request.close),
            Err(ReadError::Closed | ReadError::Io(_)) => return,
            Err(ReadError::Malformed(why)) => (Reply::json(400, json!({"error": "bad_request", "message": why})), true),
            Err(ReadError::TooLarge { drained }) => (Reply::json(413, json!({"error": "too_large"})), !drained),
        };
        let close = close || stopping.load(Ordering::SeqCst);
        if write_reply(&mut output, &reply, close).is_err() || close {
            return;
        }
    }
}

/// Waits for the first byte of the next request; false when the peer left, the connection
/// idled too long, or the server is stopping.
fn wait_for_request(stream: &TcpStream, stopping: &AtomicBool) -> bool {
    let idle_since = Instant::now();
    let _ = stream.set_read_timeout(Some(IDLE_POLL));
    let mut byte = [0u8; 1];
    loop {
        match stream.peek(&mut byte) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                if stopping.load(Ordering::SeqCst) || idle_since.elapsed() >= IDLE_TIMEOUT {
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

fn write_reply(out: &mut impl Write, reply: &Reply, close: bool) -> io::Result<()> {
    let mut headers: Vec<(&str, &str)> = reply.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    headers.push(("Cache-Control", "no-store"));
    if close {
        headers.push(("Connection", "close"));
    }
    http1::write_response(out, reply.status, &headers, reply.body.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

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
