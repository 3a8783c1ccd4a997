//! Route policy documents (`Policy::from_json`), and route matching against them: every route a
//! policy accepts is reachable by a request for that route (one that could never be is refused),
//! and the Lambda adapter's IAM policy for the policy's route table never allows a request the
//! engine's routing refuses.

use serde_json::Value;
use tokenbridge_core::fuzzing::{Facts, Identity, Policy};
use tokenbridge_core::{Route, RouteVerdict};
use tokenbridge_lambda::iam::{Served, route_policy};

/// The checks of the target on one input; panics on a broken invariant.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(policy) = Policy::from_json(text) else { return };
    let doc: Value = serde_json::from_str(text).expect("a policy is JSON");
    let routes = doc["routes"].as_array().cloned().unwrap_or_default();
    assert_eq!(policy.has_routes(), !routes.is_empty());
    let _ = policy.describe();

    // Claims of every shape a condition could be confused by: strings where arrays are
    // expected, nested arrays, objects, nulls, numbers at the edges.
    let claims = serde_json::json!({
        "groups": ["admin", ["ops"], {"x": 1}, null, 5, true],
        "role": "admin",
        "realm_access": {"roles": ["hr"]},
        "n": 18, "big": u64::MAX, "neg": -1, "f": 2.5, "s": "18", "nul": null, "obj": {}
    });
    let claims = claims.as_object().expect("an object");
    let pointers = policy.claim_pointers();
    let identity = Identity {
        principal: "alice".into(),
        client_id: Some("app".into()),
        scopes: vec!["orders.read".into(), "admin".into()],
        expires_at: Some(1_800_000_600),
        issuer: Some("https://idp.example".into()),
        audiences: vec!["api".into()],
        claims: Default::default(),
        facts: Facts::read(claims, &pointers),
        cnf: Default::default(),
        verified_locally: false,
    };
    let fixed = [
        (Some("GET"), Some("/orders/7")),
        (Some("POST"), Some("/orders?x=1")),
        (Some("DELETE"), Some("/admin/a/b/c")),
        (None, Some("/")),
        (Some("GET"), None),
        (None, None),
    ];
    let table = policy.route_table(|rule| rule.check(&identity).is_ok());
    let mut requests = Vec::new();
    for (method, path) in fixed {
        let route = Route { method: method.map(Into::into), path: path.map(Into::into), ..Route::default() };
        if let Ok(rule) = policy.rule_for(&route) {
            // The refusal and the denial agree: no refusal is an allow, and a refusal never is.
            assert_eq!(rule.check(&identity).is_ok(), rule.refusal(&identity).is_none());
            let bare = Identity { facts: Facts::default(), ..identity.clone() };
            let _ = rule.check(&bare);
        }
        requests.push(route);
    }
    // Without routes, every request gets the default.
    if !policy.has_routes() {
        let default = policy.rule_for(&Route::default()).ok().cloned();
        let some = Route { method: Some("GET".into()), path: Some("/x".into()), ..Route::default() };
        assert_eq!(policy.rule_for(&some).ok().cloned(), default);
    }
    for route in &routes {
        let path = route["path"].as_str().expect("a route has a path");
        let method = route["method"].as_str().filter(|m| *m != "*" && !m.eq_ignore_ascii_case("any")).unwrap_or("GET");
        let concrete: Vec<&str> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .filter_map(|s| match s {
                "**" => None,
                "*" => Some("x"),
                s => Some(s),
            })
            .collect();
        let request =
            Route { method: Some(method.into()), path: Some(format!("/{}", concrete.join("/"))), ..Route::default() };
        assert!(policy.rule_for(&request).is_ok(), "route {route} does not match {request:?}");
        let upper = Route { path: request.path.as_ref().map(|p| p.to_ascii_uppercase()), ..request.clone() };
        let trailing = Route { path: request.path.as_ref().map(|p| format!("{p}/")), ..request.clone() };
        requests.extend([request, upper, trailing]);
    }
    never_over_allowed(&policy, &table, &requests);
}

/// The IAM policy the Lambda adapter writes for `table` allows none of `requests` that the
/// engine's routing and `table`'s verdicts refuse (but for what IAM cannot express: a raw
/// character it reads as a wildcard, a control or a non-ASCII one).
fn never_over_allowed(policy: &Policy, table: &[RouteVerdict], requests: &[Route]) {
    const BASE: &str = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod";
    for served in [Served { backend: None, introspected: false }, Served { backend: Some(0), introspected: true }] {
        let Some(rendered) = route_policy(&format!("{BASE}/GET/x"), table, served) else { continue };
        for request in requests {
            let (Some(method), Some(path)) = (&request.method, &request.path) else { continue };
            if !path.starts_with('/')
                || path.contains(|c: char| c == '*' || c == '?' || c.is_control() || !c.is_ascii())
            {
                continue;
            }
            let engine_allows = policy.route_index(request).is_ok_and(|i| {
                let v = &table[i];
                v.allowed && v.backend == served.backend && (served.introspected || !v.introspect)
            });
            let arn = format!("{BASE}/{method}{path}");
            assert!(
                engine_allows || !rendered.allows(&arn),
                "{arn} allowed in IAM, refused by the engine: {rendered:?}"
            );
        }
    }
}
