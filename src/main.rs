//! The `cluster` binary: everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    cluster::cli::main()
}
