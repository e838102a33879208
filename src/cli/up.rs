//! `cluster up`: a whole local cluster from the roles file, as child processes: the beacon,
//! then one node per role (`<role>1@<host>`). One progress line per node (started, registered,
//! requirements met); when all are ready it prints the cluster table and tails the beacon's
//! events. Ctrl-C or SIGTERM stops every child gracefully and exits 0; if a child fails to
//! start, it says which and why, stops the rest, and exits 1.
//!
//! Children get the cookie through the environment, never on the command line (where `ps`
//! would show it), and write their logs to the cache directory.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::{output, GlobalOpts};
use cluster::beacon::{BeaconClient, Event, SubscriptionEvent};
use cluster::config;
use cluster::dist::NodeName;

/// How long all nodes get to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a child gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Progress lines buffered from children.
const LINE_CAPACITY: usize = 256;

/// Arguments of `cluster up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Host part of every node name.
    #[arg(long, default_value = "127.0.0.1", value_name = "HOST")]
    host: String,
    /// Start only these roles (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "ROLE,...")]
    only: Vec<String>,
}

struct Member {
    role: String,
    name: NodeName,
    child: Child,
    bar: ProgressBar,
    log: PathBuf,
    ready: bool,
}

pub fn run(global: &GlobalOpts, args: UpArgs) -> anyhow::Result<ExitCode> {
    let settings = super::session::Settings::resolve(global).context("invalid roles file")?;
    let file = settings
        .require_roles(global)
        .context("invalid roles file")?
        .clone();
    let roles_path = file.path.clone();
    for r in &args.only {
        if file.role(r).is_none() {
            bail!(
                "unknown role {r:?} in --only; {} declares: {}",
                file.path.display(),
                file.role_names().join(", ")
            );
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
    let cookie = super::session::cookie(global)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(up(
        global,
        &settings,
        &args,
        &roles_path,
        selected,
        beacon,
        cookie,
    ))
}

async fn up(
    global: &GlobalOpts,
    settings: &super::session::Settings,
    args: &UpArgs,
    roles_path: &Path,
    selected: Vec<&config::Role>,
    beacon: NodeName,
    cookie: cluster::dist::Cookie,
) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the cluster executable")?;
    let logs = log_dir()?;
    // One port mapper for everyone, started before the nodes race to start it.
    let status = Command::new(&exe)
        .args(["epmd", "--daemon", "--port", &global.epmd_port.to_string()])
        .stdout(Stdio::null())
        .status()
        .await?;
    if !status.success() {
        bail!("cannot start the port mapper on port {}", global.epmd_port);
    }

    let multi = MultiProgress::new();
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template("{spinner} {prefix:<32} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let (line_tx, mut lines) = mpsc::channel::<(usize, String)>(LINE_CAPACITY);
    let mut members: Vec<Member> = Vec::new();
    // The beacon first, so the others find it at once.
    let mut order = selected;
    order.sort_by_key(|r| r.name != "beacon");
    for role in order {
        let name = NodeName::parse(&format!("{}1@{}", role.name, args.host))?;
        let log = logs.join(format!("{name}.log"));
        let mut child = Command::new(&exe)
            .args(["start", "--name", name.as_str(), "--role", &role.name])
            .arg("--epmd-port")
            .arg(global.epmd_port.to_string())
            .arg("--roles")
            .arg(roles_path)
            .arg("--beacon")
            .arg(beacon.as_str())
            .arg("--no-epmd-start")
            .env("CLUSTER_COOKIE", cookie.expose())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(
                std::fs::File::create(&log)
                    .with_context(|| format!("cannot create {}", log.display()))?,
            )
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let idx = members.len();
        if let Some(out) = child.stdout.take() {
            let tx = line_tx.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(out).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if tx.send((idx, line)).await.is_err() {
                        return;
                    }
                }
            });
        }
        let bar = multi.add(ProgressBar::new_spinner());
        bar.set_style(style.clone());
        bar.set_prefix(name.to_string());
        bar.set_message("starting");
        bar.enable_steady_tick(Duration::from_millis(120));
        members.push(Member {
            role: role.name.clone(),
            name,
            child,
            bar,
            log,
            ready: false,
        });
    }
    drop(line_tx);

    // Wait for everyone to be ready, a child to die, a signal, or the deadline.
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    let mut signal = std::pin::pin!(super::epmd::wait_for_signal());
    while !members.iter().all(|m| m.ready) {
        tokio::select! {
            line = lines.recv() => {
                let Some((idx, line)) = line else { break };
                let m = &mut members[idx];
                if let Some(msg) = progress(&m.name, &line) {
                    m.ready |= msg.starts_with("requirements met") || msg == "beacon ready";
                    m.bar.set_message(msg);
                    if m.ready {
                        m.bar.finish();
                    }
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                let dead = members.iter_mut().position(|m| matches!(m.child.try_wait(), Ok(Some(_))));
                if let Some(m) = dead.map(|i| &members[i]) {
                    let why = last_error(&m.log);
                    let name = m.name.clone();
                    let role = m.role.clone();
                    stop_all(&mut members).await;
                    eprintln!("cluster: {name} (role {role}) failed to start: {why}");
                    return Ok(ExitCode::FAILURE);
                }
                if tokio::time::Instant::now() > deadline {
                    let late: Vec<String> = members.iter().filter(|m| !m.ready).map(|m| m.name.to_string()).collect();
                    stop_all(&mut members).await;
                    eprintln!("cluster: not ready within {START_TIMEOUT:?}: {}", late.join(", "));
                    return Ok(ExitCode::FAILURE);
                }
            }
            _ = &mut signal => {
                stop_all(&mut members).await;
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    multi.clear().ok();

    // The table, then the beacon's events until a signal.
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
    println!(
        "cluster: {} nodes up (logs in {}); Ctrl-C stops them",
        members.len(),
        logs.display()
    );
    loop {
        let next = async {
            match pushes.as_mut() {
                Some(sub) => sub.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut signal => break,
            ev = next => {
                let Some(ev) = ev else { break };
                if let Some(line) = describe_event(&ev) {
                    let now = humantime::format_rfc3339_millis(SystemTime::now());
                    println!("{now} {line}");
                }
            }
        }
    }
    node.shutdown().await;
    stop_all(&mut members).await;
    Ok(ExitCode::SUCCESS)
}

/// Turns a child's stdout line into a progress message.
fn progress(name: &NodeName, line: &str) -> Option<String> {
    let rest = line.strip_prefix("cluster: ")?;
    if rest.starts_with("node ") {
        return Some("started".into());
    }
    let rest = rest.strip_prefix(name.as_str())?.trim();
    Some(match rest.split_once(' ') {
        Some(("waiting", what)) => format!("registered, waiting for {what}"),
        Some(("ready", providers)) => format!("requirements met ({providers})"),
        _ if rest == "ready" => "requirements met".into(),
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

/// The last error line of a child's log, for "failed to start" messages.
fn last_error(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .rev()
        .find(|l| l.starts_with("cluster:") || l.contains("ERROR") || l.contains("WARN"))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("exited; see {}", log.display()))
}

/// SIGTERM to every child (by pid), then wait; kill whatever outlives the grace period.
async fn stop_all(members: &mut [Member]) {
    for m in members.iter() {
        if let Some(pid) = m.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    for m in members.iter_mut() {
        if tokio::time::timeout(STOP_GRACE, m.child.wait())
            .await
            .is_err()
        {
            let _ = m.child.kill().await;
        }
        m.bar.finish_and_clear();
    }
}

fn log_dir() -> anyhow::Result<PathBuf> {
    let dir = directories::ProjectDirs::from("", "", "cluster")
        .map(|d| d.cache_dir().join("up"))
        .unwrap_or_else(|| std::env::temp_dir().join("cluster-up"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
