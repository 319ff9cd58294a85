//! keepalived's address syntax inside a `virtual_ipaddress` string:
//! `ADDR[/LEN][ dev IFACE][ label LABEL]`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressFamily {
    V4,
    V6,
}

impl AddressFamily {
    pub fn of(addr: &IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    /// Prefix length of a single host, the default when none is written.
    pub fn host_prefix_len(self) -> u8 {
        match self {
            Self::V4 => 32,
            Self::V6 => 128,
        }
    }
}

impl fmt::Display for AddressFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        })
    }
}

/// One virtual address moved with the VRRP instance.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VirtualAddress {
    pub address: IpAddr,
    pub prefix_len: u8,
    /// Interface to put the address on; `None` means the instance's `interface`.
    pub dev: Option<String>,
    /// IPv4 address label (`ip addr … label`), e.g. `eth0:vip`.
    pub label: Option<String>,
    /// keepalived's `track_group NAME` (static addresses only): the `[[track_group]]`
    /// whose instances track `dev` (FAULT while it is down).
    pub track_group: Option<String>,
}

impl VirtualAddress {
    pub fn family(&self) -> AddressFamily {
        AddressFamily::of(&self.address)
    }
}

impl fmt::Display for VirtualAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)?;
        if let Some(dev) = &self.dev {
            write!(f, " dev {dev}")?;
        }
        if let Some(label) = &self.label {
            write!(f, " label {label}")?;
        }
        if let Some(group) = &self.track_group {
            write!(f, " track_group {group}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("empty address")]
    Empty,
    #[error("`{0}` is not an IP address")]
    BadAddress(String),
    #[error("prefix length `{0}` is not a number")]
    BadPrefix(String),
    #[error("prefix length /{len} is too long for an {family} address (at most /{max})")]
    PrefixTooLong {
        len: u32,
        family: AddressFamily,
        max: u8,
    },
    #[error("`{0}` needs a value")]
    MissingValue(String),
    #[error("`{0}` is given twice")]
    Repeated(String),
    #[error("unsupported option `{0}`")]
    UnsupportedOption(String),
    #[error("interface name `{0}` is not valid")]
    BadInterface(String),
    #[error("labels exist only for IPv4 addresses")]
    LabelOnIpv6,
    #[error("label `{0}` is longer than 15 characters")]
    LabelTooLong(String),
    #[error("`{address}` is {what}, not a unicast address")]
    NotUnicast { address: IpAddr, what: &'static str },
}

/// What keeps `address` from being a virtual address, as keepalived refuses non-unicast
/// ones: unspecified, multicast, broadcast, and loopback (never reachable from another
/// host, and a martian on any other interface). Link-local stays allowed: VRRPv3 over
/// IPv6 wants a link-local address first in the list (RFC 5798 7.1).
pub fn not_unicast(address: IpAddr) -> Option<&'static str> {
    match address {
        a if a.is_unspecified() => Some("the unspecified address"),
        a if a.is_multicast() => Some("a multicast address"),
        a if a.is_loopback() => Some("a loopback address"),
        IpAddr::V4(a) if a.is_broadcast() => Some("the broadcast address"),
        _ => None,
    }
}

impl FromStr for VirtualAddress {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut words = text.split_whitespace();
        let first = words.next().ok_or(AddressError::Empty)?;
        let (addr, len) = match first.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (first, None),
        };
        let address: IpAddr = addr
            .parse()
            .map_err(|_| AddressError::BadAddress(addr.to_owned()))?;
        if let Some(what) = not_unicast(address) {
            return Err(AddressError::NotUnicast { address, what });
        }
        let family = AddressFamily::of(&address);
        let prefix_len = match len {
            None => family.host_prefix_len(),
            Some(len) => parse_prefix(len, family)?,
        };
        let mut vip = VirtualAddress {
            address,
            prefix_len,
            dev: None,
            label: None,
            track_group: None,
        };
        while let Some(option) = words.next() {
            let slot = match option {
                "dev" => &mut vip.dev,
                "label" => &mut vip.label,
                "track_group" => &mut vip.track_group,
                other => return Err(AddressError::UnsupportedOption(other.to_owned())),
            };
            let value = words
                .next()
                .ok_or_else(|| AddressError::MissingValue(option.to_owned()))?;
            if slot.replace(value.to_owned()).is_some() {
                return Err(AddressError::Repeated(option.to_owned()));
            }
        }
        if let Some(dev) = &vip.dev {
            if !valid_ifname(dev) {
                return Err(AddressError::BadInterface(dev.clone()));
            }
        }
        if let Some(label) = &vip.label {
            if family == AddressFamily::V6 {
                return Err(AddressError::LabelOnIpv6);
            }
            if label.len() > MAX_IFNAME_LEN {
                return Err(AddressError::LabelTooLong(label.clone()));
            }
        }
        Ok(vip)
    }
}

