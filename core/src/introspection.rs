//! RFC 7662 token introspection at IdP A: the request, and a strict reading of the answer.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::claims::{Facts, Wanted};
use crate::clock::UnixTime;
use crate::dpop::Confirmation;
use crate::outcome::Failure;
use crate::reason::Reason;

/// What validation proves about a caller token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `sub`, else `client_id`; never empty.
    pub principal: String,
    pub client_id: Option<String>,
    pub scopes: Vec<String>,
    /// The token's `exp`, when the IdP said.
    pub expires_at: Option<UnixTime>,
    /// `iss`, when known.
    pub issuer: Option<String>,
    /// `aud`, as a list.
    pub audiences: Vec<String>,
    /// The configured context claims that the token carries, as strings.
    pub claims: BTreeMap<String, String>,
    /// The values the policy's claim conditions read.
    pub facts: Facts,
    /// What the token is bound to (`cnf`), if anything (boxed: most tokens are bound to nothing,
    /// and every verdict in the cache carries this).
    pub cnf: Option<Box<Confirmation>>,
    /// Verified here from a JWT's signature, rather than by asking the IdP.
    pub verified_locally: bool,
}

/// IdP A's verdict on a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Active(Identity),
    /// Inactive, expired, not yet valid, or active without anyone to name.
    Invalid(Reason),
}

/// Reads an introspection answer. `Err` means the answer itself is unusable (Unavailable);
/// a well-formed answer that refuses the token is `Ok(Verdict::Invalid)`.
pub(crate) fn read_answer(
    status: u16,
    body: &[u8],
    now: UnixTime,
    leeway: i64,
    wanted: &Wanted,
    required_token_type: Option<&str>,
) -> Result<Verdict, Failure> {
    if status == 400 && crate::backend::error_code(body).as_deref() == Some("unsupported_token_type") {
        // The IdP does not introspect this kind of token (an ID token, say): not a credential here.
        return Ok(Verdict::Invalid(Reason::UnsupportedTokenType));
    }
    if status != 200 {
        return Err(crate::backend::failure_for_status(status, body));
    }
    let answer = crate::json::object(body).ok_or(Failure::Malformed)?;
    match answer.get("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Ok(Verdict::Invalid(Reason::Inactive)),
        _ => return Err(Failure::Malformed),
    }
    let exp = optional_time(&answer, "exp")?;
    let nbf = optional_time(&answer, "nbf")?;
    let sub = optional_string(&answer, "sub")?;
    let client_id = optional_string(&answer, "client_id")?;
    let scope = optional_string(&answer, "scope")?;
    let token_type = optional_string(&answer, "token_type")?;
    let issuer = optional_string(&answer, "iss")?;
    let audiences = audiences(&answer)?;

    // Many IdPs answer `active:true` for refresh tokens too; those are not bearer credentials.
    // Some say so in `token_type`; others only leave `token_type` out, which a configured
    // required type catches.
    let wrong_type = match (required_token_type, token_type.as_deref()) {
        (_, Some(t)) if t.to_ascii_lowercase().contains("refresh") => true,
        (Some(required), t) => !t.is_some_and(|t| t.eq_ignore_ascii_case(required)),
        (None, _) => false,
    };
    if wrong_type {
        return Ok(Verdict::Invalid(Reason::NotAnAccessToken));
    }
    if exp.is_some_and(|exp| exp.saturating_add(leeway) <= now) {
        return Ok(Verdict::Invalid(Reason::Expired));
    }
    if nbf.is_some_and(|nbf| nbf.saturating_sub(leeway) > now) {
        return Ok(Verdict::Invalid(Reason::NotYetValid));
    }
    let Some(principal) = sub.clone().or_else(|| client_id.clone()) else {
        return Ok(Verdict::Invalid(Reason::NoPrincipal));
    };
    Ok(Verdict::Active(Identity {
        principal,
        client_id,
        scopes: scope.unwrap_or_default().split_ascii_whitespace().map(str::to_string).collect(),
        expires_at: exp,
        issuer,
        audiences,
        claims: context_claims(&answer, &wanted.context),
        facts: Facts::read(&answer, &wanted.conditions),
        cnf: Confirmation::read(&answer).map_err(|()| Failure::Malformed)?,
        verified_locally: false,
    }))
}

/// `aud`: a string or an array of strings.
pub(crate) fn audiences(claims: &Map<String, Value>) -> Result<Vec<String>, Failure> {
    match claims.get("aud") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(a)) => Ok(vec![a.clone()]),
        Some(Value::Array(items)) => {
            items.iter().map(|a| a.as_str().map(str::to_string).ok_or(Failure::Malformed)).collect()
        }
        Some(_) => Err(Failure::Malformed),
    }
}

