//! The HTTP adapter's two contracts as pure functions: forward-auth (nginx `auth_request`,
//! Traefik `forwardAuth`, Caddy `forward_auth`, Envoy `ext_authz` over HTTP) and the JSON
//! endpoint `POST /authorize`.

use serde_json::{Value, json};
use tokenbridge_core::{Outcome, Request, Route, rfc3339};
use tokenbridge_wire as gateway;

use crate::client_cert::CertificateSource;
use crate::identity::IdentityHeaders;

/// A request as the routing reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    /// The request target as sent (path and query, for the origin form).
    pub target: String,
    /// Names lower-cased, values without the spaces and tabs around them, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn from_parts(head: &http::request::Parts, body: &[u8]) -> Self {
        let headers = head
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes());
                (name.as_str().to_string(), value.trim_matches([' ', '\t']).to_string())
            })
            .collect();
        // As sent: an absolute-form target keeps its scheme and authority, so it is no `/auth/…`.
        Self { method: head.method.as_str().to_string(), target: head.uri.to_string(), headers, body: body.to_vec() }
    }

    /// The first value of a header; `name` lower-case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// An HTTP answer: status, extra headers, JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Self { status, headers: Vec::new(), body }
    }
}

/// What rendering needs from the configuration.
#[derive(Debug, Clone)]
pub struct Rendering<'a> {
    pub realm: &'a str,
    /// Context key of the backend token.
    pub context_key: &'a str,
    /// The identity headers of an allow.
    pub identity: &'a IdentityHeaders,
}

/// Seconds a client is asked to wait when the IdP did not say.
const DEFAULT_RETRY_AFTER: u64 = 5;

/// The decision request in a forward-auth call: the caller's `Authorization`, and the original
/// method and URI as the gateway reports them (`X-Forwarded-*` from Traefik and Caddy,
/// `X-Original-*` from the nginx recipe), else the request line of a call to `/auth/<original
/// path>` (Envoy's HTTP `ext_authz` with `path_prefix: /auth` sends the original method and path).
/// `X-Original-URL` stands for the URI in the `X-Original-*` family (ingress-nginx sends it with
/// `X-Original-Method`). Refused with a 400 when one of these headers comes twice, a family names
/// only a method or only a URI, or two sources name different routes: some of it then came from
/// the client, and nothing here can tell which part the gateway wrote.
pub fn forward_request(request: &HttpRequest, certificates: Option<&CertificateSource>) -> Result<Request, Reply> {
    let credential = single(request, "authorization")?;
    // Read only from the header the deployment names, which its gateway writes (RFC 8705 §3).
    let client_certificate = match certificates {
        None => None,
        Some(source) => match single(request, source.header())? {
            None => None,
            Some(value) => source
                .read(value)
                .map_err(|_| bad_request("the client certificate header is not in the configured format"))?,
        },
    };
    // RFC 9449 §4.3: a request with more than one DPoP header is refused.
    let dpop = single(request, "dpop")?;
    let sources = [
        pair(single(request, "x-forwarded-method")?, single(request, "x-forwarded-uri")?)?,
        pair(single(request, "x-original-method")?, original_uri(request)?)?,
        request_line_route(request),
    ];
    let mut named = sources.into_iter().flatten();
    let route = named.next();
    if let Some((method, path)) = route
        && named.any(|(m, p)| !m.eq_ignore_ascii_case(method) || p != path)
    {
        return Err(bad_request("the route headers and the request line name different routes"));
    }
    let (method, uri) = route.unzip();
    // The route is the path: a request target's query is no part of it (the core refuses a `?`
    // left in a path, which elsewhere can only be a decoded `%3F`).
    let path = uri.map(|uri| uri.split_once('?').map_or(uri, |(path, _)| path));
    Ok(Request {
        credential: credential.map(str::to_string),
        route: Route { method: method.map(str::to_string), path: path.map(str::to_string), ..Route::default() },
        dpop: dpop.map(str::to_string),
        client_certificate,
        ..Request::default()
    })
}

/// The route of a call to `/auth/<original path>`, as Envoy makes it.
fn request_line_route(request: &HttpRequest) -> Option<(&str, &str)> {
    let original = request.target.strip_prefix(FORWARD_AUTH_PATH).filter(|rest| rest.starts_with('/'))?;
    Some((request.method.as_str(), original))
}

