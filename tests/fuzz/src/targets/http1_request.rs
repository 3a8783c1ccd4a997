//! The HTTP/1.1 reader of the OCI Fn socket and the HTTP adapter
//! (`tokenbridge_oci::http1::read_request`), requests back to back on one connection as a peer
//! would send them, each answered by both adapters with an engine that cannot decide.

use std::io::BufReader;

use crate::{engine, header_safe};
use tokenbridge_oci::fn_server;
use tokenbridge_oci::http1::{self, ReadError};

/// The checks of the target on one input; panics on a broken invariant.
pub fn check(data: &[u8]) {
    // A small cap and a small buffer exercise the limits and the buffer boundaries; the adapters'
    // own cap, what they run with.
    check_connection(BufReader::with_capacity(7, data), 64);
    check_connection(BufReader::new(data), fn_server::MAX_BODY);
}

fn check_connection(mut input: impl std::io::BufRead, max_body: usize) {
    for _ in 0..32 {
        let request = match http1::read_request(&mut input, max_body) {
            Ok(request) => request,
            // The body was read to its end: the connection carries on.
            Err(ReadError::TooLarge { drained: true }) => continue,
            Err(_) => return,
        };
        assert!(request.body.len() <= max_body, "a body of {} bytes past the cap {max_body}", request.body.len());
        assert!(request.headers.len() <= 64);
        assert!(request.headers.iter().all(|(k, _)| !k.bytes().any(|b| b.is_ascii_uppercase())));
        let chunked = request.header("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        if !chunked && let Some(Ok(n)) = request.header("content-length").map(str::parse::<usize>) {
            assert_eq!(request.body.len(), n, "Content-Length {n}");
        }

        let (status, body) = fn_server::answer(engine(), &request);
        // Any other status makes the Fn agent kill the container.
        assert!(matches!(status, 200 | 502 | 504), "Fn socket status {status}");
        assert!(body.is_object());

        let reply = tokenbridge_http::server::answer(engine(), &request);
        assert!(matches!(reply.status, 200 | 400 | 401 | 403 | 503), "HTTP status {}", reply.status);
        for (name, value) in &reply.headers {
            assert!(header_safe(name) && header_safe(value), "header {name:?}: {value:?}");
        }
        let mut out = Vec::new();
        http1::write_response(&mut out, status, &[], body.to_string().as_bytes()).expect("in-memory output");
        if request.close {
            return;
        }
    }
}
