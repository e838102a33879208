//! The cluster process registry (seed 002): find "the player_server of player 42" from any
//! node, create it once on the least-loaded node, and create it again elsewhere when its node
//! dies.
//!
//! # The design, and why
//! - **Each node is the authority for what it registers.** `cluster_server` on the node that
//!   registered an entry (its *owner*) monitors the process and tells every other server of
//!   each change (`cs_reg`/`cs_unreg`); on nodeup the two servers exchange everything they own
//!   (`cs_sync`). So a lookup is a local read (no round trip, no lock), an exited process is
//!   removed everywhere by the one node that saw it exit, and a dead node's entries are removed
//!   by every node on its own when the node (or its server) goes down: there is nobody to ask
//!   and nothing to wait for. This is `pg`'s shape, not `global`'s: no cluster-wide lock, so
//!   no node can hang a registration.
//! - **Creates are serialised by the key's home.** `create_process(Type, Id)` goes to the
//!   *home* of `{Type, Id}`: the node with the highest rendezvous hash of the key among the
//!   nodes running `cluster_server`. Every node with the same view of membership picks the same
//!   home, so concurrent creates of one Id from anywhere meet in one mailbox: the first one
//!   picks a node and asks it to create the process; the others wait for that outcome; all get
//!   the same pid. A view that differs for a moment can only make two homes, and the conflict
//!   rule below then keeps one.
//! - **Placement.** The home picks among nodes that host the type (a role's `hosts`, a Rust
//!   [`Factory`], or a BEAM process registered with `{register_factory, Type, Pid}`): by
//!   default the least loaded, counting the registered processes that live there, the creates
//!   in flight to it, and the figure its role reports; or a named node, the hash of the Id, or
//!   at random.
//! - **Failover.** Entries of a type declared `restart = "elsewhere"` are flagged. When their
//!   node dies, every node notes them as *orphans*, and the home of each (computed over the
//!   survivors) creates it again through the same path as any create; every other node that
//!   held the entry asks that home to create it, as a client would (the home may see the
//!   cluster differently for a moment, or may have joined too recently to have heard of the
//!   entry; the asks are serialised by the home like any create). A home does not take as
//!   done an answer naming a process of a node it has seen go down (the chosen node had not
//!   noticed yet): it creates it itself, or tries again. Orphans stay noted
//!   until the key is registered again, so when a home dies before it has finished (a chain
//!   of failures, churn) the next home takes over; a home whose create failed tries again
//!   every 5 s, for up to 5 minutes. The time from the node's death until the last one this
//!   node re-created is back is logged and kept in `status` (`failovers`).
//!
//! # The conflict rule
//! Two sides of a partition can both register `{Type, Id}`. After healing, every server holds
//! both claims, and every server keeps **the claim with the lower stamp**. A stamp is the
//! owner's Lamport clock when it registered the entry (every server advances its clock past
//! every stamp it hears), then the owner's node name, then the pid. It is computed from what
//! the claims carry, so every node agrees whatever the order of arrival; it is not a wall clock.
//! The loser's owner removes its claim everywhere and sends the losing process
//! `{cluster_name_conflict, {Type, Id}, WinnerPid}`, which it can handle (the built-in `echo`
//! process stops with `{shutdown, {name_conflict, Winner}}`).
//!
//! # Process groups
//! Groups are OTP's `pg`, spoken on the wire ([`crate::dist::builtin::pg`]): `join`, `leave`
//! and `members` here use the default scope, so BEAM nodes see the same groups.
//!
//! # What it does not promise
//! During a partition each side sees only its own entries, and a create on each side creates
//! on that side. A server that restarts keeps the table (it lives in [`Shared`], outside the
//! process) and re-monitors what it owns; the other servers drop its entries when its old pid
//! goes down and take them again from its next `cs_sync`. The registry spans the nodes a node is
//! connected to: with `mesh = "requirements"` a node sees only the entries of its beacon and its
//! providers.

pub mod config;
pub mod server;
pub mod state;
pub mod wire;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::dist::node::Dest;
use crate::dist::process::{Call, Ctx, Flow, Process};
use crate::dist::term::{atom, map, tuple, Atom, Pid, Term};
use crate::dist::{CallError, From, Node, NodeName};

pub use server::{Options, Shared, NAME};
pub use state::{Key, Selector};

