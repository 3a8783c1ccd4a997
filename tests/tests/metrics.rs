//! `GET /metrics` of `tokenbridge http`, read by the Prometheus project's own OpenMetrics parser,
//! counts exactly the decisions made and the IdP calls the fake IdPs saw; the default decision
//! log leaves allows out and rate-limits a repeated outage, which the metrics count.

use tokenbridge_tests::http_server::{Exchange, HttpServer, raw_exchange};
use tokenbridge_tests::prometheus::{self, Sample, value};
use tokenbridge_tests::{Fault, IdpPair};

fn get(addr: &str, path: &str, authorization: Option<&str>) -> Exchange {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    if let Some(a) = authorization {
        request.push_str(&format!("Authorization: {a}\r\n"));
    }
    request.push_str("\r\n");
    raw_exchange(addr, request.as_bytes()).expect("an HTTP answer")
}

fn decide(server: &HttpServer, token: Option<&str>) -> u16 {
    get(&server.addr, "/auth", token.map(|t| format!("Bearer {t}")).as_deref()).0
}

/// `/metrics` scraped and parsed, after checking how it is served.
fn scrape(server: &HttpServer, python: &std::path::PathBuf) -> Vec<Sample> {
    let (status, headers, body) = get(&server.addr, "/metrics", None);
    assert_eq!(status, 200, "{body}");
    let content_type = headers.iter().find(|(k, _)| k == "content-type").map(|(_, v)| v.as_str());
    assert_eq!(content_type, Some("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    prometheus::parse(python, &body)
}

fn decisions(samples: &[Sample], outcome: &str, reason: &str, dependency: &str) -> f64 {
    let labels = [("outcome", outcome), ("reason", reason), ("dependency", dependency)];
    value(samples, "tokenbridge_decisions_total", &labels)
}

#[test]
fn metrics_count_the_decisions_made_and_the_calls_the_idps_saw() {
    let Some(python) = prometheus::python() else { return };
    let idp = IdpPair::start();
    let good = idp.a.issue("alice", "orders.read", 600);
    let weak = idp.a.issue("bob", "other", 600);
    let fresh = idp.a.issue("carol", "orders.read", 600);
    let mut env = idp.env();
    env.push(("TOKENBRIDGE_REQUIRED_SCOPES".into(), "orders.read".into()));
    let server = HttpServer::start(&env);

    assert_eq!(decide(&server, Some(&good)), 200);
    assert_eq!(decide(&server, Some(&good)), 200);
    assert_eq!(decide(&server, Some("unknown-token")), 401);
    assert_eq!(decide(&server, Some(&weak)), 403);
    assert_eq!(decide(&server, None), 401);
    idp.a.set_introspect_fault(Some(Fault::Status(502, String::new())));
    assert_eq!(decide(&server, Some(&fresh)), 503);

    let samples = scrape(&server, &python);
    assert_eq!(decisions(&samples, "allow", "none", "none"), 2.0);
    assert_eq!(decisions(&samples, "deny", "inactive", "none"), 1.0);
    assert_eq!(decisions(&samples, "deny", "insufficient_scope", "none"), 1.0);
    assert_eq!(decisions(&samples, "deny", "missing_token", "none"), 1.0);
    assert_eq!(decisions(&samples, "unavailable", "bad_status", "introspection"), 1.0);
    assert_eq!(value(&samples, "tokenbridge_decisions_total", &[]), 6.0, "no other decision was counted");
    assert_eq!(value(&samples, "tokenbridge_decision_duration_seconds_count", &[]), 6.0);

    // Every call the fake IdPs answered, by what it was for and how it ended.
    let introspections = value(&samples, "tokenbridge_idp_calls_total", &[("dependency", "introspection")]);
    assert_eq!(introspections, idp.a.introspections() as f64);
    assert_eq!(
        value(&samples, "tokenbridge_idp_calls_total", &[("dependency", "introspection"), ("result", "ok")]),
        3.0
    );
    assert!(
        value(&samples, "tokenbridge_idp_calls_total", &[("dependency", "introspection"), ("result", "5xx")]) >= 1.0
    );
    let token_calls = value(&samples, "tokenbridge_idp_calls_total", &[("dependency", "token"), ("result", "ok")]);
    assert_eq!((token_calls, idp.b.token_requests()), (1.0, 1), "one backend token, then served from the cache");
    let timed = value(&samples, "tokenbridge_idp_call_duration_seconds_count", &[("dependency", "introspection")]);
    assert_eq!(timed, introspections);

    // How the stages were served: the three new tokens loaded, the second allow from the caches.
    let stage =
        |stage, served| value(&samples, "tokenbridge_stage_lookups_total", &[("stage", stage), ("served", served)]);
    assert_eq!((stage("validation", "miss"), stage("validation", "hit")), (3.0, 1.0));
    assert_eq!((stage("backend", "miss"), stage("backend", "hit")), (1.0, 1.0));

    // The scrape itself is the one request in flight, on a connection that is open.
    assert_eq!(value(&samples, "tokenbridge_http_requests_in_flight", &[]), 1.0);
    assert!(value(&samples, "tokenbridge_http_connections_open", &[]) >= 1.0);
    let kinds: Vec<(&str, &str)> = samples.iter().map(|s| (s.family.as_str(), s.kind.as_str())).collect();
    assert!(kinds.contains(&("tokenbridge_decisions", "counter")), "{kinds:?}");
    assert!(kinds.contains(&("tokenbridge_idp_call_duration_seconds", "histogram")), "{kinds:?}");
    the_dashboard_queries_only_metrics_that_exist(&samples);
}

/// Every `tokenbridge_…` series the Grafana dashboard queries is one `/metrics` serves.
fn the_dashboard_queries_only_metrics_that_exist(samples: &[Sample]) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../adapters/http/deploy/grafana/tokenbridge-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap().to_string()))
        .collect();
    let mut queried = 0;
    for expr in &exprs {
        for (at, _) in expr.match_indices("tokenbridge_") {
            let name: String =
                expr[at..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit()).collect();
            assert!(samples.iter().any(|s| s.name == name), "the dashboard queries {name}, which /metrics lacks");
            queried += 1;
        }
    }
    assert!(queried >= 10, "{exprs:?}");
}

