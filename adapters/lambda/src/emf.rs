//! The core's counters as CloudWatch Embedded Metric Format (EMF) lines, so that the metrics
//! reach CloudWatch from the function's own log, with no agent and no API call.
//!
//! Aggregated, not one line per decision: after an invocation's answer has been posted, and at
//! most once per interval, one line per label set that counted something since the last flush,
//! holding the counts since then (deltas: CloudWatch sums them per period). Nothing is written on
//! a decision's path, and nothing at all when nothing was counted. Dimensions are the metrics'
//! own labels — closed sets of names the core chooses — never a token, principal or path.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::tower::{Layer, Service};
use serde_json::{Map, Value, json};
use tokenbridge_core::metrics::{self, Sample, Snapshot};

/// The EMF specification's limit of metrics in one directive.
pub const MAX_METRICS_PER_DIRECTIVE: usize = 100;
/// The EMF specification's limit of dimensions in one dimension set.
pub const MAX_DIMENSIONS_PER_SET: usize = 30;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
const LONGEST_INTERVAL_SECONDS: u64 = 3600;

/// Where and how often the lines are written (docs/observability.md, "CloudWatch EMF").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `TOKENBRIDGE_LAMBDA_METRICS`: `emf` (the default) or `off`.
    pub enabled: bool,
    /// `TOKENBRIDGE_LAMBDA_METRICS_INTERVAL_SECONDS`: 1 to 3600, default 60.
    pub interval: Duration,
    /// `TOKENBRIDGE_LAMBDA_METRICS_NAMESPACE`: default `tokenbridge`.
    pub namespace: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { enabled: true, interval: DEFAULT_INTERVAL, namespace: "tokenbridge".into() }
    }
}

impl Settings {
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The settings from `env`; a value that is set but wrong is an error, not the default, so a
    /// typo does not silently turn the metrics off or flood the log.
    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut settings = Settings::default();
        if let Some(mode) = env("TOKENBRIDGE_LAMBDA_METRICS") {
            settings.enabled = match mode.trim() {
                "emf" => true,
                "off" => false,
                other => return Err(format!("TOKENBRIDGE_LAMBDA_METRICS must be `emf` or `off`, not {other:?}")),
            };
        }
        if let Some(seconds) = env("TOKENBRIDGE_LAMBDA_METRICS_INTERVAL_SECONDS") {
            let seconds = seconds.trim().parse::<u64>().ok().filter(|s| (1..=LONGEST_INTERVAL_SECONDS).contains(s));
            let seconds = seconds.ok_or_else(|| {
                format!("TOKENBRIDGE_LAMBDA_METRICS_INTERVAL_SECONDS must be a whole number of seconds from 1 to {LONGEST_INTERVAL_SECONDS}")
            })?;
            settings.interval = Duration::from_secs(seconds);
        }
        if let Some(namespace) = env("TOKENBRIDGE_LAMBDA_METRICS_NAMESPACE") {
            check_namespace(&namespace)?;
            settings.namespace = namespace;
        }
        Ok(settings)
    }
}

/// CloudWatch's rules for a namespace: 1 to 255 of letters, digits and `.-_/#:`, not starting
/// with `AWS/` (reserved for AWS services). Checked here so that a bad one fails at start,
/// not silently in CloudWatch's extraction.
fn check_namespace(namespace: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_/#:".contains(c);
    if namespace.is_empty() || namespace.len() > 255 || !namespace.chars().all(allowed) {
        return Err("TOKENBRIDGE_LAMBDA_METRICS_NAMESPACE must be 1 to 255 letters, digits or `.-_/#:`".into());
    }
    if namespace.starts_with("AWS/") {
        return Err("TOKENBRIDGE_LAMBDA_METRICS_NAMESPACE must not start with `AWS/` (AWS's own namespaces)".into());
    }
    Ok(())
}

type Labels = Vec<(&'static str, &'static str)>;