/// Makes the processes of a type on this node.
pub trait Factory: Send + Sync + 'static {
    /// Starts the process for `key` and returns its pid, or the reason it could not.
    fn create(&self, node: &Node, key: &Key) -> Result<Pid, Term>;
}

/// The built-in type every node hosts unless its role says otherwise.
pub const ECHO: &str = "echo";

/// The `echo` process: answers any call with `{echo, Request}`.
pub struct Echo {
    key: Key,
    live: Arc<AtomicU64>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Process for Echo {
    fn name(&self) -> String {
        format!("echo {}", self.key)
    }

    fn handle_call(&mut self, _ctx: &mut Ctx<'_>, _from: &From, request: Term) -> Call {
        Call::Reply(tuple(vec![atom("echo"), request]))
    }

    fn handle_info(&mut self, _ctx: &mut Ctx<'_>, msg: Term) -> Flow {
        match msg.as_tuple() {
            Some([tag, _, winner]) if tag.is_atom("cluster_name_conflict") => {
                Flow::Stop(tuple(vec![
                    atom("shutdown"),
                    tuple(vec![atom("name_conflict"), winner.clone()]),
                ]))
            }
            _ => Flow::Continue,
        }
    }

    fn state(&self) -> Term {
        map(vec![("key", self.key.to_term())])
    }
}

/// Makes [`Echo`] processes, counting the live ones.
pub struct EchoFactory {
    live: Arc<AtomicU64>,
}

impl Factory for EchoFactory {
    fn create(&self, node: &Node, key: &Key) -> Result<Pid, Term> {
        self.live.fetch_add(1, Ordering::Relaxed);
        let echo = Echo {
            key: key.clone(),
            live: self.live.clone(),
        };
        node.spawn_process(&[], echo)
            .map(|s| s.pid)
            .map_err(|e| crate::dist::term::binary(e.to_string()))
    }
}

/// A registration, as lookups return it (the seed's record).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The type and id.
    pub key: Key,
    /// The process.
    pub pid: Pid,
    /// What the registrant attached.
    pub meta: Term,
}

impl Record {
    /// The node the process lives on.
    pub fn node(&self) -> &str {
        self.pid.node.as_str()
    }
}

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The call to `cluster_server` failed.
    #[error("cluster_server did not answer: {0}")]
    Call(#[from] CallError),
    /// `cluster_server` answered `{error, Reason}`.
    #[error("{0}")]
    Refused(String),
    /// The name is held by another process.
    #[error("{key} is already registered to {pid:?}")]
    Taken {
        /// The key.
        key: Key,
        /// Who holds it.
        pid: Pid,
    },
    /// The answer was not what the contract says.
    #[error("unexpected answer from cluster_server: {0}")]
    Unexpected(String),
}

/// The registry on this node: lookups read the replicated table directly; changes go through
/// this node's `cluster_server`.
#[derive(Clone)]
pub struct Registry {
    node: Node,
    shared: Arc<Shared>,
    timeout: Duration,
    config: Option<(config::Cache, NodeName)>,
}

/// Starts `cluster_server` on `node` (kept running, with its table kept across restarts) and
/// returns the handle. The `echo` type is hosted when `opts.hosts` names it; with
/// `opts.config_holder`, the node keeps a copy of the shared config.
pub fn start(node: &Node, opts: Options) -> Registry {
    let shared = Arc::new(Shared::default());
    if opts.hosts.iter().any(|h| h.as_str() == ECHO) {
        shared.factories.write().expect("factories").insert(
            Atom::from(ECHO),
            Arc::new(EchoFactory {
                live: shared.echo_live.clone(),
            }),
        );
    }
    let config = opts
        .config_holder
        .clone()
        .map(|holder| (config::Cache::start(node, holder.clone()), holder));
    let s = shared.clone();
    node.spawn_permanent(&[NAME], move || {
        server::Server::new(s.clone(), opts.clone())
    });
    Registry {
        node: node.clone(),
        shared,
        timeout: server::CREATE_TIMEOUT + Duration::from_secs(3),
        config,
    }
}

impl Registry {
    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Where `{ty, id}` is registered, read locally.
    pub fn whereis(&self, ty: &str, id: &Term) -> Option<Record> {
        let key = Key::new(ty, id.clone());
        let t = self.shared.table.read().expect("registry table");
        t.get(&key).map(|e| Record {
            key,
            pid: e.pid.clone(),
            meta: e.meta.clone(),
        })
    }

