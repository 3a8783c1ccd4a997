//! IdP A's introspection answers (RFC 7662) as the engine reads them, under several statuses and
//! settings; an active identity is then rendered by every adapter.

use crate::{LEEWAY, NOW, claim_names, grant, header_safe};
use serde_json::Value;
use tokenbridge_core::Outcome;
use tokenbridge_core::fuzzing::introspection_answer;
use tokenbridge_core::fuzzing::{Identity, Reason, Verdict};
use tokenbridge_http::forward::{self, Rendering};
use tokenbridge_wire as gateway;

/// The checks of the target on one input; panics on a broken invariant.
pub fn check(data: &[u8]) {
    let names = claim_names();
    for status in [200, 400, 401, 429, 503] {
        for required in [None, Some("Bearer")] {
            match introspection_answer(status, data, NOW, LEEWAY, &names, required) {
                Ok(Verdict::Active(identity)) => {
                    assert_eq!(status, 200, "an active token from a {status} answer");
                    check_active(data, &identity, required);
                    render(&identity);
                }
                Ok(Verdict::Invalid(why)) => {
                    assert!(status == 200 || (status == 400 && why == Reason::UnsupportedTokenType), "{status} {why}");
                }
                Err(_) => {}
            }
        }
    }
}

fn check_active(data: &[u8], identity: &Identity, required: Option<&str>) {
    let answer: Value = serde_json::from_slice(data).expect("an active answer is JSON");
    assert_eq!(answer["active"], true, "only the boolean true is active");
    let text = |k: &str| answer[k].as_str().filter(|s| !s.is_empty());
    assert!(!identity.principal.is_empty());
    assert_eq!(Some(identity.principal.as_str()), text("sub").or(text("client_id")));
    assert_eq!(identity.client_id.as_deref(), text("client_id"));
    if let Some(exp) = identity.expires_at {
        assert!(exp.saturating_add(LEEWAY) > NOW, "expired token active: exp {exp}");
    }
    let nbf = answer["nbf"].as_i64().or_else(|| answer["nbf"].as_f64().map(|f| f as i64));
    assert!(nbf.is_none_or(|nbf| nbf.saturating_sub(LEEWAY) <= NOW), "not yet valid token active");
    let token_type = text("token_type").unwrap_or_default();
    assert!(!token_type.to_ascii_lowercase().contains("refresh"), "a refresh token is active");
    if let Some(required) = required {
        assert!(token_type.eq_ignore_ascii_case(required), "token_type {token_type:?} passed for {required}");
    }
    assert!(identity.scopes.iter().all(|s| !s.is_empty() && !s.contains(|c: char| c.is_ascii_whitespace())));
    assert!(!identity.verified_locally);
}

/// IdP values reach headers and JSON answers: never a header that could be split.
fn render(identity: &Identity) {
    let g = grant(&identity.principal, &identity.scopes, identity.client_id.as_deref(), &identity.claims);
    let outcome = Outcome::Allow(g);
    let rendering = Rendering {
        realm: "tokenbridge",
        context_key: "back_end_token",
        identity: &tokenbridge_http::identity::IdentityHeaders::default(),
    };
    let reply = forward::render_forward(&outcome, &rendering);
    assert_eq!(reply.status, 200);
    for (name, value) in &reply.headers {
        assert!(header_safe(value), "{name}: {value:?}");
    }
    assert!(reply.headers.iter().any(|(n, v)| n == "Authorization" && v == "Bearer backend-token"));
    let answer = gateway::render(&outcome, "tokenbridge");
    assert_eq!((answer.status, &answer.body["principal"]), (200, &Value::from(identity.principal.as_str())));
}
