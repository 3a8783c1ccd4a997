//! API Gateway Lambda authorizer events in, authorizer answers out (docs/lambda.md), as pure
//! functions: every form the gateway sends, each answered in that form's own terms.

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequest, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerResponse, ApiGatewayV2CustomAuthorizerIamPolicyResponse,
    ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use lambda_runtime::Diagnostic;
use serde_json::{Map, Value, json};
use tokenbridge_core::{Denial, Grant, Outcome, Request, Route, RouteDecision, RouteGrant};

use crate::iam::{self, Served};

/// The form of an authorizer event, which decides the form of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// REST API, `TOKEN` or `REQUEST`: an IAM policy for this ARN.
    Iam { arn: String },
    /// HTTP API payload 2.0 with simple responses.
    Simple,
    /// An HTTP API answered with an IAM policy for this ARN: payload 1.0 always (AWS takes no
    /// other answer there), payload 2.0 when configured.
    HttpIam { arn: String },
}

/// How to answer, from the adapter's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Allow policies cover the whole stage (`…/{stage}/*/*`), so the gateway's authorizer cache
    /// stays right across methods; `false` allows only the ARN called.
    pub stage_wide: bool,
    /// Answer HTTP API 2.0 events with an IAM policy instead of the simple form.
    pub http_iam: bool,
    /// On HTTP APIs (payload 1.0 and 2.0), answer an invalid token with the `Unauthorized` error
    /// (401 on REST APIs; not documented for HTTP APIs) instead of the documented "not
    /// authorized" (403).
    pub http_unauthorized_error: bool,
    /// REST answers cover every route of the policy (`TOKENBRIDGE_LAMBDA_POLICY_RESOURCE=routes`):
    /// Allow for the routes the token may call, Deny for the others ([`crate::iam`]), when the
    /// engine is asked with [`tokenbridge_core::Engine::decide_routes`].
    pub route_table: bool,
    /// The realm of the RFC 6750 challenge in a Deny's context (`wwwAuthenticate`).
    pub realm: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            stage_wide: true,
            http_iam: false,
            http_unauthorized_error: false,
            route_table: false,
            realm: "tokenbridge".into(),
        }
    }
}

/// The largest authorizer answer tokenbridge gives: 8 KB, the one result size AWS documents
/// ("AWS Lambda authorizer result size" in "Quotas for configuring and running a WebSocket in
/// API Gateway"; the REST API quotas name none). A larger route policy falls back to the method
/// ARN alone.
pub const MAX_ANSWER_BYTES: usize = 8192;

/// Why an event is not one API Gateway sends to an authorizer. Never quotes a value of the
/// event, which could be the caller's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEvent(pub String);

/// Reads an authorizer event of any form.
pub fn parse(event: Value, options: &Options) -> Result<(Request, Form), BadEvent> {
    let field = |k: &str| event.get(k).and_then(Value::as_str);
    match (field("version"), field("type")) {
        (Some("2.0"), _) => http_v2(&event, options),
        (Some("1.0"), Some("REQUEST")) => http_v1(&event),
        (_, Some("TOKEN")) => rest_token(&event),
        (_, Some("REQUEST")) => rest_request(&event),
        (_, other) => Err(BadEvent(format!("unknown authorizer event type {}", shown_type(other)))),
    }
}

/// REST `TOKEN`: the token source's value, and the route of the method ARN.
fn rest_token(event: &Value) -> Result<(Request, Form), BadEvent> {
    let e: ApiGatewayCustomAuthorizerRequest = read(event, "a TOKEN authorizer event")?;
    let arn = e.method_arn.ok_or_else(|| BadEvent("a TOKEN event without methodArn".into()))?;
    let route = route_of_method_arn(&arn);
    Ok((Request { credential: e.authorization_token, route, ..Request::default() }, Form::Iam { arn }))
}

/// REST `REQUEST`: the `Authorization` header, and the route of the method ARN. Not `path`,
/// which holds a custom domain's base path (`/v1/orders/7`) where the ARN has just the resource.
fn rest_request(event: &Value) -> Result<(Request, Form), BadEvent> {
    let e: ApiGatewayCustomAuthorizerRequestTypeRequest = read(event, "a REQUEST authorizer event")?;
    let arn = e.method_arn.ok_or_else(|| BadEvent("a REQUEST event without methodArn".into()))?;
    let route = route_of_method_arn(&arn);
    let credential = header(&e.headers, "authorization");
    let dpop = dpop_proof(&e.headers, &e.multi_value_headers);
    let identity = e.request_context.identity.as_ref();
    let pem = identity.and_then(|i| i.client_cert.as_ref()).and_then(|c| c.client_cert_pem.as_deref());
    let client_certificate = certificate(pem);
    let trace = traceparent(&e.headers);
    Ok((Request { credential, route, dpop, client_certificate, trace, ..Request::default() }, Form::Iam { arn }))
}

