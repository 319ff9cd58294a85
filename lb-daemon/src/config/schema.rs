//! The validated configuration, typed and with every default filled in.
//!
//! Keys keep keepalived's names (lower case) so a keepalived.conf translates line by line;
//! each default below is keepalived's unless the comment says otherwise.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::address::{AddressFamily, VirtualAddress};
use super::check::CheckSpec;
use super::route::{IpRoute, IpRule};
use super::source::SourceIndex;

pub use lb_common::Protocol;

pub const DEFAULT_CONTROL_SOCKET: &str = "/run/lb-daemon/lb.sock";
pub const DEFAULT_BPF_PIN_PATH: &str = "/sys/fs/bpf/lb";
/// keepalived has no limit on notify scripts; ours must not hang the state machine.
pub const DEFAULT_SCRIPT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MCAST_GROUP4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
pub const DEFAULT_MCAST_GROUP6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
pub const DEFAULT_GARP_MASTER_DELAY: Duration = Duration::from_secs(5);
pub const DEFAULT_GARP_MASTER_REPEAT: u32 = 5;
pub const DEFAULT_SCRIPT_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_ADVERT_INT: Duration = Duration::from_secs(1);
/// Priority of a BACKUP (or unspecified) instance that sets none.
pub const DEFAULT_PRIORITY: u8 = 100;
/// The address owner's priority; also keepalived's default for `state = "MASTER"`.
pub const PRIORITY_OWNER: u8 = 255;
/// keepalived reads only this many characters of `auth_pass` (the VRRPv2 field is 8 bytes).
pub const AUTH_PASS_MAX_LEN: usize = 8;
/// Weights of tracked scripts, interfaces and files.
pub const WEIGHT_RANGE: std::ops::RangeInclusive<i64> = -254..=254;
/// Interval between health checks of a virtual server that sets none.
pub const DEFAULT_DELAY_LOOP: Duration = Duration::from_secs(60);
/// Checkers' `connect_timeout` when no checker, real or virtual server sets one.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Greeting of SMTP checkers that set no `helo_name`.
pub const DEFAULT_SMTP_HELO: &str = "smtpchecker.keepalived.org";
/// Longest `persistence_timeout` (keepalived's `LVS_MAX_TIMEOUT`, 31 days).
pub const PERSISTENCE_TIMEOUT_MAX: Duration = Duration::from_secs(31 * 86_400);
/// Largest real server weight (keepalived allows 2³¹ - 1; the data plane keeps 16 bits).
pub const REAL_WEIGHT_MAX: u32 = 65_535;

/// A loaded configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub global: Global,
    pub vrrp_scripts: Vec<VrrpScript>,
    pub vrrp_track_processes: Vec<VrrpTrackProcess>,
    /// `[[bfd_instance]]`: keepalived's BFD sessions (docs/bfd.md).
    pub bfd_instances: Vec<BfdInstance>,
    pub vrrp_instances: Vec<VrrpInstance>,
    pub vrrp_sync_groups: Vec<VrrpSyncGroup>,
    pub virtual_servers: Vec<VirtualServer>,
    /// `[bgp]`: defaults when absent (used only when a virtual server announces by BGP).
    pub bgp: Bgp,
    /// `[static]`: keepalived's `static_ipaddress`, `static_routes`, `static_rules`.
    pub static_network: StaticNetwork,
    /// `[sync]`: flow-state sync between LB nodes (keepalived's `lvs_sync_daemon`).
    pub sync: Option<Sync>,
    /// Where each key was written, for diagnostics issued after loading.
    pub(crate) source: SourceIndex,
}

impl VrrpInstance {
    /// keepalived's no-accept mode: while MASTER, traffic to the instance's addresses
    /// (advertised and excluded) is not for the host; only what a service forwards is
    /// taken (keepalived: a firewall drop rule; here the XDP program). The address owner
    /// (priority 255) always accepts.
    pub fn drops_vip_traffic(&self) -> bool {
        !self.accept && self.priority != PRIORITY_OWNER
    }

    /// Every address the instance adds while master: advertised and excluded ones.
    pub fn all_addresses(&self) -> impl Iterator<Item = &VirtualAddress> {
        self.virtual_ipaddress
            .iter()
            .chain(&self.virtual_ipaddress_excluded)
    }
}

impl Config {
    pub fn vrrp_script(&self, name: &str) -> Option<&VrrpScript> {
        self.vrrp_scripts.iter().find(|s| s.name == name)
    }

    pub fn bfd_instance(&self, name: &str) -> Option<&BfdInstance> {
        self.bfd_instances.iter().find(|b| b.name == name)
    }

    pub fn vrrp_instance(&self, name: &str) -> Option<&VrrpInstance> {
        self.vrrp_instances.iter().find(|i| i.name == name)
    }

    /// The virtual server at `address`, `port`, `protocol`.
    pub fn virtual_server(
        &self,
        address: IpAddr,
        port: u16,
        protocol: Protocol,
    ) -> Option<&VirtualServer> {
        self.virtual_servers
            .iter()
            .find(|v| v.address == address && v.port == port && v.protocol == protocol)
    }

    /// The sync group `instance` belongs to, if any.
    pub fn sync_group_of(&self, instance: &str) -> Option<&VrrpSyncGroup> {
        self.vrrp_sync_groups
            .iter()
            .find(|g| g.group.iter().any(|m| m == instance))
    }