/// Whether a token's `aud` holds one of the `accepted` audiences; no accepted audiences
/// means no requirement.
pub(crate) fn audience_accepted(audiences: &[String], accepted: &[String]) -> bool {
    accepted.is_empty() || audiences.iter().any(|a| accepted.contains(a))
}

/// The named claims as context strings: text as is, numbers and booleans written out, arrays of
/// those joined by spaces; objects (and arrays holding them) are not forwarded.
pub(crate) fn context_claims(claims: &Map<String, Value>, names: &[String]) -> BTreeMap<String, String> {
    fn scalar(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    names
        .iter()
        .filter_map(|name| {
            let value = match claims.get(name)? {
                Value::Array(items) => items.iter().map(scalar).collect::<Option<Vec<_>>>()?.join(" "),
                other => scalar(other)?,
            };
            Some((name.clone(), value))
        })
        .collect()
}

/// A NumericDate: a JSON number of seconds. Fractions are cut; other types, and times before
/// 1970 or past year 9999, are malformed.
fn optional_time(answer: &Map<String, Value>, key: &str) -> Result<Option<UnixTime>, Failure> {
    match answer.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => crate::clock::numeric_date(n).map(Some).ok_or(Failure::Malformed),
        Some(_) => Err(Failure::Malformed),
    }
}

