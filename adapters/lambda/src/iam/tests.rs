use proptest::prelude::*;
use tokenbridge_core::{Policy, Route};

use super::*;
use crate::authorizer::route_of_method_arn;

const BASE: &str = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod";

fn arn(verb: &str, path: &str) -> String {
    format!("{BASE}/{verb}{path}")
}

const SERVED: Served = Served { backend: None, introspected: false };

/// The table of `doc` with the token satisfying the routes `allowed` names by index.
fn table(doc: &str, allowed: &[usize]) -> Vec<RouteVerdict> {
    let policy = Policy::from_json(doc).unwrap();
    let mut table = policy.route_table(|_| false);
    for i in allowed {
        table[*i].allowed = true;
    }
    table
}

#[test]
fn iam_wildcards_match_as_aws_documents_them() {
    assert!(glob_matches("a/*", "a/b/c"), "* spans /");
    assert!(glob_matches("a/*", "a/"));
    assert!(glob_matches("a/?", "a/b") && !glob_matches("a/?", "a/bc"));
    assert!(!glob_matches("a/B", "a/b"), "case-sensitive");
    assert!(glob_matches("*", ""));
    assert!(globs_meet("a/*", "?/b") && !globs_meet("a/?", "b/*") && globs_meet("a*", "*b"));
}

#[test]
fn allows_route_the_token_satisfies_and_denies_the_rest() {
    let doc = r#"{"routes": [{"method": "GET", "path": "/orders/*", "scopes": ["read"]},
                             {"method": "DELETE", "path": "/orders/*", "scopes": ["admin"]}]}"#;
    let verdicts = table(doc, &[0]);
    let policy = route_policy(&arn("GET", "/orders/7"), &verdicts, SERVED).unwrap();
    assert!(policy.allows(&arn("GET", "/orders/8")), "{policy:?}");
    assert!(policy.allows(&arn("HEAD", "/orders/8")));
    assert!(!policy.allows(&arn("DELETE", "/orders/8")));
    assert!(!policy.allows(&arn("GET", "/orders/8/items")), "a * is one segment");
    assert!(!policy.allows(&arn("GET", "/orders")));
    assert!(!policy.allows(&arn("GET", "/orders/%2e%2e")));
    assert!(!policy.allows(&arn("GET", "/orders/8/")));
    assert!(!policy.allows(&arn("GET", "/ORDERS/8")), "another spelling is denied, not guessed at");
    assert!(is_exact(&arn("GET", "/orders/7"), &verdicts, SERVED));
}

#[test]
fn a_stricter_route_under_a_wildcard_default_is_denied_in_every_case() {
    let doc = r#"{"routes": [{"path": "/admin/**", "scopes": ["admin"]}], "default": {"scopes": []}}"#;
    let verdicts = table(doc, &[1]);
    let policy = route_policy(&arn("GET", "/x"), &verdicts, SERVED).unwrap();
    assert!(policy.allows(&arn("GET", "/public/x")));
    assert!(policy.allows(&arn("GET", "/users/x")) && policy.allows(&arn("GET", "/a/b/c")), "no other name is denied");
    for path in ["/admin", "/admin/x", "/ADMIN/x", "/Admin", "/admiN", "//admin/x", "/admin/", "/%61dmin/x"] {
        assert!(!policy.allows(&arn("GET", path)), "{path}");
    }
    assert!(is_exact(&arn("GET", "/x"), &verdicts, SERVED));
}

#[test]
fn routes_of_another_backend_or_needing_introspection_are_denied() {
    let doc = r#"{"routes": [{"path": "/orders/*"}, {"path": "/hr/*", "backend": "hr"}, {"path": "/inspect/*", "introspect": true}],
                  "backends": {"hr": {"audience": "hr"}}}"#;
    let verdicts = table(doc, &[0, 1, 2]);
    let policy = route_policy(&arn("GET", "/orders/1"), &verdicts, SERVED).unwrap();
    assert!(policy.allows(&arn("GET", "/orders/1")));
    assert!(!policy.allows(&arn("GET", "/hr/1")) && !policy.allows(&arn("GET", "/inspect/1")));
    assert!(!is_exact(&arn("GET", "/orders/1"), &verdicts, SERVED), "allowed by the core, denied here: not exact");
    let introspected = Served { backend: None, introspected: true };
    let policy = route_policy(&arn("GET", "/orders/1"), &table(doc, &[0, 2]), introspected).unwrap();
    assert!(policy.allows(&arn("GET", "/inspect/1")) && policy.allows(&arn("GET", "/orders/1")));
}

