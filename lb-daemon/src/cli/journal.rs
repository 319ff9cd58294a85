//! Log lines for where stderr goes: a terminal gets colour, a pipe or file plain text,
//! journald (`JOURNAL_STREAM` set by systemd) plain text with the sd-daemon(3) `<N>`
//! priority prefix on every line, so `journalctl -p err` finds the errors. No
//! libsystemd and no journal socket: the prefix is all journald's stdout stream needs.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::{
    fmt::{format, FmtContext, FormatEvent, FormatFields},
    registry::LookupSpan,
};

use super::LogFormat;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `--log-format json`, wherever stderr goes.
    Json,
    /// Text; colour codes only on a terminal.
    Text { colour: bool },
    /// Text with `<N>` priorities, no colour, no timestamp (journald stamps lines).
    Journal,
}

impl Style {
    /// Picks the style from the flag, whether stderr is a terminal and whether
    /// `JOURNAL_STREAM` is set. A terminal wins over `JOURNAL_STREAM`: the variable is
    /// inherited by a shell started from a unit, whose stderr is not the journal.
    pub fn choose(format: LogFormat, stderr_is_terminal: bool, journal_stream: bool) -> Self {
        match format {
            LogFormat::Json => Style::Json,
            LogFormat::Text if stderr_is_terminal => Style::Text { colour: true },
            LogFormat::Text if journal_stream => Style::Journal,
            LogFormat::Text => Style::Text { colour: false },
        }
    }
}

/// syslog(3) priority of a tracing level (what journald stores as PRIORITY).
pub fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// `<N>` before every line of `text`: journald splits a stream at newlines, and a line
/// without the prefix would be stored at the default priority (info).
pub fn prefix_lines(priority: u8, text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for line in text.trim_end_matches('\n').split('\n') {
        out.push('<');
        out.push(char::from(b'0' + priority.min(7)));
        out.push('>');
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The journald layer: tracing's compact text (target, fields) behind the prefix.
pub fn layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .event_format(Prefixed(format::format().without_time().with_ansi(false)))
}

struct Prefixed<F>(F);

impl<S, N, F> FormatEvent<S, N> for Prefixed<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: format::Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.0
            .format_event(ctx, format::Writer::new(&mut line), event)?;
        writer.write_str(&prefix_lines(priority(*event.metadata().level()), &line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn the_style_follows_flag_terminal_and_journal() {
        use LogFormat::{Json, Text};
        assert_eq!(Style::choose(Json, true, true), Style::Json);
        assert_eq!(Style::choose(Json, false, false), Style::Json);
        assert_eq!(
            Style::choose(Text, true, false),
            Style::Text { colour: true }
        );
        assert_eq!(
            Style::choose(Text, true, true),
            Style::Text { colour: true }
        );
        assert_eq!(Style::choose(Text, false, true), Style::Journal);
        assert_eq!(
            Style::choose(Text, false, false),
            Style::Text { colour: false }
        );
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(priority(Level::ERROR), 3);
        assert_eq!(priority(Level::WARN), 4);
        assert_eq!(priority(Level::INFO), 6);
        assert_eq!(priority(Level::DEBUG), 7);
        assert_eq!(priority(Level::TRACE), 7);
    }

    #[test]
    fn every_line_gets_the_prefix() {
        assert_eq!(prefix_lines(3, "boom\n"), "<3>boom\n");
        assert_eq!(prefix_lines(4, "a\nb"), "<4>a\n<4>b\n");
        assert_eq!(prefix_lines(6, ""), "<6>\n");
    }

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn events_come_out_prefixed_without_colour() {
        use tracing_subscriber::layer::SubscriberExt;
        let out = Captured::default();
        let sink = out.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || sink.clone())
                .event_format(Prefixed(format::format().without_time().with_ansi(false))),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(vip = "10.0.0.1", "no master\nfor the VIP");
            tracing::info!("up");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("<3>"), "{text}");
        assert!(lines[0].contains("ERROR"), "{text}");
        assert_eq!(lines[1], "<3>for the VIP vip=\"10.0.0.1\"", "{text}");
        assert!(
            lines[2].starts_with("<6>") && lines[2].ends_with("up"),
            "{text}"
        );
        assert!(!text.contains('\x1b'), "colour codes in {text:?}");
    }
}