/// A string claim; empty counts as absent, other types are malformed.
fn optional_string(answer: &Map<String, Value>, key: &str) -> Result<Option<String>, Failure> {
    match answer.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Failure::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = 1_800_000_000;

    fn read(body: &str) -> Result<Verdict, Failure> {
        read_answer(200, body.as_bytes(), NOW, 30, &Wanted::default(), None)
    }

    fn active(body: &str) -> Identity {
        match read(body) {
            Ok(Verdict::Active(i)) => i,
            other => panic!("expected active, got {other:?}"),
        }
    }

    #[test]
    fn active_answer_gives_identity() {
        let i = active(r#"{"active":true,"sub":"alice","client_id":"app","scope":"read  write","exp":1800000600}"#);
        assert_eq!(i.principal, "alice");
        assert_eq!(i.client_id.as_deref(), Some("app"));
        assert_eq!(i.scopes, ["read", "write"]);
        assert_eq!(i.expires_at, Some(1_800_000_600));
    }

    #[test]
    fn principal_falls_back_to_client_id() {
        assert_eq!(active(r#"{"active":true,"client_id":"svc"}"#).principal, "svc");
        assert_eq!(active(r#"{"active":true,"sub":"","client_id":"svc"}"#).principal, "svc");
    }

    #[test]
    fn active_without_sub_or_client_id_is_invalid() {
        assert_eq!(read(r#"{"active":true}"#), Ok(Verdict::Invalid(Reason::NoPrincipal)));
    }

    #[test]
    fn refresh_tokens_are_not_access_tokens() {
        for t in ["refresh_token", "Refresh", "urn:ietf:params:oauth:token-type:refresh_token"] {
            let body = format!(r#"{{"active":true,"sub":"a","token_type":"{t}"}}"#);
            assert_eq!(read(&body), Ok(Verdict::Invalid(Reason::NotAnAccessToken)), "{t}");
        }
        assert!(matches!(read(r#"{"active":true,"sub":"a","token_type":"Bearer"}"#), Ok(Verdict::Active(_))));
    }

    #[test]
    fn a_required_token_type_refuses_answers_without_it() {
        let read_typed = |body: &str| read_answer(200, body.as_bytes(), NOW, 30, &Wanted::default(), Some("Bearer"));
        assert!(matches!(read_typed(r#"{"active":true,"sub":"a","token_type":"bearer"}"#), Ok(Verdict::Active(_))));
        assert_eq!(read_typed(r#"{"active":true,"sub":"a"}"#), Ok(Verdict::Invalid(Reason::NotAnAccessToken)));
        assert_eq!(
            read_typed(r#"{"active":true,"sub":"a","token_type":"DPoP"}"#),
            Ok(Verdict::Invalid(Reason::NotAnAccessToken))
        );
    }

    #[test]
    fn a_token_the_idp_will_not_introspect_is_invalid_not_unavailable() {
        let body = br#"{"error":"unsupported_token_type","error_description":"..."}"#;
        assert_eq!(
            read_answer(400, body, NOW, 0, &Wanted::default(), None),
            Ok(Verdict::Invalid(Reason::UnsupportedTokenType))
        );
        assert_eq!(
            read_answer(400, br#"{"error":"invalid_request"}"#, NOW, 0, &Wanted::default(), None),
            Err(Failure::Status(400))
        );
    }

    #[test]
    fn inactive_is_invalid() {
        assert_eq!(read(r#"{"active":false}"#), Ok(Verdict::Invalid(Reason::Inactive)));
    }

    #[test]
    fn expiry_and_not_before_respect_the_leeway() {
        assert!(matches!(read(&format!(r#"{{"active":true,"sub":"a","exp":{}}}"#, NOW - 29)), Ok(Verdict::Active(_))));
        assert_eq!(
            read(&format!(r#"{{"active":true,"sub":"a","exp":{}}}"#, NOW - 30)),
            Ok(Verdict::Invalid(Reason::Expired))
        );
        assert!(matches!(read(&format!(r#"{{"active":true,"sub":"a","nbf":{}}}"#, NOW + 30)), Ok(Verdict::Active(_))));
        assert_eq!(
            read(&format!(r#"{{"active":true,"sub":"a","nbf":{}}}"#, NOW + 31)),
            Ok(Verdict::Invalid(Reason::NotYetValid))
        );
    }

    #[test]
    fn anything_but_an_object_with_boolean_active_is_malformed() {
        for body in [
            "",
            "<html>",
            "[]",
            "null",
            "true",
            r#"{"active":"true","sub":"a"}"#,
            r#"{"active":1}"#,
            r#"{"sub":"a"}"#,
            r#"{"active":true,"sub":"a","exp":"1800000600"}"#,
            r#"{"active":true,"sub":"a","scope":["read"]}"#,
            r#"{"active":true,"sub":42}"#,
        ] {
            assert_eq!(read(body), Err(Failure::Malformed), "{body:?}");
        }
    }

    #[test]
    fn times_outside_what_gateways_can_be_told_are_malformed() {
        for body in [
            r#"{"active":true,"sub":"a","exp":1e300}"#,
            r#"{"active":true,"sub":"a","exp":253402300800}"#,
            r#"{"active":true,"sub":"a","exp":-1}"#,
            r#"{"active":true,"sub":"a","exp":-9223372036854775808}"#,
            r#"{"active":true,"sub":"a","nbf":9223372036854775807}"#,
        ] {
            assert_eq!(read(body), Err(Failure::Malformed), "{body}");
        }
        assert_eq!(active(r#"{"active":true,"sub":"a","exp":253402300799}"#).expires_at, Some(crate::clock::LAST_TIME));
    }

    #[test]
    fn a_member_named_twice_makes_the_answer_malformed() {
        for body in [
            r#"{"active":false,"active":true,"sub":"a"}"#,
            r#"{"active":true,"\u0061ctive":false,"sub":"a"}"#,
            r#"{"active":true,"sub":"a","exp":1,"exp":9999999999}"#,
            r#"{"active":true,"sub":"a","scope":"read","scope":"admin"}"#,
            r#"{"active":true,"sub":"a","token_type":"refresh_token","token_type":"access_token"}"#,
        ] {
            assert_eq!(read(body), Err(Failure::Malformed), "{body}");
        }
    }

    #[test]
    fn non_200_is_a_failure_not_a_verdict() {
        assert_eq!(read_answer(503, b"", NOW, 0, &Wanted::default(), None), Err(Failure::Status(503)));
        assert_eq!(
            read_answer(401, br#"{"error":"invalid_client"}"#, NOW, 0, &Wanted::default(), None),
            Err(Failure::ClientRejected)
        );
    }

    #[test]
    fn issuer_audiences_and_context_claims_are_read() {
        let names = ["email".to_string(), "groups".to_string(), "address".to_string(), "n".to_string()];
        let body = r#"{"active":true,"sub":"a","iss":"https://idp","aud":["api","other"],"email":"a@x",
                       "groups":["g1",2],"address":{"city":"x"},"n":5}"#;
        let Ok(Verdict::Active(i)) = read_answer(200, body.as_bytes(), NOW, 0, &Wanted::context(&names), None) else {
            panic!()
        };
        assert_eq!(i.issuer.as_deref(), Some("https://idp"));
        assert_eq!(i.audiences, ["api", "other"]);
        assert_eq!(i.claims.get("email").map(String::as_str), Some("a@x"));
        assert_eq!(i.claims.get("groups").map(String::as_str), Some("g1 2"));
        assert_eq!(i.claims.get("n").map(String::as_str), Some("5"));
        assert!(!i.claims.contains_key("address"), "objects are not forwarded");
        assert_eq!(read(r#"{"active":true,"sub":"a","aud":7}"#), Err(Failure::Malformed));
    }
}
