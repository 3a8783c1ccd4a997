//! stdio answers as a client sees them: none lost at the size limit, none held while the next
//! request waits on an IdP. Both failed before their fixes.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokenbridge_core::{Config, ConfigErrors, Engine};
use tokenbridge_stdio::{MAX_DOCUMENT_BYTES, run};

fn answers(engine: &Engine, input: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    run(engine, input, &mut out).unwrap();
    String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A line of exactly
/// `MAX_DOCUMENT_BYTES` plus its `\n` fills the `take(MAX + 1)` read *with* its newline, is
/// taken for an overlong line, and the drain loop then reads and drops the NEXT line, which
/// was a whole request: it gets no answer. A client that pairs answers with requests by order
/// gives the answer of the request after it to the swallowed one (or waits forever for it).
#[test]
fn a_line_of_exactly_the_limit_does_not_swallow_the_next_request() {
    let engine = Engine::builder(Err(ConfigErrors(vec!["test".into()]))).log_sink(|_| {}).build();
    let head = "{\"type\":\"TOKEN\",\"token\":\"";
    let tail = "\"}";
    let document = format!("{head}{}{tail}", "a".repeat(MAX_DOCUMENT_BYTES - head.len() - tail.len()));
    assert_eq!(document.len(), MAX_DOCUMENT_BYTES);
    let input = format!("{document}\n{{\"type\":\"TOKEN\"}}\n{{\"type\":\"TOKEN\"}}\n");
    let got = answers(&engine, input.as_bytes());
    assert_eq!(got.len(), 3, "three requests, three answers: {got:?}");
}

/// Output that stamps when each answer line reached the client.
struct Stamped {
    start: Instant,
    lines: Arc<Mutex<Vec<Duration>>>,
}

impl Write for Stamped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let at = self.start.elapsed();
        self.lines.lock().unwrap().extend(buf.iter().filter(|&&b| b == b'\n').map(|_| at));
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Input delivered in one read, as a client that pipelines two requests sends them.
struct OneRead(Option<Vec<u8>>);

impl Read for OneRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(data) = self.0.take() else { return Ok(0) };
        buf[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }
}

/// An answer
/// already made is held while the next buffered request is decided, and that decision may wait
/// on an IdP (up to the call timeout, each retry, or the platform deadline). Here the first
/// request (no token) is answered at once, but its answer reaches the client only when the
/// second one's introspection has timed out. 0bcdb6f flushed every answer as it was made.
#[test]
fn an_answer_is_not_held_back_while_the_next_request_waits_for_an_idp() {
    // An IdP that accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let env: HashMap<&str, String> = [
        ("TOKENBRIDGE_INTROSPECTION_URL", url.clone()),
        ("TOKENBRIDGE_INTROSPECTION_CLIENT_ID", "a".into()),
        ("TOKENBRIDGE_INTROSPECTION_CLIENT_SECRET", "a-secret".into()),
        ("TOKENBRIDGE_BACKEND_TOKEN_URL", url),
        ("TOKENBRIDGE_BACKEND_CLIENT_ID", "b".into()),
        ("TOKENBRIDGE_BACKEND_CLIENT_SECRET", "b-secret".into()),
        ("TOKENBRIDGE_TIMEOUT_MS", "1500".into()),
    ]
    .into_iter()
    .collect();
    let engine = Engine::builder(Config::from_lookup(&|k| env.get(k).cloned())).log_sink(|_| {}).build();
    assert!(engine.config().is_ok(), "{:?}", engine.config().err());
    let lines = Arc::new(Mutex::new(Vec::new()));
    let input = OneRead(Some(b"{\"type\":\"TOKEN\"}\n{\"type\":\"TOKEN\",\"token\":\"Bearer abc\"}\n".to_vec()));
    run(&engine, input, Stamped { start: Instant::now(), lines: lines.clone() }).unwrap();
    let lines = lines.lock().unwrap();
    assert_eq!(lines.len(), 2);
    assert!(lines[1] >= Duration::from_millis(1000), "the second decision waited for the silent IdP: {lines:?}");
    assert!(lines[0] < Duration::from_millis(500), "the first answer was held back until {:?}", lines[0]);
}
