//! Where forward-auth reads the caller's mutual TLS certificate from, for certificate-bound
//! tokens (RFC 8705 §3): one header, written by the gateway that terminated the TLS connection,
//! in that gateway's format. `TOKENBRIDGE_HTTP_CLIENT_CERT` names both:
//!
//! ```
//! use tokenbridge_http::client_cert::CertificateSource;
//!
//! let nginx = CertificateSource::parse(Some("X-Client-Cert:pem-urlencoded")).unwrap();
//! assert!(nginx.is_some());
//! assert!(CertificateSource::parse(None).unwrap().is_none(), "no source: no certificate is believed");
//! ```
//!
//! Without the setting no header is ever read as a certificate: a client could send any.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::percent_decode_str;
use tokenbridge_core::ClientCertificate;

/// How the gateway writes the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A URL-encoded PEM: nginx's `$ssl_client_escaped_cert`.
    PemUrlencoded,
    /// Base64 DER, maybe URL-encoded: Caddy's `{http.request.tls.client.certificate_der_base64}`,
    /// Traefik's `passTLSClientCert` with `pem: true` (the PEM body without its delimiters).
    Base64Der,
    /// Envoy's `x-forwarded-client-cert`: its `Hash` (hex SHA-256 of the DER), else its `Cert`.
    Xfcc,
}

/// The header and format of the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSource {
    /// Lower-case, as requests hold header names.
    header: String,
    format: Format,
}

/// What is wrong with `TOKENBRIDGE_HTTP_CLIENT_CERT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TOKENBRIDGE_HTTP_CLIENT_CERT: {0}")]
pub struct BadCertificateSource(String);

/// The certificate header could not be read: the gateway and the setting disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable;

impl CertificateSource {
    /// Reads `<header>:<format>`; `None` when not set.
    pub fn parse(setting: Option<&str>) -> Result<Option<Self>, BadCertificateSource> {
        let Some(text) = setting.map(str::trim).filter(|s| !s.is_empty()) else { return Ok(None) };
        let Some((header, format)) = text.split_once(':') else {
            return Err(BadCertificateSource(format!("{text:?} is not <header>:<format>")));
        };
        if header.is_empty() || !header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(BadCertificateSource(format!("{header:?} is not a header name (letters, digits and -)")));
        }
        if header.eq_ignore_ascii_case("authorization") || header.eq_ignore_ascii_case("dpop") {
            return Err(BadCertificateSource(format!("{header} carries the credential, not a certificate")));
        }
        let format = match format {
            "pem-urlencoded" => Format::PemUrlencoded,
            "base64-der" => Format::Base64Der,
            "xfcc" => Format::Xfcc,
            other => {
                return Err(BadCertificateSource(format!(
                    "unknown format {other:?} (pem-urlencoded, base64-der or xfcc)"
                )));
            }
        };
        Ok(Some(CertificateSource { header: header.to_ascii_lowercase(), format }))
    }

    /// The header this source reads, lower-case.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// The certificate in the header's value; `Ok(None)` for an empty value (no certificate:
    /// nginx's variable is empty on a connection without one).
    pub fn read(&self, value: &str) -> Result<Option<ClientCertificate>, Unreadable> {
        if value.is_empty() {
            return Ok(None);
        }
        let cert = match self.format {
            Format::PemUrlencoded => ClientCertificate::from_pem(&decoded(value)?),
            Format::Base64Der => {
                let der = STANDARD.decode(decoded(value)?.trim()).map_err(|_| Unreadable)?;
                ClientCertificate::from_der(&der)
            }
            Format::Xfcc => return xfcc(value).map(Some),
        };
        cert.map(Some).map_err(|_| Unreadable)
    }
}

fn decoded(value: &str) -> Result<String, Unreadable> {
    percent_decode_str(value).decode_utf8().map(|s| s.into_owned()).map_err(|_| Unreadable)
}

