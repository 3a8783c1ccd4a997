//! The process's metrics, one set for every platform: decisions by outcome and reason, how each
//! stage was served, IdP calls by dependency with their latency and result class, and a few
//! counters of rare events. Labels are closed sets of names chosen here (an outcome, a reason,
//! a dependency), never a token, principal, client id, claim or path: a label value that came
//! from a request would let callers grow the series without bound, and could leak.
//!
//! Kept with the Prometheus project's own client (`prometheus-client`); counting a decision is
//! atomic adds and the duration histogram's short lock. Exposed as OpenMetrics text ([`encode`]) for
//! `GET /metrics`, and as a [`Snapshot`] of plain numbers for the platforms that push metrics
//! in a form of their own (the stdio summary, the Lambda adapter's CloudWatch EMF lines; OCI Monitoring later).

use std::hash::{Hash, Hasher};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;
use prometheus_client::encoding::text::encode as encode_text;
use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::cache::Lookup;
use crate::log::{self, Trace};
use crate::outcome::{Failure, Outcome};
use crate::reason::Reason;
use crate::sync::lock;

/// The `Content-Type` of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One label set: names and values, all chosen in this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Labels<const N: usize>([(&'static str, &'static str); N]);

impl<const N: usize> Hash for Labels<N> {
    /// A few bytes of each value, not all of every name and value: cheap for the counts that
    /// look their label set up (the calls' histograms, a label set without a slot). Equal label
    /// sets hash equally, as `Eq` needs; the rare two that collide are told apart by `Eq`.
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut folded: u64 = 0;
        for (_, value) in &self.0 {
            let b = value.as_bytes();
            let ends = [b.first(), b.get(b.len() / 2), b.last()].map(|c| u64::from(c.copied().unwrap_or(0)));
            folded = folded.wrapping_mul(0x100_0000_01b3)
                ^ (b.len() as u64)
                ^ (ends[0] << 8)
                ^ (ends[1] << 16)
                ^ (ends[2] << 24);
        }
        state.write_u64(folded);
    }
}

impl<const N: usize> EncodeLabelSet for Labels<N> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }
}

/// A labelled counter that also keeps the label sets it has seen (a handful), so that a
/// [`Snapshot`] can list them: the client library's families cannot be iterated.
struct Counters<const N: usize> {
    family: Family<Labels<N>, Counter>,
    seen: Mutex<Vec<Labels<N>>>,
    /// The family's counter of each label set the caller numbers, once counted: counting one
    /// is then an atomic load and an atomic add, without hashing or locking.
    slots: Vec<OnceLock<Counter>>,
}

