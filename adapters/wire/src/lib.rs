//! tokenbridge's wire format: OCI API Gateway authorizer payloads in, gateway answers out. The
//! OCI adapter serves it on the Fn socket, `tokenbridge stdio` reads and writes it as JSON lines,
//! and `tokenbridge http` on `POST /authorize`.
//!
//! ```
//! use tokenbridge_core::{Denial, Outcome};
//!
//! let request = tokenbridge_wire::parse(br#"{"type":"TOKEN","token":"Bearer abc"}"#, "token").unwrap();
//! assert_eq!(request.credential.as_deref(), Some("Bearer abc"));
//!
//! let answer = tokenbridge_wire::render(&Outcome::Deny(Denial::InvalidToken), "api");
//! assert_eq!(answer.status, 200);
//! assert_eq!(answer.body["active"], false);
//! ```

#![forbid(unsafe_code)]

use serde_json::{Map, Value, json};
use tokenbridge_core::{Outcome, Request, Route, rfc3339};

/// Why a payload is not one the gateway sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body is not a JSON object")]
    NotAnObject,
    #[error("unknown authorizer type {0:?}; expected \"TOKEN\" or \"USER_DEFINED\"")]
    UnknownType(String),
    #[error("\"data\" of a USER_DEFINED payload must be an object")]
    BadData,
    #[error("\"token\" of a TOKEN payload must be a string")]
    BadToken,
}

/// An answer for the gateway: the socket status (200 for a decision, 502 when none could be
/// made) and the JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

/// Reads a gateway payload. `token_argument` names the USER_DEFINED argument that holds the
/// credential; every other argument is kept in the route for policies.
pub fn parse(body: &[u8], token_argument: &str) -> Result<Request, PayloadError> {
    let payload: Value = serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.describe_without_input()))?;
    parse_value(&payload, token_argument)
}

/// [`parse`] for a payload already read as JSON.
pub fn parse_value(payload: &Value, token_argument: &str) -> Result<Request, PayloadError> {
    let Value::Object(payload) = payload else { return Err(PayloadError::NotAnObject) };
    match payload.get("type").and_then(Value::as_str) {
        Some("TOKEN") => match payload.get("token") {
            None | Some(Value::Null) => Ok(Request::default()),
            Some(Value::String(t)) => Ok(Request::bearer(t.as_str())),
            Some(_) => Err(PayloadError::BadToken),
        },
        Some("USER_DEFINED") => {
            let Some(Value::Object(data)) = payload.get("data") else { return Err(PayloadError::BadData) };
            Ok(user_defined(data, token_argument))
        }
        other => Err(PayloadError::UnknownType(other.map_or_else(|| "<missing>".into(), str::to_string))),
    }
}

/// Arguments arrive as strings, or as arrays when their source is multi-valued: the first
/// element counts. Anything else is not an argument the gateway sends, and is left out.
fn user_defined(data: &Map<String, Value>, token_argument: &str) -> Request {
    let mut args: std::collections::BTreeMap<String, String> = data
        .iter()
        .filter_map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Array(items) => items.first()?.as_str()?.to_string(),
                _ => return None,
            };
            Some((k.clone(), v))
        })
        .collect();
    let credential = args.remove(token_argument);
    // The route, for per-route policies, when the deployment passes it as arguments. OCI's
    // path parameters (`request.path[rest]`) come without their leading `/`.
    let path = args.get("path").map(|p| if p.starts_with('/') { p.clone() } else { format!("/{p}") });
    // A DPoP proof (RFC 9449), mapped from `request.headers[DPoP]`.
    let dpop = args.remove("dpop");
    let route = Route { method: args.get("method").cloned(), path, args };
    Request { credential, route, dpop, ..Request::default() }
}

/// Renders an outcome as the gateway expects it.
pub fn render(outcome: &Outcome, realm: &str) -> Answer {
    let body = Body::of(outcome, realm);
    // Serialising strings, numbers and string maps cannot fail.
    Answer { status: body.status(), body: serde_json::to_value(&body).unwrap_or(Value::Null) }
}

