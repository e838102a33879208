//! The `cluster` command line: global options, subcommand dispatch, logging set-up, and the
//! mapping from errors to exit codes. Each subcommand lives in its own file; this module only
//! wires them together.
//!
//! Exit codes: 0 success; 1 a runtime failure (nothing answered, a node is down); 2 a usage
//! or configuration error (bad flags, an invalid roles file), as clap already uses 2.

mod completions;
mod config;
mod doctor;
mod epmd;
mod forget;
mod kv;
mod monitor;
mod names;
mod output;
mod ping;
mod procs;
mod requirements;
mod resident;
mod roles;
mod session;
mod start;
mod top;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use cluster::config::ConfigError;

/// Erlang-compatible clustering for game servers: port mapper, nodes, beacon and tools.
#[derive(Debug, Parser)]
#[command(name = "cluster", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand accepts.
#[derive(Debug, Args)]
pub struct GlobalOpts {
    /// Port of the port mapper (EPMD) on every host.
    #[arg(long, global = true, env = "ERL_EPMD_PORT", default_value_t = cluster::epmd::DEFAULT_PORT, value_name = "PORT")]
    pub epmd_port: u16,
    /// Distribution cookie (overrides --cookie-file and ~/.erlang.cookie).
    #[arg(
        long,
        global = true,
        env = "CLUSTER_COOKIE",
        hide_env_values = true,
        value_name = "COOKIE"
    )]
    pub cookie: Option<String>,
    /// File holding the distribution cookie (accessible by its owner only, as erl requires).
    #[arg(long, global = true, value_name = "PATH")]
    pub cookie_file: Option<PathBuf>,
    /// Roles file [default: ./roles.toml, then the user config directory].
    #[arg(long, global = true, env = "CLUSTER_ROLES", value_name = "PATH")]
    pub roles: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node in the foreground.
    Start(start::StartArgs),
    /// Ping nodes, like net_adm:ping/1; exits 0 only if every node answers pong.
    Ping(ping::PingArgs),
    /// Follow a node's nodeup/nodedown events.
    Monitor(monitor::MonitorArgs),
    /// Ask the beacon which providers a node's requirements have; exits 0 when all are online.
    Requirements(requirements::RequirementsArgs),
    /// Start a local cluster (the beacon and one node per role) and follow it.
    Up(up::UpArgs),
    /// Watch a live cluster full-screen: nodes by role, readiness, connections, events.
    Top(top::TopArgs),
    /// Run the port mapper (an EPMD-compatible daemon), or query/stop one.
    Epmd(epmd::EpmdArgs),
    /// List the nodes registered with a host's port mapper.
    Names(names::NamesArgs),
    /// Validate the roles file and list its roles (or print the built-in one).
    Roles(roles::RolesArgs),
    /// Read and write the data tier (get, put, delete, list, buckets, status) on a data node.
    Kv(kv::KvArgs),
    /// List the process registry (cluster_server), or create a process (`procs create`).
    Procs(procs::ProcsArgs),
    /// Find where a registered process lives; exits 1 when it is not registered.
    Whereis(procs::WhereisArgs),
    /// Read, write and watch the cluster-wide shared configuration (held by the beacon).
    Config(config::ConfigArgs),
    /// Remove offline nodes from the beacon's table.
    Forget(forget::ForgetArgs),
    /// Check what usually goes wrong (port mapper, names, cookie, ports, ticktime, beacon).
    Doctor(doctor::DoctorArgs),
    /// Print a shell completion script.
    Completions(completions::CompletionsArgs),
}

impl Command {
    /// Long-running commands log at info by default; one-shot tools stay quiet.
    fn is_daemon(&self) -> bool {
        matches!(self, Command::Start(_)) || matches!(self, Command::Epmd(args) if args.is_daemon())
    }
}

