//! Types shared by the VRRP codec, state machine and IO.

use std::{fmt, net::IpAddr};

/// VRRP version: 2 (RFC 3768, IPv4 only) or 3 (RFC 5798, IPv4 and IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    V2,
    V3,
}

impl Version {
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// Instance state, with keepalived's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Init,
    Backup,
    Master,
    Fault,
}

impl State {
    /// `lb_vrrp_state` metric value: 0 init, 1 backup, 2 master, 3 fault.
    pub fn metric(self) -> u8 {
        match self {
            State::Init => 0,
            State::Backup => 1,
            State::Master => 2,
            State::Fault => 3,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Init => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        })
    }
}

/// Priority 255: the address owner. Priority 0: the master is leaving.
pub const PRIORITY_OWNER: u8 = 255;
pub const PRIORITY_STOP: u8 = 0;

/// A VRRP advertisement as carried on the wire (both versions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    pub version: Version,
    pub vrid: u8,
    pub priority: u8,
    /// The advertisement interval in centiseconds. v2 carries whole seconds (converted
    /// here, so 1 s = 100); v3 carries centiseconds (12 bits).
    pub interval_cs: u16,
    /// The virtual addresses, all of one family.
    pub addresses: Vec<IpAddr>,
    /// v2 authentication as the message says it (v3: always [`Auth::None`]).
    pub auth: Auth,
}

/// The VRRPv2 auth type of a message and what its 8 auth bytes hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Auth {
    /// Type 0: the auth bytes are zero (ignored on receipt).
    #[default]
    None,
    /// Type 1, simple password: the 8-byte field, zero padded.
    Pass([u8; 8]),
    /// Type 2, IPsec AH: the auth bytes are zero; the AH header in front of the message
    /// carries the HMAC (see [`super::ah`]).
    Ah,
}

/// An instance's VRRPv2 authentication (`authentication { auth_type … auth_pass … }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InstanceAuth {
    #[default]
    None,
    /// `auth_type PASS`: the password field (8 bytes, zero padded).
    Pass([u8; 8]),
    /// `auth_type AH`: the HMAC-MD5 key (the password, 8 bytes, zero padded).
    Ah([u8; 8]),
}

impl InstanceAuth {
    /// What the VRRP message says.
    pub fn wire(self) -> Auth {
        match self {
            InstanceAuth::None => Auth::None,
            InstanceAuth::Pass(p) => Auth::Pass(p),
            InstanceAuth::Ah(_) => Auth::Ah,
        }
    }

    pub fn ah_key(self) -> Option<[u8; 8]> {
        match self {
            InstanceAuth::Ah(key) => Some(key),
            _ => None,
        }
    }
}