/// [`render`], written as one line of JSON straight to `out` (no intermediate [`Value`]); returns
/// the status.
pub fn write(outcome: &Outcome, realm: &str, out: &mut (impl std::io::Write + ?Sized)) -> std::io::Result<u16> {
    let body = Body::of(outcome, realm);
    serde_json::to_writer(&mut *out, &body)?;
    out.write_all(b"\n")?;
    Ok(body.status())
}

/// An answer's body, borrowed from the outcome it renders.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Body<'a> {
    #[serde(rename_all = "camelCase")]
    Allow {
        active: bool,
        principal: &'a str,
        scope: &'a [String],
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<&'a str>,
        expires_at: String,
        context: &'a std::collections::BTreeMap<String, String>,
    },
    #[serde(rename_all = "camelCase")]
    Deny { active: bool, www_authenticate: String },
    #[serde(rename_all = "camelCase")]
    Unavailable {
        error: &'static str,
        cause: String,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
}

impl<'a> Body<'a> {
    fn of(outcome: &'a Outcome, realm: &str) -> Self {
        match outcome {
            Outcome::Allow(grant) => Body::Allow {
                active: true,
                principal: &grant.principal,
                scope: &grant.scopes,
                client_id: grant.client_id.as_deref(),
                expires_at: rfc3339(grant.expires_at),
                context: &grant.context,
            },
            Outcome::Deny(denial) => Body::Deny { active: false, www_authenticate: denial.challenge(realm) },
            Outcome::Unavailable(cause) => Body::Unavailable {
                error: "unavailable",
                cause: cause.code(),
                message: cause.to_string(),
                retry_after: cause.retry_after,
            },
        }
    }

    /// 200 for a decision, 502 when none could be made.
    fn status(&self) -> u16 {
        match self {
            Body::Unavailable { .. } => 502,
            _ => 200,
        }
    }
}

/// The answer to a payload that could not be read: no decision, so 502 like any other failure
/// (the gateway then answers 502 and the function instance lives on).
pub fn render_payload_error(error: &PayloadError) -> Answer {
    Answer { status: 502, body: json!({ "error": "invalid_payload", "message": error.to_string() }) }
}

trait DescribeWithoutInput {
    fn describe_without_input(&self) -> String;
}

impl DescribeWithoutInput for serde_json::Error {
    /// serde_json's message without the input it quotes, which could be a token.
    fn describe_without_input(&self) -> String {
        let kind = match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "unexpected end of input",
        };
        format!("{kind} at line {} column {}", self.line(), self.column())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tokenbridge_core::{Cause, Denial, Dependency, Failure, Grant};