    /// An instance's arbiter: its own, else its sync group's.
    pub fn arbiter_of<'a>(&'a self, instance: &'a VrrpInstance) -> Option<&'a Arbiter> {
        instance
            .arbiter
            .as_ref()
            .or_else(|| self.sync_group_of(&instance.name)?.arbiter.as_ref())
    }
}

/// Katran's default: 125,000 new flows per second per CPU.
pub const DEFAULT_NEW_FLOW_LIMIT: u32 = 125_000;

/// `[global]`: keepalived's `global_defs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Global {
    /// `None`: the host name, as keepalived does.
    pub router_id: Option<String>,
    pub control_socket: PathBuf,
    pub dataplane: Dataplane,
    pub bpf_pin_path: PathBuf,
    pub metrics_listen: Option<SocketAddr>,
    /// User scripts run as. `None`: keepalived's rule, `keepalived_script` if that user
    /// exists, else root (resolved by the daemon, not here).
    pub script_user: Option<String>,
    /// Longest a notify script may run before it is killed.
    pub script_timeout: Duration,
    /// Version of instances that set none (IPv6 instances then get 3, as in keepalived).
    pub vrrp_version: VrrpVersion,
    pub vrrp_mcast_group4: Ipv4Addr,
    pub vrrp_mcast_group6: Ipv6Addr,
    /// Delay before the second burst of gratuitous ARPs after becoming master; zero: none.
    pub vrrp_garp_master_delay: Duration,
    /// Gratuitous ARPs (unsolicited NAs) sent per burst.
    pub vrrp_garp_master_repeat: u32,
    /// Re-announce the VIPs this often while master; `None`: never.
    pub vrrp_garp_master_refresh: Option<Duration>,
    /// Pause between gratuitous ARPs on one interface.
    pub vrrp_garp_interval: Duration,
    /// Pause between unsolicited neighbour advertisements on one interface.
    pub vrrp_gna_interval: Duration,
    /// keepalived's `lvs_timeouts`: how long idle NAT'ed connections are kept, by state.
    pub lvs_timeouts: NatTimeouts,
    /// Connection-table entries (DR/TUN flow affinity and persistence).
    pub conntrack_size: u32,
    /// NAT translation entries (two per NAT'ed connection).
    pub nat_table_size: u32,
    /// Flood guard: new DR/TUN flows per CPU per second that get a connection-table
    /// entry (the rest are forwarded by Maglev alone, counted as `flood_guard`); 0: none.
    pub new_flow_limit: u32,
    /// keepalived's e-mail alerts (`notification_email`, `smtp_server`, ...).
    pub email: Email,
    /// keepalived's `vrrp_strict`: every instance in strict mode unless it says otherwise.
    pub vrrp_strict: bool,
    /// keepalived's `notify_fifo` (VRRP and LVS lines), `vrrp_notify_fifo`,
    /// `lvs_notify_fifo`, each with its optional `*_script`.
    pub notify_fifo: Option<NotifyFifo>,
    pub vrrp_notify_fifo: Option<NotifyFifo>,
    pub lvs_notify_fifo: Option<NotifyFifo>,
}

/// A notify FIFO and the script started to read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyFifo {
    pub path: PathBuf,
    pub script: Option<String>,
}

/// keepalived's default `smtp_connect_timeout`.
pub const DEFAULT_SMTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// keepalived's default SMTP port.
pub const DEFAULT_SMTP_PORT: u16 = 25;

/// E-mail alerts, as keepalived's `global_defs` sets them. Nothing is sent unless both
/// `notification_email` and `smtp_server` are set (keepalived's rule).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    /// `notification_email { ... }`: the recipients.
    pub to: Vec<String>,
    /// `notification_email_from`; `None`: `USER@HOSTNAME`, as keepalived.
    pub from: Option<String>,
    pub smtp_server: Option<SmtpServer>,
    /// `smtp_helo_name`; `None`: the host name.
    pub helo_name: Option<String>,
    /// Connecting and each reply (keepalived's `smtp_connect_timeout`).
    pub connect_timeout: Duration,
    /// The global `smtp_alert` and its VRRP and checker overrides (unset: `None`).
    pub smtp_alert: Option<bool>,
    pub smtp_alert_vrrp: Option<bool>,
    pub smtp_alert_checker: Option<bool>,
    /// `no_email_faults`: no e-mail when an instance or group enters FAULT.
    pub no_email_faults: bool,
}

impl Default for Email {
    fn default() -> Self {
        Self {
            to: Vec::new(),
            from: None,
            smtp_server: None,
            helo_name: None,
            connect_timeout: DEFAULT_SMTP_CONNECT_TIMEOUT,
            smtp_alert: None,
            smtp_alert_vrrp: None,
            smtp_alert_checker: None,
            no_email_faults: false,
        }
    }
}

impl Email {
    /// Whether an instance or sync group with this `smtp_alert` sends e-mail
    /// (keepalived: its own, else `smtp_alert_vrrp`, else `smtp_alert`, else no).
    pub fn vrrp_alerts(&self, own: Option<bool>) -> bool {
        own.or(self.smtp_alert_vrrp)
            .or(self.smtp_alert)
            .unwrap_or(false)
    }

    /// Whether a virtual server with this `smtp_alert` sends e-mail on quorum changes.
    pub fn virtual_server_alerts(&self, own: Option<bool>) -> bool {
        own.or(self.smtp_alert_checker)
            .or(self.smtp_alert)
            .unwrap_or(false)
    }

