//! Route policies fed by each adapter's route information: OCI USER_DEFINED `method`/`path`
//! arguments (stdio and the Fn socket), and forward-auth's original method and URI over HTTP.
//! Plus JWT issuers through the binary: readiness and check-config's account of the policy.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokenbridge_tests::fake_idp::unix_now;
use tokenbridge_tests::fn_agent::{FnAgent, Framing};
use tokenbridge_tests::http_server::{HttpServer, raw_exchange};
use tokenbridge_tests::jwt_keys::{FakeIssuer, SigningKey};
use tokenbridge_tests::{IdpPair, harness, stdio};

const POLICY: &str = r#"{"routes": [
    {"method": "GET",  "path": "/orders/*", "scopes": ["orders.read"]},
    {"method": "POST", "path": "/orders",   "scopes": ["orders.write"]}
]}"#;

fn env(idp: &IdpPair) -> Vec<(String, String)> {
    let mut env = idp.env();
    env.push(("TOKENBRIDGE_POLICY".into(), POLICY.into()));
    env
}

fn routed(token: &str, method: &str, path: &str) -> String {
    json!({"type": "USER_DEFINED", "data": {"token": format!("Bearer {token}"), "method": method, "path": path}})
        .to_string()
}

fn challenge(answer: &Value) -> &str {
    answer["wwwAuthenticate"].as_str().unwrap_or("")
}

#[test]
fn stdio_applies_the_route_of_user_defined_arguments() {
    let idp = IdpPair::start();
    let reader = idp.a.issue("alice", "orders.read", 600);
    let input = [
        routed(&reader, "GET", "/orders/7"),
        routed(&reader, "POST", "/orders"),
        routed(&reader, "GET", "/invoices/1"),
        json!({"type": "TOKEN", "token": format!("Bearer {reader}")}).to_string(),
    ]
    .join("\n");
    let run = stdio(&env(&idp), &input);
    assert_eq!(run.answers[0]["active"], true, "{}", run.stdout);
    assert_eq!(
        challenge(&run.answers[1]),
        "Bearer realm=\"tokenbridge\", error=\"insufficient_scope\", scope=\"orders.write\""
    );
    assert_eq!(
        challenge(&run.answers[2]),
        "Bearer realm=\"tokenbridge\", error=\"insufficient_scope\"",
        "unmatched → deny"
    );
    assert_eq!(
        challenge(&run.answers[3]),
        "Bearer realm=\"tokenbridge\", error=\"insufficient_scope\"",
        "no route → deny"
    );
    assert_eq!(idp.a.introspections(), 1, "denied routes cost no introspection");
}

#[test]
fn the_fn_socket_applies_the_route_of_user_defined_arguments() {
    let idp = IdpPair::start();
    let writer = idp.a.issue("bob", "orders.write", 600);
    let mut agent = FnAgent::start(&env(&idp));
    let post = agent.call(routed(&writer, "POST", "/orders").as_bytes(), Framing::Chunked, Duration::from_secs(30));
    assert_eq!(post.json()["active"], true);
    let get = agent.call(routed(&writer, "GET", "/orders/1").as_bytes(), Framing::Chunked, Duration::from_secs(30));
    assert_eq!(get.status, 200);
    assert_eq!(get.json()["active"], false);
}

#[test]
fn forward_auth_applies_the_original_method_and_uri() {
    let idp = IdpPair::start();
    let reader = idp.a.issue("alice", "orders.read", 600);
    let server = HttpServer::start(&env(&idp));
    let ask = |method: &str, uri: &str| {
        let request = format!(
            "GET /auth HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {reader}\r\nX-Forwarded-Method: {method}\r\nX-Forwarded-Uri: {uri}\r\n\r\n"
        );
        raw_exchange(&server.addr, request.as_bytes()).unwrap().0
    };
    assert_eq!(ask("GET", "/orders/7?expand=items"), 200);
    assert_eq!(ask("POST", "/orders"), 403);
    assert_eq!(ask("GET", "/elsewhere"), 403);
}

