//! stdin/stdout adapter: OCI API Gateway authorizer payloads in, one JSON answer line out per
//! payload, so it can be piped and scripted.
//!
//! ```no_run
//! use std::io;
//! use tokenbridge_core::Engine;
//!
//! let engine = Engine::from_env();
//! tokenbridge_stdio::run(&engine, io::stdin().lock(), io::stdout()).unwrap();
//! ```
//!
//! Answers are written together while more input is already waiting, flushed before any read
//! that could wait, and never held more than a millisecond while the next request is decided: a
//! pipe full of requests costs one write per batch, a client that sends one request and waits
//! gets its answer at once, and an answer does not wait for the next request's IdP call.
//!
//! Input is one JSON document, or many (one per line, or pretty-printed across lines). Each
//! answer line is exactly the body the OCI adapter returns: an allow or a deny carries
//! `"active"`; a line without `"active"` is no decision — `"error":"unavailable"` (the OCI
//! adapter's 502) or `"error":"invalid_payload"` for input that is not a gateway payload.

#![forbid(unsafe_code)]

use std::io::{self, BufRead, BufReader, Read, Write};

mod output;

use output::Output;

use serde_json::Value;
use tokenbridge_core::Engine;
use tokenbridge_wire as gateway;

/// Largest document accepted; a longer one is answered with an error and skipped.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// How many documents got which kind of answer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub decisions: u64,
    pub unavailable: u64,
    pub invalid: u64,
}

/// How much input is read at a time.
const BUFFER_BYTES: usize = 64 * 1024;