    /// Whether a real server with this `smtp_alert` sends e-mail when it goes up or down
    /// (keepalived's default here is yes, unlike the others: check_data.c).
    pub fn real_server_alerts(&self, own: Option<bool>) -> bool {
        own.or(self.smtp_alert_checker)
            .or(self.smtp_alert)
            .unwrap_or(true)
    }
}

/// `smtp_server ADDR [PORT]`: an IP address or a host name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpServer {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for SmtpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Default for Global {
    fn default() -> Self {
        Self {
            router_id: None,
            control_socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            dataplane: Dataplane::Auto,
            bpf_pin_path: PathBuf::from(DEFAULT_BPF_PIN_PATH),
            metrics_listen: None,
            script_user: None,
            script_timeout: DEFAULT_SCRIPT_TIMEOUT,
            vrrp_version: VrrpVersion::V2,
            vrrp_mcast_group4: DEFAULT_MCAST_GROUP4,
            vrrp_mcast_group6: DEFAULT_MCAST_GROUP6,
            vrrp_garp_master_delay: DEFAULT_GARP_MASTER_DELAY,
            vrrp_garp_master_repeat: DEFAULT_GARP_MASTER_REPEAT,
            vrrp_garp_master_refresh: None,
            vrrp_garp_interval: Duration::ZERO,
            vrrp_gna_interval: Duration::ZERO,
            lvs_timeouts: NatTimeouts::default(),
            conntrack_size: lb_common::capacity::CONNTRACK,
            new_flow_limit: DEFAULT_NEW_FLOW_LIMIT,
            nat_table_size: lb_common::capacity::NAT,
            email: Email::default(),
            vrrp_strict: false,
            notify_fifo: None,
            vrrp_notify_fifo: None,
            lvs_notify_fifo: None,
        }
    }
}

/// How long an idle NAT'ed connection is kept, by state: keepalived's `lvs_timeouts`
/// (IPVS's `ipvsadm --set tcp tcpfin udp`), with IPVS's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatTimeouts {
    /// Established TCP connections.
    pub tcp: Duration,
    /// TCP after a FIN, and before the handshake completes.
    pub tcpfin: Duration,
    pub udp: Duration,
}

impl Default for NatTimeouts {
    fn default() -> Self {
        Self {
            tcp: Duration::from_secs(900),
            tcpfin: Duration::from_secs(120),
            udp: Duration::from_secs(300),
        }
    }
}

/// Which forwarding plane the daemon drives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Dataplane {
    /// XDP when the kernel and NIC allow it, else IPVS.
    #[default]
    Auto,
    Xdp,
    Ipvs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VrrpVersion {
    /// RFC 3768: IPv4 only, whole-second adverts, optional simple password.
    V2,
    /// RFC 5798: IPv4 and IPv6, centisecond adverts, no authentication.
    V3,
}

impl VrrpVersion {
    pub fn number(self) -> u8 {
        match self {
            Self::V2 => 2,
            Self::V3 => 3,
        }
    }
}

/// Initial state of an instance as configured (the election decides the real one, a
/// `vrrp::types::State`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InitialState {
    Master,
    Backup,
}

/// `[[vrrp_script]]`: a command run periodically; its exit status moves the priority of
/// the instances tracking it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrrpScript {
    pub name: String,
    pub script: String,
    pub interval: Duration,
    /// Defaults to `interval`.
    pub timeout: Duration,
    /// Added to the priority while the script succeeds (> 0) or fails (< 0); 0 puts the
    /// tracking instances in FAULT on failure.
    pub weight: i32,
    /// keepalived's `weight W reverse`: the weight counts the other way.
    pub reverse: bool,
    pub rise: u32,
    pub fall: u32,
    /// `None`: [`Global::script_user`].
    pub user: Option<String>,
}

