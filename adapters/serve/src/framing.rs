//! The strict reading of one HTTP/1.1 request's framing, done on the raw bytes before hyper sees
//! them. Wherever RFC 9112 lets a recipient be lenient (bare LF line ends, obs-fold, whitespace
//! before a colon, `+` in a length, repeated framing headers), a peer in front of us may have read
//! the same bytes the other way, and the difference is where a second request hides inside the
//! first; hyper (through httparse) takes some of those readings. Such requests are refused here,
//! never guessed at, and hyper only ever sees requests with exactly one reading.
//!
//! The scanner is incremental: it is handed the connection's buffered bytes again as more arrive
//! and resumes where it stopped, so a request trickling in costs linear time.

use crate::Refusal;

/// Sizes the scanner enforces.
#[derive(Debug, Clone, Copy)]
pub struct FrameLimits {
    /// Largest head (blank lines before it included).
    pub max_head: usize,
    /// Most header fields in a head; more is an oversized head too.
    pub max_headers: usize,
    /// Largest body accepted.
    pub max_body: usize,
    /// An oversized body up to this size is read and dropped before the refusal, so the peer,
    /// still writing, reads the answer rather than a reset connection.
    pub drain_limit: u64,
}

/// Longest chunk-size or trailer line.
const MAX_LINE: usize = 4096;
/// What hyper allows for a body's chunk extensions and its trailer section, each: past it hyper
/// would drop the connection without an answer, so the limit is refused here with one.
const HYPER_CHUNK_LIMIT: usize = 16 * 1024;
/// Most bytes of chunk framing (size lines and the CRLF after each chunk's data) kept for one
/// body, beyond the body's own cap: a body within its cap cannot make the buffered request many
/// times larger than itself. (A body over its cap keeps nothing: its bytes are dropped as read.)
const MAX_CHUNK_FRAMING: usize = 32 * 1024;

/// What the buffered bytes amount to.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// More bytes are needed.
    Incomplete,
    /// The first `n` buffered bytes are one complete request with a single reading.
    Complete(usize),
    /// The request is refused; the connection's framing is lost.
    Refused(Refusal),
}

#[derive(Debug)]
enum State {
    /// Reading the head: complete lines end at `ends`; `scanned` is where the next line starts.
    Head {
        scanned: usize,
        /// How far the search for the current line's end has got, so a trickled line is not
        /// searched again from its start at every read.
        searched: usize,
        skipped: usize,
        ends: Vec<usize>,
    },
    Sized {
        end: usize,
    },
    /// Dropping an oversized body.
    Drain {
        left: u64,
    },
    Chunked(Chunks),
}

#[derive(Debug)]
struct Chunks {
    /// Where the next unread byte of the body is.
    pos: usize,
    phase: Phase,
    total: u64,
    extensions: usize,
    trailers: usize,
    trailer_fields: usize,
    framing: usize,
    /// The body went over its limit: keep reading to its end, keep nothing.
    dropping: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

/// How the body of a request is delimited (RFC 9112 §6.3).
enum Body {
    Empty,
    Length(u64),
    Chunked,
}

pub struct Scanner {
    limits: FrameLimits,
    state: State,
}

impl Scanner {
    pub fn new(limits: FrameLimits) -> Self {
        Self { limits, state: State::Head { scanned: 0, searched: 0, skipped: 0, ends: Vec::new() } }
    }

    /// Ready for the next request, which starts at the buffer's first byte.
    pub fn reset(&mut self) {
        self.state = State::Head { scanned: 0, searched: 0, skipped: 0, ends: Vec::new() };
    }

    /// Whether a request has begun (some of its bytes are in, or were dropped).
    pub fn started(&self, buf: &[u8]) -> bool {
        !buf.is_empty() || !matches!(self.state, State::Head { skipped: 0, .. })
    }