impl<const N: usize> Counters<N> {
    fn new(slots: usize) -> Self {
        Self {
            family: Family::default(),
            seen: Mutex::new(Vec::new()),
            slots: (0..slots).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Counts under `labels`, which the caller always numbers `slot` (past the slots: looked up).
    fn inc_at(&self, slot: usize, labels: [(&'static str, &'static str); N]) {
        match self.slots.get(slot) {
            Some(cell) => {
                cell.get_or_init(|| self.counter(labels)).inc();
            }
            None => self.inc(labels),
        }
    }

    fn inc(&self, labels: [(&'static str, &'static str); N]) {
        let labels = Labels(labels);
        // One lookup when the label set is known, as all but the first count of each are.
        if let Some(counter) = self.family.get(&labels) {
            counter.inc();
            return;
        }
        self.counter(labels.0).inc();
    }

    /// The family's counter under `labels`, made if need be and listed for [`Counters::values`].
    fn counter(&self, labels: [(&'static str, &'static str); N]) -> Counter {
        let labels = Labels(labels);
        let mut seen = lock(&self.seen);
        if !seen.contains(&labels) {
            seen.push(labels);
        }
        self.family.get_or_create_owned(&labels)
    }

    fn values(&self) -> Vec<(Vec<(&'static str, &'static str)>, u64)> {
        let seen = lock(&self.seen).clone();
        seen.into_iter().map(|labels| (labels.0.to_vec(), self.family.get(&labels).map_or(0, |c| c.get()))).collect()
    }
}

/// Seconds, from 1 ms to 10 s: a cache hit is well under the first bucket, an IdP call that
/// reaches the last one has nearly timed out.
const BUCKETS: [f64; 13] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Every metric of the process, and the registry that encodes them.
struct Metrics {
    registry: Registry,
    decisions: Counters<3>,
    decision_seconds: Histogram,
    stages: Counters<2>,
    idp_calls: Counters<2>,
    idp_seconds: Family<Labels<1>, Histogram, fn() -> Histogram>,
    unknown_kid_refetches: Counter,
    cache_evictions: Counter,
    log_lines_suppressed: Counter,
    connections_open: Gauge,
    requests_in_flight: Gauge,
}

impl Metrics {
    fn new() -> Self {
        let m = Metrics {
            registry: Registry::with_prefix("tokenbridge"),
            decisions: Counters::new(DECISION_SLOTS),
            decision_seconds: histogram(),
            stages: Counters::new(8),
            idp_calls: Counters::new(CALL_SLOTS),
            idp_seconds: Family::new_with_constructor(histogram),
            unknown_kid_refetches: Counter::default(),
            cache_evictions: Counter::default(),
            log_lines_suppressed: Counter::default(),
            connections_open: Gauge::default(),
            requests_in_flight: Gauge::default(),
        };
        let mut registry = Registry::with_prefix("tokenbridge");
        registry.register(
            "decisions",
            "Decisions by outcome (allow, deny, unavailable), reason (a deny's reason, an unavailable's failure) and failing dependency",
            m.decisions.family.clone(),
        );
        registry.register(
            "decision_duration_seconds",
            "Time to decide, from request to outcome",
            m.decision_seconds.clone(),
        );
        registry.register(
            "stage_lookups",
            "The validation and backend token stages by how they were served: hit, miss (loaded), shared (waited on another caller's load), stale",
            m.stages.family.clone(),
        );
        registry.register(
            "idp_calls",
            "Outbound calls by dependency (introspection, jwks, discovery, token, exchange, secrets) and result (ok, timeout, refused, 4xx, 5xx, malformed)",
            m.idp_calls.family.clone(),
        );
        registry.register(
            "idp_call_duration_seconds",
            "Time of one outbound call, by dependency",
            m.idp_seconds.clone(),
        );
        registry.register(
            "jwks_unknown_kid_refetches",
            "JWKS refetches made because a token named a key not held (at most one per issuer per penalty window)",
            m.unknown_kid_refetches.clone(),
        );
        registry.register(
            "cache_evictions",
            "Entries dropped from a full cache before they expired",
            m.cache_evictions.clone(),
        );
        registry.register(
            "log_lines_suppressed",
            "Decision log lines left out by the rate limit of repeated warnings and errors",
            m.log_lines_suppressed.clone(),
        );
        registry.register("http_connections_open", "Connections open (tokenbridge http)", m.connections_open.clone());
        registry.register(
            "http_requests_in_flight",
            "Requests being answered (tokenbridge http)",
            m.requests_in_flight.clone(),
        );
        Metrics { registry, ..m }
    }
}

static METRICS: Lazy<Metrics> = Lazy::new(Metrics::new);

/// Counts one decision, from what its [`Trace`] recorded: the one place decisions are counted.
pub(crate) fn decision(outcome: &Outcome, trace: &Trace, elapsed: Duration) {
    let m = &*METRICS;
    let (slot, labels) = decision_labels(outcome, trace);
    m.decisions.inc_at(slot, labels);
    for (index, stage, lookup) in [(0, "validation", trace.validation), (1, "backend", trace.backend)] {
        if let Some(lookup) = lookup {
            let served = match lookup {
                Lookup::Hit => 0,
                Lookup::Miss => 1,
                Lookup::Shared => 2,
                Lookup::Stale(_) => 3,
            };
            m.stages.inc_at(index * 4 + served, [("stage", stage), ("served", lookup.as_str())]);
        }
    }
    m.decision_seconds.observe(elapsed.as_secs_f64());
}

/// Slots of the decisions counter: the allow, a deny per reason, an unavailable per cause.
const DENY_SLOTS: usize = 64;
const DECISION_SLOTS: usize = 1 + DENY_SLOTS + 8 * 16;

/// A decision's labels, and the slot they always have (`usize::MAX`: none).
fn decision_labels(outcome: &Outcome, trace: &Trace) -> (usize, [(&'static str, &'static str); 3]) {
    match outcome {
        Outcome::Allow(_) => (0, [("outcome", "allow"), ("reason", "none"), ("dependency", "none")]),
        Outcome::Deny(_) => {
            let reason = log::reason(outcome, trace);
            // A reason past the slots (there are 64) is looked up, never put in another's slot.
            let slot = reason.map(|r| r as usize).filter(|&i| i < DENY_SLOTS).map_or(usize::MAX, |i| 1 + i);
            let name = reason.map_or("unspecified", Reason::as_str);
            (slot, [("outcome", "deny"), ("reason", name), ("dependency", "none")])
        }
        Outcome::Unavailable(cause) => {
            let slot = 1 + DENY_SLOTS + (cause.dependency as usize) * 16 + failure_index(cause.failure);
            let labels = [
                ("outcome", "unavailable"),
                ("reason", cause.failure.as_str()),
                ("dependency", cause.dependency.as_str()),
            ];
            (slot, labels)
        }
    }
}

/// A number per kind of failure, below 16.
fn failure_index(failure: Failure) -> usize {
    match failure {
        Failure::Unreachable => 0,
        Failure::Timeout => 1,
        Failure::DeadlineExceeded => 2,
        Failure::Status(_) => 3,
        Failure::Malformed => 4,
        Failure::TooLarge => 5,
        Failure::ClientRejected => 6,
        Failure::IssuerMismatch => 7,
        Failure::Invalid => 8,
        Failure::Full => 9,
    }
}

/// Slots of the calls counter: a result per dependency.
const CALL_SLOTS: usize = 7 * 8;

/// What an outbound call was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    Introspection,
    Jwks,
    Discovery,
    /// IdP B's token endpoint, client_credentials.
    Token,
    /// IdP B's token endpoint, a grant that carries the caller on (token exchange, on-behalf-of).
    Exchange,
    /// A secret store (OCI Vault, AWS Secrets Manager, the Lambda extension).
    Secrets,
    /// The shared cache tier's Redis.
    SharedCache,
}

impl Call {
    fn as_str(self) -> &'static str {
        match self {
            Call::Introspection => "introspection",
            Call::Jwks => "jwks",
            Call::Discovery => "discovery",
            Call::Token => "token",
            Call::Exchange => "exchange",
            Call::Secrets => "secrets",
            Call::SharedCache => "shared_cache",
        }
    }
}

