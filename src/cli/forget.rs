//! `cluster forget NODE...`: removes offline nodes from the beacon's table. Offline entries
//! otherwise stay listed for an hour (so an operator sees what went away and why); a node
//! that was decommissioned on purpose can be dropped at once. An online node is refused: it
//! would only register again.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::GlobalOpts;
use cluster::beacon::{BeaconClient, BeaconError};
use cluster::dist::NodeName;

/// Arguments of `cluster forget`.
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// The offline nodes to remove.
    #[arg(required = true, value_name = "NODE")]
    nodes: Vec<NodeName>,
    /// The beacon [default: env CLUSTER_BEACON, then the roles file's beacon].
    #[arg(long, env = "CLUSTER_BEACON", value_name = "NODE")]
    beacon: Option<NodeName>,
}

pub fn run(global: &GlobalOpts, args: ForgetArgs) -> anyhow::Result<ExitCode> {
    let settings = super::session::Settings::resolve(global).context("invalid roles file")?;
    let beacon = settings.beacon(args.beacon.clone());
    let cookie = super::session::cookie(global)?;
    super::runtime()?.block_on(async {
        let node = super::session::hidden_node(&settings, cookie, &beacon).await?;
        let client = BeaconClient::new(node.clone(), beacon.clone());
        let mut failed = false;
        for target in &args.nodes {
            match client.forget(target.as_str()).await {
                Ok(()) => println!("forgot {target}"),
                Err(BeaconError::Refused { reason, .. }) if reason == "online" => {
                    eprintln!(
                        "cluster: {target} is online; only an offline node can be forgotten \
                         (stop it first)"
                    );
                    failed = true;
                }
                Err(BeaconError::Refused { reason, .. }) if reason == "not_found" => {
                    eprintln!("cluster: {target} is not in {beacon}'s table");
                    failed = true;
                }
                Err(e) => {
                    node.shutdown().await;
                    return Err(e.into());
                }
            }
        }
        node.shutdown().await;
        Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    })
}