/// Parses the command line, runs the subcommand and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.verbose, cli.command.is_daemon());
    match run(cli) {
        Ok(code) => code,
        Err(err) => report(&err),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Start(args) => start::run(&cli.global, args),
        Command::Ping(args) => ping::run(&cli.global, args),
        Command::Monitor(args) => monitor::run(&cli.global, args),
        Command::Requirements(args) => requirements::run(&cli.global, args),
        Command::Up(args) => up::run(&cli.global, args),
        Command::Top(args) => top::run(&cli.global, args),
        Command::Epmd(args) => epmd::run(&cli.global, args),
        Command::Names(args) => names::run(&cli.global, args),
        Command::Roles(args) => roles::run(&cli.global, args),
        Command::Forget(args) => forget::run(&cli.global, args),
        Command::Kv(args) => kv::run(&cli.global, args),
        Command::Procs(args) => procs::run(&cli.global, args),
        Command::Whereis(args) => procs::whereis(&cli.global, args),
        Command::Config(args) => config::run(&cli.global, args),
        Command::Doctor(args) => doctor::run(&cli.global, args),
        Command::Completions(args) => completions::run(args),
    }
}

fn report(err: &anyhow::Error) -> ExitCode {
    let broken_pipe = err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        // The reader went away (`cluster names | head`): not our failure.
        return ExitCode::SUCCESS;
    }
    eprintln!("cluster: {}", describe(err));
    if let Some(hint) = hint(err) {
        eprintln!("cluster: hint: {hint}");
    }
    if is_usage(err) {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

/// The error chain joined by ": ", each cause once: a cause whose text an outer message
/// already contains (an error that prints its source, and also chains it) is left out.
pub(crate) fn describe(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        let part = part.trim();
        if part.is_empty() || text.contains(part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(part);
    }
    text
}

/// Whether an error exits 2: a usage or configuration error (or any `kv` failure, where 1
/// means "not found") rather than a runtime failure.
fn is_usage(err: &anyhow::Error) -> bool {
    // A context marker is found by downcasting the error itself, not in its chain.
    err.downcast_ref::<kv::Exit2>().is_some()
        || err.chain().any(|c| {
            c.is::<ConfigError>()
                || c.is::<Usage>()
                || c.is::<cluster::config::cookie::CookieError>()
                || c.is::<cluster::dist::name::NameError>()
        })
}

/// A hint for errors whose fix is known.
fn hint(err: &anyhow::Error) -> Option<String> {
    use cluster::dist::{CallError, ConnectError};
    // A connection error, wherever it sits: alone, or under a failed call (whose transparent
    // wrappers do not appear in the chain on their own).
    err.chain().find_map(|c| {
        let connect = c
            .downcast_ref::<ConnectError>()
            .or_else(|| c.downcast_ref::<CallError>()?.connect_error())
            .or_else(|| {
                c.downcast_ref::<cluster::beacon::BeaconError>()?
                    .connect_error()
            })?;
        matches!(connect, ConnectError::BadCookie).then(session::cookie_hint)
    })
}

/// A usage error found after parsing (a value clap cannot check alone): exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// Logs go to stderr at the level `-v` asks for, or as `RUST_LOG` says (`level` or
/// `target=level`, comma-separated). A plain target filter, not `EnvFilter`: it needs no regex
/// engine, which keeps the binary and an idle node's resident memory smaller.
fn init_logging(verbose: u8, daemon: bool) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let level = match (verbose, daemon) {
        (0, false) => LevelFilter::WARN,
        (0, true) | (1, _) => LevelFilter::INFO,
        (2, _) => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => spec.parse::<Targets>().unwrap_or_else(|e| {
            eprintln!("cluster: ignoring RUST_LOG={spec:?}: {e}");
            Targets::new().with_default(level)
        }),
        _ => Targets::new().with_default(level),
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(|| output::LogWriter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(filter)
        .try_init();
}

/// A current-thread runtime: the tools and the port mapper are I/O-bound, so one thread is
/// enough, starts fastest and never pays for a wake-up that crosses threads.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    // A tool is busy for its whole short life: spinning saves a wake-up per answer.
    cluster::net::spin::install(&mut builder, cluster::net::spin::DEFAULT_SPIN);
    Ok(builder.enable_all().build()?)
}

/// Parses a positive, finite number of seconds (`--timeout 2.5`).
pub(crate) fn parse_secs(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

/// The clap command, for completion generation and tests.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
