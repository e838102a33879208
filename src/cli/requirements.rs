//! `cluster requirements NODE`: asks the beacon which providers NODE's requirements have.
//! Prints REQUIREMENT | PROVIDER | STATUS (a requirement without any provider is listed too),
//! exits 0 when every requirement has an online provider and 1 otherwise. `--wait` follows the
//! beacon's pushes until that holds or the deadline passes.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use super::{output, GlobalOpts};
use cluster::beacon::{BeaconClient, NodeInfo};
use cluster::dist::NodeName;

/// Arguments of `cluster requirements`.
#[derive(Debug, Args)]
pub struct RequirementsArgs {
    /// The node whose requirements to check.
    #[arg(value_name = "NODE")]
    node: NodeName,
    /// The beacon [default: env CLUSTER_BEACON, then the roles file's beacon].
    #[arg(long, env = "CLUSTER_BEACON", value_name = "NODE")]
    beacon: Option<NodeName>,
    /// Wait up to this many seconds for every requirement to have an online provider.
    #[arg(long, value_name = "SECS", value_parser = super::parse_secs, allow_negative_numbers = true)]
    wait: Option<f64>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
struct Row {
    requirement: String,
    provider: Option<String>,
    status: String,
}

fn rows(node: &str, nodes: &[NodeInfo]) -> Option<Vec<Row>> {
    let me = nodes.iter().find(|n| n.node == node)?;
    let mut rows = Vec::new();
    for req in &me.requirements {
        let providers: Vec<&NodeInfo> = nodes.iter().filter(|n| &n.resource == req).collect();
        if providers.is_empty() {
            rows.push(Row {
                requirement: req.clone(),
                provider: None,
                status: "missing".into(),
            });
        }
        for p in providers {
            rows.push(Row {
                requirement: req.clone(),
                provider: Some(p.node.clone()),
                status: p.status.clone(),
            });
        }
    }
    Some(rows)
}

fn satisfied(node: &NodeInfo, rows: &[Row]) -> bool {
    node.requirements.iter().all(|r| {
        rows.iter()
            .any(|row| &row.requirement == r && row.status == "online")
    })
}

pub fn run(global: &GlobalOpts, args: RequirementsArgs) -> anyhow::Result<ExitCode> {
    let settings = super::session::Settings::resolve(global).context("invalid roles file")?;
    let beacon = settings.beacon(args.beacon.clone());
    let cookie = super::session::cookie(global)?;
    let target = args.node.to_string();
    super::runtime()?.block_on(async {
        let node = super::session::hidden_node(&settings, cookie, &beacon).await?;
        let deadline = args
            .wait
            .map(|w| tokio::time::Instant::now() + Duration::from_secs_f64(w));
        // With --wait, no single call may outlast it (a stopped beacon answers nothing).
        let mut client = BeaconClient::new(node.clone(), beacon.clone());
        if let Some(at) = deadline {
            let left = at.saturating_duration_since(tokio::time::Instant::now());
            client = client.with_timeout(left.max(Duration::from_millis(100)));
        }
        let mut pushes = match deadline {
            Some(_) => Some(client.subscribe().await?),
            None => None,
        };
        let spinner = deadline.and_then(|_| {
            use std::io::IsTerminal;
            std::io::stdout().is_terminal().then(|| {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.enable_steady_tick(Duration::from_millis(120));
                bar.set_message(format!("waiting for the requirements of {target}"));
                bar
            })
        });
        let (rows, ok) = loop {
            let nodes = client.nodes().await?;
            let Some(me) = nodes.iter().find(|n| n.node == target) else {
                match deadline {
                    Some(at) if tokio::time::Instant::now() < at => {
                        wait_push(&mut pushes, at).await;
                        continue;
                    }
                    _ => {
                        if let Some(bar) = &spinner {
                            bar.finish_and_clear();
                        }
                        eprintln!("cluster: {target} is not registered with {beacon}");
                        node.shutdown().await;
                        return Ok(ExitCode::FAILURE);
                    }
                }
            };
            let rows = rows(&target, &nodes).unwrap_or_default();
            let ok = satisfied(me, &rows);
            match deadline {
                Some(at) if !ok && tokio::time::Instant::now() < at => {
                    // Wake on the beacon's next push, or at the deadline.
                    wait_push(&mut pushes, at).await;
                }
                _ => break (rows, ok),
            }
        };
        if let Some(bar) = &spinner {
            bar.finish_and_clear();
        }
        node.shutdown().await;
        if args.json {
            output::print_json(&rows)?;
        } else if rows.is_empty() {
            println!("{target} has no requirements");
        } else {
            let mut table = output::table(&["REQUIREMENT", "PROVIDER", "STATUS"]);
            for r in &rows {
                table.add_row(vec![
                    r.requirement.clone(),
                    r.provider.clone().unwrap_or_else(|| "-".into()),
                    r.status.clone(),
                ]);
            }
            output::print_table(&table)?;
        }
        Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

/// Waits for the beacon's next push (draining a burst), or the deadline.
async fn wait_push(pushes: &mut Option<cluster::beacon::Subscription>, at: tokio::time::Instant) {
    if let Some(sub) = pushes.as_mut() {
        if tokio::time::timeout_at(at, sub.next()).await.is_ok() {
            while sub.try_next().is_some() {}
        }
    } else {
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(node: &str, resource: &str, reqs: &[&str], status: &str) -> NodeInfo {
        NodeInfo {
            node: node.into(),
            status: status.into(),
            resource: resource.into(),
            requirements: reqs.iter().map(|s| s.to_string()).collect(),
            module: resource.into(),
            since_ms: 0,
            reason: None,
            report: Vec::new(),
        }
    }

    #[test]
    fn rows_include_missing_and_offline_providers() {
        let nodes = vec![
            info("g@h", "gate", &["gate_manager", "data_contact"], "online"),
            info("gm1@h", "gate_manager", &[], "offline"),
            info("gm2@h", "gate_manager", &[], "online"),
        ];
        let r = rows("g@h", &nodes).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[2].status, "missing");
        assert!(!satisfied(&nodes[0], &r));
        let nodes = vec![
            info("g@h", "gate", &["gate_manager"], "online"),
            info("gm1@h", "gate_manager", &[], "offline"),
        ];
        let r = rows("g@h", &nodes).unwrap();
        assert!(!satisfied(&nodes[0], &r));
        let nodes = vec![
            info("g@h", "gate", &["gate_manager"], "online"),
            info("gm1@h", "gate_manager", &[], "online"),
        ];
        let r = rows("g@h", &nodes).unwrap();
        assert!(satisfied(&nodes[0], &r));
        assert!(rows("nobody@h", &nodes).is_none());
    }
}
