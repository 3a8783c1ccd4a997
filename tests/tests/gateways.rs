//! Every shipped gateway recipe (`adapters/http/deploy/`), run as shipped in the real gateway —
//! Debian's nginx and the PyPI wheels of Envoy, Traefik and Caddy that `scripts/gateways-install`
//! pins — in front of a backend that records exactly what reached it.
//!
//! For each gateway: an allowed call reaches the backend with the backend token and tokenbridge's
//! identity headers, and nothing of the caller's; a bad or missing token is a 401 with exactly one
//! challenge; a missing scope a 403 `insufficient_scope`; an IdP outage a 503 with the IdP's
//! `Retry-After`; tokenbridge itself down a 5xx, never a deny; and identity, route and
//! method-override headers a client forges neither reach the backend nor change the decision.
//!
//! The binaries come from `TOKENBRIDGE_NGINX`, `TOKENBRIDGE_ENVOY`, `TOKENBRIDGE_TRAEFIK` and
//! `TOKENBRIDGE_CADDY` (set by `scripts/test`). Without one, that gateway's tests skip themselves
//! loudly, except in CI, where they fail.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokenbridge_tests::Fault;
use tokenbridge_tests::fake_idp::unix_now;
use tokenbridge_tests::gateways::{Gateway, Received, Stack};
use tokenbridge_tests::http_server::Exchange;

/// A query parameter naming one call uniquely, so a test finds its own requests at the backend
/// that all tests of a gateway share.
fn mark(what: &str) -> String {
    static SERIAL: AtomicUsize = AtomicUsize::new(0);
    format!("case={what}-{}", SERIAL.fetch_add(1, Ordering::SeqCst))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn values<'a>(exchange: &'a Exchange, name: &str) -> Vec<&'a str> {
    exchange.1.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
}

const INVALID_TOKEN: &str = "Bearer realm=\"tokenbridge\", error=\"invalid_token\"";
const NO_TOKEN: &str = "Bearer realm=\"tokenbridge\"";

fn insufficient_scope(scope: &str) -> String {
    format!("Bearer realm=\"tokenbridge\", error=\"insufficient_scope\", scope=\"{scope}\"")
}

/// The one request with `marker` that reached the backend.
fn only_request(stack: &Stack, marker: &str) -> Received {
    let mut received = stack.backend.received(marker);
    assert_eq!(received.len(), 1, "{}: one request reached the backend: {received:?}", stack.gateway.name());
    received.remove(0)
}

fn none_reached(stack: &Stack, marker: &str) {
    let received = stack.backend.received(marker);
    assert!(received.is_empty(), "{}: nothing may reach the backend: {received:?}", stack.gateway.name());
}

/// The status each gateway gives when tokenbridge cannot be reached at all: 503 where the
/// recipe can say so, else the gateway's own 5xx.
fn status_with_tokenbridge_down(gateway: Gateway) -> u16 {
    match gateway {
        Gateway::Nginx | Gateway::Envoy => 503,
        Gateway::Traefik => 500,
        Gateway::Caddy => 502,
    }
}

/// The IdP's `Retry-After` (7 s) as the client gets it: Envoy's HTTP ext_authz turns every 5xx of
/// the authorization service into its own `status_on_error` answer, without the service's headers.
fn retry_after_passed_on(gateway: Gateway) -> Option<&'static str> {
    match gateway {
        Gateway::Envoy => None,
        Gateway::Nginx | Gateway::Traefik | Gateway::Caddy => Some("7"),
    }
}

/// A cookie about as large as the gateway itself accepts (nginx: 8 KiB header buffers; Caddy 2.11
/// answers 431 somewhere below 30 KB; Envoy: 60 KiB of headers), and past tokenbridge's 64 KiB
/// head limit where the gateway takes more (Traefik).
fn large_cookie_bytes(gateway: Gateway) -> usize {
    match gateway {
        Gateway::Nginx => 7_000,
        Gateway::Caddy => 20_000,
        Gateway::Envoy => 50_000,
        Gateway::Traefik => 100_000,
    }
}