#[test]
fn a_method_arn_without_api_and_stage_or_with_too_long_a_resource_has_no_route_policy() {
    let doc = r#"{"routes": [{"path": "/a"}]}"#;
    assert_eq!(route_policy("garbage", &table(doc, &[0]), SERVED), None);
    let long = format!(r#"{{"routes": [{{"path": "/{}"}}]}}"#, "a".repeat(MAX_RESOURCE_CHARS));
    assert_eq!(route_policy(&arn("GET", "/a"), &table(doc, &[]), SERVED), None, "nothing to allow");
    assert_eq!(route_policy(&arn("GET", "/a"), &table(&long, &[0]), SERVED), None);
}

// The property: for random route tables, verdicts and method ARNs, the policy never allows
// what the core's own routing and verdicts refuse, and allows all they allow wherever it
// claims exactness.

const SEGMENTS: [&str; 6] = ["orders", "admin", "a", "v1", "7", "*"];
/// Request segments: names, their case variants and encodings, what the core refuses.
const REQUEST_SEGMENTS: [&str; 28] = [
    "orders",
    "ORDERS",
    "Orders",
    "admin",
    "aDmin",
    "a",
    "A",
    "v1",
    "V1",
    "7",
    "x",
    "%61",
    "a%20b",
    "caf%C3%A9",
    "..",
    ".",
    "x;y",
    "a\\b",
    "",
    "v1.",
    " a",
    "a ",
    "ａｄｍｉｎ",
    "\u{FB01}les",
    "a*b",
    "a?b",
    "a\u{1}b",
    "a#b",
];

/// What IAM cannot tell from a plain name: raw characters it reads as wildcards, controls, and
/// non-ASCII ones.
fn opaque(segment: &str) -> bool {
    segment.contains(|c: char| c == '*' || c == '?' || c.is_control() || !c.is_ascii())
}

const METHODS: [&str; 5] = ["*", "GET", "POST", "DELETE", "ANY"];
const VERBS_SENT: [&str; 6] = ["GET", "HEAD", "POST", "DELETE", "PUT", "get"];

fn route_doc() -> impl Strategy<Value = String> {
    let route =
        (0..METHODS.len(), prop::collection::vec(0..SEGMENTS.len(), 0..3), any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(m, segments, tail, hr, introspect)| {
                let mut path: String = segments.iter().map(|s| format!("/{}", SEGMENTS[*s])).collect();
                if tail || path.is_empty() {
                    path.push_str("/**");
                }
                format!(
                    r#"{{"method": "{}", "path": "{path}", "backend": {}, "introspect": {introspect}}}"#,
                    METHODS[m],
                    if hr { r#""hr""# } else { "null" }
                )
            });
    (prop::collection::vec(route, 1..5), prop::option::of(any::<bool>())).prop_map(|(routes, default)| {
        let default = match default {
            None => r#""deny""#.to_string(),
            Some(hr) => format!(r#"{{"scopes": [], "backend": {}}}"#, if hr { r#""hr""# } else { "null" }),
        };
        format!(
            r#"{{"routes": [{}], "backends": {{"hr": {{"audience": "hr"}}}}, "default": {default}}}"#,
            routes.join(",")
        )
    })
}

fn request() -> impl Strategy<Value = (String, Vec<usize>, bool)> {
    (0..VERBS_SENT.len(), prop::collection::vec(0..REQUEST_SEGMENTS.len(), 0..4), any::<bool>())
        .prop_map(|(v, s, trailing)| (VERBS_SENT[v].to_string(), s, trailing))
}

fn path_of(segments: &[usize], trailing: bool) -> String {
    let mut path: String = segments.iter().map(|s| format!("/{}", REQUEST_SEGMENTS[*s])).collect();
    if trailing || path.is_empty() {
        path.push('/');
    }
    path
}

/// Spelled as the core reads it: the exactness claim is about these.
fn canonical(verb: &str, path: &str, verbs: &[String]) -> bool {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let root = path == "/";
    verbs.iter().any(|v| v == verb)
        && (root
            || segments.iter().all(|s| {
                !s.is_empty() && !s.ends_with('.') && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            }))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_route_policy_never_allows_what_the_engine_refuses(
        doc in route_doc(),
        bits in prop::collection::vec(any::<bool>(), 6),
        served_hr in any::<bool>(),
        introspected in any::<bool>(),
        requests in prop::collection::vec(request(), 1..16),
    ) {
        // Routes an earlier one hides are configuration errors: such a table is never served.
        let Ok(policy) = Policy::from_json(&doc) else { return Ok(()) };
        let mut table = policy.route_table(|_| true);
        for (v, allowed) in table.iter_mut().zip(bits.iter().cycle()) {
            v.allowed &= *allowed;
        }
        let served = Served { backend: served_hr.then_some(0), introspected };
        // Nothing to allow: the answer is for the ARN called alone.
        let Some(rendered) = route_policy(&arn("GET", "/orders/7"), &table, served) else { return Ok(()) };
        let exact = is_exact(&arn("GET", "/orders/7"), &table, served);
        let verbs = verbs(&table);
        for (verb, segments, trailing) in requests {
            let path = path_of(&segments, trailing);
            let method_arn = arn(&verb, &path);
            let route: Route = route_of_method_arn(&method_arn);
            let engine_allows = policy.route_index(&route).is_ok_and(|i| {
                let v = &table[i];
                v.allowed && v.backend == served.backend && (served.introspected || !v.introspect)
            });
            let iam_allows = rendered.allows(&method_arn);
            let odd = segments.iter().any(|s| opaque(REQUEST_SEGMENTS[*s]));
            if odd {
                // The one thing IAM cannot express: such a segment is allowed only where the
                // engine allows some plain name in its place, as a route's `*` does.
                let plain: String = path.split('/').map(|s| if opaque(s) { "zq" } else { s }).collect::<Vec<_>>().join("/");
                let route: Route = route_of_method_arn(&arn(&verb, &plain));
                let engine_allows_plain = policy.route_index(&route).is_ok_and(|i| {
                    let v = &table[i];
                    v.allowed && v.backend == served.backend && (served.introspected || !v.introspect)
                });
                prop_assert!(!iam_allows || engine_allows_plain, "over-allow of {method_arn}\n{doc}\n{table:?}\n{rendered:#?}");
                continue;
            }
            prop_assert!(!iam_allows || engine_allows, "over-allow of {method_arn}\n{doc}\n{table:?}\n{rendered:#?}");
            if exact && canonical(&verb, &path, &verbs) {
                prop_assert_eq!(iam_allows, engine_allows, "claimed exact for {}\n{}\n{:?}\n{:#?}", method_arn, doc, table, rendered);
            }
        }
    }
}