    /// Looks at the request at the start of `buf`. Bytes of a refused body may be removed from
    /// `buf` as they are dropped, and blank lines before a request always are.
    pub fn scan(&mut self, buf: &mut Vec<u8>) -> Scan {
        loop {
            let next = match &mut self.state {
                State::Head { scanned, searched, skipped, ends } => {
                    match head(buf, scanned, searched, skipped, ends, &self.limits) {
                        Ok(Some(state)) => state,
                        Ok(None) => return Scan::Incomplete,
                        Err(refusal) => return Scan::Refused(refusal),
                    }
                }
                State::Sized { end } => {
                    return if buf.len() >= *end { Scan::Complete(*end) } else { Scan::Incomplete };
                }
                State::Drain { left } => {
                    let n = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    buf.drain(..n);
                    *left -= n as u64;
                    return if *left == 0 { Scan::Refused(Refusal::BodyTooLarge) } else { Scan::Incomplete };
                }
                State::Chunked(chunks) => return chunks.scan(buf, &self.limits),
            };
            self.state = next;
        }
    }
}

/// Reads head lines as they complete; the state after the head once it is whole.
fn head(
    buf: &mut Vec<u8>,
    scanned: &mut usize,
    searched: &mut usize,
    skipped: &mut usize,
    ends: &mut Vec<usize>,
    limits: &FrameLimits,
) -> Result<Option<State>, Refusal> {
    loop {
        let from = (*searched).max(*scanned);
        let Some(at) = buf[from..].iter().position(|b| *b == b'\n') else {
            *searched = buf.len();
            return if *skipped + buf.len() > limits.max_head { Err(Refusal::HeadTooLarge) } else { Ok(None) };
        };
        let end = from + at + 1;
        if *skipped + end > limits.max_head {
            return Err(Refusal::HeadTooLarge);
        }
        let line = crlf_line(&buf[*scanned..end]).map_err(Refusal::Malformed)?;
        if line.is_empty() && ends.is_empty() {
            // Blank lines before a request are allowed (RFC 9112 §2.2), within the head's limit.
            buf.drain(..end);
            *skipped += end;
            *searched = 0;
            continue;
        }
        ends.push(end);
        *scanned = end;
        if line.is_empty() {
            return parse_head(&buf[..end], ends, limits).map(Some);
        }
    }
}

/// The whole head, every line ending in CRLF at `ends`: refused, or the state for its body.
fn parse_head(head: &[u8], ends: &[usize], limits: &FrameLimits) -> Result<State, Refusal> {
    let mut start = 0;
    let mut lines = ends.iter().map(|&end| {
        let line = &head[start..end - 2];
        start = end;
        line
    });
    let http10 = request_line(lines.next().unwrap_or_default())?;
    let mut fields = Vec::with_capacity(16);
    for line in lines.take_while(|l| !l.is_empty()) {
        if fields.len() == limits.max_headers {
            return Err(Refusal::HeadTooLarge);
        }
        fields.push(field(line).map_err(Refusal::Malformed)?);
    }
    let end = head.len();
    Ok(match framing(&fields, http10)? {
        Body::Empty => State::Sized { end },
        Body::Length(n) if n <= limits.max_body as u64 => State::Sized { end: end + n as usize },
        Body::Length(n) if n <= limits.drain_limit => State::Drain { left: end as u64 + n },
        Body::Length(_) => return Err(Refusal::BodyTooLarge),
        Body::Chunked => State::Chunked(Chunks {
            pos: end,
            phase: Phase::Size,
            total: 0,
            extensions: 0,
            trailers: 0,
            trailer_fields: 0,
            framing: 0,
            dropping: false,
        }),
    })
}

impl Chunks {
    fn scan(&mut self, buf: &mut Vec<u8>, limits: &FrameLimits) -> Scan {
        loop {
            match self.phase {
                Phase::Size => {
                    let Some(line) = self.line(buf) else { return Scan::Incomplete };
                    let line = match line {
                        Ok(line) => line,
                        Err(refusal) => return Scan::Refused(refusal),
                    };
                    let (size, extension) = match chunk_size(&buf[line.0..line.1]) {
                        Ok(parsed) => parsed,
                        Err(why) => return Scan::Refused(Refusal::Malformed(why)),
                    };
                    self.extensions += extension;
                    if self.extensions > HYPER_CHUNK_LIMIT {
                        return Scan::Refused(Refusal::Malformed("chunk extensions too long"));
                    }
                    self.framing += line.2 + 2;
                    if !self.dropping && self.framing > limits.max_body + MAX_CHUNK_FRAMING {
                        return Scan::Refused(Refusal::Malformed("too many chunks"));
                    }
                    self.total = self.total.saturating_add(size);
                    if self.total > limits.drain_limit {
                        return Scan::Refused(Refusal::BodyTooLarge);
                    }
                    if self.total > limits.max_body as u64 && !self.dropping {
                        // Over the limit: from now on, bytes are dropped as they are read.
                        self.dropping = true;
                        buf.drain(..self.pos);
                        self.pos = 0;
                    }
                    self.consume(buf, line.2);
                    self.phase = if size == 0 { Phase::Trailers } else { Phase::Data(size) };
                }
                Phase::Data(left) => {
                    let available = (buf.len() - self.pos) as u64;
                    let n = available.min(left);
                    self.consume(buf, n as usize);
                    if n < left {
                        self.phase = Phase::Data(left - n);
                        return Scan::Incomplete;
                    }
                    self.phase = Phase::DataEnd;
                }
                Phase::DataEnd => {
                    if buf.len() < self.pos + 2 {
                        // A lone LF is wrong as soon as it is seen.
                        if buf.get(self.pos).is_some_and(|b| *b != b'\r') {
                            return Scan::Refused(Refusal::Malformed("chunk data not followed by CRLF"));
                        }
                        return Scan::Incomplete;
                    }
                    if &buf[self.pos..self.pos + 2] != b"\r\n" {
                        return Scan::Refused(Refusal::Malformed("chunk data not followed by CRLF"));
                    }
                    self.consume(buf, 2);
                    self.phase = Phase::Size;
                }
                Phase::Trailers => {
                    let Some(line) = self.line(buf) else { return Scan::Incomplete };
                    let (start, end, whole) = match line {
                        Ok(line) => line,
                        Err(refusal) => return Scan::Refused(refusal),
                    };
                    if start == end {
                        self.consume(buf, whole);
                        return if self.dropping {
                            Scan::Refused(Refusal::BodyTooLarge)
                        } else {
                            Scan::Complete(self.pos)
                        };
                    }
                    // hyper counts the section's final CRLF too, and its fields against the
                    // head's limit: past either it fails the body instead of answering.
                    self.trailers += whole;
                    self.trailer_fields += 1;
                    if self.trailers + 2 >= HYPER_CHUNK_LIMIT || self.trailer_fields > limits.max_headers {
                        return Scan::Refused(Refusal::Malformed("trailer section too long"));
                    }
                    if let Err(why) = field(&buf[start..end]) {
                        return Scan::Refused(Refusal::Malformed(why));
                    }
                    self.consume(buf, whole);
                }
            }
        }
    }

