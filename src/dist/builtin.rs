//! Processes every node runs:
//! - `net_kernel` answers `{is_auth, Node}` with `yes`, which is what `net_adm:ping/1` asks,
//!   so Erlang nodes get `pong` from us;
//! - `cluster_events` takes `{subscribe, Pid}`, answers `{snapshot, [#{node, type}]}`, then
//!   pushes `{nodeup, Node, #{type}}` and `{nodedown, Node, #{type, reason}}` to the subscriber,
//!   which is how `cluster monitor` follows a node.

use std::collections::HashMap;

use eetf::{Pid, Term};
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, warn};

use super::node::{parse_gen_call, Dest, Mailbox, Node, NodeEvent};
use super::term::{self, atom, tuple};
use super::NodeName;

/// Starts the built-in processes on `node`.
pub fn start(node: &Node) {
    if let Some(mb) = node.register("net_kernel") {
        tokio::spawn(net_kernel(mb));
    }
    if let Some(mb) = node.register("cluster_events") {
        // Subscribe before the task starts so no event between now and then is missed.
        let events = node.monitor_nodes();
        tokio::spawn(cluster_events(mb, events));
    }
}

async fn net_kernel(mut mb: Mailbox) {
    let node = mb.node().clone();
    loop {
        let msg = tokio::select! {
            _ = node.stopped() => return,
            msg = mb.recv() => match msg { Some(m) => m, None => return },
        };
        let Some((from, request)) = parse_gen_call(&msg) else {
            debug!("net_kernel: ignoring {msg}");
            continue;
        };
        let is_auth = term::as_tuple(request)
            .is_some_and(|t| t.len() == 2 && term::as_atom(&t[0]) == Some("is_auth"));
        if is_auth {
            if let Err(e) = node.reply(&from, atom("yes")).await {
                debug!("net_kernel: reply failed: {e}");
            }
        } else {
            debug!("net_kernel: ignoring call {request}");
        }
    }
}

fn node_info(visible: bool, reason: Option<&str>) -> Term {
    let mut map = HashMap::new();
    map.insert(
        atom("type"),
        atom(if visible { "visible" } else { "hidden" }),
    );
    if let Some(r) = reason {
        map.insert(atom("reason"), atom(r));
    }
    Term::from(eetf::Map::from(map))
}

async fn cluster_events(mut mb: Mailbox, mut events: tokio::sync::broadcast::Receiver<NodeEvent>) {
    let node = mb.node().clone();
    let mut subscribers: Vec<Pid> = Vec::new();
    loop {
        tokio::select! {
            _ = node.stopped() => return,
            msg = mb.recv() => {
                let Some(msg) = msg else { return };
                match term::as_tuple(&msg) {
                    Some([verb, Term::Pid(pid)]) if term::as_atom(verb) == Some("subscribe") => {
                        let snapshot: Vec<Term> = node
                            .peers()
                            .into_iter()
                            .map(|(n, visible)| {
                                let mut m = HashMap::new();
                                m.insert(atom("node"), atom(n.as_str()));
                                m.insert(atom("type"), atom(if visible { "visible" } else { "hidden" }));
                                Term::from(eetf::Map::from(m))
                            })
                            .collect();
                        let reply = tuple(vec![atom("snapshot"), term::list(snapshot)]);
                        if mb.send(&Dest::Pid(pid.clone()), reply).await.is_ok() {
                            subscribers.push(pid.clone());
                        }
                    }
                    Some([verb, Term::Pid(pid)]) if term::as_atom(verb) == Some("unsubscribe") => {
                        subscribers.retain(|p| p != pid);
                    }
                    _ => debug!("cluster_events: ignoring {msg}"),
                }
            }
            ev = events.recv() => {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(RecvError::Lagged(n)) => {
                        warn!("cluster_events: missed {n} node events");
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                };
                let (push, gone): (Term, Option<&NodeName>) = match &ev {
                    NodeEvent::Up { node: n, visible } => (
                        tuple(vec![atom("nodeup"), atom(n.as_str()), node_info(*visible, None)]),
                        None,
                    ),
                    NodeEvent::Down { node: n, visible, reason } => (
                        tuple(vec![atom("nodedown"), atom(n.as_str()), node_info(*visible, Some(reason))]),
                        Some(n),
                    ),
                };
                if let Some(gone) = gone {
                    // Subscribers on the node that went away cannot hear anything more.
                    subscribers.retain(|p| p.node.name != gone.as_str());
                }
                let mut alive = Vec::with_capacity(subscribers.len());
                for pid in subscribers.drain(..) {
                    if mb.send(&Dest::Pid(pid.clone()), push.clone()).await.is_ok() {
                        alive.push(pid);
                    }
                }
                subscribers = alive;
            }
        }
    }
}
