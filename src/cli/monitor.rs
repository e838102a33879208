//! `cluster monitor`: follows a node's view of the cluster. It subscribes to the node's
//! `cluster_events` process and prints the current members, then one line per nodeup or
//! nodedown with an RFC 3339 timestamp and the reason. Against a plain Erlang node, which has
//! no `cluster_events` (the monitor reports `noproc`), it asks `rex` for `erlang:nodes()` every
//! second and prints the differences.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;

use super::GlobalOpts;
use cluster::beacon::{BeaconClient, Event, SubscriptionEvent};
use cluster::dist::builtin::cluster_events::{ClusterEvent, SubscribeError, Subscription};
use cluster::dist::builtin::rex;
use cluster::dist::{CallError, Node, NodeName};

/// How often the `rex` fallback polls.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long to wait for the subscription's first answer.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `cluster monitor`.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// The node to follow [default: the beacon in the roles file].
    #[arg(value_name = "NODE")]
    node: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Exit 0 after this many events (members listed at the start do not count).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Show hidden nodes too (tools like this one connect as hidden nodes; by default their
    /// comings and goings are not shown).
    #[arg(long)]
    all: bool,
    /// Exit 0 after this many seconds.
    #[arg(long, value_name = "SECS", value_parser = super::parse_secs, allow_negative_numbers = true)]
    duration: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Line {
    time: String,
    event: &'static str,
    node: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    r#type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<String>,
}

struct Printer {
    json: bool,
    me: String,
    all: bool,
}

impl Printer {
    fn print(
        &self,
        event: &'static str,
        node: &str,
        kind: Option<String>,
        reason: Option<String>,
    ) -> std::io::Result<bool> {
        self.print_full(event, node, kind, reason, None)
    }

    /// Prints one line (or JSON object); returns false for lines about ourselves.
    fn print_full(
        &self,
        event: &'static str,
        node: &str,
        kind: Option<String>,
        reason: Option<String>,
        role: Option<String>,
    ) -> std::io::Result<bool> {
        if node == self.me || (!self.all && kind.as_deref() == Some("hidden")) {
            return Ok(false);
        }
        let line = Line {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            event,
            node: node.to_owned(),
            r#type: kind,
            reason,
            role,
        };
        let mut out = std::io::stdout().lock();
        if self.json {
            serde_json::to_writer(&mut out, &line)?;
            writeln!(out)?;
        } else {
            let mut text = format!("{} {:<8} {}", line.time, line.event, line.node);
            if let Some(t) = &line.r#type {
                text.push_str(&format!(" type={t}"));
            }
            if let Some(r) = &line.role {
                text.push_str(&format!(" role={r}"));
            }
            if let Some(r) = &line.reason {
                text.push_str(&format!(" reason={r}"));
            }
            writeln!(out, "{text}")?;
        }
        out.flush()?;
        Ok(true)
    }
}

pub fn run(global: &GlobalOpts, args: MonitorArgs) -> anyhow::Result<ExitCode> {
    let settings = super::session::Settings::resolve(global).context("invalid roles file")?;
    // With no NODE we follow the beacon, and show its registrations as well.
    let follow_beacon = args.node.is_none();
    let target = match &args.node {
        Some(n) => NodeName::parse(n)?,
        None => settings.beacon(None),
    };
    let cookie = super::session::cookie(global)?;
    super::runtime()?.block_on(async {
        let node = super::session::hidden_node(&settings, cookie, &target).await?;
        let printer = Printer {
            json: args.json,
            me: node.name().to_string(),
            all: args.all,
        };
        // Reaching the node is not part of the watch: an unreachable node is an error however
        // short --duration is.
        let connected = node
            .connect(&target)
            .await
            .with_context(|| format!("cannot reach {target}"));
        if let Err(e) = connected {
            node.shutdown().await;
            return Err(e);
        }
        let deadline = args
            .duration
            .map(|d| tokio::time::Instant::now() + Duration::from_secs_f64(d));
        let attached = std::sync::atomic::AtomicBool::new(false);
        let work = follow(
            &node,
            &target,
            &printer,
            args.count,
            follow_beacon,
            &attached,
        );
        let result = match deadline {
            Some(at) => match tokio::time::timeout_at(at, work).await {
                Ok(r) => r,
                Err(_) if attached.load(std::sync::atomic::Ordering::Relaxed) => {
                    Ok(ExitCode::SUCCESS)
                }
                Err(_) => Err(anyhow::anyhow!(
                    "{target} did not answer within --duration (stopped or overloaded?)"
                )),
            },
            None => tokio::select! {
                r = work => r,
                _ = super::epmd::wait_for_signal() => Ok(ExitCode::SUCCESS),
            },
        };
        node.shutdown().await;
        result
    })
}

