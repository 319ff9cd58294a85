//! The subcommands' implementations (the binary only parses arguments).

pub mod args;
pub mod check_config;
pub mod control_cmd;
pub mod convert;
pub mod counters;
pub mod decap;
pub mod explain;
pub mod genhash;
pub mod journal;
#[cfg(feature = "lab")]
pub mod lab;
pub mod run;
pub mod signals;

/// Log line format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (with `<N>` priorities under journald).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// tracing to stderr; `RUST_LOG` filters (default `info`). The line style follows where
/// stderr goes (see [`journal::Style`]).
pub fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt};

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let style = journal::Style::choose(
        format,
        std::io::stderr().is_terminal(),
        std::env::var_os("JOURNAL_STREAM").is_some(),
    );
    let registry = tracing_subscriber::registry().with(filter);
    match style {
        journal::Style::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .init(),
        journal::Style::Text { colour } => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(colour)
                    .with_writer(std::io::stderr),
            )
            .init(),
        journal::Style::Journal => registry.with(journal::layer()).init(),
    }
}