fn an_allowed_call_reaches_the_backend_with_the_backend_token_and_nothing_of_the_callers(gateway: Gateway) {
    let Some(stack) = Stack::of(gateway) else { return };
    let _turn = stack.shared();
    let token = stack.idp.a.issue("alice", "orders.read", 600);
    let m = mark("allow");
    let answer = stack.call("GET", &format!("/orders/7?{m}"), &[("Authorization", &bearer(&token))]);
    assert_eq!(answer.0, 200, "{answer:?}\n{}", stack.gateway_log());
    let seen = only_request(stack, &m);
    assert_eq!((seen.method.as_str(), seen.target.as_str()), ("GET", format!("/orders/7?{m}").as_str()));
    let authorization = seen.read_as("authorization");
    assert_eq!(authorization.len(), 1, "one Authorization: {seen:?}");
    assert!(authorization[0].starts_with("Bearer backend-"), "the backend token: {seen:?}");
    assert!(seen.headers.iter().all(|(_, v)| !v.contains(&token)), "the caller's token reached the backend: {seen:?}");
    assert_eq!(seen.read_as("x-auth-principal"), ["alice"]);
    assert_eq!(seen.read_as("x-auth-scopes"), ["orders.read"]);
    assert_eq!(seen.read_as("x-auth-client-id"), ["caller-app"]);
    stack.assert_nothing_leaked();
}

fn a_bad_or_missing_token_is_a_401_with_exactly_one_challenge(gateway: Gateway) {
    let Some(stack) = Stack::of(gateway) else { return };
    let _turn = stack.shared();
    let m = mark("unauthenticated");
    let target = format!("/orders/7?{m}");
    let forged = stack.call("GET", &target, &[("Authorization", "Bearer not-a-token")]);
    assert_eq!((forged.0, values(&forged, "www-authenticate")), (401, vec![INVALID_TOKEN]), "{forged:?}");
    let other_scheme = stack.call("GET", &target, &[("Authorization", "Basic YWxpY2U6cHc=")]);
    assert_eq!((other_scheme.0, values(&other_scheme, "www-authenticate")), (401, vec![INVALID_TOKEN]));
    let missing = stack.call("GET", &target, &[]);
    assert_eq!((missing.0, values(&missing, "www-authenticate")), (401, vec![NO_TOKEN]), "{missing:?}");
    none_reached(stack, &m);
    stack.assert_nothing_leaked();
}

/// A valid credential beside another one: the gateway or tokenbridge refuses the request (400,
/// or 401 when the gateway joins the two into one invalid value), whichever comes first.
fn two_credentials_are_never_an_allow(gateway: Gateway) {
    let Some(stack) = Stack::of(gateway) else { return };
    let _turn = stack.shared();
    let valid = bearer(&stack.idp.a.issue("oscar", "orders.read", 600));
    let m = mark("two-credentials");
    for pair in [[valid.as_str(), "Bearer other"], ["Bearer other", valid.as_str()]] {
        let headers = [("Authorization", pair[0]), ("Authorization", pair[1])];
        let answer = stack.call("GET", &format!("/orders/7?{m}"), &headers);
        assert!(answer.0 == 400 || answer.0 == 401, "{pair:?}: {answer:?}");
    }
    none_reached(stack, &m);
    stack.assert_nothing_leaked();
}

fn a_missing_scope_is_a_403_insufficient_scope_with_its_challenge(gateway: Gateway) {
    let Some(stack) = Stack::of(gateway) else { return };
    let _turn = stack.shared();
    let auth = bearer(&stack.idp.a.issue("bob", "orders.read", 600));
    let m = mark("scope");
    let admin = stack.call("GET", &format!("/admin/users?{m}"), &[("Authorization", &auth)]);
    assert_eq!((admin.0, values(&admin, "www-authenticate")), (403, vec![insufficient_scope("admin").as_str()]));
    let write = stack.call("POST", &format!("/orders/7?{m}"), &[("Authorization", &auth)]);
    assert_eq!((write.0, values(&write, "www-authenticate")), (403, vec![insufficient_scope("orders.write").as_str()]));
    none_reached(stack, &m);
    stack.assert_nothing_leaked();
}

fn an_idp_outage_is_a_503_with_the_idps_retry_after(gateway: Gateway) {
    let Some(stack) = Stack::of(gateway) else { return };
    let turn = stack.exclusive();
    let auth = bearer(&stack.idp.a.issue("carol", "orders.read", 600));
    let m = mark("outage");
    stack.idp.a.set_introspect_fault(Some(Fault::StatusRetryAfter(503, 7)));
    let answer = stack.call("GET", &format!("/orders/7?{m}"), &[("Authorization", &auth)]);
    stack.idp.a.set_introspect_fault(None);
    let retry_after: Vec<&str> = retry_after_passed_on(gateway).into_iter().collect();
    assert_eq!((answer.0, values(&answer, "retry-after")), (503, retry_after), "{answer:?}\n{}", stack.gateway_log());
    none_reached(stack, &m);
    // The outage was not remembered as a deny.
    let after = mark("after-outage");
    assert_eq!(stack.call("GET", &format!("/orders/7?{after}"), &[("Authorization", &auth)]).0, 200);
    drop(turn);
    stack.assert_nothing_leaked();
}

