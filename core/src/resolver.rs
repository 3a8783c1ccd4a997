//! Name resolution for the IdP calls.
//!
//! ureq resolves a URL's host before it looks for a kept-alive connection, and its default
//! resolver spawns a thread per lookup so that the lookup can time out. On the decision path that
//! is a thread and a DNS query for every IdP call, even when a pooled connection then carries it.
//! This resolver answers IP literals on the spot and remembers a name's addresses for a short
//! while, so only new names (and names whose memory ran out) pay for the threaded lookup.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver as Resolve};
use ureq::unversioned::transport::NextTimeout;

use crate::sync::lock;

/// How long a name's addresses are reused. Only new connections use them, so a moved IdP is
/// reached at its new address this long after DNS changed at the latest.
const REMEMBER: Duration = Duration::from_secs(30);

/// Names remembered at most; the hosts come from configuration and discovery, so a handful.
const MAX_NAMES: usize = 64;

#[derive(Debug, Default)]
pub(crate) struct Resolver {
    lookup: DefaultResolver,
    names: Mutex<HashMap<(String, u16), (Instant, ResolvedSocketAddrs)>>,
}

impl Resolve for Resolver {
    fn resolve(&self, uri: &Uri, config: &Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let Some((host, port)) = host_and_port(uri) else {
            // Leave the refusal of odd URLs to ureq's own resolver.
            return self.lookup.resolve(uri, config, timeout);
        };
        if let Ok(ip) = host.parse::<IpAddr>() {
            let mut addrs = self.lookup.empty();
            addrs.push(SocketAddr::new(ip, port));
            return Ok(addrs);
        }
        let key = (host.to_ascii_lowercase(), port);
        if let Some((at, addrs)) = lock(&self.names).get(&key)
            && at.elapsed() < REMEMBER
        {
            return Ok(addrs.clone());
        }
        let addrs = self.lookup.resolve(uri, config, timeout)?;
        let mut names = lock(&self.names);
        if names.len() >= MAX_NAMES {
            names.retain(|_, (at, _)| at.elapsed() < REMEMBER);
        }
        if names.len() < MAX_NAMES {
            names.insert(key, (Instant::now(), addrs.clone()));
        }
        Ok(addrs)
    }
}

/// The host (IPv6 literals without their brackets) and the port, explicit or the scheme's.
fn host_and_port(uri: &Uri) -> Option<(&str, u16)> {
    let authority = uri.authority()?;
    let port = match (authority.port_u16(), uri.scheme_str()) {
        (Some(port), _) => port,
        (None, Some("https")) => 443,
        (None, Some("http")) => 80,
        _ => return None,
    };
    let host = authority.host();
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(r: &Resolver, url: &str) -> Vec<SocketAddr> {
        let uri: Uri = url.parse().unwrap();
        r.resolve(&uri, &Config::default(), NextTimeout::default()).unwrap().iter().copied().collect()
    }

    #[test]
    fn ip_literals_are_answered_without_a_lookup() {
        let r = Resolver::default();
        assert_eq!(resolve(&r, "http://127.0.0.1:8080/x"), ["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]);
        assert_eq!(resolve(&r, "https://[::1]/x"), ["[::1]:443".parse::<SocketAddr>().unwrap()]);
        assert!(lock(&r.names).is_empty(), "literals are not remembered");
    }

    #[test]
    fn names_are_looked_up_once_and_remembered() {
        let r = Resolver::default();
        let first = resolve(&r, "http://localhost:9/a");
        assert!(!first.is_empty() && first.iter().all(|a| a.ip().is_loopback() && a.port() == 9), "{first:?}");
        let remembered = lock(&r.names).get(&("localhost".to_string(), 9)).map(|(_, a)| a.len());
        assert_eq!(remembered, Some(first.len()));
        assert_eq!(resolve(&r, "http://LOCALHOST:9/b"), first);
    }

    #[test]
    fn scheme_default_ports() {
        assert_eq!(host_and_port(&"http://idp.example/x".parse().unwrap()), Some(("idp.example", 80)));
        assert_eq!(host_and_port(&"https://idp.example/x".parse().unwrap()), Some(("idp.example", 443)));
        assert_eq!(host_and_port(&"ftp://idp.example/x".parse().unwrap()), None);
    }
}
