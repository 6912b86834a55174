//! `trusted_proxies` (CONTRACT §8.6): the reverse proxies whose `X-Forwarded-For` is
//! believed. Behind a proxy every request comes from the proxy's address; without this list
//! all clients would share one throttling counter, and with a list too wide anybody could
//! pick the address they are counted under.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use crate::{Config, ConfigError, LimitsConfig};

/// The parsed `trusted_proxies`: networks (`10.0.0.0/8`) and single addresses
/// (`192.0.2.1`, read as `/32` or `/128`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses the list; an entry that is neither an address nor a network is an error
    /// naming the key and the entry.
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, ConfigError> {
        entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let text = entry.trim();
                IpNet::from_str(text)
                    .or_else(|_| IpAddr::from_str(text).map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        ConfigError::new(
                            format!("trusted_proxies[{i}]"),
                            format!(
                                "{entry:?} is not an IP address or a network in CIDR notation (e.g. \"10.0.0.0/8\")"
                            ),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    /// Whether `ip` is one of the trusted proxies (an IPv4 address mapped into IPv6, as a
    /// dual-stack socket reports it, counts as the IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether no proxy is trusted (then `X-Forwarded-For` is never read).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Config {
    /// The parsed `trusted_proxies` (validated at load, so an error here means a
    /// configuration built without [`Config::load`]).
    pub fn trusted_proxies(&self) -> Result<TrustedProxies, ConfigError> {
        TrustedProxies::parse(&self.trusted_proxies)
    }
}

impl LimitsConfig {
    /// Checks the throttling numbers: a zero would refuse everything.
    pub(crate) fn validate_guard(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            (
                "limits.auth_failures_per_minute",
                u64::from(self.auth_failures_per_minute),
            ),
            ("limits.sign_in_failures", u64::from(self.sign_in_failures)),
            (
                "limits.sign_in_failures_per_client",
                u64::from(self.sign_in_failures_per_client),
            ),
            ("limits.sign_in_window_seconds", self.sign_in_window_seconds),
            ("limits.anonymous_writes", u64::from(self.anonymous_writes)),
            (
                "limits.anonymous_writes_window_seconds",
                self.anonymous_writes_window_seconds,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::new(key, "must be at least 1"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_and_single_addresses_match_what_they_cover() {
        let p = proxies(&[
            "10.0.0.0/8",
            "192.0.2.7",
            "2001:db8::/32",
            " 172.16.5.9/16 ",
        ]);
        assert!(p.contains(ip("10.0.0.1")));
        assert!(p.contains(ip("10.255.255.255")));
        assert!(!p.contains(ip("11.0.0.1")));
        assert!(p.contains(ip("192.0.2.7")));
        assert!(!p.contains(ip("192.0.2.8")), "a bare address is a /32");
        assert!(p.contains(ip("2001:db8:1::5")));
        assert!(!p.contains(ip("2001:db9::1")));
        // Host bits in a network are dropped: 172.16.5.9/16 is 172.16.0.0/16.
        assert!(p.contains(ip("172.16.200.1")));
        assert!(!p.contains(ip("172.17.0.1")));
        // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
        assert!(p.contains(ip("::ffff:10.1.2.3")));
        assert!(!p.contains(ip("::ffff:11.1.2.3")));
        assert!(proxies(&[]).is_empty());
        assert!(!proxies(&[]).contains(ip("127.0.0.1")));
    }

    #[test]
    fn a_bad_entry_names_the_key_and_the_entry() {
        for bad in ["10.0.0.0/33", "proxy.example.it", "", "10.0.0/8"] {
            let err =
                TrustedProxies::parse(&["127.0.0.1".to_owned(), bad.to_owned()]).expect_err(bad);
            assert_eq!(err.key, "trusted_proxies[1]", "{bad}");
            assert!(err.message.contains(&format!("{bad:?}")), "{err}");
        }
    }
}