/// `[[vrrp_instance]]`: one virtual router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrrpInstance {
    pub name: String,
    pub interface: String,
    /// Written, or derived as keepalived does: MASTER if the priority is 255, else BACKUP.
    pub state: InitialState,
    pub virtual_router_id: u8,
    /// Written, or derived as keepalived does: 255 for MASTER, else 100.
    pub priority: u8,
    pub advert_int: Duration,
    pub version: VrrpVersion,
    /// Family of the virtual addresses (IPv4 when there are none).
    pub family: AddressFamily,
    pub nopreempt: bool,
    pub preempt_delay: Duration,
    /// VRRPv2 only; dropped with a warning for v3, as keepalived does.
    pub authentication: Option<Authentication>,
    /// keepalived's `strict_mode` (else the global `vrrp_strict`): RFC-strict checks.
    pub strict_mode: bool,
    /// keepalived's accept mode (`accept` / `no_accept`): written, else on for the
    /// address owner (priority 255) or outside strict mode. Off: while MASTER, the XDP
    /// program drops traffic to the VIPs that no service takes
    /// ([`VrrpInstance::drops_vip_traffic`]).
    pub accept: bool,
    /// keepalived's `use_vmac`: the name of the macvlan interface with the virtual
    /// router MAC that holds the VIPs (`vrrp.{VRID}` unless named); `None`: not used.
    pub use_vmac: Option<String>,
    /// `vmac_xmit_base`: adverts go out of (and come in on) the base interface.
    pub vmac_xmit_base: bool,
    pub unicast_src_ip: Option<IpAddr>,
    /// Empty: adverts go to [`Self::mcast_group`].
    pub unicast_peers: Vec<IpAddr>,
    pub virtual_ipaddress: Vec<VirtualAddress>,
    /// keepalived's `virtual_ipaddress_excluded`: added and removed with the instance
    /// but not carried in adverts, so of any family (a dual-stack instance: an IPv6
    /// address beside an IPv4 instance's).
    pub virtual_ipaddress_excluded: Vec<VirtualAddress>,
    /// `virtual_routes`: added while MASTER, removed when leaving it (keepalived's syntax).
    pub virtual_routes: Vec<IpRoute>,
    /// `virtual_rules`: policy rules added while MASTER.
    pub virtual_rules: Vec<IpRule>,
    pub track_interface: Vec<TrackInterface>,
    pub track_script: Vec<TrackScript>,
    pub track_file: Vec<TrackFile>,
    pub track_process: Vec<TrackProcess>,
    /// `track_bfd`: BFD sessions (`[[bfd_instance]]`) whose state moves the instance; a
    /// sync group's entries are added to each member's.
    pub track_bfd: Vec<TrackBfd>,
    /// The instance's own `mcast_group`, else the global group of its family.
    pub mcast_group: IpAddr,
    pub notify: Notify,
    /// keepalived's `notify_master_rx_lower_pri`: run (no arguments) each time this
    /// instance, as MASTER, hears an advert of lower priority (another node thinks it
    /// is master: a broken link healed).
    pub notify_master_rx_lower_pri: Option<String>,
    pub garp_master_delay: Duration,
    pub garp_master_repeat: u32,
    pub garp_master_refresh: Option<Duration>,
    /// `split_brain_check = true` and its settings (None: off, keepalived's behaviour).
    pub split_brain: Option<SplitBrainCheck>,
    /// `arbiter = { address = …, check = "icmp" | "tcp", … }`: must be reachable to be
    /// MASTER (None: no arbiter).
    pub arbiter: Option<Arbiter>,
    /// `heartbeat_paths`: more paths the adverts go over (and come in by) besides
    /// `interface`; the peer is alive while any path delivers.
    pub heartbeat_paths: Vec<HeartbeatPath>,
}

/// A second (third, ...) heartbeat path: adverts multicast on `interface` (the
/// instance's group), or unicast to `unicast_peers` from `unicast_src_ip`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatPath {
    pub interface: String,
    /// The source of adverts on this path (default: the interface's first address of
    /// the instance's family, IPv6 link-local).
    pub unicast_src_ip: Option<IpAddr>,
    /// Empty: multicast to the instance's group.
    pub unicast_peers: Vec<IpAddr>,
}

/// The arbiter of an instance: an outside address (a gateway) a node must reach to be
/// MASTER; see docs/vrrp.md for the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arbiter {
    pub address: IpAddr,
    pub check: ArbiterCheck,
    /// Between checks (default 1 s).
    pub interval: Duration,
    /// For one check (default 1 s).
    pub timeout: Duration,
    /// Successes in a row to count as reachable again (default 1, as `vrrp_script`).
    pub rise: u32,
    /// Failures in a row to count as unreachable (default 1, as `vrrp_script`).
    pub fall: u32,
}

/// How the arbiter is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArbiterCheck {
    /// `check = "icmp"` (the default): an echo reply.
    Icmp,
    /// `check = "tcp"` with `port`: a connection.
    Tcp { port: u16 },
}

/// Split-brain detection for an instance: while MASTER, probe the VIPs every `interval`
/// (ARP) and count adverts from another MASTER; see docs/vrrp.md.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitBrainCheck {
    /// `split_brain_check_interval`, default the instance's `advert_int`.
    pub interval: Duration,
    /// `split_brain_resolution`, default `alert`.
    pub resolution: SplitBrainResolution,
    /// `notify_split_brain`: run when an episode begins and ends.
    pub notify: Option<String>,
}

/// `split_brain_resolution`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SplitBrainResolution {
    /// The node with the lower priority (then the lower address) steps down to BACKUP.
    StepDown,
    /// Both stay MASTER; logs, metrics and `notify_split_brain` only.
    #[default]
    Alert,
}

impl VrrpInstance {
    pub fn is_unicast(&self) -> bool {
        !self.unicast_peers.is_empty()
    }
}

/// `[static]`: addresses, routes and rules the daemon adds at start and removes at stop,
/// whatever the VRRP states (keepalived's `static_ipaddress`, `static_routes`,
/// `static_rules`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StaticNetwork {
    pub ipaddress: Vec<VirtualAddress>,
    pub routes: Vec<IpRoute>,
    pub rules: Vec<IpRule>,
    /// `[[track_group]]`: keepalived's static track groups, named by the `track_group G`
    /// of static lines.
    pub track_groups: Vec<TrackGroup>,
}

/// `[[track_group]]`: keepalived's `track_group NAME { group { VI_1 … } }`. Each member
/// instance tracks the interface of every static address (`dev`), route (`dev`) and
/// rule (`iif`) that names the group: FAULT while it is down (the decoder adds it to
/// the members' `track_interface`, weight 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackGroup {
    pub name: String,
    /// Names of the member instances.
    pub group: Vec<String>,
}

impl StaticNetwork {
    pub fn is_empty(&self) -> bool {
        self.ipaddress.is_empty() && self.routes.is_empty() && self.rules.is_empty()
    }