fn tokenbridge_down_is_a_5xx_never_a_deny_or_an_allow(gateway: Gateway) {
    let Some(stack) = Stack::of(gateway) else { return };
    let turn = stack.exclusive();
    let auth = bearer(&stack.idp.a.issue("dave", "orders.read", 600));
    let m = mark("down");
    let answer = stack
        .with_tokenbridge_stopped(&turn, || stack.call("GET", &format!("/orders/7?{m}"), &[("Authorization", &auth)]));
    assert!((500..600).contains(&answer.0), "{answer:?}");
    assert_eq!(answer.0, status_with_tokenbridge_down(gateway), "{answer:?}");
    none_reached(stack, &m);
    drop(turn);
    stack.assert_nothing_leaked();
}

/// Headers only tokenbridge may set, as a client forges them. The caller's token names no client,
/// so tokenbridge answers without `X-Auth-Client-Id` and the gateway has nothing to replace it with.
fn forged_identity_headers_never_reach_the_backend(gateway: Gateway) {
    let Some(stack) = Stack::of(gateway) else { return };
    let _turn = stack.shared();
    let token = format!("caller-0-no-client-{}", mark("token").replace('=', "-"));
    stack.idp.a.add_token(
        &token,
        serde_json::json!({"active": true, "sub": "erin", "scope": "orders.read", "exp": unix_now() + 600, "token_type": "Bearer"}),
    );
    let m = mark("forged-identity");
    let forged = [
        ("Authorization", bearer(&token)),
        ("X-Auth-Principal", "mallory".into()),
        ("X-Auth-Scopes", "admin".into()),
        ("X-Auth-Client-Id", "forged-client".into()),
    ];
    let headers: Vec<(&str, &str)> = forged.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let answer = stack.call("GET", &format!("/orders/7?{m}"), &headers);
    assert_eq!(answer.0, 200, "{answer:?}");
    let seen = only_request(stack, &m);
    assert_eq!(seen.read_as("x-auth-principal"), ["erin"], "{seen:?}");
    assert_eq!(seen.read_as("x-auth-scopes"), ["orders.read"], "{seen:?}");
    assert!(seen.read_as("x-auth-client-id").is_empty(), "the client's X-Auth-Client-Id reached the backend: {seen:?}");
    stack.assert_nothing_leaked();
}

/// `X_Auth_Principal` is another header to the gateway, and `X-Auth-Principal` to a backend that
/// folds `_` into `-` (CGI, PHP, WSGI): the gateway refuses it or drops it.
fn identity_headers_spelled_with_underscores_never_reach_the_backend(gateway: Gateway) {
    let Some(stack) = Stack::of(gateway) else { return };
    let _turn = stack.shared();
    let token = bearer(&stack.idp.a.issue("frank", "orders.read", 600));
    let m = mark("underscores");
    let headers = [("Authorization", token.as_str()), ("X_Auth_Principal", "mallory"), ("X-Auth_Scopes", "admin")];
    let answer = stack.call("GET", &format!("/orders/7?{m}"), &headers);
    match answer.0 {
        200 => {
            let seen = only_request(stack, &m);
            assert_eq!(seen.read_as("x-auth-principal"), ["frank"], "{seen:?}");
            assert_eq!(seen.read_as("x-auth-scopes"), ["orders.read"], "{seen:?}");
        }
        400 => none_reached(stack, &m),
        other => panic!("{}: {other} {answer:?}", gateway.name()),
    }
    stack.assert_nothing_leaked();
}

/// The route and method a client claims in headers: each gateway's own report and the real
/// request decide, and the backend never sees the claims.
const FORGED_ROUTE: [(&str, &str); 8] = [
    ("X-Forwarded-Method", "DELETE"),
    ("X-Forwarded-Uri", "/forged/route"),
    ("X-Original-Method", "DELETE"),
    ("X-Original-URI", "/forged/route"),
    ("X-Original-URL", "http://forged.example/forged/route"),
    ("X-HTTP-Method-Override", "DELETE"),
    ("X-HTTP-Method", "DELETE"),
    ("X-Method-Override", "DELETE"),
];

