//! `lb-daemon`: the command-line entry point.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Result;
use clap::{Parser, Subcommand};
use lb_daemon::{cli, dataplane::DEFAULT_PIN_DIR};

#[derive(Parser)]
#[command(version, about = "XDP layer-4 load balancer with VRRP failover")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the running daemon listens: --socket, else the configuration's
/// `global.control_socket`, else the default.
#[derive(clap::Args)]
struct ControlSocket {
    /// The daemon's control socket [default: /run/lb-daemon/lb.sock].
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Read the control socket's path from this configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
}

impl ControlSocket {
    fn path(self) -> Result<PathBuf> {
        cli::control_cmd::socket_path(self.socket, self.config.as_deref())
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the lab in network namespaces: two LB nodes running `lb-daemon run` in one
    /// VRRP group, backends serving TCP and a client; narrates the election, the traffic
    /// spread, a failing backend, a failover with a long-lived connection, the way back.
    #[cfg(feature = "lab")]
    Lab(cli::lab::LabArgs),
    /// Built without the `lab` feature: says so rather than "unrecognized subcommand".
    #[cfg(not(feature = "lab"))]
    #[command(hide = true)]
    Lab {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print the data plane's global counters from the pinned maps.
    Counters {
        #[arg(long, default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
    },
    /// Which service and backend the running data plane gives a flow, and why (connection
    /// table or Maglev slot), read from its pinned maps without changing them.
    Explain {
        /// The client's address and port, e.g. 198.51.100.7:40000.
        client: std::net::SocketAddr,
        /// The virtual service's address and port, e.g. 192.0.2.10:80.
        vip: std::net::SocketAddr,
        #[arg(long, value_enum, default_value = "tcp")]
        proto: cli::explain::Proto,
        /// The data plane's bpf_pin_path.
        #[arg(long, default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
    },
    /// Strip TUN encapsulation on a backend host without ipip/ip6tnl devices: attach
    /// lb_decap to the interface until Ctrl-C.
    Decap {
        #[arg(long)]
        interface: String,
    },
    /// Run the daemon in the foreground with a configuration file (TOML, or a
    /// keepalived.conf converted in memory).
    Run {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        log_format: cli::LogFormat,
        /// keepalived.conf only: the id `@id` lines match [default: the host name].
        #[arg(long)]
        config_id: Option<String>,
    },
    /// Check a configuration file (TOML or keepalived.conf) as the daemon would; exit 0
    /// when valid.
    CheckConfig {
        file: PathBuf,
        /// keepalived.conf only: the id `@id` lines match [default: the host name].
        #[arg(long)]
        config_id: Option<String>,
    },
    /// Convert a keepalived configuration to this project's TOML (stdout, or -o FILE).
    Convert {
        file: PathBuf,
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// The id `@id` lines match (keepalived's --config-id) [default: the host name].
        #[arg(long)]
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
        url: String,
        /// Host header (keepalived's virtualhost).
        #[arg(long)]
        virtualhost: Option<String>,
        /// Verify the server certificate (https).
        #[arg(long)]
        verify: bool,
        /// Seconds allowed for the whole request.
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // A refused configuration's diagnostics go above the message.
            if let Some(invalid) = error.downcast_ref::<lb_daemon::config::Invalid>() {
                eprintln!("{}", invalid.report);
            }
            // `{:#}`: the message and its causes on one line, never the backtrace that
            // anyhow's Debug output adds under RUST_BACKTRACE=1.
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Cli) -> Result<()> {
    let format = match &args.command {
        Command::Run { log_format, .. } => *log_format,
        _ => cli::LogFormat::Text,
    };
    cli::init_logging(format);
    if let Command::Run {
        config_id: Some(id),
        ..
    }
    | Command::CheckConfig {
        config_id: Some(id),
        ..
    } = &args.command
    {
        lb_daemon::convert::set_config_id(id.clone());
    }
    match args.command {
        #[cfg(feature = "lab")]
        Command::Lab(args) => cli::lab::run(args),
        #[cfg(not(feature = "lab"))]
        Command::Lab { .. } => anyhow::bail!(
            "this lb-daemon was built without the lab feature: run `cargo xtask run -- lab ...`, or build with `cargo build --release -p lb-daemon --features lab`"
        ),
        Command::Counters { pin_dir } => cli::counters::run(&pin_dir),
        Command::Decap { interface } => cli::decap::run(&interface),
        Command::Explain {
            client,
            vip,
            proto,
            pin_dir,
        } => cli::explain::run(client, vip, proto, &pin_dir),
        Command::Run { config, .. } => cli::run::run(&config),
        Command::CheckConfig { file, .. } => cli::check_config::run(&file),
        Command::Convert {
            file,
            output,
            config_id,
        } => cli::convert::run(&file, output.as_deref(), config_id),
        Command::Status { json, control } => cli::control_cmd::status(&control.path()?, json),
        Command::Top { control } => lb_daemon::top::run(&control.path()?),
        Command::Reload { control } => cli::control_cmd::reload(&control.path()?),
        Command::Stop {
            keep_dataplane,
            no_drain,
            control,
        } => cli::control_cmd::stop(&control.path()?, keep_dataplane, !no_drain),
        Command::Drain { control } => cli::control_cmd::drain(&control.path()?, "drain"),
        Command::Undrain { control } => cli::control_cmd::drain(&control.path()?, "undrain"),
        Command::Genhash {
            url,
            virtualhost,
            verify,
            timeout,
        } => cli::genhash::run(
            &url,
            virtualhost.as_deref(),
            verify,
            std::time::Duration::from_secs_f64(timeout.max(0.001)),
        ),
    }
}