    /// The lines a track group's instances track, as keepalived's
    /// `static_track_group_init` picks them: those naming a group, not `no_track`, with
    /// an interface (an address's `dev`, a route's `dev`, a rule's `iif`). Each as
    /// (`[static]` key, index, group, interface).
    pub fn tracked_lines(&self) -> impl Iterator<Item = (&'static str, usize, &str, &str)> {
        let addresses = self.ipaddress.iter().enumerate().filter_map(|(i, a)| {
            Some(("ipaddress", i, a.track_group.as_deref()?, a.dev.as_deref()?))
        });
        let routes = self.routes.iter().enumerate().filter_map(|(i, r)| {
            let group = r.track_group.as_deref().filter(|_| !r.no_track)?;
            Some(("routes", i, group, r.dev.as_deref()?))
        });
        let rules = self.rules.iter().enumerate().filter_map(|(i, r)| {
            let group = r.track_group.as_deref().filter(|_| !r.no_track)?;
            Some(("rules", i, group, r.iif.as_deref()?))
        });
        addresses.chain(routes).chain(rules)
    }
}

/// `authentication = { auth_type = "PASS" | "AH", auth_pass = "…" }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authentication {
    pub auth_type: AuthType,
    /// At most [`AUTH_PASS_MAX_LEN`] characters (longer ones are cut, with a warning).
    pub auth_pass: String,
}

/// VRRPv2 authentication: keepalived's simple password (`PASS`, in every advert) or IPsec
/// AH (`AH`: HMAC-MD5-96 keyed with the password, with anti-replay sequence numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthType {
    Pass,
    Ah,
}

/// Scripts run on state changes (keepalived's `notify_*` keys).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    pub master: Option<String>,
    pub backup: Option<String>,
    pub fault: Option<String>,
    pub stop: Option<String>,
    /// keepalived's plain `notify`: run on every transition with
    /// `GROUP|INSTANCE NAME STATE PRIORITY` appended.
    pub any: Option<String>,
    /// The instance's or group's own `smtp_alert` (unset: the global setting).
    pub smtp_alert: Option<bool>,
}

/// An interface whose link state moves the priority (weight ≠ 0) or causes FAULT (0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackInterface {
    pub name: String,
    pub weight: i32,
    /// The weight counts the other way (keepalived's `weight W reverse`).
    pub reverse: bool,
}

/// `/proc/PID/comm` holds this many characters of a process's name.
pub const PROCESS_COMM_MAX: usize = 15;

/// `[[vrrp_track_process]]`: keepalived's `vrrp_track_process`: how many processes of a
/// name run moves the priority of the instances tracking it (or puts them in FAULT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrrpTrackProcess {
    pub name: String,
    /// The process's name (`/proc/PID/comm`), or with [`Self::full_command`] the
    /// command's first word as started (`argv[0]`).
    pub process: String,
    /// The command's arguments to match ([`Self::param_match`]); any when empty.
    pub parameters: Vec<String>,
    pub param_match: ParamMatch,
    /// Match the command line (`/proc/PID/cmdline`) rather than the name; implied by
    /// parameters or `param_match`, as in keepalived.
    pub full_command: bool,
    /// As a `vrrp_script`'s: added while up (> 0) or down (< 0); 0: down means FAULT.
    pub weight: i32,
    /// keepalived's `weight W reverse`: the weight counts the other way.
    pub reverse: bool,
    /// Up while `quorum <= running <= quorum_max`.
    pub quorum: u32,
    pub quorum_max: u32,
    /// How long the count must stay in (out of) quorum before the state changes.
    pub fork_delay: Duration,
    pub terminate_delay: Duration,
}

/// How a tracked process's arguments must match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamMatch {
    /// No parameters given: any.
    Any,
    /// Exactly these arguments.
    Exact,
    /// The arguments start with these.
    Initial,
    /// These arguments appear in a row somewhere.
    Partial,
}

/// A tracked [`VrrpTrackProcess`] with the entry's own weight (else the process's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackProcess {
    pub name: String,
    pub weight: i32,
    pub reverse: bool,
}

/// A tracked [`VrrpScript`]; `weight` is the entry's own or else the script's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackScript {
    pub name: String,
    pub weight: i32,
    /// The entry's `reverse` with its own weight, else the script's.
    pub reverse: bool,
}

/// A file holding an integer, multiplied by `weight` (and by -1 with `reverse`) and
/// added to the priority; with weight 0, non-zero (zero with `reverse`) means FAULT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackFile {
    pub path: PathBuf,
    pub weight: i32,
    pub reverse: bool,
}

/// keepalived's BFD limits (bfd_parser.c): timers in milliseconds.
pub const BFD_NAME_MAX: usize = 31;
pub const BFD_DEFAULT_MIN_RX: Duration = Duration::from_millis(10);
pub const BFD_DEFAULT_MIN_TX: Duration = Duration::from_millis(10);
pub const BFD_DEFAULT_IDLE_TX: Duration = Duration::from_millis(1000);
pub const BFD_DEFAULT_MULTIPLIER: u8 = 5;
/// keepalived's `min_rx`/`min_tx` range: 1 ms to 4294967 ms (a u32 of microseconds).
pub const BFD_TIMER_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(1)..=Duration::from_millis(4_294_967);
/// `idle_tx`: at least 1 s (RFC 5880 6.8.3).
pub const BFD_IDLE_TX_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(1000)..=Duration::from_millis(4_294_967);
/// `weight` of a bfd_instance or a track_bfd entry.
pub const BFD_WEIGHT_RANGE: std::ops::RangeInclusive<i64> = -253..=253;

