//! The OCI adapter's share of a decision (`scripts/bench --micro`): a gateway payload read into
//! a request, and an allow rendered and serialised as the gateway's answer.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tokenbridge_core::{Grant, Outcome};
use tokenbridge_wire as gateway;

fn allow() -> Outcome {
    Outcome::Allow(Grant {
        principal: "alice@example.com".into(),
        scopes: vec!["orders.read".into(), "orders.write".into()],
        client_id: Some("caller-app".into()),
        expires_at: 1_800_000_000,
        context: BTreeMap::from([("back_end_token".to_string(), format!("Bearer {}", "b".repeat(40)))]),
    })
}

fn oci(c: &mut Criterion) {
    let payload = br#"{"type":"USER_DEFINED","data":{"token":"Bearer 2YotnFZFEjr1zCsicMWpAA2YotnFZFEjr1zCsicMWpAA","method":"GET","path":"/orders/1"}}"#;
    let outcome = allow();
    let mut g = c.benchmark_group("oci");
    g.bench_function("parse_payload", |b| b.iter(|| gateway::parse(black_box(payload), "token")));
    g.bench_function("render_allow", |b| {
        b.iter(|| serde_json::to_vec(&gateway::render(black_box(&outcome), "tokenbridge").body))
    });
    g.finish();
}

criterion_group!(benches, oci);
criterion_main!(benches);