#[test]
fn check_config_explains_the_policy_it_loaded() {
    let idp = IdpPair::start();
    let run = harness::run(&["check-config"], &env(&idp), "");
    assert!(run.success, "{}", run.stdout);
    assert!(run.stdout.contains("GET /orders/* → scopes all of [orders.read]"), "{}", run.stdout);
    assert!(run.stdout.contains("anything else → deny"), "{}", run.stdout);
    // Lambda's REST answers with this policy: every route, and where IAM's reading differs.
    for note in [
        "lambda: REST answers hold an IAM policy for every route of the token",
        "lambda: its Resources take up to about",
        "lambda: over-denied always: routes of another backend",
        "lambda: not expressible in IAM: a raw `*`, `?`, control or non-ASCII character",
    ] {
        assert!(run.stdout.contains(note), "missing {note:?} in:\n{}", run.stdout);
    }
    let by_method = harness::run(
        &["check-config"],
        &[env(&idp), vec![("TOKENBRIDGE_LAMBDA_POLICY_RESOURCE".into(), "method".into())]].concat(),
        "",
    );
    assert!(by_method.success && !by_method.stdout.contains("lambda: "), "{}", by_method.stdout);
    let broken = harness::run(
        &["check-config"],
        &[env(&idp), vec![("TOKENBRIDGE_POLICY".into(), "{\"routes\":[{\"path\":\"x\"}]}".into())]].concat(),
        "",
    );
    assert!(!broken.success);
    assert!(broken.stdout.contains("must start with /"), "{}", broken.stdout);
}