/// How an outbound call ended, as the metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallResult {
    Ok,
    Timeout,
    /// Never connected, or the peer refused us in the TLS handshake.
    Refused,
    Status4xx,
    Status5xx,
    /// An answer that is not HTTP, too large, or of a status no caller expects (1xx, 3xx).
    Malformed,
}

impl CallResult {
    fn as_str(self) -> &'static str {
        match self {
            CallResult::Ok => "ok",
            CallResult::Timeout => "timeout",
            CallResult::Refused => "refused",
            CallResult::Status4xx => "4xx",
            CallResult::Status5xx => "5xx",
            CallResult::Malformed => "malformed",
        }
    }

    /// The class of an answer's status.
    pub(crate) fn of_status(status: u16) -> Self {
        match status {
            200..=299 => CallResult::Ok,
            400..=499 => CallResult::Status4xx,
            500..=599 => CallResult::Status5xx,
            _ => CallResult::Malformed,
        }
    }

    /// The class of a transport failure.
    pub(crate) fn of_failure(failure: Failure) -> Self {
        match failure {
            Failure::Timeout | Failure::DeadlineExceeded => CallResult::Timeout,
            Failure::Unreachable | Failure::ClientRejected => CallResult::Refused,
            Failure::Status(s) => Self::of_status(s),
            Failure::Malformed | Failure::TooLarge | Failure::IssuerMismatch | Failure::Invalid | Failure::Full => {
                CallResult::Malformed
            }
        }
    }
}

/// Counts one cached allow (both stages hits), as [`decision`] does at the end of every
/// decision: for the micro-benchmark of what counting costs.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub fn count_cached_allow() {
    let trace = Trace {
        validation: Some(crate::cache::Lookup::Hit),
        backend: Some(crate::cache::Lookup::Hit),
        ..Trace::default()
    };
    static ALLOW: Lazy<Outcome> = Lazy::new(|| {
        Outcome::Allow(crate::outcome::Grant {
            principal: String::new(),
            scopes: Vec::new(),
            client_id: None,
            expires_at: 0,
            context: Default::default(),
        })
    });
    decision(&ALLOW, &trace, Duration::from_micros(1));
}

/// Counts one outbound call that started at `started`.
pub(crate) fn call(call: Call, result: CallResult, started: Instant) {
    let m = &*METRICS;
    m.idp_calls
        .inc_at(call as usize * 8 + result as usize, [("dependency", call.as_str()), ("result", result.as_str())]);
    m.idp_seconds.get_or_create(&Labels([("dependency", call.as_str())])).observe(started.elapsed().as_secs_f64());
}

/// Counts a JWKS refetch for a key not held.
pub(crate) fn unknown_kid_refetch() {
    METRICS.unknown_kid_refetches.inc();
}

