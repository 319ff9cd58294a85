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
    /// v2 simple-password authentication (auth type 1): the 8-byte field, zero padded.
    /// `None` = auth type 0.
    pub auth_pass: Option<[u8; 8]>,
}
