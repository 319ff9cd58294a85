//! The command line, as data: the binary parses it, `cargo xtask man` renders man pages
//! and shell completions from [`command`], so the help text is written once.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::dataplane::DEFAULT_PIN_DIR;

/// The configuration `run` and `check-config` read when no file is named (the
/// Debian package installs a commented one there).
pub const DEFAULT_CONFIG: &str = "/etc/lb/lb.toml";

/// `lb-daemon`'s arguments.
#[derive(Parser)]
#[command(
    name = "lb-daemon",
    version,
    about = "XDP layer-4 load balancer with VRRP failover",
    long_about = "XDP layer-4 load balancer with VRRP failover: keepalived's VRRP and health \
                  checks with an XDP (or IPVS) data plane, configured in TOML."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Where the running daemon listens: --socket, else the configuration's
/// `global.control_socket`, else the default.
#[derive(clap::Args)]
pub struct ControlSocket {
    /// The daemon's control socket [default: /run/lb-daemon/lb.sock].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Read the control socket's path from this configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl ControlSocket {
    pub fn path(self) -> Result<PathBuf> {
        super::control_cmd::socket_path(self.socket, self.config.as_deref())
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the lab in network namespaces: two LB nodes running `lb-daemon run` in one
    /// VRRP group, backends serving TCP and a client; narrates the election, the traffic
    /// spread, a failing backend, a failover with a long-lived connection, the way back.
    #[cfg(feature = "lab")]
    Lab(super::lab::LabArgs),
    /// Built without the `lab` feature: says so rather than "unrecognized subcommand".
    #[cfg(not(feature = "lab"))]
    #[command(hide = true)]
    Lab {
        /// Ignored: the lab is not built in.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print the data plane's global counters from the pinned maps.
    Counters {
        /// The bpffs directory the daemon pins its maps in.
        #[arg(long, default_value = DEFAULT_PIN_DIR, value_name = "DIR")]
        pin_dir: PathBuf,
    },
    /// Which service and backend the running data plane gives a flow, and why (connection
    /// table or Maglev slot), read from its pinned maps without changing them.
    Explain {
        /// The client's address and port, e.g. 198.51.100.7:40000.
        #[arg(value_name = "CLIENT")]
        client: std::net::SocketAddr,
        /// The virtual service's address and port, e.g. 192.0.2.10:80.
        #[arg(value_name = "VIP")]
        vip: std::net::SocketAddr,
        /// The flow's protocol.
        #[arg(long, value_enum, default_value = "tcp")]
        proto: super::explain::Proto,
        /// The data plane's bpf_pin_path.
        #[arg(long, default_value = DEFAULT_PIN_DIR, value_name = "DIR")]
        pin_dir: PathBuf,
    },
    /// Strip TUN encapsulation on a backend host without ipip/ip6tnl devices: attach
    /// lb_decap to the interface until Ctrl-C.
    Decap {
        /// The backend's interface receiving the encapsulated packets.
        #[arg(long, value_name = "IFNAME")]
        interface: String,
    },
    /// Run the daemon in the foreground with a configuration file (TOML, or a
    /// keepalived.conf converted in memory).
    Run {
        /// The configuration file (TOML or keepalived.conf).
        #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Log line format on stderr: text (with syslog priorities under journald) or
        /// one JSON object per line.
        #[arg(long, value_enum, default_value = "text")]
        log_format: super::LogFormat,
        /// keepalived.conf only: the id `@id` lines match [default: the host name].
        #[arg(long, value_name = "ID")]
        config_id: Option<String>,
    },
    /// Check a configuration file (TOML or keepalived.conf) as the daemon would; exit 0
    /// when valid.
    CheckConfig {
        /// The configuration file to check.
        #[arg(value_name = "FILE", default_value = DEFAULT_CONFIG)]
        file: PathBuf,
        /// keepalived.conf only: the id `@id` lines match [default: the host name].
        #[arg(long, value_name = "ID")]
        config_id: Option<String>,
    },
    /// Convert a keepalived configuration to this project's TOML (stdout, or -o FILE).
    Convert {
        /// The keepalived.conf to convert (its includes are followed).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Write the TOML here instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// The id `@id` lines match (keepalived's --config-id) [default: the host name].
        #[arg(long, value_name = "ID")]
        config_id: Option<String>,
    },
    /// Show the running daemon's VRRP instances, virtual servers and backends.
    Status {
        /// Print the raw snapshot as one line of JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        control: ControlSocket,
    },
    /// A live view of the running daemon (like `ipvsadm -L --rate` and `top`): VRRP
    /// instances, services and backends with health, weight and rates, every second;
    /// keys: s sort, / filter, q quit.
    Top {
        #[command(flatten)]
        control: ControlSocket,
    },
    /// Ask the running daemon to reload its configuration file; exit non-zero, with the
    /// reason, when it keeps the running configuration.
    Reload {
        #[command(flatten)]
        control: ControlSocket,
    },
    /// Stop the running daemon (SIGTERM does the same): VIPs announced by BGP are drained
    /// first (--no-drain skips it); with --keep-dataplane the XDP program, its maps and
    /// the VIPs stay for a new daemon to adopt (upgrades).
    Stop {
        /// Leave the XDP program, its maps and the VIPs in place for the next daemon.
        #[arg(long)]
        keep_dataplane: bool,
        /// Withdraw the BGP-announced VIPs at once instead of draining them.
        #[arg(long, conflicts_with = "keep_dataplane")]
        no_drain: bool,
        #[command(flatten)]
        control: ControlSocket,
    },
    /// Withdraw every VIP this node announces by BGP; forwarding goes on for the flows
    /// still arriving until drain_idle without a packet or drain_timeout. Returns at once:
    /// `status` shows the drain's progress.
    Drain {
        #[command(flatten)]
        control: ControlSocket,
    },
    /// Announce the VIPs again (those that are ready) after a drain.
    Undrain {
        #[command(flatten)]
        control: ControlSocket,
    },
    /// Print the MD5 digest of a URL's body (the `digest` of HTTP_GET / SSL_GET).
    Genhash {
        /// The URL to fetch (http:// or https://).
        url: String,
        /// Host header (keepalived's virtualhost).
        #[arg(long, value_name = "HOST")]
        virtualhost: Option<String>,
        /// Verify the server certificate (https).
        #[arg(long)]
        verify: bool,
        /// Seconds allowed for the whole request.
        #[arg(long, default_value_t = 5.0, value_name = "SECS")]
        timeout: f64,
    },
}

/// The arguments and subcommands of `cmd`'s tree without help text (`help` and
/// `version`, clap's own, excepted), as `lb-daemon run --config`.
pub fn missing_help(cmd: &clap::Command) -> Vec<String> {
    let mut missing = Vec::new();
    walk(cmd, cmd.get_name(), &mut missing);
    missing
}

fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if arg.is_hide_set() || id == "help" || id == "version" {
            continue;
        }
        if arg.get_help().is_none() && arg.get_long_help().is_none() {
            missing.push(format!("{path} {id}"));
        }
    }
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let sub_path = format!("{path} {}", sub.get_name());
        if sub.get_about().is_none() && sub.get_long_about().is_none() {
            missing.push(sub_path.clone());
        }
        walk(sub, &sub_path, missing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn every_subcommand_and_argument_has_help() {
        let mut cmd = command();
        cmd.build();
        assert_eq!(missing_help(&cmd), Vec::<String>::new());
    }

    #[test]
    fn the_walk_finds_a_bare_argument() {
        let cmd = clap::Command::new("x")
            .subcommand(clap::Command::new("y").arg(clap::Arg::new("file")))
            .arg(clap::Arg::new("n").long("n").help("fine"));
        assert_eq!(missing_help(&cmd), ["x y", "x y file"]);
    }

    #[test]
    fn run_and_check_config_default_to_etc_lb() {
        let cli = Cli::try_parse_from(["lb-daemon", "run"]).unwrap();
        let Command::Run { config, .. } = cli.command else {
            panic!("not run");
        };
        assert_eq!(config, PathBuf::from(DEFAULT_CONFIG));
        let cli = Cli::try_parse_from(["lb-daemon", "check-config"]).unwrap();
        let Command::CheckConfig { file, .. } = cli.command else {
            panic!("not check-config");
        };
        assert_eq!(file, PathBuf::from(DEFAULT_CONFIG));
    }
}