/// `[[bfd_instance]]`: one BFD session (keepalived's `bfd_instance NAME { … }`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BfdInstance {
    pub name: String,
    pub neighbor_ip: IpAddr,
    pub source_ip: Option<IpAddr>,
    /// Required minimum RX interval (microsecond precision).
    pub min_rx: Duration,
    /// Desired minimum TX interval while Up.
    pub min_tx: Duration,
    /// TX interval while not Up.
    pub idle_tx: Duration,
    pub multiplier: u8,
    /// Send nothing until the neighbor is heard.
    pub passive: bool,
    /// TTL / hop limit of sent packets (keepalived: 255 for IPv4, 64 for IPv6).
    pub ttl: u8,
    /// keepalived's `max_hops` (-1: any); received packets are held to TTL 255 (GTSM)
    /// whatever it says: single hop only.
    pub max_hops: Option<i16>,
    /// The default weight of `track_bfd` entries naming this session.
    pub weight: i32,
    pub reverse: bool,
    /// Used by VRRP (`vrrp`) and by checkers (`checker`); both when neither is written.
    pub vrrp: bool,
    pub checker: bool,
}

/// A `track_bfd` entry: the entry's own weight, else the bfd_instance's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackBfd {
    pub name: String,
    pub weight: i32,
    pub reverse: bool,
}

/// `[[vrrp_sync_group]]`: instances that change state together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrrpSyncGroup {
    pub name: String,
    /// Names of the member instances.
    pub group: Vec<String>,
    pub notify: Notify,
    /// The group's arbiter: every member without its own checks it (see
    /// [`Config::arbiter_of`]).
    pub arbiter: Option<Arbiter>,
    /// `track_bfd`: applied to every member (already merged into their `track_bfd`).
    pub track_bfd: Vec<TrackBfd>,
}

/// The largest `fwmark` of a virtual server (its name, `0.0.0.N` / `0:N::`, must never
/// be a VIP).
pub const FWMARK_MAX: u32 = 0x00ff_ffff;

/// `[[virtual_server]]`: a service balanced over real servers (keepalived's
/// `virtual_server IP PORT { … }` and `virtual_server fwmark N { … }`; group virtual
/// servers are not supported).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualServer {
    /// A `fwmark` virtual server has none: IPVS's name for its mark stands here
    /// (`0.0.0.N`, or `0:N::` when `match` lists IPv6 addresses), held by no VRRP
    /// instance, so the service is always served, as keepalived's are.
    pub address: IpAddr,
    /// 0: every port of `address` (for this protocol); 0 for a `fwmark` server.
    pub port: u16,
    /// keepalived's `virtual_server fwmark N`: IPVS matches the packets the firewall
    /// marked N.
    pub fwmark: Option<u32>,
    /// `match`: on XDP (which runs before netfilter and sees no mark), the (address,
    /// port)s of `protocol` a `fwmark` server matches, scheduled as one service with
    /// one persistence table. IPVS ignores it (the firewall's marks select).
    pub matches: Vec<std::net::SocketAddr>,
    pub protocol: Protocol,
    /// Default `maglev` (keepalived has no Maglev; its default is IPVS's `wlc`).
    pub lb_algo: LbAlgo,
    /// Default DR, the XDP data plane's own mode (keepalived's default is NAT).
    pub lb_kind: LbKind,
    /// Default interval of the checkers of this virtual server.
    pub delay_loop: Duration,
    /// A client sticks to its real server, whatever its source port, until it has been
    /// idle this long (whole seconds, as IPVS counts them).
    pub persistence_timeout: Option<Duration>,
    /// keepalived's `persistence_granularity`, as a prefix length: clients of the same
    /// network share one persistence entry (`None`: per client address).
    pub persistence_prefix: Option<u8>,
    /// Maglev table size M (one of [`lb_common::maglev::TABLE_SIZES`]); used by
    /// `maglev` and `maglev_src` only.
    pub table_size: u32,
    /// Default for the real servers: weight 0 instead of removal when checks fail.
    pub inhibit_on_failure: bool,
    /// Minimum total weight of the live real servers for the service to be up.
    pub quorum: u32,
    /// Weight tolerated around `quorum` before it is lost or gained (a flap dampener).
    pub hysteresis: u32,
    pub quorum_up: Option<String>,
    pub quorum_down: Option<String>,
    /// Used while the quorum is lost; the port defaults to the virtual server's.
    pub sorry_server: Option<(IpAddr, u16)>,
    /// How the sorry server is reached (`sorry_server.lb_kind`, keepalived's
    /// `sorry_server_lvs_method`): its own, else the virtual server's `lb_kind`.
    pub sorry_server_lb_kind: LbKind,
    /// The tunnel of `lb_kind = "TUN"` (keepalived's `lvs_method TUN type …`): the real
    /// servers' default; IP-in-IP unless written.
    pub tunnel: Tunnel,
    /// The sorry server's own tunnel, else the virtual server's.
    pub sorry_server_tunnel: Tunnel,
    /// Default Host header of the HTTP and SSL checkers.
    pub virtualhost: Option<String>,
    /// Real servers start down and come up only once their checks pass.
    pub alpha: bool,
    /// Where the data plane attaches for this service; empty: the daemon's default
    /// (the VIP's interface, and for NAT the interfaces the reals are routed through).
    pub interfaces: Vec<String>,
    /// NAT only: the source address the reals see (full-NAT), so their replies come
    /// back to this node whatever their routing.
    pub snat_address: Option<IpAddr>,
    /// How this node makes the VIP reach it: VRRP (or always served), or a BGP
    /// announcement through BIRD.
    pub announce: Announce,
    /// `smtp_alert`: e-mail on quorum changes (unset: the global setting).
    pub smtp_alert: Option<bool>,
    pub real_servers: Vec<RealServer>,
}

