//! The API for Rust callers: a [`Scope`] handle on a scope process of this node, and the
//! functions that find or start one. Writes are calls to the process, as in OTP; reads take
//! the table's read lock and copy, so they never wait for the process or a peer.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::dist::node::Dest;
use crate::dist::process::SpawnError;
use crate::dist::term::{atom, tuple, Atom, Pid, Ref, Term};
use crate::dist::{CallError, Mailbox, Node};

use super::state::{self, Shared, Table};
use super::{shared_key, wire, PgScope, DEFAULT_SCOPE};

/// How long a handle waits for its local scope process to answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a `pg` operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// No scope of that name runs on this node (the node is hidden, or it was never started).
    #[error("no pg scope {0} runs on this node")]
    NotStarted(String),
    /// A scope name that cannot be an atom.
    #[error("bad pg scope name {0:?}: it must be 1 to 255 characters")]
    BadName(String),
    /// The scope's name is registered by another process.
    #[error("cannot start pg scope: {0}")]
    Spawn(#[from] SpawnError),
    /// Only processes of this node can join or leave through it.
    #[error("{0} is not a process of this node")]
    NotLocal(String),
    /// The scope process did not answer.
    #[error("pg scope {scope}: {source}")]
    Call {
        /// The scope.
        scope: String,
        /// Why.
        source: CallError,
    },
    /// The scope process answered something unexpected.
    #[error("pg scope {scope} answered {reply}")]
    Unexpected {
        /// The scope.
        scope: String,
        /// The answer.
        reply: String,
    },
}

/// A handle on a scope of this node: joins and leaves go through the scope process; reads
/// are local reads of its table. Cheap to clone.
#[derive(Clone)]
pub struct Scope {
    node: Node,
    name: Atom,
    pub(super) table: Shared,
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("node", &self.node.name().as_str())
            .field("name", &self.name)
            .finish()
    }
}

/// A change to a watched scope or group (`{Ref, join | leave, Group, Pids}`), as a watcher's
/// mailbox receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeEvent {
    /// The watch it belongs to.
    pub reference: Ref,
    /// Joined (true) or left.
    pub joined: bool,
    /// The group.
    pub group: Term,
    /// Who.
    pub pids: Vec<Pid>,
}

impl ScopeEvent {
    /// Reads a notification; `None` for any other message.
    pub fn from_term(msg: &Term) -> Option<ScopeEvent> {
        let [Term::Ref(r), verb, group, pids] = msg.as_tuple()? else {
            return None;
        };
        let joined = match verb.as_atom()? {
            "join" => true,
            "leave" => false,
            _ => return None,
        };
        let pids = pids
            .as_list()?
            .iter()
            .map(|p| p.as_pid().cloned())
            .collect::<Option<Vec<_>>>()?;
        Some(ScopeEvent {
            reference: r.clone(),
            joined,
            group: group.clone(),
            pids,
        })
    }
}

/// The default scope (`pg`) of `node`; [`PgError::NotStarted`] on a hidden node.
pub fn default_scope(node: &Node) -> Result<Scope, PgError> {
    scope(node, DEFAULT_SCOPE)
}

/// The scope `name` of `node`, if it was started.
pub fn scope(node: &Node, name: &str) -> Result<Scope, PgError> {
    node.shared::<RwLock<Table>>(&shared_key(name))
        .map(|table| Scope {
            node: node.clone(),
            name: Atom::from(name),
            table,
        })
        .ok_or_else(|| PgError::NotStarted(name.to_owned()))
}

/// Starts scope `name` on `node` (as `pg:start/1` does), kept running for the node's life
/// (restarted, empty, if it crashes). Starting a scope that runs already returns it. On a
/// hidden node the scope only has local members: no scope discovers a hidden node, as in OTP.
pub fn start_scope(node: &Node, name: &str) -> Result<Scope, PgError> {
    if name.is_empty() || name.chars().count() > 255 {
        return Err(PgError::BadName(name.to_owned()));
    }
    let key = shared_key(name);
    let table = node.with_shared(|shared| {
        if let Some(t) = shared.get(&key) {
            return t
                .clone()
                .downcast::<RwLock<Table>>()
                .map_err(|_| PgError::NotStarted(name.to_owned()));
        }
        let table: Shared = Arc::new(RwLock::new(Table::default()));
        let (atom_name, t) = (Atom::from(name), table.clone());
        node.start_permanent(&[name], move || PgScope::new(atom_name.clone(), t.clone()))?;
        shared.insert(key.clone(), table.clone());
        Ok(table)
    })?;
    Ok(Scope {
        node: node.clone(),
        name: Atom::from(name),
        table,
    })
}