/// A W3C trace context in the event's headers.
fn traceparent(headers: &aws_lambda_events::http::HeaderMap) -> tokenbridge_core::TraceContext {
    header(headers, "traceparent").map(|t| tokenbridge_core::TraceContext::from_traceparent(&t)).unwrap_or_default()
}

/// The `DPoP` proof header (RFC 9449). More than one is an empty proof, which its check refuses
/// (§4.3: one DPoP header only).
fn dpop_proof(
    headers: &aws_lambda_events::http::HeaderMap,
    multi: &aws_lambda_events::http::HeaderMap,
) -> Option<String> {
    let all = if multi.contains_key("dpop") { multi } else { headers };
    let mut values = all.get_all("dpop").iter();
    match (values.next(), values.next()) {
        (None, _) => None,
        (Some(value), None) => Some(value.to_str().unwrap_or_default().to_string()),
        (Some(_), Some(_)) => Some(String::new()),
    }
}

/// The mutual TLS client certificate API Gateway verified (RFC 8705 §3 binding): API Gateway
/// terminates the TLS connection itself, so the event's certificate is API Gateway's word.
fn certificate(pem: Option<&str>) -> Option<tokenbridge_core::ClientCertificate> {
    pem.and_then(|pem| tokenbridge_core::ClientCertificate::from_pem(pem).ok())
}

/// The fields HTTP API payload 1.0 adds to REST's `REQUEST` event: the identity sources' values,
/// comma-joined in one string (both fields hold the same).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpV1Identity {
    identity_source: Option<String>,
    authorization_token: Option<String>,
}

/// HTTP API payload 1.0: the first identity source, else the `Authorization` header; the
/// request's path without the stage.
fn http_v1(event: &Value) -> Result<(Request, Form), BadEvent> {
    const WHAT: &str = "an HTTP API 1.0 authorizer event";
    let e: ApiGatewayCustomAuthorizerRequestTypeRequest = read(event, WHAT)?;
    let identity: HttpV1Identity = read(event, WHAT)?;
    let arn = e.method_arn.ok_or_else(|| BadEvent(format!("{WHAT} without methodArn")))?;
    let mut route = route_of_method_arn(&arn);
    if let Some(method) = e.http_method {
        route.method = Some(method.to_string());
    }
    if let Some(path) = e.path.as_deref() {
        route.path = Some(without_stage(path, e.request_context.stage.as_deref()));
    }
    let credential = identity
        .identity_source
        .or(identity.authorization_token)
        .filter(|s| !s.is_empty())
        .map(|joined| first_identity_source(&joined))
        .or_else(|| header(&e.headers, "authorization"));
    let dpop = dpop_proof(&e.headers, &e.multi_value_headers);
    let caller = e.request_context.identity.as_ref();
    let client_certificate =
        certificate(caller.and_then(|i| i.client_cert.as_ref()).and_then(|c| c.client_cert_pem.as_deref()));
    let trace = traceparent(&e.headers);
    Ok((Request { credential, route, dpop, client_certificate, trace, ..Request::default() }, Form::HttpIam { arn }))
}

/// The first of comma-joined identity source values, like `identitySource[0]` of payload 2.0
/// (with `$context.routeKey` as second source: `Bearer abc,GET /orders`). A bearer token holds
/// no comma (RFC 6750 §2.1), so the split never cuts one.
fn first_identity_source(joined: &str) -> String {
    joined.split(',').next().unwrap_or_default().to_string()
}

/// HTTP API payload 2.0: `identitySource[0]`, else the `authorization` header; the request's
/// path without the stage.
fn http_v2(event: &Value, options: &Options) -> Result<(Request, Form), BadEvent> {
    let e: ApiGatewayV2CustomAuthorizerV2Request = read(event, "an HTTP API 2.0 authorizer event")?;
    let credential =
        e.identity_source.as_ref().and_then(|s| s.first().cloned()).or_else(|| header(&e.headers, "authorization"));
    let stage = e.request_context.stage.as_deref();
    let path = e.raw_path.as_deref().or(e.request_context.http.path.as_deref()).map(|p| without_stage(p, stage));
    let route = Route { method: Some(e.request_context.http.method.to_string()), path, ..Route::default() };
    let arn = e.route_arn.unwrap_or_default();
    let form = if options.http_iam { Form::HttpIam { arn } } else { Form::Simple };
    // Payload 2.0 joins repeated headers with commas: two proofs make one that fails its check.
    let dpop = header(&e.headers, "dpop");
    let authentication = e.request_context.authentication.as_ref();
    let pem = authentication.and_then(|a| a.client_cert.as_ref()).and_then(|c| c.client_cert_pem.as_deref());
    let client_certificate = certificate(pem);
    let trace = traceparent(&e.headers);
    Ok((Request { credential, route, dpop, client_certificate, trace, ..Request::default() }, form))
}

