//! `cluster top`: a live full-screen view of a whole cluster for operators, as observer_cli is
//! for one Erlang node: every node with its role, the beacon's status and since when, whether
//! its requirements have online providers (and which are missing), its connections, message
//! rates and queue peaks, and a pane of events (nodeup/nodedown, registrations, nodes going
//! offline or silent, mailbox high-water marks).
//!
//! The work is split so that most of it is tested without a terminal: [`model`] is the pure
//! state (updates and keys in), [`view`] draws it, [`source`] talks to the cluster, and this
//! module owns the terminal and the loop that joins them. Against a node that is not a beacon
//! (a plain Erlang node too) it shows what that node is connected to.
//!
//! Nothing here waits on one node: the sources poll each node in its own task with a timeout,
//! and the loop only reads their bounded channel. It draws when something changed (at most
//! every [`MIN_FRAME`]) and once a second (ages move on). The terminal is put back however the
//! loop ends: by `q`, a signal, an error, or a panic. `--once` prints one frame as text
//! instead, for scripts, tests, and stdout that is not a terminal.

mod model;
mod source;
mod view;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use ratatui::backend::{CrosstermBackend, TestBackend};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::crossterm::{cursor, execute, terminal};
use ratatui::Terminal;
use tokio::sync::mpsc;

use super::GlobalOpts;
use cluster::dist::{Node, NodeName};
use model::{Action, Clock, Key, Model, Update};
use source::Sources;

/// Keys buffered between the terminal reader thread and the loop.
const KEY_CAPACITY: usize = 64;
/// Data changes are drawn at most this often.
const MIN_FRAME: Duration = Duration::from_millis(500);
/// The screen is drawn at least this often (ages and "no answer for" move on).
const REDRAW_EVERY: Duration = Duration::from_secs(1);
/// How long the terminal reader waits for a key before checking whether to stop.
const INPUT_POLL: Duration = Duration::from_millis(250);
/// How long the watched node gets to answer the first connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// `--once` prints what it has after this long, even if some node has not answered yet.
const ONCE_LIMIT: Duration = Duration::from_secs(10);
/// How long stopping our tasks and our node may take.
const STOP_LIMIT: Duration = Duration::from_secs(2);
/// Updates applied in one go before the loop looks at keys again.
const UPDATE_BATCH: usize = 64;

/// Arguments of `cluster top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The node to watch: a beacon shows the whole cluster, another node what it is connected
    /// to [default: the beacon in the roles file].
    #[arg(value_name = "NODE")]
    node: Option<String>,
    /// Print one frame as plain text and exit (for scripts, or when stdout is not a terminal).
    #[arg(long)]
    once: bool,
    /// Width of the --once frame.
    #[arg(long, value_name = "COLS", default_value_t = 160, requires = "once")]
    width: u16,
}

pub fn run(global: &GlobalOpts, args: TopArgs) -> anyhow::Result<ExitCode> {
    let settings = super::session::Settings::resolve(global).context("invalid roles file")?;
    let target = match &args.node {
        Some(n) => NodeName::parse(n)?,
        None => settings.beacon(None),
    };
    if !args.once && !std::io::stdout().is_terminal() {
        eprintln!(
            "cluster: top draws on a terminal, and stdout is not one; \
             `cluster top --once` prints one frame as text, `cluster names --cluster` lists \
             the nodes, `cluster monitor` follows the events"
        );
        return Ok(ExitCode::from(2));
    }
    if args.width < 40 {
        bail!("--width must be at least 40 columns");
    }
    let cookie = super::session::cookie(global)?;
    // One thread, no spinning: top is a long-lived watcher that should cost next to nothing.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let node = super::session::hidden_node(&settings, cookie, &target).await?;
        let result = watch(&node, &target, &args).await;
        let _ = tokio::time::timeout(STOP_LIMIT, node.shutdown()).await;
        result
    })
}

async fn watch(node: &Node, target: &NodeName, args: &TopArgs) -> anyhow::Result<ExitCode> {
    match tokio::time::timeout(CONNECT_TIMEOUT, node.connect(target)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(anyhow!(e).context(format!("cannot reach {target}"))),
        Err(_) => bail!(
            "cannot reach {target}: no answer within {}s (stopped or overloaded?)",
            CONNECT_TIMEOUT.as_secs()
        ),
    }
    let (mut sources, updates) = Sources::start(node.clone(), target.clone());
    let mut model = Model::new(target.as_str(), node.name().as_str());
    let start = Instant::now();
    let result = if args.once {
        once(&mut model, &mut sources, updates, start, args.width).await
    } else {
        interactive(&mut model, &mut sources, updates, start).await
    };
    sources.stop(STOP_LIMIT).await;
    result
}

fn now(start: Instant) -> Clock {
    let wall_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Clock {
        wall_ms,
        mono_ms: start.elapsed().as_millis() as u64,
    }
}

