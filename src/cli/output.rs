//! Shared output helpers: plain tables that read well on a terminal and parse well with
//! `awk`, and JSON for `--json`.

use std::io::Write;

use comfy_table::{presets, ContentArrangement, Table};
use serde::Serialize;

/// A borderless table with the given column headers, in the style of `kubectl get`.
pub fn table(headers: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.iter().copied());
    for column in table.column_iter_mut() {
        column.set_padding((0, 3));
    }
    table
}

/// Prints a table to stdout, trimming the padding that ends every line.
pub fn print_table(table: &Table) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for line in table.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    out.flush()
}

/// Prints a value as pretty JSON to stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    out.flush()
}

/// The progress bars on screen, if any: log lines are printed "around" them (the bars are
/// cleared, the line printed, the bars redrawn), so logs and spinners never interleave and no
/// spinner fragment is left in the scrollback.
static BARS: std::sync::Mutex<Option<indicatif::MultiProgress>> = std::sync::Mutex::new(None);

/// Progress bars for a terminal, drawn on stdout; `None` when stdout is not a terminal (then
/// the caller prints one line per change instead). Log lines are routed around them until
/// [`end_bars`].
pub fn terminal_bars() -> Option<indicatif::MultiProgress> {
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return None;
    }
    let multi = indicatif::MultiProgress::with_draw_target(
        indicatif::ProgressDrawTarget::stdout_with_hz(10),
    );
    *BARS.lock().unwrap_or_else(|e| e.into_inner()) = Some(multi.clone());
    Some(multi)
}

/// Stops routing log lines around the bars.
pub fn end_bars() {
    *BARS.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Runs `f` with the bars (if any) cleared from the screen: for lines printed while bars are
/// showing.
pub fn around_bars<R>(f: impl FnOnce() -> R) -> R {
    let bars = BARS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match bars {
        Some(multi) => multi.suspend(f),
        None => f(),
    }
}

/// The writer tracing logs through: stderr, around any progress bars.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        around_bars(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// `1 node`, `5 nodes`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
