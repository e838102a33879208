//! `cluster roles`: validates the roles file and lists every role with its resource and
//! requirements. A broken file exits with status 2 and names the file, line and column.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::{output, GlobalOpts};
use cluster::config;

/// Arguments of `cluster roles`.
#[derive(Debug, Args)]
pub struct RolesArgs {
    /// Print the resolved file as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(global: &GlobalOpts, args: RolesArgs) -> anyhow::Result<ExitCode> {
    let file = config::load_roles(global.roles.as_deref()).context("invalid roles file")?;
    if args.json {
        output::print_json(&file)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = output::table(&["ROLE", "RESOURCE", "REQUIREMENTS"]);
    for role in &file.roles {
        let reqs = if role.requirements.is_empty() {
            "-".to_owned()
        } else {
            role.requirements.join(", ")
        };
        table.add_row(vec![role.name.clone(), role.resource.clone(), reqs]);
    }
    output::print_table(&table)?;
    Ok(ExitCode::SUCCESS)
}
