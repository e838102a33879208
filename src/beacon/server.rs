//! The beacon process: registered as `beacon` and as `'Elixir.BeaconServer.Beacon'` (so an
//! Elixir node written for seed 000 calls it unchanged), it answers the wire contract in
//! [`super::wire`] from the pure [`BeaconState`] and pushes every change to subscribers.
//!
//! Node events arrive in its mailbox in order with the messages around them, each naming its
//! connection, and a registration is tied to the connection it came over, so a late nodedown
//! can never undo a newer registration. Once a second it reconciles the table with the live
//! connections as well. It never waits on a peer: replies and pushes are queued without
//! waiting, a slow subscriber is skipped and resynced, and connecting to a node registered on
//! its behalf happens in a background task that reports back.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{debug, info, warn};

use super::state::{BeaconState, Change, Link, Registration, Status};
use super::wire::{self, Request};
use crate::dist::term::{atom, list, map, tuple, Pid, Term};
use crate::dist::{Call, Ctx, Flow, From, Node, NodeEvent, NodeName, Process, Subscribers};
use crate::net::warn::{Verdict, WarnLimiter};

/// The beacon's registered names.
pub const NAMES: [&str; 2] = ["beacon", "Elixir.BeaconServer.Beacon"];
/// How often the table is reconciled with the live connections.
const RECONCILE: Duration = Duration::from_secs(1);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Starts the beacon on `node` (restarted if it is killed). Returns `false` if the names are
/// already taken.
pub fn start(node: &Node) -> bool {
    if NAMES.iter().any(|n| node.is_registered(n)) {
        return false;
    }
    node.spawn_permanent(&NAMES, Beacon::default);
    true
}

/// The beacon process.
pub struct Beacon {
    state: BeaconState,
    subscribers: Subscribers,
    /// Requests served, for `sys:get_state` (how hard clients are pulling).
    registrations: u64,
    offers: u64,
    /// One line per node per window: a node re-registering thousands of times a second must
    /// not flood the log.
    log: WarnLimiter,
    /// The `get_nodes` reply, built once per change of the table (a flood of `get_nodes` must
    /// not cost a table walk each).
    nodes_reply: Option<Term>,
    /// Subscribers that asked for the changes of some resources only.
    interests: HashMap<Pid, Vec<String>>,
}

impl Default for Beacon {
    fn default() -> Self {
        Beacon {
            state: BeaconState::default(),
            subscribers: Subscribers::default(),
            registrations: 0,
            offers: 0,
            log: WarnLimiter::new(crate::net::warn::DEFAULT_WINDOW),
            nodes_reply: None,
            interests: HashMap::new(),
        }
    }
}

/// The live connection to `node`, as the registry tracks it.
fn link(ctx: &Ctx<'_>, node: &NodeName) -> Option<Link> {
    ctx.node()
        .connection(node)
        .map(|(id, creation)| Link { id, creation })
}

impl Beacon {
    fn log_refused_subscription(&mut self, e: &crate::dist::process::SubscribeError) {
        if self.log.check("subscription refused") == Verdict::Log {
            warn!("subscription refused: {e}");
        }
    }

    fn push(&mut self, ctx: &Ctx<'_>, change: &Change) {
        self.push_also(ctx, change, None)
    }

    /// Pushes `change` to every subscriber interested in it: unfiltered ones, and those that
    /// asked for the changed node's resource (or for `was`, what it provided before).
    fn push_also(&mut self, ctx: &Ctx<'_>, change: &Change, was: Option<&str>) {
        self.nodes_reply = None;
        match change {
            Change::Offline { node, reason } => {
                if self.log.check(&format!("offline {node}")) == Verdict::Log {
                    warn!(%node, %reason, "registered node went offline")
                }
            }
            Change::Registered(e) if e.status == Status::Online => {
                debug!(node = %e.registration.node, "online")
            }
            Change::Registered(_) | Change::Report { .. } => {}
        }
        let resource = match change {
            Change::Registered(e) => Some(e.registration.resource.clone()),
            Change::Offline { node, .. } | Change::Report { node, .. } => self
                .state
                .get(node)
                .map(|e| e.registration.resource.clone()),
        };
        let interests = &self.interests;
        self.subscribers.push_where(
            ctx,
            &wire::change_term(change),
            &wire::resync_term(),
            |pid| match interests.get(pid) {
                None => true,
                Some(wanted) => wanted
                    .iter()
                    .any(|w| resource.as_deref() == Some(w.as_str()) || was == Some(w.as_str())),
            },
        );
    }