#[test]
fn the_default_decision_log_writes_denials_and_one_line_of_a_repeated_outage() {
    let Some(python) = prometheus::python() else { return };
    let idp = IdpPair::start();
    let good = idp.a.issue("alice", "", 600);
    let env: Vec<(String, String)> = idp.env().into_iter().filter(|(k, _)| k != "TOKENBRIDGE_DECISION_LOG").collect();
    let server = HttpServer::start(&env);
    assert_eq!(decide(&server, Some(&good)), 200);
    assert_eq!(decide(&server, Some("unknown-token")), 401);
    idp.a.set_introspect_fault(Some(Fault::Status(500, String::new())));
    let outage: Vec<String> = (0..3).map(|i| idp.a.issue(&format!("user{i}"), "", 600)).collect();
    for token in &outage {
        assert_eq!(decide(&server, Some(token)), 503);
    }
    let samples = scrape(&server, &python);
    assert_eq!(decisions(&samples, "allow", "none", "none"), 1.0, "the metrics count what the log leaves out");
    assert_eq!(decisions(&samples, "unavailable", "bad_status", "introspection"), 3.0);
    let suppressed = value(&samples, "tokenbridge_log_lines_suppressed_total", &[]);
    let (_, log) = server.terminate();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["event"] == "decision")
        .collect();
    let outcomes: Vec<&str> = lines.iter().filter_map(|l| l["outcome"].as_str()).collect();
    // The three outages take well under the second a cause's line stands for; a machine slow
    // enough to spread them wider writes a line per second, and suppresses the rest.
    assert_eq!(outcomes[0], "deny", "no allow line, the deny's: {log}");
    let unavailable = outcomes.iter().filter(|o| **o == "unavailable").count() as f64;
    assert_eq!((outcomes.len() as f64 - 1.0, unavailable + suppressed), (unavailable, 3.0), "{log}");
    assert!(suppressed >= 1.0, "a repeated outage was not rate-limited: {log}");
}
