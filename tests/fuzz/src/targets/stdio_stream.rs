//! The stdin/stdout framing (`tokenbridge_stdio::run`) over any input, with an engine that
//! cannot decide (no network): one JSON line per payload, never a decision; and the same answers
//! whichever reads the input arrives in (the input's last byte chooses where reads end).

use std::io::Read;

use crate::engine;
use serde_json::Value;

/// Input that arrives in reads of the given sizes, cycled.
struct Reads<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    next: usize,
}

impl Read for Reads<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let size = self.sizes[self.next % self.sizes.len()].min(buf.len()).min(self.data.len());
        self.next += 1;
        let (now, later) = self.data.split_at(size);
        buf[..size].copy_from_slice(now);
        self.data = later;
        Ok(size)
    }
}

/// The checks of the target on one input; panics on a broken invariant.
pub fn check(data: &[u8]) {
    let mut output = Vec::new();
    // Under libFuzzer the leak checker counts a finished thread's bookkeeping as a leak, and a
    // thread per input is slow: the fuzzer drives the one-thread loop, the replay both.
    #[cfg(fuzzing)]
    let summary = tokenbridge_stdio::run_in_one_thread(engine(), data, &mut output);
    #[cfg(not(fuzzing))]
    let summary = tokenbridge_stdio::run(engine(), data, &mut output);
    let summary = summary.expect("in-memory input and output cannot fail");
    let text = String::from_utf8(output).expect("answers are UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() as u64, summary.decisions + summary.unavailable + summary.invalid, "{summary:?}");
    assert_eq!(summary.decisions, 0, "an engine without a configuration decided");
    assert!(text.is_empty() || text.ends_with('\n'));
    let mut unavailable = 0;
    for line in &lines {
        let answer: Value = serde_json::from_str(line).expect("every answer line is JSON");
        assert!(answer.get("active").is_none(), "a decision: {line}");
        match answer["error"].as_str() {
            Some("unavailable") => {
                assert_eq!(answer["cause"], "configuration_invalid");
                unavailable += 1;
            }
            Some("invalid_payload") => assert!(answer["message"].is_string()),
            _ => panic!("not an answer: {line}"),
        }
    }
    assert_eq!(summary.unavailable, unavailable);
    // Input with anything but blank lines is answered at least once; blank input never.
    let blank = data.iter().all(u8::is_ascii_whitespace);
    assert_eq!(lines.is_empty(), blank, "{} answers to {} bytes", lines.len(), data.len());

    // Split into reads of 1 to 16 bytes, as chosen by the last byte.
    let seed = usize::from(data.last().copied().unwrap_or(0));
    let sizes = vec![1 + seed % 16, 1 + (seed / 16) % 16, 1];
    let mut chunked = Vec::new();
    let again = tokenbridge_stdio::run_in_one_thread(engine(), Reads { data, sizes, next: 0 }, &mut chunked)
        .expect("in-memory input and output cannot fail");
    assert_eq!(again, summary, "the same input in other reads");
    assert_eq!(String::from_utf8(chunked).expect("answers are UTF-8"), text, "the same answers in other reads");
}
