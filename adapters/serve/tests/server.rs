//! The server over real sockets with a handler that echoes what it was handed: limits, timeouts,
//! refusals after answered requests, the graceful stop, and the saved fuzz inputs replayed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokenbridge_serve::{Handler, Limits, Listener, Refusal, Response};

/// Answers `200` with `<method> <target> <body length>`; `/slow` sleeps first; refusals are
/// `4xx`/`5xx` naming their kind.
struct Echo;

impl Handler for Echo {
    fn handle(&self, head: &http::request::Parts, body: &[u8]) -> Response {
        if head.uri.path() == "/slow" {
            std::thread::sleep(Duration::from_millis(600));
        }
        http::Response::new(format!("{} {} {}", head.method, head.uri, body.len()).into_bytes())
    }

    fn answer_now(&self, head: &http::request::Parts, _body: &[u8]) -> Option<Response> {
        (head.uri.path() == "/now").then(|| http::Response::new(b"now".to_vec()))
    }

    fn refuse(&self, why: &Refusal) -> Response {
        let status = match why {
            Refusal::Malformed(_) => 400,
            Refusal::HeadTooLarge => 431,
            Refusal::BodyTooLarge => 413,
            Refusal::Overloaded => 503,
            Refusal::Deadline => 504,
            Refusal::Failed => 500,
        };
        let mut answer = http::Response::new(format!("{why:?}").into_bytes());
        *answer.status_mut() = http::StatusCode::from_u16(status).unwrap();
        answer
    }
}

struct Running {
    addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    fn start(limits: Limits) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = std::thread::spawn(move || {
            let stop = async move {
                let _ = stopped.await;
            };
            tokenbridge_serve::serve_until(Listener::Tcp(listener), Arc::new(Echo), limits, stop)
        });
        Running { addr, stop: Some(stop), done: Some(done) }
    }

    /// Stops the server and waits until `serve_until` returns: how long that took.
    fn stop(&mut self) -> Duration {
        let started = Instant::now();
        drop(self.stop.take());
        self.done.take().unwrap().join().unwrap().unwrap();
        started.elapsed()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.done.is_some() {
            self.stop();
        }
    }
}

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
}

/// Statuses and bodies of every answer until the server closes the connection.
fn answers(mut stream: TcpStream, bytes: &[u8]) -> Vec<(u16, String)> {
    stream.write_all(bytes).unwrap();
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("not closed: {e} after {:?}", String::from_utf8_lossy(&raw)),
    }
    let mut rest = &raw[..];
    let mut all = Vec::new();
    while !rest.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(at)) = parsed.parse(rest) else {
            panic!("not an HTTP answer: {:?}", String::from_utf8_lossy(rest))
        };
        let length: usize = parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
            .expect("every answer says its length");
        all.push((parsed.code.unwrap(), String::from_utf8_lossy(&rest[at..at + length]).into_owned()));
        rest = &rest[at + length..];
    }
    all
}

const CLOSE: &[u8] = b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[test]
fn a_refused_request_is_answered_after_the_ones_before_it_and_nothing_after_it_is() {
    let server = Running::start(Limits::default());
    let good = b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab";
    let bad = b"POST /hidden HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx";
    let got = answers(connect(&server.addr), &[&good[..], bad, CLOSE].concat());
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], (200, "POST /slow 2".into()));
    assert_eq!(got[1].0, 400);
}

#[test]
fn silent_connections_hold_no_worker() {
    let server = Running::start(Limits { workers: 1, ..Limits::default() });
    let silent: Vec<_> = (0..300).map(|_| connect(&server.addr)).collect();
    let started = Instant::now();
    let got = answers(connect(&server.addr), CLOSE);
    assert_eq!(got, [(200, "GET /last 0".into())]);
    assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
    drop(silent);
}