/// `announce`: who draws the VIP's traffic to this node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Announce {
    /// As keepalived: held by the VRRP instance whose virtual_ipaddress has the address,
    /// or always served when none does.
    #[default]
    Vrrp,
    /// Announced through BIRD while the service is programmed and has quorum.
    Bgp,
}

pub const DEFAULT_BGP_INTERFACE: &str = "lb-vip0";
pub const DEFAULT_BIRD_SOCKET: &str = "/run/bird/bird.ctl";
pub const DEFAULT_BGP_HOLD_DOWN: Duration = Duration::from_secs(5);
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_DRAIN_IDLE: Duration = Duration::from_secs(3);

/// `[bgp]`: active-active VIPs announced through BIRD (docs/bgp.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bgp {
    /// The dummy (or ifb) link whose addresses BIRD's `protocol direct` exports.
    pub interface: String,
    /// BIRD's control socket, read for session states.
    pub bird_socket: PathBuf,
    /// After quorum was lost, it must hold this long before the VIP is announced again.
    pub hold_down: Duration,
    /// A drain keeps forwarding at most this long...
    pub drain_timeout: Duration,
    /// ... or until no packet arrived for this long.
    pub drain_idle: Duration,
    /// Where announced services attach (a virtual server's own `interfaces` override it).
    pub interfaces: Vec<String>,
}

impl Default for Bgp {
    fn default() -> Self {
        Self {
            interface: DEFAULT_BGP_INTERFACE.into(),
            bird_socket: PathBuf::from(DEFAULT_BIRD_SOCKET),
            hold_down: DEFAULT_BGP_HOLD_DOWN,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            drain_idle: DEFAULT_DRAIN_IDLE,
            interfaces: Vec::new(),
        }
    }
}

/// keepalived's defaults for `lvs_sync_daemon`.
pub const DEFAULT_SYNC_PORT: u16 = 8848;
pub const DEFAULT_SYNC_GROUP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(224, 0, 0, 81);
/// keepalived's default `maxlen` (an Ethernet MTU less the IP and UDP headers).
pub const SYNC_DEFAULT_MAXLEN: usize = 1472;
/// Room for a header, an IPv6 record and the tag, with margin.
pub const SYNC_MIN_MAXLEN: usize = 256;
/// UDP without jumbograms.
pub const SYNC_MAX_MAXLEN: usize = 65_000;
/// Messages per second a node sends at most (each up to `maxlen` bytes).
pub const DEFAULT_SYNC_MAX_RATE: u32 = 10_000;

/// `[sync]`: flow-state sync (docs/sync.md). Its `Debug` leaves the key out.
#[derive(Clone, PartialEq, Eq)]
pub struct Sync {
    /// keepalived's `lvs_sync_daemon INTERFACE`: where multicast goes out and is joined.
    pub interface: String,
    /// The VRRP instance whose MASTER sends (its BACKUPs receive); None: every node
    /// sends and receives (a BGP tier).
    pub vrrp_instance: Option<String>,
    /// `id N` (keepalived's syncid, 0-255): nodes of another id ignore the messages.
    pub id: u8,
    pub port: u16,
    /// Multicast group (when `peers` is empty).
    pub group: IpAddr,
    pub ttl: u32,
    /// The largest message, in bytes.
    pub maxlen: usize,
    /// Unicast: the peers' addresses (and the only sources accepted).
    pub peers: Vec<IpAddr>,
    /// The shared HMAC-SHA256 key (from `key` or `key_file`).
    pub key: Vec<u8>,
    /// This node's id in messages (default: from `router_id`).
    pub node_id: u32,
    /// Messages per second at most; above it new flows are not sent (counted).
    pub max_rate: u32,
}

impl std::fmt::Debug for Sync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sync")
            .field("interface", &self.interface)
            .field("vrrp_instance", &self.vrrp_instance)
            .field("id", &self.id)
            .field("port", &self.port)
            .field("group", &self.group)
            .field("ttl", &self.ttl)
            .field("maxlen", &self.maxlen)
            .field("peers", &self.peers)
            .field("key", &format_args!("<{} bytes>", self.key.len()))
            .field("node_id", &self.node_id)
            .field("max_rate", &self.max_rate)
            .finish()
    }
}

impl VirtualServer {
    /// Whether the virtual server, any of its real servers or its sorry server says
    /// `kind`.
    pub fn uses_lb_kind(&self, kind: LbKind) -> bool {
        self.lb_kind == kind
            || self.real_servers.iter().any(|r| r.lb_kind == kind)
            || (self.sorry_server.is_some() && self.sorry_server_lb_kind == kind)
    }
}

impl Config {
    /// The virtual servers announced by BGP.
    pub fn bgp_servers(&self) -> impl Iterator<Item = &VirtualServer> {
        self.virtual_servers
            .iter()
            .filter(|v| v.announce == Announce::Bgp)
    }
}

