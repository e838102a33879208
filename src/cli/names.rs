//! `cluster names`: lists the nodes registered with a host's port mapper, like `epmd -names`,
//! and adds what epmd knows but does not print: each node's type (visible or hidden) and its
//! Extra field, where `cluster` nodes put their role. Works against real `epmd` too.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{output, GlobalOpts};
use cluster::beacon::BeaconClient;
use cluster::dist::NodeName;
use cluster::epmd::{EpmdClient, NodeEntry, NodeType};

/// At most this many PORT_PLEASE2 lookups at once, so a host with thousands of nodes does not
/// exhaust the port mapper's connection limit.
const LOOKUP_CONCURRENCY: usize = 32;

/// Arguments of `cluster names`.
#[derive(Debug, Args)]
pub struct NamesArgs {
    /// Host whose port mapper to ask.
    #[arg(long, default_value = "127.0.0.1", value_name = "HOST")]
    host: String,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 5.0, value_name = "SECS", value_parser = super::parse_secs, allow_negative_numbers = true)]
    timeout: f64,
    /// Show the cluster-wide view from this beacon instead of one host's port mapper.
    #[arg(long, value_name = "NODE", conflicts_with = "host")]
    beacon: Option<NodeName>,
    /// Like --beacon, with the beacon from CLUSTER_BEACON or the roles file.
    #[arg(long, conflicts_with_all = ["host", "beacon"])]
    cluster: bool,
}

/// One row of the listing.
#[derive(Debug, Serialize)]
struct NameRow {
    name: String,
    port: u16,
    /// `normal`, `hidden`, or null when the node left between the two requests.
    #[serde(rename = "type")]
    node_type: Option<NodeType>,
    /// The role from the Extra field, when it holds printable text.
    role: Option<String>,
    highest: Option<u16>,
    lowest: Option<u16>,
}