    fn register(&mut self, ctx: &Ctx<'_>, r: Registration) {
        let me = ctx.node().name().to_string();
        let target = NodeName::parse(&r.node).ok();
        let connection = target.as_ref().and_then(|n| link(ctx, n));
        let before = self.state.get(&r.node).map(|e| e.registration.clone());
        let is_new = before.as_ref() != Some(&r);
        if is_new && self.log.check(&format!("registered {}", r.node)) == Verdict::Log {
            info!(node = %r.node, resource = %r.resource, requirements = ?r.requirements, "registered");
        } else {
            debug!(node = %r.node, "registered again");
        }
        let change = if r.node == me {
            self.state.register_self(r, now_ms())
        } else {
            let pending = connection.is_none();
            let node_name = r.node.clone();
            let change = self.state.register(r, connection, now_ms());
            if pending {
                self.connect_on_behalf(ctx, &node_name, target);
            }
            change
        };
        // A node that stops providing a resource is news to that resource's subscribers too.
        let was = before.map(|b| b.resource);
        self.push_also(ctx, &change, was.as_deref());
    }

    /// A registration for a node that is not connected: connect to it in the background and
    /// hear back through the mailbox (nodeup, or `{connect_failed, Node, Reason}`).
    fn connect_on_behalf(&mut self, ctx: &Ctx<'_>, node_name: &str, target: Option<NodeName>) {
        let Some(target) = target else {
            if let Some(c) = self
                .state
                .connect_failed(node_name, "invalid_node_name", now_ms())
            {
                self.push(ctx, &c);
            }
            return;
        };
        let node = ctx.node().clone();
        let me = ctx.me();
        ctx.spawn(async move {
            if let Err(e) = node.connect(&target).await {
                me.post(tuple(vec![
                    atom("connect_failed"),
                    atom(target.as_str()),
                    crate::dist::term::binary(e.to_string()),
                ]));
            }
        });
    }

    fn reconcile(&mut self, ctx: &Ctx<'_>) {
        let live: HashMap<String, Link> = ctx
            .node()
            .connections()
            .into_iter()
            .map(|(n, id, creation)| (n.to_string(), Link { id, creation }))
            .collect();
        for c in self.state.reconcile(&live, now_ms()) {
            self.push(ctx, &c);
        }
        let expired = self.state.expire(now_ms());
        if !expired.is_empty() {
            self.nodes_reply = None;
            info!(
                count = expired.len(),
                "forgot nodes offline past their time"
            );
        }
        self.subscribers.catch_up(ctx, &wire::resync_term());
    }
}

impl Process for Beacon {
    fn name(&self) -> String {
        "beacon".into()
    }

    fn init(&mut self, ctx: &mut Ctx<'_>) {
        ctx.monitor_nodes(true);
        // The beacon lists itself, so the cluster-wide view shows every node.
        self.state.register_self(
            Registration {
                node: ctx.node().name().to_string(),
                module: "beacon".into(),
                resource: "beacon".into(),
                requirements: Vec::new(),
            },
            now_ms(),
        );
        ctx.send_after(RECONCILE, atom("reconcile"));
        info!(node = %ctx.node().name(), "beacon ready");
    }

