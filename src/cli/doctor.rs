//! `cluster doctor [NODE]`: checks what usually goes wrong when a node will not join, each
//! with a verdict line and, when it fails, what to do. It never stops at the first problem
//! (a broken roles file does not hide a stopped port mapper), every network step is bounded,
//! and it exits 1 when any check failed.
//!
//! The checks, in the order a connection needs them: the roles file; the cookie's source; the
//! local port mapper; the target's host name; long/short name consistency; the target's port
//! mapper and distribution port; whether the target accepts our cookie; `net_ticktime`
//! agreement (through `net_kernel:get_net_ticktime()`, which erl and our nodes both answer);
//! and the beacon.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::GlobalOpts;
use cluster::beacon::BeaconClient;
use cluster::dist::builtin::net_kernel;
use cluster::dist::{ConnectError, NodeName};
use cluster::epmd::EpmdClient;

/// The bound on each network step.
const STEP_TIMEOUT: Duration = Duration::from_secs(3);

/// Arguments of `cluster doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The node to check [default: the beacon].
    #[arg(value_name = "NODE")]
    node: Option<NodeName>,
    /// The beacon [default: env CLUSTER_BEACON, then the roles file's beacon].
    #[arg(long, env = "CLUSTER_BEACON", value_name = "NODE")]
    beacon: Option<NodeName>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Warn,
    Fail,
}

struct Report {
    failed: bool,
}

impl Report {
    fn line(&mut self, verdict: Verdict, check: &str, text: &str, fix: Option<&str>) {
        let word = match verdict {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
        };
        self.failed |= verdict == Verdict::Fail;
        println!("{word:<5} {check:<15} {text}");
        if let Some(fix) = fix.filter(|_| verdict != Verdict::Ok) {
            println!("{:<21} fix: {fix}", "");
        }
    }
}

