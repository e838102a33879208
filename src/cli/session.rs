//! What the node-talking subcommands share: resolving the cookie, and a short-lived hidden
//! node (`cluster-cli-<pid>@<host>`) that dials out and never registers or listens, the way
//! `erl_call` and `epmd`-less tools talk to a cluster.

use anyhow::Context;

use super::GlobalOpts;
use crate::config::cookie::CookieSources;
use crate::dist::{Cookie, NameKind, Node, NodeConfig, NodeName};

/// The cookie from the flags, the environment or `~/.erlang.cookie`.
pub fn cookie(global: &GlobalOpts) -> anyhow::Result<Cookie> {
    CookieSources::from_process(global.cookie.clone(), global.cookie_file.clone())
        .resolve()
        .context("no usable cookie")
}

/// This machine's host name, for short node names.
fn short_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A hidden node whose name is of the same kind (long or short) as `target`'s, since Erlang
/// refuses to connect the two kinds.
pub async fn hidden_node(
    global: &GlobalOpts,
    cookie: Cookie,
    target: &NodeName,
) -> anyhow::Result<Node> {
    let host = match target.kind() {
        NameKind::Long => "127.0.0.1".to_owned(),
        NameKind::Short => short_host(),
    };
    let name = NodeName::parse(&format!("cluster-cli-{}@{host}", std::process::id()))?;
    let mut cfg = NodeConfig::hidden_client(name, cookie);
    cfg.epmd_port = global.epmd_port;
    Ok(Node::start(cfg).await?)
}

/// Parses node names given on the command line.
pub fn parse_nodes(names: &[String]) -> anyhow::Result<Vec<NodeName>> {
    names
        .iter()
        .map(|n| NodeName::parse(n).map_err(anyhow::Error::from))
        .collect()
}