pub fn run(global: &GlobalOpts, args: NamesArgs) -> anyhow::Result<ExitCode> {
    if args.beacon.is_some() || args.cluster {
        let settings = super::session::Settings::resolve(global).context("invalid roles file")?;
        let env_beacon = std::env::var("CLUSTER_BEACON")
            .ok()
            .map(|b| NodeName::parse(&b))
            .transpose()?;
        let beacon = settings.beacon(args.beacon.clone().or(env_beacon));
        return cluster_view(global, &settings, &beacon, args.json);
    }
    let client = EpmdClient::new(args.host.clone(), global.epmd_port)
        .with_timeout(Duration::from_secs_f64(args.timeout));
    let rows = super::runtime()?.block_on(list(client.clone()))?;
    if args.json {
        output::print_json(&rows)?;
    } else if rows.is_empty() {
        eprintln!(
            "no nodes registered with the port mapper at {}",
            client.target()
        );
    } else {
        let mut table = output::table(&["NAME", "PORT", "TYPE", "ROLE"]);
        for row in &rows {
            table.add_row(vec![
                row.name.clone(),
                row.port.to_string(),
                row.node_type
                    .map_or_else(|| "gone".into(), |t| t.to_string()),
                row.role.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        output::print_table(&table)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn row(entry: NodeEntry) -> NameRow {
    NameRow {
        role: entry.extra_text().map(str::to_owned),
        node_type: Some(entry.node_type),
        highest: Some(entry.highest),
        lowest: Some(entry.lowest),
        port: entry.port,
        name: entry.name,
    }
}

async fn list(client: EpmdClient) -> anyhow::Result<Vec<NameRow>> {
    // Our port mapper answers everything in one reply; OTP's epmd needs NAMES, then a
    // PORT_PLEASE2 per node for the type and role.
    if let Some(entries) = client.nodes().await? {
        let mut rows: Vec<NameRow> = entries.into_iter().map(row).collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        return Ok(rows);
    }
    let names = client.names().await?;
    let limit = Arc::new(Semaphore::new(LOOKUP_CONCURRENCY));
    let mut lookups = JoinSet::new();
    for line in names.names {
        let client = client.clone();
        let limit = limit.clone();
        lookups.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let entry = client.port_please(&line.name).await;
            (line, entry)
        });
    }
    let mut rows = Vec::new();
    while let Some(joined) = lookups.join_next().await {
        let (line, entry) = joined?;
        // NAMES already answered, so a failed lookup only loses the detail columns.
        let entry: Option<NodeEntry> = entry.unwrap_or_else(|e| {
            tracing::warn!("lookup of {:?} failed: {e}", line.name);
            None
        });
        rows.push(NameRow {
            role: entry
                .as_ref()
                .and_then(|e| e.extra_text().map(str::to_owned)),
            node_type: entry.as_ref().map(|e| e.node_type),
            highest: entry.as_ref().map(|e| e.highest),
            lowest: entry.as_ref().map(|e| e.lowest),
            port: entry.as_ref().map_or(line.port, |e| e.port),
            name: line.name,
        });
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

/// A row of `names --cluster --json`: the beacon's entry plus readiness.
#[derive(Debug, Serialize)]
struct ClusterRow<'a> {
    #[serde(flatten)]
    info: &'a cluster::beacon::NodeInfo,
    /// Online, with an online provider for every requirement.
    ready: bool,
    /// Requirements with no online provider.
    missing: Vec<String>,
    /// What the node's cluster_server reports: registered processes living there (in all,
    /// and per type) and its role's own load figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    load: Option<Load>,
}

/// A node's load, as the beacon's cluster_server sees it.
#[derive(Debug, Clone, Serialize)]
struct Load {
    procs: i64,
    types: std::collections::BTreeMap<String, i64>,
    role_load: i64,
}

impl Load {
    fn text(&self) -> String {
        if self.role_load > 0 {
            format!("{} procs, role {}", self.procs, self.role_load)
        } else {
            format!("{} procs", self.procs)
        }
    }
}

/// `[{Node, #{procs, types, load}}]` from `cluster_server`'s `loads`.
fn loads(reply: &cluster::dist::Term) -> std::collections::HashMap<String, Load> {
    let mut out = std::collections::HashMap::new();
    for item in reply.as_list().unwrap_or_default() {
        let Some([n, m]) = item.as_tuple() else {
            continue;
        };
        let Some(n) = n.as_atom() else { continue };
        let int = |k: &str| m.map_get_atom(k).and_then(cluster::dist::Term::as_int);
        let types = m
            .map_get_atom("types")
            .and_then(|t| t.map_pairs())
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.as_atom()?.to_owned(), v.as_int()?)))
            .collect();
        out.insert(
            n.to_owned(),
            Load {
                procs: int("procs").unwrap_or(0),
                types,
                role_load: int("load").unwrap_or(0),
            },
        );
    }
    out
}

/// READY: `yes`, `no (waiting for R, …)`, or `-` for an offline node.
fn ready_text(n: &cluster::beacon::NodeInfo, all: &[cluster::beacon::NodeInfo]) -> String {
    if !n.is_online() {
        return "-".into();
    }
    let missing = n.missing(all);
    if missing.is_empty() {
        "yes".into()
    } else {
        format!("no (waiting for {})", missing.join(", "))
    }
}

/// The cluster-wide view: every node the beacon knows, with role, status and requirements.
fn cluster_view(
    global: &GlobalOpts,
    settings: &super::session::Settings,
    beacon: &NodeName,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let cookie = super::session::cookie(global)?;
    let (nodes, load) = super::runtime()?.block_on(async {
        let node = super::session::hidden_node(settings, cookie, beacon).await?;
        let result = BeaconClient::new(node.clone(), beacon.clone())
            .nodes()
            .await;
        // The LOAD column, from the beacon's cluster_server; a beacon without one (an older
        // node, or the seed's Elixir beacon) just has no such column.
        let load = cluster::registry::Client::new(node.clone(), beacon.clone())
            .with_timeout(std::time::Duration::from_secs(2))
            .loads()
            .await
            .ok()
            .map(|t| loads(&t));
        node.shutdown().await;
        Ok::<_, anyhow::Error>((result?, load))
    })?;
    if json {
        let rows: Vec<ClusterRow> = nodes
            .iter()
            .map(|n| ClusterRow {
                ready: n.is_online() && n.missing(&nodes).is_empty(),
                missing: n.missing(&nodes).into_iter().map(str::to_owned).collect(),
                load: load.as_ref().and_then(|l| l.get(&n.node).cloned()),
                info: n,
            })
            .collect();
        output::print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    // REPORT: what the node last said about itself (a replica's lag), when any node did.
    let any_report = nodes.iter().any(|n| !n.report.is_empty());
    let mut headers = vec!["NODE", "ROLE", "STATUS", "READY", "REQUIREMENTS", "SINCE"];
    if load.is_some() {
        headers.push("LOAD");
    }
    if any_report {
        headers.push("REPORT");
    }
    let mut table = output::table(&headers);
    for n in &nodes {
        let since = std::time::UNIX_EPOCH + std::time::Duration::from_millis(n.since_ms);
        let status = match &n.reason {
            Some(r) => format!("{} ({r})", n.status),
            None => n.status.clone(),
        };
        let mut row = vec![
            n.node.clone(),
            n.resource.clone(),
            status,
            ready_text(n, &nodes),
            if n.requirements.is_empty() {
                "-".into()
            } else {
                n.requirements.join(", ")
            },
            humantime::format_rfc3339_seconds(since).to_string(),
        ];
        if let Some(l) = &load {
            row.push(match l.get(&n.node) {
                Some(l) if n.is_online() => l.text(),
                _ => "-".into(),
            });
        }
        if any_report {
            let text: Vec<String> = n.report.iter().map(|(k, v)| format!("{k}={v}")).collect();
            row.push(if text.is_empty() {
                "-".into()
            } else {
                text.join(" ")
            });
        }
        table.add_row(row);
    }
    output::print_table(&table)?;
    Ok(ExitCode::SUCCESS)
}