/// `[[virtual_server.real_server]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealServer {
    pub address: IpAddr,
    /// The virtual server's port unless written.
    pub port: u16,
    /// Relative share of new connections, 0..=[`REAL_WEIGHT_MAX`]; 0 takes no new ones.
    pub weight: u32,
    /// The real server's own setting, else the virtual server's.
    pub inhibit_on_failure: bool,
    /// How packets reach it (keepalived's `lvs_method` in a `real_server`): its own
    /// `lb_kind`, else the virtual server's. One differing from the virtual server's
    /// needs the IPVS data plane (XDP forwards per service).
    pub lb_kind: LbKind,
    /// Its tunnel when `lb_kind` is TUN: its own, else the virtual server's.
    pub tunnel: Tunnel,
    /// keepalived's `uthreshold` / `lthreshold`: IPVS stops sending it new connections
    /// at `uthreshold` active + inactive ones and resumes below `lthreshold` (0: no
    /// limit). IPVS only: the XDP program keeps no count per real server.
    pub uthreshold: u32,
    pub lthreshold: u32,
    pub notify_up: Option<String>,
    pub notify_down: Option<String>,
    /// `smtp_alert`: e-mail when it goes up or down (unset: the global setting).
    pub smtp_alert: Option<bool>,
    /// Health checks, in the order written, every default filled in (the real server's
    /// address and port are the checks' target unless `connect_ip`/`connect_port` say
    /// otherwise). None: the real server is always up.
    pub checks: Vec<CheckSpec>,
}

/// `lb_algo`: the data plane's Maglev hashing, or an IPVS scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LbAlgo {
    /// Maglev over the 5-tuple (XDP); IPVS `mh` on the IPVS data plane.
    Maglev,
    /// Maglev over the client address (XDP); IPVS `sh` on the IPVS data plane.
    MaglevSrc,
    /// An IPVS scheduler, by its IPVS name (`rr`, `wlc`, …); IPVS data plane only.
    Ipvs(&'static str),
}

impl LbAlgo {
    /// The IPVS schedulers keepalived accepts (its `lvs_sched` list).
    pub const IPVS_SCHEDULERS: [&'static str; 14] = [
        "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf",
        "twos",
    ];

    /// Whether the XDP data plane can do it.
    pub fn is_maglev(self) -> bool {
        matches!(self, Self::Maglev | Self::MaglevSrc)
    }

    /// The IPVS scheduler that stands in for it on the IPVS data plane.
    pub fn ipvs_scheduler(self) -> &'static str {
        match self {
            Self::Maglev => "mh",
            Self::MaglevSrc => "sh",
            Self::Ipvs(name) => name,
        }
    }

    /// As written in the file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Maglev => "maglev",
            Self::MaglevSrc => "maglev_src",
            Self::Ipvs(name) => name,
        }
    }
}

/// The tunnel of a TUN destination: keepalived's `lvs_method TUN [type ipip|gue|gre]
/// [port N] [nocsum|csum|remcsum]`, IPVS's `--tun-type`, `--tun-port` and checksum
/// flags. Anything but IP-in-IP needs the IPVS data plane (Linux 5.2+ for GUE, 5.3+ for
/// GRE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Tunnel {
    pub kind: TunnelKind,
    /// The GUE tunnel's UDP destination port (GUE only, required there).
    pub port: u16,
    pub checksum: TunnelChecksum,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TunnelKind {
    /// IP-in-IP (IPv6-in-IPv6): the only kind the XDP program makes.
    #[default]
    Ipip,
    /// Generic UDP Encapsulation.
    Gue,
    /// GRE.
    Gre,
}

impl TunnelKind {
    /// As keepalived and the configuration write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ipip => "ipip",
            Self::Gue => "gue",
            Self::Gre => "gre",
        }
    }

    /// `IP_VS_CONN_F_TUNNEL_TYPE_*`.
    pub fn ipvs(self) -> u8 {
        match self {
            Self::Ipip => 0,
            Self::Gue => 1,
            Self::Gre => 2,
        }
    }
}

/// The outer header's checksum (`IP_VS_TUNNEL_ENCAP_FLAG_*`): none, a UDP/GRE checksum,
/// or remote checksum offload (GUE only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TunnelChecksum {
    #[default]
    NoCsum,
    Csum,
    RemCsum,
}

impl TunnelChecksum {
    pub fn name(self) -> &'static str {
        match self {
            Self::NoCsum => "nocsum",
            Self::Csum => "csum",
            Self::RemCsum => "remcsum",
        }
    }

    /// `IP_VS_TUNNEL_ENCAP_FLAG_*`.
    pub fn ipvs(self) -> u16 {
        match self {
            Self::NoCsum => 0,
            Self::Csum => 1,
            Self::RemCsum => 2,
        }
    }
}

/// `lb_kind`: how packets reach the real servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LbKind {
    /// Direct routing: the frame is re-addressed to the real server, packet untouched.
    Dr,
    /// IP-in-IP (or IPv6) tunnel to the real server.
    Tun,
    /// Destination NAT (replies must come back through the balancer).
    Nat,
}

impl LbKind {
    /// As written in the configuration (and by keepalived).
    pub fn name(self) -> &'static str {
        match self {
            Self::Dr => "DR",
            Self::Tun => "TUN",
            Self::Nat => "NAT",
        }
    }
}
