//! OCI Vault secrets end to end: the function reads its client secrets from a (fake) Secrets
//! service with resource-principal-signed requests, caches them, and fetches again on rotation.

use std::time::Duration;

use serde_json::json;
use tokenbridge_tests::IdpPair;
use tokenbridge_tests::fake_idp::{A_CLIENT, B_CLIENT};
use tokenbridge_tests::fake_secrets::{FakeSecrets, vectors_dir};
use tokenbridge_tests::fn_agent::{FnAgent, Framing};

const A_OCID: &str = "ocid1.vaultsecret.oc1.iad.amaaaaaaintrospection";
const B_OCID: &str = "ocid1.vaultsecret.oc1.iad.amaaaaaabackend";

fn function_env(idp: &IdpPair, secrets: &FakeSecrets, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let dir = vectors_dir();
    let mut env = vec![
        ("idcs_introspection_endpoint".to_string(), idp.a.introspection_url()),
        ("idcs_app_client_id".to_string(), A_CLIENT.0.to_string()),
        ("idcs_app_client_secret_ocid".to_string(), A_OCID.to_string()),
        ("back_end_token_endpoint".to_string(), idp.b.token_url()),
        ("back_end_app_client_id".to_string(), B_CLIENT.0.to_string()),
        ("back_end_client_secret_ocid".to_string(), B_OCID.to_string()),
        ("OCI_RESOURCE_PRINCIPAL_VERSION".to_string(), "2.2".to_string()),
        ("OCI_RESOURCE_PRINCIPAL_RPST".to_string(), dir.join("rpst").canonicalize().unwrap().display().to_string()),
        (
            "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM".to_string(),
            dir.join("key-pkcs1.pem").canonicalize().unwrap().display().to_string(),
        ),
        ("OCI_RESOURCE_PRINCIPAL_REGION".to_string(), "us-ashburn-1".to_string()),
        ("TOKENBRIDGE_OCI_SECRETS_ENDPOINT".to_string(), secrets.url().to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn payload(token: &str) -> Vec<u8> {
    json!({"type": "TOKEN", "token": format!("Bearer {token}")}).to_string().into_bytes()
}

#[test]
fn vault_secrets_are_fetched_once_with_signed_requests() {
    let idp = IdpPair::start();
    let secrets = FakeSecrets::start();
    secrets.put(A_OCID, A_CLIENT.1);
    secrets.put(B_OCID, B_CLIENT.1);
    let mut agent = FnAgent::start(&function_env(&idp, &secrets, &[]));
    for i in 0..5 {
        let token = idp.a.issue(&format!("user{i}"), "", 600);
        let reply = agent.call(&payload(&token), Framing::Chunked, Duration::from_secs(30));
        assert_eq!(reply.json()["active"], true, "{}", String::from_utf8_lossy(&reply.body));
    }
    assert_eq!(secrets.refused(), 0, "every request carried a valid signature");
    assert_eq!(secrets.fetches(), 2, "one fetch per secret, then cached");
    let stderr = agent.stop();
    assert!(!stderr.contains(A_CLIENT.1) && !stderr.contains(B_CLIENT.1));
}

#[test]
fn a_rotated_vault_secret_is_fetched_again_after_invalid_client() {
    let idp = IdpPair::start();
    let secrets = FakeSecrets::start();
    secrets.put(A_OCID, A_CLIENT.1);
    secrets.put(B_OCID, B_CLIENT.1);
    let mut agent = FnAgent::start(&function_env(&idp, &secrets, &[("TOKENBRIDGE_SECRET_REFRESH_SECONDS", "1")]));
    let first = idp.a.issue("alice", "", 600);
    assert_eq!(agent.call(&payload(&first), Framing::Chunked, Duration::from_secs(30)).json()["active"], true);
    // Rotation at IdP A and in the vault.
    idp.a.add_client(A_CLIENT.0, "rotated-in-vault");
    secrets.put(A_OCID, "rotated-in-vault");
    std::thread::sleep(Duration::from_millis(1100));
    let second = idp.a.issue("bob", "", 600);
    let reply = agent.call(&payload(&second), Framing::Chunked, Duration::from_secs(30));
    assert_eq!(reply.json()["active"], true, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(secrets.fetches(), 3, "the rotated secret was fetched once more");
}

#[test]
fn a_missing_vault_secret_is_a_502_that_says_what_to_check() {
    let idp = IdpPair::start();
    let secrets = FakeSecrets::start();
    secrets.put(B_OCID, B_CLIENT.1);
    let mut agent = FnAgent::start(&function_env(&idp, &secrets, &[]));
    let reply = agent.call(&payload("caller"), Framing::Chunked, Duration::from_secs(30));
    assert_eq!(reply.status, 502);
    assert_eq!(reply.json()["cause"], "secret_invalid");
    let stderr = agent.stop();
    assert!(stderr.contains("policy lets the function's dynamic group read it"), "{stderr}");
}

#[test]
fn a_session_the_secrets_service_refuses_is_read_again_with_its_key() {
    use tokenbridge_core::SecretResolver;
    let secrets = FakeSecrets::start();
    secrets.put(A_OCID, "s3cr3t");
    let dir = std::env::temp_dir().join(format!("tb-vault-rotation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (rpst, pem) = (dir.join("rpst"), dir.join("key.pem"));
    std::fs::copy(vectors_dir().join("rpst"), &rpst).unwrap();
    // A key that is not the session's: as if the platform had rotated the pair between two reads.
    let generated = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
        .arg(&pem)
        .status();
    if !generated.is_ok_and(|s| s.success()) {
        assert!(std::env::var_os("CI").is_none(), "openssl is missing (.ci/run installs it)");
        eprintln!("skipping: openssl is not installed");
        return;
    }
    let env = [
        ("OCI_RESOURCE_PRINCIPAL_RPST", rpst.display().to_string()),
        ("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM", pem.display().to_string()),
        ("TOKENBRIDGE_OCI_SECRETS_ENDPOINT", secrets.url().to_string()),
    ];
    let vault = tokenbridge_oci::vault::VaultResolver::with_lookup(Box::new(move |k| {
        env.iter().find(|(name, _)| *name == k).map(|(_, v)| v.clone())
    }));
    assert!(vault.resolve(A_OCID, None).is_err(), "signed with the wrong key");
    assert_eq!(secrets.refused(), 1);
    std::fs::copy(vectors_dir().join("key-pkcs8.pem"), &pem).unwrap();
    let secret = vault.resolve(A_OCID, None).expect("the pair is read again after the 401");
    assert_eq!(secret.expose(), "s3cr3t");
    let _ = std::fs::remove_dir_all(&dir);
}
