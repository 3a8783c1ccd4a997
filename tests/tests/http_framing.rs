//! HTTP/1.1 framing as the built binary reads it, on the Fn socket (`tokenbridge oci`) and in
//! `tokenbridge http`: a request that a lenient reader could frame in a second way is refused and
//! its connection closed, so a request hidden behind it is never answered; oversized heads and
//! bodies get their own answers. Black-box on purpose: whatever serves HTTP/1.1 in the binary
//! must keep these.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::json;
use tokenbridge_tests::IdpPair;
use tokenbridge_tests::fn_agent::{FnAgent, Framing};
use tokenbridge_tests::http_server::HttpServer;

/// One request whose framing headers are given, around `body`.
struct Case {
    name: &'static str,
    version: &'static str,
    framing: String,
    body: Vec<u8>,
}

fn chunked(body: &[u8]) -> Vec<u8> {
    [format!("{:x}\r\n", body.len()).as_bytes(), body, b"\r\n0\r\n\r\n"].concat()
}

fn case(name: &'static str, framing: impl Into<String>, body: &[u8]) -> Case {
    Case { name, version: "HTTP/1.1", framing: framing.into(), body: body.to_vec() }
}

/// Requests with one reading for a lenient parser (the body `payload`, framed by the header) and
/// another, or none, for a strict one.
fn ambiguous(payload: &[u8]) -> Vec<Case> {
    let n = payload.len();
    let te = chunked(payload);
    let mut cases = vec![
        case("Content-Length with a plus sign", format!("Content-Length: +{n}"), payload),
        case("negative Content-Length", format!("Content-Length: -{n}"), payload),
        case("Content-Length of two numbers", format!("Content-Length: {n} {n}"), payload),
        case("hexadecimal Content-Length", format!("Content-Length: 0x{n:x}"), payload),
        case("empty Content-Length", "Content-Length: ", payload),
        case("Content-Length list", format!("Content-Length: {n}, {n}"), payload),
        case("Content-Length twice, equal", format!("Content-Length: {n}\r\nContent-Length: {n}"), payload),
        case("Content-Length twice, different", format!("Content-Length: {n}\r\nContent-Length: 0"), payload),
        case("chunked, identity", "Transfer-Encoding: chunked, identity", &te),
        case("identity", format!("Transfer-Encoding: identity\r\nContent-Length: {n}"), payload),
        case("xchunked", "Transfer-Encoding: xchunked", &te),
        case("chunked with trailing space", "Transfer-Encoding: chunked ", &te),
        case("Transfer-Encoding twice", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", &te),
        case("Transfer-Encoding and Content-Length", format!("Transfer-Encoding: chunked\r\nContent-Length: {n}"), &te),
        case("obs-fold", format!("Content-Length: {n}\r\nX-Folded: a\r\n b"), payload),
        case("folded Content-Length", format!("X-Folded: a\r\n Content-Length: {n}"), payload),
        case("space before the colon", format!("Content-Length : {n}"), payload),
        case("bare LF in a value", format!("X-A: a\nContent-Length: {n}"), payload),
        case("bare CR in a value", format!("X-A: a\rContent-Length: {n}"), payload),
        case("NUL in a value", format!("X-A: a\0b\r\nContent-Length: {n}"), payload),
        case("empty chunk size", "Transfer-Encoding: chunked", &[b"\r\n", &te[..]].concat()),
        case(
            "chunk data ended by a bare LF",
            "Transfer-Encoding: chunked",
            &[format!("{n:x}\r\n").as_bytes(), payload, b"\n0\r\n\r\n"].concat(),
        ),
    ];
    cases.push(Case { version: "HTTP/1.0", ..case("chunked in HTTP/1.0", "Transfer-Encoding: chunked", &te) });
    cases
}

fn request(method_path: &str, case: &Case, extra: &str) -> Vec<u8> {
    let head = format!("{method_path} {}\r\nHost: localhost\r\n{extra}{}\r\n\r\n", case.version, case.framing);
    [head.as_bytes(), &case.body].concat()
}

/// Every answer on a connection, read until the peer closes it.
fn answers(raw: &[u8]) -> Vec<Answer> {
    let mut rest = raw;
    let mut all = Vec::new();
    while !rest.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(at)) = parsed.parse(rest) else {
            panic!("not an HTTP answer: {:?}", String::from_utf8_lossy(rest));
        };
        let headers: Vec<(String, String)> = parsed
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).to_string()))
            .collect();
        let length: usize =
            headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap();
        all.push((parsed.code.unwrap_or(0), headers, rest[at..at + length].to_vec()));
        rest = &rest[at + length..];
    }
    all
}

type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// Sends `bytes` and reads every answer until the server closes the connection. Closing with
/// bytes of ours still unread may reset the connection after the answers; either way it must end
/// well before the read timeout.
fn exchange(mut stream: impl Read + Write, bytes: &[u8]) -> Vec<Answer> {
    stream.write_all(bytes).expect("send the request");
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the connection was not closed ({e}) after {:?}", String::from_utf8_lossy(&raw)),
    }
    answers(&raw)
}

fn fn_exchange(agent: &FnAgent, bytes: &[u8]) -> Vec<Answer> {
    let stream = UnixStream::connect(&agent.socket).expect("connect to the function socket");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    exchange(stream, bytes)
}

fn http_exchange(server: &HttpServer, bytes: &[u8]) -> Vec<Answer> {
    let stream = TcpStream::connect(&server.addr).expect("connect to tokenbridge http");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    exchange(stream, bytes)
}