    fn handle_call(&mut self, ctx: &mut Ctx<'_>, from: &From, request: Term) -> Call {
        let request = match Request::parse(&request) {
            Ok(r) => r,
            Err(e) => {
                debug!(caller = %from.pid.node, "bad beacon request: {e}");
                return Call::Reply(e.to_term());
            }
        };
        Call::Reply(match request {
            Request::Register(r) => {
                self.registrations += 1;
                if self.state.is_full_for(&r.node) {
                    if self.log.check("registry full") == Verdict::Log {
                        warn!(node = %r.node, "registry full: refusing a registration for a new node");
                    }
                    return Call::Reply(tuple(vec![atom("error"), atom("too_many_nodes")]));
                }
                self.register(ctx, r);
                atom("ok")
            }
            Request::GetRequirements(n) => {
                self.offers += 1;
                wire::offer_reply(self.state.offer(&n))
            }
            Request::GetNodes => {
                // A caller whose connection is already backed up gets a short refusal instead
                // of the whole table on top (a peer that stops reading must not make us queue
                // megabytes per call). It is told, never left to time out: a node forming a
                // mesh under load asks again.
                let caller = NodeName::parse(from.pid.node.as_str()).ok();
                if caller.is_some_and(|n| n != *ctx.node().name() && ctx.node().is_busy(&n)) {
                    return Call::Reply(tuple(vec![atom("error"), atom("busy")]));
                }
                let state = &self.state;
                self.nodes_reply
                    .get_or_insert_with(|| list(state.nodes().map(wire::entry_term).collect()))
                    .clone()
            }
            Request::SubscribeTo(pid, resources) => {
                match self.subscribers.add(ctx, pid.clone()) {
                    Ok(()) => {
                        // Entries of subscribers since gone are dropped now and then.
                        if self.interests.len() >= 2 * self.subscribers.len() + 64 {
                            let live: std::collections::HashSet<&Pid> =
                                self.subscribers.pids().collect();
                            self.interests.retain(|p, _| live.contains(p));
                        }
                        self.interests.insert(pid, resources);
                        atom("ok")
                    }
                    Err(e) => {
                        self.log_refused_subscription(&e);
                        e.to_term()
                    }
                }
            }
            Request::Subscribe(pid) => match self.subscribers.add(ctx, pid) {
                Ok(()) => atom("ok"),
                Err(e) => {
                    self.log_refused_subscription(&e);
                    e.to_term()
                }
            },
            Request::Leave(n) => {
                if from.pid.node.as_str() != n {
                    return Call::Reply(tuple(vec![atom("error"), atom("not_allowed")]));
                }
                match self.state.leave(&n, now_ms()) {
                    Some(c) => {
                        info!(node = %n, "stopping cleanly");
                        self.push(ctx, &c);
                        atom("ok")
                    }
                    None => tuple(vec![atom("error"), atom("not_found")]),
                }
            }
            Request::Report(n, report) => {
                if from.pid.node.as_str() != n {
                    return Call::Reply(tuple(vec![atom("error"), atom("not_allowed")]));
                }
                match self.state.report(&n, report) {
                    Some(c) => {
                        self.push(ctx, &c);
                        atom("ok")
                    }
                    None if self.state.get(&n).is_some() => atom("ok"),
                    None => tuple(vec![atom("error"), atom("not_found")]),
                }
            }
            Request::Forget(n) => match self.state.get(&n).map(|e| e.status) {
                None => tuple(vec![atom("error"), atom("not_found")]),
                Some(Status::Online) => tuple(vec![atom("error"), atom("online")]),
                Some(Status::Offline) => {
                    self.state.forget(&n);
                    self.nodes_reply = None;
                    info!(node = %n, "forgotten");
                    atom("ok")
                }
            },
        })
    }

    fn handle_info(&mut self, ctx: &mut Ctx<'_>, msg: Term) -> Flow {
        if self.subscribers.on_down(&msg) {
            return Flow::Continue;
        }
        if let Some(ev) = NodeEvent::from_term(&msg) {
            match ev {
                NodeEvent::Up {
                    node, connection, ..
                } => {
                    // The event's connection, with the incarnation its handshake named.
                    let link = link(ctx, &node).filter(|l| l.id >= connection);
                    let change = link.and_then(|l| self.state.node_up(node.as_str(), l, now_ms()));
                    if let Some(c) = change {
                        self.push(ctx, &c);
                    }
                }
                NodeEvent::Down {
                    node,
                    connection,
                    reason,
                    ..
                } => {
                    // Subscribers on that node can hear nothing more.
                    self.subscribers.remove_node(node.as_str());
                    if let Some(c) =
                        self.state
                            .node_down(node.as_str(), connection, &reason, now_ms())
                    {
                        self.push(ctx, &c);
                    }
                }
            }
            return Flow::Continue;
        }
        if msg.is_atom("reconcile") {
            self.reconcile(ctx);
            ctx.send_after(RECONCILE, atom("reconcile"));
            for (key, n) in self.log.due() {
                info!(
                    "{key}: {n} more in the last {}s",
                    self.log.window().as_secs()
                );
            }
            return Flow::Continue;
        }
        match msg.as_tuple() {
            Some([k, node, why]) if k.is_atom("connect_failed") => {
                if let Some(n) = node.as_atom() {
                    let reason = format!("unreachable: {}", why.as_text().unwrap_or_default());
                    if let Some(c) = self.state.connect_failed(n, &reason, now_ms()) {
                        self.push(ctx, &c);
                    }
                }
            }
            // Also accepted as a plain message, like cluster_events.
            Some([k, Term::Pid(pid)]) if k.is_atom("subscribe") => {
                if let Err(e) = self.subscribers.add(ctx, pid.clone()) {
                    self.log_refused_subscription(&e);
                }
            }
            _ => debug!("beacon: ignoring {msg:?}"),
        }
        Flow::Continue
    }

    fn state(&self) -> Term {
        map(vec![
            (
                "nodes",
                list(self.state.nodes().map(wire::entry_term).collect()),
            ),
            ("subscribers", Term::from(self.subscribers.len() as u64)),
            ("registrations", Term::from(self.registrations)),
            ("get_requirements", Term::from(self.offers)),
        ])
    }
}
