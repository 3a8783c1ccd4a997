//! Certificate-bound access tokens (RFC 8705 §3): a token whose `cnf` names the SHA-256 of a
//! client certificate (`x5t#S256`) is accepted only on a request that came with that certificate,
//! as the gateway that terminated the mutual TLS connection reports it.
//!
//! ```
//! use tokenbridge_core::ClientCertificate;
//!
//! let pem = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
//! let cert = ClientCertificate::from_pem(pem).unwrap();
//! assert_eq!(cert.thumbprint(), "5PYNCqbX89O2pklLHIYbmfZJxvnsUauvIBsg8pcyfJU");
//! ```

use std::fmt;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::dpop::Confirmation;
use crate::reason::Reason;

/// The client certificate of the request's mutual TLS connection, as its SHA-256.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ClientCertificate {
    sha256: [u8; 32],
}

/// The gateway's certificate value could not be read as one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client certificate is not one PEM or DER certificate")]
pub struct BadCertificate;

impl ClientCertificate {
    /// One PEM `CERTIFICATE` (the leaf, as gateways pass it); more than one, or none, is refused.
    pub fn from_pem(pem: &str) -> Result<Self, BadCertificate> {
        let mut certs = CertificateDer::pem_slice_iter(pem.as_bytes());
        match (certs.next(), certs.next()) {
            (Some(Ok(cert)), None) => Self::from_der(cert.as_ref()),
            _ => Err(BadCertificate),
        }
    }

    /// DER bytes: a SEQUENCE, as every X.509 certificate is.
    pub fn from_der(der: &[u8]) -> Result<Self, BadCertificate> {
        if der.len() < 2 || der[0] != 0x30 {
            return Err(BadCertificate);
        }
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(digest(&SHA256, der).as_ref());
        Ok(ClientCertificate { sha256 })
    }

    /// A certificate known by its SHA-256 alone (Envoy's `x-forwarded-client-cert` `Hash`).
    pub fn from_sha256(sha256: [u8; 32]) -> Self {
        ClientCertificate { sha256 }
    }

    /// `x5t#S256`: the base64url SHA-256 of the DER.
    pub fn thumbprint(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.sha256)
    }
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientCertificate({})", self.thumbprint())
    }
}

/// Whether the validated token's certificate binding holds for the request's certificate: a
/// token bound to a certificate only with that certificate. `Err` is the denial's reason.
pub(crate) fn bound(presented: Option<&ClientCertificate>, cnf: Option<&Confirmation>) -> Result<(), Reason> {
    match (cnf.and_then(|c| c.x5t_s256.as_deref()), presented) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(Reason::CertificateMissing),
        (Some(bound), Some(cert)) if cert.thumbprint() == bound => Ok(()),
        (Some(_), Some(_)) => Err(Reason::CertificateMismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound_to(thumbprint: &str) -> Confirmation {
        Confirmation { jkt: None, x5t_s256: Some(thumbprint.into()), other: false }
    }

    #[test]
    fn a_bound_token_needs_its_own_certificate() {
        let cert = ClientCertificate::from_der(&[0x30, 0x00]).unwrap();
        let other = ClientCertificate::from_der(&[0x30, 0x01, 0x00]).unwrap();
        let cnf = bound_to(&cert.thumbprint());
        assert_eq!(bound(Some(&cert), Some(&cnf)), Ok(()));
        assert_eq!(bound(Some(&other), Some(&cnf)), Err(Reason::CertificateMismatch));
        assert_eq!(bound(None, Some(&cnf)), Err(Reason::CertificateMissing));
        assert_eq!(bound(Some(&cert), None), Ok(()), "an unbound token may come over mutual TLS");
        assert_eq!(bound(None, None), Ok(()));
    }

    #[test]
    fn only_one_certificate_is_read() {
        let one = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        assert!(ClientCertificate::from_pem(one).is_ok());
        assert_eq!(ClientCertificate::from_pem(&format!("{one}{one}")), Err(BadCertificate));
        assert_eq!(ClientCertificate::from_pem("MAA="), Err(BadCertificate));
        assert_eq!(ClientCertificate::from_pem(""), Err(BadCertificate));
        assert_eq!(ClientCertificate::from_der(&[0x02, 0x01, 0x00]), Err(BadCertificate));
        assert_eq!(ClientCertificate::from_der(&[]), Err(BadCertificate));
    }
}
