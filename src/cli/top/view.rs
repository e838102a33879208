//! Draws a [`Model`] with ratatui: a header line, the node table (or the details of the picked
//! node), the event pane and a key line. Drawing reads the model and the wall time it is given
//! and nothing else, so the tests render into ratatui's `TestBackend` and read the buffer, and
//! `--once` prints the same buffer as text.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::model::{BeaconState, Filter, Kind, Model, NodeRow, Rates, Reach, Readiness, Status};

/// Rows of the event pane, borders included (it takes less when the screen is small).
const EVENT_PANE: u16 = 10;
/// Widest a node name column gets before names are cut.
const NAME_WIDTH: usize = 40;
/// How many of a node's peers the details pane lists at most.
const DETAIL_PEERS: usize = 64;

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, model: &Model, now_ms: u64) {
    let events = EVENT_PANE
        .min(frame.area().height.saturating_sub(6) / 2)
        .max(3);
    draw_with(frame, model, now_ms, events);
}

/// The height a frame needs to show every row and up to [`EVENT_PANE`] lines of events with
/// nothing left blank (`--once`), and the event pane's share of it.
pub fn fitted_height(model: &Model) -> (u16, u16) {
    let rows = model.rows().len() as u16;
    let events = (model.events().len() as u16 + 1).clamp(2, EVENT_PANE);
    let height = 1u16
        .saturating_add(rows.saturating_add(2))
        .saturating_add(events)
        .saturating_add(1);
    (height, events)
}

/// Draws the whole screen with an event pane `events` rows high.
pub fn draw_with(frame: &mut Frame<'_>, model: &Model, now_ms: u64, events: u16) {
    let area = frame.area();
    let [head, main, ev, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(events),
        Constraint::Length(1),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(header(model, now_ms)), head);
    match model.selected().filter(|_| model.details_open()) {
        Some(name) => details(frame, model, &name, now_ms, main),
        None => table(frame, model, now_ms, main),
    }
    event_pane(frame, model, ev);
    frame.render_widget(Paragraph::new(footer(model)), foot);
}

/// The buffer as plain text, one line per row, trailing spaces trimmed (`--once`, tests).
pub fn buffer_text(buf: &Buffer) -> String {
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        for x in 0..buf.area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn header(model: &Model, now_ms: u64) -> Line<'static> {
    let rows: Vec<&NodeRow> = model.all_nodes().collect();
    let online = rows.iter().filter(|r| r.status == Status::Online).count();
    let ready = rows
        .iter()
        .filter(|r| {
            matches!(
                model.readiness(r),
                Readiness::Ready | Readiness::NothingRequired
            ) && r.status == Status::Online
        })
        .count();
    let silent = rows
        .iter()
        .filter(|r| matches!(r.reach, Reach::NoAnswer(_) | Reach::Unreachable(_)))
        .count();
    let what = match model.beacon() {
        BeaconState::Connecting => "connecting".to_owned(),
        BeaconState::Live => "beacon".to_owned(),
        BeaconState::NotBeacon(_) => "not a beacon: its connections".to_owned(),
        BeaconState::Lost(why) => format!("beacon lost: {why}"),
    };
    let filter = match model.filter() {
        Filter::All => "all".to_owned(),
        Filter::Role(r) => format!("role {r}"),
        Filter::Text(t) => format!("/{t}"),
    };
    let counts = match model.beacon() {
        BeaconState::Live | BeaconState::Lost(_) => {
            format!(" · {} nodes, {online} online, {ready} ready", rows.len())
        }
        // No beacon: nobody to say online or ready; say who answers.
        BeaconState::Connecting | BeaconState::NotBeacon(_) => {
            let answering = rows.iter().filter(|r| r.reach == Reach::Answering).count();
            format!(" · {} nodes, {answering} answering", rows.len())
        }
    };
    let mut spans = vec![
        Span::styled("cluster top", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(format!(" · {} ({what})", model.target())),
        Span::raw(counts),
    ];
    if silent > 0 {
        spans.push(Span::styled(
            format!(", {silent} not answering"),
            Style::new().fg(Color::Yellow),
        ));
    }
    spans.push(Span::raw(format!(
        " · sort {} · filter {filter} · {} UTC",
        model.sort().label(),
        clock(now_ms)
    )));
    Line::from(spans)
}

fn footer(model: &Model) -> Line<'static> {
    match model.input() {
        Some(text) => Line::from(vec![
            Span::styled(
                format!("/{text}"),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Span::raw("_  filter by node or role: Enter apply · Esc cancel"),
        ]),
        None if model.details_open() => Line::raw("Esc back · ↑↓/jk pick another node · q quit"),
        None => Line::raw("q quit · s sort · r role · / filter · ↑↓/jk pick · Enter details"),
    }
}

/// The status column: the beacon's word, unless polling says worse.
fn status_cell(row: &NodeRow, now_ms: u64) -> Cell<'static> {
    let (text, color) = match (&row.status, &row.reach) {
        (Status::Offline(_), _) => ("offline".to_owned(), Color::Red),
        (_, Reach::NoAnswer(since)) => (
            format!("no answer {}", age(now_ms.saturating_sub(*since))),
            Color::Yellow,
        ),
        (_, Reach::Unreachable(_)) => ("unreachable".to_owned(), Color::Red),
        (Status::Online, _) => ("online".to_owned(), Color::Green),
        (Status::Unregistered, Reach::Answering) => ("connected".to_owned(), Color::Green),
        (Status::Unregistered, _) => ("…".to_owned(), Color::Reset),
    };
    Cell::from(text).style(Style::new().fg(color))
}