/// HTTP APIs put a named stage in front of the path (`/dev/admin/x` on stage `dev`; the
/// `$default` stage adds nothing). Route policies are written without it, so left in, the
/// path would match no route and fall to the default rule.
fn without_stage(path: &str, stage: Option<&str>) -> String {
    let rest = stage
        .filter(|s| !s.is_empty() && *s != "$default")
        .and_then(|stage| path.strip_prefix('/')?.strip_prefix(stage));
    match rest {
        Some("") => "/".to_string(),
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => path.to_string(),
    }
}

/// Reads an event as `T`. A mismatch is told by where it is and what was expected, never by the
/// value found: serde quotes it (`invalid type: string "Bearer …"`), and it may be the token.
fn read<'a, T: serde::Deserialize<'a>>(event: &'a Value, what: &str) -> Result<T, BadEvent> {
    serde_path_to_error::deserialize(event).map_err(|e| BadEvent(format!("not {what}: {}", describe_without_input(&e))))
}

/// serde's kind of mismatch and what it expected, with the path of the field: the parts of its
/// message that come from the types, not from the input.
fn describe_without_input(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let message = error.inner().to_string();
    let named_field = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
        .is_some_and(|name| name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    let what = if named_field {
        message.clone()
    } else if let Some(kind) =
        ["invalid type", "invalid value", "invalid length"].into_iter().find(|k| message.starts_with(k))
    {
        // The last ", expected " is serde's own: the input comes before it, quoted.
        let expected = message.rfind(", expected ").map_or("", |i| &message[i..]);
        format!("{kind}{expected}")
    } else {
        "unexpected data".to_string()
    };
    let path = error.path();
    if path.iter().next().is_some() { format!("{path}: {what}") } else { what }
}

/// An unknown type is named when it reads like one (`COGNITO`), not when it could be a value the
/// caller chose.
fn shown_type(kind: Option<&str>) -> String {
    match kind {
        None => "<missing>".to_string(),
        Some(kind) if kind.len() <= 32 && kind.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') => {
            format!("{kind:?}")
        }
        Some(_) => "<not shown>".to_string(),
    }
}