/// Answers every document on `input` until it ends.
pub fn run(engine: &Engine, input: impl Read, output: impl Write + Send) -> io::Result<Summary> {
    let output = Output::new(output, true);
    std::thread::scope(|scope| {
        scope.spawn(|| output.write_lingering());
        // The helper must be let go even if a decision panics, or the scope would wait for it.
        let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| answer_all(engine, input, &output)));
        let finished = output.finish();
        match answered {
            Ok(answered) => answered.and_then(|summary| finished.map(|()| summary)),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// [`run`] in the caller's thread alone: answers are still batched and written before any read
/// that could wait, but one may wait while the next buffered request is decided. For callers
/// that should not start a thread (the fuzz targets, under a leak checker that counts a finished
/// thread's bookkeeping as a leak).
pub fn run_in_one_thread(engine: &Engine, input: impl Read, output: impl Write) -> io::Result<Summary> {
    let output = Output::new(output, false);
    let answered = answer_all(engine, input, &output);
    let finished = output.finish();
    answered.and_then(|summary| finished.map(|()| summary))
}

fn answer_all<W: Write>(engine: &Engine, input: impl Read, output: &Output<W>) -> io::Result<Summary> {
    let mut input = BufReader::with_capacity(BUFFER_BYTES, input);
    // With a broken configuration every decision is Unavailable; these defaults are then unused.
    let (realm, token_argument) = engine.config().map_or(("", "token"), |c| (c.realm(), c.token_argument()));
    let mut summary = Summary::default();
    let mut answer = |doc: Result<Value, String>, out: &Output<W>| -> io::Result<()> {
        match doc.and_then(|d| gateway::parse_value(&d, token_argument).map_err(|e| e.to_string())) {
            Ok(request) => {
                // Decided before the output is taken, so the helper may write earlier answers
                // while this decision waits on an IdP.
                let outcome = engine.decide(&request);
                let mut status = 0;
                out.answer(|w| gateway::write(&outcome, realm, w).map(|s| status = s))?;
                if status == 200 { summary.decisions += 1 } else { summary.unavailable += 1 }
            }
            Err(message) => {
                summary.invalid += 1;
                out.answer(|w| {
                    serde_json::to_writer(
                        &mut *w,
                        &serde_json::json!({ "error": "invalid_payload", "message": message }),
                    )?;
                    w.write_all(b"\n")
                })?;
            }
        }
        Ok(())
    };

    let incomplete = || Err("the document is incomplete".to_string());
    let mut pending: Vec<u8> = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    loop {
        // No whole line waiting: the next read may wait for the client, who may be waiting for
        // these answers.
        if !input.buffer().contains(&b'\n') {
            output.flush()?;
        }
        match read_line(&mut input, &mut line)? {
            Line::End => break,
            Line::TooLong => {
                answer(Err("document exceeds 1 MiB".into()), output)?;
                pending.clear();
                continue;
            }
            Line::Read => {}
        }
        if pending.is_empty() && line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if pending.is_empty() {
            // The usual case, a document on one line: read it where it lies.
            match read_document(&line) {
                Err(None) => {}
                doc => {
                    answer(doc.map_err(|e| e.unwrap_or_default()), output)?;
                    continue;
                }
            }
        }
        if !pending.is_empty() && line.first() == Some(&b'{') && !continues(&pending, &line) {
            // A line that cannot go on the document before it but is a whole document by itself
            // is a new request: what came before was a truncated one, and must not swallow it.
            if let Ok(doc @ Value::Object(_)) = read_document(&line) {
                answer(incomplete(), output)?;
                answer(Ok(doc), output)?;
                pending.clear();
                continue;
            }
        }
        pending.extend_from_slice(&line);
        if pending.len() > MAX_DOCUMENT_BYTES {
            answer(Err("document exceeds 1 MiB".into()), output)?;
            pending.clear();
            continue;
        }
        match read_document(&pending) {
            // A document spread over several lines: wait for the rest.
            Err(None) => continue,
            doc => {
                answer(doc.map_err(|e| e.unwrap_or_default()), output)?;
                pending.clear();
            }
        }
    }
    if !pending.is_empty() {
        answer(read_document(&pending).map_err(|e| e.unwrap_or_else(|| "the document is incomplete".into())), output)?;
    }
    Ok(summary)
}

/// What [`read_line`] found.
enum Line {
    /// A line, with its `\n` unless input ended first.
    Read,
    /// A line longer than [`MAX_DOCUMENT_BYTES`], read to its end and dropped, never held in
    /// memory whole.
    TooLong,
    End,
}

/// Reads the next line into `line` (emptied first, so one buffer serves every line).
fn read_line(input: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<Line> {
    line.clear();
    let n = input.by_ref().take(MAX_DOCUMENT_BYTES as u64 + 1).read_until(b'\n', line)?;
    if n == 0 {
        return Ok(Line::End);
    }
    // A line of exactly the limit arrives with its newline in the last byte read.
    let ended = line.ends_with(b"\n");
    if line.len() - usize::from(ended) > MAX_DOCUMENT_BYTES {
        // Its newline is still ahead: read up to it and drop it, but no further.
        line.clear();
        while input.by_ref().take(64 * 1024).read_until(b'\n', line)? > 0 && !line.ends_with(b"\n") {
            line.clear();
        }
        line.clear();
        return Ok(Line::TooLong);
    }
    Ok(Line::Read)
}

/// Whether `line` can be part of the document begun in `pending` (it completes it or leaves it
/// incomplete, rather than making it invalid).
fn continues(pending: &[u8], line: &[u8]) -> bool {
    let joined = [pending, line].concat();
    !matches!(read_document(&joined), Err(Some(_)))
}

/// One JSON document, or why not: `Err(None)` when it is merely incomplete so far. Error
/// messages give the position only, never the input (which may hold a token).
fn read_document(bytes: &[u8]) -> Result<Value, Option<String>> {
    serde_json::from_slice(bytes).map_err(|e| {
        (!e.is_eof()).then(|| format!("the input is not JSON: syntax error at line {} column {}", e.line(), e.column()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenbridge_core::ConfigErrors;

    /// Answers every input as the stdio adapter would, with an engine whose every decision is
    /// Unavailable (no IdP is needed to test the framing).
    fn answers(input: &str) -> Vec<Value> {
        let engine = Engine::builder(Err(ConfigErrors(vec!["test".into()]))).log_sink(|_| {}).build();
        let mut out = Vec::new();
        run(&engine, input.as_bytes(), &mut out).unwrap();
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn kinds(input: &str) -> Vec<String> {
        answers(input).iter().map(|a| a["error"].as_str().unwrap_or("decision").to_string()).collect()
    }

    #[test]
    fn one_answer_per_line() {
        assert_eq!(kinds("{\"type\":\"TOKEN\"}\n\n{\"type\":\"TOKEN\"}\n"), ["unavailable", "unavailable"]);
    }

    #[test]
    fn a_pretty_printed_document_is_one_request() {
        assert_eq!(kinds("{\n  \"type\": \"TOKEN\",\n  \"token\": \"Bearer x\"\n}\n"), ["unavailable"]);
    }

    #[test]
    fn a_truncated_line_does_not_swallow_the_next_request() {
        assert_eq!(
            kinds("{\"type\":\"TOKEN\",\n{\"type\":\"TOKEN\"}\n{\"type\":\"TOKEN\"}\n"),
            ["invalid_payload", "unavailable", "unavailable"]
        );
    }

    #[test]
    fn an_indented_object_inside_a_pretty_printed_document_is_not_a_new_request() {
        let input =
            "{\n  \"type\": \"USER_DEFINED\",\n  \"data\": {\"token\": \"Bearer x\", \"extra\": [\n    {}\n  ]}\n}\n";
        assert_eq!(kinds(input), ["unavailable"]);
    }

    #[test]
    fn an_unindented_object_that_continues_the_document_is_part_of_it() {
        let input = "{\"type\":\"USER_DEFINED\",\"data\":\n{\"token\":\"Bearer x\"}\n}\n{\"type\":\"TOKEN\"}\n";
        assert_eq!(kinds(input), ["unavailable", "unavailable"]);
    }

    #[test]
    fn a_truncated_last_document_is_answered() {
        assert_eq!(kinds("{\"type\":\"TOKEN\"}\n{\"type\":"), ["unavailable", "invalid_payload"]);
    }

    #[test]
    fn an_oversized_line_is_refused_and_the_next_answered() {
        let input = format!(
            "{{\"type\":\"TOKEN\",\"token\":\"{}\"}}\n{{\"type\":\"TOKEN\"}}\n",
            "a".repeat(MAX_DOCUMENT_BYTES)
        );
        let got = answers(&input);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["message"], "document exceeds 1 MiB");
        assert_eq!(got[1]["error"], "unavailable");
    }

    #[test]
    fn input_without_a_final_newline_is_answered() {
        assert_eq!(kinds("{\"type\":\"TOKEN\"}"), ["unavailable"]);
    }

    /// Input that arrives in the given chunks, one per read; each read after the first records
    /// how many answer lines the client had received by then.
    struct Chunks {
        chunks: std::collections::VecDeque<&'static [u8]>,
        answered: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
        seen_before_read: Vec<usize>,
        reads: usize,
    }

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.reads > 0 {
                self.seen_before_read.push(self.answered.lock().unwrap().iter().filter(|&&b| b == b'\n').count());
            }
            self.reads += 1;
            let Some(chunk) = self.chunks.pop_front() else { return Ok(0) };
            buf[..chunk.len()].copy_from_slice(chunk);
            Ok(chunk.len())
        }
    }

    /// Output that counts its write calls.
    struct Client {
        answered: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
        writes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Write for Client {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.answered.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn run_chunks(chunks: &[&'static [u8]]) -> (Vec<usize>, usize) {
        let engine = Engine::builder(Err(ConfigErrors(vec!["test".into()]))).log_sink(|_| {}).build();
        let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let writes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut input = Chunks {
            chunks: chunks.iter().copied().collect(),
            answered: answered.clone(),
            seen_before_read: vec![],
            reads: 0,
        };
        let client = Client { answered, writes: writes.clone() };
        run(&engine, &mut input, client).unwrap();
        (input.seen_before_read, writes.load(std::sync::atomic::Ordering::SeqCst))
    }

    #[test]
    fn every_answer_is_out_before_a_read_that_could_wait() {
        let line: &[u8] = b"{\"type\":\"TOKEN\"}\n";
        let (seen, _) = run_chunks(&[line, line, line]);
        // Before the 2nd, 3rd and the final (end of input) read, all answers so far were out.
        assert_eq!(seen, [1, 2, 3]);
    }

    #[test]
    fn a_document_split_across_reads_does_not_hold_back_the_answers_before_it() {
        let (seen, _) = run_chunks(&[b"{\"type\":\"TOKEN\"}\n{\"type\":", b"\"TOKEN\"}\n"]);
        assert_eq!(seen, [1, 2]);
    }

    #[test]
    fn answers_to_requests_that_arrived_together_go_out_together() {
        const BATCH: &[u8] =
            b"{\"type\":\"TOKEN\"}\n{\"type\":\"TOKEN\"}\n{\"type\":\"TOKEN\"}\n{\"type\":\"TOKEN\"}\n\
            {\"type\":\"TOKEN\"}\n{\"type\":\"TOKEN\"}\n{\"type\":\"TOKEN\"}\n{\"type\":\"TOKEN\"}\n";
        let (seen, writes) = run_chunks(&[BATCH, BATCH]);
        assert_eq!(seen, [8, 16]);
        // One write per batch; the lingering helper may split one on a very slow machine, but
        // never into a write per answer.
        assert!((2..=4).contains(&writes), "{writes} writes for 16 answers in 2 batches");
    }
}
