//! `tokenbridge http` on the shared server (`tokenbridge-serve`): where it listens, how it
//! routes, and how its refusals read. Connections, limits and the graceful stop on SIGTERM are
//! the server's.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use serde_json::json;
use tokenbridge_core::{Engine, Outcome, Request};
use tokenbridge_serve::{Handler, Limits, Listener, Refusal, Response};
use tokenbridge_wire as gateway;

use crate::client_cert::CertificateSource;
use crate::forward::{self, HttpRequest, Rendering, Reply};
use crate::identity::IdentityHeaders;

/// Largest body read (`POST /authorize` payloads are a few KiB).
pub const MAX_BODY: usize = 64 * 1024;
/// Largest request head, and most header fields in it.
pub const MAX_HEAD: usize = 64 * 1024;
pub const MAX_HEADERS: usize = 64;

/// The address chosen to listen on does not read as `host:port`; it holds what was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a listen address (host:port)")]
pub struct BadListenAddress(pub String);

/// Where to listen: `TOKENBRIDGE_LISTEN`, else `0.0.0.0:$PORT` (Cloud Run, Knative), else
/// `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT` (Azure Functions, whose host calls on loopback),
/// else `0.0.0.0:8080`.
pub fn listen_address(env: impl Fn(&str) -> Option<String>) -> Result<SocketAddr, BadListenAddress> {
    let chosen = if let Some(addr) = env("TOKENBRIDGE_LISTEN") {
        addr
    } else if let Some(port) = env("PORT") {
        format!("0.0.0.0:{port}")
    } else if let Some(port) = env("FUNCTIONS_CUSTOMHANDLER_PORT") {
        format!("127.0.0.1:{port}")
    } else {
        "0.0.0.0:8080".to_string()
    };
    chosen.trim().parse().map_err(|_| BadListenAddress(chosen))
}

/// The server's limits for `tokenbridge http`: `workers` decisions at once, `max_connections`
/// connections open.
pub fn limits(workers: usize, max_connections: usize) -> Limits {
    Limits {
        workers,
        max_connections,
        max_body: MAX_BODY,
        max_head: MAX_HEAD,
        max_headers: MAX_HEADERS,
        ..Limits::default()
    }
}

/// Serves until SIGTERM or SIGINT, then finishes the requests in flight and returns.
pub fn serve(engine: &'static Engine, listener: TcpListener, limits: Limits, options: Options) -> io::Result<()> {
    tokenbridge_serve::serve(Listener::Tcp(listener), Arc::new(Routes { engine, options }), limits)
}

/// What a deployment sets about forward-auth: the identity headers of an allow, and where the
/// caller's mutual TLS certificate is read from.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub identity: IdentityHeaders,
    pub client_cert: Option<CertificateSource>,
}

struct Routes {
    engine: &'static Engine,
    options: Options,
}

impl Handler for Routes {
    fn handle(&self, head: &http::request::Parts, body: &[u8]) -> Response {
        if let Some(metrics) = metrics(head) {
            return metrics;
        }
        let request = HttpRequest::from_parts(head, body);
        to_response(&answer(self.engine, &self.options, &request))
    }

    fn answer_now(&self, head: &http::request::Parts, body: &[u8]) -> Option<Response> {
        if let Some(metrics) = metrics(head) {
            return Some(metrics);
        }
        let request = HttpRequest::from_parts(head, body);
        answer_with(self.engine, &self.options, &request, &|decision| self.engine.decide_now(decision))
            .map(|r| to_response(&r))
    }

    fn refuse(&self, why: &Refusal) -> Response {
        let mut reply = match why {
            Refusal::Malformed(why) => Reply::json(400, json!({"error": "bad_request", "message": why})),
            Refusal::HeadTooLarge => Reply::json(431, json!({"error": "headers_too_large"})),
            Refusal::BodyTooLarge => Reply::json(413, json!({"error": "too_large"})),
            Refusal::Overloaded => Reply::json(503, json!({"error": "overloaded"})),
            Refusal::Deadline => Reply::json(503, json!({"error": "unavailable", "cause": "deadline"})),
            Refusal::Failed => Reply::json(500, json!({"error": "internal_error"})),
        };
        if reply.status == 503 {
            reply.headers.push(("Retry-After".into(), "1".into()));
        }
        to_response(&reply)
    }
}

/// Routes one request.
pub fn answer(engine: &Engine, options: &Options, request: &HttpRequest) -> Reply {
    answer_with(engine, options, request, &|decision| Some(engine.decide(decision)))
        .unwrap_or_else(|| Reply::json(500, json!({"error": "internal_error"})))
}