    /// Every registration, optionally of one type and living on one node, read locally.
    pub fn procs(&self, ty: Option<&str>, node: Option<&str>) -> Vec<Record> {
        let t = self.shared.table.read().expect("registry table");
        t.visible()
            .into_iter()
            .filter(|e| ty.is_none_or(|ty| e.key.ty.as_str() == ty))
            .filter(|e| node.is_none_or(|n| e.pid.node.as_str() == n))
            .map(|e| Record {
                key: e.key.clone(),
                pid: e.pid.clone(),
                meta: e.meta.clone(),
            })
            .collect()
    }

    /// Hosts `ty` on this node with `factory` (told to the other servers within a second).
    pub fn host(&self, ty: &str, factory: Arc<dyn Factory>) {
        self.shared
            .factories
            .write()
            .expect("factories")
            .insert(Atom::from(ty), factory);
    }

    /// Sets the role's own load figure, added to the process count when placing.
    pub fn set_load(&self, load: u64) {
        self.shared.load.store(load, Ordering::Relaxed);
    }

    /// Creates `{ty, id}` on a node picked by `selector`, or returns the process that
    /// already has it.
    pub async fn create_process(
        &self,
        ty: &str,
        id: Term,
        selector: Selector,
    ) -> Result<Record, RegistryError> {
        Client::new(self.node.clone(), self.node.name().clone())
            .with_timeout(self.timeout)
            .create_process(ty, id, selector)
            .await
    }

    /// Registers `pid` as `{ty, id}`, owned by this node.
    pub async fn register(
        &self,
        ty: &str,
        id: Term,
        pid: Pid,
        meta: Term,
    ) -> Result<(), RegistryError> {
        self.client().register(ty, id, pid, meta).await
    }

    /// Removes `{ty, id}` everywhere.
    pub async fn unregister(&self, ty: &str, id: Term) -> Result<(), RegistryError> {
        self.client().unregister(ty, id).await
    }

    /// Joins `pids` (processes of this node) to `group` of OTP's default `pg` scope, which
    /// BEAM nodes see in `pg:get_members/1`.
    pub async fn join(&self, group: Term, pids: Vec<Pid>) -> Result<(), RegistryError> {
        let scope = crate::dist::builtin::pg::default_scope(&self.node)
            .map_err(|e| RegistryError::Refused(e.to_string()))?;
        scope
            .join(group, pids)
            .await
            .map_err(|e| RegistryError::Refused(e.to_string()))
    }

    /// Leaves `group` of the default `pg` scope; false if none of `pids` had joined.
    pub async fn leave(&self, group: Term, pids: Vec<Pid>) -> Result<bool, RegistryError> {
        let scope = crate::dist::builtin::pg::default_scope(&self.node)
            .map_err(|e| RegistryError::Refused(e.to_string()))?;
        scope
            .leave(group, pids)
            .await
            .map_err(|e| RegistryError::Refused(e.to_string()))
    }

    /// The members of `group` in the default `pg` scope, on every node (a local read).
    pub fn members(&self, group: &Term) -> Vec<Pid> {
        crate::dist::builtin::pg::default_scope(&self.node)
            .map(|s| s.get_members(group))
            .unwrap_or_default()
    }

    /// This node's copy of the shared config (typed local reads: `get_int`, `get_text`,
    /// `get_bool`), when the registry was started with a config holder.
    pub fn config(&self) -> Option<&config::Cache> {
        self.config.as_ref().map(|(c, _)| c)
    }

    /// A client that changes the shared config on its holder.
    pub fn config_client(&self) -> Option<config::ConfigClient> {
        self.config
            .as_ref()
            .map(|(_, h)| config::ConfigClient::new(self.node.clone(), h.clone()))
    }

    fn client(&self) -> Client {
        Client::new(self.node.clone(), self.node.name().clone()).with_timeout(self.timeout)
    }
}

/// Talks to the `cluster_server` of any node, through its gen_server contract (for tools).
#[derive(Clone)]
pub struct Client {
    node: Node,
    target: NodeName,
    timeout: Duration,
}

impl Client {
    /// A client of `target`'s server.
    pub fn new(node: Node, target: NodeName) -> Client {
        Client {
            node,
            target,
            timeout: Duration::from_secs(10),
        }
    }

