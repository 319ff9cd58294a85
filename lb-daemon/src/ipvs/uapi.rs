//! Numbers of the kernel's IPVS generic netlink interface, as in
//! `include/uapi/linux/ip_vs.h` (enum positions written out, so a reader can check each
//! one against the header).

/// The generic netlink family name the kernel registers.
pub const GENL_NAME: &str = "IPVS";
pub const GENL_VERSION: u8 = 1;

/// `IPVS_CMD_*`.
pub mod cmd {
    pub const NEW_SERVICE: u8 = 1;
    pub const SET_SERVICE: u8 = 2;
    pub const DEL_SERVICE: u8 = 3;
    pub const GET_SERVICE: u8 = 4;
    pub const NEW_DEST: u8 = 5;
    pub const SET_DEST: u8 = 6;
    pub const DEL_DEST: u8 = 7;
    pub const GET_DEST: u8 = 8;
    pub const SET_CONFIG: u8 = 12;
    pub const GET_CONFIG: u8 = 13;
    pub const GET_INFO: u8 = 15;
    pub const FLUSH: u8 = 17;
}

/// `IPVS_CMD_ATTR_*`: the first level of a message.
pub mod cmd_attr {
    pub const SERVICE: u16 = 1;
    pub const DEST: u16 = 2;
    /// u32 seconds (keepalived's `lvs_timeouts`, `ipvsadm --set`).
    pub const TIMEOUT_TCP: u16 = 4;
    pub const TIMEOUT_TCP_FIN: u16 = 5;
    pub const TIMEOUT_UDP: u16 = 6;
}

/// `IPVS_SVC_ATTR_*`: inside `IPVS_CMD_ATTR_SERVICE`.
pub mod svc_attr {
    /// u16 address family.
    pub const AF: u16 = 1;
    /// u16 IP protocol.
    pub const PROTOCOL: u16 = 2;
    /// `union nf_inet_addr` (16 bytes; IPv4 in the first 4).
    pub const ADDR: u16 = 3;
    /// be16.
    pub const PORT: u16 = 4;
    /// u32.
    pub const FWMARK: u16 = 5;
    /// NUL-terminated string.
    pub const SCHED_NAME: u16 = 6;
    /// `struct ip_vs_flags { u32 flags; u32 mask; }`.
    pub const FLAGS: u16 = 7;
    /// u32 persistence timeout in seconds.
    pub const TIMEOUT: u16 = 8;
    /// u32 persistence netmask (IPv4: the mask; IPv6: the prefix length).
    pub const NETMASK: u16 = 9;
    /// Nested 32-bit statistics.
    pub const STATS: u16 = 10;
    pub const PE_NAME: u16 = 11;
    /// Nested 64-bit statistics.
    pub const STATS64: u16 = 12;
}

/// `IPVS_DEST_ATTR_*`: inside `IPVS_CMD_ATTR_DEST`.
pub mod dest_attr {
    pub const ADDR: u16 = 1;
    /// be16.
    pub const PORT: u16 = 2;
    /// u32 `IP_VS_CONN_F_*` forwarding method.
    pub const FWD_METHOD: u16 = 3;
    pub const WEIGHT: u16 = 4;
    pub const U_THRESH: u16 = 5;
    pub const L_THRESH: u16 = 6;
    pub const ACTIVE_CONNS: u16 = 7;
    pub const INACT_CONNS: u16 = 8;
    pub const PERSIST_CONNS: u16 = 9;
    pub const STATS: u16 = 10;
    /// u16 address family of the destination (may differ from the service's for TUN).
    pub const ADDR_FAMILY: u16 = 11;
    pub const STATS64: u16 = 12;
    pub const TUN_TYPE: u16 = 13;
    pub const TUN_PORT: u16 = 14;
    pub const TUN_FLAGS: u16 = 15;
}

/// `IPVS_STATS_ATTR_*`: inside the statistics nests.
pub mod stats_attr {
    pub const CONNS: u16 = 1;
    pub const INPKTS: u16 = 2;
    pub const OUTPKTS: u16 = 3;
    pub const INBYTES: u16 = 4;
    pub const OUTBYTES: u16 = 5;
}

/// `IP_VS_CONN_F_*` forwarding methods (`IP_VS_CONN_F_FWD_MASK` = 7).
pub mod fwd {
    pub const MASQ: u32 = 0;
    pub const LOCALNODE: u32 = 1;
    pub const TUNNEL: u32 = 2;
    pub const DROUTE: u32 = 3;
    pub const BYPASS: u32 = 4;
    pub const MASK: u32 = 7;
}

/// `IP_VS_SVC_F_PERSISTENT`.
pub const SVC_F_PERSISTENT: u32 = 0x0001;
/// `IP_VS_SVC_F_HASHED`: set by the kernel on every service it reports.
pub const SVC_F_HASHED: u32 = 0x0002;

pub const AF_INET: u16 = libc::AF_INET as u16;
pub const AF_INET6: u16 = libc::AF_INET6 as u16;
