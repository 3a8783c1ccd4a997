//! The Lambda adapter's share of a decision (`scripts/bench --micro`): an allow rendered and
//! serialised as a REST API IAM policy and as an HTTP API simple response.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tokenbridge_core::{Grant, Outcome};
use tokenbridge_lambda::authorizer::{Form, Options, render};

fn lambda(c: &mut Criterion) {
    let outcome = Outcome::Allow(Grant {
        principal: "alice@example.com".into(),
        scopes: vec!["orders.read".into(), "orders.write".into()],
        client_id: Some("caller-app".into()),
        expires_at: 1_800_000_000,
        context: BTreeMap::from([("back_end_token".to_string(), format!("Bearer {}", "b".repeat(40)))]),
    });
    let options = Options::default();
    let iam = Form::Iam { arn: "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/orders".into() };
    let mut g = c.benchmark_group("lambda");
    g.bench_function("render_allow_rest_iam", |b| {
        b.iter(|| render(black_box(&outcome), &iam, &options).map(|v| serde_json::to_vec(&v)))
    });
    g.bench_function("render_allow_http_simple", |b| {
        b.iter(|| render(black_box(&outcome), &Form::Simple, &options).map(|v| serde_json::to_vec(&v)))
    });
    g.finish();
}

criterion_group!(benches, lambda);
criterion_main!(benches);
