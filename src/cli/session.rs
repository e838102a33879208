//! What the node-talking subcommands share: one resolution of settings (the roles file, its
//! `net_ticktime`, the port mapper's port, the cookie), used by `start` and every tool alike so
//! a tool never disagrees with the nodes it talks to, and a short-lived hidden node
//! (`cluster-cli-<pid>@<host>`) that dials out and never registers or listens, the way
//! `erl_call` and epmd-less tools talk to a cluster.

use std::time::Duration;

use anyhow::Context;

use super::GlobalOpts;
use cluster::config::cookie::CookieSources;
use cluster::config::{self, ConfigError, RolesFile};
use cluster::dist::{Cookie, NameKind, Node, NodeConfig, NodeName};

/// Settings every node-talking command resolves the same way.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The roles file, if one was given or found (always valid: an invalid one is an error).
    pub roles: Option<RolesFile>,
    /// The port mapper's port.
    pub epmd_port: u16,
    /// `net_ticktime`: the roles file's, else Erlang's default.
    pub ticktime: Duration,
}

impl Settings {
    /// Resolves the settings. A roles file that was named (`--roles`, `CLUSTER_ROLES`) must
    /// exist; any roles file found must be valid, checked exactly as `cluster roles` checks it.
    pub fn resolve(global: &GlobalOpts) -> Result<Settings, ConfigError> {
        let roles = match config::load_roles(global.roles.as_deref()) {
            Ok(file) => Some(file),
            Err(ConfigError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let ticktime = roles
            .as_ref()
            .map_or(config::roles::DEFAULT_NET_TICKTIME, |r| {
                r.cluster.net_ticktime
            });
        Ok(Settings {
            roles,
            epmd_port: global.epmd_port,
            ticktime: Duration::from_secs(ticktime),
        })
    }

    /// The roles file, or the error saying why there is none.
    pub fn require_roles(&self, global: &GlobalOpts) -> Result<&RolesFile, ConfigError> {
        self.roles.as_ref().ok_or_else(|| {
            config::resolve_roles_path(global.roles.as_deref())
                .err()
                .unwrap_or(ConfigError::NotFound {
                    searched: Vec::new(),
                })
        })
    }

    /// The beacon: the flag, else the roles file's.
    pub fn beacon(&self, global: &GlobalOpts, flag: Option<NodeName>) -> anyhow::Result<NodeName> {
        if let Some(b) = flag {
            return Ok(b);
        }
        let roles = self.require_roles(global).context(
            "no beacon given (--beacon, CLUSTER_BEACON) and no roles file to find it in",
        )?;
        Ok(roles.cluster.beacon.clone())
    }
}

/// The cookie from the flags, the environment or `~/.erlang.cookie`.
pub fn cookie(global: &GlobalOpts) -> anyhow::Result<Cookie> {
    CookieSources::from_process(global.cookie.clone(), global.cookie_file.clone())
        .resolve()
        .context("no usable cookie")
}

/// This machine's host name, for short node names.
fn short_host() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|h| h.split('.').next().unwrap_or_default().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A hidden node whose name is of the same kind (long or short) as `target`'s, since Erlang
/// refuses to connect the two kinds.
pub async fn hidden_node(
    settings: &Settings,
    cookie: Cookie,
    target: &NodeName,
) -> anyhow::Result<Node> {
    let host = match target.kind() {
        NameKind::Long => "127.0.0.1".to_owned(),
        NameKind::Short => short_host(),
    };
    let name = NodeName::parse(&format!("cluster-cli-{}@{host}", std::process::id()))?;
    let mut cfg = NodeConfig::hidden_client(name, cookie).with_epmd_port(settings.epmd_port);
    cfg.ticktime = settings.ticktime;
    Ok(Node::start(cfg).await?)
}

/// Parses node names given on the command line.
pub fn parse_nodes(names: &[String]) -> anyhow::Result<Vec<NodeName>> {
    names
        .iter()
        .map(|n| NodeName::parse(n).map_err(anyhow::Error::from))
        .collect()
}
