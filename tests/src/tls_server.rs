//! `openssl s_server` on loopback with a certificate from a private CA: a TLS peer no public
//! root vouches for, trusted only through `TOKENBRIDGE_CA_BUNDLE`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::wait_for_port;
use crate::http_server::free_port;

pub struct TlsServer {
    child: Child,
    pub port: u16,
    /// The CA that signed the server's certificate.
    pub ca: PathBuf,
    dir: PathBuf,
}

impl TlsServer {
    /// Serves `files` (paths under the server's root, and their contents) with `-WWW`, or with
    /// none, `s_server`'s own status page (`-www`). `None` when openssl cannot make or serve it.
    pub fn start(files: &[(&str, Vec<u8>)]) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("tb-tls-{}-{}", std::process::id(), free_port()));
        let www = dir.join("www");
        std::fs::create_dir_all(&www).ok()?;
        for (path, contents) in files {
            let file = www.join(path);
            std::fs::create_dir_all(file.parent()?).ok()?;
            std::fs::write(file, contents).ok()?;
        }
        let (ca, cert, key) = private_ca(&dir)?;
        let port = free_port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", if files.is_empty() { "-www" } else { "-WWW" }])
            .args(["-accept", &format!("127.0.0.1:{port}")])
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .current_dir(&www)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = TlsServer { child, port, ca, dir };
        wait_for_port(port, Duration::from_secs(5)).then_some(server)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private CA in `dir`, and a server certificate it signed for 127.0.0.1: (CA, cert, key).
fn private_ca(dir: &Path) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let (ca, ca_key, cert, key) = (dir.join("ca.pem"), dir.join("ca.key"), dir.join("cert.pem"), dir.join("key.pem"));
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
        &[&["req", "-x509", "-subj", "/CN=tokenbridge test CA"][..], &ec].concat(),
        &[("-keyout", &ca_key), ("-out", &ca)],
    ) && openssl(
        &[&["req", "-subj", "/CN=127.0.0.1"][..], &ec[..5]].concat(),
        &[("-keyout", &key), ("-out", &csr)],
    ) && openssl(
        &["x509", "-req", "-CAcreateserial", "-days", "1"],
        &[("-in", &csr), ("-CA", &ca), ("-CAkey", &ca_key), ("-extfile", &ext), ("-out", &cert)],
    );
    made.then_some((ca, cert, key))
}