#[test]
fn an_answer_the_handler_has_at_once_needs_no_worker() {
    let server = Running::start(Limits { workers: 1, ..Limits::default() });
    let addr = server.addr.clone();
    let busy = std::thread::spawn(move || {
        answers(connect(&addr), b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    });
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let got = answers(connect(&server.addr), b"GET /now HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(got, [(200, "now".into())]);
    assert!(started.elapsed() < Duration::from_millis(300), "waited for the busy worker: {:?}", started.elapsed());
    assert_eq!(busy.join().unwrap(), [(200, "GET /slow 0".into())]);
}

#[test]
fn a_request_trickling_in_is_cut_off_at_its_deadline_without_an_answer() {
    let server = Running::start(Limits { request_timeout: Duration::from_millis(400), ..Limits::default() });
    let mut stream = connect(&server.addr);
    let started = Instant::now();
    // One byte every 20 ms: each read succeeds long before a per-read timeout would fire.
    let mut cut = false;
    for byte in
        b"GET / HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    {
        if stream.write_all(&[*byte]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.is_empty(), "no answer: {:?}", String::from_utf8_lossy(&rest));
    assert!(cut || started.elapsed() < Duration::from_millis(2500));
    assert!(started.elapsed() > Duration::from_millis(350), "not cut before its deadline");
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let server = Running::start(Limits { idle_timeout: Some(Duration::from_millis(300)), ..Limits::default() });
    let mut stream = connect(&server.addr);
    stream.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(started.elapsed() < Duration::from_secs(3), "closed after {:?}", started.elapsed());
}

#[test]
fn an_answer_later_than_the_deadline_is_the_deadline_refusal() {
    let server = Running::start(Limits { deadline: Duration::from_millis(200), ..Limits::default() });
    let got = answers(connect(&server.addr), b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(got, [(504, "Deadline".into())]);
}

#[test]
fn past_the_connection_limit_connections_are_refused_at_once() {
    let server = Running::start(Limits { max_connections: 3, ..Limits::default() });
    let open: Vec<_> = (0..3).map(|_| connect(&server.addr)).collect();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(answers(connect(&server.addr), CLOSE), [(503, "Overloaded".into())]);
    drop(open);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(answers(connect(&server.addr), CLOSE), [(200, "GET /last 0".into())]);
}

#[test]
fn stopping_finishes_the_request_in_flight_and_closes_idle_connections() {
    let mut server = Running::start(Limits::default());
    let idle = connect(&server.addr);
    let addr = server.addr.clone();
    let in_flight = std::thread::spawn(move || answers(connect(&addr), b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
    std::thread::sleep(Duration::from_millis(200));
    let took = server.stop();
    assert_eq!(in_flight.join().unwrap(), [(200, "GET /slow 0".into())], "answered, then closed");
    assert!(took < Duration::from_secs(3), "stopped in {took:?}, not at the end of the grace period");
    assert!(TcpStream::connect(&server.addr).is_err(), "no longer accepting");
    let mut rest = Vec::new();
    let mut idle = idle;
    idle.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert!(idle.read_to_end(&mut rest).is_ok() && rest.is_empty(), "the idle connection was closed");
}

#[test]
fn the_unix_socket_serves_like_tcp() {
    let dir = std::env::temp_dir().join(format!("tokenbridge-serve-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("s.sock");
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = std::thread::spawn(move || {
        let stop = async move {
            let _ = stopped.await;
        };
        tokenbridge_serve::serve_until(Listener::Unix(listener), Arc::new(Echo), Limits::default(), stop)
    });
    let mut stream = std::os::unix::net::UnixStream::connect(&path).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(b"POST /call HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n").unwrap();
    stream.write_all(b"POST /call HTTP/1.1\r\nContent-Length : 1\r\n\r\nx").unwrap();
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n") && raw.contains("POST /call 3"), "{raw:?}");
    assert!(raw.contains("HTTP/1.1 400 Bad Request\r\n") && raw.contains("Connection: close"), "{raw:?}");
    drop(stop);
    done.join().unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_saved_fuzz_inputs_are_answered_and_end_their_connections() {
    let server = Running::start(Limits { max_body: 64, ..Limits::default() });
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut seen = 0;
    for entry in std::fs::read_dir(corpus).unwrap() {
        let input = std::fs::read(entry.unwrap().path()).unwrap();
        // The end of the input ends the connection, however the input leaves it.
        let mut stream = connect(&server.addr);
        stream.write_all(&input).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw);
        assert!(raw.is_empty() || text.starts_with("HTTP/1."), "{text:?}");
        seen += 1;
    }
    assert!(seen >= 5);
}

/// A reviewer's finding: a client that pipelines requests and never reads the answers held its
/// connection (and its slot under the limit) for ever. Now a write that makes no progress for
/// the request timeout ends the connection.
#[test]
fn a_client_that_never_reads_its_answers_gives_up_its_connection() {
    let server =
        Running::start(Limits { max_connections: 1, request_timeout: Duration::from_millis(500), ..Limits::default() });
    let mut hog = connect(&server.addr);
    // Answers of 16 KB each, so the socket buffers fill after a few hundred, whatever the
    // machine's speed.
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "x".repeat(16 * 1024));
    let flood = long.repeat(1_500).into_bytes();
    // Written from a thread: the server stops reading once its answers back up.
    let writer = std::thread::spawn(move || {
        let _ = hog.write_all(&flood);
        hog
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    loop {
        let answered = answers(connect(&server.addr), b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        if answered.first().is_some_and(|(status, _)| *status == 200) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the stalled connection kept its slot: {answered:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(writer);
}
