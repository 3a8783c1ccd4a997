//! OCI API Gateway authorizer payloads (`tokenbridge_wire::parse`), and the answers
//! rendered for them.

use crate::{grant, outcomes};
use serde_json::Value;
use tokenbridge_wire as gateway;

/// The checks of the target on one input; panics on a broken invariant.
pub fn check(data: &[u8]) {
    for token_argument in ["token", "authorization"] {
        check_with_token_argument(data, token_argument);
    }
}

fn check_with_token_argument(data: &[u8], token_argument: &str) {
    let request = match gateway::parse(data, token_argument) {
        Ok(request) => request,
        Err(error) => {
            let answer = gateway::render_payload_error(&error);
            assert_eq!(answer.status, 502);
            assert_eq!(answer.body["error"], "invalid_payload");
            let message = answer.body["message"].as_str().expect("a message");
            if let gateway::PayloadError::NotJson(why) = &error {
                // serde_json quotes the input in its messages; a token must not reach a log.
                assert!(
                    why.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b' '),
                    "a JSON error that may quote its input: {message:?}"
                );
            }
            return;
        }
    };
    let payload: Value = serde_json::from_slice(data).expect("a parsed payload is JSON");
    assert_eq!(gateway::parse_value(&payload, token_argument).as_ref().map(|r| &r.route), Ok(&request.route));
    // The platform's deadline and call id never come from the payload.
    assert!(request.deadline.is_none() && request.call_id.is_none());
    match payload["type"].as_str() {
        Some("TOKEN") => {
            assert_eq!(request.credential.as_deref(), payload["token"].as_str());
            assert_eq!(request.route, Default::default());
        }
        Some("USER_DEFINED") => {
            let data = payload["data"].as_object().expect("USER_DEFINED data is an object");
            let sent = match data.get(token_argument) {
                Some(Value::String(s)) => Some(s.as_str()),
                Some(Value::Array(items)) => items.first().and_then(Value::as_str),
                _ => None,
            };
            assert_eq!(request.credential.as_deref(), sent);
            // The credential is never kept among the route's arguments (which reach policies).
            assert!(!request.route.args.contains_key(token_argument));
            assert_eq!(request.route.method.as_ref(), request.route.args.get("method"));
            // The path argument is the route's path; an OCI path parameter (`request.path[rest]`)
            // comes without its leading `/`, and is read as the path below the root.
            let path_argument = request.route.args.get("path");
            let expected_path = path_argument.map(|p| if p.starts_with('/') { p.clone() } else { format!("/{p}") });
            assert_eq!(request.route.path, expected_path, "path argument {path_argument:?}");
        }
        other => panic!("a payload of type {other:?} was accepted"),
    }
    // The request's Debug never shows the credential: it reads the same whatever the credential.
    if request.credential.is_some() {
        let other = tokenbridge_core::Request { credential: Some("Bearer other".into()), ..request.clone() };
        assert_eq!(format!("{request:?}"), format!("{other:?}"), "the debug form shows the credential");
        assert!(format!("{request:?}").contains(r#"credential: Some("<redacted>")"#));
    }
    for outcome in outcomes(grant("alice", &["orders.read".into()], Some("app"), &Default::default())) {
        let answer = gateway::render(&outcome, "tokenbridge");
        let allow = answer.body["active"] == true;
        assert_eq!(allow, matches!(outcome, tokenbridge_core::Outcome::Allow(_)));
        assert_eq!(answer.status, if answer.body.get("active").is_some() { 200 } else { 502 });
    }
}
