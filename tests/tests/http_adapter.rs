//! `tokenbridge http`: forward-auth and the JSON endpoint over real TCP, behind a real nginx,
//! under concurrency, with malformed requests, and stopping gracefully on SIGTERM.

use std::time::Duration;

use serde_json::{Value, json};
use tokenbridge_tests::http_server::{EchoBackend, Exchange, HttpServer, Nginx, raw_exchange};
use tokenbridge_tests::{Fault, IdpPair};

type Headers = Vec<(String, String)>;

fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> Exchange {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    raw_exchange(addr, request.as_bytes()).expect("an HTTP answer")
}

fn post(addr: &str, path: &str, body: &str) -> Exchange {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw_exchange(addr, request.as_bytes()).expect("an HTTP answer")
}

fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{body:?} is not JSON: {e}"))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn forward_auth_allows_with_the_backend_token_and_identity_headers() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "orders.read", 600);
    let server = HttpServer::start(&idp.env());
    let (status, headers, body) = get(
        &server.addr,
        "/auth",
        &[("Authorization", &bearer(&token)), ("X-Forwarded-Method", "GET"), ("X-Forwarded-Uri", "/orders/1")],
    );
    assert_eq!(status, 200, "{body}");
    assert!(header(&headers, "authorization").is_some_and(|v| v.starts_with("Bearer backend-")), "{headers:?}");
    assert_eq!(header(&headers, "x-auth-principal"), Some("alice"));
    assert_eq!(header(&headers, "x-auth-scopes"), Some("orders.read"));
    assert!(!body.contains(&token) && !body.contains("backend-"), "the body carries no token: {body}");
}

#[test]
fn forward_auth_denials_are_401_and_403_with_challenges() {
    let idp = IdpPair::start();
    let weak = idp.a.issue("bob", "other", 600);
    let server =
        HttpServer::start(&[idp.env(), vec![("TOKENBRIDGE_REQUIRED_SCOPES".into(), "orders.read".into())]].concat());
    let (status, headers, _) = get(&server.addr, "/auth", &[("Authorization", "Bearer unknown")]);
    assert_eq!(
        (status, header(&headers, "www-authenticate")),
        (401, Some("Bearer realm=\"tokenbridge\", error=\"invalid_token\""))
    );
    let (status, headers, _) = get(&server.addr, "/auth", &[("Authorization", &bearer(&weak))]);
    assert_eq!(status, 403);
    assert_eq!(
        header(&headers, "www-authenticate"),
        Some("Bearer realm=\"tokenbridge\", error=\"insufficient_scope\", scope=\"orders.read\"")
    );
    let (status, headers, _) = get(&server.addr, "/auth", &[]);
    assert_eq!((status, header(&headers, "www-authenticate")), (401, Some("Bearer realm=\"tokenbridge\"")));
}

#[test]
fn an_idp_outage_is_a_503_with_retry_after() {
    let idp = IdpPair::start();
    idp.a.set_introspect_fault(Some(Fault::Status(502, String::new())));
    let server = HttpServer::start(&idp.env());
    let (status, headers, body) = get(&server.addr, "/auth", &[("Authorization", "Bearer t")]);
    assert_eq!((status, header(&headers, "retry-after")), (503, Some("5")));
    assert_eq!(json_of(&body)["cause"], "introspection_bad_status");
}

#[test]
fn the_json_endpoint_answers_like_stdio() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    let server = HttpServer::start(&idp.env());
    let (status, _, body) =
        post(&server.addr, "/authorize", &json!({"type":"TOKEN","token": bearer(&token)}).to_string());
    assert_eq!(status, 200);
    let answer = json_of(&body);
    assert_eq!(answer["active"], true);
    assert!(answer["context"]["back_end_token"].as_str().unwrap().starts_with("Bearer backend-"));
    let (status, _, body) = post(&server.addr, "/authorize", "{not json");
    assert_eq!((status, json_of(&body)["error"].as_str()), (400, Some("invalid_payload")));
}