/// Routes one request, deciding with `decide`; `None` when `decide` gives no outcome.
fn answer_with(
    engine: &Engine,
    options: &Options,
    request: &HttpRequest,
    decide: &dyn Fn(&Request) -> Option<Outcome>,
) -> Option<Reply> {
    let identity = &options.identity;
    let rendering = engine.config().map_or_else(
        |_| Rendering { realm: "", context_key: "", identity },
        |c| Rendering { realm: c.realm(), context_key: c.context_key(), identity },
    );
    let path = request.target.split('?').next().unwrap_or("");
    match (request.method.as_str(), path) {
        ("GET" | "HEAD", "/healthz") => Some(Reply::json(200, json!({"status": "ok"}))),
        ("GET" | "HEAD", "/readyz") => Some(match engine.config() {
            Ok(_) if engine.is_ready() => Reply::json(200, json!({"status": "ready"})),
            Ok(_) => Reply::json(503, json!({"status": "not_ready", "waiting_for": "jwks"})),
            Err(problems) => Reply::json(503, json!({"status": "not_ready", "problems": problems.0.len()})),
        }),
        ("POST", "/authorize") => {
            let token_argument = engine.config().map_or("token", |c| c.token_argument());
            match gateway::parse(&request.body, token_argument) {
                Ok(mut decision) => {
                    decision.call_id = request_id(request);
                    decision.trace = trace_context(request);
                    Some(forward::render_json(&decide(&decision)?, &rendering))
                }
                Err(e) => Some(forward::render_payload_error(&e)),
            }
        }
        _ => match forward::forward_request(request, options.client_cert.as_ref()) {
            Ok(mut decision) => {
                decision.call_id = request_id(request);
                decision.trace = trace_context(request);
                Some(forward::render_forward(&decide(&decision)?, &rendering))
            }
            Err(refusal) => Some(refusal),
        },
    }
}

/// `GET /metrics`: the process's metrics as OpenMetrics text, the server's load read just now;
/// `None` for any other request. It holds no token, secret, principal or path, so it is served
/// on the one port like `/healthz`.
fn metrics(head: &http::request::Parts) -> Option<Response> {
    let path = head.uri.path_and_query().map_or("", |p| p.path());
    if path != "/metrics" || !matches!(head.method, http::Method::GET | http::Method::HEAD) {
        return None;
    }
    let load = tokenbridge_serve::load();
    tokenbridge_core::metrics::set_server_gauges(load.connections_open, load.requests_in_flight);
    let mut response = http::Response::new(tokenbridge_core::metrics::encode().into_bytes());
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(tokenbridge_core::metrics::CONTENT_TYPE));
    headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    Some(response)
}

/// The trace context the gateway sent: W3C `traceparent` (Envoy, Traefik, Caddy, nginx with
/// OpenTelemetry), and the `X-Amzn-Trace-Id` of an AWS load balancer.
fn trace_context(request: &HttpRequest) -> tokenbridge_core::TraceContext {
    use tokenbridge_core::TraceContext;
    let w3c = request.header("traceparent").map(TraceContext::from_traceparent).unwrap_or_default();
    let xray = request.header("x-amzn-trace-id").map(TraceContext::from_xray).unwrap_or_default();
    w3c.or(xray)
}

fn request_id(request: &HttpRequest) -> Option<String> {
    ["x-request-id", "x-cloud-trace-context", "traceparent"]
        .iter()
        .find_map(|h| request.header(h))
        .map(|v| v.chars().take(128).collect())
}

/// The answer on the wire: a JSON body, never cached (hyper sends no body to a HEAD request).
fn to_response(reply: &Reply) -> Response {
    let mut response = http::Response::new(reply.body.to_string().into_bytes());
    *response.status_mut() =
        http::StatusCode::from_u16(reply.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    for (name, value) in &reply.headers {
        // Values that could split a header were left out when rendering; anything else invalid
        // is left out here rather than sent.
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_str(value))
        {
            headers.append(name, value);
        }
    }
    response
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
        assert_eq!(listen_address(env(&[("PORT", "http")])), Err(BadListenAddress("0.0.0.0:http".into())));
    }

    #[test]
    fn a_reply_keeps_its_status_and_headers_and_is_never_cached() {
        let mut reply = Reply::json(401, json!({"active": false}));
        reply.headers.push(("WWW-Authenticate".into(), "Bearer realm=\"api\"".into()));
        reply.headers.push(("X-Bad".into(), "a\u{7f}b".into()));
        let response = to_response(&reply);
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"api\"");
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert!(response.headers().get("x-bad").is_none());
        assert_eq!(response.body(), br#"{"active":false}"#);
    }
}