fn readiness_cell(model: &Model, row: &NodeRow) -> Cell<'static> {
    if matches!(row.status, Status::Offline(_)) {
        return Cell::from("-");
    }
    match model.readiness(row) {
        Readiness::Unknown => Cell::from("?"),
        Readiness::NothingRequired => Cell::from("ready (needs none)"),
        Readiness::Ready => Cell::from("ready").style(Style::new().fg(Color::Green)),
        Readiness::Missing(m) => {
            Cell::from(format!("missing {}", m.join(", "))).style(Style::new().fg(Color::Red))
        }
    }
}

fn table(frame: &mut Frame<'_>, model: &Model, now_ms: u64, area: Rect) {
    let rows = model.rows();
    let name_w = rows
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, NAME_WIDTH) as u16;
    let role_w = rows
        .iter()
        .filter_map(|r| r.role.as_ref().map(|x| x.chars().count()))
        .max()
        .unwrap_or(4)
        .max(4) as u16;
    let body: Vec<Row> = rows
        .iter()
        .map(|r| {
            let (mi, mo, bi, bo) = rate_cells(r.rates);
            Row::new(vec![
                Cell::from(r.name.clone()),
                Cell::from(r.role.clone().unwrap_or_else(|| "-".into())),
                status_cell(r, now_ms),
                Cell::from(
                    r.since_ms
                        .map_or_else(|| "-".into(), |s| age(now_ms.saturating_sub(s))),
                ),
                Cell::from(peers_text(r)),
                Cell::from(mi),
                Cell::from(mo),
                Cell::from(bi),
                Cell::from(bo),
                Cell::from(
                    r.queue_peak()
                        .map_or_else(|| "-".into(), |q| q.peak.to_string()),
                ),
                readiness_cell(model, r),
            ])
        })
        .collect();
    let header = Row::new(vec![
        "NODE", "ROLE", "STATUS", "SINCE", "PEERS", "MSG/S IN", "OUT", "B/S IN", "OUT", "Q PEAK",
        "READY",
    ])
    .style(Style::new().add_modifier(Modifier::BOLD));
    let widths = [
        Constraint::Length(name_w),
        Constraint::Length(role_w),
        Constraint::Length(16),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Min(10),
    ];
    let title = format!(" nodes ({} shown) ", rows.len());
    let widget = Table::new(body, widths)
        .header(header)
        .block(Block::new().borders(Borders::TOP).title(title))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol(">");
    let mut state = TableState::default().with_selected(model.selected_index());
    frame.render_stateful_widget(widget, area, &mut state);
}