#[test]
fn health_needs_no_idp_and_readiness_reflects_the_configuration() {
    let idp = IdpPair::start();
    let good = HttpServer::start(&idp.env());
    assert_eq!(get(&good.addr, "/healthz", &[]).0, 200);
    assert_eq!(get(&good.addr, "/readyz", &[]).0, 200);
    assert_eq!(idp.a.introspections() + idp.b.token_requests(), 0);
    let bad = HttpServer::start(&[]);
    assert_eq!(get(&bad.addr, "/healthz", &[]).0, 200);
    assert_eq!(get(&bad.addr, "/readyz", &[]).0, 503);
}

#[test]
fn parallel_requests_for_one_new_token_make_one_call_to_each_idp() {
    let idp = IdpPair::start();
    idp.a.set_introspect_fault(Some(Fault::Delay(Duration::from_millis(300))));
    let token = idp.a.issue("alice", "", 600);
    let server = HttpServer::start(&idp.env());
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (addr, auth) = (server.addr.clone(), bearer(&token));
            std::thread::spawn(move || get(&addr, "/auth", &[("Authorization", &auth)]).0)
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
    assert_eq!((idp.a.introspections(), idp.b.token_requests()), (1, 1));
}

#[test]
fn malformed_requests_get_clean_4xx_and_the_server_keeps_serving() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    let mut server = HttpServer::start(&idp.env());
    let huge = format!("GET /auth HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(100_000));
    let cases: [(&str, &[u8]); 4] = [
        ("garbage", b"\x16\x03\x01\x00\xff\xff\r\n\r\n"),
        ("huge headers", huge.as_bytes()),
        ("bad content length", b"POST /authorize HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
        ("body too large", b"POST /authorize HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n"),
    ];
    for (name, raw) in cases {
        let (status, _, _) = raw_exchange(&server.addr, raw).unwrap_or_else(|| panic!("{name}: no answer"));
        assert!((400..500).contains(&status), "{name}: {status}");
        assert_eq!(get(&server.addr, "/auth", &[("Authorization", &bearer(&token))]).0, 200, "after {name}");
    }
    assert!(server.is_alive());
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    let server = HttpServer::start(&idp.env());
    let one = format!("GET /auth HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
    let last = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (_, _, rest) = raw_exchange(&server.addr, format!("{one}{one}{last}").as_bytes()).unwrap();
    assert_eq!(rest.matches("HTTP/1.1 200 OK").count(), 2, "{rest}");
}

#[test]
fn a_head_answer_has_no_body_and_the_connection_stays_in_step() {
    let idp = IdpPair::start();
    let server = HttpServer::start(&idp.env());
    let head = "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let last = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (status, headers, rest) = raw_exchange(&server.addr, format!("{head}{last}").as_bytes()).unwrap();
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-length"), Some(r#"{"status":"ok"}"#.len().to_string().as_str()));
    assert!(rest.starts_with("HTTP/1.1 200 OK\r\n"), "the next answer follows the HEAD's headers: {rest:?}");
    assert!(rest.ends_with(r#"{"status":"ok"}"#), "{rest:?}");
}

/// Milliseconds a `GET /healthz` on a fresh connection takes to be answered.
fn healthz_millis(addr: &str) -> u128 {
    let started = std::time::Instant::now();
    let (status, _, _) = get(addr, "/healthz", &[]);
    assert_eq!(status, 200);
    started.elapsed().as_millis()
}

/// The soft limit on open files, which the many-connection tests need room under.
fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("the open-files line");
    line.split_whitespace().nth(3).and_then(|soft| soft.parse().ok()).unwrap_or(u64::MAX)
}

#[test]
fn silent_connections_do_not_delay_a_legitimate_request() {
    use std::io::{Read, Write};
    let idp = IdpPair::start();
    // One worker: connections no longer hold one, so 200 that say nothing cost it nothing.
    let server = HttpServer::start(&[idp.env(), vec![("TOKENBRIDGE_HTTP_WORKERS".into(), "1".into())]].concat());
    let alone = healthz_millis(&server.addr);
    let mut kept = std::net::TcpStream::connect(&server.addr).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let silent: Vec<_> = (0..200).map(|_| std::net::TcpStream::connect(&server.addr).unwrap()).collect();
    // Half of them started a request and stopped mid-head.
    for mut stream in silent.iter().step_by(2) {
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    let crowded = (0..5).map(|_| healthz_millis(&server.addr)).max().unwrap();
    assert!(crowded < 300, "answered in {crowded} ms with 200 silent connections open (alone: {alone} ms)");
    drop(silent);
}

#[test]
fn a_thousand_concurrent_kept_alive_connections_are_all_served() {
    use std::io::{BufRead, BufReader, Read, Write};
    const N: usize = 1000;
    assert!(open_files_limit() > 2 * N as u64 + 200, "raise the open-files limit (ulimit -n; scripts/test does)");
    let idp = IdpPair::start();
    let server = HttpServer::start(&idp.env());
    let mut connections: Vec<_> = (0..N)
        .map(|_| {
            let stream = std::net::TcpStream::connect(&server.addr).expect("connect");
            stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            BufReader::new(stream)
        })
        .collect();
    // Every connection asks twice, all first requests before any second one: each stays open
    // and kept alive while the others are served.
    for round in 0..2 {
        for connection in &mut connections {
            connection.get_mut().write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
        }
        for (i, connection) in connections.iter_mut().enumerate() {
            let mut status = String::new();
            connection.read_line(&mut status).expect("an answer");
            assert!(status.starts_with("HTTP/1.1 200"), "connection {i}, round {round}: {status:?}");
            let mut length = 0;
            loop {
                let mut line = String::new();
                connection.read_line(&mut line).unwrap();
                if line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            connection.read_exact(&mut body).unwrap();
        }
    }
}

#[test]
fn past_the_connection_limit_a_new_connection_gets_a_503_with_retry_after_at_once() {
    let idp = IdpPair::start();
    let limit = ("TOKENBRIDGE_HTTP_MAX_CONNECTIONS".to_string(), "2".to_string());
    let server = HttpServer::start(&[idp.env(), vec![limit]].concat());
    let open: Vec<_> = (0..2).map(|_| std::net::TcpStream::connect(&server.addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let (status, headers, _) = get(&server.addr, "/healthz", &[]);
    assert_eq!((status, header(&headers, "retry-after")), (503, Some("1")));
    assert!(started.elapsed() < Duration::from_secs(2), "refused at once");
    drop(open);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(get(&server.addr, "/healthz", &[]).0, 200, "served again once connections closed");
}

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits_cleanly() {
    let idp = IdpPair::start();
    idp.a.set_introspect_fault(Some(Fault::Delay(Duration::from_millis(700))));
    let token = idp.a.issue("alice", "", 600);
    let server = HttpServer::start(&idp.env());
    let (addr, auth) = (server.addr.clone(), bearer(&token));
    let in_flight = std::thread::spawn(move || get(&addr, "/auth", &[("Authorization", &auth)]).0);
    std::thread::sleep(Duration::from_millis(200));
    let (clean, log) = server.terminate();
    assert_eq!(in_flight.join().unwrap(), 200, "the request in flight was answered");
    assert!(clean, "exit status 0:\n{log}");
    assert!(log.contains("\"event\":\"stopped\""), "{log}");
}

/// The nginx recipe from adapters/http/deploy/nginx.conf, pointed at this test's processes.
fn nginx_in_front(server: &HttpServer, backend: &EchoBackend) -> Option<Nginx> {
    let recipe = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../adapters/http/deploy/nginx.conf"))
        .expect("the nginx recipe");
    let block = recipe
        .replace("listen 8000;", "listen 127.0.0.1:{port};")
        .replace("tokenbridge:8080", &server.addr)
        .replace("backend:9000", &format!("127.0.0.1:{}", backend.port));
    let nginx = Nginx::start(&block);
    if nginx.is_none() {
        assert!(std::env::var_os("CI").is_none(), "nginx is not installed (scripts/test installs it)");
        eprintln!("skipping: nginx is not installed");
    }
    nginx
}

#[test]
fn through_nginx_a_valid_caller_reaches_the_backend_with_the_backend_token() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    let server = HttpServer::start(&idp.env());
    let backend = EchoBackend::start();
    let Some(nginx) = nginx_in_front(&server, &backend) else { return };
    let addr = format!("127.0.0.1:{}", nginx.port);
    let (status, _, body) = get(&addr, "/orders/42?x=1", &[("Authorization", &bearer(&token))]);
    assert_eq!(status, 200, "{body}\n{}", nginx.error_log());
    let seen = json_of(&body);
    let forwarded = seen["authorization"].as_str().unwrap();
    assert!(forwarded.starts_with("Bearer backend-"), "the backend got {forwarded}");
    assert_ne!(forwarded, bearer(&token), "the caller's own token never reaches the backend");
    assert_eq!(seen["principal"], "alice");
    assert_eq!(seen["path"], "/orders/42?x=1");
    assert_eq!(backend.hits(), 1);
}

#[test]
fn through_nginx_a_bad_token_gets_401_with_the_challenge_and_never_reaches_the_backend() {
    let idp = IdpPair::start();
    let server = HttpServer::start(&idp.env());
    let backend = EchoBackend::start();
    let Some(nginx) = nginx_in_front(&server, &backend) else { return };
    let addr = format!("127.0.0.1:{}", nginx.port);
    let (status, headers, _) = get(&addr, "/orders/1", &[("Authorization", "Bearer forged")]);
    assert_eq!(status, 401);
    let challenges: Vec<_> = headers.iter().filter(|(k, _)| k == "www-authenticate").map(|(_, v)| v.as_str()).collect();
    assert_eq!(challenges, ["Bearer realm=\"tokenbridge\", error=\"invalid_token\""], "exactly one challenge");
    let (status, _, _) = get(&addr, "/orders/1", &[]);
    assert_eq!(status, 401);
    assert_eq!(backend.hits(), 0);
}

#[test]
fn through_nginx_an_idp_outage_is_a_5xx_and_never_reaches_the_backend() {
    let idp = IdpPair::start();
    idp.b.set_token_fault(Some(Fault::Status(503, String::new())));
    let token = idp.a.issue("alice", "", 600);
    let server = HttpServer::start(&idp.env());
    let backend = EchoBackend::start();
    let Some(nginx) = nginx_in_front(&server, &backend) else { return };
    let (status, _, _) = get(&format!("127.0.0.1:{}", nginx.port), "/orders/1", &[("Authorization", &bearer(&token))]);
    assert!((500..600).contains(&status), "{status}");
    assert_eq!(backend.hits(), 0);
}

/// Orders need no scope, admin needs `admin`; everything else is denied.
const ADMIN_POLICY: &str = r#"{"routes": [{"path": "/orders/**"}, {"path": "/admin/**", "scopes": ["admin"]}]}"#;

#[test]
fn through_nginx_a_client_cannot_name_another_route_than_the_one_it_calls() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "orders.read", 600);
    let server = HttpServer::start(&[idp.env(), vec![("TOKENBRIDGE_POLICY".into(), ADMIN_POLICY.into())]].concat());
    let backend = EchoBackend::start();
    let Some(nginx) = nginx_in_front(&server, &backend) else { return };
    let addr = format!("127.0.0.1:{}", nginx.port);
    let auth = bearer(&token);
    assert_eq!(get(&addr, "/orders/1", &[("Authorization", &auth)]).0, 200, "the orders route is open to her");

    let (status, headers, _) = get(&addr, "/admin/users", &[("Authorization", &auth)]);
    assert_eq!(status, 403);
    let challenges: Vec<_> = headers.iter().filter(|(k, _)| k == "www-authenticate").map(|(_, v)| v.as_str()).collect();
    assert_eq!(challenges, ["Bearer realm=\"tokenbridge\", error=\"insufficient_scope\", scope=\"admin\""]);

    let spoofed = [("Authorization", auth.as_str()), ("X-Forwarded-Uri", "/orders/1"), ("X-Forwarded-Method", "GET")];
    assert_eq!(get(&addr, "/admin/users", &spoofed).0, 403, "headers the client adds do not name the route");
    for sneaky in ["/orders/../admin/users", "/orders/%2e%2e/admin/users", "/%61dmin/users", "/ADMIN/users"] {
        let (status, _, _) = get(&addr, sneaky, &[("Authorization", &auth)]);
        assert!(status == 403 || status == 400, "{sneaky}: {status}");
    }
    assert_eq!(backend.hits(), 1, "only the orders call reached the backend");
}

#[test]
fn through_nginx_what_nginx_sends_for_a_chunked_upload_or_tabs_and_padding_in_values_is_read_not_refused() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    let server = HttpServer::start(&idp.env());
    let backend = EchoBackend::start();
    let Some(nginx) = nginx_in_front(&server, &backend) else { return };
    let addr = format!("127.0.0.1:{}", nginx.port);
    let auth = bearer(&token);
    // The strict reader must not turn the auth subrequests of ordinary client requests into
    // refusals (nginx makes a 500 of any answer but 2xx, 401 and 403).
    let chunked = format!(
        "POST /orders/1 HTTP/1.1\r\nHost: test\r\nConnection: close\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    );
    let (status, _, body) = raw_exchange(&addr, chunked.as_bytes()).expect("an answer");
    assert_eq!(status, 200, "{body}\n{}", nginx.error_log());
    let odd = [
        &b"GET /orders/2 HTTP/1.1\r\nHost: test\r\nConnection: close\r\nX-Tabbed: a\tb\r\n"[..],
        format!("Authorization: {auth}\r\nX-Padded:   v   \r\n\r\n").as_bytes(),
    ]
    .concat();
    let (status, _, body) = raw_exchange(&addr, &odd).expect("an answer");
    assert_eq!(status, 200, "{body}\n{}", nginx.error_log());
    assert_eq!(backend.hits(), 2);
}

/// Identity headers are named by the deployment, may carry a context claim, and hold values the
/// IdP chose only in an encoding no gateway can split, fold or trim.
#[test]
fn identity_headers_are_configurable_and_header_safe_whatever_the_claims_hold() {
    let idp = IdpPair::start();
    let token = "configured-identity";
    idp.a.add_token(
        token,
        json!({"active": true, "sub": "eve\r\nX-Admin: 1", "scope": "a b", "client_id": "app",
               "email": " zoë@example.com", "exp": tokenbridge_tests::fake_idp::unix_now() + 600}),
    );
    let mut env = idp.env();
    env.push(("TOKENBRIDGE_CONTEXT_CLAIMS".into(), "email".into()));
    env.push(("TOKENBRIDGE_HTTP_IDENTITY_HEADERS".into(), "X-User=principal X-User-Email=claim:email".into()));
    let server = HttpServer::start(&env);
    let (status, headers, body) = get(&server.addr, "/auth", &[("Authorization", &bearer(token))]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-user"), Some("eve%0D%0AX-Admin: 1"), "{headers:?}");
    assert_eq!(header(&headers, "x-user-email"), Some("%20zo%C3%AB@example.com"), "{headers:?}");
    assert_eq!(header(&headers, "x-admin"), None);
    assert_eq!(header(&headers, "x-auth-principal"), None, "the default names are replaced, not added to");
    assert!(header(&headers, "authorization").is_some_and(|v| v.starts_with("Bearer backend-")));

    for (setting, says) in [
        ("Authorization=principal", "Authorization is a header gateways or backends read for something else"),
        ("X-Email=claim:email", "claim:email is not one of TOKENBRIDGE_CONTEXT_CLAIMS"),
    ] {
        let mut bad = idp.env();
        bad.push(("TOKENBRIDGE_HTTP_IDENTITY_HEADERS".into(), setting.into()));
        let run = tokenbridge_tests::harness::run(&["check-config"], &bad, "");
        assert!(!run.success, "{setting}");
        assert!(run.stdout.contains(says), "{setting}: {}", run.stdout);
    }
}

/// A certificate-bound token (RFC 8705 §3) is allowed with its certificate as the gateway
/// reports it, in each gateway's format, and refused without it, with another, or when the
/// certificate came in a header the deployment did not name.
#[test]
fn a_certificate_bound_token_needs_the_certificate_the_gateway_reports() {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let pki = tokenbridge_tests::interop::MtlsPki::make();
    let pem = |path: &std::path::Path| std::fs::read_to_string(path).expect("a PEM file");
    let (alice, other) = (pem(&pki.ca_signed.0), pem(&pki.self_signed.0));
    let der_base64 = |pem: &str| pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>();
    let thumbprint = |pem: &str| {
        let der = STANDARD.decode(der_base64(pem)).expect("base64 DER");
        URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der))
    };
    let hex = |pem: &str| {
        let der = STANDARD.decode(der_base64(pem)).expect("base64 DER");
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let escaped =
        |pem: &str| percent_encoding::utf8_percent_encode(pem, percent_encoding::NON_ALPHANUMERIC).to_string();
    let idp = IdpPair::start();
    let token = "certificate-bound";
    idp.a.add_token(
        token,
        json!({"active": true, "sub": "alice", "scope": "orders.read", "client_id": "app",
               "exp": tokenbridge_tests::fake_idp::unix_now() + 600, "cnf": {"x5t#S256": thumbprint(&alice)}}),
    );
    for (setting, name, right, wrong) in [
        ("X-Client-Cert:pem-urlencoded", "X-Client-Cert", escaped(&alice), escaped(&other)),
        (
            "X-Forwarded-Tls-Client-Cert:base64-der",
            "X-Forwarded-Tls-Client-Cert",
            der_base64(&alice),
            der_base64(&other),
        ),
        (
            "x-forwarded-client-cert:xfcc",
            "X-Forwarded-Client-Cert",
            format!("Hash={};Subject=\"CN=a\"", hex(&alice)),
            format!("Hash={}", hex(&other)),
        ),
    ] {
        let mut env = idp.env();
        env.push(("TOKENBRIDGE_HTTP_CLIENT_CERT".into(), setting.into()));
        let server = HttpServer::start(&env);
        let ask = |headers: &[(&str, &str)]| {
            let mut all = vec![("Authorization", format!("Bearer {token}"))];
            all.extend(headers.iter().map(|(k, v)| (*k, v.to_string())));
            let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
            get(&server.addr, "/auth", &all)
        };
        let (status, _, body) = ask(&[(name, right.as_str())]);
        assert_eq!(status, 200, "{setting}: {body}");
        let (status, headers, _) = ask(&[(name, wrong.as_str())]);
        assert_eq!(status, 401, "{setting}: another certificate");
        assert!(header(&headers, "www-authenticate").is_some_and(|c| c.contains("invalid_token")));
        assert_eq!(ask(&[]).0, 401, "{setting}: no certificate");
        assert_eq!(ask(&[(name, right.as_str()), (name, right.as_str())]).0, 400, "{setting}: twice");
        assert_eq!(ask(&[(name, "garbage%")]).0, 400, "{setting}: unreadable");
    }
    // Without TOKENBRIDGE_HTTP_CLIENT_CERT no header is believed to be the certificate.
    let server = HttpServer::start(&idp.env());
    let forged = get(&server.addr, "/auth", &[("Authorization", &bearer(token)), ("X-Client-Cert", &escaped(&alice))]);
    assert_eq!(forged.0, 401);
}

/// The gateway's trace context reaches both IdPs and the decision log: a well-formed
/// `traceparent` as it came, an ill-formed one not at all.
#[test]
fn the_trace_context_reaches_the_idps_and_the_log() {
    let idp = IdpPair::start();
    let mut env = idp.env();
    env.push(("TOKENBRIDGE_DECISION_LOG".into(), "all".into()));
    let server = HttpServer::start(&env);
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let token = idp.a.issue("alice", "orders.read", 600);
    let (status, _, _) =
        get(&server.addr, "/auth", &[("Authorization", &bearer(&token)), ("traceparent", traceparent)]);
    assert_eq!(status, 200);
    let expected = vec![("traceparent".to_string(), traceparent.to_string())];
    assert_eq!(idp.a.trace_headers(), std::slice::from_ref(&expected), "introspection");
    assert_eq!(idp.b.trace_headers(), [expected], "backend token");
    let other = idp.a.issue("bob", "orders.read", 600);
    let forged = format!("{traceparent}, 00-zz");
    let (status, _, _) = get(&server.addr, "/auth", &[("Authorization", &bearer(&other)), ("traceparent", &forged)]);
    assert_eq!(status, 200);
    assert_eq!(idp.a.trace_headers().last(), Some(&vec![]), "an ill-formed traceparent is not passed on");
    let log = server.log();
    assert!(log.contains("\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\""), "{log}");
}