/// Counts entries a full cache dropped.
pub(crate) fn evicted(entries: usize) {
    if entries > 0 {
        METRICS.cache_evictions.inc_by(entries as u64);
    }
}

/// Counts decision log lines the rate limit left out.
pub(crate) fn log_lines_suppressed(lines: u64) {
    METRICS.log_lines_suppressed.inc_by(lines);
}

/// Sets the server's gauges (`tokenbridge http`), read from the server just before encoding.
pub fn set_server_gauges(connections_open: usize, requests_in_flight: usize) {
    METRICS.connections_open.set(i64::try_from(connections_open).unwrap_or(i64::MAX));
    METRICS.requests_in_flight.set(i64::try_from(requests_in_flight).unwrap_or(i64::MAX));
}

/// Every metric as OpenMetrics text ([`CONTENT_TYPE`]), ending in `# EOF`.
pub fn encode() -> String {
    let mut out = String::with_capacity(8 * 1024);
    // Writing to a String cannot fail.
    let _ = encode_text(&mut out, &METRICS.registry);
    out
}

/// One counter's value under one label set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Sample {
    /// The metric's name without the `tokenbridge_` prefix and `_total` suffix, e.g. `decisions`.
    pub name: &'static str,
    pub labels: Vec<(&'static str, &'static str)>,
    pub value: u64,
}

/// The counters' values now, as plain numbers: the seam for platforms that push metrics in a
/// form of their own rather than being scraped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub counters: Vec<Sample>,
}

/// The counters' values now.
pub fn snapshot() -> Snapshot {
    let m = &*METRICS;
    let mut counters = Vec::new();
    let mut family = |name: &'static str, values: Vec<(Vec<(&'static str, &'static str)>, u64)>| {
        counters.extend(values.into_iter().map(|(labels, value)| Sample { name, labels, value }));
    };
    family("decisions", m.decisions.values());
    family("stage_lookups", m.stages.values());
    family("idp_calls", m.idp_calls.values());
    for (name, counter) in [
        ("jwks_unknown_kid_refetches", &m.unknown_kid_refetches),
        ("cache_evictions", &m.cache_evictions),
        ("log_lines_suppressed", &m.log_lines_suppressed),
    ] {
        counters.push(Sample { name, labels: Vec::new(), value: counter.get() });
    }
    Snapshot { counters }
}

