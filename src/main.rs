//! The `cluster` binary: the command line in [`cli`], on top of the `cluster` library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