/// Envoy's header holds one element per proxy, `,`-separated, each `Key=value` pairs separated
/// by `;`, a value maybe quoted. Only one element is read: with several, which proxy saw the
/// client is a guess (configure Envoy with `SANITIZE_SET`, which leaves only its own).
fn xfcc(value: &str) -> Result<ClientCertificate, Unreadable> {
    let elements = split_unquoted(value, ',');
    let [element] = elements.as_slice() else { return Err(Unreadable) };
    let mut hash = None;
    let mut cert = None;
    for pair in split_unquoted(element, ';') {
        let (key, value) = pair.split_once('=').ok_or(Unreadable)?;
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        match key.trim() {
            k if k.eq_ignore_ascii_case("hash") => hash = Some(value.to_string()),
            k if k.eq_ignore_ascii_case("cert") => cert = Some(value.to_string()),
            _ => {}
        }
    }
    match (hash, cert) {
        (Some(hex), _) => {
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| hex.get(i..i + 2).filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit())))
                .map(|h| h.and_then(|h| u8::from_str_radix(h, 16).ok()))
                .collect::<Option<Vec<u8>>>()
                .ok_or(Unreadable)?;
            let sha256: [u8; 32] = bytes.try_into().map_err(|_| Unreadable)?;
            Ok(ClientCertificate::from_sha256(sha256))
        }
        (None, Some(pem)) => ClientCertificate::from_pem(&decoded(&pem)?).map_err(|_| Unreadable),
        (None, None) => Err(Unreadable),
    }
}

/// `text` split at `separator`s outside double quotes.
fn split_unquoted(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
    /// SHA-256 of the DER `30 00`.
    const SHA256_HEX: &str = "e4f60d0aa6d7f3d3b6a6494b1c861b99f649c6f9ec51abaf201b20f297327c95";

    fn thumbprint(setting: &str, value: &str) -> Result<Option<String>, Unreadable> {
        let source = CertificateSource::parse(Some(setting)).unwrap().unwrap();
        source.read(value).map(|c| c.map(|c| c.thumbprint()))
    }

    #[test]
    fn each_gateways_format_reads_the_same_certificate() {
        let expected = ClientCertificate::from_pem(PEM).unwrap().thumbprint();
        let nginx = percent_encoding::utf8_percent_encode(PEM, percent_encoding::NON_ALPHANUMERIC).to_string();
        assert_eq!(thumbprint("X-Client-Cert:pem-urlencoded", &nginx), Ok(Some(expected.clone())));
        assert_eq!(thumbprint("X-Client-Cert:base64-der", "MAA="), Ok(Some(expected.clone())));
        assert_eq!(thumbprint("X-Forwarded-Tls-Client-Cert:base64-der", "MAA%3D"), Ok(Some(expected.clone())));
        let xfcc = format!("By=spiffe://gw;Hash={SHA256_HEX};Subject=\"CN=alice,O=x\";URI=");
        assert_eq!(thumbprint("x-forwarded-client-cert:xfcc", &xfcc), Ok(Some(expected.clone())));
        let xfcc_cert = format!("Cert=\"{nginx}\";Subject=\"CN=a\"");
        assert_eq!(thumbprint("x-forwarded-client-cert:xfcc", &xfcc_cert), Ok(Some(expected)));
        assert_eq!(thumbprint("X-Client-Cert:pem-urlencoded", ""), Ok(None), "no certificate");
    }

    #[test]
    fn what_cannot_be_read_as_one_certificate_is_refused() {
        let two = format!("Hash={SHA256_HEX},Hash={SHA256_HEX}");
        for (setting, value) in [
            ("x-forwarded-client-cert:xfcc", two.as_str()),
            ("x-forwarded-client-cert:xfcc", "Hash=abc"),
            ("x-forwarded-client-cert:xfcc", "Subject=\"CN=a\""),
            ("x-forwarded-client-cert:xfcc", "Hash=zz"),
            ("x-forwarded-client-cert:xfcc", &format!("Hash=+{}", &SHA256_HEX[1..])),
            ("X-Client-Cert:base64-der", "not base64!"),
            ("X-Client-Cert:base64-der", "AgEA"),
            ("X-Client-Cert:pem-urlencoded", "%FF"),
            ("X-Client-Cert:pem-urlencoded", "MAA="),
        ] {
            assert_eq!(thumbprint(setting, value), Err(Unreadable), "{setting} {value}");
        }
    }

    #[test]
    fn the_setting_names_a_header_and_a_format() {
        for bad in
            ["X-Client-Cert", "X-Client-Cert:pem", ":xfcc", "X_Cert:xfcc", "Authorization:xfcc", "DPoP:base64-der"]
        {
            assert!(CertificateSource::parse(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(CertificateSource::parse(Some("X-Client-Cert:xfcc")).unwrap().unwrap().header(), "x-client-cert");
    }
}
