//! Who is asking: a request's client address (the TCP peer, or, when the peer is a configured
//! trusted reverse proxy, the right-most untrusted `X-Forwarded-For` address) and whether that
//! proxy says the client came over HTTPS. Rate limits and the bad-credential brake key on the
//! address; forwarded headers from any other peer are ignored, so a client cannot pick its own.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;

/// A trusted reverse proxy: one address (`10.0.0.5`, `::1`) or a network (`10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy {
    net: IpAddr,
    prefix: u8,
}

impl FromStr for TrustedProxy {
    type Err = String;

    fn from_str(s: &str) -> Result<TrustedProxy, String> {
        let bad = || format!("trusted proxy {s:?}: expected an IP address or a CIDR network (10.0.0.0/8, fd00::/8)");
        let (ip, prefix) = match s.trim().split_once('/') {
            Some((ip, p)) => (ip, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s.trim(), None),
        };
        let net = IpAddr::from_str(ip).map_err(|_| bad())?.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(TrustedProxy { net, prefix })
    }
}

impl TrustedProxy {
    /// Whether `ip` is this proxy (or inside this network).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The client of one request, as the hub's middleware resolved it (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// `None` when the request came without a peer address (a router called in-process).
    pub ip: Option<IpAddr>,
    /// A trusted proxy said (`X-Forwarded-Proto: https`) the client reached it over HTTPS.
    pub https_via_proxy: bool,
}

impl Client {
    /// The rate-limit key of this client (`"unknown"` without an address: all such requests
    /// share one bucket).
    pub fn key(&self) -> String {
        self.ip.map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
    }
}

fn parse_forwarded_addr(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    IpAddr::from_str(s).ok().or_else(|| SocketAddr::from_str(s).ok().map(|a| a.ip())).map(|ip| ip.to_canonical())
}

/// Resolves the client of a request whose TCP peer is `peer`.
pub fn resolve(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[TrustedProxy]) -> Client {
    let peer = peer.map(|p| p.to_canonical());
    let is_trusted = |ip: IpAddr| trusted.iter().any(|t| t.contains(ip));
    let Some(p) = peer.filter(|p| is_trusted(*p)) else { return Client { ip: peer, https_via_proxy: false } };
    // Right to left: each trusted hop vouches for the address to its left; the first address
    // no trusted proxy owns is the client. An unreadable entry ends the walk at the hop that
    // wrote it.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter(|h| !h.trim().is_empty())
        .collect();
    let mut client = p;
    for hop in hops.iter().rev() {
        match parse_forwarded_addr(hop) {
            Some(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            None => break,
        }
    }
    let https = headers
        .get_all("x-forwarded-proto")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    Client { ip: Some(client), https_via_proxy: https }
}

/// The client `hub`'s middleware resolved for a request (`"unknown"` when it did not run).
pub(crate) fn of(extensions: &axum::http::Extensions) -> Client {
    extensions.get::<Client>().copied().unwrap_or(Client { ip: None, https_via_proxy: false })
}

/// Marks a response as a failed authentication that did not answer 401 (a browser with an
/// unknown session cookie is redirected to the login form instead).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuthFailed;

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(axum::http::HeaderName::from_str(k).unwrap(), axum::http::HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn proxies_parse_and_match() {
        let p: TrustedProxy = "10.0.0.0/8".parse().unwrap();
        assert!(p.contains("10.200.1.2".parse().unwrap()));
        assert!(!p.contains("11.0.0.1".parse().unwrap()));
        assert!(p.contains("::ffff:10.0.0.1".parse().unwrap()), "IPv4-mapped addresses are IPv4");
        let one: TrustedProxy = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()) && !one.contains("127.0.0.2".parse().unwrap()));
        let v6: TrustedProxy = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()) && !v6.contains("fe80::1".parse().unwrap()));
        let all: TrustedProxy = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        for bad in ["", "10.0.0.0/33", "::/129", "example.org", "10.0.0.0/x"] {
            assert!(bad.parse::<TrustedProxy>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let trusted: Vec<TrustedProxy> = vec!["10.0.0.1".parse().unwrap(), "10.1.0.0/16".parse().unwrap()];
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7"), ("x-forwarded-for", "10.1.2.3"), ("x-forwarded-proto", "https")]);
        // An untrusted peer: its headers are ignored.
        let c = resolve(Some("198.51.100.9".parse().unwrap()), &h, &trusted);
        assert_eq!(c, Client { ip: Some("198.51.100.9".parse().unwrap()), https_via_proxy: false });
        // A trusted peer: the right-most address no trusted proxy owns (not the spoofed left one).
        let c = resolve(Some("10.0.0.1".parse().unwrap()), &h, &trusted);
        assert_eq!(c, Client { ip: Some("203.0.113.7".parse().unwrap()), https_via_proxy: true });
        // Nothing forwarded: the proxy itself; garbage ends the walk.
        assert_eq!(resolve(Some("10.0.0.1".parse().unwrap()), &HeaderMap::new(), &trusted).ip, Some("10.0.0.1".parse().unwrap()));
        let h = headers(&[("x-forwarded-for", "1.1.1.1, junk, 10.1.0.9:443")]);
        assert_eq!(resolve(Some("10.0.0.1".parse().unwrap()), &h, &trusted).ip, Some("10.1.0.9".parse().unwrap()));
        assert_eq!(resolve(None, &h, &trusted), Client { ip: None, https_via_proxy: false });
    }
}
