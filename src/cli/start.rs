//! `cluster start`: runs a node in the foreground until SIGINT or SIGTERM, then shuts it down
//! gracefully (peers see nodedown, the port-mapper registration is closed).

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

use super::GlobalOpts;
use cluster::dist::node::DEFAULT_BUSY_LIMIT;
use cluster::dist::proto::frame::DEFAULT_MAX_MESSAGE;
use cluster::dist::setup::DEFAULT_SETUP_TIME;
use cluster::dist::{Node, NodeConfig, NodeName};
use cluster::net::tcp::TcpTransport;
use cluster::roles;

/// Shows the role's start-up: a spinner on a terminal until the requirements are met, then
/// one line per change; without a terminal, one line per change throughout (which `cluster up`
/// reads). Log lines are printed around the spinner, never through it.
async fn show_progress(name: String, mut phase: tokio::sync::watch::Receiver<roles::Phase>) {
    let bars = super::output::terminal_bars();
    let mut spinner = bars.as_ref().map(|multi| {
        let bar = multi.add(indicatif::ProgressBar::new_spinner());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    loop {
        let now = phase.borrow_and_update().clone();
        match spinner.take() {
            Some(bar) if matches!(now, roles::Phase::Ready(_)) => {
                bar.finish_with_message(format!("{name}: {now}"));
                super::output::end_bars();
            }
            Some(bar) if matches!(now, roles::Phase::Failed(_)) => {
                bar.finish_and_clear();
                super::output::end_bars();
            }
            Some(bar) => {
                bar.set_message(format!("{name}: {now}"));
                spinner = Some(bar);
            }
            None => println!("cluster: {name} {}", phase_word(&now)),
        }
        if phase.changed().await.is_err() {
            return;
        }
    }
}

/// A stable one-word-first form of a phase for line-oriented readers.
fn phase_word(p: &roles::Phase) -> String {
    match p {
        roles::Phase::Connecting => "connecting".into(),
        roles::Phase::Registered => "registered".into(),
        roles::Phase::Waiting(m) => format!("waiting {}", m.join(",")),
        roles::Phase::Ready(p) => {
            let nodes: Vec<&str> = p.iter().map(|p| p.node.as_str()).collect();
            format!("ready {}", nodes.join(","))
        }
        roles::Phase::CookieRejected => "cookie_rejected".into(),
        roles::Phase::Failed(why) => format!("failed {why}"),
    }
}

/// Waits until the role gives up (its phase is [`roles::Phase::Failed`]); never returns for a
/// node without a role.
async fn role_failed(phase: Option<tokio::sync::watch::Receiver<roles::Phase>>) -> String {
    let Some(mut phase) = phase else {
        return std::future::pending().await;
    };
    loop {
        if let roles::Phase::Failed(why) = &*phase.borrow_and_update() {
            return why.clone();
        }
        if phase.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// How long a stopping node waits for the beacon to note its clean stop.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(1);

/// Arguments of `cluster start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The node's name, name@host (a long name when host has dots or is an IP).
    #[arg(long, value_name = "NAME@HOST")]
    name: NodeName,
    /// The node's role, as declared in the roles file (shown by `cluster names`).
    #[arg(long, value_name = "ROLE")]
    role: Option<String>,
    /// Seconds of silence before a peer is declared down [default: roles file, else 60].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    net_ticktime: Option<u64>,
    /// Seconds allowed for each handshake step.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_SETUP_TIME.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    net_setuptime: u64,
    /// Distribution port or range, like inet_dist_listen_min/max [default: any free port].
    #[arg(long, value_name = "MIN[-MAX]", value_parser = parse_port_range)]
    dist_port: Option<(u16, u16)>,
    /// Address to listen on [default: the address of the name's host; never 0.0.0.0 unless asked].
    #[arg(long, value_name = "ADDR")]
    listen: Option<IpAddr>,
    /// Do not start a port mapper when none is running.
    #[arg(long)]
    no_epmd_start: bool,
    /// Largest message accepted from a peer, in bytes; a larger one is refused alone (its
    /// caller gets an error) and the connection stays up.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_MESSAGE as u64,
          value_parser = clap::value_parser!(u64).range(1024..=1 << 40))]
    max_message_size: u64,
    /// Bytes queued to one peer before senders that wait are held back (like erl's +zdbbl).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_BUSY_LIMIT as u64,
          value_parser = clap::value_parser!(u64).range(1024..=1 << 34))]
    busy_limit: u64,
    /// Bytes of large incoming messages buffered at once across all connections (raised to
    /// --max-message-size if lower).
    #[arg(long, value_name = "BYTES", default_value_t = cluster::dist::node::DEFAULT_RECEIVE_BUDGET as u64,
          value_parser = clap::value_parser!(u64).range(1 << 20..=1 << 40))]
    receive_budget: u64,
    /// Do not connect automatically on send (like dist_auto_connect never).
    #[arg(long)]
    no_auto_connect: bool,
    /// Run as a hidden node (not in other nodes' nodes()).
    #[arg(long)]
    hidden: bool,
    /// Runtime threads. One (the default) runs the whole node on one thread: no wake-up ever
    /// crosses threads, which halves the cost of a message. More suit roles whose processes do
    /// heavy work of their own.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Microseconds a busy node's threads poll its sockets before sleeping (like erl's
    /// +sbwt): a message then costs no wake-up. 0 never spins; an idle node never spins.
    #[arg(long, value_name = "MICROS", default_value_t = cluster::net::spin::DEFAULT_SPIN.as_micros() as u64,
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    spin: u64,
    /// The beacon to register with [default: the roles file's beacon].
    #[arg(long, env = "CLUSTER_BEACON", value_name = "NODE")]
    beacon: Option<NodeName>,
    /// Seconds a role node goes on trying a beacon that rejects its cookie before it exits
    /// with an error (a wrong cookie does not fix itself).
    #[arg(long, value_name = "SECS", default_value_t = roles::DEFAULT_COOKIE_REJECT_LIMIT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    cookie_reject_timeout: u64,
    /// Data roles: the node's data directory [default: the user's data dir, one folder per
    /// node name].
    #[arg(long, value_name = "DIR", help_heading = "Data roles")]
    data_dir: Option<PathBuf>,
    /// Data roles: serve the kv_server line protocol on this port (0: any free port), on the
    /// node's host address.
    #[arg(long, value_name = "PORT", help_heading = "Data roles")]
    kv_port: Option<u16>,
    /// data_service: the data_contact to follow [default: the first the beacon offers].
    #[arg(long, value_name = "NODE", help_heading = "Data roles")]
    follow: Option<NodeName>,
    /// data_contact: versions of change log kept, so replicas that were down can resume
    /// without a snapshot.
    #[arg(long, value_name = "VERSIONS", default_value_t = cluster::data::DEFAULT_RETENTION,
          value_parser = clap::value_parser!(u64).range(1..), help_heading = "Data roles")]
    log_retention: u64,
    /// Data roles: the largest value accepted, in bytes of its external term format.
    #[arg(long, value_name = "BYTES", default_value_t = cluster::data::DEFAULT_MAX_VALUE as u64,
          value_parser = clap::value_parser!(u64).range(1..=1 << 31), help_heading = "Data roles")]
    max_value_size: u64,
}

fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let parse = |p: &str| {
        p.trim()
            .parse::<u16>()
            .map_err(|_| format!("{p:?} is not a port number"))
    };
    let (min, max) = match s.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let p = parse(s)?;
            (p, p)
        }
    };
    if min > max {
        return Err(format!("range {min}-{max} is empty"));
    }
    Ok((min, max))
}

/// Lets a node hold as many connections as the system allows: the soft descriptor limit is
/// raised to the hard one, as servers do.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

pub fn run(global: &GlobalOpts, args: StartArgs) -> anyhow::Result<ExitCode> {
    let settings = super::session::Settings::resolve(global).context("invalid roles file")?;
    let role = match &args.role {
        None => None,
        Some(name) => {
            let file = settings.roles();
            let Some(role) = file.role(name) else {
                return Err(anyhow::Error::new(
                    cluster::config::ConfigError::UnknownRole {
                        role: name.clone(),
                        path: file.path.clone(),
                        declared: file.role_names().join(", "),
                    },
                ));
            };
            let beacon = settings.beacon(args.beacon.clone());
            Some((role.clone(), file.cluster.mesh, beacon))
        }
    };
    let ticktime = args
        .net_ticktime
        .map_or(settings.ticktime, Duration::from_secs);
    let cookie = super::session::cookie(global)?;
    let mut cfg = NodeConfig::new(args.name.clone(), cookie);
    cfg.visible = !args.hidden;
    cfg.role = args.role.clone();
    let mut transport = TcpTransport::new(global.epmd_port);
    if !args.no_epmd_start {
        transport.epmd_starter = Some(Arc::new(start_epmd_daemon));
    }
    cfg.transport = Arc::new(transport);
    cfg.listen_addr = args.listen;
    cfg.port_range = args.dist_port.unwrap_or((0, 0));
    cfg.ticktime = ticktime;
    cfg.setup_time = Duration::from_secs(args.net_setuptime);
    cfg.max_message = args.max_message_size as usize;
    cfg.busy_limit = args.busy_limit as usize;
    cfg.hard_limit = cfg.hard_limit.max(cfg.busy_limit * 4);
    cfg.receive_budget = args.receive_budget as usize;
    cfg.auto_connect = !args.no_auto_connect;
    // A requirements-only mesh must not be meshed transitively by `global` (like erl's
    // `-connect_all false`).
    let mesh = role
        .as_ref()
        .map(|(_, m, _)| *m)
        .or(Some(settings.roles.cluster.mesh));
    cfg.global = mesh != Some(cluster::config::Mesh::Requirements);
    raise_fd_limit();
    let mut builder = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(usize::from(args.threads));
        b
    };
    cluster::net::spin::install(&mut builder, Duration::from_micros(args.spin));
    let rt = builder.enable_all().build()?;
    rt.block_on(async move {
        // Before the node says it is up: a signal sent at once then still stops it cleanly.
        let stop = super::epmd::wait_for_signal();
        let node = Node::start(cfg)
            .await
            .with_context(|| format!("cannot start node {}", args.name))?;
        println!(
            "cluster: node {} up on port {} (creation {})",
            node.name(),
            node.listen_port(),
            node.creation()
        );
        let _registry = start_registry(
            &node,
            role.as_ref().map(|(r, _, b)| (r, b.clone())),
            &settings,
        );
        let mut phase_rx = None;
        let mut leave_beacon = None;
        match role {
            Some((role, _, _)) if role.name == "beacon" => {
                if !cluster::beacon::server::start(&node) {
                    bail!("the beacon's names are already registered on this node");
                }
                let dir = args
                    .data_dir
                    .clone()
                    .unwrap_or_else(|| cluster::data::default_dir(node.name()));
                cluster::registry::config::start_holder(&node, &dir)
                    .context("cannot start the shared config")?;
                println!(
                    "cluster: {} shared config in {}",
                    node.name(),
                    dir.join("config.etf").display()
                );
                println!("cluster: {} beacon ready", node.name());
            }
            Some((role, mesh, beacon)) => {
                let (phase_tx, rx) = tokio::sync::watch::channel(roles::Phase::Connecting);
                if let Err(e) = start_data(&node, &role, &args, &settings, rx.clone()).await {
                    node.shutdown().await;
                    return Err(e);
                }
                let options = roles::RunOptions {
                    cookie_reject_limit: Duration::from_secs(args.cookie_reject_timeout),
                };
                leave_beacon = Some(beacon.clone());
                node.spawn_task(roles::run_with(
                    node.clone(),
                    role,
                    mesh,
                    beacon,
                    phase_tx,
                    options,
                ));
                tokio::spawn(show_progress(node.name().to_string(), rx.clone()));
                phase_rx = Some(rx);
            }
            None => {}
        }
        super::resident::drop_startup_code();
        let failed = tokio::select! {
            _ = stop => None,
            why = role_failed(phase_rx) => Some(why),
        };
        if let Some(why) = failed {
            node.shutdown().await;
            return Err(anyhow::anyhow!("{why}; {}", super::session::cookie_hint()));
        }
        tracing::info!("shutting down");
        if let Some(beacon) = leave_beacon {
            // Tell the beacon this is a clean stop, so its table says `stopped` rather than
            // a crash's reason; a beacon that does not answer soon is not waited for.
            let client = cluster::beacon::BeaconClient::new(node.clone(), beacon);
            let me = node.name().to_string();
            match tokio::time::timeout(LEAVE_TIMEOUT, client.leave(&me)).await {
                Ok(Ok(())) => tracing::debug!("the beacon noted our clean stop"),
                Ok(Err(e)) => tracing::debug!("the beacon did not note our clean stop: {e}"),
                Err(_) => tracing::debug!("the beacon did not answer our leave in time"),
            }
        }
        node.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Starts `cluster_server`: the node hosts its role's types (the built-in `echo` without a
/// role), and the roles file says which types fail over.
fn start_registry(
    node: &Node,
    role: Option<(&cluster::config::Role, NodeName)>,
    settings: &super::session::Settings,
) -> cluster::registry::Registry {
    let hosts = match &role {
        Some((r, _)) => r.hosts.clone(),
        None => vec![cluster::config::ECHO_TYPE.to_owned()],
    };
    // Role nodes keep a copy of the shared config held by their beacon (the beacon too).
    let config_holder = role.map(|(_, beacon)| beacon);
    let opts = cluster::registry::Options {
        hosts: hosts.iter().map(|h| h.as_str().into()).collect(),
        restart: settings
            .roles()
            .restart_elsewhere()
            .iter()
            .map(|t| t.as_str().into())
            .collect(),
        config_holder,
    };
    cluster::registry::start(node, opts)
}

/// Starts what a data role does (its store, its `data` process, replication, the line
/// protocol) before the node registers, so that whoever the beacon tells about it finds it
/// ready. Other roles have nothing to start here.
async fn start_data(
    node: &Node,
    role: &cluster::config::Role,
    args: &StartArgs,
    settings: &super::session::Settings,
    phase: tokio::sync::watch::Receiver<roles::Phase>,
) -> anyhow::Result<()> {
    let writer = role.name == "data_contact";
    if !writer && role.name != "data_service" {
        if args.kv_port.is_some() || args.follow.is_some() {
            bail!(
                "--kv-port and --follow are for the data roles (data_contact, data_service), not {}",
                role.name
            );
        }
        return Ok(());
    }
    let opts = cluster::data::DataOptions {
        dir: args
            .data_dir
            .clone()
            .unwrap_or_else(|| cluster::data::default_dir(node.name())),
        routes: settings.roles().data.routes.clone(),
        retention: args.log_retention,
        max_value: args.max_value_size as usize,
        kv_port: args.kv_port,
        follow: args.follow.clone(),
        bind: args.listen,
        beacon: Some(settings.beacon(args.beacon.clone())),
    };
    let handle = if writer {
        cluster::data::start_writer(node, opts).await
    } else {
        cluster::data::start_replica(node, opts, phase).await
    }
    .with_context(|| format!("cannot start the {} role", role.name))?;
    println!("cluster: {} store {}", node.name(), handle.store.display());
    if let Some(port) = handle.kv_port {
        println!("cluster: {} kv line protocol on port {port}", node.name());
    }
    Ok(())
}

/// Starts `cluster epmd --daemon --port P` (this same executable) and waits for it.
fn start_epmd_daemon(port: u16) -> std::io::Result<()> {
    let exe = std::env::current_exe()?;
    let status = std::process::Command::new(exe)
        .args(["epmd", "--daemon", "--port", &port.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()?;
    if status.success() {
        return Ok(());
    }
    // Two nodes starting at once both find no port mapper and both start one; the second
    // daemon cannot bind and exits. The port mapper the other one started serves us too, as
    // a second `epmd -daemon` defers to the first.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..10 {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(std::io::Error::other(format!(
        "`cluster epmd --daemon` exited with {status}"
    )))
}

#[cfg(test)]
mod tests {
    use super::parse_port_range;

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("9100"), Ok((9100, 9100)));
        assert_eq!(parse_port_range("9100-9105"), Ok((9100, 9105)));
        assert!(parse_port_range("9105-9100").is_err());
        assert!(parse_port_range("x").is_err());
        assert!(parse_port_range("1-70000").is_err());
    }
}