pub fn run(global: &GlobalOpts, args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let mut report = Report { failed: false };

    // The roles file: a broken one is reported, and the checks go on with the defaults.
    let settings = match super::session::Settings::resolve(global) {
        Ok(s) => {
            let what = match s.roles_source {
                cluster::config::RolesSource::File => format!(
                    "{} is valid ({})",
                    s.roles.path.display(),
                    super::output::plural(s.roles.roles.len(), "role", "roles")
                ),
                cluster::config::RolesSource::Builtin => {
                    "none found; the built-in roles apply".to_owned()
                }
            };
            report.line(Verdict::Ok, "roles file", &what, None);
            Some(s)
        }
        Err(e) => {
            report.line(
                Verdict::Fail,
                "roles file",
                &e.to_string(),
                Some("correct the file at the place named (`cluster roles` checks it), or point --roles at another"),
            );
            None
        }
    };
    // With a broken roles file the checks go on with the built-in roles' defaults.
    let settings = match settings {
        Some(s) => s,
        None => super::session::Settings {
            roles: cluster::config::builtin_roles()?,
            roles_source: cluster::config::RolesSource::Builtin,
            epmd_port: global.epmd_port,
            ticktime: Duration::from_secs(cluster::config::roles::DEFAULT_NET_TICKTIME),
        },
    };
    let roles = &settings.roles;
    let beacon = args
        .beacon
        .clone()
        .unwrap_or_else(|| roles.cluster.beacon.clone());
    let target = args.node.clone().unwrap_or_else(|| beacon.clone());

    // The cookie.
    let cookie = match super::session::cookie_with_source(global) {
        Ok((cookie, source)) => {
            report.line(Verdict::Ok, "cookie", &format!("from {source}"), None);
            Some(cookie)
        }
        Err(e) => {
            report.line(
                Verdict::Fail,
                "cookie",
                &e.to_string(),
                Some("pass --cookie, set CLUSTER_COOKIE, or fix ~/.erlang.cookie (chmod 400)"),
            );
            None
        }
    };

    let ok = super::runtime()?
        .block_on(async { network_checks(&settings, &mut report, &target, &beacon, cookie).await });
    if let Err(e) = ok {
        report.line(Verdict::Fail, "doctor", &format!("{e:#}"), None);
    }
    Ok(if report.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn network_checks(
    settings: &super::session::Settings,
    report: &mut Report,
    target: &NodeName,
    beacon: &NodeName,
    cookie: Option<cluster::dist::Cookie>,
) -> anyhow::Result<()> {
    let port = settings.epmd_port;
    let ticktime = settings.ticktime.as_secs();
    // The local port mapper.
    let local = EpmdClient::new("127.0.0.1", port).with_timeout(STEP_TIMEOUT);
    match local.names().await {
        Ok(names) => report.line(
            Verdict::Ok,
            "port mapper",
            &format!(
                "127.0.0.1:{port} answers ({} registered)",
                super::output::plural(names.names.len(), "node", "nodes")
            ),
            None,
        ),
        Err(e) => report.line(
            Verdict::Fail,
            "port mapper",
            &e.to_string(),
            Some(&format!(
                "start one: `cluster epmd --daemon --port {port}` (a node started with \
                 `cluster start` starts one itself), or use the port it runs on (--epmd-port)"
            )),
        ),
    }

    // The target's host name.
    let host = target.host().to_owned();
    let resolved =
        tokio::time::timeout(STEP_TIMEOUT, tokio::net::lookup_host((host.as_str(), port))).await;
    let resolves = match resolved {
        Ok(Ok(mut addrs)) => {
            let first = addrs.next().map(|a| a.ip().to_string()).unwrap_or_default();
            report.line(
                Verdict::Ok,
                "host name",
                &format!("{host} resolves ({first})"),
                None,
            );
            true
        }
        Ok(Err(e)) => {
            report.line(
                Verdict::Fail,
                "host name",
                &format!("{host} does not resolve: {e}"),
                Some("check the host part of the node name, or /etc/hosts and DNS"),
            );
            false
        }
        Err(_) => {
            report.line(
                Verdict::Fail,
                "host name",
                &format!("resolving {host} took over {}s", STEP_TIMEOUT.as_secs()),
                Some("check DNS"),
            );
            false
        }
    };

    // Long and short names.
    if target.kind() == beacon.kind() {
        report.line(
            Verdict::Ok,
            "name kinds",
            &format!("{} names throughout", target.kind()),
            None,
        );
    } else {
        report.line(
            Verdict::Fail,
            "name kinds",
            &format!(
                "{target} is a {}-name node but the beacon {beacon} is a {}-name node; they \
                 can never connect",
                target.kind(),
                beacon.kind()
            ),
            Some("name every node the same way: all name@host.domain or IP (long), or all name@host (short)"),
        );
    }
    if !resolves {
        return Ok(());
    }

    // The target's port mapper and its distribution port.
    let remote = EpmdClient::new(host.clone(), port).with_timeout(STEP_TIMEOUT);
    let dist_port = match remote.port_please(target.alive()).await {
        Ok(Some(entry)) => {
            report.line(
                Verdict::Ok,
                "registration",
                &format!(
                    "{} is registered on {host} (port {})",
                    target.alive(),
                    entry.port
                ),
                None,
            );
            Some(entry.port)
        }
        Ok(None) => {
            let names = remote.names().await.map(|n| n.names).unwrap_or_default();
            let listed: Vec<String> = names.iter().take(10).map(|l| l.name.clone()).collect();
            report.line(
                Verdict::Fail,
                "registration",
                &format!(
                    "{} is not registered on {host}{}",
                    target.alive(),
                    if listed.is_empty() {
                        String::new()
                    } else {
                        format!(" (registered: {})", listed.join(", "))
                    }
                ),
                Some("start the node, or check its name"),
            );
            None
        }
        Err(e) => {
            report.line(
                Verdict::Fail,
                "registration",
                &e.to_string(),
                Some(&format!(
                    "a port mapper must run on {host} on port {port} (`cluster epmd --daemon`)"
                )),
            );
            None
        }
    };
    if let Some(p) = dist_port {
        match tokio::time::timeout(
            STEP_TIMEOUT,
            tokio::net::TcpStream::connect((host.as_str(), p)),
        )
        .await
        {
            Ok(Ok(_)) => report.line(
                Verdict::Ok,
                "dist port",
                &format!("{host}:{p} accepts connections"),
                None,
            ),
            Ok(Err(e)) => report.line(
                Verdict::Fail,
                "dist port",
                &format!("{host}:{p}: {e}"),
                Some("a firewall, or the node listens on another address (--listen)"),
            ),
            Err(_) => report.line(
                Verdict::Fail,
                "dist port",
                &format!(
                    "{host}:{p} did not answer within {}s",
                    STEP_TIMEOUT.as_secs()
                ),
                Some("a firewall drops the connection, or the node is stopped (SIGSTOP?)"),
            ),
        }
    }

    // The cookie and the tick time, from a hidden node of the target's name kind.
    let Some(cookie) = cookie else {
        return Ok(());
    };
    let node = super::session::hidden_node(settings, cookie, target).await?;
    let mut reached = Vec::new();
    for (what, who) in [("cookie", target), ("beacon", beacon)] {
        if what == "beacon" && who == target {
            continue;
        }
        match net_kernel::ping(&node, who, STEP_TIMEOUT).await {
            Ok(()) => {
                reached.push(who.clone());
                if what == "cookie" {
                    report.line(
                        Verdict::Ok,
                        "cookie",
                        &format!("{who} accepts our cookie"),
                        None,
                    );
                }
            }
            Err(e) if matches!(e.connect_error(), Some(ConnectError::BadCookie)) => report.line(
                Verdict::Fail,
                what,
                &format!("{who} rejects our cookie"),
                Some(&super::session::cookie_hint()),
            ),
            Err(e) => report.line(
                Verdict::Fail,
                what,
                &format!("cannot reach {who}: {e}"),
                None,
            ),
        }
    }
    if reached.contains(target) {
        match net_kernel::ticktime(&node, target, STEP_TIMEOUT).await {
            Ok(t) if t == ticktime => report.line(
                Verdict::Ok,
                "net_ticktime",
                &format!("{t}s here and on {target}"),
                None,
            ),
            Ok(t) => report.line(
                Verdict::Fail,
                "net_ticktime",
                &format!("{target} uses {t}s, the roles file says {ticktime}s"),
                Some("use one net_ticktime everywhere (roles file [cluster] net_ticktime, erl -kernel net_ticktime)"),
            ),
            Err(e) => report.line(
                Verdict::Warn,
                "net_ticktime",
                &format!("{target} did not say: {e}"),
                None,
            ),
        }
    }
    // The beacon's table.
    if reached.contains(beacon) {
        match BeaconClient::new(node.clone(), beacon.clone()).nodes().await {
            Ok(nodes) => {
                let online = nodes.iter().filter(|n| n.is_online()).count();
                report.line(
                    Verdict::Ok,
                    "beacon",
                    &format!("{beacon} answers: {online} of {} online", nodes.len()),
                    None,
                );
            }
            Err(e) => report.line(
                Verdict::Fail,
                "beacon",
                &format!("{beacon} is up but does not answer as a beacon: {e}"),
                Some("start it with `cluster start --role beacon`, or point --beacon at the right node"),
            ),
        }
    }
    node.shutdown().await;
    Ok(())
}
