//! `lb-daemon`: the command-line entry point (the definition is `cli::args`).

use anyhow::Result;
use clap::Parser;
use lb_daemon::cli::{
    self,
    args::{Cli, Command},
};

fn main() -> Result<()> {
    let args = Cli::parse();
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
        Command::Run { config, .. } => cli::run::run(&config),
        Command::CheckConfig { file, .. } => cli::check_config::run(&file),
        Command::Convert {
            file,
            output,
            config_id,
        } => cli::convert::run(&file, output.as_deref(), config_id),
        Command::Status { json, control } => cli::control_cmd::status(&control.path()?, json),
        Command::Reload { control } => cli::control_cmd::reload(&control.path()?),
        Command::Stop {
            keep_dataplane,
            control,
        } => cli::control_cmd::stop(&control.path()?, keep_dataplane),
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
