//! The HTTP adapter's share of a forward-auth decision (`scripts/bench --micro`): an allow
//! rendered as headers for the gateway and a serialised JSON body.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tokenbridge_core::{Grant, Outcome};
use tokenbridge_http::forward::{Rendering, render_forward};

fn http(c: &mut Criterion) {
    let outcome = Outcome::Allow(Grant {
        principal: "alice@example.com".into(),
        scopes: vec!["orders.read".into(), "orders.write".into()],
        client_id: Some("caller-app".into()),
        expires_at: 1_800_000_000,
        context: BTreeMap::from([("back_end_token".to_string(), format!("Bearer {}", "b".repeat(40)))]),
    });
    let rendering = Rendering {
        realm: "tokenbridge",
        context_key: "back_end_token",
        identity: &tokenbridge_http::identity::IdentityHeaders::default(),
    };
    c.bench_function("http/render_forward_allow", |b| {
        b.iter(|| {
            let reply = render_forward(black_box(&outcome), &rendering);
            (reply.headers, serde_json::to_vec(&reply.body))
        })
    });
}

criterion_group!(benches, http);
criterion_main!(benches);