    /// The next CRLF line at `pos`: its content's start and end, and its length with the CRLF.
    fn line(&self, buf: &[u8]) -> Option<Result<(usize, usize, usize), Refusal>> {
        let rest = &buf[self.pos..];
        let Some(at) = rest.iter().take(MAX_LINE).position(|b| *b == b'\n') else {
            return (rest.len() >= MAX_LINE).then_some(Err(Refusal::Malformed("line too long")));
        };
        Some(match crlf_line(&rest[..=at]) {
            Ok(content) => Ok((self.pos, self.pos + content.len(), at + 1)),
            Err(why) => Err(Refusal::Malformed(why)),
        })
    }

    fn consume(&mut self, buf: &mut Vec<u8>, n: usize) {
        if self.dropping {
            buf.drain(self.pos..self.pos + n);
        } else {
            self.pos += n;
        }
    }
}

/// A line's content without its CRLF: a line ending in a bare LF, or with a CR elsewhere, is
/// refused (RFC 9112 §2.2 allows reading bare LF as a line end; a peer that does not, sees a
/// header where we would see two).
fn crlf_line(line: &[u8]) -> Result<&[u8], &'static str> {
    let content = line.strip_suffix(b"\r\n").ok_or("a line ends in a bare LF")?;
    if content.contains(&b'\r') {
        return Err("a bare CR in a line");
    }
    Ok(content)
}

