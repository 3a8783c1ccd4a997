//! Reads `/metrics` with the Prometheus project's own OpenMetrics parser (its Python client, in
//! the virtualenv `scripts/gateways-install` makes): a real, strict reader of the format, so a
//! test checks the text a scraper gets, not what our own code thinks it wrote.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

/// The variable `scripts/gateways-install` exports with the virtualenv's Python.
pub const VARIABLE: &str = "TOKENBRIDGE_PROMETHEUS_PYTHON";

/// Every sample as `{"family", "type", "name", "labels", "value"}`; parsing fails on anything
/// that is not valid OpenMetrics text (a missing `# EOF`, a bad label, a counter without
/// `_total`).
const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append({"family": family.name, "type": family.type, "name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;

/// The parser's Python, or why there is none. Without it a test fails under CI and is skipped
/// out loud elsewhere, as the gateway tests are.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os(VARIABLE).map(PathBuf::from) {
        Some(path) if path.exists() => Some(path),
        other => {
            let why = match other {
                Some(path) => format!("{VARIABLE} names {}, which does not exist", path.display()),
                None => format!("{VARIABLE} is not set (eval \"$(scripts/gateways-install)\" sets it)"),
            };
            assert!(std::env::var_os("CI").is_none_or(|v| v.is_empty()), "the metrics parser is missing: {why}");
            let _ = writeln!(std::io::stderr(), "SKIPPING the /metrics parser checks: {why}");
            None
        }
    }
}

/// One parsed sample.
#[derive(Debug, Clone)]
pub struct Sample {
    pub family: String,
    pub kind: String,
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// `text` parsed by the official parser with `python`; panics with the parser's reason if the
/// text is not valid OpenMetrics.
pub fn parse(python: &PathBuf, text: &str) -> Vec<Sample> {
    let mut child = Command::new(python)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the OpenMetrics parser");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write to the parser");
    let out = child.wait_with_output().expect("the parser's output");
    assert!(out.status.success(), "not valid OpenMetrics: {}\n{text}", String::from_utf8_lossy(&out.stderr));
    let samples: Vec<Value> = serde_json::from_slice(&out.stdout).expect("the parser's JSON");
    samples
        .into_iter()
        .map(|s| Sample {
            family: s["family"].as_str().unwrap_or_default().to_string(),
            kind: s["type"].as_str().unwrap_or_default().to_string(),
            name: s["name"].as_str().unwrap_or_default().to_string(),
            labels: s["labels"]
                .as_object()
                .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
                .unwrap_or_default(),
            value: s["value"].as_f64().unwrap_or(f64::NAN),
        })
        .collect()
}

/// The value of the sample `name` whose labels include all of `labels`, summed; 0 if none.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v)))
        .map(|s| s.value)
        .sum()
}
