//! `cluster up`: a whole local cluster from the roles file, as child processes: the beacon,
//! then one node per role (`<role>1@<host>`; `--per-role N` for `<role>1` … `<role>N`),
//! supervised.
//!
//! - **Start.** It refuses at once, before it touches anything, when a node of its plan is
//!   already registered with the port mapper (another `up`, or a node started by hand): two
//!   runs must never fight over names or logs. It starts a port mapper if none runs (which
//!   outlives `up`, as epmd outlives erl, unless `--stop-epmd`), then the nodes, with one
//!   progress line per node: spinners on a terminal, one plain line per change otherwise.
//! - **Follow.** When all are ready it prints the cluster table and tails the beacon's events.
//! - **Supervise.** A child that exits is reported with how it ended (`exited (killed by
//!   signal 9)`, `exited (exit 1: <its last log line>)`) and restarted with backoff, as the
//!   `--restart` policy says; the banner line is printed again with the live count.
//! - **Stop.** Ctrl-C or SIGTERM stops every child gracefully (each tells the beacon it is
//!   stopping, so the table says `stopped`, not a crash's reason) and exits 0. A child that
//!   fails to start stops the run: it says which and why, stops the rest, and exits 1.
//!
//! Each run logs to a directory of its own (`~/.cache/cluster/up/<epmd-port>-<time>-<pid>/`),
//! so no run ever truncates another's logs; its data nodes keep their stores in its `data/`
//! folder. Children get the cookie through the environment,
//! never on the command line (where `ps` would show it).

use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{output, GlobalOpts};
use cluster::beacon::{BeaconClient, Event, Subscription, SubscriptionEvent};
use cluster::config::{self, RolesSource};
use cluster::dist::{Cookie, NodeName};
use cluster::epmd::EpmdClient;

/// How long all nodes get to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a child gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Progress lines buffered from children.
const LINE_CAPACITY: usize = 256;
/// How often children are checked for exits.
const REAP_INTERVAL: Duration = Duration::from_millis(200);
/// The first restart pause; it doubles with each quick failure, up to [`RESTART_MAX`].
const RESTART_FIRST: Duration = Duration::from_secs(1);
/// The longest restart pause.
const RESTART_MAX: Duration = Duration::from_secs(30);
/// A child that ran this long before exiting is restarted after [`RESTART_FIRST`] again.
const RESTART_RESET: Duration = Duration::from_secs(60);
/// How often `up` tries to follow a restarted beacon again: each try may wait up to a second,
/// and the reap loop must not spend every tick on a beacon that does not answer.
const RESUBSCRIBE_EVERY: Duration = Duration::from_secs(2);
/// How long the port mapper gets to answer the pre-start check.
const PRECHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// When `up` restarts a child that exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RestartPolicy {
    /// Unless it exited with status 0.
    OnFailure,
    /// Whatever the exit status.
    Always,
    /// Never: report it and go on.
    Never,
}

/// Arguments of `cluster up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Host part of every node name.
    #[arg(long, default_value = "127.0.0.1", value_name = "HOST")]
    host: String,
    /// Start only these roles (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "ROLE,...")]
    only: Vec<String>,
    /// Nodes per role (`<role>1` … `<role>N`); the beacon is always one.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    per_role: u16,
    /// When to restart a node that exits.
    #[arg(long, value_enum, default_value_t = RestartPolicy::OnFailure, value_name = "POLICY")]
    restart: RestartPolicy,
    /// Stop the port mapper too when `up` ends (by default it outlives `up`, as epmd outlives
    /// erl; it refuses to stop while other nodes are registered).
    #[arg(long)]
    stop_epmd: bool,
}

/// Where a member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Started, not yet ready.
    Starting,
    /// Ready (requirements met).
    Up,
    /// Exited; restarting at the instant, if any.
    Down(Option<Instant>),
}

struct Member {
    role: String,
    name: NodeName,
    child: Option<Child>,
    bar: Option<ProgressBar>,
    log: PathBuf,
    state: State,
    started: Instant,
    /// Restarts so far, and quick failures in a row (for the backoff).
    restarts: u32,
    quick_failures: u32,
}

