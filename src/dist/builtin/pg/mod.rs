//! `pg`: OTP's process groups, as a scope process that speaks OTP 25's `pg` protocol, so
//! `cluster` nodes and Erlang/Elixir nodes share groups: a process that joins a group on
//! either kind of node is a member everywhere, and leaves everywhere when it leaves, exits,
//! or its node goes down.
//!
//! A scope is a process registered under the scope's name (the default scope is `pg`; named
//! scopes are independent overlays). Every node runs the default scope when it is visible;
//! [`start_scope`] starts others. A [`Scope`] handle joins and leaves through the process (a
//! call, as `pg:join/3` is) and reads members from a table the process shares, with no
//! message round trip (OTP reads its ETS table).
//!
//! Protocol facts, verified against OTP 25.2.3 (kernel 8.5.3) with a spy scope on a real
//! node and by the interop tests (no OTP code is copied):
//! - A scope discovers the scopes of its cluster by sending `{discover, ScopePid}` to
//!   `{Scope, Node}` of every visible node when it starts and on every visible nodeup, plainly
//!   and with `noconnect`. Hidden nodes take no part (`nodes()` and `monitor_nodes` only give
//!   visible ones). Nodes that do not run the scope drop the message.
//! - A scope that receives `{discover, Peer}` answers with the cast
//!   `{'$gen_cast', {sync, Self, [{Group, [Pid]}]}}` (each group once, its local members with
//!   repeats) and, if `Peer` is new to it, monitors `Peer` and sends `{discover, Self}` back
//!   to the pid. Both sides end up monitoring each other's scope and holding each other's
//!   members. A `sync` replaces everything the sender announced before.
//! - Changes go to every known peer scope pid, plainly with `noconnect`:
//!   `{join, Self, Group, PidOrPids}` (the argument of `pg:join` as given: a pid or a list)
//!   and `{leave, Self, PidOrPids, [Group]}`. When a member exits, its scope sends
//!   `{leave, Self, Pid, Groups}` with every group it was in, repeats kept (a pid that joined
//!   `g` twice is sent `[g, g]`). A pid may be a member twice; a leave removes one occurrence.
//! - A peer's members go when the monitor of its scope fires (`DOWN`, `noconnection` when its
//!   node goes down); nodedown itself is ignored.
//! - The local API is `gen_server:call(Scope, {join_local, Group, PidOrPids})` → `ok` and
//!   `{leave_local, Group, PidOrPids}` → `ok | not_joined`, and since OTP 25.1 `monitor` →
//!   `{Ref, #{Group => Pids}}`, `{monitor, Group}` → `{Ref, Pids}` and `{demonitor, Ref}` →
//!   `ok | false`, with `{Ref, join | leave, Group, Pids}` sent to watchers. We answer all of
//!   them, from any caller; the pids of a join or leave must be ours.
//!
//! Where we differ from OTP, on purpose: malformed or lying peer messages are refused whole
//! and logged at debug level instead of crashing the scope (see the `state` and `wire`
//! modules), an unknown call gets `{error, {unknown_call, Req}}` instead of a crash, and a
//! peer whose connection refuses a message (far behind) is resynced with a whole `sync` once
//! it has caught up, where OTP's send would block the scope.

mod scope;
mod state;
mod wire;

pub use scope::{default_scope, scope, start_scope, PgError, Scope, ScopeEvent};

use std::time::Duration;

use tracing::debug;

use crate::dist::node::{Dest, NodeEvent, SendError};
use crate::dist::process::unknown_call;
use crate::dist::term::{atom, tuple, Atom, Pid, Ref, Term, Truncated};
use crate::dist::{Call, Ctx, Flow, From, Node, NodeName, Process};

use state::{Effects, Sent, Shared, State};
use wire::{PeerMsg, PidOrPids};

/// The default scope's name, which is also its registered name (as in OTP).
pub const DEFAULT_SCOPE: &str = "pg";
/// How often a scope with a lagging peer checks whether it has caught up.
const CATCH_UP_EVERY: Duration = Duration::from_millis(500);
/// The tag of that check's timer message, `{'$pg_catch_up', Ref}`.
const CATCH_UP: &str = "$pg_catch_up";

fn shared_key(scope: &str) -> String {
    format!("pg/{scope}")
}

/// The scope process, started by [`start_scope`] (and, for the default scope, by the node).
pub struct PgScope {
    name: Atom,
    table: Shared,
    state: Option<State>,
    /// The pending catch-up timer's tag, so only our own timer triggers a check.
    catch_up: Option<Ref>,
}

