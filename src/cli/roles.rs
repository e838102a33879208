//! `cluster roles`: validates the roles file and lists every role with its resource,
//! requirements, hosted process types and description, then the registry's process types
//! with their restart policy, then the data tier's routes by bucket if any. A broken file
//! exits with status 2 and names the file, line and column. `--default` prints the built-in roles file, to start one from.

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
    /// Print the built-in roles file (what is used when no roles file is found).
    #[arg(long, conflicts_with = "json")]
    default: bool,
}

pub fn run(global: &GlobalOpts, args: RolesArgs) -> anyhow::Result<ExitCode> {
    if args.default {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(config::BUILTIN_ROLES.as_bytes())?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let settings = super::session::Settings::resolve(global).context("invalid roles file")?;
    let file = settings.roles();
    if args.json {
        output::print_json(file)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = output::table(&["ROLE", "RESOURCE", "REQUIREMENTS", "HOSTS", "DESCRIPTION"]);
    for role in &file.roles {
        let reqs = if role.requirements.is_empty() {
            "-".to_owned()
        } else {
            role.requirements.join(", ")
        };
        table.add_row(vec![
            role.name.clone(),
            role.resource.clone(),
            reqs,
            if role.hosts.is_empty() {
                "-".to_owned()
            } else {
                role.hosts.join(", ")
            },
            role.description.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    output::print_table(&table)?;
    println!();
    let mut table = output::table(&["TYPE", "RESTART", "DESCRIPTION"]);
    for t in &file.types {
        table.add_row(vec![
            t.name.clone(),
            format!("{:?}", t.restart).to_lowercase(),
            t.description.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    output::print_table(&table)?;
    let routes = &file.data.routes.routes;
    if !routes.is_empty() {
        println!();
        let mut table = output::table(&["BUCKETS", "DATA_CONTACT"]);
        for r in routes {
            table.add_row(vec![format!("{}..{}", r.first, r.last), r.node.to_string()]);
        }
        output::print_table(&table)?;
    }
    Ok(ExitCode::SUCCESS)
}
