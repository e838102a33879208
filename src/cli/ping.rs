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
use cluster::dist::{CallError, NodeName, SendError};

/// Arguments of `cluster ping`.
#[derive(Debug, Args)]
pub struct PingArgs {
    /// Nodes to ping (name@host).
    #[arg(required = true, value_name = "NODE")]
    nodes: Vec<String>,
    /// Seconds to wait for each node.
    #[arg(long, default_value_t = 7.0, value_name = "SECS")]
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
}

pub fn run(global: &GlobalOpts, args: PingArgs) -> anyhow::Result<ExitCode> {
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        anyhow::bail!("--timeout must be a positive number of seconds");
    }
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
        },
        Err(CallError::Send(SendError::Connect(e))) => pang(node_str, e.to_string()),
        Err(e) => pang(node_str, e.to_string()),
    }
}

fn pang(node: String, reason: String) -> PingResult {
    PingResult {
        node,
        result: "pang",
        ms: None,
        reason: Some(reason),
    }
}
