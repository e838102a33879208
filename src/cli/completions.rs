//! `cluster completions <shell>`: prints a completion script generated from the CLI definition,
//! so completions can never disagree with the flags.

use std::process::ExitCode;

use clap::Args;
use clap_complete::Shell;

/// Arguments of `cluster completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate for.
    shell: Shell,
}

pub fn run(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = super::command();
    clap_complete::generate(args.shell, &mut cmd, "cluster", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