fn parse_prefix(len: &str, family: AddressFamily) -> Result<u8, AddressError> {
    let n: u32 = len
        .parse()
        .map_err(|_| AddressError::BadPrefix(len.to_owned()))?;
    let max = family.host_prefix_len();
    u8::try_from(n)
        .ok()
        .filter(|n| *n <= max)
        .ok_or(AddressError::PrefixTooLong {
            len: n,
            family,
            max,
        })
}

/// Whether Linux would accept `name` as an interface name.
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && !name.contains(|c: char| c == '/' || c == ':' || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vip(text: &str) -> Result<VirtualAddress, AddressError> {
        text.parse()
    }

    #[test]
    fn defaults_to_a_host_prefix() {
        let v4 = vip("198.18.0.100").expect("valid");
        assert_eq!(v4.prefix_len, 32);
        assert_eq!(v4.dev, None);
        assert_eq!(vip("2001:db8::1").expect("valid").prefix_len, 128);
    }

    #[test]
    fn keepalived_options() {
        let v = vip("198.18.0.100/24 dev eth1 label eth1:vip").expect("valid");
        assert_eq!(v.address, "198.18.0.100".parse::<IpAddr>().expect("ip"));
        assert_eq!(v.prefix_len, 24);
        assert_eq!(v.dev.as_deref(), Some("eth1"));
        assert_eq!(v.label.as_deref(), Some("eth1:vip"));
        assert_eq!(v.to_string(), "198.18.0.100/24 dev eth1 label eth1:vip");
        assert_eq!(v.track_group, None);
        let t = vip("192.0.2.5/24 dev eth1 track_group G1").expect("valid");
        assert_eq!(t.track_group.as_deref(), Some("G1"));
        assert_eq!(t.to_string(), "192.0.2.5/24 dev eth1 track_group G1");
    }

    #[test]
    fn errors() {
        assert_eq!(vip(" "), Err(AddressError::Empty));
        assert_eq!(
            vip("198.18.0.300"),
            Err(AddressError::BadAddress("198.18.0.300".into()))
        );
        assert_eq!(
            vip("198.18.0.1/33"),
            Err(AddressError::PrefixTooLong {
                len: 33,
                family: AddressFamily::V4,
                max: 32
            })
        );
        assert_eq!(
            vip("198.18.0.1/x"),
            Err(AddressError::BadPrefix("x".into()))
        );
        assert_eq!(
            vip("198.18.0.1 dev"),
            Err(AddressError::MissingValue("dev".into()))
        );
        assert_eq!(
            vip("198.18.0.1 scope link"),
            Err(AddressError::UnsupportedOption("scope".into()))
        );
        assert_eq!(
            vip("198.18.0.1 dev a dev b"),
            Err(AddressError::Repeated("dev".into()))
        );
        assert_eq!(vip("2001:db8::1 label x"), Err(AddressError::LabelOnIpv6));
        assert_eq!(
            vip("198.18.0.1 dev averyveryverylongname"),
            Err(AddressError::BadInterface("averyveryverylongname".into()))
        );
    }

    #[test]
    fn interface_names() {
        assert!(valid_ifname("eth0"));
        assert!(valid_ifname("veth-lb.100"));
        assert!(!valid_ifname(""));
        assert!(!valid_ifname("a/b"));
        assert!(!valid_ifname("sixteen_chars_xx"));
    }
}
