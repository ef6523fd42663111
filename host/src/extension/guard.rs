//! Which addresses an extension may call. A topology is data anyone with API access can set,
//! and an extension's endpoint makes the host send requests where it says: without a guard,
//! that is a way to reach the host's own API from inside (bypassing its token) or a cloud
//! metadata service (stealing its credentials). So these are refused unless the operator
//! allows them (`--extension-allow`): link-local addresses (169.254.0.0/16, fe80::/10, which
//! hold the metadata services), AWS's IPv6 metadata address, unspecified, multicast and
//! broadcast addresses, and the host's own API port on a loopback address (or exactly its
//! address). Every request is checked against the addresses its name resolves to then, so a
//! name cannot be re-pointed after activation; redirects are never followed.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};

/// The policy: the host's own API address and the operator's exceptions.
#[derive(Clone, Debug, Default)]
pub struct AddressPolicy {
    /// Where this host's API listens.
    pub own: Option<SocketAddr>,
    /// Addresses allowed even though the rules above refuse them.
    pub allowed: Vec<IpAddr>,
}

impl AddressPolicy {
    /// Why `addr` may not be called, if it may not.
    pub fn refusal(&self, addr: SocketAddr) -> Option<String> {
        let ip = canonical(addr.ip());
        if self.allowed.iter().any(|a| canonical(*a) == ip) {
            return None;
        }
        if let Some(own) = self.own
            && addr.port() == own.port()
            && (canonical(own.ip()) == ip || ip.is_loopback() && (own.ip().is_unspecified() || own.ip().is_loopback()))
        {
            return Some(format!("{addr} is this host's own API"));
        }
        let why = match ip {
            IpAddr::V4(v4) if v4.is_link_local() => "a link-local address (cloud metadata services live there)",
            IpAddr::V4(v4) if v4.is_broadcast() => "a broadcast address",
            IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => "a link-local address",
            IpAddr::V6(v6) if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) => "a cloud metadata address",
            ip if ip.is_unspecified() => "an unspecified address",
            ip if ip.is_multicast() => "a multicast address",
            _ => return None,
        };
        Some(format!("{addr} is {why}"))
    }

    /// At activation: an address written in the URL is judged now (a refusal is the
    /// topology's error, a 400); a name is left to each request, which resolves it then.
    pub fn check_literal(&self, host: &str, port: u16) -> Result<(), String> {
        match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            Ok(_) => self.check(host, port),
            Err(_) => Ok(()),
        }
    }

    /// Resolves `host:port` and checks every address it names; returns the first refusal.
    /// Resolution errors are left to the request (which reports them as it tries).
    pub fn check(&self, host: &str, port: u16) -> Result<(), String> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let Ok(addrs) = (host, port).to_socket_addrs() else { return Ok(()) };
        for a in addrs {
            if let Some(why) = self.refusal(a) {
                return Err(format!("{why}; allow it with --extension-allow {}", a.ip()));
            }
        }
        Ok(())
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn metadata_link_local_and_the_own_api_are_refused_unless_allowed() {
        let p = AddressPolicy { own: Some(sa("0.0.0.0:8080")), allowed: Vec::new() };
        for bad in [
            "169.254.169.254:80",
            "[fe80::1]:80",
            "[fd00:ec2::254]:80",
            "127.0.0.1:8080",
            "[::1]:8080",
            "[::ffff:169.254.169.254]:80",
            "0.0.0.0:80",
            "224.0.0.1:80",
            "255.255.255.255:80",
        ] {
            assert!(p.refusal(sa(bad)).is_some(), "{bad}");
        }
        for good in ["127.0.0.1:5000", "10.0.0.5:8080", "192.168.1.20:80", "[::1]:5000", "8.8.8.8:443"] {
            assert_eq!(p.refusal(sa(good)), None, "{good}");
        }
        let narrow = AddressPolicy { own: Some(sa("127.0.0.1:8080")), allowed: vec!["169.254.1.1".parse().unwrap()] };
        assert!(narrow.refusal(sa("127.0.0.1:8080")).is_some());
        assert_eq!(narrow.refusal(sa("10.0.0.5:8080")), None);
        assert_eq!(narrow.refusal(sa("169.254.1.1:80")), None);
        assert!(narrow.check("localhost", 8080).is_err());
        assert!(narrow.check("169.254.169.254", 80).unwrap_err().contains("--extension-allow 169.254.169.254"));
        assert!(narrow.check("127.0.0.1", 9).is_ok());
    }
}