/// The counts already written, and when.
pub struct Flusher {
    settings: Settings,
    /// Each counter's value at the last flush; a counter not here was 0, so the calls made at
    /// init (the issuers' keys) are in the first line.
    sent: HashMap<(&'static str, Labels), u64>,
    last: Instant,
}

impl Flusher {
    pub fn new(settings: Settings) -> Self {
        Flusher { settings, sent: HashMap::new(), last: Instant::now() }
    }

    /// The lines to write if the interval has passed since the last flush (none otherwise).
    pub fn due(&mut self, now: Instant) -> Vec<String> {
        if !self.settings.enabled || now.duration_since(self.last) < self.settings.interval {
            return Vec::new();
        }
        self.last = now;
        self.lines(&metrics::snapshot())
    }

    /// The lines of everything counted since the last flush, whatever the interval: for the
    /// final flush at shutdown.
    pub fn now(&mut self) -> Vec<String> {
        if !self.settings.enabled {
            return Vec::new();
        }
        self.last = Instant::now();
        self.lines(&metrics::snapshot())
    }

    fn lines(&mut self, snapshot: &Snapshot) -> Vec<String> {
        let deltas = deltas(&mut self.sent, snapshot);
        documents(&self.settings.namespace, unix_ms(), &deltas)
    }
}

/// What each counter counted since `sent`, which is brought up to date; counters that did not
/// move are left out.
fn deltas(sent: &mut HashMap<(&'static str, Labels), u64>, snapshot: &Snapshot) -> Vec<Sample> {
    let mut moved = Vec::new();
    for sample in &snapshot.counters {
        let before = sent.entry((sample.name, sample.labels.clone())).or_insert(0);
        // Counters only grow; saturating all the same, so a surprise is a 0, not a wrap.
        let delta = sample.value.saturating_sub(*before);
        *before = (*before).max(sample.value);
        if delta > 0 {
            moved.push(Sample { name: sample.name, labels: sample.labels.clone(), value: delta });
        }
    }
    moved
}

/// The EMF documents, one JSON line each, for `deltas` at `timestamp_ms`: one document per
/// label set (EMF puts dimension values at the top level, so a document has one value for
/// each), with every counter of that label set as a metric — split into several documents past
/// [`MAX_METRICS_PER_DIRECTIVE`].
pub fn documents(namespace: &str, timestamp_ms: u64, deltas: &[Sample]) -> Vec<String> {
    let mut by_labels: BTreeMap<Labels, Vec<&Sample>> = BTreeMap::new();
    for sample in deltas {
        by_labels.entry(sample.labels.clone()).or_default().push(sample);
    }
    let mut lines = Vec::new();
    for (labels, samples) in by_labels {
        for chunk in samples.chunks(MAX_METRICS_PER_DIRECTIVE) {
            lines.push(document(namespace, timestamp_ms, &labels, chunk).to_string());
        }
    }
    lines
}

fn document(namespace: &str, timestamp_ms: u64, labels: &Labels, samples: &[&Sample]) -> Value {
    let mut root = Map::new();
    let directive = json!({
        "Namespace": namespace,
        "Dimensions": dimension_sets(labels),
        "Metrics": samples.iter().map(|s| json!({"Name": s.name, "Unit": "Count"})).collect::<Vec<_>>(),
    });
    root.insert("_aws".into(), json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": [directive]}));
    for (name, value) in labels {
        root.insert((*name).into(), Value::String((*value).into()));
    }
    for sample in samples {
        root.insert(sample.name.into(), json!(sample.value));
    }
    Value::Object(root)
}

/// Every label as a dimension; and, for the decisions, `outcome` alone as well, because
/// CloudWatch does not sum across dimensions: "decisions by outcome" needs a metric of its own.
/// A counter without labels gets the one empty set: a metric with no dimensions.
fn dimension_sets(labels: &Labels) -> Vec<Vec<&'static str>> {
    let all: Vec<&'static str> = labels.iter().map(|(name, _)| *name).take(MAX_DIMENSIONS_PER_SET).collect();
    let mut sets = vec![all];
    if labels.len() > 1 && labels.iter().any(|(name, _)| *name == "outcome") {
        sets.insert(0, vec!["outcome"]);
    }
    sets
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes `lines` to stderr, where Lambda's log capture (and the decision log) goes, in one
/// write so that no other line lands among them.
pub fn write(lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let mut text = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    // A log that cannot be written loses the metrics, never the decision.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// The shared flusher, for the runtime's layer and its shutdown hook.
pub type Shared = Arc<Mutex<Flusher>>;

/// Writes the due lines.
pub fn flush_if_due(flusher: &Shared) {
    let lines = flusher.lock().unwrap_or_else(|p| p.into_inner()).due(Instant::now());
    write(&lines);
}

/// Writes everything not yet written.
pub fn flush_now(flusher: &Shared) {
    let lines = flusher.lock().unwrap_or_else(|p| p.into_inner()).now();
    write(&lines);
}

/// A layer on the runtime's whole invocation service, outside the part that posts the answer:
/// its flush runs after the answer has been handed to the Runtime API, before the next event is
/// asked for (Lambda may freeze the process once it asks).
#[derive(Clone)]
pub struct EmfLayer(pub Shared);

impl<S> Layer<S> for EmfLayer {
    type Service = EmfService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EmfService { inner, flusher: self.0.clone() }
    }
}

pub struct EmfService<S> {
    inner: S,
    flusher: Shared,
}

impl<S, R> Service<R> for EmfService<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Flushing<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        Flushing { inner: Box::pin(self.inner.call(request)), flusher: self.flusher.clone() }
    }
}

/// The invocation, then the flush if one is due.
pub struct Flushing<F> {
    inner: Pin<Box<F>>,
    flusher: Shared,
}

impl<F: Future> Future for Flushing<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let output = std::task::ready!(self.inner.as_mut().poll(cx));
        flush_if_due(&self.flusher);
        Poll::Ready(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checker written from AWS's "Specification: Embedded metric format": panics with the
    /// rule a document breaks.
    fn assert_valid_emf(line: &str) {
        assert!(!line.contains('\n'), "one log event, one line");
        let root: Value = serde_json::from_str(line).expect("a JSON object with nothing around it");
        let root = root.as_object().expect("the root is an object");
        let aws = root.get("_aws").and_then(Value::as_object).expect("`_aws` is an object");
        let timestamp = aws.get("Timestamp").expect("`_aws.Timestamp` is required");
        let ms = timestamp.as_u64().expect("Timestamp is a number (ms since the epoch)");
        assert!(ms > 1_500_000_000_000 && ms < 10_000_000_000_000, "Timestamp is in milliseconds: {ms}");
        let directives = aws.get("CloudWatchMetrics").and_then(Value::as_array).expect("CloudWatchMetrics is an array");
        assert!(!directives.is_empty());
        for directive in directives {
            let directive = directive.as_object().expect("a MetricDirective is an object");
            for key in directive.keys() {
                assert!(["Namespace", "Dimensions", "Metrics"].contains(&key.as_str()), "unknown member {key}");
            }
            let namespace = directive.get("Namespace").and_then(Value::as_str).expect("Namespace is a string");
            assert!((1..=255).contains(&namespace.len()), "Namespace length");
            let sets = directive.get("Dimensions").and_then(Value::as_array).expect("Dimensions is an array");
            for set in sets {
                let set = set.as_array().expect("a DimensionSet is an array");
                assert!(set.len() <= MAX_DIMENSIONS_PER_SET, "at most 30 dimensions in a set");
                for name in set {
                    let name = name.as_str().expect("a dimension name is a string");
                    let value = root.get(name).unwrap_or_else(|| panic!("dimension {name} is a member of the root"));
                    let value = value.as_str().unwrap_or_else(|| panic!("dimension {name}'s value is a string"));
                    assert!(!value.is_empty() && value.len() <= 1024, "dimension value length");
                }
            }
            let metrics = directive.get("Metrics").and_then(Value::as_array).expect("Metrics is an array");
            assert!(metrics.len() <= MAX_METRICS_PER_DIRECTIVE, "at most 100 metrics in a directive");
            for metric in metrics {
                let metric = metric.as_object().expect("a MetricDefinition is an object");
                let name = metric.get("Name").and_then(Value::as_str).expect("Name is a string");
                assert!((1..=1024).contains(&name.len()));
                if let Some(unit) = metric.get("Unit") {
                    assert!(["Count", "Seconds", "Milliseconds", "None"].contains(&unit.as_str().unwrap_or("")));
                }
                let value = root.get(name).unwrap_or_else(|| panic!("metric {name} is a member of the root"));
                assert!(value.is_number(), "metric {name}'s value is a number");
            }
        }
    }

    fn sample(name: &'static str, labels: &[(&'static str, &'static str)], value: u64) -> Sample {
        Sample { name, labels: labels.to_vec(), value }
    }

    #[test]
    fn each_label_set_is_one_valid_document_with_its_labels_as_dimensions() {
        let deltas = [
            sample("decisions", &[("outcome", "allow"), ("reason", "none"), ("dependency", "none")], 3),
            sample("decisions", &[("outcome", "deny"), ("reason", "expired"), ("dependency", "none")], 1),
            sample("idp_calls", &[("dependency", "introspection"), ("result", "ok")], 2),
            sample("stage_lookups", &[("stage", "validation"), ("served", "hit")], 2),
            sample("cache_evictions", &[], 4),
            sample("jwks_unknown_kid_refetches", &[], 1),
        ];
        let lines = documents("tokenbridge", 1_764_000_000_000, &deltas);
        assert_eq!(lines.len(), 5, "{lines:#?}");
        for line in &lines {
            assert_valid_emf(line);
        }
        let parsed: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        let deny = parsed.iter().find(|d| d["outcome"] == "deny").unwrap();
        assert_eq!(deny["decisions"], 1);
        assert_eq!(deny["reason"], "expired");
        assert_eq!(
            deny["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["outcome"], ["outcome", "reason", "dependency"]])
        );
        assert_eq!(deny["_aws"]["CloudWatchMetrics"][0]["Namespace"], "tokenbridge");
        assert_eq!(deny["_aws"]["Timestamp"], 1_764_000_000_000u64);
        let call = parsed.iter().find(|d| d["result"] == "ok").unwrap();
        assert_eq!(call["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["dependency", "result"]]));
        assert_eq!(call["_aws"]["CloudWatchMetrics"][0]["Metrics"], json!([{"Name": "idp_calls", "Unit": "Count"}]));
        // The unlabelled counters share one document with no dimensions.
        let plain = parsed.iter().find(|d| d.get("cache_evictions").is_some()).unwrap();
        assert_eq!(plain["jwks_unknown_kid_refetches"], 1);
        assert_eq!(plain["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
    }

    #[test]
    fn more_than_a_hundred_metrics_of_one_label_set_are_split_into_several_documents() {
        let names: Vec<&'static str> = (0..250).map(|i| &*Box::leak(format!("m{i}").into_boxed_str())).collect();
        let deltas: Vec<Sample> = names.iter().map(|n| sample(n, &[("stage", "backend")], 1)).collect();
        let lines = documents("tokenbridge", 1_764_000_000_000, &deltas);
        assert_eq!(lines.len(), 3);
        let mut seen = 0;
        for line in &lines {
            assert_valid_emf(line);
            let v: Value = serde_json::from_str(line).unwrap();
            seen += v["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap().len();
        }
        assert_eq!(seen, 250, "every metric in exactly one document");
    }

    #[test]
    fn the_checker_catches_what_the_specification_forbids() {
        let good = r#"{"_aws":{"Timestamp":1764000000000,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[["a"]],"Metrics":[{"Name":"m","Unit":"Count"}]}]},"a":"x","m":1}"#;
        assert_valid_emf(good);
        for bad in [
            good.replace(r#""Timestamp":1764000000000,"#, ""),
            good.replace(r#""m":1"#, r#""m":"1""#),
            good.replace(r#""a":"x""#, r#""a":7"#),
            good.replace(r#","m":1"#, ""),
            good.replace("1764000000000", "1764000000"),
        ] {
            assert!(std::panic::catch_unwind(|| assert_valid_emf(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn deltas_hold_what_was_counted_since_the_last_flush_and_leave_out_the_rest() {
        let mut sent = HashMap::new();
        let at = |allows, denies| Snapshot {
            counters: vec![
                sample("decisions", &[("outcome", "allow"), ("reason", "none"), ("dependency", "none")], allows),
                sample("decisions", &[("outcome", "deny"), ("reason", "expired"), ("dependency", "none")], denies),
            ],
        };
        assert_eq!(deltas(&mut sent, &at(5, 1)).iter().map(|s| s.value).collect::<Vec<_>>(), [5, 1]);
        let second = deltas(&mut sent, &at(7, 1));
        assert_eq!(second.len(), 1, "the denies did not move");
        assert_eq!(second[0].value, 2);
        assert!(deltas(&mut sent, &at(7, 1)).is_empty());
    }

    #[test]
    fn a_flush_is_due_once_per_interval_and_nothing_is_written_when_off() {
        let settings = Settings { interval: Duration::from_secs(60), ..Settings::default() };
        let mut flusher = Flusher::new(settings);
        let start = flusher.last;
        tokenbridge_core::metrics::snapshot(); // the registry exists
        assert!(flusher.due(start + Duration::from_secs(59)).is_empty(), "not yet due");
        let _ = flusher.due(start + Duration::from_secs(60));
        assert_eq!(flusher.last, start + Duration::from_secs(60), "a flush was made");
        assert!(flusher.due(start + Duration::from_secs(61)).is_empty(), "not again within the interval");
        let mut off = Flusher::new(Settings { enabled: false, ..Settings::default() });
        assert!(off.now().is_empty());
    }

    #[test]
    fn settings_are_read_and_wrong_values_refused() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(Settings::from_lookup(env(&[])), Ok(Settings::default()));
        let set = Settings::from_lookup(env(&[
            ("TOKENBRIDGE_LAMBDA_METRICS_INTERVAL_SECONDS", "5"),
            ("TOKENBRIDGE_LAMBDA_METRICS_NAMESPACE", "team/auth"),
        ]))
        .unwrap();
        assert_eq!((set.interval, set.namespace.as_str()), (Duration::from_secs(5), "team/auth"));
        assert!(!Settings::from_lookup(env(&[("TOKENBRIDGE_LAMBDA_METRICS", "off")])).unwrap().enabled);
        for bad in [
            &[("TOKENBRIDGE_LAMBDA_METRICS", "prometheus")][..],
            &[("TOKENBRIDGE_LAMBDA_METRICS_INTERVAL_SECONDS", "0")],
            &[("TOKENBRIDGE_LAMBDA_METRICS_INTERVAL_SECONDS", "1m")],
            &[("TOKENBRIDGE_LAMBDA_METRICS_NAMESPACE", "AWS/Lambda")],
            &[("TOKENBRIDGE_LAMBDA_METRICS_NAMESPACE", "has space")],
            &[("TOKENBRIDGE_LAMBDA_METRICS_NAMESPACE", "")],
        ] {
            let bad: &'static [(&'static str, &'static str)] = bad;
            assert!(Settings::from_lookup(env(bad)).is_err(), "{bad:?}");
        }
    }
}
