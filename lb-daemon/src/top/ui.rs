//! Drawing one frame of `lb-daemon top`.

use ratatui::{
    layout::{Constraint, Layout},
    style::{Modifier, Style},
    text::Line,
    widgets::{Block, Cell, Paragraph, Row as TableRow, Table},
    Frame,
};

use super::model::{human, Row, SortKey};
use crate::daemon::snapshot::Snapshot;

/// What the screen shows besides the snapshot.
pub struct Screen<'a> {
    pub snapshot: &'a Snapshot,
    pub rows: &'a [Row],
    pub sort: SortKey,
    pub filter: &'a str,
    /// Typing a filter after `/`.
    pub editing: bool,
    /// The last refresh's error, if it failed (the previous data stays on screen).
    pub error: Option<&'a str>,
}

pub fn draw(f: &mut Frame<'_>, s: &Screen<'_>) {
    let instances = s.snapshot.instances.len() as u16;
    let [head, vrrp, services, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(instances + 3),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let mut title = format!(
        "lb-daemon top - router {}, data plane {} - sort: {}",
        s.snapshot.router_id,
        s.snapshot.dataplane,
        s.sort.label()
    );
    if !s.filter.is_empty() || s.editing {
        title.push_str(&format!(" - filter: {}", s.filter));
    }
    if let Some(e) = s.error {
        title.push_str(&format!(" - {e}"));
    }
    f.render_widget(Paragraph::new(title), head);

    let bold = Style::default().add_modifier(Modifier::BOLD);
    let vrrp_rows = s.snapshot.instances.iter().map(|i| {
        TableRow::new(vec![
            Cell::from(i.name.clone()),
            Cell::from(i.state.clone()),
            Cell::from(format!(
                "{}/{}",
                i.priority_effective, i.priority_configured
            )),
            Cell::from(i.master.clone().unwrap_or_else(|| "-".into())),
            Cell::from(i.transitions.to_string()),
        ])
    });
    let vrrp_table = Table::new(
        vrrp_rows,
        [
            Constraint::Length(16),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(40),
            Constraint::Length(11),
        ],
    )
    .header(TableRow::new(["INSTANCE", "STATE", "PRIORITY", "MASTER", "TRANSITIONS"]).style(bold))
    .block(Block::bordered().title("VRRP"));
    f.render_widget(vrrp_table, vrrp);

    let rows = s.rows.iter().map(|r| {
        let name = match &r.backend {
            Some(b) => format!("  -> {b}"),
            None => r.service.clone(),
        };
        let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        TableRow::new(vec![
            Cell::from(name),
            Cell::from(r.health),
            Cell::from(dash(r.weight.map(|w| w.to_string()))),
            Cell::from(dash(r.connections.map(|c| c.to_string()))),
            Cell::from(human(r.packets_per_second)),
            Cell::from(human(r.bytes_per_second)),
            Cell::from(r.packets.to_string()),
            Cell::from(r.bytes.to_string()),
        ])
        .style(if r.backend.is_none() {
            bold
        } else {
            Style::default()
        })
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(46),
            Constraint::Length(9),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(12),
            Constraint::Length(14),
        ],
    )
    .header(
        TableRow::new([
            "SERVICE / BACKEND",
            "HEALTH",
            "WEIGHT",
            "CONNS",
            "PKTS/S",
            "BYTES/S",
            "PACKETS",
            "BYTES",
        ])
        .style(bold),
    )
    .block(Block::bordered().title("Virtual servers"));
    f.render_widget(table, services);

    let help = if s.editing {
        "type a filter, Enter to apply, Esc to clear"
    } else {
        "q quit   s sort   / filter"
    };
    f.render_widget(Paragraph::new(Line::from(help)), foot);
}