impl Scope {
    /// The scope's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    fn dest(&self) -> Dest {
        Dest::Name {
            name: self.name.clone(),
            node: self.node.name().clone(),
        }
    }

    fn check_local(&self, pids: &[Pid]) -> Result<(), PgError> {
        match pids
            .iter()
            .find(|p| p.node.as_str() != self.node.name().as_str())
        {
            Some(p) => Err(PgError::NotLocal(Term::Pid(p.clone()).to_string())),
            None => Ok(()),
        }
    }

    async fn call(&self, mb: Option<&mut Mailbox>, request: Term) -> Result<Term, PgError> {
        let to = self.dest();
        let reply = match mb {
            Some(mb) => mb.call(&to, request, CALL_TIMEOUT).await,
            None => self.node.call(&to, request, CALL_TIMEOUT).await,
        };
        reply.map_err(|source| PgError::Call {
            scope: self.name().to_owned(),
            source,
        })
    }

    fn unexpected(&self, reply: &Term) -> PgError {
        PgError::Unexpected {
            scope: self.name().to_owned(),
            reply: crate::dist::term::Truncated(reply, 200).to_string(),
        }
    }

    /// `pg:join/3`: `pids` (processes of this node) join `group`, on every node of the scope.
    /// A process may join a group more than once. When this returns, the reads here see it.
    pub async fn join(&self, group: Term, pids: Vec<Pid>) -> Result<(), PgError> {
        self.check_local(&pids)?;
        let req = tuple(vec![atom("join_local"), group, wire::pid_list(&pids)]);
        let reply = self.call(None, req).await?;
        if reply.is_atom("ok") {
            Ok(())
        } else {
            Err(self.unexpected(&reply))
        }
    }

    /// `pg:leave/3`: one membership of each of `pids` in `group` ends; false if none of them
    /// was a member (OTP's `not_joined`).
    pub async fn leave(&self, group: Term, pids: Vec<Pid>) -> Result<bool, PgError> {
        self.check_local(&pids)?;
        let req = tuple(vec![atom("leave_local"), group, wire::pid_list(&pids)]);
        let reply = self.call(None, req).await?;
        match reply.as_atom() {
            Some("ok") => Ok(true),
            Some("not_joined") => Ok(false),
            _ => Err(self.unexpected(&reply)),
        }
    }

    /// Every member of `group` on every node, newest first (a local read).
    pub fn get_members(&self, group: &Term) -> Vec<Pid> {
        state::read(&self.table).members(group)
    }

    /// The members of `group` on this node (a local read).
    pub fn get_local_members(&self, group: &Term) -> Vec<Pid> {
        state::read(&self.table).local_members(group)
    }

    /// Every group with a member anywhere (a local read).
    pub fn which_groups(&self) -> Vec<Term> {
        state::read(&self.table).groups()
    }

    /// Every group with a member on this node (a local read).
    pub fn which_local_groups(&self) -> Vec<Term> {
        state::read(&self.table).local_groups()
    }

    /// `pg:monitor_scope/1` for `watcher`: every group with its members now, and a reference
    /// under which `watcher` then receives every change (see [`ScopeEvent`]).
    pub async fn monitor_scope(
        &self,
        watcher: &mut Mailbox,
    ) -> Result<(Ref, Vec<(Term, Vec<Pid>)>), PgError> {
        let reply = self.call(Some(watcher), atom("monitor")).await?;
        let parsed = (|| {
            let [Term::Ref(r), groups] = reply.as_tuple()? else {
                return None;
            };
            let groups = groups
                .map_pairs()?
                .map(|(g, pids)| Some((g.clone(), pids_of(pids)?)))
                .collect::<Option<Vec<_>>>()?;
            Some((r.clone(), groups))
        })();
        parsed.ok_or_else(|| self.unexpected(&reply))
    }

    /// `pg:monitor/2` for `watcher`: the members of `group` now, and a reference under which
    /// `watcher` then receives its changes.
    pub async fn monitor(
        &self,
        watcher: &mut Mailbox,
        group: Term,
    ) -> Result<(Ref, Vec<Pid>), PgError> {
        let reply = self
            .call(Some(watcher), tuple(vec![atom("monitor"), group]))
            .await?;
        match reply.as_tuple() {
            Some([Term::Ref(r), pids]) => pids_of(pids)
                .map(|p| (r.clone(), p))
                .ok_or_else(|| self.unexpected(&reply)),
            _ => Err(self.unexpected(&reply)),
        }
    }

    /// `pg:demonitor/2`: ends a watch; false if it was not one. Notifications already queued
    /// stay queued.
    pub async fn demonitor(&self, reference: Ref) -> Result<bool, PgError> {
        let reply = self
            .call(None, tuple(vec![atom("demonitor"), Term::Ref(reference)]))
            .await?;
        Ok(reply.is_atom("ok"))
    }
}

fn pids_of(t: &Term) -> Option<Vec<Pid>> {
    t.as_list()?.iter().map(|p| p.as_pid().cloned()).collect()
}
