//! The built binary as an AWS Lambda authorizer, driven through a fake Runtime API by events of
//! every form, checking the exact answers and that the runtime keeps serving after failures.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokenbridge_tests::fake_idp::unix_now;
use tokenbridge_tests::jwt_keys::{FakeIssuer, SigningKey};
use tokenbridge_tests::lambda_runtime_api::{Answer, FakeRuntimeApi};
use tokenbridge_tests::{Fault, IdpPair};

const ARN: &str = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/orders/7";
const STAGE: &str = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/*/*";
const LONG: Duration = Duration::from_secs(20);

fn token_event(token: &str) -> Value {
    json!({"type": "TOKEN", "authorizationToken": format!("Bearer {token}"), "methodArn": ARN})
}

fn request_event(token: &str) -> Value {
    json!({"type": "REQUEST", "methodArn": ARN, "resource": "/orders/{id}", "path": "/orders/7", "httpMethod": "GET",
           "headers": {"Authorization": format!("Bearer {token}")}, "queryStringParameters": {}, "pathParameters": {"id": "7"},
           "stageVariables": {}, "requestContext": {"resourcePath": "/orders/{id}", "httpMethod": "GET", "stage": "prod"}})
}

fn http_v2_event(token: &str) -> Value {
    json!({"version": "2.0", "type": "REQUEST", "routeArn": ARN, "identitySource": [format!("Bearer {token}")],
           "routeKey": "GET /orders/{id}", "rawPath": "/orders/7", "rawQueryString": "",
           "headers": {"authorization": format!("Bearer {token}")},
           "requestContext": {"accountId": "123456789012", "apiId": "abcdef1234", "domainName": "x", "domainPrefix": "x",
                              "http": {"method": "GET", "path": "/orders/7", "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4", "userAgent": "t"},
                              "requestId": "r", "routeKey": "GET /orders/{id}", "stage": "prod", "time": "t", "timeEpoch": 0}})
}

/// An HTTP API payload 1.0 event on the named stage `prod`, whose `path` starts with the stage.
fn http_v1_event(token: &str, path: &str) -> Value {
    json!({"version": "1.0", "type": "REQUEST", "methodArn": ARN, "identitySource": format!("Bearer {token}"),
           "authorizationToken": format!("Bearer {token}"), "resource": "/orders/{id}", "path": format!("/prod{path}"),
           "httpMethod": "GET", "headers": {"Authorization": format!("Bearer {token}")}, "queryStringParameters": {},
           "pathParameters": {"id": "7"}, "stageVariables": {},
           "requestContext": {"accountId": "123456789012", "apiId": "abcdef1234", "httpMethod": "GET",
                              "path": format!("/prod{path}"), "resourcePath": "/orders/{id}", "stage": "prod"}})
}

/// An HTTP API payload 2.0 event on the named stage `prod`: `rawPath` starts with the stage.
fn http_v2_staged_event(token: &str, path: &str) -> Value {
    let mut event = http_v2_event(token);
    event["rawPath"] = json!(format!("/prod{path}"));
    event["requestContext"]["http"]["path"] = json!(format!("/prod{path}"));
    event
}

/// An answer with the values that differ per run (the backend token, its expiry) replaced.
fn settled(mut answer: Value) -> Value {
    let context = &mut answer["context"];
    assert!(context["back_end_token"].as_str().unwrap().starts_with("Bearer backend-"), "{answer}");
    context["back_end_token"] = json!("<backend token>");
    assert!(context["expires_at"].is_string(), "{answer}");
    context["expires_at"] = json!("<expiry>");
    answer
}

fn policy_of(effect: &str, resource: &str) -> Value {
    policy(effect, resource)
}

fn policy(effect: &str, resource: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Action": ["execute-api:Invoke"], "Effect": effect, "Resource": [resource]}]})
}

fn unauthorized() -> Answer {
    Answer::Error("Unauthorized".into(), "Unauthorized".into())
}

#[test]
fn rest_token_events_get_policies_and_unauthorized_errors() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "orders.read", 600);
    let weak = idp.a.issue("bob", "other", 600);
    let api = FakeRuntimeApi::start();
    let env = [idp.env(), vec![("TOKENBRIDGE_REQUIRED_SCOPES".into(), "orders.read".into())]].concat();
    let _function = api.start_function(&env);

    let Answer::Response(allow) = api.invoke(&token_event(&token), LONG) else { panic!("allow expected") };
    assert_eq!(allow["principalId"], "alice");
    assert_eq!(
        allow["policyDocument"],
        json!({"Version": "2012-10-17", "Statement": [{"Action": ["execute-api:Invoke"], "Effect": "Allow", "Resource": [STAGE]}]})
    );
    let context = allow["context"].as_object().unwrap();
    assert!(context["back_end_token"].as_str().unwrap().starts_with("Bearer backend-"));
    assert_eq!(context["scope"], "orders.read");
    assert!(context.values().all(Value::is_string), "context values are strings: {context:?}");

    assert_eq!(api.invoke(&token_event("forged"), LONG), unauthorized());
    assert_eq!(api.invoke(&json!({"type": "TOKEN", "authorizationToken": "", "methodArn": ARN}), LONG), unauthorized());
    let Answer::Response(deny) = api.invoke(&token_event(&weak), LONG) else { panic!("a Deny policy expected") };
    assert_eq!(deny["policyDocument"]["Statement"][0]["Effect"], "Deny");

    // Still serving: the same token again, from the cache.
    assert!(matches!(api.invoke(&token_event(&token), LONG), Answer::Response(_)));
    assert_eq!((idp.a.introspections(), idp.b.token_requests()), (3, 1));
}

#[test]
fn rest_request_and_http_api_events_are_answered_in_their_forms() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    let api = FakeRuntimeApi::start();
    let _function = api.start_function(&idp.env());
    let Answer::Response(request) = api.invoke(&request_event(&token), LONG) else { panic!() };
    assert_eq!(request["policyDocument"]["Statement"][0]["Effect"], "Allow");
    let Answer::Response(simple) = api.invoke(&http_v2_event(&token), LONG) else { panic!() };
    assert_eq!(simple["isAuthorized"], true);
    assert!(simple["context"]["back_end_token"].as_str().unwrap().starts_with("Bearer "));
    let Answer::Response(refused) = api.invoke(&http_v2_event("forged"), LONG) else { panic!() };
    assert_eq!(refused["isAuthorized"], false, "HTTP APIs get the documented 403 by default");
}

#[test]
fn the_method_arn_can_be_the_policy_resource_and_http_apis_can_get_policies() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    let api = FakeRuntimeApi::start();
    let env = [
        idp.env(),
        vec![
            ("TOKENBRIDGE_LAMBDA_POLICY_RESOURCE".into(), "method".into()),
            ("TOKENBRIDGE_LAMBDA_HTTP_RESPONSE".into(), "iam".into()),
        ],
    ]
    .concat();
    let _function = api.start_function(&env);
    let Answer::Response(rest) = api.invoke(&token_event(&token), LONG) else { panic!() };
    assert_eq!(rest["policyDocument"]["Statement"][0]["Resource"], json!([ARN]));
    let Answer::Response(http) = api.invoke(&http_v2_event(&token), LONG) else { panic!() };
    assert_eq!(http["principalId"], "alice");
    assert_eq!(http["policyDocument"]["Statement"][0]["Effect"], "Allow");
}

#[test]
fn an_idp_outage_and_bad_events_are_errors_and_the_runtime_keeps_serving() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    idp.b.set_token_fault(Some(Fault::Status(503, String::new())));
    let api = FakeRuntimeApi::start();
    let mut function = api.start_function(&idp.env());
    match api.invoke(&token_event(&token), LONG) {
        Answer::Error(kind, message) => {
            assert_eq!(kind, "Unavailable");
            assert_ne!(message, "Unauthorized", "an outage must not look like a bad token");
            assert!(message.contains("backend_token_bad_status"), "{message}");
            assert!(!message.contains(&token));
        }
        other => panic!("{other:?}"),
    }
    for bad in [json!({"type": "COGNITO"}), json!([1]), json!("text"), json!({"type": "TOKEN"})] {
        assert!(matches!(api.invoke(&bad, LONG), Answer::Error(kind, _) if kind == "InvalidEvent"), "{bad}");
    }
    idp.b.set_token_fault(None);
    assert!(matches!(api.invoke(&token_event(&token), LONG), Answer::Response(_)), "serving again");
    assert!(function.is_alive());
}

#[test]
fn the_invocation_deadline_bounds_the_idp_calls() {
    let idp = IdpPair::start();
    idp.a.set_introspect_fault(Some(Fault::Silent));
    let api = FakeRuntimeApi::start();
    let _function = api.start_function(&[idp.env(), vec![("TOKENBRIDGE_TIMEOUT_MS".into(), "60000".into())]].concat());
    let started = std::time::Instant::now();
    let answer = api.invoke(&token_event("t"), Duration::from_millis(500));
    assert!(matches!(&answer, Answer::Error(kind, m) if kind == "Unavailable" && m.contains("deadline")), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn route_policies_see_the_method_and_path_of_the_method_arn() {
    let idp = IdpPair::start();
    let reader = idp.a.issue("alice", "orders.read", 600);
    let api = FakeRuntimeApi::start();
    let policy = r#"{"routes":[{"method":"GET","path":"/orders/*","scopes":["orders.read"]},
                               {"method":"DELETE","path":"/orders/*","scopes":["orders.admin"]}]}"#;
    let _function = api.start_function(&[idp.env(), vec![("TOKENBRIDGE_POLICY".into(), policy.into())]].concat());
    let Answer::Response(get) = api.invoke(&token_event(&reader), LONG) else { panic!() };
    // With route policies the answer covers every route of the token, as the gateway caches it
    // for all of them: GET (and HEAD) of any order allowed, DELETE denied.
    let base = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod";
    let statements = &get["policyDocument"]["Statement"];
    assert_eq!(statements[0]["Effect"], "Allow");
    assert_eq!(statements[0]["Resource"], json!([format!("{base}/GET/orders/*"), format!("{base}/HEAD/orders/*")]));
    assert_eq!(statements[1]["Effect"], "Deny");
    let denied = statements[1]["Resource"].as_array().unwrap();
    for resource in ["DELETE/orders/*", "*/O?????/*", "*/?????S/*"] {
        let resource = format!("arn:aws:execute-api:*:abcdef1234/prod/{resource}");
        assert!(denied.contains(&json!(resource)), "{resource}: {get}");
    }
    assert!(get["context"]["back_end_token"].as_str().unwrap().starts_with("Bearer backend-"));
    let delete = json!({"type": "TOKEN", "authorizationToken": format!("Bearer {reader}"),
                        "methodArn": ARN.replace("/GET/", "/DELETE/")});
    let Answer::Response(denied) = api.invoke(&delete, LONG) else { panic!() };
    // The same policy: a 403 for DELETE that, cached, still lets GET through with a backend token.
    assert_eq!(denied["policyDocument"], get["policyDocument"]);
    assert!(denied["context"]["back_end_token"].as_str().unwrap().starts_with("Bearer backend-"));
    assert_eq!(denied["context"]["wwwAuthenticate"], r#"Bearer realm="tokenbridge", error="insufficient_scope""#);
    // A REQUEST authorizer's answer is the same.
    let Answer::Response(request) = api.invoke(&request_event(&reader), LONG) else { panic!() };
    assert_eq!(request["policyDocument"], get["policyDocument"]);
}

#[test]
fn the_method_arn_alone_is_the_resource_when_asked_for_with_route_policies() {
    let idp = IdpPair::start();
    let reader = idp.a.issue("alice", "orders.read", 600);
    let api = FakeRuntimeApi::start();
    let policy = r#"{"routes":[{"method":"GET","path":"/orders/*","scopes":["orders.read"]}]}"#;
    let env = [
        idp.env(),
        vec![
            ("TOKENBRIDGE_POLICY".into(), policy.into()),
            ("TOKENBRIDGE_LAMBDA_POLICY_RESOURCE".into(), "method".into()),
        ],
    ]
    .concat();
    let _function = api.start_function(&env);
    let Answer::Response(get) = api.invoke(&token_event(&reader), LONG) else { panic!() };
    assert_eq!(get["policyDocument"], policy_of("Allow", ARN));
}

#[test]
fn http_v1_events_get_policies_and_refusals_as_http_apis_do() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    let api = FakeRuntimeApi::start();
    let _function = api.start_function(&idp.env());
    let Answer::Response(allow) = api.invoke(&http_v1_event(&token, "/orders/7"), LONG) else {
        panic!("allow expected")
    };
    assert_eq!(
        settled(allow),
        json!({"principalId": "alice", "policyDocument": policy("Allow", STAGE),
               "context": {"back_end_token": "<backend token>", "principal": "alice", "scope": "",
                           "client_id": "caller-app", "expires_at": "<expiry>"}})
    );
    // An HTTP API: the documented "not authorized" (a Deny policy, 403), as for payload 2.0.
    assert_eq!(
        api.invoke(&http_v1_event("forged", "/orders/7"), LONG),
        Answer::Response(
            json!({"principalId": "unauthorized", "policyDocument": policy("Deny", STAGE), "context": {}})
        )
    );
}

#[test]
fn http_v2_insufficient_scope_is_not_authorized_and_an_idp_outage_is_an_error() {
    let idp = IdpPair::start();
    let weak = idp.a.issue("bob", "other", 600);
    let api = FakeRuntimeApi::start();
    let env = [idp.env(), vec![("TOKENBRIDGE_REQUIRED_SCOPES".into(), "orders.read".into())]].concat();
    let _function = api.start_function(&env);
    assert_eq!(
        api.invoke(&http_v2_event(&weak), LONG),
        Answer::Response(json!({"isAuthorized": false, "context": {}}))
    );

    let token = idp.a.issue("carol", "orders.read", 600);
    idp.a.set_introspect_fault(Some(Fault::Status(503, String::new())));
    match api.invoke(&http_v2_event(&token), LONG) {
        Answer::Error(kind, message) => {
            assert_eq!(kind, "Unavailable");
            assert!(message.starts_with("tokenbridge could not decide: introspection_bad_status ("), "{message}");
            assert!(!message.contains(&token), "{message}");
        }
        other => panic!("an outage must be an error, not {other:?}"),
    }
}

#[test]
fn route_policies_see_http_api_paths_without_the_named_stage() {
    let idp = IdpPair::start();
    let reader = idp.a.issue("alice", "orders.read", 600);
    let api = FakeRuntimeApi::start();
    // A permissive default: a path that kept its stage would match no route and pass.
    let document = r#"{"routes":[{"path":"/admin/**","scopes":["admin"]}],"default":{"scopes":[]}}"#;
    let _function = api.start_function(&[idp.env(), vec![("TOKENBRIDGE_POLICY".into(), document.into())]].concat());
    let not_authorized = Answer::Response(json!({"isAuthorized": false, "context": {}}));
    assert_eq!(api.invoke(&http_v2_staged_event(&reader, "/admin/users"), LONG), not_authorized);
    let Answer::Response(orders) = api.invoke(&http_v2_staged_event(&reader, "/orders/7"), LONG) else { panic!() };
    assert_eq!(orders["isAuthorized"], true);
    let Answer::Response(v1) = api.invoke(&http_v1_event(&reader, "/admin/users"), LONG) else { panic!() };
    assert_eq!(v1["policyDocument"], policy("Deny", ARN));
}

#[test]
fn a_malformed_event_is_answered_without_the_token_in_it() {
    let api = FakeRuntimeApi::start();
    let _function = api.start_function(&IdpPair::start().env());
    let mut event = http_v2_event("s3cr3t");
    event["identitySource"] = json!("Bearer s3cr3t");
    assert_eq!(
        api.invoke(&event, LONG),
        Answer::Error(
            "InvalidEvent".into(),
            "not an HTTP API 2.0 authorizer event: identitySource: invalid type, expected a sequence".into()
        )
    );
}

#[test]
fn jwt_mode_loads_the_issuer_keys_during_init_and_an_issuer_outage_does_not_fail_it() {
    let idp = IdpPair::start();
    let key = SigningKey::ec("k", Algorithm::ES256);
    let issuer = FakeIssuer::start(&[&key]);
    let env = [
        idp.env(),
        vec![
            ("TOKENBRIDGE_MODE".into(), "jwt".into()),
            ("TOKENBRIDGE_ISSUER".into(), issuer.url.clone()),
            ("TOKENBRIDGE_AUDIENCE".into(), "api".into()),
        ],
    ]
    .concat();
    let api = FakeRuntimeApi::start();
    let _function = api.start_function(&env);
    let started = std::time::Instant::now();
    while issuer.jwks_requests() == 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "the keys were not loaded before any event");
        std::thread::sleep(Duration::from_millis(20));
    }
    let token = key.sign(&issuer.claims("api", "alice", "", unix_now()));
    let Answer::Response(allow) = api.invoke(&token_event(&token), LONG) else { panic!("allow expected") };
    assert_eq!(allow["policyDocument"]["Statement"][0]["Effect"], "Allow");
    assert_eq!(issuer.jwks_requests(), 1, "the first event used the keys loaded at init");

    let down = FakeIssuer::start(&[&key]);
    down.set_down(true);
    let env: Vec<(String, String)> =
        env.into_iter().map(|(k, v)| if k == "TOKENBRIDGE_ISSUER" { (k, down.url.clone()) } else { (k, v) }).collect();
    let api = FakeRuntimeApi::start();
    let mut function = api.start_function(&env);
    let token = key.sign(&down.claims("api", "alice", "", unix_now()));
    assert!(matches!(api.invoke(&token_event(&token), LONG), Answer::Error(kind, _) if kind == "Unavailable"));
    assert!(function.is_alive());
}

/// Sender-constrained tokens through REST REQUEST and HTTP API 2.0 events: a DPoP-bound token
/// with a proof of its key in the event's `DPoP` header is allowed once; a certificate-bound
/// token is allowed with the certificate API Gateway's mutual TLS put in the event, and refused
/// without it.
#[test]
fn sender_constrained_tokens_through_request_events() {
    use base64::Engine as _;
    use tokenbridge_tests::dpop::DpopClient;
    let idp = IdpPair::start();
    let origin = "https://abcdef1234.execute-api.eu-west-1.amazonaws.com/prod";
    let mut env = idp.env();
    env.push(("TOKENBRIDGE_DPOP".into(), "allowed".into()));
    env.push(("TOKENBRIDGE_DPOP_ORIGINS".into(), origin.into()));
    let api = FakeRuntimeApi::start();
    let _function = api.start_function(&env);
    let client = DpopClient::es256();
    idp.a.add_token(
        "dpop-bound",
        json!({"active": true, "sub": "alice", "scope": "orders.read", "exp": unix_now() + 600, "cnf": {"jkt": client.jkt()}}),
    );
    let with_dpop = |mut event: Value, proof: &str| {
        let headers = event["headers"].as_object_mut().unwrap();
        headers.retain(|k, _| !k.eq_ignore_ascii_case("authorization"));
        headers.insert("Authorization".into(), json!("DPoP dpop-bound"));
        headers.insert("DPoP".into(), json!(proof));
        if event.get("identitySource").is_some() {
            event["identitySource"] = json!(["DPoP dpop-bound"]);
        }
        event
    };
    for event in [request_event("x"), http_v2_event("x")] {
        let proof = client.proof("GET", &format!("{origin}/orders/7"), "dpop-bound", unix_now());
        let allowed = api.invoke(&with_dpop(event.clone(), &proof), LONG);
        let Answer::Response(answer) = &allowed else { panic!("{allowed:?}") };
        let allowed = answer["isAuthorized"] == true || answer["policyDocument"]["Statement"][0]["Effect"] == "Allow";
        assert!(allowed, "{answer}");
        let replay = api.invoke(&with_dpop(event, &proof), LONG);
        let refused = matches!(&replay, Answer::Error(..))
            || matches!(&replay, Answer::Response(a) if a["isAuthorized"] == false);
        assert!(refused, "a replayed proof: {replay:?}");
    }

    let pki = tokenbridge_tests::interop::MtlsPki::make();
    let pem = std::fs::read_to_string(&pki.ca_signed.0).unwrap();
    let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(der).unwrap();
    let x5t = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der));
    idp.a.add_token(
        "cert-bound",
        json!({"active": true, "sub": "alice", "scope": "orders.read", "exp": unix_now() + 600, "cnf": {"x5t#S256": x5t}}),
    );
    let mut rest = request_event("cert-bound");
    assert_eq!(api.invoke(&rest, LONG), unauthorized(), "no certificate in the event");
    // As API Gateway's mutual TLS puts it in the event.
    let client_cert = |pem: &str| {
        json!({"clientCertPem": pem, "subjectDN": "CN=tokenbridge-mtls", "issuerDN": "CN=tokenbridge interop CA",
               "serialNumber": "1", "validity": {"notBefore": "Dec  1 00:00:00 2026 GMT", "notAfter": "Dec  3 00:00:00 2026 GMT"}})
    };
    rest["requestContext"]["identity"] = json!({"sourceIp": "1.2.3.4", "clientCert": client_cert(&pem)});
    let answer = api.invoke(&rest, LONG);
    let Answer::Response(answer) = answer else { panic!("{answer:?}") };
    assert_eq!(answer["policyDocument"]["Statement"][0]["Effect"], "Allow", "{answer}");
    let mut v2 = http_v2_event("cert-bound");
    v2["requestContext"]["authentication"] = json!({"clientCert": client_cert(&pem)});
    let Answer::Response(answer) = api.invoke(&v2, LONG) else { panic!("an answer") };
    assert_eq!(answer["isAuthorized"], true, "{answer}");
    let other = std::fs::read_to_string(&pki.self_signed.0).unwrap();
    v2["requestContext"]["authentication"] = json!({"clientCert": client_cert(&other)});
    let Answer::Response(answer) = api.invoke(&v2, LONG) else { panic!("an answer") };
    assert_eq!(answer["isAuthorized"], false, "another certificate: {answer}");
}

/// The EMF documents in a log, parsed.
fn emf_documents(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| l.contains("\"_aws\""))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("an EMF line is one JSON object ({e}): {l}")))
        .collect()
}

/// The sum of metric `name` over the documents whose dimension values include `dimensions`,
/// checking on the way that each such document declares the metric in its directive.
fn emf_sum(documents: &[Value], name: &str, dimensions: &[(&str, &str)]) -> u64 {
    documents
        .iter()
        .filter(|d| d.get(name).is_some() && dimensions.iter().all(|(k, v)| d[*k] == *v))
        .map(|d| {
            let directive = &d["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(directive["Namespace"], "tokenbridge", "{d}");
            let declared = directive["Metrics"].as_array().unwrap().iter().any(|m| m["Name"] == name);
            assert!(declared, "{name} is a metric of its directive: {d}");
            assert!(d["_aws"]["Timestamp"].as_u64().is_some_and(|t| t > 1_500_000_000_000), "{d}");
            d[name].as_u64().unwrap_or_else(|| panic!("{name} is a whole number: {d}"))
        })
        .sum()
}

#[test]
fn after_an_interval_one_emf_flush_holds_the_decisions_and_idp_calls_made_since_start() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    let api = FakeRuntimeApi::start();
    let env = [idp.env(), vec![("TOKENBRIDGE_LAMBDA_METRICS_INTERVAL_SECONDS".into(), "1".into())]].concat();
    let started = std::time::Instant::now();
    let function = api.start_function(&env);
    for event in [token_event(&token), token_event("forged"), token_event(&token)] {
        api.invoke(&event, LONG);
    }
    // (On a machine slow enough to take the whole interval, a flush here is right; the sums
    // below hold either way.)
    if started.elapsed() < Duration::from_millis(900) {
        assert!(emf_documents(&function.log()).is_empty(), "nothing within the first interval");
    }
    std::thread::sleep(Duration::from_millis(1_100));
    // This answer is posted, then the flush is due.
    assert!(matches!(api.invoke(&token_event(&token), LONG), Answer::Response(_)));
    let flushed = function.wait_for_line(Duration::from_secs(10), |l| l.contains("\"_aws\""));
    assert!(flushed.is_some(), "an EMF line after the interval:\n{}", function.log());
    // A flush is one write of several lines; the harness hands them over one at a time.
    std::thread::sleep(Duration::from_millis(300));
    let documents = emf_documents(&function.log());
    assert_eq!(emf_sum(&documents, "decisions", &[("outcome", "allow")]), 3, "{documents:#?}");
    assert_eq!(emf_sum(&documents, "decisions", &[("outcome", "deny")]), 1, "{documents:#?}");
    assert_eq!(emf_sum(&documents, "decisions", &[("outcome", "unavailable")]), 0);
    let introspections = emf_sum(&documents, "idp_calls", &[("dependency", "introspection"), ("result", "ok")]);
    assert_eq!(introspections as usize, idp.a.introspections(), "{documents:#?}");
    let token_calls = emf_sum(&documents, "idp_calls", &[("dependency", "token"), ("result", "ok")]);
    assert_eq!(token_calls as usize, idp.b.token_requests(), "{documents:#?}");
    assert_eq!(
        emf_sum(&documents, "stage_lookups", &[("stage", "validation"), ("served", "hit")]),
        2,
        "{documents:#?}"
    );
    // The decisions by outcome alone are a metric of their own, since CloudWatch does not sum
    // across dimensions.
    let allow = documents.iter().find(|d| d["outcome"] == "allow").unwrap();
    assert_eq!(allow["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0], json!(["outcome"]));
}

#[test]
fn shutdown_flushes_what_was_counted_since_the_last_emf_line() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    let api = FakeRuntimeApi::start();
    let env = [idp.env(), vec![("TOKENBRIDGE_LAMBDA_METRICS_INTERVAL_SECONDS".into(), "3600".into())]].concat();
    let function = api.start_function(&env);
    for event in [token_event(&token), token_event(&token)] {
        assert!(matches!(api.invoke(&event, LONG), Answer::Response(_)));
    }
    assert!(emf_documents(&function.log()).is_empty(), "not due within the hour");
    // As Lambda does before it shuts an environment with an extension down.
    let (clean, log) = function.terminate();
    assert!(clean, "a clean exit after the flush:\n{log}");
    let documents = emf_documents(&log);
    assert_eq!(emf_sum(&documents, "decisions", &[("outcome", "allow")]), 2, "{log}");
}

#[test]
fn with_lambda_metrics_off_no_emf_line_is_written() {
    let idp = IdpPair::start();
    let token = idp.a.issue("alice", "", 600);
    let api = FakeRuntimeApi::start();
    let env = [idp.env(), vec![("TOKENBRIDGE_LAMBDA_METRICS".into(), "off".into())]].concat();
    let function = api.start_function(&env);
    assert!(matches!(api.invoke(&token_event(&token), LONG), Answer::Response(_)));
    let (_, log) = function.terminate();
    assert!(emf_documents(&log).is_empty(), "{log}");
}

#[test]
fn a_wrong_lambda_metrics_setting_stops_the_function_at_start() {
    let idp = IdpPair::start();
    let api = FakeRuntimeApi::start();
    let env = [api.env(), idp.env(), vec![("TOKENBRIDGE_LAMBDA_METRICS_INTERVAL_SECONDS".into(), "0".into())]].concat();
    let run = tokenbridge_tests::harness::run(&[], &env, "");
    assert!(!run.success, "{}", run.stderr);
    assert!(run.stderr.contains("TOKENBRIDGE_LAMBDA_METRICS_INTERVAL_SECONDS"), "{}", run.stderr);
}
