//! What an IdP, JWKS or Secrets URL must be, and how a problem may show one that is not.

/// Why a URL is refused as an IdP, JWKS or Secrets endpoint. A rejected URL may carry a secret
/// (`user:password@`, a query, a secret pasted into the wrong setting), so none of these holds
/// the URL: at most its `scheme://host[:port]`, its origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("must not carry credentials (user:password@); configure the client secret instead")]
    Credentials,
    #[error("is not a valid URL")]
    Unparsable,
    #[error("has no host")]
    NoHost,
    #[error("has a port that is not a number from 1 to 65535")]
    BadPort,
    #[error("must not have a query string{}", shown_origin(.0))]
    Query(Option<String>),
    #[error("must use https; plain http is allowed only on loopback{}", shown_origin(.0))]
    PlainHttp(Option<String>),
    #[error("must be an https URL{}", shown_origin(.0))]
    NotHttps(Option<String>),
}

fn shown_origin(origin: &Option<String>) -> String {
    origin.as_ref().map(|o| format!(" ({o})")).unwrap_or_default()
}

/// IdP endpoints must be `https`, except on loopback where local testing runs plain `http`.
pub fn check_url(url: &str) -> Result<(), UrlError> {
    // Checked before parsing: a URL with credentials that does not parse must not slip through
    // to a message that quotes it.
    if carries_credentials(url) {
        return Err(UrlError::Credentials);
    }
    let uri: http::Uri = url.parse().map_err(|_| UrlError::Unparsable)?;
    let host = uri.host().ok_or(UrlError::NoHost)?;
    if !port_is_valid(uri.authority().map_or("", |a| a.as_str())) {
        return Err(UrlError::BadPort);
    }
    let origin = origin(&uri);
    if uri.query().is_some() {
        // Queries would be logged by proxies and are never needed for these endpoints.
        return Err(UrlError::Query(origin));
    }
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if is_loopback(host) => Ok(()),
        Some("http") => Err(UrlError::PlainHttp(origin)),
        _ => Err(UrlError::NotHttps(origin)),
    }
}

/// No port, or 1*DIGIT within 1..=65535: a port that does not parse (`:notaport`, `:+443`,
/// `:99999`) is read by each client its own way, or as another.
fn port_is_valid(authority: &str) -> bool {
    let after_host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(_, rest)| rest),
        None => authority.find(':').map_or("", |i| &authority[i..]),
    };
    match after_host.strip_prefix(':') {
        None => after_host.is_empty(),
        Some(port) => port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p > 0),
    }
}

/// `user:password@` in what would be the authority, whether or not the rest parses.
fn carries_credentials(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?', '#']).next().is_some_and(|authority| authority.contains('@'))
}

/// `scheme://host[:port]`, when both scheme and host are there: what a problem may show of a URL.
fn origin(uri: &http::Uri) -> Option<String> {
    let (scheme, host) = (uri.scheme_str()?, uri.host()?);
    Some(match uri.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

/// How a problem names a URL: in full when it is valid, else only its scheme and host.
pub(crate) fn shown_url(url: &str) -> String {
    if check_url(url).is_ok() {
        return url.to_string();
    }
    match url.parse::<http::Uri>().ok().filter(|_| !carries_credentials(url)).as_ref().and_then(origin) {
        Some(origin) => format!("{origin}/…"),
        None => "(an invalid URL)".into(),
    }
}

/// Whether two valid URLs are on one origin (scheme, host and port, RFC 6454), compared as a
/// client connects to them: scheme and host in any case, a default port written or not.
pub(crate) fn same_origin(a: &str, b: &str) -> bool {
    let key = |url: &str| {
        let uri = url.parse::<http::Uri>().ok().filter(|_| check_url(url).is_ok())?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
        Some((scheme, uri.host()?.to_ascii_lowercase(), port))
    };
    key(a).is_some_and(|a| key(b) == Some(a))
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_must_be_a_number_from_1_to_65535() {
        for url in [
            "https://idp.example:notaport/x",
            "https://idp.example:99999/x",
            "https://idp.example:0/x",
            "https://idp.example:+443/x",
            "https://idp.example:-1/x",
        ] {
            let why = check_url(url).expect_err(url);
            assert!(matches!(why, UrlError::BadPort | UrlError::Unparsable), "{url}: {why}");
        }
        assert!(check_url("https://idp.example:8443/x").is_ok());
        assert!(check_url("http://[::1]:65535/x").is_ok());
    }

    #[test]
    fn urls_must_be_https_except_loopback() {
        assert!(check_url("https://idp.example/t").is_ok());
        assert!(check_url("http://127.0.0.1:8080/t").is_ok());
        assert!(check_url("http://localhost/t").is_ok());
        assert!(check_url("http://[::1]:9/t").is_ok());
        assert!(check_url("http://10.0.0.1/t").is_err());
        assert!(check_url("ftp://idp.example/t").is_err());
        assert!(check_url("https://idp.example/t?x=1").is_err());
        assert!(check_url("not a url").is_err());
        let with_password = check_url("https://user:hunter2@idp.example/t").unwrap_err();
        assert_eq!(with_password, UrlError::Credentials);
        assert!(!with_password.to_string().contains("hunter2"), "{with_password}");
    }

    #[test]
    fn one_origin_is_one_scheme_host_and_port_whatever_the_case_or_default_port() {
        let token = "https://idcs-1.identity.oraclecloud.com/oauth2/v1/token";
        assert!(same_origin(token, "https://IDCS-1.identity.oraclecloud.com:443/admin/v1/SigningCert/jwk"));
        assert!(same_origin("http://127.0.0.1:8080/token", "http://127.0.0.1:8080/jwks"));
        for other in [
            "https://idcs-2.identity.oraclecloud.com/admin/v1/SigningCert/jwk",
            "https://idcs-1.identity.oraclecloud.com:8443/admin/v1/SigningCert/jwk",
            "https://idcs-1.identity.oraclecloud.com.evil.example/admin/v1/SigningCert/jwk",
            "http://127.0.0.1:8081/jwks",
            "not a url",
        ] {
            assert!(!same_origin(token, other), "{other}");
        }
        assert!(!same_origin("http://idp.example/t", "http://idp.example/j"), "only URLs tokenbridge accepts");
    }

    #[test]
    fn a_rejected_url_shows_its_scheme_and_host_when_they_parse() {
        let shown = |url| check_url(url).map_err(|e| e.to_string());
        assert_eq!(
            shown("https://idp.example:8443/t?x=1"),
            Err("must not have a query string (https://idp.example:8443)".into())
        );
        assert_eq!(shown("ftp://idp.example/t"), Err("must be an https URL (ftp://idp.example)".into()));
        assert_eq!(shown("https://user:pw@idp.example/t?x=1").map_err(|e| e.contains("pw")), Err(false));
    }
}
