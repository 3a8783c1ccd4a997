//! Secret stores are reached through the same outbound client as the IdPs: a Secrets service
//! whose certificate a private CA signed is trusted when `TOKENBRIDGE_CA_BUNDLE` names that CA,
//! and refused without it — through the built binary, as an OCI Function reading Vault secrets.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use tokenbridge_tests::IdpPair;
use tokenbridge_tests::fake_idp::{A_CLIENT, B_CLIENT};
use tokenbridge_tests::fake_secrets::vectors_dir;
use tokenbridge_tests::fn_agent::{FnAgent, Framing};
use tokenbridge_tests::harness::wait_for_port;
use tokenbridge_tests::http_server::free_port;

const A_OCID: &str = "ocid1.vaultsecret.oc1.iad.amaaaaaaintrospection";
const B_OCID: &str = "ocid1.vaultsecret.oc1.iad.amaaaaaabackend";

/// `openssl s_server -WWW` on loopback with a certificate from a private CA, serving the secret
/// bundles as files at the Secrets API's paths.
struct TlsSecrets {
    child: Child,
    port: u16,
    /// The CA that signed the server's certificate.
    ca: PathBuf,
    dir: PathBuf,
}

impl TlsSecrets {
    fn start(secrets: &[(&str, &str)]) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("tb-secrets-tls-{}-{}", std::process::id(), free_port()));
        let bundles = dir.join("www/20190301/secretbundles");
        std::fs::create_dir_all(&bundles).ok()?;
        for (ocid, value) in secrets {
            let bundle = json!({"secretBundleContent": {"contentType": "BASE64", "content": STANDARD.encode(value)}});
            std::fs::write(bundles.join(ocid), bundle.to_string()).ok()?;
        }
        let (ca, ca_key, cert, key) =
            (dir.join("ca.pem"), dir.join("ca.key"), dir.join("cert.pem"), dir.join("key.pem"));
        let (csr, ext) = (dir.join("leaf.csr"), dir.join("leaf.ext"));
        std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").ok()?;
        let openssl = |args: &[&str], files: &[(&str, &Path)]| {
            let mut command = Command::new("openssl");
            command.args(args).stdout(Stdio::null()).stderr(Stdio::null());
            for (flag, path) in files {
                command.arg(flag).arg(path);
            }
            command.status().is_ok_and(|s| s.success())
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"];
        let made = openssl(
            &[&["req", "-x509", "-subj", "/CN=tokenbridge secrets test CA"][..], &ec].concat(),
            &[("-keyout", &ca_key), ("-out", &ca)],
        ) && openssl(
            &[&["req", "-subj", "/CN=127.0.0.1"][..], &ec[..5]].concat(),
            &[("-keyout", &key), ("-out", &csr)],
        ) && openssl(
            &["x509", "-req", "-CAcreateserial", "-days", "1"],
            &[("-in", &csr), ("-CA", &ca), ("-CAkey", &ca_key), ("-extfile", &ext), ("-out", &cert)],
        );
        if !made {
            return None;
        }
        let port = free_port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-WWW", "-accept", &format!("127.0.0.1:{port}")])
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .current_dir(dir.join("www"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        if !wait_for_port(port, Duration::from_secs(5)) {
            return None;
        }
        Some(TlsSecrets { child, port, ca, dir })
    }
}

impl Drop for TlsSecrets {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn function_env(idp: &IdpPair, secrets: &TlsSecrets, extra: &[(&str, String)]) -> Vec<(String, String)> {
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
    let Some(secrets) = TlsSecrets::start(&[(A_OCID, A_CLIENT.1), (B_OCID, B_CLIENT.1)]) else {
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
    let missing = secrets.dir.join("no-such-bundle.pem").display().to_string();
    let (status, body, _) = call(&[("TOKENBRIDGE_CA_BUNDLE", missing)]);
    assert_eq!(status, 502, "{body}");
    assert_ne!(body["active"], true);
}