/// Applies `first` and whatever else is already queued (up to a batch), then points the
/// pollers at the nodes the model now watches.
fn absorb(
    model: &mut Model,
    sources: &mut Sources,
    updates: &mut mpsc::Receiver<Update>,
    first: Update,
    start: Instant,
) {
    model.apply(first, now(start));
    for _ in 1..UPDATE_BATCH {
        match updates.try_recv() {
            Ok(u) => {
                model.apply(u, now(start));
            }
            Err(_) => break,
        }
    }
    sources.watch(&model.watched());
}

async fn once(
    model: &mut Model,
    sources: &mut Sources,
    mut updates: mpsc::Receiver<Update>,
    start: Instant,
    width: u16,
) -> anyhow::Result<ExitCode> {
    sources.watch(&model.watched());
    let deadline = tokio::time::Instant::now() + ONCE_LIMIT;
    while !model.settled() {
        tokio::select! {
            u = updates.recv() => match u {
                Some(u) => absorb(model, sources, &mut updates, u, start),
                None => break,
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    let (height, events) = view::fitted_height(model);
    let mut term = Terminal::new(TestBackend::new(width, height))?;
    let at = now(start).wall_ms;
    term.draw(|f| view::draw_with(f, model, at, events))?;
    let text = view::buffer_text(term.backend().buffer());
    let mut out = std::io::stdout().lock();
    out.write_all(text.trim_end().as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// What the terminal reader thread sends.
enum Input {
    Key(Key),
    Resize,
    Failed(String),
}

async fn interactive(
    model: &mut Model,
    sources: &mut Sources,
    mut updates: mpsc::Receiver<Update>,
    start: Instant,
) -> anyhow::Result<ExitCode> {
    let guard = TerminalGuard::enter().context("cannot set up the terminal")?;
    let mut term = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    term.clear()?;
    let (keys_tx, mut keys) = mpsc::channel(KEY_CAPACITY);
    let stop = Arc::new(AtomicBool::new(false));
    read_keys(keys_tx, stop.clone());
    sources.watch(&model.watched());
    let mut ticker = tokio::time::interval(REDRAW_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut signal = std::pin::pin!(super::epmd::wait_for_signal());
    let mut dirty = true;
    let mut drawn: Option<Instant> = None;
    let result = loop {
        if dirty && drawn.is_none_or(|t| t.elapsed() >= MIN_FRAME) {
            let at = now(start).wall_ms;
            term.draw(|f| view::draw(f, model, at))?;
            dirty = false;
            drawn = Some(Instant::now());
        }
        tokio::select! {
            k = keys.recv() => match k {
                Some(Input::Key(k)) => match model.key(k) {
                    Action::Quit => break Ok(ExitCode::SUCCESS),
                    Action::Redraw => (dirty, drawn) = (true, None),
                    Action::None => {}
                },
                Some(Input::Resize) => (dirty, drawn) = (true, None),
                Some(Input::Failed(e)) => break Err(anyhow!("cannot read the terminal: {e}")),
                None => break Err(anyhow!("the terminal reader stopped")),
            },
            u = updates.recv() => match u {
                Some(u) => {
                    absorb(model, sources, &mut updates, u, start);
                    dirty = true;
                }
                None => break Err(anyhow!("the cluster sources stopped")),
            },
            _ = ticker.tick() => (dirty, drawn) = (true, None),
            _ = &mut signal => break Ok(ExitCode::SUCCESS),
        }
    };
    stop.store(true, Ordering::Relaxed);
    drop(term);
    drop(guard);
    result
}

/// Maps a terminal key to the model's.
fn map_key(k: KeyEvent) -> Option<Key> {
    if k.kind != KeyEventKind::Press {
        return None;
    }
    Some(match k.code {
        KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => Key::Interrupt,
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Backspace => Key::Backspace,
        _ => return None,
    })
}

/// Reads the terminal on a thread of its own (crossterm's reads block), until `stop` or until
/// the loop is gone.
fn read_keys(tx: mpsc::Sender<Input>, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let input = match event::poll(INPUT_POLL) {
                Ok(false) => continue,
                Ok(true) => match event::read() {
                    Ok(Event::Key(k)) => match map_key(k) {
                        Some(k) => Input::Key(k),
                        None => continue,
                    },
                    Ok(Event::Resize(..)) => Input::Resize,
                    Ok(_) => continue,
                    Err(e) => Input::Failed(e.to_string()),
                },
                Err(e) => Input::Failed(e.to_string()),
            };
            let failed = matches!(input, Input::Failed(_));
            if tx.blocking_send(input).is_err() || failed {
                return;
            }
        }
    });
}

/// Raw mode and the alternate screen while it lives; the terminal as it was once it is
/// dropped, on every way out, a panic included (the hook puts the terminal back before the
/// panic message is printed, so the message is readable).
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> std::io::Result<TerminalGuard> {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
        terminal::enable_raw_mode()?;
        // From here on, dropping the guard undoes whatever was done.
        let guard = TerminalGuard;
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn restore_terminal() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        terminal::LeaveAlternateScreen,
        cursor::Show
    );
}