/// The path the deployment recipes send forward-auth calls to.
const FORWARD_AUTH_PATH: &str = "/auth";

/// The value of a header that may appear at most once.
fn single<'a>(request: &'a HttpRequest, name: &str) -> Result<Option<&'a str>, Reply> {
    let mut values = request.headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
    match (values.next(), values.next()) {
        (value, None) => Ok(value),
        _ => Err(bad_request(&format!("{name} appears more than once"))),
    }
}

/// The `X-Original-*` family's URI: `X-Original-URI`, or the path and query of ingress-nginx's
/// absolute `X-Original-URL`; both present must agree.
fn original_uri(request: &HttpRequest) -> Result<Option<&str>, Reply> {
    let url = single(request, "x-original-url")?.map(|url| {
        let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
        after_scheme.find('/').map_or("/", |at| &after_scheme[at..])
    });
    match (single(request, "x-original-uri")?, url) {
        (Some(uri), Some(url)) if uri != url => Err(bad_request("X-Original-URI and X-Original-URL disagree")),
        (uri, url) => Ok(uri.or(url)),
    }
}

/// The route one header family reports: method and URI together, or neither.
fn pair<'a>(method: Option<&'a str>, uri: Option<&'a str>) -> Result<Option<(&'a str, &'a str)>, Reply> {
    match (method, uri) {
        (Some(m), Some(u)) => Ok(Some((m, u))),
        (None, None) => Ok(None),
        _ => Err(bad_request("a route header family names only a method or only a URI")),
    }
}

fn bad_request(message: &str) -> Reply {
    Reply::json(400, json!({"error": "bad_request", "message": message}))
}

/// Allow → 200 with the backend token as `Authorization` and identity headers for the gateway
/// to copy upstream; deny → 401/403 with the RFC 6750 challenge; unavailable → 503.
pub fn render_forward(outcome: &Outcome, r: &Rendering<'_>) -> Reply {
    match outcome {
        Outcome::Allow(grant) => {
            let mut headers = Vec::new();
            if let Some(token) = grant.context.get(r.context_key) {
                headers.push(("Authorization".to_string(), token.clone()));
            }
            // IdP B's token is visible ASCII (the core checks it); the identity values are
            // encoded so that none can split, fold or lose a byte.
            headers.retain(|(_, v)| is_header_safe(v));
            headers.extend(r.identity.render(grant));
            let body = json!({"active": true, "principal": grant.principal, "scope": grant.scopes,
                              "expiresAt": rfc3339(grant.expires_at)});
            Reply { status: 200, headers, body }
        }
        Outcome::Deny(denial) => Reply {
            status: denial.http_status(),
            headers: vec![("WWW-Authenticate".to_string(), denial.challenge(r.realm))],
            body: json!({"active": false, "error": denial.error_code().unwrap_or("missing_token")}),
        },
        Outcome::Unavailable(cause) => unavailable(cause, json!({"error": "unavailable", "cause": cause.code()})),
    }
}

/// `POST /authorize`: an OCI API Gateway payload in, the same JSON `tokenbridge stdio` writes
/// out. Decisions are 200; no decision is 503 with `Retry-After`; a bad payload is 400.
pub fn render_json(outcome: &Outcome, r: &Rendering<'_>) -> Reply {
    let answer = gateway::render(outcome, r.realm);
    match outcome {
        Outcome::Unavailable(cause) => unavailable(cause, answer.body),
        _ => Reply::json(200, answer.body),
    }
}

pub fn render_payload_error(error: &gateway::PayloadError) -> Reply {
    Reply::json(400, gateway::render_payload_error(error).body)
}

fn unavailable(cause: &tokenbridge_core::Cause, body: Value) -> Reply {
    let retry = cause.retry_after.unwrap_or(DEFAULT_RETRY_AFTER).to_string();
    Reply { status: 503, headers: vec![("Retry-After".to_string(), retry)], body }
}

