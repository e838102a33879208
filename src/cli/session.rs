//! What the node-talking subcommands share: one resolution of settings (the roles file, its
//! `net_ticktime`, the port mapper's port, the cookie), used by `start` and every tool alike so
//! a tool never disagrees with the nodes it talks to, and a short-lived hidden node
//! (`cluster-cli-<pid>@<host>`) that dials out and never registers or listens, the way
//! `erl_call` and epmd-less tools talk to a cluster.

use std::time::Duration;

use anyhow::Context;

use super::GlobalOpts;
use cluster::config::cookie::{CookieSource, CookieSources};
use cluster::config::{self, ConfigError, RolesFile, RolesSource};
use cluster::dist::{Cookie, NameKind, Node, NodeConfig, NodeName};

/// Settings every node-talking command resolves the same way.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The roles file: the one named or found (always valid: an invalid one is an error),
    /// else the built-in roles.
    pub roles: RolesFile,
    /// Whether `roles` are the built-in ones.
    pub roles_source: RolesSource,
    /// The port mapper's port.
    pub epmd_port: u16,
    /// `net_ticktime`: the roles file's, else Erlang's default.
    pub ticktime: Duration,
}

impl Settings {
    /// Resolves the settings. A roles file that was named (`--roles`, `CLUSTER_ROLES`) must
    /// exist; any roles file found must be valid, checked exactly as `cluster roles` checks it;
    /// with none, the built-in roles apply.
    pub fn resolve(global: &GlobalOpts) -> Result<Settings, ConfigError> {
        let (roles, roles_source) = config::load_roles_or_builtin(global.roles.as_deref())?;
        let ticktime = roles.cluster.net_ticktime;
        Ok(Settings {
            roles,
            roles_source,
            epmd_port: global.epmd_port,
            ticktime: Duration::from_secs(ticktime),
        })
    }

    /// The roles, for a command that acts on them (starting a role, `up`). When they are the
    /// built-in ones, says so once on stderr: the user may have meant a file of their own.
    pub fn roles(&self) -> &RolesFile {
        if self.roles_source == RolesSource::Builtin {
            static NOTICE: std::sync::Once = std::sync::Once::new();
            NOTICE.call_once(|| {
                let searched: Vec<String> = config::roles_search_paths()
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                eprintln!(
                    "cluster: no roles file found ({}); using the built-in roles \
                     (`cluster roles --default > roles.toml` to start one)",
                    searched.join(", ")
                );
            });
        }
        &self.roles
    }

    /// The beacon: the flag, else the roles file's (the built-in roles name
    /// `beacon1@127.0.0.1`).
    pub fn beacon(&self, flag: Option<NodeName>) -> NodeName {
        flag.unwrap_or_else(|| self.roles.cluster.beacon.clone())
    }
}

/// Where this process's cookie came from, once resolved: errors about a rejected cookie say
/// it, since "cookie rejected" alone does not tell which of four sources was used.
static COOKIE_SOURCE: std::sync::OnceLock<CookieSource> = std::sync::OnceLock::new();

/// The cookie from the flags, the environment or `~/.erlang.cookie`.
pub fn cookie(global: &GlobalOpts) -> anyhow::Result<Cookie> {
    let (cookie, source) =
        CookieSources::from_process(global.cookie.clone(), global.cookie_file.clone())
            .resolve_with_source()
            .context("no usable cookie")?;
    let _ = COOKIE_SOURCE.set(source);
    Ok(cookie)
}

/// The cookie and where it came from (remembered for [`cookie_hint`]).
pub fn cookie_with_source(
    global: &GlobalOpts,
) -> Result<(Cookie, CookieSource), cluster::config::cookie::CookieError> {
    let (cookie, source) =
        CookieSources::from_process(global.cookie.clone(), global.cookie_file.clone())
            .resolve_with_source()?;
    let _ = COOKIE_SOURCE.set(source.clone());
    Ok((cookie, source))
}

/// What to tell the user when a peer rejected our cookie.
pub fn cookie_hint() -> String {
    match COOKIE_SOURCE.get() {
        Some(source) => source.rejected_hint(),
        None => {
            "give the cluster's cookie with --cookie, CLUSTER_COOKIE or ~/.erlang.cookie".to_owned()
        }
    }
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