fn forged_route_and_method_headers_never_reach_the_backend(gateway: Gateway) {
    let Some(stack) = Stack::of(gateway) else { return };
    let _turn = stack.shared();
    let token = bearer(&stack.idp.a.issue("grace", "orders.read", 600));
    let m = mark("forged-route");
    let mut headers = vec![("Authorization", token.as_str())];
    headers.extend(FORGED_ROUTE);
    let answer = stack.call("GET", &format!("/orders/7?{m}"), &headers);
    assert_eq!(answer.0, 200, "the forged headers change nothing: {answer:?}\n{}", stack.gateway_log());
    let seen = only_request(stack, &m);
    for (name, forged) in FORGED_ROUTE {
        assert!(!seen.read_as(name).contains(&forged), "the client's {name} reached the backend: {seen:?}");
    }
    for name in ["x-http-method-override", "x-http-method", "x-method-override"] {
        assert!(seen.read_as(name).is_empty(), "{name} reached the backend: {seen:?}");
    }
    stack.assert_nothing_leaked();
}

fn forged_route_and_method_headers_do_not_change_the_decision(gateway: Gateway) {
    let Some(stack) = Stack::of(gateway) else { return };
    let _turn = stack.shared();
    let auth = bearer(&stack.idp.a.issue("heidi", "orders.read", 600));
    let m = mark("forged-decision");
    // Every family at once, naming the open route for a call to the closed one.
    let open = [
        ("X-Forwarded-Method", "GET"),
        ("X-Forwarded-Uri", "/orders/7"),
        ("X-Original-Method", "GET"),
        ("X-Original-URI", "/orders/7"),
        ("X-Original-URL", "http://api.example/orders/7"),
        ("X-HTTP-Method-Override", "GET"),
    ];
    let mut headers = vec![("Authorization", auth.as_str())];
    headers.extend(open);
    let admin = stack.call("GET", &format!("/admin/users?{m}"), &headers);
    assert_eq!((admin.0, values(&admin, "www-authenticate")), (403, vec![insufficient_scope("admin").as_str()]));
    // One family at a time (each alone is what a gateway that forwards it would pass on).
    for forged in open {
        let answer = stack.call("GET", &format!("/admin/users?{m}"), &[("Authorization", &auth), forged]);
        assert_eq!(answer.0, 403, "{forged:?}: {answer:?}");
    }
    // A write with a method override claiming a read is decided as the write it is.
    let write =
        stack.call("POST", &format!("/orders/7?{m}"), &[("Authorization", &auth), ("X-HTTP-Method-Override", "GET")]);
    assert_eq!((write.0, values(&write, "www-authenticate")), (403, vec![insufficient_scope("orders.write").as_str()]));
    none_reached(stack, &m);
    // Claims of the closed route on a call to the open one are no error either: the call is allowed.
    let ok = mark("forged-decision-open");
    for forged in FORGED_ROUTE {
        let answer = stack.call("GET", &format!("/orders/7?{ok}"), &[("Authorization", &auth), forged]);
        assert_eq!(answer.0, 200, "{forged:?}: {answer:?}\n{}", stack.gateway_log());
    }
    assert_eq!(stack.backend.received(&ok).len(), FORGED_ROUTE.len());
    stack.assert_nothing_leaked();
}

/// Paths that a backend could resolve to the admin route: the gateway refuses them, tokenbridge
/// refuses them as ambiguous, or the gateway resolves them itself — and then the check and the
/// backend see the same plain path, under the route the caller may call.
fn paths_a_backend_could_read_as_another_route_do_not_get_past_its_scope(gateway: Gateway) {
    let Some(stack) = Stack::of(gateway) else { return };
    let _turn = stack.shared();
    let auth = bearer(&stack.idp.a.issue("ivan", "orders.read", 600));
    for sneaky in [
        "/orders/../admin/users",
        "/orders/%2e%2e/admin/users",
        "/%61dmin/users",
        "/ADMIN/users",
        "//admin/users",
        "/orders/..%2Fadmin/users",
        "/orders/%2F../admin/users",
        "/orders/7/..;/../admin/users",
        "/orders\\..\\admin/users",
        // Absolute form: the gateway may report the URL rather than the path.
        "http://api.example/admin/users",
    ] {
        let m = mark("paths");
        let answer = stack.call("GET", &format!("{sneaky}?{m}"), &[("Authorization", &auth)]);
        match answer.0 {
            400..=499 => none_reached(stack, &m),
            200 => {
                let seen = only_request(stack, &m);
                let path = seen.target.split('?').next().unwrap_or_default();
                let plain = !["..", "%", ";", "\\", "//"].iter().any(|bad| path.contains(bad));
                assert!(path.starts_with("/orders/") && plain, "{sneaky} reached the backend as {path}");
            }
            _ => panic!("{sneaky}: {answer:?}"),
        }
    }
    stack.assert_nothing_leaked();
}