#[test]
fn jwt_mode_through_the_binary_is_ready_once_the_keys_are_loaded() {
    let idp = IdpPair::start();
    let key = SigningKey::ec("k", Algorithm::ES256);
    let issuer = FakeIssuer::start(&[&key]);
    let mut env = idp.env();
    env.extend([
        ("TOKENBRIDGE_MODE".to_string(), "jwt".to_string()),
        ("TOKENBRIDGE_ISSUER".to_string(), issuer.url.clone()),
        ("TOKENBRIDGE_AUDIENCE".to_string(), "api".to_string()),
    ]);
    let server = HttpServer::start(&env);
    let ready = || raw_exchange(&server.addr, b"GET /readyz HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap().0;
    let started = std::time::Instant::now();
    while ready() != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never ready: {} jwks requests, {} discovery\n{}",
            issuer.jwks_requests(),
            issuer.discovery_requests(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(issuer.jwks_requests(), 1, "keys loaded at start-up, before any request");
    let token = key.sign(&issuer.claims("api", "alice", "", unix_now()));
    let request = format!("GET /auth HTTP/1.1\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n");
    assert_eq!(raw_exchange(&server.addr, request.as_bytes()).unwrap().0, 200);
    assert_eq!((issuer.jwks_requests(), idp.a.introspections()), (1, 0));
}

#[test]
fn jwt_mode_is_not_ready_while_the_jwks_is_unreachable() {
    let idp = IdpPair::start();
    let key = SigningKey::ec("k", Algorithm::ES256);
    let issuer = FakeIssuer::start(&[&key]);
    issuer.set_down(true);
    let mut env = idp.env();
    env.extend([
        ("TOKENBRIDGE_ISSUER".to_string(), issuer.url.clone()),
        ("TOKENBRIDGE_JWKS_URL".to_string(), issuer.jwks_url()),
        ("TOKENBRIDGE_AUDIENCE".to_string(), "api".to_string()),
    ]);
    let server = HttpServer::start(&env);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(raw_exchange(&server.addr, b"GET /readyz HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap().0, 503);
    assert_eq!(raw_exchange(&server.addr, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap().0, 200);
}

/// Protected routes and a lax default: a path a backend could read as a protected route but
/// that tokenbridge read as another one would be a wrongful allow.
const GUARDED: &str = r#"{"routes": [
    {"path": "/admin/**", "scopes": ["admin"]},
    {"path": "/keys/**", "scopes": ["admin"]},
    {"path": "/secrets/**", "scopes": ["admin"]},
    {"path": "/files/**", "scopes": ["admin"]},
    {"path": "/strict/**", "scopes": ["admin"]}
], "default": {"scopes": []}}"#;

/// Paths some hop reads as a guarded route: encoded delimiters that a decoding hop turns into
/// `?` or `#` (`/strict`), and look-alikes a backend folds by NFKC or Unicode case mapping.
const LOOK_ALIKES: [&str; 12] = [
    "/strict%3F/x",
    "/strict%3f",
    "/strict%23/x",
    "/ａｄｍｉｎ/users",
    "/%EF%BD%81dmin/users",
    "/admın/users",
    "/adm%C4%B1n/users",
    "/\u{017F}ecrets/1",
    "/%C5%BFecrets/1",
    "/\u{212A}eys/1",
    "/\u{FB01}les/1",
    "/%EF%AC%81les/1",
];

/// Forward-auth takes the URI as it came on the wire: what is not ASCII, percent-encoded.
fn on_the_wire(path: &str) -> String {
    path.bytes().map(|b| if b.is_ascii() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

fn method_arn(path: &str) -> String {
    format!("arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET{path}")
}

/// Whether a REST authorizer's IAM answer lets `arn` through, as API Gateway evaluates it (from
/// its cache too): no Deny matches and some Allow does.
fn rest_allows(answer: &Value, arn: &str) -> bool {
    let resources = |effect: &str| -> Vec<String> {
        let statements = answer["policyDocument"]["Statement"].as_array().cloned().unwrap_or_default();
        statements
            .iter()
            .filter(|s| s["Effect"] == effect)
            .flat_map(|s| s["Resource"].as_array().cloned().unwrap_or_default())
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect()
    };
    let policy = tokenbridge_lambda::iam::RoutePolicy { allow: resources("Allow"), deny: resources("Deny") };
    policy.allows(arn)
}

fn lambda_events(token: &str, path: &str) -> [Value; 2] {
    let arn = method_arn(path);
    let rest = json!({"type": "TOKEN", "authorizationToken": format!("Bearer {token}"), "methodArn": arn});
    let v2 = json!({"version": "2.0", "type": "REQUEST", "routeArn": arn, "identitySource": [format!("Bearer {token}")],
        "routeKey": "$default", "rawPath": path, "rawQueryString": "", "headers": {},
        "requestContext": {"accountId": "123456789012", "apiId": "abcdef1234", "domainName": "x", "domainPrefix": "x",
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4", "userAgent": "t"},
            "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "t", "timeEpoch": 0}});
    [rest, v2]
}

#[test]
fn look_alikes_of_a_guarded_route_are_refused_through_every_adapter() {
    use tokenbridge_tests::lambda_runtime_api::{Answer, FakeRuntimeApi};
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "read", 600);
    let mut env = idp.env();
    env.push(("TOKENBRIDGE_POLICY".into(), GUARDED.into()));
    // Route-wide Lambda answers, chosen: for this policy the default is the ARN called alone.
    env.push(("TOKENBRIDGE_LAMBDA_POLICY_RESOURCE".into(), "routes".into()));
    let mut fn_agent = FnAgent::start(&env);
    let server = HttpServer::start(&env);
    let api = FakeRuntimeApi::start();
    let _function = api.start_function(&env);
    let lines: Vec<String> =
        [&["/public/x", "/admin/x"][..], &LOOK_ALIKES[..]].concat().iter().map(|p| routed(&token, "GET", p)).collect();
    let stdio_run = stdio(&env, &lines.join("\n"));

    let allowed_by = |i: usize, path: &str, fn_agent: &mut FnAgent| -> Vec<(&str, bool)> {
        let payload = routed(&token, "GET", path);
        let fn_reply = fn_agent.call(payload.as_bytes(), Framing::Chunked, Duration::from_secs(30));
        let uri = on_the_wire(path);
        let headers = format!(
            "GET /auth HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Uri: {uri}\r\n\r\n"
        );
        let envoy =
            format!("GET /auth{uri} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n");
        let post = format!(
            "POST /authorize HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
            payload.len()
        );
        let authorize = raw_exchange(&server.addr, post.as_bytes()).unwrap();
        let [rest, v2] = lambda_events(&token, path).map(|event| api.invoke(&event, Duration::from_secs(20)));
        vec![
            ("stdio USER_DEFINED", stdio_run.answers[i]["active"] == true),
            ("Fn socket USER_DEFINED", fn_reply.json()["active"] == true),
            ("forward-auth X-Forwarded-Uri", raw_exchange(&server.addr, headers.as_bytes()).unwrap().0 == 200),
            ("forward-auth /auth/<path>", raw_exchange(&server.addr, envoy.as_bytes()).unwrap().0 == 200),
            ("POST /authorize", authorize.0 == 200 && authorize.2.contains("\"active\":true")),
            ("Lambda REST methodArn", matches!(&rest, Answer::Response(a) if rest_allows(a, &method_arn(path)))),
            ("Lambda HTTP API rawPath", matches!(&v2, Answer::Response(a) if a["isAuthorized"] == true)),
        ]
    };
    // The table can fail: the same token is allowed on the lax default and refused on a guarded route.
    for (adapter, allowed) in allowed_by(0, "/public/x", &mut fn_agent) {
        assert!(allowed, "{adapter}: /public/x should be allowed");
    }
    for (adapter, allowed) in allowed_by(1, "/admin/x", &mut fn_agent) {
        assert!(!allowed, "{adapter}: /admin/x allowed without the admin scope");
    }
    for (i, path) in LOOK_ALIKES.iter().enumerate() {
        for (adapter, allowed) in allowed_by(i + 2, path, &mut fn_agent) {
            assert!(!allowed, "{adapter}: {path} reached the lax default");
        }
    }
    // API Gateway replays an answer to every route of the token: one for a lax route must deny
    // the guarded routes in every case and spelling a client sends on the wire (percent-encoded
    // look-alikes). Raw non-ASCII look-alikes are what IAM cannot express (docs/lambda.md).
    let [lax, _] = lambda_events(&token, "/public/x");
    let Answer::Response(cached) = api.invoke(&lax, Duration::from_secs(20)) else { panic!("a policy expected") };
    assert!(rest_allows(&cached, &method_arn("/public/y")), "{cached}");
    let on_the_wire_look_alikes = LOOK_ALIKES.iter().map(|p| on_the_wire(p));
    let spellings = ["/admin/x", "/ADMIN/x", "/Keys/1", "/admin", "//admin/x", "/admin/", "/%61dmin/x", "/admin/../x"];
    for path in spellings.iter().map(|p| p.to_string()).chain(on_the_wire_look_alikes) {
        assert!(!rest_allows(&cached, &method_arn(&path)), "the cached answer lets {path} through: {cached}");
    }
}

/// A route's claim conditions through every adapter that carries a route: the token whose
/// claims hold is allowed, and tokens whose claims only look alike (a string for an array, a
/// nested array, a space-separated string) are refused with 403, never 401.
#[test]
fn claim_conditions_decide_a_route_through_every_adapter() {
    use tokenbridge_tests::lambda_runtime_api::{Answer, FakeRuntimeApi};
    const CLAIMS_POLICY: &str = r#"{"routes": [
        {"path": "/hr/**", "claims": [{"claim": "/realm_access/roles", "contains_any": ["hr"]},
                                      {"claim": "/https:~1~1example.com~1tier", "gte": 2}]}
    ], "default": {"scopes": []}}"#;
    let idp = IdpPair::start();
    let answer = |roles: Value, tier: Value| {
        json!({"active": true, "sub": "alice", "scope": "read", "exp": unix_now() + 600,
               "realm_access": {"roles": roles}, "https://example.com/tier": tier})
    };
    let tokens = [
        ("holds", answer(json!(["user", "hr"]), json!(3)), true),
        ("lone string role", answer(json!("hr"), json!(2)), true),
        ("missing role", answer(json!(["user"]), json!(3)), false),
        ("nested array", answer(json!([["hr"]]), json!(3)), false),
        ("space-separated", answer(json!("hr user"), json!(3)), false),
        ("tier as a string", answer(json!(["hr"]), json!("3")), false),
        ("tier too low", answer(json!(["hr"]), json!(1)), false),
    ];
    for (i, (_, answer, _)) in tokens.iter().enumerate() {
        idp.a.add_token(&format!("claims-token-{i}"), answer.clone());
    }
    let mut env = idp.env();
    env.push(("TOKENBRIDGE_POLICY".into(), CLAIMS_POLICY.into()));
    let mut fn_agent = FnAgent::start(&env);
    let server = HttpServer::start(&env);
    let api = FakeRuntimeApi::start();
    let _function = api.start_function(&env);
    let lines: Vec<String> =
        (0..tokens.len()).map(|i| routed(&format!("claims-token-{i}"), "GET", "/hr/payroll")).collect();
    let stdio_run = stdio(&env, &lines.join("\n"));

    for (i, (what, _, holds)) in tokens.iter().enumerate() {
        let token = format!("claims-token-{i}");
        let payload = routed(&token, "GET", "/hr/payroll");
        let fn_reply = fn_agent.call(payload.as_bytes(), Framing::Chunked, Duration::from_secs(30)).json();
        let forward = format!(
            "GET /auth HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Uri: /hr/payroll\r\n\r\n"
        );
        let forward = raw_exchange(&server.addr, forward.as_bytes()).unwrap().0;
        let [rest, v2] = lambda_events(&token, "/hr/payroll");
        let v2 = api.invoke(&v2, Duration::from_secs(20));
        let rest = api.invoke(&rest, Duration::from_secs(20));
        let rest_allowed = matches!(&rest, Answer::Response(a) if rest_allows(a, &method_arn("/hr/payroll")));
        assert_eq!(rest_allowed, *holds, "Lambda REST, {what}: {rest:?}");
        let expected = if *holds { 200 } else { 403 };
        assert_eq!(stdio_run.answers[i]["active"], *holds, "stdio, {what}: {}", stdio_run.answers[i]);
        assert_eq!(fn_reply["active"], *holds, "Fn socket, {what}");
        assert_eq!(forward, expected, "forward-auth, {what}");
        assert!(matches!(&v2, Answer::Response(a) if a["isAuthorized"] == *holds), "Lambda HTTP API, {what}: {v2:?}");
        if !holds {
            assert_eq!(
                challenge(&stdio_run.answers[i]),
                "Bearer realm=\"tokenbridge\", error=\"insufficient_scope\"",
                "a failed condition is forbidden, not unauthenticated: {what}"
            );
        }
    }
    assert!(
        stdio_run.stderr.matches("\"reason\":\"claim_condition_failed\"").count() >= 5,
        "the decision log names the failed condition: {}",
        stdio_run.stderr
    );
    // Elsewhere the default applies: the claims are the route's, not the token's everywhere.
    let elsewhere = stdio(&env, &routed("claims-token-2", "GET", "/public"));
    assert_eq!(elsewhere.answers[0]["active"], true);
    let run = harness::run(&["check-config"], &env, "");
    assert!(
        run.stdout.contains(
            r#"* /hr/** → scopes all of [], claims /realm_access/roles contains any of ["hr"] and /https:~1~1example.com~1tier >= 2"#
        ),
        "{}",
        run.stdout
    );
}

/// A policy whose guarded route's look-alikes could pass a lax route's (or the default's) `*` in
/// API Gateway's cache gets answers for the ARN called unless `routes` is chosen, and
/// check-config says why; a policy without that risk gets route-wide answers by default.
#[test]
fn lambda_answers_cover_every_route_by_default_only_where_iam_can_hold_them() {
    use tokenbridge_tests::lambda_runtime_api::{Answer, FakeRuntimeApi};
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "read", 600);
    let run = |policy: &str| {
        let mut env = idp.env();
        env.push(("TOKENBRIDGE_POLICY".into(), policy.into()));
        let api = FakeRuntimeApi::start();
        let _function = api.start_function(&env);
        let [rest, _] = lambda_events(&token, "/public/x");
        let Answer::Response(answer) = api.invoke(&rest, Duration::from_secs(20)) else { panic!("an answer") };
        let check = harness::run(&["check-config"], &env, "");
        (answer["policyDocument"]["Statement"].clone(), check.stdout)
    };
    let (statements, notes) = run(GUARDED);
    assert_eq!(statements.as_array().map(Vec::len), Some(1), "{statements}");
    assert_eq!(
        statements[0]["Resource"],
        json!(["arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/public/x"])
    );
    assert!(notes.contains("could be reached from API Gateway's cache by a look-alike"), "{notes}");
    let exact = r#"{"routes": [{"method": "GET", "path": "/public/*", "scopes": ["read"]}, {"method": "GET", "path": "/admin/*", "scopes": ["admin"]}]}"#;
    let (statements, _) = run(exact);
    let resources = statements.to_string();
    assert!(resources.contains("GET/public/*") && resources.contains("Deny"), "route-wide by default: {statements}");
}