impl Snapshot {
    /// One JSON line for a log: `{"level":"info","event":"metrics","counters":[…]}`, each counter
    /// as its name, its labels as members, and its value.
    pub fn to_json_line(&self) -> String {
        /// One counter as the line shows it: its name, its labels as members, its value.
        #[derive(serde::Serialize)]
        struct Shown<'a> {
            name: &'a str,
            #[serde(flatten)]
            labels: std::collections::BTreeMap<&'a str, &'a str>,
            value: u64,
        }
        #[derive(serde::Serialize)]
        struct Line<'a> {
            level: &'static str,
            event: &'static str,
            counters: Vec<Shown<'a>>,
        }
        let counters = self
            .counters
            .iter()
            .map(|s| Shown { name: s.name, labels: s.labels.iter().copied().collect(), value: s.value })
            .collect();
        // Serialising strings and numbers cannot fail.
        serde_json::to_string(&Line { level: "info", event: "metrics", counters }).unwrap_or_default()
    }

    /// The value of the counter `name` under exactly these labels (0 if never counted).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.counters
            .iter()
            .filter(|s| s.name == name && s.labels.len() == labels.len())
            .filter(|s| labels.iter().all(|l| s.labels.contains(l)))
            .map(|s| s.value)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Cause, Denial, Dependency};

    #[test]
    fn a_decision_is_counted_by_outcome_reason_and_stages() {
        let before = snapshot();
        let trace = Trace { reason: Some(Reason::Expired), validation: Some(Lookup::Shared), ..Trace::default() };
        decision(&Outcome::Deny(Denial::InvalidToken), &trace, Duration::from_micros(5));
        let cause = Cause::new(Dependency::Introspection, Failure::Timeout);
        decision(&Outcome::Unavailable(cause), &Trace::default(), Duration::from_micros(5));
        let after = snapshot();
        let grew = |name, labels: &[(&str, &str)]| after.value(name, labels) - before.value(name, labels);
        assert_eq!(grew("decisions", &[("outcome", "deny"), ("reason", "expired"), ("dependency", "none")]), 1);
        assert_eq!(
            grew("decisions", &[("outcome", "unavailable"), ("reason", "timeout"), ("dependency", "introspection")]),
            1
        );
        assert!(grew("stage_lookups", &[("stage", "validation"), ("served", "shared")]) >= 1);
        let text = encode();
        assert!(text.contains(r#"tokenbridge_decisions_total{outcome="deny",reason="expired",dependency="none"}"#));
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn a_call_is_counted_by_dependency_and_result_class() {
        let before = snapshot().value("idp_calls", &[("dependency", "secrets"), ("result", "5xx")]);
        call(Call::Secrets, CallResult::of_status(503), Instant::now());
        assert_eq!(snapshot().value("idp_calls", &[("dependency", "secrets"), ("result", "5xx")]), before + 1);
        assert!(encode().contains(r#"tokenbridge_idp_call_duration_seconds_count{dependency="secrets"}"#));
    }

    #[test]
    fn failures_fall_into_the_documented_classes() {
        assert_eq!(CallResult::of_failure(Failure::DeadlineExceeded), CallResult::Timeout);
        assert_eq!(CallResult::of_failure(Failure::Unreachable), CallResult::Refused);
        assert_eq!(CallResult::of_failure(Failure::TooLarge), CallResult::Malformed);
        assert_eq!(CallResult::of_status(404), CallResult::Status4xx);
        assert_eq!(CallResult::of_status(302), CallResult::Malformed);
        assert_eq!(CallResult::of_status(204), CallResult::Ok);
    }

    #[test]
    fn the_summary_line_is_one_json_object_with_the_counters() {
        call(Call::Jwks, CallResult::Ok, Instant::now());
        let line = snapshot().to_json_line();
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "metrics");
        let calls = v["counters"].as_array().unwrap();
        assert!(
            calls
                .iter()
                .any(|c| c["name"] == "idp_calls" && c["dependency"] == "jwks" && c["value"].as_u64() >= Some(1))
        );
    }

    #[test]
    fn no_two_label_sets_share_a_slot() {
        let dependencies = [
            Dependency::Configuration,
            Dependency::Secret,
            Dependency::Introspection,
            Dependency::BackendToken,
            Dependency::Jwks,
            Dependency::DpopReplays,
        ];
        let failures = [
            Failure::Unreachable,
            Failure::Timeout,
            Failure::DeadlineExceeded,
            Failure::Status(503),
            Failure::Malformed,
            Failure::TooLarge,
            Failure::ClientRejected,
            Failure::IssuerMismatch,
            Failure::Invalid,
            Failure::Full,
        ];
        let mut slots = std::collections::HashMap::new();
        let mut claim = |(slot, labels): (usize, [(&'static str, &'static str); 3])| {
            assert!(slot < DECISION_SLOTS, "{labels:?}");
            assert_eq!(*slots.entry(slot).or_insert(labels), labels, "slot {slot}");
        };
        let allow = Outcome::Allow(crate::outcome::Grant {
            principal: String::new(),
            scopes: Vec::new(),
            client_id: None,
            expires_at: 0,
            context: Default::default(),
        });
        claim(decision_labels(&allow, &Trace::default()));
        for reason in [Reason::MissingToken, Reason::Expired, Reason::BackendRefusedCallerToken] {
            let trace = Trace { reason: Some(reason), ..Trace::default() };
            claim(decision_labels(&Outcome::Deny(Denial::InvalidToken), &trace));
        }
        for dependency in dependencies {
            for failure in failures {
                claim(decision_labels(&Outcome::Unavailable(Cause::new(dependency, failure)), &Trace::default()));
            }
        }
        assert!((Reason::BackendRefusedCallerToken as usize) < DENY_SLOTS, "the last reason has a slot");
        assert!((Call::SharedCache as usize) * 8 + (CallResult::Malformed as usize) < CALL_SLOTS);
    }

    #[test]
    fn a_full_cache_counts_what_it_drops_and_a_refetch_for_an_unknown_key_is_counted() {
        let count = |name| snapshot().value(name, &[]);
        let (evictions, refetches) = (count("cache_evictions"), count("jwks_unknown_kid_refetches"));
        let cache: crate::cache::Cache<u32, &str, &str> = crate::cache::Cache::new(2);
        let later = Instant::now() + Duration::from_secs(1);
        for key in 1..=3 {
            let loaded = cache.get_or_load(&key, 100, later, "t", || Ok(crate::cache::Entry::until("v", 1_000)));
            assert!(loaded.is_ok());
        }
        assert!(count("cache_evictions") > evictions, "the third entry evicted one");
        unknown_kid_refetch();
        assert!(count("jwks_unknown_kid_refetches") > refetches);
    }
}