    /// Sets the call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    async fn call(&self, req: wire::Request) -> Result<Term, RegistryError> {
        Ok(self
            .node
            .call(&Dest::name(NAME, &self.target), req.encode(), self.timeout)
            .await?)
    }

    /// `create_process`.
    pub async fn create_process(
        &self,
        ty: &str,
        id: Term,
        selector: Selector,
    ) -> Result<Record, RegistryError> {
        let reply = self
            .call(wire::Request::Create {
                key: Key::new(ty, id),
                selector,
                hops: 0,
            })
            .await?;
        record_reply(&reply)
    }

    /// `get_process`, asked of the target (`None` for `{error, not_find}`).
    pub async fn get_process(&self, ty: &str, id: Term) -> Result<Option<Record>, RegistryError> {
        let reply = self.call(wire::Request::Get(Key::new(ty, id))).await?;
        match reply.as_tuple() {
            Some([e, why]) if e.is_atom("error") && why.is_atom("not_find") => Ok(None),
            _ => record_reply(&reply).map(Some),
        }
    }

    /// `set_process`.
    pub async fn register(
        &self,
        ty: &str,
        id: Term,
        pid: Pid,
        meta: Term,
    ) -> Result<(), RegistryError> {
        let key = Key::new(ty, id);
        let reply = self
            .call(wire::Request::Set(key.clone(), pid, meta))
            .await?;
        if reply.is_atom("ok") {
            return Ok(());
        }
        match reply.as_tuple() {
            Some([e, why]) if e.is_atom("error") => match why.as_tuple() {
                Some([t, rec]) if t.is_atom("already_registered") => {
                    let (_, pid, _) = wire::record_from_term(rec)
                        .map_err(|e| RegistryError::Unexpected(e.to_string()))?;
                    Err(RegistryError::Taken { key, pid })
                }
                _ => Err(RegistryError::Refused(why.to_string())),
            },
            _ => Err(RegistryError::Unexpected(reply.to_string())),
        }
    }

    /// `del_process`.
    pub async fn unregister(&self, ty: &str, id: Term) -> Result<(), RegistryError> {
        let reply = self.call(wire::Request::Del(Key::new(ty, id))).await?;
        if reply.is_atom("ok") {
            Ok(())
        } else {
            Err(RegistryError::Unexpected(reply.to_string()))
        }
    }

    /// The target's table, optionally filtered.
    pub async fn procs(
        &self,
        ty: Option<&str>,
        node: Option<&str>,
    ) -> Result<Vec<Record>, RegistryError> {
        let reply = self
            .call(wire::Request::Procs(
                ty.map(Atom::from),
                node.map(Atom::from),
            ))
            .await?;
        let Some(items) = reply.as_list() else {
            return Err(RegistryError::Unexpected(reply.to_string()));
        };
        items
            .iter()
            .map(|r| {
                wire::record_from_term(r)
                    .map(|(key, pid, meta)| Record { key, pid, meta })
                    .map_err(|e| RegistryError::Unexpected(e.to_string()))
            })
            .collect()
    }

    /// Every server's load as the target sees it: `[{Node, #{procs, types, load, hosts}}]`.
    pub async fn loads(&self) -> Result<Term, RegistryError> {
        self.call(wire::Request::Loads).await
    }

    /// The target's counters.
    pub async fn status(&self) -> Result<Term, RegistryError> {
        self.call(wire::Request::Status).await
    }

    /// Every claim on `{ty, id}` the target holds, with its stamp (clock and owner).
    pub async fn claims(&self, ty: &str, id: Term) -> Result<Vec<state::Entry>, RegistryError> {
        let reply = self.call(wire::Request::Claims(Key::new(ty, id))).await?;
        reply
            .as_list()
            .ok_or_else(|| RegistryError::Unexpected(reply.to_string()))?
            .iter()
            .map(|t| wire::entry_from_term(t).map_err(|e| RegistryError::Unexpected(e.to_string())))
            .collect()
    }
}

fn record_reply(reply: &Term) -> Result<Record, RegistryError> {
    match reply.as_tuple() {
        Some([ok, rec]) if ok.is_atom("ok") => wire::record_from_term(rec)
            .map(|(key, pid, meta)| Record { key, pid, meta })
            .map_err(|e| RegistryError::Unexpected(e.to_string())),
        Some([e, why]) if e.is_atom("error") => Err(RegistryError::Refused(why.to_string())),
        _ => Err(RegistryError::Unexpected(reply.to_string())),
    }
}