/// Whether the request line is HTTP/1.0; refused unless httparse reads it and its method and
/// target are ones hyper takes too (else hyper would answer with a 400 of its own).
fn request_line(line: &[u8]) -> Result<bool, Refusal> {
    let invalid = Refusal::Malformed("invalid request line");
    let mut head = Vec::with_capacity(line.len() + 4);
    head.extend_from_slice(line);
    head.extend_from_slice(b"\r\n\r\n");
    let mut no_fields: [httparse::Header<'_>; 0] = [];
    let mut parsed = httparse::Request::new(&mut no_fields);
    if !matches!(parsed.parse(&head), Ok(httparse::Status::Complete(_))) {
        return Err(invalid);
    }
    let (Some(method), Some(path)) = (parsed.method, parsed.path) else { return Err(invalid) };
    // A `#` is no part of a request target (RFC 9112 §3.2); `http::Uri` would cut the path at it,
    // and the route would be decided on less than the request named.
    if http::Method::from_bytes(method.as_bytes()).is_err() || path.contains('#') || path.parse::<http::Uri>().is_err()
    {
        return Err(invalid);
    }
    Ok(parsed.version == Some(0))
}

/// One field line (RFC 9112 §5): a token, the colon at once, then a value without control
/// characters (visible characters, obs-text, spaces and tabs). The name comes lower-cased, the
/// value without the spaces and tabs before it (those after it stay, so that a `chunked ` is not
/// taken for `chunked`).
fn field(line: &[u8]) -> Result<(Vec<u8>, &[u8]), &'static str> {
    if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
        return Err("obsolete line folding in the head");
    }
    let colon = line.iter().position(|b| *b == b':').ok_or("a header line without a colon")?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() {
        return Err("an empty header name");
    }
    if !name.iter().all(|b| is_tchar(*b)) {
        return Err(if name.iter().any(|b| *b == b' ' || *b == b'\t') {
            "whitespace in a header name or before its colon"
        } else {
            "an invalid character in a header name"
        });
    }
    if has_control(value) {
        return Err("a control character in a header value");
    }
    let start = value.iter().position(|b| *b != b' ' && *b != b'\t').unwrap_or(value.len());
    Ok((name.to_ascii_lowercase(), &value[start..]))
}

/// A control character other than HTAB (what a field value may not hold, RFC 9110 §5.5). No early
/// exit, so that long values (a 16 KiB token) can be scanned a vector at a time.
fn has_control(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |found, b| found | ((*b < 0x20) & (*b != b'\t')) | (*b == 0x7f))
}

/// A character of a token (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        )
}

fn trim_ows(value: &[u8]) -> &[u8] {
    let end = value.iter().rposition(|b| *b != b' ' && *b != b'\t').map_or(0, |i| i + 1);
    let start = value[..end].iter().position(|b| *b != b' ' && *b != b'\t').unwrap_or(end);
    &value[start..end]
}

