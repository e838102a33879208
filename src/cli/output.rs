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
