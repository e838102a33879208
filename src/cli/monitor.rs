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
use eetf::Term;
use serde::Serialize;

use super::GlobalOpts;
use crate::beacon::wire::Event;
use crate::config;
use crate::dist::term::{self, atom, tuple};
use crate::dist::{Dest, Mailbox, Node, NodeEvent, NodeName};

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
    /// Exit 0 after this many seconds.
    #[arg(long, value_name = "SECS")]
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
        if node == self.me {
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
    // With no NODE we follow the beacon, and show its registrations as well.
    let follow_beacon = args.node.is_none();
    let target = match &args.node {
        Some(n) => NodeName::parse(n)?,
        None => {
            let roles = config::load_roles(global.roles.as_deref())
                .context("no NODE given and no roles file to find the beacon in")?;
            NodeName::parse(&roles.cluster.beacon)?
        }
    };
    if let Some(d) = args.duration {
        if !(d.is_finite() && d > 0.0) {
            bail!("--duration must be a positive number of seconds");
        }
    }
    let cookie = super::session::cookie(global)?;
    super::runtime()?.block_on(async {
        let node = super::session::hidden_node(global, cookie, &target).await?;
        let printer = Printer {
            json: args.json,
            me: node.name().to_string(),
        };
        let deadline = args
            .duration
            .map(|d| tokio::time::Instant::now() + Duration::from_secs_f64(d));
        let work = follow(&node, &target, &printer, args.count, follow_beacon);
        let result = match deadline {
            Some(at) => match tokio::time::timeout_at(at, work).await {
                Ok(r) => r,
                Err(_) => Ok(ExitCode::SUCCESS),
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

async fn follow(
    node: &Node,
    target: &NodeName,
    printer: &Printer,
    count: Option<u64>,
    beacon_events: bool,
) -> anyhow::Result<ExitCode> {
    node.connect(target)
        .await
        .with_context(|| format!("cannot reach {target}"))?;
    let mut events = node.monitor_nodes();
    let mut me = node.spawn_mailbox();
    let events_proc = Dest::name("cluster_events", target);
    let mref = node.monitor(&me, &events_proc).await?;
    me.send(
        &events_proc,
        tuple(vec![atom("subscribe"), term::pid(me.pid())]),
    )
    .await?;
    let first = tokio::time::timeout(SUBSCRIBE_TIMEOUT, next_relevant(&mut me, &mref))
        .await
        .context("no answer from cluster_events")?;
    let mut registrations = node.spawn_mailbox();
    if beacon_events {
        let client = crate::beacon::BeaconClient::new(node.clone(), target.clone());
        if let Err(e) = client.subscribe(&registrations).await {
            tracing::warn!("{target} does not answer as a beacon ({e}); showing node events only");
        }
    }
    let mut seen = 0u64;
    let mut done = |printed: bool| {
        if printed {
            seen += 1;
        }
        count.is_some_and(|c| seen >= c)
    };
    match first {
        Reply::NoProc => {
            tracing::info!("{target} has no cluster_events (a plain Erlang node?); polling rex");
            return poll_rex(node, target, printer, &mut events, &mut done).await;
        }
        Reply::Down(reason) => bail!("{target} went down: {reason}"),
        Reply::Msg(msg) => {
            let Some([tag, Term::List(members)]) = term::as_tuple(&msg) else {
                bail!("unexpected answer from cluster_events: {msg}");
            };
            if term::as_atom(tag) != Some("snapshot") {
                bail!("unexpected answer from cluster_events: {msg}");
            }
            for m in &members.elements {
                let (name, kind) = map_fields(m);
                printer.print("member", &name, kind, None)?;
            }
        }
    }
    loop {
        tokio::select! {
            msg = next_relevant(&mut me, &mref) => match msg {
                Reply::Msg(msg) => {
                    let Some(els) = term::as_tuple(&msg) else { continue };
                    let (event, node_name, info) = match els {
                        [e, n, info] => (term::as_atom(e), term::as_atom(n), info),
                        _ => continue,
                    };
                    let (Some(event), Some(name)) = (event, node_name) else { continue };
                    let event = match event { "nodeup" => "nodeup", "nodedown" => "nodedown", _ => continue };
                    let (kind, reason) = info_fields(info);
                    if done(printer.print(event, name, kind, reason)?) {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                Reply::NoProc | Reply::Down(_) => bail!("cluster_events on {target} went away"),
            },
            msg = registrations.recv() => {
                let Some(msg) = msg else { continue };
                let printed = match crate::beacon::wire::parse_event(&msg) {
                    Some(Event::Registered(info)) => {
                        printer.print_full("registered", &info.node, None, None, Some(info.resource))?
                    }
                    Some(Event::Offline { node: n, reason }) => {
                        printer.print("offline", &n, None, Some(reason))?
                    }
                    None => false,
                };
                if done(printed) {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            ev = events.recv() => {
                if let Ok(NodeEvent::Down { node: n, reason, .. }) = ev {
                    if &n == target {
                        eprintln!("cluster: {target} went down: {reason}");
                        return Ok(ExitCode::FAILURE);
                    }
                }
            }
        }
    }
}

enum Reply {
    Msg(Term),
    NoProc,
    Down(String),
}

/// The next message that is not about some other monitor.
async fn next_relevant(me: &mut Mailbox, mref: &eetf::Reference) -> Reply {
    loop {
        let Some(msg) = me.recv().await else {
            return Reply::Down("node stopped".into());
        };
        if let Some([down, Term::Reference(r), _, _, reason]) = term::as_tuple(&msg) {
            if term::as_atom(down) == Some("DOWN") {
                if **r != *mref {
                    continue;
                }
                return match term::as_atom(reason) {
                    Some("noproc") => Reply::NoProc,
                    _ => Reply::Down(reason.to_string()),
                };
            }
        }
        return Reply::Msg(msg);
    }
}

fn map_fields(m: &Term) -> (String, Option<String>) {
    let name = term::map_get(m, "node")
        .and_then(term::as_atom)
        .unwrap_or("?")
        .to_owned();
    let kind = term::map_get(m, "type")
        .and_then(term::as_atom)
        .map(str::to_owned);
    (name, kind)
}

fn info_fields(info: &Term) -> (Option<String>, Option<String>) {
    let kind = term::map_get(info, "type")
        .and_then(term::as_atom)
        .map(str::to_owned);
    let reason = term::map_get(info, "reason").map(|r| match term::as_atom(r) {
        Some(a) => a.to_owned(),
        None => r.to_string(),
    });
    (kind, reason)
}

async fn poll_rex(
    node: &Node,
    target: &NodeName,
    printer: &Printer,
    events: &mut tokio::sync::broadcast::Receiver<NodeEvent>,
    done: &mut impl FnMut(bool) -> bool,
) -> anyhow::Result<ExitCode> {
    let rex = Dest::name("rex", target);
    let mut known: Option<BTreeSet<String>> = None;
    let mut ticker = tokio::time::interval(POLL_INTERVAL);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            ev = events.recv() => {
                if let Ok(NodeEvent::Down { node: n, reason, .. }) = ev {
                    if &n == target {
                        eprintln!("cluster: {target} went down: {reason}");
                        return Ok(ExitCode::FAILURE);
                    }
                }
                continue;
            }
        }
        let gl = node.spawn_mailbox();
        let request = tuple(vec![
            atom("call"),
            atom("erlang"),
            atom("nodes"),
            term::list(vec![]),
            term::pid(gl.pid()),
        ]);
        let reply = match node.call(&rex, request, POLL_INTERVAL * 5).await {
            Ok(r) => r,
            Err(crate::dist::CallError::NodeDown) => {
                eprintln!("cluster: {target} went down");
                return Ok(ExitCode::FAILURE);
            }
            Err(e) => bail!("rex on {target}: {e}"),
        };
        let Term::List(list) = reply else {
            bail!("unexpected answer from rex: {reply}");
        };
        let now: BTreeSet<String> = list
            .elements
            .iter()
            .filter_map(term::as_atom)
            .map(str::to_owned)
            .collect();
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