/// What every child start needs.
struct Launch {
    exe: PathBuf,
    epmd_port: u16,
    roles: PathBuf,
    beacon: NodeName,
    cookie: Cookie,
    lines: mpsc::Sender<(usize, String)>,
}

impl Launch {
    /// Starts member `idx`, appending to its log, and forwards its stdout lines.
    fn spawn(&self, idx: usize, m: &mut Member) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .with_context(|| format!("cannot open {}", m.log.display()))?;
        let mut cmd = Command::new(&self.exe);
        cmd.args(["start", "--name", m.name.as_str(), "--role", &m.role]);
        if m.role == "data_contact" || m.role == "data_service" || m.role == "beacon" {
            // The run's data nodes keep their stores (and the beacon its shared config) with
            // the run's logs; a restarted node finds its own again.
            let dir = m.log.parent().map(|p| p.join("data").join(m.name.as_str()));
            if let Some(dir) = dir {
                cmd.arg("--data-dir").arg(dir);
            }
        }
        let mut child = cmd
            .arg("--epmd-port")
            .arg(self.epmd_port.to_string())
            .arg("--roles")
            .arg(&self.roles)
            .arg("--beacon")
            .arg(self.beacon.as_str())
            .arg("--no-epmd-start")
            .env("CLUSTER_COOKIE", self.cookie.expose())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", m.name))?;
        if let Some(out) = child.stdout.take() {
            let tx = self.lines.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(out).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if tx.send((idx, line)).await.is_err() {
                        return;
                    }
                }
            });
        }
        m.child = Some(child);
        m.started = Instant::now();
        m.state = State::Starting;
        Ok(())
    }
}

/// Progress: spinners on a terminal, else one line per change.
struct Progress {
    bars: Option<MultiProgress>,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            bars: output::terminal_bars(),
        }
    }

    fn add(&self, m: &mut Member) {
        let Some(multi) = &self.bars else { return };
        let style = ProgressStyle::with_template("{spinner} {prefix:<32} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bar = multi.add(ProgressBar::new_spinner());
        bar.set_style(style);
        bar.set_prefix(m.name.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        m.bar = Some(bar);
    }

    fn say(&self, m: &Member, msg: &str) {
        match &m.bar {
            Some(bar) if m.state == State::Up => bar.finish_with_message(msg.to_owned()),
            Some(bar) => bar.set_message(msg.to_owned()),
            None => println!("{} {} {msg}", now(), m.name),
        }
    }

    fn finish(&self) {
        if let Some(multi) = &self.bars {
            multi.clear().ok();
        }
        output::end_bars();
    }
}

fn now() -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_millis(SystemTime::now())
}

pub fn run(global: &GlobalOpts, args: UpArgs) -> anyhow::Result<ExitCode> {
    let settings = super::session::Settings::resolve(global).context("invalid roles file")?;
    let file = settings.roles().clone();
    for r in &args.only {
        if file.role(r).is_none() {
            return Err(anyhow::Error::new(config::ConfigError::UnknownRole {
                role: r.clone(),
                path: file.path.clone(),
                declared: file.role_names().join(", "),
            }))
            .context("bad --only");
        }
    }
    let selected: Vec<&config::Role> = file
        .roles
        .iter()
        .filter(|r| args.only.is_empty() || args.only.contains(&r.name))
        .collect();
    let beacon = if selected.iter().any(|r| r.name == "beacon") {
        NodeName::parse(&format!("beacon1@{}", args.host))?
    } else {
        file.cluster.beacon.clone()
    };
    // The beacon first, so the others find it at once.
    let mut plan = Vec::new();
    let mut order = selected;
    order.sort_by_key(|r| r.name != "beacon");
    for role in order {
        let copies = if role.name == "beacon" {
            1
        } else {
            args.per_role
        };
        for i in 1..=copies {
            plan.push((
                role.name.clone(),
                NodeName::parse(&format!("{}{i}@{}", role.name, args.host))?,
            ));
        }
    }
    let cookie = super::session::cookie(global)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(up(global, &settings, &args, plan, beacon, cookie))
}