fn a_large_cookie_beside_a_valid_token_is_no_error(gateway: Gateway) {
    let Some(stack) = Stack::of(gateway) else { return };
    let _turn = stack.shared();
    let auth = bearer(&stack.idp.a.issue("judy", "orders.read", 600));
    let cookie = format!("session={}", "c".repeat(large_cookie_bytes(gateway)));
    let m = mark("cookie");
    let answer = stack.call("GET", &format!("/orders/7?{m}"), &[("Authorization", &auth), ("Cookie", &cookie)]);
    assert_eq!(answer.0, 200, "{}\n{}", answer.2.chars().take(300).collect::<String>(), stack.gateway_log());
    assert_eq!(only_request(stack, &m).read_as("cookie"), [cookie.as_str()], "the backend gets the cookie");
    stack.assert_nothing_leaked();
}

/// A DPoP-bound token with a proof of its key is allowed, and the backend gets the backend
/// token, not the caller's; the same proof again, or the token as a bearer token, is a 401.
fn a_dpop_bound_token_with_its_proof_is_allowed_once(gateway: Gateway) {
    use tokenbridge_tests::dpop::DpopClient;
    let Some(stack) = Stack::of(gateway) else { return };
    let _turn = stack.shared();
    let client = DpopClient::es256();
    let token = format!("caller-dpop-{}", mark("token").replace('=', "-"));
    stack.idp.a.add_token(
        &token,
        serde_json::json!({"active": true, "sub": "dana", "scope": "orders.read", "exp": unix_now() + 600,
                           "cnf": {"jkt": client.jkt()}}),
    );
    let htu = format!("{}/orders/7", tokenbridge_tests::gateways::DPOP_ORIGIN);
    let proof = client.proof("GET", &htu, &token, unix_now());
    let auth = format!("DPoP {token}");
    let m = mark("dpop");
    let answer = stack.call("GET", &format!("/orders/7?{m}"), &[("Authorization", &auth), ("DPoP", &proof)]);
    assert_eq!(answer.0, 200, "{answer:?}\n{}", stack.tokenbridge_log());
    let seen = only_request(stack, &m);
    assert!(seen.read_as("authorization")[0].starts_with("Bearer backend-"), "{seen:?}");
    assert!(seen.headers.iter().all(|(_, v)| !v.contains(&token)), "the caller's token reached the backend: {seen:?}");
    let m = mark("dpop-replay");
    let replay = stack.call("GET", &format!("/orders/7?{m}"), &[("Authorization", &auth), ("DPoP", &proof)]);
    assert_eq!(replay.0, 401, "{replay:?}");
    let challenge = values(&replay, "www-authenticate");
    assert_eq!(challenge.len(), 1, "{replay:?}");
    assert!(
        challenge[0].starts_with("DPoP ") && challenge[0].contains("error=\"invalid_dpop_proof\""),
        "{challenge:?}"
    );
    none_reached(stack, &m);
    let m = mark("dpop-as-bearer");
    let as_bearer = stack.call("GET", &format!("/orders/7?{m}"), &[("Authorization", &bearer(&token))]);
    assert_eq!(as_bearer.0, 401, "{as_bearer:?}");
    none_reached(stack, &m);
    stack.assert_nothing_leaked();
}

