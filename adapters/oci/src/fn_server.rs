//! The Fn "http-stream" protocol (docs/oci.md): a Unix socket at `FN_LISTENER`, published
//! through a relative symlink, serving `POST /call` over kept-alive HTTP/1.1, answering only
//! 200, 502 or 504.

use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokenbridge_core::{Engine, Failure, Outcome, Request};

use tokenbridge_serve::{Handler, Limits, Listener, Refusal, Response};
use tokenbridge_wire as gateway;

/// Identifies us to the agent, as the official FDKs do.
pub const FDK_VERSION: &str = concat!("fdk-tokenbridge/", env!("CARGO_PKG_VERSION"));
pub const FDK_RUNTIME: &str = "rust";

/// Largest `/call` body read; gateway payloads are a few KiB at most.
pub const MAX_BODY: usize = 256 * 1024;

/// Why `FN_LISTENER` names no socket tokenbridge can publish; each holds the setting's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenerError {
    #[error("FN_LISTENER {0:?} must start with unix:")]
    NotUnix(String),
    #[error("FN_LISTENER {0:?} has no file name")]
    NoFileName(String),
    /// A Unix socket's path is at most 107 bytes (`sun_path`, less its terminating NUL).
    #[error("FN_LISTENER path is longer than 107 bytes: {}", .0.display())]
    TooLong(PathBuf),
}