    #[test]
    fn token_payload_carries_the_header_value() {
        let r = parse(br#"{"type":"TOKEN","token":"Bearer abc"}"#, "token").unwrap();
        assert_eq!(r.credential.as_deref(), Some("Bearer abc"));
    }

    #[test]
    fn token_payload_without_token_is_a_request_without_credential() {
        assert_eq!(parse(br#"{"type":"TOKEN"}"#, "token").unwrap().credential, None);
    }

    #[test]
    fn user_defined_takes_the_named_argument_and_keeps_the_others() {
        let r = parse(
            br#"{"type":"USER_DEFINED","data":{"auth":["Bearer abc","Bearer other"],"path":"/orders","n":5}}"#,
            "auth",
        )
        .unwrap();
        assert_eq!(r.credential.as_deref(), Some("Bearer abc"));
        assert_eq!(r.route.args.get("path").map(String::as_str), Some("/orders"));
        assert_eq!(r.route.path.as_deref(), Some("/orders"), "the path argument is the route's path");
        assert!(!r.route.args.contains_key("auth"));
        assert!(!r.route.args.contains_key("n"));
    }

    #[test]
    fn a_path_parameter_without_its_slash_is_a_path() {
        let r = parse(br#"{"type":"USER_DEFINED","data":{"token":"Bearer abc","path":"orders/7"}}"#, "token").unwrap();
        assert_eq!(r.route.path.as_deref(), Some("/orders/7"));
    }

    #[test]
    fn payloads_the_gateway_never_sends_are_errors() {
        assert!(matches!(parse(b"nope", "token"), Err(PayloadError::NotJson(_))));
        assert_eq!(parse(b"[]", "token").unwrap_err(), PayloadError::NotAnObject);
        assert_eq!(parse(br#"{"type":"REQUEST"}"#, "token").unwrap_err(), PayloadError::UnknownType("REQUEST".into()));
        assert_eq!(parse(br#"{"token":"x"}"#, "token").unwrap_err(), PayloadError::UnknownType("<missing>".into()));
        assert_eq!(parse(br#"{"type":"USER_DEFINED","data":"x"}"#, "token").unwrap_err(), PayloadError::BadData);
        assert_eq!(parse(br#"{"type":"TOKEN","token":1}"#, "token").unwrap_err(), PayloadError::BadToken);
    }

    #[test]
    fn json_errors_do_not_quote_the_input() {
        let err = parse(br#"{"type":"TOKEN","token":"Bearer s3cr3t"#, "token").unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
    }

    #[test]
    fn allow_renders_the_gateway_fields() {
        let mut context = BTreeMap::new();
        context.insert("back_end_token".to_string(), "Bearer b".to_string());
        let grant = Grant {
            principal: "alice".into(),
            scopes: vec!["read".into()],
            client_id: Some("app".into()),
            expires_at: 1_800_000_000,
            context,
        };
        let a = render(&Outcome::Allow(grant), "api");
        assert_eq!(a.status, 200);
        assert_eq!(
            a.body,
            json!({"active":true,"principal":"alice","scope":["read"],"clientId":"app",
                   "expiresAt":"2027-01-15T08:00:00Z","context":{"back_end_token":"Bearer b"}})
        );
    }

    #[test]
    fn deny_renders_an_rfc6750_challenge() {
        let a = render(&Outcome::Deny(Denial::InsufficientScope { required: vec!["write".into()] }), "api");
        assert_eq!(
            a.body,
            json!({"active":false,"wwwAuthenticate":"Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"write\""})
        );
    }

    #[test]
    fn unavailable_is_a_502_naming_the_cause() {
        let mut cause = Cause::new(Dependency::BackendToken, Failure::Status(503));
        cause.retry_after = Some(7);
        let a = render(&Outcome::Unavailable(cause), "api");
        assert_eq!(a.status, 502);
        assert_eq!(a.body["error"], "unavailable");
        assert_eq!(a.body["cause"], "backend_token_bad_status");
        assert_eq!(a.body["retryAfter"], 7);
        assert!(a.body.get("active").is_none());
    }

    #[test]
    fn written_answers_are_the_rendered_ones() {
        let mut context = BTreeMap::new();
        context.insert("back_end_token".to_string(), "Bearer b\"\n".to_string());
        let grant = Grant { principal: "al\u{e9}".into(), scopes: vec![], client_id: None, expires_at: 0, context };
        let mut cause = Cause::new(Dependency::Introspection, Failure::Timeout);
        cause.retry_after = Some(3);
        for outcome in [Outcome::Allow(grant), Outcome::Deny(Denial::MissingToken), Outcome::Unavailable(cause)] {
            let mut line = Vec::new();
            let status = write(&outcome, "api", &mut line).unwrap();
            let rendered = render(&outcome, "api");
            assert_eq!(status, rendered.status);
            assert!(line.ends_with(b"\n") && line.iter().filter(|&&b| b == b'\n').count() == 1);
            assert_eq!(serde_json::from_slice::<Value>(&line).unwrap(), rendered.body);
        }
    }
}
