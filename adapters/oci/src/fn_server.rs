//! The Fn "http-stream" protocol (contracts.md §2): a Unix socket at `FN_LISTENER`, published
//! through a relative symlink, serving `POST /call` over kept-alive HTTP/1.1, answering only
//! 200, 502 or 504.

use std::io::{self, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokenbridge_core::{Engine, Failure, Outcome};

use crate::http1::{self, ReadError};
use tokenbridge_wire as gateway;

/// Identifies us to the agent, as the official FDKs do.
pub const FDK_VERSION: &str = concat!("fdk-tokenbridge/", env!("CARGO_PKG_VERSION"));
pub const FDK_RUNTIME: &str = "rust";

/// Largest `/call` body read; gateway payloads are a few KiB at most.
pub const MAX_BODY: usize = 256 * 1024;

/// The socket path and the hidden path bound behind it, from `FN_LISTENER=unix:/dir/name`.
pub fn socket_paths(fn_listener: &str) -> Result<(PathBuf, PathBuf), String> {
    let path = fn_listener
        .strip_prefix("unix:")
        .ok_or_else(|| format!("FN_LISTENER {fn_listener:?} must start with unix:"))?;
    let path = Path::new(path);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(format!("FN_LISTENER {fn_listener:?} has no file name"));
    };
    if path.as_os_str().len() > 107 {
        return Err(format!("FN_LISTENER path is longer than 107 bytes: {}", path.display()));
    }
    let mut phony = std::ffi::OsString::from("phony");
    phony.push(name);
    Ok((path.to_path_buf(), dir.join(phony)))
}

/// Binds the phony socket, opens it to everyone (the agent runs as another user), then
/// publishes it with a relative symlink: the agent rejects absolute ones, and watches for the
/// link so it must appear only once the socket accepts connections.
pub fn bind(fn_listener: &str) -> io::Result<UnixListener> {
    let (link, phony) = socket_paths(fn_listener).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    for stale in [&link, &phony] {
        match std::fs::remove_file(stale) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    let listener = UnixListener::bind(&phony)?;
    std::fs::set_permissions(&phony, std::fs::Permissions::from_mode(0o666))?;
    let target = phony.file_name().ok_or_else(|| io::Error::other("phony socket has no name"))?;
    std::os::unix::fs::symlink(target, &link)?;
    Ok(listener)
}

/// Serves connections until the process is stopped; each connection on its own thread, so a
/// reconnecting agent is never stuck behind an abandoned connection.
pub fn serve(engine: &'static Engine, listener: UnixListener) -> io::Result<()> {
    for connection in listener.incoming() {
        match connection {
            Ok(stream) => {
                std::thread::spawn(move || serve_connection(engine, stream));
            }
            Err(e) => {
                operator_log("accept_failed", &e.to_string());
                // Out of descriptors, typically: give the process room to recover.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    Ok(())
}

fn serve_connection(engine: &Engine, stream: UnixStream) {
    let Ok(read_half) = stream.try_clone() else { return };
    let mut input = BufReader::new(read_half);
    let mut output = stream;
    loop {
        let (status, body, close) = match http1::read_request(&mut input, MAX_BODY) {
            Ok(request) => {
                let (status, body) = answer(engine, &request);
                (status, body, request.close)
            }
            Err(ReadError::Closed | ReadError::Io(_)) => return,
            Err(ReadError::Malformed(why)) => {
                operator_log("malformed_request", why);
                (502, json!({"error": "invalid_request", "message": why}), true)
            }
            // 431 is not a status the agent survives: an oversized head is a failed call too.
            Err(ReadError::HeadTooLarge) => {
                operator_log("request_too_large", "request head exceeds the limit");
                (502, json!({"error": "invalid_request", "message": "request head too large"}), true)
            }
            Err(ReadError::TooLarge { drained }) => {
                operator_log("request_too_large", "request body exceeds the limit");
                (502, json!({"error": "invalid_payload", "message": "request too large"}), !drained)
            }
        };
        let mut headers = vec![("Fn-Fdk-Version", FDK_VERSION), ("Fn-Fdk-Runtime", FDK_RUNTIME)];
        if close {
            headers.push(("Connection", "close"));
        }
        if http1::write_response(&mut output, status, &headers, body.to_string().as_bytes()).is_err() || close {
            return;
        }
    }
}

/// The socket status and body for one request to the function.
pub fn answer(engine: &Engine, request: &http1::Request) -> (u16, serde_json::Value) {
    if request.method != "POST" || request.path.split('?').next() != Some("/call") {
        return (502, json!({"error": "invalid_request", "message": "the Fn agent calls POST /call"}));
    }
    let deadline = match request.header("fn-deadline").map(deadline_instant) {
        Some(Some(d)) if d <= Instant::now() => {
            return (504, json!({"error": "deadline_exceeded", "message": "Fn-Deadline has passed"}));
        }
        Some(d) => d,
        None => None,
    };
    let (realm, token_argument) =
        engine.config().map_or(("", "token"), |c| (c.realm.as_str(), c.token_argument.as_str()));
    let mut decision_request = match gateway::parse(&request.body, token_argument) {
        Ok(r) => r,
        Err(e) => {
            let a = gateway::render_payload_error(&e);
            return (a.status, a.body);
        }
    };
    decision_request.deadline = deadline;
    decision_request.call_id = request.header("fn-call-id").map(str::to_string);
    let outcome = engine.decide(&decision_request);
    let rendered = gateway::render(&outcome, realm);
    match outcome {
        Outcome::Unavailable(c) if c.failure == Failure::DeadlineExceeded => (504, rendered.body),
        _ => (rendered.status, rendered.body),
    }
}

/// `Fn-Deadline` (RFC 3339, wall clock) as a monotonic instant; `None` if unreadable.
fn deadline_instant(value: &str) -> Option<Instant> {
    let deadline = OffsetDateTime::parse(value, &Rfc3339).ok()?;
    let left = deadline - OffsetDateTime::now_utc();
    if left.is_negative() {
        return Some(Instant::now());
    }
    Some(Instant::now() + Duration::try_from(left).ok()?)
}

fn operator_log(event: &str, message: &str) {
    let line = json!({"level": "warn", "event": event, "message": message});
    let _ = writeln!(io::stderr().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths_put_the_phony_socket_beside_the_link() {
        let (link, phony) = socket_paths("unix:/tmp/iofs/lsnr.sock").unwrap();
        assert_eq!(link, Path::new("/tmp/iofs/lsnr.sock"));
        assert_eq!(phony, Path::new("/tmp/iofs/phonylsnr.sock"));
    }

    #[test]
    fn socket_paths_refuse_other_schemes_and_long_paths() {
        assert!(socket_paths("/tmp/iofs/lsnr.sock").is_err());
        assert!(socket_paths("tcp://127.0.0.1:8080").is_err());
        assert!(socket_paths(&format!("unix:/{}", "a".repeat(120))).is_err());
    }

    #[test]
    fn deadline_in_the_past_is_now_and_garbage_is_none() {
        assert!(deadline_instant("2001-01-01T00:00:00Z").is_some_and(|d| d <= Instant::now()));
        assert!(deadline_instant("tomorrow").is_none());
        let soon = (OffsetDateTime::now_utc() + time::Duration::seconds(30)).format(&Rfc3339).unwrap();
        let d = deadline_instant(&soon).unwrap();
        assert!(d > Instant::now() + Duration::from_secs(25) && d < Instant::now() + Duration::from_secs(31));
    }
}