/// Follows `target`'s events; `attached` is set once the subscriptions are in place.
async fn follow(
    node: &Node,
    target: &NodeName,
    printer: &Printer,
    count: Option<u64>,
    beacon_events: bool,
    attached: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<ExitCode> {
    node.connect(target)
        .await
        .with_context(|| format!("cannot reach {target}"))?;
    let mut seen = 0u64;
    let mut done = |printed: bool| {
        if printed {
            seen += 1;
        }
        count.is_some_and(|c| seen >= c)
    };
    let (mut events, members) = match Subscription::start(node, target, SUBSCRIBE_TIMEOUT).await {
        Ok(s) => s,
        Err(SubscribeError::NoProc(_)) => {
            tracing::info!("{target} has no cluster_events (a plain Erlang node?); polling rex");
            return poll_rex(node, target, printer, &mut done, attached).await;
        }
        Err(e) => return Err(e.into()),
    };
    // Both subscriptions are in place before anything is printed, so a reader that acts on
    // the member lines misses no event.
    let mut registrations = None;
    if beacon_events {
        match BeaconClient::new(node.clone(), target.clone())
            .subscribe()
            .await
        {
            Ok(sub) => registrations = Some(sub),
            Err(e) => tracing::warn!(
                "{target} does not answer as a beacon ({e}); showing node events only"
            ),
        }
    }
    attached.store(true, std::sync::atomic::Ordering::Relaxed);
    for m in &members {
        printer.print("member", &m.node, Some(m.kind.clone()), None)?;
    }
    loop {
        let beacon_next = async {
            match registrations.as_mut() {
                Some(sub) => sub.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = events.next() => {
                let printed = match ev {
                    None => bail!("our node stopped"),
                    Some(ClusterEvent::TargetDown { reason }) => {
                        eprintln!("cluster: {target} went down: {reason}");
                        return Ok(ExitCode::FAILURE);
                    }
                    Some(ClusterEvent::Snapshot(_)) => false,
                    Some(ClusterEvent::NodeUp { node: n, kind }) => printer.print("nodeup", &n, Some(kind), None)?,
                    Some(ClusterEvent::NodeDown { node: n, kind, reason }) => {
                        printer.print("nodedown", &n, Some(kind), Some(reason))?
                    }
                    Some(ClusterEvent::HighWater { process, len, bytes }) => printer.print_full(
                        "mailbox",
                        target.as_str(),
                        None,
                        Some(format!("{process} queue_len={len} queue_bytes={bytes}")),
                        None,
                    )?,
                };
                if done(printed) {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            ev = beacon_next => {
                let printed = match ev {
                    Some(SubscriptionEvent::Beacon(Event::Registered(info))) => {
                        printer.print_full("registered", &info.node, None, None, Some(info.resource))?
                    }
                    Some(SubscriptionEvent::Beacon(Event::Offline { node: n, reason })) => {
                        printer.print("offline", &n, None, Some(reason))?
                    }
                    Some(SubscriptionEvent::Beacon(Event::Report { node: n, report })) => {
                        let text: Vec<String> = report.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        printer.print("report", &n, None, Some(text.join(" ")))?
                    }
                    Some(SubscriptionEvent::BeaconDown { .. }) | None => {
                        registrations = None;
                        false
                    }
                    Some(_) => false,
                };
                if done(printed) {
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    }
}

async fn poll_rex(
    node: &Node,
    target: &NodeName,
    printer: &Printer,
    done: &mut impl FnMut(bool) -> bool,
    attached: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<ExitCode> {
    let mut known: Option<BTreeSet<String>> = None;
    let mut ticker = tokio::time::interval(POLL_INTERVAL);
    loop {
        ticker.tick().await;
        let now: BTreeSet<String> = match rex::nodes(node, target, POLL_INTERVAL * 5).await {
            Ok(list) => list.into_iter().collect(),
            Err(rex::RpcError::Call(CallError::NodeDown)) => {
                eprintln!("cluster: {target} went down");
                return Ok(ExitCode::FAILURE);
            }
            Err(e) => bail!("rex on {target}: {e}"),
        };
        attached.store(true, std::sync::atomic::Ordering::Relaxed);
        match &known {
            None => {
                for n in &now {
                    printer.print("member", n, None, None)?;
                }
            }
            Some(before) => {
                for n in now.difference(before) {
                    if done(printer.print("nodeup", n, None, None)?) {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                for n in before.difference(&now) {
                    if done(printer.print("nodedown", n, None, None)?) {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
            }
        }
        known = Some(now);
    }
}