/// A certificate-bound token with a client-sent copy of the certificate header (the stacks have
/// no mutual TLS): the recipe drops the copy, and tokenbridge refuses the token.
fn a_forged_certificate_header_never_binds(gateway: Gateway) {
    let Some(stack) = Stack::of(gateway) else { return };
    let _turn = stack.shared();
    // Any bytes the header's format reads as a certificate: the binding is to their hash.
    let der = [0x30u8, 0x00];
    let sha = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
    let thumbprint = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sha.as_ref());
    let hex: String = sha.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let token = format!("caller-mtls-{}", mark("token").replace('=', "-"));
    stack.idp.a.add_token(
        &token,
        serde_json::json!({"active": true, "sub": "mallory", "scope": "orders.read", "exp": unix_now() + 600,
                           "cnf": {"x5t#S256": thumbprint}}),
    );
    let (name, value) = match gateway {
        Gateway::Nginx => {
            ("X-Client-Cert", "-----BEGIN%20CERTIFICATE-----%0AMAA%3D%0A-----END%20CERTIFICATE-----%0A".to_string())
        }
        Gateway::Envoy => ("X-Forwarded-Client-Cert", format!("Hash={hex}")),
        Gateway::Traefik => ("X-Forwarded-Tls-Client-Cert", "MAA=".to_string()),
        Gateway::Caddy => ("X-Client-Cert", "MAA=".to_string()),
    };
    let m = mark("forged-cert");
    let answer = stack.call("GET", &format!("/orders/7?{m}"), &[("Authorization", &bearer(&token)), (name, &value)]);
    assert_eq!(answer.0, 401, "{}: a forged certificate header bound the token: {answer:?}", gateway.name());
    none_reached(stack, &m);
    // The decision log is written by a thread of its own: the line may come after the answer.
    let started = std::time::Instant::now();
    while !stack.tokenbridge_log().contains("certificate_missing")
        && started.elapsed() < std::time::Duration::from_secs(5)
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(stack.tokenbridge_log().contains("certificate_missing"), "{}", stack.tokenbridge_log());
    stack.assert_nothing_leaked();
}

/// The same tests for every gateway, as `<gateway>::<behaviour>`.
macro_rules! for_each_gateway {
    ($($module:ident => $gateway:expr;)*) => {$(
        mod $module {
            use super::*;
            #[test] fn an_allowed_call_reaches_the_backend_with_the_backend_token_and_nothing_of_the_callers() { super::an_allowed_call_reaches_the_backend_with_the_backend_token_and_nothing_of_the_callers($gateway) }
            #[test] fn a_bad_or_missing_token_is_a_401_with_exactly_one_challenge() { super::a_bad_or_missing_token_is_a_401_with_exactly_one_challenge($gateway) }
            #[test] fn two_credentials_are_never_an_allow() { super::two_credentials_are_never_an_allow($gateway) }
            #[test] fn a_missing_scope_is_a_403_insufficient_scope_with_its_challenge() { super::a_missing_scope_is_a_403_insufficient_scope_with_its_challenge($gateway) }
            #[test] fn an_idp_outage_is_a_503_with_the_idps_retry_after() { super::an_idp_outage_is_a_503_with_the_idps_retry_after($gateway) }
            #[test] fn tokenbridge_down_is_a_5xx_never_a_deny_or_an_allow() { super::tokenbridge_down_is_a_5xx_never_a_deny_or_an_allow($gateway) }
            #[test] fn forged_identity_headers_never_reach_the_backend() { super::forged_identity_headers_never_reach_the_backend($gateway) }
            #[test] fn identity_headers_spelled_with_underscores_never_reach_the_backend() { super::identity_headers_spelled_with_underscores_never_reach_the_backend($gateway) }
            #[test] fn forged_route_and_method_headers_never_reach_the_backend() { super::forged_route_and_method_headers_never_reach_the_backend($gateway) }
            #[test] fn forged_route_and_method_headers_do_not_change_the_decision() { super::forged_route_and_method_headers_do_not_change_the_decision($gateway) }
            #[test] fn paths_a_backend_could_read_as_another_route_do_not_get_past_its_scope() { super::paths_a_backend_could_read_as_another_route_do_not_get_past_its_scope($gateway) }
            #[test] fn a_large_cookie_beside_a_valid_token_is_no_error() { super::a_large_cookie_beside_a_valid_token_is_no_error($gateway) }
            #[test] fn a_forged_certificate_header_never_binds() { super::a_forged_certificate_header_never_binds($gateway) }
            #[test] fn a_dpop_bound_token_with_its_proof_is_allowed_once() { super::a_dpop_bound_token_with_its_proof_is_allowed_once($gateway) }
        }
    )*};
}

for_each_gateway! {
    nginx => Gateway::Nginx;
    envoy => Gateway::Envoy;
    traefik => Gateway::Traefik;
    caddy => Gateway::Caddy;
}