impl PgScope {
    fn new(name: Atom, table: Shared) -> PgScope {
        PgScope {
            name,
            table,
            state: None,
            catch_up: None,
        }
    }
}

/// [`Effects`] through a process context.
struct Fx<'a, 'b>(&'a Ctx<'b>);

impl Effects for Fx<'_, '_> {
    fn monitor(&mut self, pid: &Pid) -> Option<Ref> {
        self.0.monitor(&Dest::Pid(pid.clone())).ok()
    }

    fn demonitor(&mut self, reference: &Ref) {
        self.0.demonitor(reference)
    }

    fn send(&mut self, to: &Pid, msg: Term) -> Sent {
        match self.0.send_noconnect(&Dest::Pid(to.clone()), msg) {
            Ok(()) => Sent::Done,
            Err(SendError::Busy(_)) => Sent::Busy,
            Err(e) => {
                debug!(to = %Term::Pid(to.clone()), "pg: not sent: {e}");
                Sent::Failed
            }
        }
    }
}

/// The pids of a `join_local`/`leave_local`, which must all be on this node; the first that
/// is not (or is not a pid) otherwise.
fn local_pids(node: &Node, t: &Term) -> Result<PidOrPids, Term> {
    let pids = PidOrPids::from_term(t).map_err(|_| match t {
        Term::List(items) => items
            .iter()
            .find(|i| i.as_pid().is_none())
            .cloned()
            .unwrap_or_else(|| t.clone()),
        _ => t.clone(),
    })?;
    match pids
        .pids()
        .iter()
        .find(|p| p.node.as_str() != node.name().as_str())
    {
        Some(p) => Err(Term::Pid(p.clone())),
        None => Ok(pids),
    }
}

fn nolocal(bad: Term) -> Term {
    tuple(vec![atom("error"), tuple(vec![atom("nolocal"), bad])])
}

/// Whether two pids name the same process (a local pid's creation follows the node's).
fn same_process(a: &Pid, b: &Pid) -> bool {
    a.node == b.node && a.id == b.id && a.serial == b.serial
}

impl PgScope {
    fn discover_on(&self, ctx: &Ctx<'_>, node: &NodeName, me: &Pid) {
        let _ = ctx.send_noconnect(
            &Dest::Name {
                name: self.name.clone(),
                node: node.clone(),
            },
            wire::discover(me),
        );
    }

    fn peer_msg(&mut self, ctx: &Ctx<'_>, msg: Result<PeerMsg, wire::Malformed>) {
        let Some(st) = self.state.as_mut() else {
            return;
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                debug!(scope = %self.name, "pg: malformed peer message ignored: {e}");
                return;
            }
        };
        let fx = &mut Fx(ctx);
        let done = match &msg {
            PeerMsg::Discover { peer } => st.discover(fx, peer),
            PeerMsg::Sync { peer, groups } => st.sync(fx, peer, groups.clone()),
            PeerMsg::Join { peer, group, pids } => st.remote_join(fx, peer, group, pids),
            PeerMsg::Leave { peer, pids, groups } => st.remote_leave(fx, peer, pids, groups),
        };
        if let Err(e) = done {
            let peer = Term::Pid(msg.peer().clone());
            debug!(scope = %self.name, %peer, "pg: peer message ignored: {e}");
        }
    }

    fn down(&mut self, ctx: &Ctx<'_>, reference: &Ref, who: &Term) {
        let Some(st) = self.state.as_mut() else {
            return;
        };
        // A DOWN is only believed for the process we monitored with that reference.
        let Some(pid) = who.as_pid() else {
            return;
        };
        if !st.monitors(reference, |p| same_process(p, pid)) {
            debug!(scope = %self.name, "pg: DOWN for a monitor that is not ours ignored");
            return;
        }
        st.down(&mut Fx(ctx), reference);
    }

    /// Resyncs the lagging peers whose connections have room again, and checks again later
    /// if some still lag.
    fn check_lagging(&mut self, ctx: &Ctx<'_>) {
        if let Some(st) = self.state.as_mut() {
            let node = ctx.node().clone();
            st.catch_up(&mut Fx(ctx), |p| {
                NodeName::parse(p.node.as_str()).is_ok_and(|n| node.is_busy(&n))
            });
        }
        self.schedule_catch_up(ctx);
    }

    /// Starts the catch-up timer if a peer lags and none runs.
    fn schedule_catch_up(&mut self, ctx: &Ctx<'_>) {
        if self.catch_up.is_none() && self.state.as_ref().is_some_and(State::any_lagging) {
            let tag = ctx.node().make_ref();
            ctx.send_after(
                CATCH_UP_EVERY,
                tuple(vec![atom(CATCH_UP), Term::Ref(tag.clone())]),
            );
            self.catch_up = Some(tag);
        }
    }
}

