//! `cluster epmd`: runs the port mapper in the foreground or as a daemon, or sends it the
//! control requests that `epmd -kill`, `epmd -stop NAME` and `epmd -dump` send.
//!
//! As epmd, the daemon writes nothing on stdout: its status lines and logs go to stderr, so a
//! script that runs it (OTP's own test suite does) sees only what it asked for. `--dump`
//! prints exactly what `epmd -dump` prints.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::GlobalOpts;
use cluster::epmd::proto::ControlReply;
use cluster::epmd::{server, EpmdClient, Server, ServerConfig, ServerError};

/// How long `--daemon` waits for the detached port mapper to answer.
const DAEMON_START_TIMEOUT: Duration = Duration::from_secs(5);

/// Arguments of `cluster epmd`.
#[derive(Debug, Args)]
pub struct EpmdArgs {
    /// Port to listen on [default: --epmd-port]. 0 picks a free port (printed on stderr).
    #[arg(long, value_name = "PORT")]
    port: Option<u16>,
    /// Addresses to listen on, comma-separated; the IPv4 and IPv6 loopback addresses are
    /// always added. [default: every interface, IPv4 and IPv6, as epmd]
    #[arg(long, value_delimiter = ',', value_name = "ADDR,...")]
    address: Vec<IpAddr>,
    /// Detach and run in the background; exits 0 at once if a port mapper already serves the port.
    #[arg(long)]
    daemon: bool,
    /// Allow KILL with nodes registered, and STOP (like epmd -relaxed_command_check).
    #[arg(long)]
    relaxed_command_check: bool,
    /// Seconds of silence after which a connection that has not sent its whole request is
    /// closed; every byte received starts the count again (epmd's -packet_timeout). As
    /// epmd, which counts whole seconds, a pause of exactly SECS is tolerated: the connection
    /// goes after SECS+1 seconds of silence.
    #[arg(long, value_name = "SECS", default_value_t = server::DEFAULT_PACKET_TIMEOUT.as_secs())]
    packet_timeout: u64,
    /// Seconds a connection has, from its accept, to send its whole request however steadily
    /// it trickles (stops slow-drip clients; epmd has no such limit).
    #[arg(long, value_name = "SECS", default_value_t = server::DEFAULT_REQUEST_DEADLINE.as_secs())]
    request_deadline: u64,
    /// Most connections open at once (registered nodes included).
    #[arg(long, value_name = "N", default_value_t = server::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Ask the running port mapper to exit (refused while nodes are registered, unless it
    /// runs with --relaxed-command-check).
    #[arg(long, conflicts_with_all = ["daemon", "stop", "dump"])]
    kill: bool,
    /// Forcibly unregister NAME (needs --relaxed-command-check on the port mapper).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["daemon", "dump"])]
    stop: Option<String>,
    /// Print the running port mapper's registered and remembered names, as `epmd -dump`.
    #[arg(long, conflicts_with = "daemon")]
    dump: bool,
    /// With --dump: print the names as JSON.
    #[arg(long, requires = "dump")]
    json: bool,
}

/// epmd keeps time in whole seconds and closes a connection once its silence exceeds the
/// packet timeout's whole seconds, which takes between SECS and SECS+1 seconds. A client
/// pacing itself at exactly SECS (OTP's own test writes a byte a second under
/// `-packet_timeout 1`) is answered by epmd, so it must be by us: we use the upper bound.
const PACKET_TIMEOUT_GRAIN: Duration = Duration::from_secs(1);

impl EpmdArgs {
    /// True when this invocation serves (rather than queries) a port mapper.
    pub fn is_daemon(&self) -> bool {
        !self.kill && self.stop.is_none() && !self.dump
    }
}

pub fn run(global: &GlobalOpts, args: EpmdArgs) -> anyhow::Result<ExitCode> {
    let port = args.port.unwrap_or(global.epmd_port);
    if !args.is_daemon() {
        return super::runtime()?.block_on(control(port, &args));
    }
    if args.daemon {
        return daemonize(port, &args);
    }
    let config = ServerConfig {
        port,
        addresses: args.address.clone(),
        relaxed_command_check: args.relaxed_command_check,
        packet_timeout: Duration::from_secs(args.packet_timeout) + PACKET_TIMEOUT_GRAIN,
        request_deadline: Duration::from_secs(args.request_deadline),
        max_connections: args.max_connections.max(1),
    };
    // The daemon does not spin: it serves short requests on sockets the spin set does not
    // watch, so spinning would only delay them.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(config))
}