fn is_header_safe(value: &str) -> bool {
    value.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tokenbridge_core::{Cause, Denial, Dependency, Failure, Grant};

    static IDENTITY: std::sync::LazyLock<IdentityHeaders> = std::sync::LazyLock::new(IdentityHeaders::default);

    fn rendering() -> Rendering<'static> {
        Rendering { realm: "api", context_key: "back_end_token", identity: &IDENTITY }
    }

    fn grant(principal: &str) -> Grant {
        let mut context = BTreeMap::new();
        context.insert("back_end_token".to_string(), "Bearer backend-xyz".to_string());
        Grant {
            principal: principal.into(),
            scopes: vec!["a".into(), "b".into()],
            client_id: Some("app".into()),
            expires_at: 1_800_000_000,
            context,
        }
    }

    fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
        reply.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn allow_hands_the_backend_token_to_the_gateway_in_a_header_not_the_body() {
        let reply = render_forward(&Outcome::Allow(grant("alice")), &rendering());
        assert_eq!(reply.status, 200);
        assert_eq!(header(&reply, "Authorization"), Some("Bearer backend-xyz"));
        assert_eq!(header(&reply, "X-Auth-Principal"), Some("alice"));
        assert_eq!(header(&reply, "X-Auth-Scopes"), Some("a b"));
        assert_eq!(header(&reply, "X-Auth-Client-Id"), Some("app"));
        assert!(!reply.body.to_string().contains("backend-xyz"));
    }

    #[test]
    fn identity_values_that_could_split_a_header_are_encoded() {
        let reply = render_forward(&Outcome::Allow(grant("eve\r\nX-Admin: 1")), &rendering());
        assert_eq!(header(&reply, "X-Auth-Principal"), Some("eve%0D%0AX-Admin: 1"));
        assert_eq!(header(&reply, "X-Admin"), None);
        assert_eq!(header(&reply, "Authorization"), Some("Bearer backend-xyz"));
    }

    #[test]
    fn denials_carry_their_status_and_challenge() {
        let invalid = render_forward(&Outcome::Deny(Denial::InvalidToken), &rendering());
        assert_eq!(
            (invalid.status, header(&invalid, "WWW-Authenticate")),
            (401, Some("Bearer realm=\"api\", error=\"invalid_token\""))
        );
        let scope =
            render_forward(&Outcome::Deny(Denial::InsufficientScope { required: vec!["w".into()] }), &rendering());
        assert_eq!(scope.status, 403);
        assert_eq!(scope.body["error"], "insufficient_scope");
        let missing = render_forward(&Outcome::Deny(Denial::MissingToken), &rendering());
        assert_eq!((missing.status, header(&missing, "WWW-Authenticate")), (401, Some("Bearer realm=\"api\"")));
    }

    #[test]
    fn unavailable_is_a_503_with_retry_after() {
        let mut cause = Cause::new(Dependency::Introspection, Failure::Timeout);
        let reply = render_forward(&Outcome::Unavailable(cause), &rendering());
        assert_eq!((reply.status, header(&reply, "Retry-After")), (503, Some("5")));
        cause.retry_after = Some(30);
        assert_eq!(header(&render_json(&Outcome::Unavailable(cause), &rendering()), "Retry-After"), Some("30"));
    }

    /// A request from its request line and header lines (CRLF after each).
    fn parse(raw: &str) -> HttpRequest {
        let mut lines = raw.split("\r\n");
        let mut line = lines.next().unwrap().split(' ');
        let (method, target) = (line.next().unwrap(), line.next().unwrap());
        let mut builder = http::Request::builder().method(method).uri(target);
        for field in lines.take_while(|l| !l.is_empty()) {
            let (name, value) = field.split_once(':').unwrap();
            builder = builder.header(name, value.trim());
        }
        let (head, ()) = builder.body(()).unwrap().into_parts();
        HttpRequest::from_parts(&head, b"")
    }

    #[test]
    fn original_method_and_uri_come_from_either_header_family() {
        let raw = "GET /auth HTTP/1.1\r\nAuthorization: Bearer t\r\nX-Original-Method: POST\r\nX-Original-URI: /orders/7\r\n\r\n";
        let request = forward_request(&parse(raw), None).unwrap();
        assert_eq!(request.credential.as_deref(), Some("Bearer t"));
        assert_eq!(request.route.method.as_deref(), Some("POST"));
        assert_eq!(request.route.path.as_deref(), Some("/orders/7"));
    }

    fn forwarded(headers: &str) -> Result<Request, Reply> {
        let raw = format!("GET /auth HTTP/1.1\r\nAuthorization: Bearer t\r\n{headers}\r\n");
        forward_request(&parse(&raw), None)
    }

    #[test]
    fn without_route_headers_the_route_is_the_request_line_under_auth() {
        let envoy = |line: &str| {
            let raw = format!("{line}\r\nAuthorization: Bearer t\r\n\r\n");
            forward_request(&parse(&raw), None).unwrap()
        };
        let request = envoy("DELETE /auth/orders/7?x=1 HTTP/1.1");
        assert_eq!(request.route.method.as_deref(), Some("DELETE"));
        assert_eq!(request.route.path.as_deref(), Some("/orders/7"), "the query is no part of the route");
        for line in ["GET /auth HTTP/1.1", "GET /authx/orders HTTP/1.1", "GET /orders/7 HTTP/1.1"] {
            assert_eq!(envoy(line).route, Route::default(), "{line}");
        }
        let headers = forwarded("X-Forwarded-Method: GET\r\nX-Forwarded-Uri: /a\r\n").unwrap();
        assert_eq!(headers.route.path.as_deref(), Some("/a"));
    }

    #[test]
    fn route_headers_cannot_take_over_half_of_a_request_line_route() {
        let envoy = |line: &str, headers: &str| {
            let raw = format!("{line}\r\nAuthorization: Bearer t\r\n{headers}\r\n");
            forward_request(&parse(&raw), None)
        };
        for (line, headers) in [
            ("GET /auth/admin/users HTTP/1.1", "X-Original-Method: GET\r\n"),
            ("DELETE /auth/admin/users HTTP/1.1", "X-Original-URI: /public\r\n"),
            ("GET /auth/admin/users HTTP/1.1", "X-Forwarded-Method: GET\r\nX-Forwarded-Uri: /public\r\n"),
            ("GET /auth HTTP/1.1", "X-Forwarded-Uri: /public\r\n"),
        ] {
            assert_eq!(envoy(line, headers).map(|r| r.route).unwrap_err().status, 400, "{line} {headers}");
        }
        let agreeing = envoy("GET /auth/a HTTP/1.1", "X-Forwarded-Method: get\r\nX-Forwarded-Uri: /a\r\n").unwrap();
        assert_eq!(agreeing.route.path.as_deref(), Some("/a"));
    }

    #[test]
    fn a_route_header_the_client_added_beside_the_gateways_is_refused() {
        // nginx writes X-Original-URI; a client adds X-Forwarded-Uri naming a laxer route.
        let spoofed = forwarded("X-Original-URI: /admin/users\r\nX-Forwarded-Uri: /orders/7\r\n").unwrap_err();
        assert_eq!(spoofed.status, 400);
        let spoofed = forwarded("X-Forwarded-Method: GET\r\nX-Original-Method: DELETE\r\n").unwrap_err();
        assert_eq!(spoofed.status, 400);
        assert_eq!(forwarded("X-Forwarded-Uri: /a\r\nX-Forwarded-Uri: /b\r\n").unwrap_err().status, 400);
        assert_eq!(forwarded("Authorization: Bearer u\r\n").unwrap_err().status, 400);
        let both = "X-Original-Method: GET\r\nX-Original-URI: /orders/7\r\n";
        let agreeing = forwarded(&format!("{both}X-Forwarded-Method: get\r\nX-Forwarded-Uri: /orders/7\r\n")).unwrap();
        assert_eq!(agreeing.route.path.as_deref(), Some("/orders/7"));
        // ingress-nginx: X-Original-Method with X-Original-URL; a client's X-Forwarded-Uri cannot
        // complete or change it.
        let ingress = "X-Original-Method: DELETE\r\nX-Original-URL: https://api.example/admin/x?y=1\r\n";
        let route = forwarded(ingress).unwrap().route;
        assert_eq!((route.method.as_deref(), route.path.as_deref()), (Some("DELETE"), Some("/admin/x")));
        let mixed = format!("{ingress}X-Forwarded-Method: GET\r\nX-Forwarded-Uri: /public\r\n");
        assert_eq!(forwarded(&mixed).unwrap_err().status, 400);
        assert_eq!(forwarded("X-Original-Method: DELETE\r\nX-Forwarded-Uri: /public\r\n").unwrap_err().status, 400);
        assert_eq!(forwarded(&format!("{both}X-Original-URL: http://h/admin\r\n")).unwrap_err().status, 400);
        assert_eq!(forwarded("X-Original-URL: http://h/orders/7\r\n").unwrap_err().status, 400);
    }
}