/// The socket path and the hidden path bound behind it, from `FN_LISTENER=unix:/dir/name`.
pub fn socket_paths(fn_listener: &str) -> Result<(PathBuf, PathBuf), ListenerError> {
    let path = fn_listener.strip_prefix("unix:").ok_or_else(|| ListenerError::NotUnix(fn_listener.to_string()))?;
    let path = Path::new(path);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(ListenerError::NoFileName(fn_listener.to_string()));
    };
    if path.as_os_str().len() > 107 {
        return Err(ListenerError::TooLong(path.to_path_buf()));
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

/// Serves the agent's connections until SIGTERM, then lets the calls in flight finish. A
/// connection waits for work without a worker of its own, so a reconnecting agent is never stuck
/// behind an abandoned connection.
pub fn serve(engine: &'static Engine, listener: UnixListener) -> io::Result<()> {
    tokenbridge_serve::serve(Listener::Unix(listener), Arc::new(Calls { engine }), limits())
}

/// The server's limits on the Fn socket.
pub fn limits() -> Limits {
    Limits {
        max_body: MAX_BODY,
        // The agent keeps its connection between calls for as long as the container is hot, and
        // a POST it sent on a connection we closed is not retried: no idle timeout.
        idle_timeout: None,
        request_timeout: Duration::from_secs(60),
        // Fn-Deadline bounds each call; this bounds one whose deadline is unreadable (Fn's
        // longest function timeout is 300 s).
        deadline: Duration::from_secs(300),
        // One agent connection: its calls stay on one thread.
        io_threads: Some(1),
        ..Limits::default()
    }
}

struct Calls {
    engine: &'static Engine,
}

impl Handler for Calls {
    fn handle(&self, head: &http::request::Parts, body: &[u8]) -> Response {
        let (status, body) = answer(self.engine, head, body);
        response(status, &body)
    }

    fn answer_now(&self, head: &http::request::Parts, body: &[u8]) -> Option<Response> {
        let (status, body) = answer_with(self.engine, head, body, &|request| self.engine.decide_now(request))?;
        Some(response(status, &body))
    }

    /// Every refusal is a 502 or 504: the agent kills the container on any other status.
    fn refuse(&self, why: &Refusal) -> Response {
        let (status, event, body) = match why {
            Refusal::Malformed(why) => (502, "malformed_request", json!({"error": "invalid_request", "message": why})),
            Refusal::HeadTooLarge => {
                (502, "request_too_large", json!({"error": "invalid_request", "message": "request head too large"}))
            }
            Refusal::BodyTooLarge => {
                (502, "request_too_large", json!({"error": "invalid_payload", "message": "request too large"}))
            }
            Refusal::Overloaded => (502, "overloaded", json!({"error": "overloaded"})),
            Refusal::Deadline => (504, "deadline_exceeded", json!({"error": "deadline_exceeded"})),
            Refusal::Failed => (502, "failed", json!({"error": "internal_error"})),
        };
        operator_log(event, body["message"].as_str().unwrap_or(event));
        response(status, &body)
    }
}

/// A JSON answer with the FDK's headers.
fn response(status: u16, body: &serde_json::Value) -> Response {
    let mut answer = http::Response::new(body.to_string().into_bytes());
    *answer.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    let headers = answer.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    headers.insert("fn-fdk-version", http::HeaderValue::from_static(FDK_VERSION));
    headers.insert("fn-fdk-runtime", http::HeaderValue::from_static(FDK_RUNTIME));
    answer
}

/// The socket status and body for one request to the function.
pub fn answer(engine: &Engine, head: &http::request::Parts, body: &[u8]) -> (u16, serde_json::Value) {
    answer_with(engine, head, body, &|request| Some(engine.decide(request)))
        .unwrap_or_else(|| (502, json!({"error": "internal_error"})))
}

/// [`answer`], deciding with `decide`; `None` when `decide` gives no outcome.
fn answer_with(
    engine: &Engine,
    head: &http::request::Parts,
    body: &[u8],
    decide: &dyn Fn(&Request) -> Option<Outcome>,
) -> Option<(u16, serde_json::Value)> {
    // The origin form only, as the agent sends it.
    if head.method != http::Method::POST || head.uri.scheme().is_some() || head.uri.path() != "/call" {
        return Some((502, json!({"error": "invalid_request", "message": "the Fn agent calls POST /call"})));
    }
    let header = |name: &str| head.headers.get(name).and_then(|v| v.to_str().ok()).map(|v| v.trim_matches([' ', '\t']));
    let deadline = match header("fn-deadline").map(deadline_instant) {
        Some(Some(d)) if d <= Instant::now() => {
            return Some((504, json!({"error": "deadline_exceeded", "message": "Fn-Deadline has passed"})));
        }
        Some(d) => d,
        None => None,
    };
    let (realm, token_argument) = engine.config().map_or(("", "token"), |c| (c.realm(), c.token_argument()));
    let mut decision_request = match gateway::parse(body, token_argument) {
        Ok(r) => r,
        Err(e) => {
            let a = gateway::render_payload_error(&e);
            return Some((a.status, a.body));
        }
    };
    decision_request.deadline = deadline;
    decision_request.call_id = header("fn-call-id").map(str::to_string);
    // OCI's request id, and a W3C trace context when the gateway passes one along.
    let opc = header("opc-request-id").map(tokenbridge_core::TraceContext::from_opc_request_id).unwrap_or_default();
    let w3c = header("traceparent").map(tokenbridge_core::TraceContext::from_traceparent).unwrap_or_default();
    decision_request.trace = w3c.or(opc);
    let outcome = decide(&decision_request)?;
    let rendered = gateway::render(&outcome, realm);
    Some(match outcome {
        Outcome::Unavailable(c) if c.failure == Failure::DeadlineExceeded => (504, rendered.body),
        _ => (rendered.status, rendered.body),
    })
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
        assert_eq!(socket_paths("/tmp/iofs/lsnr.sock"), Err(ListenerError::NotUnix("/tmp/iofs/lsnr.sock".into())));
        assert!(matches!(socket_paths("tcp://127.0.0.1:8080"), Err(ListenerError::NotUnix(_))));
        assert!(matches!(socket_paths("unix:/"), Err(ListenerError::NoFileName(_))));
        assert!(matches!(socket_paths(&format!("unix:/{}", "a".repeat(120))), Err(ListenerError::TooLong(_))));
    }

    #[test]
    fn every_refusal_is_a_status_the_agent_survives_with_the_fdk_headers() {
        let calls = Calls {
            engine: Box::leak(Box::new(
                Engine::builder(Err(tokenbridge_core::ConfigErrors(vec![]))).log_sink(|_| {}).build(),
            )),
        };
        for why in [
            Refusal::Malformed("x"),
            Refusal::HeadTooLarge,
            Refusal::BodyTooLarge,
            Refusal::Overloaded,
            Refusal::Deadline,
            Refusal::Failed,
        ] {
            let answer = calls.refuse(&why);
            assert!(matches!(answer.status().as_u16(), 502 | 504), "{why:?}: {}", answer.status());
            assert_eq!(answer.headers()["fn-fdk-version"], FDK_VERSION, "{why:?}");
            assert_eq!(answer.headers()["fn-fdk-runtime"], FDK_RUNTIME, "{why:?}");
            assert!(serde_json::from_slice::<serde_json::Value>(answer.body()).is_ok_and(|b| b.is_object()));
        }
    }

    #[test]
    fn only_post_to_call_in_origin_form_is_a_call() {
        let engine =
            Box::leak(Box::new(Engine::builder(Err(tokenbridge_core::ConfigErrors(vec![]))).log_sink(|_| {}).build()));
        for (method, target) in [("GET", "/call"), ("POST", "/other"), ("POST", "http://x/call"), ("POST", "/call/x")] {
            let (head, ()) = http::Request::builder().method(method).uri(target).body(()).unwrap().into_parts();
            assert_eq!(answer(engine, &head, b"{}").0, 502, "{method} {target}");
        }
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
