//! The subcommands' implementations (the binary only parses arguments).

pub mod check_config;
pub mod control_cmd;
pub mod convert;
pub mod counters;
pub mod decap;
pub mod explain;
pub mod genhash;
#[cfg(feature = "lab")]
pub mod lab;
pub mod run;
pub mod signals;

/// Log line format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// tracing to stderr; `RUST_LOG` filters (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
