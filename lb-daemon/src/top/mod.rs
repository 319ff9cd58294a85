//! `lb-daemon top`: a live view of the running daemon over its control socket, like
//! `ipvsadm -L --rate` and `top`: VRRP instances, services and backends with health,
//! weight, connections, packets/s and bytes/s, refreshed every second. Keys: `s` sorts,
//! `/` filters, `q` quits.

pub mod model;
mod ui;

use std::{
    io,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use crossterm::{
    event::{self, Event, KeyCode, KeyEventKind},
    execute,
    terminal::{self, EnterAlternateScreen, LeaveAlternateScreen},
};
use ratatui::{backend::CrosstermBackend, Terminal};

use crate::daemon::{control, snapshot::Snapshot};
use model::SortKey;

const REFRESH: Duration = Duration::from_secs(1);

/// Raw mode and the alternate screen, undone on drop (also on an error or a panic).
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> Result<TerminalGuard> {
        terminal::enable_raw_mode().context("lb-daemon top needs a terminal")?;
        execute!(io::stdout(), EnterAlternateScreen)?;
        Ok(TerminalGuard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = execute!(io::stdout(), LeaveAlternateScreen);
        let _ = terminal::disable_raw_mode();
    }
}

fn fetch(socket: &Path) -> Result<Snapshot> {
    let line = control::request(socket, "status", Duration::from_secs(2))?;
    serde_json::from_str(&line).with_context(|| format!("unexpected status: {line}"))
}

pub fn run(socket: &Path) -> Result<()> {
    // Fail before taking over the terminal when there is no daemon to watch.
    let mut current = fetch(socket)?;
    let mut previous: Option<(Snapshot, Instant)> = None;
    let mut fetched = Instant::now();
    let _guard = TerminalGuard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    let (mut sort, mut filter, mut editing) = (SortKey::default(), String::new(), false);
    let mut error: Option<String> = None;
    loop {
        let seconds = previous
            .as_ref()
            .map_or(0.0, |(_, at)| fetched.duration_since(*at).as_secs_f64());
        let rows = model::rows(previous.as_ref().map(|(s, _)| s), &current, seconds);
        let shown = model::visible(&rows, sort, &filter);
        terminal.draw(|f| {
            ui::draw(
                f,
                &ui::Screen {
                    snapshot: &current,
                    rows: &shown,
                    sort,
                    filter: &filter,
                    editing,
                    error: error.as_deref(),
                },
            )
        })?;
        let wait = REFRESH.saturating_sub(fetched.elapsed());
        if event::poll(wait)? {
            if let Event::Key(k) = event::read()? {
                if k.kind != KeyEventKind::Press {
                    continue;
                }
                match (editing, k.code) {
                    (true, KeyCode::Enter) => editing = false,
                    (true, KeyCode::Esc) => (editing, filter) = (false, String::new()),
                    (true, KeyCode::Backspace) => {
                        filter.pop();
                    }
                    (true, KeyCode::Char(c)) => filter.push(c),
                    (false, KeyCode::Char('q') | KeyCode::Esc) => return Ok(()),
                    (false, KeyCode::Char('s')) => sort = sort.next(),
                    (false, KeyCode::Char('/')) => editing = true,
                    _ => {}
                }
            }
            continue;
        }
        match fetch(socket) {
            Ok(s) => {
                previous = Some((std::mem::replace(&mut current, s), fetched));
                fetched = Instant::now();
                error = None;
            }
            // Keep the last data on screen and say why it is not refreshed.
            Err(e) => {
                error = Some(format!("{e:#}"));
                fetched = Instant::now();
            }
        }
    }
}