impl Process for PgScope {
    fn name(&self) -> String {
        self.name.as_str().to_owned()
    }

    fn init(&mut self, ctx: &mut Ctx<'_>) {
        ctx.monitor_nodes(true);
        let me = ctx.pid();
        self.state = Some(State::new(me.clone(), self.table.clone()));
        // Started, or restarted after a crash: discover the scopes of the nodes already here.
        for (n, visible) in ctx.node().peers() {
            if visible {
                self.discover_on(ctx, &n, &me);
            }
        }
    }

    fn handle_call(&mut self, ctx: &mut Ctx<'_>, from: &From, request: Term) -> Call {
        let Some(st) = self.state.as_mut() else {
            return unknown_call(request);
        };
        let fx = &mut Fx(ctx);
        let reply = match request.as_tuple() {
            Some([k, group, pids]) if k.is_atom("join_local") => {
                match local_pids(ctx.node(), pids) {
                    Ok(pids) => {
                        st.join_local(fx, group, &pids);
                        atom("ok")
                    }
                    Err(bad) => nolocal(bad),
                }
            }
            Some([k, group, pids]) if k.is_atom("leave_local") => {
                match local_pids(ctx.node(), pids) {
                    Ok(pids) if st.leave_local(fx, group, &pids) => atom("ok"),
                    Ok(_) => atom("not_joined"),
                    Err(bad) => nolocal(bad),
                }
            }
            Some([k, group]) if k.is_atom("monitor") => st
                .watch_group(fx, &from.pid, group)
                .unwrap_or_else(|| tuple(vec![atom("error"), atom("noproc")])),
            Some([k, Term::Ref(r)]) if k.is_atom("demonitor") => st.unwatch(fx, r),
            _ if request.is_atom("monitor") => st
                .watch_scope(fx, &from.pid)
                .unwrap_or_else(|| tuple(vec![atom("error"), atom("noproc")])),
            _ => return unknown_call(request),
        };
        self.schedule_catch_up(ctx);
        Call::Reply(reply)
    }

    fn handle_cast(&mut self, ctx: &mut Ctx<'_>, msg: Term) -> Flow {
        match PeerMsg::from_cast(&msg) {
            Some(parsed) => self.peer_msg(ctx, parsed),
            None => {
                let msg = Truncated(&msg, 200);
                debug!(scope = %self.name, "pg: unexpected cast ignored: {msg}");
            }
        }
        self.schedule_catch_up(ctx);
        Flow::Continue
    }

    fn handle_info(&mut self, ctx: &mut Ctx<'_>, msg: Term) -> Flow {
        if let Some(ev) = NodeEvent::from_term(&msg) {
            // Peers' members go with their scope's DOWN, which a nodedown always brings.
            if let NodeEvent::Up {
                node,
                visible: true,
                ..
            } = ev
            {
                if let Some(me) = self.state.as_ref().map(|s| s.me().clone()) {
                    self.discover_on(ctx, &node, &me);
                }
            }
            return Flow::Continue;
        }
        if let Some([k, Term::Ref(tag)]) = msg.as_tuple() {
            if k.is_atom(CATCH_UP) {
                if self.catch_up.as_ref() == Some(tag) {
                    self.catch_up = None;
                    self.check_lagging(ctx);
                }
                return Flow::Continue;
            }
        }
        match msg.as_tuple() {
            Some([k, Term::Ref(r), kind, who, _])
                if k.is_atom("DOWN") && kind.is_atom("process") =>
            {
                self.down(ctx, r, who);
            }
            _ => match PeerMsg::from_info(&msg) {
                Some(parsed) => self.peer_msg(ctx, parsed),
                None => {
                    let msg = Truncated(&msg, 200);
                    debug!(scope = %self.name, "pg: unexpected message ignored: {msg}");
                }
            },
        }
        self.schedule_catch_up(ctx);
        Flow::Continue
    }

    fn terminate(&mut self, _ctx: &mut Ctx<'_>, _reason: &Term) {
        // As OTP's table goes with its scope process: members do not outlive it.
        if let Some(st) = self.state.as_mut() {
            st.clear();
        }
    }

    fn state(&self) -> Term {
        self.state
            .as_ref()
            .map_or_else(|| atom("starting"), State::summary)
    }
}

/// Starts the default scope on `node` (from [`super::start`]).
pub(crate) fn start_default(node: &Node) {
    if let Err(e) = start_scope(node, DEFAULT_SCOPE) {
        tracing::warn!("cannot start the default pg scope: {e}");
    }
}

#[cfg(test)]
mod tests;
