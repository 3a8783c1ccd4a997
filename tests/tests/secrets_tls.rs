//! Secret stores are reached through the same outbound client as the IdPs: a Secrets service
//! whose certificate a private CA signed is trusted when `TOKENBRIDGE_CA_BUNDLE` names that CA,
//! and refused without it — through the built binary, as an OCI Function reading Vault secrets.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use tokenbridge_tests::IdpPair;
use tokenbridge_tests::fake_idp::{A_CLIENT, B_CLIENT};
use tokenbridge_tests::fake_secrets::vectors_dir;
use tokenbridge_tests::fn_agent::{FnAgent, Framing};
use tokenbridge_tests::tls_server::TlsServer;

const A_OCID: &str = "ocid1.vaultsecret.oc1.iad.amaaaaaaintrospection";
const B_OCID: &str = "ocid1.vaultsecret.oc1.iad.amaaaaaabackend";

/// The Secrets service over TLS from a private CA: the secret bundles as files at the Secrets
/// API's paths.
fn tls_secrets(secrets: &[(&str, &str)]) -> Option<TlsServer> {
    let files: Vec<(String, Vec<u8>)> = secrets
        .iter()
        .map(|(ocid, value)| {
            let bundle = json!({"secretBundleContent": {"contentType": "BASE64", "content": STANDARD.encode(value)}});
            (format!("20190301/secretbundles/{ocid}"), bundle.to_string().into_bytes())
        })
        .collect();
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, c)| (p.as_str(), c.clone())).collect();
    TlsServer::start(&files)
}

fn function_env(idp: &IdpPair, secrets: &TlsServer, extra: &[(&str, String)]) -> Vec<(String, String)> {
    let path = |name: &str| vectors_dir().join(name).canonicalize().unwrap().display().to_string();
    let mut env: Vec<(String, String)> = [
        ("idcs_introspection_endpoint", idp.a.introspection_url()),
        ("idcs_app_client_id", A_CLIENT.0.to_string()),
        ("idcs_app_client_secret_ocid", A_OCID.to_string()),
        ("back_end_token_endpoint", idp.b.token_url()),
        ("back_end_app_client_id", B_CLIENT.0.to_string()),
        ("back_end_client_secret_ocid", B_OCID.to_string()),
        ("OCI_RESOURCE_PRINCIPAL_VERSION", "2.2".to_string()),
        ("OCI_RESOURCE_PRINCIPAL_RPST", path("rpst")),
        ("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM", path("key-pkcs1.pem")),
        ("OCI_RESOURCE_PRINCIPAL_REGION", "us-ashburn-1".to_string()),
        ("TOKENBRIDGE_OCI_SECRETS_ENDPOINT", format!("https://127.0.0.1:{}", secrets.port)),
    ]
    .into_iter()
    .chain(extra.iter().cloned())
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    env.sort();
    env
}

#[test]
fn a_secrets_service_with_a_private_ca_is_trusted_only_through_the_ca_bundle() {
    let Some(secrets) = tls_secrets(&[(A_OCID, A_CLIENT.1), (B_OCID, B_CLIENT.1)]) else {
        assert!(std::env::var_os("CI").is_none(), "openssl is needed for the TLS Secrets service");
        eprintln!("skipping: openssl is not available");
        return;
    };
    let idp = IdpPair::start();
    let call = |extra: &[(&str, String)]| {
        let mut agent = FnAgent::start(&function_env(&idp, &secrets, extra));
        let token = idp.a.issue("alice", "", 600);
        let payload = json!({"type": "TOKEN", "token": format!("Bearer {token}")}).to_string();
        let reply = agent.call(payload.as_bytes(), Framing::Chunked, Duration::from_secs(30));
        (reply.status, reply.json(), agent.stop())
    };

    let (status, body, log) = call(&[]);
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["cause"], "secret_unreachable", "the handshake fails without the CA: {body}\n{log}");
    assert!(log.contains("the Secrets service is unreachable"), "{log}");

    let (status, body, log) = call(&[("TOKENBRIDGE_CA_BUNDLE", secrets.ca.display().to_string())]);
    assert_eq!((status, body["active"].as_bool()), (200, Some(true)), "{body}\n{log}");
    assert!(body["context"]["back_end_token"].as_str().is_some_and(|t| t.starts_with("Bearer backend-")), "{body}");

    // A bundle that cannot be read is no licence to fall back to the built-in roots.
    let missing = secrets.ca.with_file_name("no-such-bundle.pem").display().to_string();
    let (status, body, _) = call(&[("TOKENBRIDGE_CA_BUNDLE", missing)]);
    assert_eq!(status, 502, "{body}");
    assert_ne!(body["active"], true);
}
