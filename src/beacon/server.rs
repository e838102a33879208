//! The beacon process: registered as `beacon` and as `'Elixir.BeaconServer.Beacon'` (so an
//! Elixir node written for seed 000 calls it unchanged), it answers the wire contract in
//! [`super::wire`] from the pure [`BeaconState`], marks nodes offline on nodedown, and pushes
//! every change to subscribers.

use std::time::{SystemTime, UNIX_EPOCH};

use eetf::{Pid, Term};
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, info, warn};

use super::state::{BeaconState, Change, Status};
use super::wire::{self, Request};
use crate::dist::term::{self, atom, tuple};
use crate::dist::{parse_gen_call, Dest, Mailbox, Node, NodeEvent};

/// The beacon's registered names.
pub const NAMES: [&str; 2] = ["beacon", "Elixir.BeaconServer.Beacon"];

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Registers the beacon process on `node` and runs it until the node stops. Returns `false`
/// if the names are already taken.
pub fn start(node: &Node) -> bool {
    let Some(mb) = node.register(NAMES[0]) else {
        return false;
    };
    if !node.register_alias(&mb, NAMES[1]) {
        return false;
    }
    let events = node.monitor_nodes();
    tokio::spawn(serve(mb, events));
    true
}

struct Beacon {
    mb: Mailbox,
    state: BeaconState,
    subscribers: Vec<Pid>,
}

impl Beacon {
    async fn push(&mut self, change: &Change) {
        let msg = wire::change_term(change);
        let mut alive = Vec::with_capacity(self.subscribers.len());
        for pid in std::mem::take(&mut self.subscribers) {
            if self
                .mb
                .send(&Dest::Pid(pid.clone()), msg.clone())
                .await
                .is_ok()
            {
                alive.push(pid);
            }
        }
        self.subscribers = alive;
    }

    async fn handle(&mut self, request: Request) -> Term {
        match request {
            Request::Register(r) => {
                info!(node = %r.node, resource = %r.resource, requirements = ?r.requirements, "registered");
                let change = self.state.register(r, now_ms());
                self.push(&change).await;
                atom("ok")
            }
            Request::GetRequirements(n) => wire::offer_reply(self.state.offer(&n)),
            Request::GetNodes => term::list(self.state.nodes().map(wire::entry_term).collect()),
            Request::Subscribe(pid) => {
                if !self.subscribers.contains(&pid) {
                    self.subscribers.push(pid);
                }
                atom("ok")
            }
        }
    }

    async fn node_down(&mut self, node: &str, reason: &str) {
        // Subscribers on that node can hear nothing more.
        self.subscribers.retain(|p| p.node.name != node);
        if let Some(change) = self.state.node_down(node, reason, now_ms()) {
            warn!(%node, %reason, "registered node went offline");
            self.push(&change).await;
        }
    }

    /// After missing node events, mark offline whatever is no longer connected.
    async fn reconcile(&mut self) {
        let node = self.mb.node().clone();
        let connected = node.connected(true);
        let gone: Vec<String> = self
            .state
            .nodes()
            .filter(|e| e.status == Status::Online)
            .map(|e| e.registration.node.clone())
            .filter(|n| n != node.name().as_str() && !connected.iter().any(|c| c.as_str() == n))
            .collect();
        for n in gone {
            self.node_down(&n, "noconnection").await;
        }
    }
}

async fn serve(mb: Mailbox, mut events: tokio::sync::broadcast::Receiver<NodeEvent>) {
    let node = mb.node().clone();
    let mut state = BeaconState::new();
    // The beacon lists itself, so the cluster-wide view shows every node, the beacon included.
    state.register(
        super::state::Registration {
            node: node.name().to_string(),
            module: "beacon".into(),
            resource: "beacon".into(),
            requirements: Vec::new(),
        },
        now_ms(),
    );
    let mut beacon = Beacon {
        mb,
        state,
        subscribers: Vec::new(),
    };
    info!(node = %node.name(), "beacon ready");
    loop {
        tokio::select! {
            _ = node.stopped() => return,
            msg = beacon.mb.recv() => {
                let Some(msg) = msg else { return };
                if let Some((from, req)) = parse_gen_call(&msg) {
                    let reply = match Request::parse(req) {
                        Ok(request) => beacon.handle(request).await,
                        Err(e) => {
                            warn!(caller = %from.pid.node.name, "bad beacon request: {e}");
                            tuple(vec![atom("error"), tuple(vec![atom("badarg"), Term::from(eetf::ByteList::from(e.0.as_str()))])])
                        }
                    };
                    if let Err(e) = node.reply(&from, reply).await {
                        debug!("beacon reply failed: {e}");
                    }
                } else if let Ok(Request::Subscribe(pid)) = Request::parse(&msg) {
                    // Also accepted as a plain message, like cluster_events.
                    beacon.handle(Request::Subscribe(pid)).await;
                } else {
                    debug!("beacon: ignoring {msg}");
                }
            }
            ev = events.recv() => match ev {
                Ok(NodeEvent::Down { node: n, reason, .. }) => beacon.node_down(n.as_str(), &reason).await,
                Ok(NodeEvent::Up { .. }) => {}
                Err(RecvError::Lagged(missed)) => {
                    warn!("beacon missed {missed} node events; reconciling with live connections");
                    beacon.reconcile().await;
                }
                Err(RecvError::Closed) => return,
            },
        }
    }
}
