//! The serving crate's strict HTTP/1.1 framing (`tokenbridge_serve::framing::Scanner`), on bytes
//! as a connection delivers them: whole, and trickled one byte at a time.

use tokenbridge_serve::framing::{FrameLimits, Scan, Scanner};

const LIMITS: FrameLimits = FrameLimits { max_head: 4096, max_headers: 32, max_body: 512, drain_limit: 2048 };

/// Scans the request at the start of `bytes`, handing the scanner `step` more bytes at a time;
/// the outcome and the bytes left in the buffer.
fn scan_in_steps(bytes: &[u8], step: usize) -> (Scan, Vec<u8>) {
    let mut scanner = Scanner::new(LIMITS);
    let mut buf = Vec::new();
    let mut fed = 0;
    loop {
        let next = (fed + step).min(bytes.len());
        buf.extend_from_slice(&bytes[fed..next]);
        fed = next;
        match scanner.scan(&mut buf) {
            Scan::Incomplete if fed < bytes.len() => continue,
            outcome => return (outcome, buf),
        }
    }
}

/// The checks of the target on one input; panics on a broken invariant.
pub fn check(data: &[u8]) {
    let (whole, left) = scan_in_steps(data, data.len().max(1));
    let (trickled, _) = scan_in_steps(data, 1);
    // The reading cannot depend on how the bytes were cut into reads.
    assert_eq!(whole, trickled, "whole and trickled readings differ");
    let Scan::Complete(n) = whole else { return };
    assert!(n <= left.len(), "a request longer than what arrived");
    // hyper's own parser reads the same head: what the scanner passes, httparse accepts whole.
    let mut headers = [httparse::EMPTY_HEADER; 40];
    let mut request = httparse::Request::new(&mut headers);
    let head = match request.parse(&left[..n]) {
        Ok(httparse::Status::Complete(head)) => head,
        other => panic!("the scanner passed a request httparse reads as {other:?}"),
    };
    let length = request.headers.iter().find(|h| h.name.eq_ignore_ascii_case("content-length"));
    let chunked = request.headers.iter().any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
    match length {
        Some(h) => {
            assert!(!chunked, "Content-Length and Transfer-Encoding both passed");
            let declared: usize =
                std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse().ok()).expect("digits");
            assert!(declared <= LIMITS.max_body, "a body over the cap passed");
            assert_eq!(n, head + declared, "the request's end is not where its Content-Length puts it");
        }
        None if !chunked => assert_eq!(n, head, "a body without framing"),
        None => assert!(n > head, "a chunked body without its last chunk"),
    }
}
