//! `lb-daemon`: the command-line entry point (the definition is `cli::args`).

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use lb_daemon::cli::{
    self,
    args::{Cli, Command},
};

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