/// The body's framing, when exactly one reading of it exists. Anything a peer might frame
/// differently is refused: two Content-Lengths (even equal ones, which RFC 9110 §8.6 would let
/// hyper merge), a length that is not `1*DIGIT`, two Transfer-Encodings, a coding other than
/// exactly `chunked` (not even with trailing whitespace, which a peer comparing the raw value
/// would not take for chunked), Transfer-Encoding beside Content-Length or in HTTP/1.0 (RFC 9112
/// §6.1).
fn framing(fields: &[(Vec<u8>, &[u8])], http10: bool) -> Result<Body, Refusal> {
    let values = |name: &[u8]| fields.iter().filter(|(k, _)| k == name).map(|(_, v)| *v).collect::<Vec<_>>();
    let (codings, lengths) = (values(b"transfer-encoding"), values(b"content-length"));
    let malformed = |why| Err(Refusal::Malformed(why));
    match (codings.as_slice(), lengths.as_slice()) {
        ([], []) => Ok(Body::Empty),
        ([], [length]) => content_length(trim_ows(length)).map(Body::Length),
        ([], _) => malformed("more than one Content-Length"),
        ([_], [_, ..]) => malformed("both Transfer-Encoding and Content-Length"),
        ([_], []) if http10 => malformed("Transfer-Encoding in an HTTP/1.0 request"),
        ([coding], []) if coding.eq_ignore_ascii_case(b"chunked") => Ok(Body::Chunked),
        ([_], []) => malformed("a Transfer-Encoding other than chunked"),
        (_, _) => malformed("more than one Transfer-Encoding"),
    }
}

/// `1*DIGIT` (RFC 9110 §8.6); a length too big to count is as good as infinite.
fn content_length(value: &[u8]) -> Result<u64, Refusal> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(Refusal::Malformed("Content-Length is not a decimal number"));
    }
    Ok(std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()).unwrap_or(u64::MAX))
}

