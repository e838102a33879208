//! The gate table of seed 000: a `gate_manager` node runs a process `gate_manager` that gates
//! register with (`{register_gate, Node}` → `ok`) and that answers `get_gates` with the list of
//! gate nodes. A gate that goes down is dropped from the table.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

use crate::dist::term::{self, atom, tuple};
use crate::dist::{parse_gen_call, Dest, Node, NodeEvent, NodeName};

/// Starts the `gate_manager` process on `node`.
pub fn start_manager(node: &Node) {
    let Some(mut mb) = node.register("gate_manager") else {
        warn!("gate_manager is already registered on this node");
        return;
    };
    let mut events = node.monitor_nodes();
    let node = node.clone();
    tokio::spawn(async move {
        let mut gates: BTreeSet<String> = BTreeSet::new();
        loop {
            tokio::select! {
                _ = node.stopped() => return,
                msg = mb.recv() => {
                    let Some(msg) = msg else { return };
                    let Some((from, req)) = parse_gen_call(&msg) else { continue };
                    let reply = match term::as_tuple(req) {
                        Some([verb, gate]) if term::as_atom(verb) == Some("register_gate") => {
                            match term::as_atom(gate) {
                                Some(g) => {
                                    info!(gate = g, "gate registered");
                                    gates.insert(g.to_owned());
                                    atom("ok")
                                }
                                None => tuple(vec![atom("error"), atom("badarg")]),
                            }
                        }
                        _ if term::as_atom(req) == Some("get_gates") => {
                            term::list(gates.iter().map(|g| atom(g)).collect())
                        }
                        _ => tuple(vec![atom("error"), atom("unknown_request")]),
                    };
                    let _ = node.reply(&from, reply).await;
                }
                ev = events.recv() => match ev {
                    Ok(NodeEvent::Down { node: n, .. }) => {
                        if gates.remove(n.as_str()) {
                            info!(gate = %n, "gate went down");
                        }
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                }
            }
        }
    });
}

/// A gate registers itself with one gate_manager node.
pub async fn register_gate(node: &Node, manager: &NodeName) {
    let req = tuple(vec![atom("register_gate"), atom(node.name().as_str())]);
    match node
        .call(
            &Dest::name("gate_manager", manager),
            req,
            Duration::from_secs(5),
        )
        .await
    {
        Ok(_) => info!(%manager, "registered with gate_manager"),
        Err(e) => warn!(%manager, "cannot register with gate_manager: {e}"),
    }
}

/// `get_gates` on a gate_manager node.
pub async fn get_gates(
    node: &Node,
    manager: &NodeName,
) -> Result<Vec<String>, crate::dist::CallError> {
    let reply = node
        .call(
            &Dest::name("gate_manager", manager),
            atom("get_gates"),
            Duration::from_secs(5),
        )
        .await?;
    Ok(match reply {
        eetf::Term::List(l) => l
            .elements
            .iter()
            .filter_map(term::as_atom)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    })
}