/// Refuses a plan whose names the port mapper already has: another run is using them.
async fn refuse_registered(epmd_port: u16, plan: &[(String, NodeName)]) -> anyhow::Result<()> {
    let client = EpmdClient::new("127.0.0.1", epmd_port).with_timeout(PRECHECK_TIMEOUT);
    let names = match client.names().await {
        Ok(n) => n,
        // No port mapper: nothing is registered; we start one.
        Err(cluster::epmd::ClientError::Connect { .. }) => return Ok(()),
        Err(e) => return Err(e).context("cannot check which nodes are already running"),
    };
    let taken: Vec<String> = plan
        .iter()
        .filter_map(|(_, n)| {
            let line = names.names.iter().find(|l| l.name == n.alive())?;
            Some(format!("{} (port {})", n, line.port))
        })
        .collect();
    if !taken.is_empty() {
        bail!(
            "already running on the port mapper at 127.0.0.1:{epmd_port}: {}; stop that \
             cluster first (Ctrl-C in its `cluster up`), or run this one on another port \
             mapper (--epmd-port)",
            taken.join(", ")
        );
    }
    Ok(())
}

/// A fresh log directory for this run: never shared with another run, so nothing ever
/// truncates a live node's log.
fn run_dir(epmd_port: u16) -> anyhow::Result<PathBuf> {
    let base = directories::ProjectDirs::from("", "", "cluster")
        .map(|d| d.cache_dir().join("up"))
        .unwrap_or_else(|| std::env::temp_dir().join("cluster-up"));
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace(':', "");
    let dir = base.join(format!("{epmd_port}-{stamp}-{}", std::process::id()));
    std::fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
    std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

async fn up(
    global: &GlobalOpts,
    settings: &super::session::Settings,
    args: &UpArgs,
    plan: Vec<(String, NodeName)>,
    beacon: NodeName,
    cookie: Cookie,
) -> anyhow::Result<ExitCode> {
    let mut signal = std::pin::pin!(super::epmd::wait_for_signal());
    refuse_registered(global.epmd_port, &plan).await?;
    let exe = std::env::current_exe().context("cannot find the cluster executable")?;
    let logs = run_dir(global.epmd_port)?;
    let roles = match settings.roles_source {
        RolesSource::File => settings.roles.path.clone(),
        RolesSource::Builtin => {
            // The children read the same roles: the built-in ones, written where they can
            // be read (and kept with the run's logs).
            let path = logs.join("roles.toml");
            std::fs::write(&path, config::BUILTIN_ROLES)
                .with_context(|| format!("cannot write {}", path.display()))?;
            path
        }
    };
    // One port mapper for everyone, started before the nodes race to start it.
    let status = Command::new(&exe)
        .args(["epmd", "--daemon", "--port", &global.epmd_port.to_string()])
        .stdout(Stdio::null())
        .status()
        .await?;
    if !status.success() {
        bail!("cannot start the port mapper on port {}", global.epmd_port);
    }

    let (line_tx, mut lines) = mpsc::channel::<(usize, String)>(LINE_CAPACITY);
    let launch = Launch {
        exe,
        epmd_port: global.epmd_port,
        roles,
        beacon: beacon.clone(),
        cookie: cookie.clone(),
        lines: line_tx,
    };
    let progress = Progress::new();
    let mut members: Vec<Member> = Vec::new();
    for (role, name) in plan {
        let log = logs.join(format!("{name}.log"));
        let mut m = Member {
            role,
            name,
            child: None,
            bar: None,
            log,
            state: State::Starting,
            started: Instant::now(),
            restarts: 0,
            quick_failures: 0,
        };
        progress.add(&mut m);
        let idx = members.len();
        if let Err(e) = launch.spawn(idx, &mut m) {
            progress.finish();
            stop_all(&mut members).await;
            return Err(e);
        }
        progress.say(&m, "starting");
        members.push(m);
    }

    // Wait for everyone to be ready, a child to die, a signal, or the deadline.
    let deadline = Instant::now() + START_TIMEOUT;
    while !members.iter().all(|m| m.state == State::Up) {
        tokio::select! {
            line = lines.recv() => {
                let Some((idx, line)) = line else { break };
                on_line(&progress, &mut members[idx], &line);
            }
            _ = tokio::time::sleep(REAP_INTERVAL) => {
                let dead = members.iter_mut().find_map(|m| {
                    let status = m.child.as_mut()?.try_wait().ok()??;
                    Some((m.name.clone(), m.role.clone(), status, m.log.clone()))
                });
                if let Some((name, role, status, log)) = dead {
                    progress.finish();
                    stop_all(&mut members).await;
                    eprintln!(
                        "cluster: {name} (role {role}) failed to start: {}",
                        describe_exit(status, &log)
                    );
                    return Ok(ExitCode::FAILURE);
                }
                if Instant::now() > deadline {
                    progress.finish();
                    let late: Vec<String> = members
                        .iter()
                        .filter(|m| m.state != State::Up)
                        .map(|m| m.name.to_string())
                        .collect();
                    stop_all(&mut members).await;
                    eprintln!("cluster: not ready within {START_TIMEOUT:?}: {}", late.join(", "));
                    return Ok(ExitCode::FAILURE);
                }
            }
            _ = &mut signal => {
                progress.finish();
                stop_all(&mut members).await;
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    progress.finish();

    // The table, then the beacon's events and the children until a signal.
    let node = super::session::hidden_node(settings, cookie, &beacon).await?;
    let client = BeaconClient::new(node.clone(), beacon.clone());
    let mut pushes = client.subscribe().await.ok();
    if let Ok(nodes) = client.nodes().await {
        let mut table = output::table(&["NODE", "ROLE", "STATUS", "REQUIREMENTS"]);
        for n in &nodes {
            table.add_row(vec![
                n.node.clone(),
                n.resource.clone(),
                n.status.clone(),
                if n.requirements.is_empty() {
                    "-".into()
                } else {
                    n.requirements.join(", ")
                },
            ]);
        }
        output::print_table(&table)?;
    }
    let total = members.len();
    println!(
        "cluster: {} up (logs in {}); Ctrl-C stops them",
        output::plural(total, "node", "nodes"),
        logs.display()
    );
    let mut reap = tokio::time::interval(REAP_INTERVAL);
    let mut next_resubscribe = Instant::now();
    loop {
        let next = async {
            match pushes.as_mut() {
                Some(sub) => sub.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut signal => break,
            ev = next => match ev {
                Some(ev) => {
                    if let Some(line) = describe_event(&ev) {
                        println!("{} {line}", now());
                    }
                    if matches!(ev, SubscriptionEvent::BeaconDown { .. }) {
                        pushes = None;
                    }
                }
                None => pushes = None,
            },
            line = lines.recv() => {
                if let Some((idx, line)) = line {
                    let m = &mut members[idx];
                    let was = m.state;
                    on_line(&progress, m, &line);
                    if was != State::Up && m.state == State::Up {
                        println!("{} {} is back (restart {})", now(), m.name, m.restarts);
                        banner(&members);
                    }
                }
            }
            _ = reap.tick() => {
                if supervise(&launch, &progress, &mut members, args.restart) {
                    banner(&members);
                }
                // The beacon was restarted: follow it again.
                if pushes.is_none()
                    && Instant::now() >= next_resubscribe
                    && members.iter().any(|m| m.name == beacon && m.state == State::Up)
                {
                    next_resubscribe = Instant::now() + RESUBSCRIBE_EVERY;
                    pushes = resubscribe(&client).await;
                }
            }
        }
    }
    node.shutdown().await;
    stop_all(&mut members).await;
    if args.stop_epmd {
        stop_epmd(global.epmd_port).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Subscribes to the beacon again, briefly: the reap tick must not wait on it.
async fn resubscribe(client: &BeaconClient) -> Option<Subscription> {
    tokio::time::timeout(Duration::from_secs(1), client.subscribe())
        .await
        .ok()?
        .ok()
}

/// Applies a child's stdout line to its member.
fn on_line(progress: &Progress, m: &mut Member, line: &str) {
    let Some(msg) = describe_line(&m.name, line) else {
        return;
    };
    if msg.starts_with("requirements met") || msg == "beacon ready" {
        m.state = State::Up;
    }
    progress.say(m, &msg);
}

/// Reaps exited children and restarts the due ones; true when the live count changed.
fn supervise(
    launch: &Launch,
    progress: &Progress,
    members: &mut [Member],
    policy: RestartPolicy,
) -> bool {
    let mut changed = false;
    for (idx, m) in members.iter_mut().enumerate() {
        let exited = m.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
        if let Some(status) = exited {
            m.child = None;
            changed = true;
            let ran = m.started.elapsed();
            m.quick_failures = if ran >= RESTART_RESET {
                0
            } else {
                m.quick_failures + 1
            };
            let restart = match policy {
                RestartPolicy::Always => true,
                RestartPolicy::OnFailure => !status.success(),
                RestartPolicy::Never => false,
            };
            let how = describe_exit(status, &m.log);
            if restart {
                let pause = backoff(m.quick_failures);
                m.state = State::Down(Some(Instant::now() + pause));
                println!(
                    "{} {} exited ({how}); restarting in {}",
                    now(),
                    m.name,
                    humantime::format_duration(pause)
                );
            } else {
                m.state = State::Down(None);
                println!("{} {} exited ({how}); not restarting", now(), m.name);
            }
        }
        if let State::Down(Some(at)) = m.state {
            if Instant::now() >= at {
                m.restarts += 1;
                match launch.spawn(idx, m) {
                    Ok(()) => {
                        append_marker(&m.log, m.restarts);
                        progress.say(m, "restarted");
                    }
                    Err(e) => {
                        m.state = State::Down(Some(Instant::now() + backoff(m.quick_failures)));
                        eprintln!("cluster: cannot restart {}: {e:#}", m.name);
                    }
                }
            }
        }
    }
    changed
}

/// The pause before restart number `n` of a child that keeps failing quickly.
fn backoff(quick_failures: u32) -> Duration {
    let doublings = quick_failures.saturating_sub(1).min(16);
    (RESTART_FIRST * 2u32.pow(doublings)).min(RESTART_MAX)
}

/// Marks a restart in the child's log, so the log reads as one history.
fn append_marker(log: &Path, restarts: u32) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(log) {
        let _ = writeln!(f, "--- cluster up: restart {restarts} at {} ---", now());
    }
}

/// The banner with the live count.
fn banner(members: &[Member]) {
    let total = members.len();
    let up = members.iter().filter(|m| m.state == State::Up).count();
    let down: Vec<String> = members
        .iter()
        .filter(|m| m.state != State::Up)
        .map(|m| m.name.to_string())
        .collect();
    if up == total {
        println!("cluster: {} up", output::plural(total, "node", "nodes"));
    } else {
        println!(
            "cluster: {up} of {} up (not up: {})",
            output::plural(total, "node", "nodes"),
            down.join(", ")
        );
    }
}

/// How a child ended: `killed by signal 9`, or `exit 1: <last log line>`.
fn describe_exit(status: ExitStatus, log: &Path) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = status.signal() {
        return format!("killed by signal {sig}");
    }
    let code = status.code().unwrap_or(-1);
    match last_line(log) {
        Some(line) => format!("exit {code}: {line}"),
        None => format!("exit {code}; see {}", log.display()),
    }
}

/// Turns a child's stdout line into a progress message.
fn describe_line(name: &NodeName, line: &str) -> Option<String> {
    let rest = line.strip_prefix("cluster: ")?;
    if rest.starts_with("node ") {
        return Some("started".into());
    }
    let rest = rest.strip_prefix(name.as_str())?.trim();
    Some(match rest.split_once(' ') {
        Some(("waiting", what)) => format!("registered, waiting for {what}"),
        Some(("ready", providers)) => format!("requirements met ({providers})"),
        Some(("failed", why)) => format!("failed: {why}"),
        _ if rest == "ready" => "requirements met".into(),
        _ if rest == "cookie_rejected" => "the beacon rejects our cookie".into(),
        _ => rest.to_owned(),
    })
}

fn describe_event(ev: &SubscriptionEvent) -> Option<String> {
    Some(match ev {
        SubscriptionEvent::Beacon(Event::Registered(info)) => {
            format!("registered {} role={}", info.node, info.resource)
        }
        SubscriptionEvent::Beacon(Event::Offline { node, reason }) => {
            format!("offline    {node} reason={reason}")
        }
        SubscriptionEvent::BeaconDown { reason } => format!("beacon down reason={reason}"),
        _ => return None,
    })
}

/// The last meaningful line of a child's log (an error line if there is one), without our
/// own `cluster: ` prefix, for exit messages.
fn last_line(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("--- cluster up:"))
        .collect();
    let pick = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("cluster:") || l.contains("ERROR"))
        .or_else(|| lines.last())?;
    Some(pick.strip_prefix("cluster: ").unwrap_or(pick).to_owned())
}

/// Stops every child gracefully: the role nodes first, then the beacon, so each role node
/// can tell the beacon it is stopping (its entry then says `stopped`, not a crash's reason).
async fn stop_all(members: &mut [Member]) {
    let (beacons, others): (Vec<&mut Member>, Vec<&mut Member>) =
        members.iter_mut().partition(|m| m.role == "beacon");
    stop_group(others).await;
    stop_group(beacons).await;
}

/// SIGTERM to each child (by pid), then wait; kill whatever outlives the grace period.
async fn stop_group(mut members: Vec<&mut Member>) {
    for m in members.iter() {
        if let Some(pid) = m.child.as_ref().and_then(Child::id) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    for m in members.iter_mut() {
        if let Some(child) = m.child.as_mut() {
            if tokio::time::timeout(STOP_GRACE, child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        if let Some(bar) = &m.bar {
            bar.finish_and_clear();
        }
    }
}

/// `--stop-epmd`: asks the port mapper to stop (it refuses while nodes are registered).
async fn stop_epmd(port: u16) {
    let client = EpmdClient::new("127.0.0.1", port);
    match client.kill().await {
        Ok(cluster::epmd::proto::ControlReply::Ok) => {
            println!("cluster: port mapper on port {port} stopped")
        }
        Ok(_) => eprintln!(
            "cluster: the port mapper on port {port} still has nodes registered; left running"
        ),
        Err(e) => eprintln!("cluster: cannot stop the port mapper on port {port}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), RESTART_FIRST);
        assert_eq!(backoff(1), RESTART_FIRST);
        assert_eq!(backoff(2), RESTART_FIRST * 2);
        assert_eq!(backoff(3), RESTART_FIRST * 4);
        assert_eq!(backoff(40), RESTART_MAX);
    }

    #[test]
    fn child_lines_become_progress_messages() {
        let n = NodeName::parse("gate1@127.0.0.1").unwrap();
        let d = |l: &str| describe_line(&n, l);
        assert_eq!(
            d("cluster: node gate1@127.0.0.1 up on port 1").as_deref(),
            Some("started")
        );
        assert_eq!(
            d("cluster: gate1@127.0.0.1 waiting gate_manager").as_deref(),
            Some("registered, waiting for gate_manager")
        );
        assert_eq!(
            d("cluster: gate1@127.0.0.1 cookie_rejected").as_deref(),
            Some("the beacon rejects our cookie")
        );
        assert_eq!(d("something else"), None);
    }

    #[test]
    fn exit_descriptions_name_the_signal_or_the_last_error() {
        use std::os::unix::process::ExitStatusExt;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("n.log");
        std::fs::write(
            &log,
            "INFO fine\ncluster: cannot start node x: boom\nlater\n",
        )
        .unwrap();
        assert_eq!(
            describe_exit(ExitStatus::from_raw(9), &log),
            "killed by signal 9"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(1 << 8), &log),
            "exit 1: cannot start node x: boom"
        );
    }
}
