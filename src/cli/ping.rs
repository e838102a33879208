//! `cluster ping`: like `net_adm:ping/1` from a throwaway hidden node. Connects to each node,
//! asks its `net_kernel` `{is_auth, Us}`, and prints pong or pang with the reason. Works against
//! `cluster` nodes and plain Erlang nodes alike.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use super::{output, GlobalOpts};
use cluster::dist::builtin::net_kernel;
use cluster::dist::{CallError, ConnectError, NameKind, NodeName, SendError};

/// Arguments of `cluster ping`.
#[derive(Debug, Args)]
pub struct PingArgs {
    /// Nodes to ping (name@host).
    #[arg(required = true, value_name = "NODE")]
    nodes: Vec<String>,
    /// Seconds to wait for each node.
    #[arg(long, default_value_t = 7.0, value_name = "SECS", value_parser = super::parse_secs, allow_negative_numbers = true)]
    timeout: f64,
    /// Print a JSON array instead of lines.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct PingResult {
    node: String,
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// What to do about it, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

pub fn run(global: &GlobalOpts, args: PingArgs) -> anyhow::Result<ExitCode> {
    let targets = super::session::parse_nodes(&args.nodes)?;
    let settings = super::session::Settings::resolve(global).context("invalid roles file")?;
    let cookie = super::session::cookie(global)?;
    let limit = Duration::from_secs_f64(args.timeout);
    let results = super::runtime()?.block_on(async {
        let mut results = Vec::new();
        // One hidden node per name kind, as long and short names cannot mix.
        let mut nodes: Vec<cluster::dist::Node> = Vec::new();
        let mut tasks = tokio::task::JoinSet::new();
        for (idx, target) in targets.iter().enumerate() {
            let node = match nodes.iter().find(|n| n.name().kind() == target.kind()) {
                Some(n) => n.clone(),
                None => {
                    let n = super::session::hidden_node(&settings, cookie.clone(), target).await?;
                    nodes.push(n.clone());
                    n
                }
            };
            let target = target.clone();
            tasks.spawn(async move { (idx, ping(&node, &target, limit).await) });
        }
        let mut indexed = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            indexed.push(joined?);
        }
        indexed.sort_by_key(|(i, _)| *i);
        results.extend(indexed.into_iter().map(|(_, r)| r));
        for n in nodes {
            n.shutdown().await;
        }
        Ok::<_, anyhow::Error>(results)
    })?;
    let all_pong = results.iter().all(|r| r.result == "pong");
    if args.json {
        output::print_json(&results)?;
    } else {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for r in &results {
            match (&r.ms, &r.reason) {
                (Some(ms), _) => writeln!(out, "pong {} ({ms:.1} ms)", r.node)?,
                (_, reason) => writeln!(
                    out,
                    "pang {}: {}",
                    r.node,
                    reason.as_deref().unwrap_or("no answer")
                )?,
            }
            if let Some(hint) = &r.hint {
                eprintln!("cluster: hint: {hint}");
            }
        }
    }
    Ok(if all_pong {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn ping(node: &cluster::dist::Node, target: &NodeName, limit: Duration) -> PingResult {
    let started = Instant::now();
    let outcome = net_kernel::ping(node, target, limit).await;
    let node_str = target.to_string();
    match outcome {
        Ok(()) => PingResult {
            node: node_str,
            result: "pong",
            ms: Some(started.elapsed().as_secs_f64() * 1e3),
            reason: None,
            hint: None,
        },
        Err(CallError::Send(SendError::Connect(e))) => {
            let hint = connect_hint(node.name(), target, &e);
            PingResult {
                hint,
                ..pang(node_str, e.to_string())
            }
        }
        Err(e) => pang(node_str, e.to_string()),
    }
}

/// What to do about a failed connection, where the cause is known.
pub(crate) fn connect_hint(us: &NodeName, target: &NodeName, e: &ConnectError) -> Option<String> {
    use cluster::net::DialError;
    match e {
        ConnectError::BadCookie => Some(super::session::cookie_hint()),
        ConnectError::Refused(why) if why.contains("not_allowed") => Some(format!(
            "{} is registered on {}, but the node there refused our {}-name node: it probably \
             runs with a {} name (e.g. {}@<its address>); long and short names cannot mix",
            target.alive(),
            target.host(),
            us.kind(),
            match us.kind() {
                NameKind::Long => "short",
                NameKind::Short => "long",
            },
            target.alive(),
        )),
        ConnectError::Dial(d) => match d.as_ref() {
            DialError::NoPortMapper { host, .. } => Some(format!(
                "nothing answers on {host}'s port-mapper port: no node runs there, or the port \
                 mapper uses another port (--epmd-port, ERL_EPMD_PORT)"
            )),
            DialError::Resolve { host, .. } => Some(format!(
                "{host} is not a known host name (DNS); check the part after @"
            )),
            _ => None,
        },
        _ => None,
    }
}

fn pang(node: String, reason: String) -> PingResult {
    PingResult {
        node,
        result: "pang",
        ms: None,
        reason: Some(reason),
        hint: None,
    }
}