/// Visible connections, and hidden ones (tools) after a `+`: `4`, `4+1h`, `?` before a poll.
fn peers_text(row: &NodeRow) -> String {
    let Some(peers) = &row.peers else {
        return "?".into();
    };
    let hidden = peers.iter().filter(|p| !p.visible).count();
    let visible = peers.len() - hidden;
    if hidden == 0 {
        visible.to_string()
    } else {
        format!("{visible}+{hidden}h")
    }
}

fn rate_cells(rates: Option<Rates>) -> (String, String, String, String) {
    match rates {
        None => ("-".into(), "-".into(), "-".into(), "-".into()),
        Some(r) => (
            r.msgs_in.map_or_else(|| "-".into(), count),
            r.msgs_out.map_or_else(|| "-".into(), count),
            bytes(r.bytes_in),
            bytes(r.bytes_out),
        ),
    }
}

fn details(frame: &mut Frame<'_>, model: &Model, name: &str, now_ms: u64, area: Rect) {
    let Some(row) = model.node(name) else {
        return;
    };
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut lines: Vec<Line> = Vec::new();
    let status = match &row.status {
        Status::Online => "online".to_owned(),
        Status::Offline(Some(why)) => format!("offline ({why})"),
        Status::Offline(None) => "offline".to_owned(),
        Status::Unregistered => "not registered with a beacon".to_owned(),
    };
    let since = row
        .since_ms
        .map(|s| {
            format!(
                " since {} UTC ({} ago)",
                clock(s),
                age(now_ms.saturating_sub(s))
            )
        })
        .unwrap_or_default();
    let kind = match row.kind {
        Kind::Unknown => "not polled yet",
        Kind::Cluster => "cluster node",
        Kind::Erlang => "Erlang node (via rex)",
    };
    let reach = match &row.reach {
        Reach::Waiting => "waiting for its first answer".to_owned(),
        Reach::Answering => "answering".to_owned(),
        Reach::NoAnswer(s) => format!("no answer for {}", age(now_ms.saturating_sub(*s))),
        Reach::Unreachable(why) => format!("unreachable: {why}"),
    };
    lines.push(Line::from(vec![
        Span::raw("role "),
        Span::styled(row.role.clone().unwrap_or_else(|| "-".into()), bold),
        Span::raw(format!(" · {status}{since} · {kind}, {reach}")),
    ]));

    lines.push(Line::styled("requirements", bold));
    if row.requirements.is_empty() {
        lines.push(Line::raw("  none"));
    }
    for req in &row.requirements {
        let (online, offline) = model.providers(req);
        let mut text = format!("  {req} → ");
        if online.is_empty() {
            text.push_str("no online provider");
        } else {
            let names: Vec<&str> = online.iter().map(|p| p.name.as_str()).collect();
            text.push_str(&names.join(", "));
        }
        if !offline.is_empty() {
            let names: Vec<&str> = offline.iter().map(|p| p.name.as_str()).collect();
            text.push_str(&format!(" (offline: {})", names.join(", ")));
        }
        let style = if online.is_empty() {
            Style::new().fg(Color::Red)
        } else {
            Style::new()
        };
        lines.push(Line::styled(text, style));
    }

    match &row.peers {
        None => lines.push(Line::styled("peers: not known yet", bold)),
        Some(peers) => {
            lines.push(Line::styled(format!("peers ({})", peers.len()), bold));
            let w = peers
                .iter()
                .map(|p| p.node.chars().count())
                .max()
                .unwrap_or(4)
                .clamp(4, NAME_WIDTH);
            lines.push(Line::raw(format!(
                "  {:<w$}  {:<7}  {:>8}  {:>8}  {:>7}  {:>7}  {:>9}  {:>9}",
                "NODE", "TYPE", "MSG/S IN", "OUT", "B/S IN", "OUT", "MSGS IN", "OUT"
            )));
            for p in peers.iter().take(DETAIL_PEERS) {
                let (mi, mo, bi, bo) = rate_cells(p.rates);
                let (ti, to) = p.totals.map_or(("-".into(), "-".into()), |(i, o)| {
                    (i.to_string(), o.to_string())
                });
                lines.push(Line::raw(format!(
                    "  {:<w$}  {:<7}  {mi:>8}  {mo:>8}  {bi:>7}  {bo:>7}  {ti:>9}  {to:>9}",
                    p.node,
                    if p.visible { "visible" } else { "hidden" },
                )));
            }
            if peers.len() > DETAIL_PEERS {
                lines.push(Line::raw(format!(
                    "  … and {} more",
                    peers.len() - DETAIL_PEERS
                )));
            }
        }
    }

    lines.push(Line::styled("process queues (highest peaks)", bold));
    if row.queues.is_empty() {
        lines.push(Line::raw(match row.kind {
            Kind::Erlang => "  not available from a plain Erlang node",
            _ => "  none known",
        }));
    } else {
        let w = row
            .queues
            .iter()
            .map(|q| q.process.chars().count())
            .max()
            .unwrap_or(7)
            .clamp(7, NAME_WIDTH + 12);
        lines.push(Line::raw(format!(
            "  {:<w$}  {:>8}  {:>10}  {:>8}",
            "PROCESS", "LEN", "BYTES", "PEAK"
        )));
        for q in &row.queues {
            lines.push(Line::raw(format!(
                "  {:<w$}  {:>8}  {:>10}  {:>8}",
                q.process, q.len, q.bytes, q.peak
            )));
        }
    }
    let block = Block::new()
        .borders(Borders::TOP)
        .title(format!(" {name} "));
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn event_pane(frame: &mut Frame<'_>, model: &Model, area: Rect) {
    let room = area.height.saturating_sub(1) as usize;
    let events = model.events();
    let lines: Vec<Line> = events
        .iter()
        .skip(events.len().saturating_sub(room))
        .map(|e| {
            let color = match e.what {
                "nodedown" | "offline" | "no answer" | "unreachable" => Color::Red,
                "mailbox" => Color::Yellow,
                _ => Color::Reset,
            };
            Line::from(vec![
                Span::raw(format!("{} ", clock(e.at_ms))),
                Span::styled(format!("{:<11}", e.what), Style::new().fg(color)),
                Span::raw(format!(" {} {}", e.node, e.detail)),
            ])
        })
        .collect();
    let block = Block::new().borders(Borders::TOP).title(" events ");
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// `HH:MM:SS` of a wall time (UTC).
fn clock(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.get(11..19).unwrap_or("--:--:--").to_owned()
}

/// A short age: `5s`, `2m13s`, `1h02m`, `3d04h`.
fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A count per second: `0`, `4.5`, `120`, `3.4k`, `1.2M`.
fn count(v: f64) -> String {
    if v < 10.0 {
        let s = format!("{v:.1}");
        s.strip_suffix(".0").map_or(s.clone(), str::to_owned)
    } else if v < 10_000.0 {
        format!("{v:.0}")
    } else if v < 10_000_000.0 {
        format!("{:.1}k", v / 1000.0)
    } else {
        format!("{:.1}M", v / 1_000_000.0)
    }
}

/// Bytes per second: `512`, `12K`, `3.4M`.
fn bytes(v: f64) -> String {
    if v < 1024.0 {
        format!("{v:.0}")
    } else if v < 1024.0 * 1024.0 {
        format!("{:.0}K", v / 1024.0)
    } else {
        format!("{:.1}M", v / (1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::tests::{at, cluster, info, traffic, ME};
    use super::super::model::{Key, Probe, Update};
    use super::*;
    use cluster::dist::builtin::cluster_events::{NodeStats, ProcessQueue};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn render(model: &Model, w: u16, h: u16) -> String {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| draw(f, model, at(90).wall_ms)).unwrap();
        buffer_text(term.backend().buffer())
    }

    /// Another tool's hidden connection, idle.
    fn tool() -> cluster::dist::builtin::cluster_events::PeerTraffic {
        let mut t = traffic("cluster-cli-2@h", 4);
        t.kind = "hidden".into();
        t
    }

    fn line_with<'a>(screen: &'a str, needle: &str) -> &'a str {
        screen
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{screen}"))
    }

    /// The screen lines of the table rows of `names` (a row starts with the selection mark or
    /// a space, then the name).
    fn row_order(screen: &str, names: &[&str]) -> Vec<usize> {
        names
            .iter()
            .map(|n| {
                screen
                    .lines()
                    .position(|l| l.get(1..).is_some_and(|rest| rest.starts_with(n)))
                    .unwrap_or(usize::MAX)
            })
            .collect()
    }

    #[test]
    fn rows_show_role_status_readiness_and_the_selection() {
        let mut m = cluster();
        m.apply(
            Update::Polled {
                node: "ds1@h".into(),
                probe: Probe::Stats(NodeStats {
                    peers: vec![
                        traffic("beacon1@h", 10),
                        traffic("dc1@h", 10),
                        traffic(ME, 5),
                        tool(),
                    ],
                    processes: vec![],
                }),
            },
            at(1),
        );
        m.apply(
            Update::Polled {
                node: "ds1@h".into(),
                probe: Probe::Stats(NodeStats {
                    peers: vec![
                        traffic("beacon1@h", 30),
                        traffic("dc1@h", 10),
                        traffic(ME, 9),
                        tool(),
                    ],
                    processes: vec![],
                }),
            },
            at(3),
        );
        let screen = render(&m, 150, 30);
        assert!(
            line_with(&screen, "cluster top")
                .contains("beacon1@h (beacon) · 5 nodes, 4 online, 3 ready"),
            "{screen}"
        );
        let gate = line_with(&screen, "gate1@h");
        assert!(gate.contains("gate ") && gate.contains("online"), "{gate}");
        assert!(gate.contains("missing gate_manager"), "{gate}");
        let gm = line_with(&screen, "gm1@h");
        assert!(gm.contains("offline"), "{gm}");
        // 20 messages in 2 s each way to the beacon; our own polling is not counted.
        let ds = line_with(&screen, "ds1@h");
        let cols: Vec<&str> = ds.split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "ds1@h",
                "data_service",
                "online",
                "1m30s",
                "2+1h",
                "10",
                "10",
                "1000",
                "1000",
                "-",
                "ready"
            ],
            "{ds}"
        );
        // The first row is picked.
        assert!(
            line_with(&screen, "beacon1@h beacon").starts_with('>'),
            "{screen}"
        );
        assert!(!gate.starts_with('>'));
        m.key(Key::Down);
        m.key(Key::Down);
        m.key(Key::Down);
        let screen = render(&m, 150, 30);
        assert!(line_with(&screen, "gate1@h").starts_with('>'), "{screen}");
        assert!(line_with(&screen, "q quit · s sort").contains("Enter details"));
    }

    #[test]
    fn the_event_pane_shows_the_newest_events() {
        let mut m = cluster();
        m.apply(
            Update::Registered(info("gm1@h", "gate_manager", &[], true)),
            at(10),
        );
        m.apply(
            Update::NodeDown {
                node: "dc1@h".into(),
                reason: "net_tick_timeout".into(),
            },
            at(11),
        );
        m.apply(
            Update::Polled {
                node: "ds1@h".into(),
                probe: Probe::NoAnswer,
            },
            at(12),
        );
        let screen = render(&m, 150, 30);
        let reg = line_with(&screen, "registered");
        assert!(reg.contains("gm1@h role gate_manager"), "{reg}");
        assert!(line_with(&screen, "nodedown").contains("dc1@h net_tick_timeout"));
        assert!(line_with(&screen, "no answer ").contains("ds1@h"));
        // The node that stopped answering says so in its row, and the gate is ready now.
        assert!(
            line_with(&screen, "ds1@h  ").contains("no answer 1m18s"),
            "{screen}"
        );
        assert!(
            line_with(&screen, "gate1@h  ").contains("ready"),
            "{screen}"
        );
        assert!(
            !line_with(&screen, "gate1@h  ").contains("missing"),
            "{screen}"
        );

        // Only the newest fit a small pane.
        for i in 0..30 {
            m.apply(Update::NodeUp(format!("extra{i}@h")), at(20));
        }
        let screen = render(&m, 150, 30);
        assert!(screen.contains("nodeup      extra29@h"), "{screen}");
        assert!(!screen.contains("nodeup      extra0@h"), "{screen}");
    }

    #[test]
    fn sorting_and_filtering_change_the_rows_shown() {
        let mut m = cluster();
        let names = ["beacon1@h", "dc1@h", "ds1@h", "gate1@h", "gm1@h"];
        let screen = render(&m, 150, 30);
        let by_role = row_order(&screen, &names);
        assert!(by_role.windows(2).all(|w| w[0] < w[1]), "{screen}");
        assert!(line_with(&screen, "cluster top").contains("sort role"));
        m.key(Key::Char('s'));
        let screen = render(&m, 150, 30);
        assert!(line_with(&screen, "cluster top").contains("sort status"));
        let by_status = row_order(&screen, &["gm1@h", "gate1@h", "beacon1@h"]);
        assert!(by_status.windows(2).all(|w| w[0] < w[1]), "{screen}");
        // The offline node was last by role and is first by status.
        assert_eq!(by_role.iter().max(), Some(&by_role[4]));
        assert_eq!(by_status[0], by_role[0]);

        m.key(Key::Char('r'));
        m.key(Key::Char('r'));
        let screen = render(&m, 150, 30);
        assert!(line_with(&screen, "cluster top").contains("filter role data_contact"));
        assert!(screen.contains("dc1@h"), "{screen}");
        for gone in ["ds1@h", "gate1@h", "gm1@h", "beacon1@h beacon"] {
            assert!(!screen.contains(gone), "{gone} still shown:\n{screen}");
        }
        assert!(screen.contains("nodes (1 shown)"), "{screen}");

        m.key(Key::Char('/'));
        m.key(Key::Char('d'));
        let screen = render(&m, 150, 30);
        assert!(screen.contains("/d_  filter by node or role"), "{screen}");
        m.key(Key::Char('s'));
        m.key(Key::Enter);
        let screen = render(&m, 150, 30);
        assert!(screen.contains("ds1@h"), "{screen}");
        assert!(!screen.contains("dc1@h"), "{screen}");
    }

    #[test]
    fn the_details_pane_shows_peers_requirements_and_queues() {
        let mut m = cluster();
        m.apply(
            Update::Registered(info("gm2@h", "gate_manager", &[], true)),
            at(2),
        );
        m.apply(
            Update::Polled {
                node: "gate1@h".into(),
                probe: Probe::Stats(NodeStats {
                    peers: vec![traffic("beacon1@h", 7), traffic("gm2@h", 3), traffic(ME, 1)],
                    processes: vec![ProcessQueue {
                        process: "gate".into(),
                        len: 4,
                        bytes: 400,
                        peak: 77,
                    }],
                }),
            },
            at(3),
        );
        for _ in 0..3 {
            m.key(Key::Down);
        }
        m.key(Key::Enter);
        let screen = render(&m, 150, 34);
        assert!(screen.contains(" gate1@h "), "{screen}");
        assert!(
            line_with(&screen, "role gate").contains("online since"),
            "{screen}"
        );
        assert!(
            line_with(&screen, "gate_manager →").contains("gm2@h (offline: gm1@h)"),
            "{screen}"
        );
        assert!(screen.contains("peers (2)"), "{screen}");
        let peer: Vec<&str> = line_with(&screen, "  beacon1@h")
            .split_whitespace()
            .collect();
        assert_eq!(peer, ["beacon1@h", "visible", "-", "-", "-", "-", "7", "7"]);
        assert!(!screen.contains(ME), "{screen}");
        let q: Vec<&str> = line_with(&screen, "  gate  ").split_whitespace().collect();
        assert_eq!(q, ["gate", "4", "400", "77"]);
        assert!(line_with(&screen, "Esc back").contains("q quit"));
        m.key(Key::Esc);
        let screen = render(&m, 150, 34);
        assert!(!screen.contains("peers (2)"), "{screen}");
        assert!(screen.contains("NODE"), "{screen}");
    }

    #[test]
    fn formats() {
        assert_eq!(age(5_000), "5s");
        assert_eq!(age(133_000), "2m13s");
        assert_eq!(age(3_720_000), "1h02m");
        assert_eq!(count(0.0), "0");
        assert_eq!(count(4.5), "4.5");
        assert_eq!(count(1234.0), "1234");
        assert_eq!(count(34_000.0), "34.0k");
        assert_eq!(bytes(2048.0), "2K");
        assert_eq!(clock(at(0).wall_ms), "22:13:20");
    }
}