fn statuses(answers: &[Answer]) -> Vec<u16> {
    answers.iter().map(|a| a.0).collect()
}

fn fn_call(token: &str) -> Vec<u8> {
    json!({"type": "TOKEN", "token": format!("Bearer {token}")}).to_string().into_bytes()
}

/// A well-framed call that asks to close the connection after it.
fn last_call(payload: &[u8]) -> Vec<u8> {
    let close = case("follow-up", format!("Connection: close\r\nContent-Length: {}", payload.len()), payload);
    request("POST /call", &close, "")
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn on_the_fn_socket_ambiguous_framing_is_a_502_that_closes_the_connection() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    let mut agent = FnAgent::start(&idp.env());
    let payload = fn_call(&token);
    // The same call framed plainly is answered, and so is the call behind it: what the refusals
    // below leave unanswered would have been.
    let plain = case("plain", format!("Content-Length: {}", payload.len()), &payload);
    let both = fn_exchange(&agent, &[request("POST /call", &plain, ""), last_call(&payload)].concat());
    assert_eq!(statuses(&both), [200, 200]);
    for case in ambiguous(&payload) {
        let answered = fn_exchange(&agent, &[request("POST /call", &case, ""), last_call(&payload)].concat());
        assert_eq!(statuses(&answered), [502], "{}: one 502, nothing after it answered", case.name);
        assert_eq!(header(&answered[0].1, "connection"), Some("close"), "{}", case.name);
        assert!(header(&answered[0].1, "fn-fdk-version").is_some(), "{}", case.name);
    }
    assert_eq!(agent.call(&payload, Framing::Chunked, Duration::from_secs(30)).status, 200);
    assert!(agent.is_alive());
}

#[test]
fn on_the_fn_socket_an_oversized_head_is_a_502_that_closes_the_connection() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    let mut agent = FnAgent::start(&idp.env());
    let payload = fn_call(&token);
    let length = format!("Content-Length: {}", payload.len());
    let one_line = format!("X-Big: {}\r\n{length}", "a".repeat(70_000));
    let many_lines =
        format!("{}{length}", (0..1500).map(|i| format!("X-{i:04}: {}\r\n", "a".repeat(40))).collect::<String>());
    let many_fields = format!("{}{length}", (0..70).map(|i| format!("X-{i}: a\r\n")).collect::<String>());
    for (name, framing) in [("one long line", one_line), ("many lines", many_lines), ("70 fields", many_fields)] {
        let answered = fn_exchange(
            &agent,
            &[request("POST /call", &case(name, framing, &payload), ""), last_call(&payload)].concat(),
        );
        assert_eq!(statuses(&answered), [502], "{name}");
        assert_eq!(header(&answered[0].1, "connection"), Some("close"), "{name}");
    }
    assert_eq!(agent.call(&payload, Framing::ContentLength, Duration::from_secs(30)).status, 200);
    assert!(agent.is_alive());
}

const LAST: &str = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[test]
fn in_tokenbridge_http_ambiguous_framing_is_a_400_that_closes_the_connection() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    let server = HttpServer::start(&idp.env());
    let auth = format!("Authorization: Bearer {token}\r\n");
    let body = br#"{"some":"body"}"#;
    let plain = case("plain", format!("Content-Length: {}", body.len()), body);
    let both = http_exchange(&server, &[request("POST /auth", &plain, &auth), LAST.as_bytes().to_vec()].concat());
    assert_eq!(statuses(&both), [200, 200]);
    for case in ambiguous(body) {
        let answered =
            http_exchange(&server, &[request("POST /auth", &case, &auth), LAST.as_bytes().to_vec()].concat());
        assert_eq!(statuses(&answered), [400], "{}: one 400, nothing after it answered", case.name);
        assert_eq!(header(&answered[0].1, "connection"), Some("close"), "{}", case.name);
    }
}

#[test]
fn in_tokenbridge_http_an_oversized_head_is_a_431_and_an_oversized_body_a_413() {
    let idp = IdpPair::start();
    let server = HttpServer::start(&idp.env());
    let get = |fields: String| format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{fields}\r\n{LAST}").into_bytes();
    let many_lines: String = (0..1500).map(|i| format!("X-{i:04}: {}\r\n", "a".repeat(40))).collect();
    let fields = |n: usize| (0..n).map(|i| format!("X-{i}: a\r\n")).collect::<String>();
    for (name, raw) in [
        ("one long line", get(format!("X-Big: {}\r\n", "a".repeat(70_000)))),
        ("many lines", get(many_lines)),
        // With Host, 65 fields: one more than the 64 documented.
        ("65 fields", get(fields(64))),
    ] {
        let answered = http_exchange(&server, &raw);
        assert_eq!(statuses(&answered), [431], "{name}");
        assert_eq!(header(&answered[0].1, "connection"), Some("close"), "{name}");
    }
    // 64 fields are within the limit.
    assert_eq!(statuses(&http_exchange(&server, &get(fields(63)))), [200, 200]);
    // Over the 64 KiB cap: one body sent whole, one far too big to wait for.
    for (length, sent) in [(70_000u64, 70_000), (99_999_999_999, 0)] {
        let head = format!("POST /authorize HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n");
        let answered = http_exchange(&server, &[head.as_bytes(), &vec![b'x'; sent]].concat());
        assert_eq!(statuses(&answered), [413], "Content-Length {length}");
    }
}