/// A header value by name, case-insensitively (REST API headers keep the client's case).
fn header(headers: &aws_lambda_events::http::HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// `arn:aws:execute-api:{region}:{account}:{api}/{stage}/{VERB}/{path…}` → method and path.
pub fn route_of_method_arn(arn: &str) -> Route {
    let mut parts = arn.split_once('/').map_or("", |(_, rest)| rest).splitn(3, '/');
    let _stage = parts.next();
    let method = parts.next().filter(|m| !m.is_empty()).map(str::to_string);
    let path = parts.next().map(|p| format!("/{p}"));
    Route { method, path, ..Route::default() }
}

/// The ARN an allow covers: the whole stage (`…/{stage}/*/*`) or just the one called. `None`
/// when just the one called cannot be written: IAM reads `*` and `?` in a resource as
/// wildcards, and API Gateway builds the method ARN's verb and path from the request, so such
/// a character there would allow, from the gateway's cache, routes never decided on.
pub fn policy_resource(arn: &str, stage_wide: bool) -> Option<String> {
    let mut parts = arn.splitn(3, '/');
    let (api, stage, called) = (parts.next(), parts.next(), parts.next());
    match (api, stage) {
        (Some(api), Some(stage)) if stage_wide && !api.is_empty() && !stage.is_empty() => {
            Some(format!("{api}/{stage}/*/*"))
        }
        _ if called.is_some_and(|c| c.contains(['*', '?'])) => None,
        _ => Some(arn.to_string()),
    }
}

/// Whether `render_routes` can use a route decision: REST events, when route policies are on.
pub fn wants_routes(form: &Form, options: &Options) -> bool {
    options.route_table && matches!(form, Form::Iam { .. })
}

/// The answer to a route decision ([`tokenbridge_core::Engine::decide_routes`]): on REST APIs
/// with [`Options::route_table`], one policy for every route of the token; else, or when that
/// policy cannot be had (no grant to carry, a Resource or the answer too long), [`render`]'s.
pub fn render_routes(decision: &RouteDecision, form: &Form, options: &Options) -> Result<Value, Diagnostic> {
    if let Form::Iam { arn } = form
        && options.route_table
        && let Some(answer) = route_answer(decision, arn, options)
    {
        return Ok(answer);
    }
    render(&decision.outcome, form, options)
}

/// The policy for every route, with the grant it can serve in its context.
fn route_answer(decision: &RouteDecision, arn: &str, options: &Options) -> Option<Value> {
    let carried = decision.context.as_ref()?;
    let allow = match &decision.outcome {
        Outcome::Allow(_) => true,
        Outcome::Deny(Denial::InsufficientScope { .. }) => false,
        _ => return None,
    };
    let served = Served { backend: carried.backend, introspected: carried.introspected };
    let policy = iam::route_policy(arn, &decision.routes, served)?;
    // The ARN called is decided as the engine decided it, or the method ARN alone answers.
    if policy.allows(arn) != allow {
        return None;
    }
    let answer = route_policy_answer(policy, carried, &options.realm)?;
    (answer.to_string().len() <= MAX_ANSWER_BYTES).then_some(answer)
}

fn route_policy_answer(policy: iam::RoutePolicy, carried: &RouteGrant, realm: &str) -> Option<Value> {
    let mut statements = vec![statement(IamPolicyEffect::Allow, policy.allow)];
    if !policy.deny.is_empty() {
        statements.push(statement(IamPolicyEffect::Deny, policy.deny));
    }
    let mut document = ApiGatewayCustomAuthorizerPolicy::default();
    document.version = Some("2012-10-17".into());
    document.statement = statements;
    let mut context = context(&carried.grant);
    if let Value::Object(map) = &mut context {
        // Every route the cached answer denies shares this context: a challenge naming no scope.
        let challenge = Denial::InsufficientScope { required: Vec::new() }.challenge(realm);
        map.insert("wwwAuthenticate".into(), json!(challenge));
    }
    let mut r = ApiGatewayCustomAuthorizerResponse::<Value>::default();
    r.principal_id = Some(carried.grant.principal.clone());
    r.policy_document = document;
    r.context = context;
    to_json(&r).ok()
}

fn statement(effect: IamPolicyEffect, resources: Vec<String>) -> IamPolicyStatement {
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".into()];
    statement.effect = effect;
    statement.resource = resources;
    statement
}

/// An IAM answer's effect and resource: an allow that cannot be written for just the ARN
/// called is answered as a deny of it (which, wildcards and all, only denies more).
fn iam_answer(outcome: &Outcome, arn: &str, options: &Options) -> (String, IamPolicyEffect, Value, String) {
    let (principal, effect, context) = iam_parts(outcome, &options.realm);
    match (effect, policy_resource(arn, options.stage_wide)) {
        (IamPolicyEffect::Allow, None) => ("unauthorized".into(), IamPolicyEffect::Deny, json!({}), arn.to_string()),
        (effect, resource) => (principal, effect, context, resource.unwrap_or_else(|| arn.to_string())),
    }
}

/// The answer to give API Gateway: a JSON response, or an error it maps to a status.
pub fn render(outcome: &Outcome, form: &Form, options: &Options) -> Result<Value, Diagnostic> {
    // Every 401 denial (a missing or invalid token, a DPoP proof refused): API Gateway's 401.
    let refused = matches!(outcome, Outcome::Deny(denial) if denial.http_status() == 401);
    match (outcome, form) {
        // REST APIs answer 401 to an error whose message is exactly "Unauthorized".
        (_, Form::Iam { .. }) if refused => Err(unauthorized()),
        (_, Form::Simple | Form::HttpIam { .. }) if refused && options.http_unauthorized_error => Err(unauthorized()),
        (Outcome::Unavailable(cause), _) => Err(Diagnostic {
            error_type: "Unavailable".into(),
            error_message: format!("tokenbridge could not decide: {} ({cause})", cause.code()),
        }),
        (Outcome::Allow(grant), Form::Simple) => {
            let mut r = ApiGatewayV2CustomAuthorizerSimpleResponse::<Value>::default();
            r.is_authorized = true;
            r.context = context(grant);
            to_json(&r)
        }
        (Outcome::Deny(_), Form::Simple) => {
            let mut r = ApiGatewayV2CustomAuthorizerSimpleResponse::<Value>::default();
            r.is_authorized = false;
            r.context = json!({});
            to_json(&r)
        }
        (outcome, Form::Iam { arn }) => {
            let (principal, effect, context, resource) = iam_answer(outcome, arn, options);
            let mut r = ApiGatewayCustomAuthorizerResponse::<Value>::default();
            r.principal_id = Some(principal);
            r.policy_document = policy(effect, &resource);
            r.context = context;
            to_json(&r)
        }
        (outcome, Form::HttpIam { arn }) => {
            let (principal, effect, context, resource) = iam_answer(outcome, arn, options);
            let mut r = ApiGatewayV2CustomAuthorizerIamPolicyResponse::<Value>::default();
            r.principal_id = Some(principal);
            r.policy_document = policy(effect, &resource);
            r.context = context;
            to_json(&r)
        }
    }
}

fn unauthorized() -> Diagnostic {
    Diagnostic { error_type: "Unauthorized".into(), error_message: "Unauthorized".into() }
}

fn iam_parts(outcome: &Outcome, realm: &str) -> (String, IamPolicyEffect, Value) {
    match outcome {
        Outcome::Allow(grant) => (grant.principal.clone(), IamPolicyEffect::Allow, context(grant)),
        // Insufficient scope: a Deny policy, which API Gateway answers with 403; the challenge
        // for a gateway response to send as `WWW-Authenticate`.
        Outcome::Deny(denial @ Denial::InsufficientScope { .. }) => {
            ("unauthorized".into(), IamPolicyEffect::Deny, json!({"wwwAuthenticate": denial.challenge(realm)}))
        }
        _ => ("unauthorized".into(), IamPolicyEffect::Deny, json!({})),
    }
}

fn policy(effect: IamPolicyEffect, resource: &str) -> ApiGatewayCustomAuthorizerPolicy {
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".into());
    policy.statement = vec![statement(effect, vec![resource.into()])];
    policy
}

/// Context values are strings only (API Gateway refuses objects and arrays): the grant's context
/// (backend token, forwarded claims), the principal, the scopes joined by spaces, the client id.
fn context(grant: &Grant) -> Value {
    // Forwarded claims never take these names (configuration refuses it); were one to, the
    // grant's own value still wins.
    let mut map: Map<String, Value> = grant.context.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    map.insert("principal".into(), json!(grant.principal));
    map.insert("scope".into(), json!(grant.scopes.join(" ")));
    match &grant.client_id {
        Some(client_id) => map.insert("client_id".into(), json!(client_id)),
        None => map.remove("client_id"),
    };
    map.insert("expires_at".into(), json!(tokenbridge_core::rfc3339(grant.expires_at)));
    Value::Object(map)
}

/// The answer as JSON, without the `null`s of unset optional fields (`usageIdentifierKey`),
/// which API Gateway has no use for.
fn to_json(response: &impl serde::Serialize) -> Result<Value, Diagnostic> {
    let mut value = serde_json::to_value(response).map_err(|_| Diagnostic {
        error_type: "Unavailable".into(),
        error_message: "tokenbridge could not write its answer".into(),
    })?;
    if let Value::Object(fields) = &mut value {
        fields.retain(|_, v| !v.is_null());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tokenbridge_core::{Cause, Denial, Dependency, Failure};

    const ARN: &str = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/orders/7";

    fn grant() -> Grant {
        let mut context = BTreeMap::new();
        context.insert("back_end_token".to_string(), "Bearer b".to_string());
        Grant {
            principal: "alice".into(),
            scopes: vec!["a".into(), "b".into()],
            client_id: Some("app".into()),
            expires_at: 1_800_000_000,
            context,
        }
    }

    fn token_event() -> Value {
        json!({"type": "TOKEN", "authorizationToken": "Bearer abc", "methodArn": ARN})
    }

    #[test]
    fn a_token_event_carries_its_token_and_route() {
        let (request, form) = parse(token_event(), &Options::default()).unwrap();
        assert_eq!(request.credential.as_deref(), Some("Bearer abc"));
        assert_eq!(request.route.method.as_deref(), Some("GET"));
        assert_eq!(request.route.path.as_deref(), Some("/orders/7"));
        assert_eq!(form, Form::Iam { arn: ARN.into() });
    }

    #[test]
    fn a_request_event_reads_the_authorization_header_in_any_case() {
        let event = json!({"type": "REQUEST", "methodArn": ARN, "path": "/orders/7", "httpMethod": "GET",
                           "headers": {"AUTHORIZATION": "Bearer xyz"}, "requestContext": {"resourcePath": "/orders/{id}"}});
        let (request, _) = parse(event, &Options::default()).unwrap();
        assert_eq!(request.credential.as_deref(), Some("Bearer xyz"));
    }

    #[test]
    fn an_http_v2_event_takes_the_identity_source_and_answers_simply() {
        let event = json!({"version": "2.0", "type": "REQUEST", "routeArn": ARN, "identitySource": ["Bearer v2"],
                           "routeKey": "GET /orders/{id}", "rawPath": "/orders/7", "headers": {"authorization": "Bearer other"},
                           "requestContext": {"http": {"method": "GET", "path": "/orders/7"}}});
        let (request, form) = parse(event.clone(), &Options::default()).unwrap();
        assert_eq!(request.credential.as_deref(), Some("Bearer v2"));
        assert_eq!(request.route.path.as_deref(), Some("/orders/7"));
        assert_eq!(form, Form::Simple);
        let iam = Options { http_iam: true, ..Options::default() };
        assert_eq!(parse(event, &iam).unwrap().1, Form::HttpIam { arn: ARN.into() });
    }

    fn http_v1_event(identity_source: &str, path: &str, stage: &str) -> Value {
        json!({"version": "1.0", "type": "REQUEST", "methodArn": ARN, "identitySource": identity_source,
               "authorizationToken": identity_source, "resource": "/orders/{id}", "path": path, "httpMethod": "GET",
               "headers": {"Authorization": "Bearer from-header"}, "requestContext": {"stage": stage}})
    }

    fn http_v2_event(raw_path: &str, stage: &str) -> Value {
        json!({"version": "2.0", "type": "REQUEST", "routeArn": ARN, "identitySource": ["Bearer v2"],
               "routeKey": "ANY /{proxy+}", "rawPath": raw_path, "headers": {},
               "requestContext": {"stage": stage, "http": {"method": "GET", "path": raw_path}}})
    }

    #[test]
    fn an_http_v1_event_takes_the_identity_source_and_is_answered_with_a_policy() {
        let (request, form) = parse(http_v1_event("Bearer v1", "/orders/7", "$default"), &Options::default()).unwrap();
        assert_eq!(request.credential.as_deref(), Some("Bearer v1"));
        assert_eq!((request.route.method.as_deref(), request.route.path.as_deref()), (Some("GET"), Some("/orders/7")));
        assert_eq!(form, Form::HttpIam { arn: ARN.into() });
    }

    #[test]
    fn an_http_v1_event_takes_the_first_of_several_identity_sources() {
        let (request, _) =
            parse(http_v1_event("Bearer v1,GET /orders/{id}", "/orders/7", "prod"), &Options::default()).unwrap();
        assert_eq!(request.credential.as_deref(), Some("Bearer v1"));
    }

    #[test]
    fn an_http_v1_event_without_identity_source_reads_the_authorization_header() {
        let mut event = http_v1_event("", "/orders/7", "prod");
        event.as_object_mut().unwrap().remove("authorizationToken");
        let (request, _) = parse(event, &Options::default()).unwrap();
        assert_eq!(request.credential.as_deref(), Some("Bearer from-header"));
    }

    #[test]
    fn http_api_paths_lose_a_named_stage_before_route_policies_see_them() {
        let path = |event| parse(event, &Options::default()).unwrap().0.route.path.unwrap();
        assert_eq!(path(http_v2_event("/dev/admin/x", "dev")), "/admin/x");
        assert_eq!(path(http_v2_event("/dev", "dev")), "/");
        assert_eq!(path(http_v2_event("/devices/1", "dev")), "/devices/1", "only a whole segment is the stage");
        assert_eq!(path(http_v2_event("/admin/x", "$default")), "/admin/x");
        assert_eq!(path(http_v1_event("Bearer v1", "/prod/admin/x", "prod")), "/admin/x");
        let mut without_raw_path = http_v2_event("/prod/admin/x", "prod");
        without_raw_path.as_object_mut().unwrap().remove("rawPath");
        assert_eq!(path(without_raw_path), "/admin/x");
    }

    #[test]
    fn a_rest_request_event_routes_by_the_method_arn_not_a_custom_domain_path() {
        let event = json!({"type": "REQUEST", "methodArn": ARN, "path": "/v1/orders/7", "httpMethod": "GET",
                           "headers": {}, "requestContext": {"stage": "prod", "path": "/v1/orders/7"}});
        let (request, _) = parse(event, &Options::default()).unwrap();
        assert_eq!((request.route.method.as_deref(), request.route.path.as_deref()), (Some("GET"), Some("/orders/7")));
    }

    #[test]
    fn bad_events_are_described_without_the_values_in_them() {
        let cases = [
            json!({"version": "2.0", "type": "REQUEST", "identitySource": "Bearer s3cr3t", "requestContext": {}}),
            json!({"version": "1.0", "type": "REQUEST", "methodArn": ARN, "identitySource": ["Bearer s3cr3t"],
                   "requestContext": {}}),
            json!({"type": "TOKEN", "authorizationToken": ["Bearer s3cr3t"], "methodArn": ARN}),
            json!({"type": "REQUEST", "methodArn": ARN, "headers": "Bearer s3cr3t", "requestContext": {}}),
            json!({"type": "Bearer s3cr3t"}),
        ];
        for event in cases {
            let BadEvent(message) = parse(event.clone(), &Options::default()).unwrap_err();
            assert!(!message.contains("s3cr3t"), "{message}");
        }
        let v2 = json!({"version": "2.0", "type": "REQUEST", "identitySource": "Bearer s3cr3t", "requestContext": {}});
        let BadEvent(message) = parse(v2, &Options::default()).unwrap_err();
        assert_eq!(message, "not an HTTP API 2.0 authorizer event: identitySource: invalid type, expected a sequence");
        let BadEvent(message) = parse(json!({"type": "COGNITO"}), &Options::default()).unwrap_err();
        assert_eq!(message, r#"unknown authorizer event type "COGNITO""#);
    }

    #[test]
    fn events_of_no_known_form_are_bad() {
        assert!(parse(json!({"type": "COGNITO"}), &Options::default()).is_err());
        assert!(parse(json!({"type": "TOKEN", "authorizationToken": "x"}), &Options::default()).is_err());
        assert!(parse(json!([1, 2]), &Options::default()).is_err());
    }

    #[test]
    fn an_allow_covers_the_whole_stage_by_default() {
        assert_eq!(
            policy_resource(ARN, true).as_deref(),
            Some("arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/*/*")
        );
        assert_eq!(policy_resource(ARN, false).as_deref(), Some(ARN));
        assert_eq!(policy_resource("garbage", true).as_deref(), Some("garbage"));
    }

    #[test]
    fn no_character_of_the_request_becomes_an_iam_wildcard_in_an_allow() {
        let method_mode = Options { stage_wide: false, ..Options::default() };
        for arn in [
            "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/orders/*",
            "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/orders/7?",
            "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/*/orders/7",
            "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/a*b/c",
        ] {
            assert_eq!(policy_resource(arn, false), None, "{arn}");
            for form in [Form::Iam { arn: arn.into() }, Form::HttpIam { arn: arn.into() }] {
                let answer = render(&Outcome::Allow(grant()), &form, &method_mode).unwrap();
                let statement = &answer["policyDocument"]["Statement"][0];
                assert_eq!(statement["Effect"], "Deny", "{arn}: {answer}");
                assert_eq!(answer["context"], json!({}), "no grant context in a deny: {answer}");
            }
        }
    }

    #[test]
    fn rest_allow_is_an_iam_policy_with_string_context() {
        let answer = render(&Outcome::Allow(grant()), &Form::Iam { arn: ARN.into() }, &Options::default()).unwrap();
        assert_eq!(answer["principalId"], "alice");
        assert_eq!(
            answer["policyDocument"],
            json!({"Version": "2012-10-17", "Statement": [{"Action": ["execute-api:Invoke"], "Effect": "Allow",
                   "Resource": ["arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/*/*"]}]})
        );
        assert!(answer.get("usageIdentifierKey").is_none(), "no nulls: {answer}");
        let context = answer["context"].as_object().unwrap();
        assert_eq!(context["back_end_token"], "Bearer b");
        assert_eq!(context["scope"], "a b");
        assert_eq!(context["client_id"], "app");
        assert!(context.values().all(Value::is_string), "{context:?}");
    }

    #[test]
    fn invalid_and_missing_tokens_are_the_unauthorized_error_on_rest_apis() {
        for denial in [Denial::InvalidToken, Denial::MissingToken] {
            let e = render(&Outcome::Deny(denial), &Form::Iam { arn: ARN.into() }, &Options::default()).unwrap_err();
            assert_eq!(e.error_message, "Unauthorized");
        }
    }

    #[test]
    fn http_apis_refuse_invalid_tokens_as_documented_unless_told_to_use_the_error() {
        let deny = Outcome::Deny(Denial::InvalidToken);
        assert_eq!(render(&deny, &Form::Simple, &Options::default()).unwrap()["isAuthorized"], false);
        let iam = render(&deny, &Form::HttpIam { arn: ARN.into() }, &Options::default()).unwrap();
        assert_eq!(iam["policyDocument"]["Statement"][0]["Effect"], "Deny");
        let error = Options { http_unauthorized_error: true, ..Options::default() };
        assert_eq!(render(&deny, &Form::Simple, &error).unwrap_err().error_message, "Unauthorized");
        let v1 = parse(http_v1_event("Bearer x", "/orders/7", "prod"), &Options::default()).unwrap().1;
        assert_eq!(
            render(&deny, &v1, &Options::default()).unwrap()["policyDocument"]["Statement"][0]["Effect"],
            "Deny"
        );
        assert_eq!(render(&deny, &v1, &error).unwrap_err().error_message, "Unauthorized");
    }

    #[test]
    fn insufficient_scope_is_a_deny_policy_or_not_authorized() {
        let deny = Outcome::Deny(Denial::InsufficientScope { required: vec!["w".into()] });
        let iam = render(&deny, &Form::Iam { arn: ARN.into() }, &Options::default()).unwrap();
        assert_eq!(iam["policyDocument"]["Statement"][0]["Effect"], "Deny");
        let simple = render(&deny, &Form::Simple, &Options::default()).unwrap();
        assert_eq!(simple["isAuthorized"], false);
    }

    #[test]
    fn unavailable_is_an_error_that_is_not_unauthorized_and_names_no_secret() {
        let e = render(
            &Outcome::Unavailable(Cause::new(Dependency::Introspection, Failure::Timeout)),
            &Form::Simple,
            &Options::default(),
        )
        .unwrap_err();
        assert_ne!(e.error_message, "Unauthorized");
        assert!(e.error_message.contains("introspection_timeout"), "{}", e.error_message);
    }

    fn routed(outcome: Outcome, doc: &str, allowed: &[usize]) -> RouteDecision {
        let policy = tokenbridge_core::Policy::from_json(doc).unwrap();
        let mut routes = policy.route_table(|_| false);
        for i in allowed {
            routes[*i].allowed = true;
        }
        let context = Some(tokenbridge_core::RouteGrant { grant: grant(), backend: None, introspected: false });
        RouteDecision { outcome, routes, context }
    }

    const ORDERS: &str = r#"{"routes": [{"method": "GET", "path": "/orders/*", "scopes": ["read"]},
                                        {"method": "DELETE", "path": "/orders/*", "scopes": ["admin"]}]}"#;

    fn routes_on() -> Options {
        Options { stage_wide: false, route_table: true, realm: "api".into(), ..Options::default() }
    }

    #[test]
    fn with_route_policies_a_rest_allow_covers_every_route_of_the_token() {
        let answer =
            render_routes(&routed(Outcome::Allow(grant()), ORDERS, &[0]), &Form::Iam { arn: ARN.into() }, &routes_on())
                .unwrap();
        let statements = answer["policyDocument"]["Statement"].as_array().unwrap();
        assert_eq!(statements[0]["Effect"], "Allow");
        assert_eq!(
            statements[0]["Resource"],
            json!([
                "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/orders/*",
                "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/HEAD/orders/*"
            ])
        );
        assert_eq!(statements[1]["Effect"], "Deny");
        let denied = statements[1]["Resource"].as_array().unwrap();
        for resource in ["DELETE/orders/*", "*/O?????/*", "*/?R????/*", "*/?????S/*"] {
            let resource = format!("arn:aws:execute-api:*:abcdef1234/prod/{resource}");
            assert!(denied.contains(&json!(resource)), "{resource}: {denied:?}");
        }
        assert_eq!(answer["context"]["back_end_token"], "Bearer b");
        assert_eq!(answer["context"]["wwwAuthenticate"], r#"Bearer realm="api", error="insufficient_scope""#);
    }

    #[test]
    fn with_route_policies_an_insufficient_scope_deny_still_allows_the_other_routes() {
        let denied = Outcome::Deny(Denial::InsufficientScope { required: vec!["admin".into()] });
        let delete = ARN.replace("/GET/", "/DELETE/");
        let answer =
            render_routes(&routed(denied, ORDERS, &[0]), &Form::Iam { arn: delete.clone() }, &routes_on()).unwrap();
        let statements = &answer["policyDocument"]["Statement"];
        assert_eq!((&statements[0]["Effect"], &statements[1]["Effect"]), (&json!("Allow"), &json!("Deny")));
        assert_eq!(answer["principalId"], "alice", "the grant the cached Allows serve");
        assert!(answer["context"]["wwwAuthenticate"].as_str().unwrap().contains("insufficient_scope"));
    }

    #[test]
    fn a_route_policy_that_would_misjudge_the_arn_called_or_grow_too_large_falls_back_to_the_method_arn() {
        // A raw `*` the core refuses, which the Allow's `*` would match.
        let starred = ARN.replace("orders/7", "orders/*");
        let denied = Outcome::Deny(Denial::InsufficientScope { required: Vec::new() });
        let answer =
            render_routes(&routed(denied, ORDERS, &[0]), &Form::Iam { arn: starred.clone() }, &routes_on()).unwrap();
        assert_eq!(
            answer["policyDocument"]["Statement"],
            json!([{"Action": ["execute-api:Invoke"], "Effect": "Deny", "Resource": [starred]}])
        );
        assert_eq!(answer["context"]["wwwAuthenticate"], r#"Bearer realm="api", error="insufficient_scope""#);
        let many: Vec<String> = (0..200).map(|i| format!(r#"{{"path": "/r{i}/*", "scopes": ["s{i}"]}}"#)).collect();
        let doc = format!(r#"{{"routes": [{}, {{"path": "/orders/*"}}]}}"#, many.join(","));
        let answer =
            render_routes(&routed(Outcome::Allow(grant()), &doc, &[200]), &Form::Iam { arn: ARN.into() }, &routes_on())
                .unwrap();
        assert_eq!(
            answer["policyDocument"]["Statement"][0]["Resource"],
            json!([ARN]),
            "over 8 KB: the method ARN alone"
        );
    }

    #[test]
    fn http_simple_allow_carries_the_context() {
        let answer = render(&Outcome::Allow(grant()), &Form::Simple, &Options::default()).unwrap();
        assert_eq!(answer["isAuthorized"], true);
        assert_eq!(answer["context"]["back_end_token"], "Bearer b");
    }
}