/// `chunk-size [ chunk-ext ]` (RFC 9112 §7.1): hex digits, then nothing or (after optional
/// whitespace) `;` and extensions, which are ignored. An empty size is not a zero one. The size,
/// and how many bytes of extension the line carries.
fn chunk_size(line: &[u8]) -> Result<(u64, usize), &'static str> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = &line[digits..];
    let well_formed = match rest.iter().find(|b| **b != b' ' && **b != b'\t') {
        // Whitespace is allowed only before a `;`.
        None => rest.is_empty(),
        Some(first) => *first == b';',
    };
    if digits == 0 || !well_formed {
        return Err("invalid chunk size");
    }
    // Sixteen digits hold any u64: more that are leading zeros are framing bytes that carry
    // nothing (a body within its cap could be buffered many times over); more that are not
    // are a size too large, below.
    let significant = line[..digits].iter().skip_while(|b| **b == b'0').count();
    if digits > 16 && significant <= 16 {
        return Err("invalid chunk size");
    }
    if has_control(rest) {
        return Err("a control character in a chunk extension");
    }
    // Only hex digits: the one failure left is a number too big to count, as good as infinite.
    let size = std::str::from_utf8(&line[..digits]).ok().and_then(|d| u64::from_str_radix(d, 16).ok());
    Ok((size.unwrap_or(u64::MAX), rest.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FrameLimits =
        FrameLimits { max_head: 64 * 1024, max_headers: 64, max_body: 1024, drain_limit: 16 << 20 };

    /// The requests `raw` holds, each as the bytes handed on, until one is refused or the bytes
    /// run out; fed a byte at a time as well, which must read the same.
    fn requests(raw: &[u8]) -> (Vec<Vec<u8>>, Option<Refusal>) {
        let whole = read(raw, raw.len());
        assert_eq!(whole, read(raw, 1), "fed byte by byte: {}", show(raw));
        whole
    }

    fn read(raw: &[u8], step: usize) -> (Vec<Vec<u8>>, Option<Refusal>) {
        let mut scanner = Scanner::new(LIMITS);
        let (mut buf, mut fed, mut out) = (Vec::new(), 0, Vec::new());
        loop {
            match scanner.scan(&mut buf) {
                Scan::Complete(n) => {
                    out.push(buf.drain(..n).collect());
                    scanner.reset();
                }
                Scan::Refused(refusal) => return (out, Some(refusal)),
                Scan::Incomplete if fed == raw.len() => return (out, None),
                Scan::Incomplete => {
                    let n = step.min(raw.len() - fed);
                    buf.extend_from_slice(&raw[fed..fed + n]);
                    fed += n;
                }
            }
        }
    }

    fn one(raw: &[u8]) -> Result<Vec<u8>, Option<Refusal>> {
        match requests(raw) {
            (mut found, None) if found.len() == 1 => Ok(found.remove(0)),
            (_, refusal) => Err(refusal),
        }
    }

    fn refused(raw: &[u8]) -> bool {
        matches!(requests(raw), (found, Some(Refusal::Malformed(_))) if found.is_empty())
    }

    fn show(raw: &[u8]) -> String {
        format!("{:?}", String::from_utf8_lossy(raw))
    }

    /// A reviewer's findings: framing that costs far more than the body it carries, a fragment
    /// that `http::Uri` would cut off, and trailers hyper would fail on.
    #[test]
    fn framing_that_outweighs_its_body_is_refused() {
        let chunked = |body: &str| format!("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
        let padded = format!("{}1\r\nx\r\n0\r\n\r\n", "0".repeat(16));
        assert!(refused(chunked(&padded).as_bytes()), "a chunk size of seventeen digits");
        let sixteen = format!("{}1\r\nx\r\n0\r\n\r\n", "0".repeat(15));
        assert_eq!(requests(chunked(&sixteen).as_bytes()).0.len(), 1, "sixteen digits are a u64");
        let limits = FrameLimits { max_body: 64 * 1024, ..LIMITS };
        let mut tiny = chunked(&("1\r\nx\r\n".repeat(20_000) + "0\r\n\r\n")).into_bytes();
        let scanned = Scanner::new(limits).scan(&mut tiny);
        assert_eq!(scanned, Scan::Refused(Refusal::Malformed("too many chunks")), "a small body in one-byte chunks");
        let fields: String = (0..LIMITS.max_headers + 1).map(|i| format!("t{i}: v\r\n")).collect();
        assert!(
            refused(chunked(&format!("1\r\nx\r\n0\r\n{fields}\r\n")).as_bytes()),
            "more trailer fields than a head may have"
        );
        assert!(refused(b"GET /public#/../admin HTTP/1.1\r\nHost: x\r\n\r\n"), "a fragment in the target");
    }

    #[test]
    fn a_content_length_body_is_part_of_its_request() {
        let raw = b"POST /call HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(one(raw).unwrap(), raw);
        assert_eq!(requests(&raw[..raw.len() - 1]), (vec![], None), "incomplete until the last byte");
    }

    #[test]
    fn a_chunked_body_with_extensions_and_trailers_is_part_of_its_request() {
        let raw = b"POST /call HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\n";
        assert_eq!(one(raw).unwrap(), raw);
    }

    #[test]
    fn requests_back_to_back_are_read_one_at_a_time() {
        let first = &b"POST /call HTTP/1.1\r\nContent-Length: 1\r\n\r\na"[..];
        let second = &b"POST /call HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\n\r\n"[..];
        assert_eq!(requests(&[first, second].concat()), (vec![first.to_vec(), second.to_vec()], None));
    }

    #[test]
    fn oversized_bodies_are_read_to_their_end_then_refused() {
        let mut raw = b"POST / HTTP/1.1\r\nContent-Length: 2000\r\n\r\n".to_vec();
        raw.extend([b'x'; 2000]);
        assert_eq!(requests(&raw), (vec![], Some(Refusal::BodyTooLarge)));
        assert_eq!(requests(&raw[..raw.len() - 1]), (vec![], None), "not refused before its end");
        let mut raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n".to_vec();
        raw.extend([b'y'; 0x800]);
        raw.extend(b"\r\n0\r\n\r\n");
        assert_eq!(requests(&raw), (vec![], Some(Refusal::BodyTooLarge)));
        assert_eq!(requests(&raw[..raw.len() - 1]), (vec![], None), "not refused before its end");
    }

    #[test]
    fn bodies_beyond_the_drain_limit_are_refused_at_once() {
        let raw = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", LIMITS.drain_limit + 1);
        assert_eq!(requests(raw.as_bytes()), (vec![], Some(Refusal::BodyTooLarge)));
        let raw = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", "9".repeat(40));
        assert_eq!(requests(raw.as_bytes()), (vec![], Some(Refusal::BodyTooLarge)));
        let raw = format!("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{}\r\n", "f".repeat(20));
        assert_eq!(requests(raw.as_bytes()), (vec![], Some(Refusal::BodyTooLarge)));
    }

    #[test]
    fn garbage_is_refused_not_a_panic() {
        for raw in [
            &b"\x00\x01\x02\r\n\r\n"[..],
            b"POST /call HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"POST /call HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST /call HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd",
            b"GET /\x7f HTTP/1.1\r\n\r\n",
            b"G\x01T / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            assert!(refused(raw), "{}", show(raw));
        }
    }

    #[test]
    fn a_content_length_is_digits_and_nothing_else() {
        for value in ["+2", "-1", "2 2", "0x2", "", "2, 2", "2,", "2;", "\u{0662}", "2\u{a0}"] {
            let raw = format!("POST / HTTP/1.1\r\nContent-Length: {value}\r\n\r\nab");
            assert!(refused(raw.as_bytes()), "{}", show(raw.as_bytes()));
        }
        // The spaces and tabs around a value are not part of it (RFC 9110 §5.5).
        for value in ["2", " 2 ", "\t2\t", "002"] {
            let raw = format!("POST / HTTP/1.1\r\nContent-Length:{value}\r\n\r\nab");
            assert_eq!(one(raw.as_bytes()).unwrap(), raw.as_bytes(), "{}", show(raw.as_bytes()));
        }
    }

    #[test]
    fn a_repeated_content_length_is_refused_even_with_the_same_value() {
        assert!(refused(b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab"));
        assert!(refused(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"));
    }

    #[test]
    fn transfer_encoding_is_exactly_one_chunked_or_refused() {
        for value in [
            "chunked, identity",
            "identity",
            "xchunked",
            "chunked ",
            "chunked\t",
            "chunked,",
            "gzip, chunked",
            "chunked, chunked",
            "\"chunked\"",
            "",
        ] {
            let raw = format!("POST / HTTP/1.1\r\nTransfer-Encoding: {value}\r\n\r\n0\r\n\r\n");
            assert!(refused(raw.as_bytes()), "{}", show(raw.as_bytes()));
        }
        for raw in [
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ] {
            assert!(refused(raw), "{}", show(raw));
        }
        for value in ["chunked", "Chunked", "  CHUNKED"] {
            let raw = format!("POST / HTTP/1.1\r\nTransfer-Encoding:{value}\r\n\r\n1\r\nx\r\n0\r\n\r\n");
            assert_eq!(one(raw.as_bytes()).unwrap(), raw.as_bytes(), "{}", show(raw.as_bytes()));
        }
    }

    #[test]
    fn header_lines_a_lenient_parser_would_read_otherwise_are_refused() {
        for raw in [
            // obs-fold
            &b"POST / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nX-A: a\r\n\tContent-Length: 2\r\n\r\nab",
            b"POST / HTTP/1.1\r\n Host: x\r\n\r\n",
            // whitespace before the colon
            b"POST / HTTP/1.1\r\nContent-Length : 2\r\n\r\nab",
            b"POST / HTTP/1.1\r\nTransfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n",
            // bare CR or LF
            b"POST / HTTP/1.1\r\nX-A: a\rContent-Length: 2\r\n\r\nab",
            b"POST / HTTP/1.1\r\nX-A: a\nContent-Length: 2\r\n\r\nab",
            b"POST / HTTP/1.1\nContent-Length: 2\n\nab",
            b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\nab",
            b"POST / HTTP/1.1\r\r\n\r\n",
            // control characters
            b"POST / HTTP/1.1\r\nX-A: a\0b\r\n\r\n",
            b"POST / HTTP/1.1\r\nX-A: a\x7f\r\n\r\n",
            b"POST / HTTP/1.1\r\nX-A: a\x0b\r\n\r\n",
            b"POST / HTTP/1.1\r\nX\0A: a\r\n\r\n",
            // names
            b"POST / HTTP/1.1\r\n: a\r\n\r\n",
            b"POST / HTTP/1.1\r\nX(A): a\r\n\r\n",
            b"POST / HTTP/1.1\r\nno colon here\r\n\r\n",
        ] {
            assert!(refused(raw), "{}", show(raw));
        }
    }

    #[test]
    fn a_bare_lf_is_refused_as_soon_as_it_arrives() {
        // A peer that ends its head in bare LFs gets its answer, not a wait for the deadline.
        assert!(refused(b"GET / HTTP/1.1\n"));
        assert!(refused(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\n"));
    }

    #[test]
    fn values_with_obs_text_and_empty_values_pass() {
        let raw = "GET / HTTP/1.1\r\nX-A: \t v \t\r\nX-B: \u{a0}v\u{a0}\r\nX-C:\r\n\r\n".as_bytes();
        assert_eq!(one(raw).unwrap(), raw);
    }

    #[test]
    fn chunk_framing_a_lenient_parser_would_read_otherwise_is_refused() {
        for body in [
            &b"\r\n\r\n"[..],
            b";x\r\n\r\n",
            b"1 \r\nx\r\n0\r\n\r\n",
            b"0x1\r\nx\r\n0\r\n\r\n",
            b"+1\r\nx\r\n0\r\n\r\n",
            b"1\nx\r\n0\r\n\r\n",
            b"1\r\nx\n0\r\n\r\n",
            b"1\r\nxy\r\n0\r\n\r\n",
            b"1;a\rb\r\nx\r\n0\r\n\r\n",
            b"1;a\0\r\nx\r\n0\r\n\r\n",
            b"0\r\n\n",
            b"0\r\nT: v\n\r\n",
            b"0\r\n T: v\r\n\r\n",
            b"0\r\nT : v\r\n\r\n",
        ] {
            let raw = [&b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"[..], body].concat();
            assert!(refused(&raw), "{}", show(&raw));
        }
        for body in [&b"1 ;a=b\r\nx\r\n0\r\n\r\n"[..], b"1;a=\"q;\"\r\nx\r\n00\r\nT: v\r\n\r\n"] {
            let raw = [&b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"[..], body].concat();
            assert_eq!(one(&raw).unwrap(), raw, "{}", show(&raw));
        }
    }

    #[test]
    fn chunk_extensions_and_trailers_past_what_hyper_takes_are_refused() {
        let extension = format!("1;{}\r\nx\r\n", "e".repeat(4000));
        let body = format!("{}0\r\n\r\n", extension.repeat(5));
        let raw = format!("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
        assert!(refused(raw.as_bytes()));
        let trailers: String = (0..40).map(|i| format!("T-{i}: {}\r\n", "v".repeat(500))).collect();
        let raw = format!("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n{trailers}\r\n");
        assert!(refused(raw.as_bytes()));
    }

    #[test]
    fn an_oversized_head_is_its_own_refusal_whether_one_line_or_many() {
        let one_line = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(LIMITS.max_head));
        let many: String = (0..2000).map(|i| format!("X-{i}: {}\r\n", "a".repeat(30))).collect();
        let many_lines = format!("GET / HTTP/1.1\r\n{many}\r\n");
        let many_fields: String = (0..=LIMITS.max_headers).map(|i| format!("X-{i}: a\r\n")).collect();
        let too_many = format!("GET / HTTP/1.1\r\n{many_fields}\r\n");
        let blank_lines = format!("{}GET / HTTP/1.1\r\n\r\n", "\r\n".repeat(LIMITS.max_head));
        for raw in [&one_line, &many_lines, &too_many, &blank_lines] {
            assert_eq!(read(raw.as_bytes(), raw.len()), (vec![], Some(Refusal::HeadTooLarge)), "{}", &raw[..60]);
        }
        let fields: String = (0..LIMITS.max_headers).map(|i| format!("X-{i}: a\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\n{fields}\r\n");
        assert_eq!(one(raw.as_bytes()).unwrap(), raw.as_bytes());
        assert_eq!(one(b"\r\n\r\nGET /x HTTP/1.1\r\n\r\n").unwrap(), b"GET /x HTTP/1.1\r\n\r\n");
    }
}
