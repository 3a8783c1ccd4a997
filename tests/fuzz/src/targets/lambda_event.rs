//! AWS API Gateway Lambda authorizer events of every form (`tokenbridge_lambda::authorizer::parse`),
//! and the answers rendered for them under every option.

use crate::{grant, has_null, outcomes};
use serde_json::Value;
use tokenbridge_core::Outcome;
use tokenbridge_lambda::authorizer::{self, Form, Options};

/// The checks of the target on one input; panics on a broken invariant.
pub fn check(data: &[u8]) {
    let Ok(event) = serde_json::from_slice::<Value>(data) else { return };
    for bits in 0..8u8 {
        let options = Options {
            stage_wide: bits & 1 != 0,
            http_iam: bits & 2 != 0,
            http_unauthorized_error: bits & 4 != 0,
            ..Options::default()
        };
        check_under(&event, &options);
    }
}

fn check_under(event: &Value, options: &Options) {
    let Ok((request, form)) = authorizer::parse(event.clone(), options) else { return };
    assert!(request.deadline.is_none() && request.call_id.is_none());
    let arn = match &form {
        Form::Simple => {
            assert_eq!(event["version"], "2.0");
            assert!(!options.http_iam);
            None
        }
        Form::HttpIam { arn } => {
            if event["version"] == "2.0" {
                assert!(options.http_iam);
            } else {
                assert_eq!(event["version"], "1.0");
                assert_eq!(event["methodArn"].as_str(), Some(arn.as_str()));
            }
            Some(arn.clone())
        }
        Form::Iam { arn } => {
            assert_eq!(event["methodArn"].as_str(), Some(arn.as_str()));
            if event["type"] == "TOKEN" {
                assert_eq!(request.credential.as_deref(), event["authorizationToken"].as_str());
            }
            Some(arn.clone())
        }
    };
    let claims = [("email".to_string(), "a@example.com".to_string())].into();
    for outcome in outcomes(grant("alice", &["orders.read".into()], Some("app"), &claims)) {
        let allow = matches!(outcome, Outcome::Allow(_));
        match authorizer::render(&outcome, &form, options) {
            Ok(answer) => {
                assert!(!has_null(&answer), "a null in {answer}");
                let allowed = match &form {
                    Form::Simple => answer["isAuthorized"].as_bool().expect("isAuthorized"),
                    _ => {
                        let statement = &answer["policyDocument"]["Statement"][0];
                        let resource = statement["Resource"][0].as_str().expect("a resource");
                        let arn = arn.as_deref().unwrap_or_default();
                        covers_only_its_stage(resource, arn, options.stage_wide);
                        let allowed = statement["Effect"] == "Allow";
                        if allowed && resource == arn {
                            assert!(
                                !called(arn).contains(['*', '?']),
                                "a request's IAM wildcard in an allow: {answer}"
                            );
                        }
                        // An allow that could only be written with the request's wildcards is a deny.
                        if allow && !allowed {
                            assert!(
                                resource == arn && called(arn).contains(['*', '?']),
                                "an allow became a deny: {answer}"
                            );
                            continue;
                        }
                        allowed
                    }
                };
                assert_eq!(allowed, allow, "{answer}");
                if allow {
                    let context = answer["context"].as_object().expect("an allow has a context");
                    assert!(context.values().all(Value::is_string), "API Gateway takes strings only: {answer}");
                    assert_eq!(context["back_end_token"], "Bearer backend-token");
                }
            }
            Err(diagnostic) => {
                assert!(!allow, "an allow became an error");
                assert!(matches!(diagnostic.error_type.as_str(), "Unauthorized" | "Unavailable"));
            }
        }
    }
}

/// An allow covers the ARN called, or (stage-wide) every route of the same API and stage —
/// never another stage or API.
/// The part of a method ARN API Gateway builds from the request: verb and path, after the
/// API id and stage.
fn called(arn: &str) -> &str {
    arn.splitn(3, '/').nth(2).unwrap_or("")
}

fn covers_only_its_stage(resource: &str, arn: &str, stage_wide: bool) {
    if !stage_wide || resource == arn {
        assert_eq!(resource, arn);
        return;
    }
    let prefix = resource.strip_suffix("*/*").expect("a stage-wide resource ends with */*");
    assert_eq!(prefix.matches('/').count(), 2, "{resource}");
    assert!(format!("{arn}/").starts_with(prefix), "{resource} does not cover {arn}");
}