async fn serve(config: ServerConfig) -> anyhow::Result<ExitCode> {
    let port = config.port;
    // Before it says it listens: a signal sent at once then still stops it cleanly.
    let stop = wait_for_signal();
    let server = match Server::bind(config).await {
        Ok(server) => server,
        Err(e @ ServerError::AddrInUse { .. }) => {
            bail!("{e}: is a port mapper already running on port {port}? (`cluster names` asks it)")
        }
        Err(e) => return Err(e.into()),
    };
    for addr in server.local_addrs() {
        eprintln!("cluster epmd: listening on {addr}");
    }
    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    tokio::spawn(async move {
        stop.await;
        signals.cancel();
    });
    super::resident::drop_startup_code();
    server.run(shutdown).await;
    Ok(ExitCode::SUCCESS)
}

/// Resolves at SIGINT or SIGTERM. The handlers are installed when this is called, not when it
/// is first awaited: a daemon calls it before it says it is ready, so a signal sent the moment
/// it is ready still stops it gracefully instead of killing it.
pub(super) fn wait_for_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate()).ok();
    let int = signal(SignalKind::interrupt()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = wait(term) => {}
            _ = wait(int) => {}
        }
    }
}

async fn control(port: u16, args: &EpmdArgs) -> anyhow::Result<ExitCode> {
    let client = EpmdClient::new("127.0.0.1", port);
    if args.kill {
        return Ok(match client.kill().await? {
            ControlReply::Ok => {
                println!("killed");
                ExitCode::SUCCESS
            }
            _ => {
                eprintln!("cluster: port mapper refused to stop: nodes are still registered");
                ExitCode::FAILURE
            }
        });
    }
    if let Some(name) = &args.stop {
        return Ok(match client.stop(name).await? {
            ControlReply::Stopped => {
                println!("stopped {name}");
                ExitCode::SUCCESS
            }
            _ => {
                eprintln!("cluster: {name:?} is not registered");
                ExitCode::FAILURE
            }
        });
    }
    let dump = client.dump().await?;
    if args.json {
        let lines = dump
            .lines()
            .with_context(|| format!("port mapper at {}", client.target()))?;
        super::output::print_json(&lines)?;
        return Ok(ExitCode::SUCCESS);
    }
    // Byte for byte what `epmd -dump` prints: its header, then the reply's text with the NUL
    // that ends each of epmd's lines.
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "epmd: up and running on port {} with data:",
        dump.epmd_port
    )?;
    out.write_all(&dump.text)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Starts `cluster epmd` detached from this terminal and waits until it answers.
fn daemonize(port: u16, args: &EpmdArgs) -> anyhow::Result<ExitCode> {
    if port == 0 {
        bail!("--daemon needs a fixed port: with port 0 nobody could find the daemon");
    }
    let rt = super::runtime()?;
    let probe = EpmdClient::new("127.0.0.1", port).with_timeout(Duration::from_secs(1));
    if rt.block_on(probe.names()).is_ok() {
        tracing::info!("a port mapper already serves port {port}");
        return Ok(ExitCode::SUCCESS);
    }
    let exe = std::env::current_exe().context("cannot find the cluster executable")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("epmd")
        .arg("--port")
        .arg(port.to_string())
        .arg("--packet-timeout")
        .arg(args.packet_timeout.to_string())
        .arg("--request-deadline")
        .arg(args.request_deadline.to_string())
        .arg("--max-connections")
        .arg(args.max_connections.to_string());
    if !args.address.is_empty() {
        let list: Vec<String> = args.address.iter().map(ToString::to_string).collect();
        cmd.arg("--address").arg(list.join(","));
    }
    if args.relaxed_command_check {
        cmd.arg("--relaxed-command-check");
    }
    let log = daemon_log_path(port);
    let stderr = log
        .as_ref()
        .and_then(|p| std::fs::File::create(p).ok())
        .map_or_else(Stdio::null, Stdio::from);
    // Its own process group, so a Ctrl-C aimed at whoever started it does not reach it.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .context("cannot start the port mapper")?;
    let pid = child.id();
    let where_log = log.map_or_else(String::new, |p| format!("; see {}", p.display()));
    let ready = rt.block_on(async {
        let deadline = tokio::time::Instant::now() + DAEMON_START_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                bail!("the port mapper exited at start ({status}){where_log}");
            }
            if probe.names().await.is_ok() {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(false)
    })?;
    if !ready {
        bail!("the port mapper (pid {pid}) did not answer on port {port} within {DAEMON_START_TIMEOUT:?}{where_log}");
    }
    eprintln!("cluster epmd: started (pid {pid}) on port {port}");
    Ok(ExitCode::SUCCESS)
}

fn daemon_log_path(port: u16) -> Option<PathBuf> {
    let dir = directories::ProjectDirs::from("", "", "cluster")?
        .cache_dir()
        .to_owned();
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir.join(format!("epmd-{port}.log")))
}
