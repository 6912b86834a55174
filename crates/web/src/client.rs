//! The client's address: what sign-in throttling, rate limits and the security log count
//! by. Behind a reverse proxy every TCP connection comes from the proxy, so the address is
//! taken from `X-Forwarded-For`, but only when the peer is one of `trusted_proxies`
//! (CONTRACT §8.6); from anybody else the header is the client's own claim and is ignored.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use sportello_config::TrustedProxies;

use crate::AppState;

/// The header a reverse proxy appends the address it saw to.
const FORWARDED_FOR: &str = "x-forwarded-for";

/// The client's address, after `trusted_proxies`. Without connection information (tests
/// that call the router directly) it is `0.0.0.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl ClientAddress {
    /// The address as the counters and the security log write it.
    pub fn key(&self) -> String {
        self.0.to_string()
    }
}

impl std::fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(known) = parts.extensions.get::<ClientAddress>() {
            return Ok(*known);
        }
        let address = of_parts(parts, state.guard.trusted_proxies());
        parts.extensions.insert(address);
        Ok(address)
    }
}

/// The client's address of a request's parts.
pub fn of_parts(parts: &Parts, trusted: &TrustedProxies) -> ClientAddress {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    ClientAddress(client_address(peer, &parts.headers, trusted))
}

/// The client behind `peer`: the right-most address of `X-Forwarded-For` that is not
/// itself a trusted proxy, when `peer` is trusted; otherwise `peer`.
///
/// Proxies append, so the entries to the right were written by proxies we trust and the
/// first untrusted one from the right is the last address a trusted proxy saw: everything
/// to its left is whatever the client chose to send. An entry that is not an address
/// stops the walk at the last trusted hop (a trusted proxy that forwards garbage is
/// misconfigured; counting by the proxy is the safe side).
pub fn client_address(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> IpAddr {
    let Some(peer) = peer.map(|p| p.to_canonical()) else {
        return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    };
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    let entries: Vec<&str> = headers
        .get_all(FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let mut nearest = peer;
    for entry in entries.iter().rev() {
        let Some(hop) = parse_hop(entry) else {
            return nearest;
        };
        if !trusted.contains(hop) {
            return hop;
        }
        nearest = hop;
    }
    nearest
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`192.0.2.1:4711`,
/// `[2001:db8::1]:4711`) or in brackets.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse::<IpAddr>().ok())
        })?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn client(peer: &str, xff: &[&str], proxies: &[&str]) -> IpAddr {
        client_address(Some(ip(peer)), &headers(xff), &trusted(proxies))
    }

    #[test]
    fn the_header_is_ignored_unless_the_peer_is_a_trusted_proxy() {
        assert_eq!(
            client("203.0.113.9", &["198.51.100.1"], &[]),
            ip("203.0.113.9")
        );
        assert_eq!(
            client("203.0.113.9", &["198.51.100.1"], &["10.0.0.0/8"]),
            ip("203.0.113.9"),
            "a stranger cannot choose the address it is counted under"
        );
        assert_eq!(
            client("10.0.0.2", &["198.51.100.1"], &["10.0.0.0/8"]),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_address(None, &headers(&["198.51.100.1"]), &trusted(&["10.0.0.0/8"])),
            ip("0.0.0.0")
        );
    }

    #[test]
    fn the_right_most_untrusted_entry_is_the_client() {
        let proxies = &["10.0.0.0/8", "192.0.2.0/24"];
        // The client forged a left-most entry; the proxies appended the real one.
        assert_eq!(
            client("10.0.0.2", &["1.1.1.1, 198.51.100.7, 192.0.2.5"], proxies),
            ip("198.51.100.7")
        );
        // Several headers are one list, in order.
        assert_eq!(
            client(
                "10.0.0.2",
                &["1.1.1.1", "198.51.100.7", "192.0.2.5"],
                proxies
            ),
            ip("198.51.100.7")
        );
        // Only trusted hops: the farthest one is the client.
        assert_eq!(
            client("10.0.0.2", &["10.9.9.9, 192.0.2.5"], proxies),
            ip("10.9.9.9")
        );
        // No header: the proxy itself.
        assert_eq!(client("10.0.0.2", &[], proxies), ip("10.0.0.2"));
        // Ports, brackets, IPv6 and spaces.
        assert_eq!(
            client("10.0.0.2", &[" 198.51.100.7:4711 "], proxies),
            ip("198.51.100.7")
        );
        assert_eq!(
            client("10.0.0.2", &["[2001:db8::7]:4711"], proxies),
            ip("2001:db8::7")
        );
        assert_eq!(
            client("10.0.0.2", &["[2001:db8::8]"], proxies),
            ip("2001:db8::8")
        );
        assert_eq!(
            client("10.0.0.2", &["2001:db8::9"], proxies),
            ip("2001:db8::9")
        );
        // IPv4 mapped into IPv6 counts as IPv4, for the peer and for entries.
        assert_eq!(
            client("::ffff:10.0.0.2", &["::ffff:198.51.100.7"], proxies),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn garbage_stops_at_the_last_trusted_hop() {
        let proxies = &["10.0.0.0/8"];
        assert_eq!(client("10.0.0.2", &["unknown"], proxies), ip("10.0.0.2"));
        assert_eq!(
            client("10.0.0.2", &["unknown, 10.0.0.3"], proxies),
            ip("10.0.0.3")
        );
        // Garbage left of a real client address does not matter.
        assert_eq!(
            client("10.0.0.2", &["<script>, 198.51.100.7"], proxies),
            ip("198.51.100.7")
        );
    }
}
