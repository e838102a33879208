//! Running a role: what `cluster start --role R` does after the node is up (seed 000).
//!
//! A role node registers `{Node, Module, Resource, [Requirement]}` with the beacon, then waits
//! until every requirement has an online provider and connects to those providers. It does not
//! poll: the beacon pushes every registration and status change, and the node re-evaluates on
//! each. When the beacon goes down and comes back (or a new beacon starts), the node registers
//! again on its own. With `mesh = "full"` it also connects to every online node the beacon
//! knows, so the cluster is one full mesh as in Erlang; with `mesh = "requirements"` it keeps to
//! the beacon and its providers.
//!
//! Built-in behaviours: `gate_manager` keeps the table of gates (`{register_gate, Node}`,
//! `get_gates`) and `gate` registers itself with its gate_managers.

pub mod gates;

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::beacon::wire::{self, Event};
use crate::beacon::{BeaconClient, Provider, Registration};
use crate::config::{Mesh, Role};
use crate::dist::{Node, NodeEvent, NodeName};

/// Pause between attempts to reach an absent beacon.
const RETRY: Duration = Duration::from_millis(500);

/// Where a role node is in its start-up, for spinners, `cluster up` and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Looking for the beacon.
    Connecting,
    /// Registered; requirements not yet evaluated.
    Registered,
    /// Registered; these requirements have no online provider.
    Waiting(Vec<String>),
    /// Every requirement has an online provider.
    Ready(Vec<Provider>),
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phase::Connecting => f.write_str("waiting for the beacon"),
            Phase::Registered => f.write_str("registered"),
            Phase::Waiting(missing) => write!(f, "waiting for providers of {}", missing.join(", ")),
            Phase::Ready(p) if p.is_empty() => f.write_str("ready (no requirements)"),
            Phase::Ready(p) => {
                let names: Vec<&str> = p.iter().map(|p| p.node.as_str()).collect();
                write!(f, "requirements met by {}", names.join(", "))
            }
        }
    }
}

/// Starts the role's built-in processes and runs its beacon protocol until the node stops.
pub async fn run(
    node: Node,
    role: Role,
    mesh: Mesh,
    beacon: NodeName,
    phase: watch::Sender<Phase>,
) {
    if role.name == "gate_manager" {
        gates::start_manager(&node);
    }
    let client = BeaconClient::new(node.clone(), beacon.clone());
    let registration = Registration {
        node: node.name().to_string(),
        module: role.module.clone(),
        resource: role.resource.clone(),
        requirements: role.requirements.clone(),
    };
    loop {
        phase.send_replace(Phase::Connecting);
        if !reach_and_register(&node, &client, &registration).await {
            return;
        }
        phase.send_replace(Phase::Registered);
        info!(%beacon, "registered with the beacon");
        // Returns when the beacon goes away; then register again.
        if !follow(&node, &client, &role, mesh, &phase).await {
            return;
        }
        warn!(%beacon, "beacon went down; will register again when it is back");
    }
}

/// Connects to the beacon and registers, retrying until it works or the node stops.
async fn reach_and_register(node: &Node, client: &BeaconClient, reg: &Registration) -> bool {
    let mut logged = false;
    loop {
        let attempt = async {
            node.connect(client.beacon())
                .await
                .map_err(|e| e.to_string())?;
            client
                .register(reg.clone())
                .await
                .map_err(|e| e.to_string())
        };
        match attempt.await {
            Ok(()) => return true,
            Err(e) => {
                if !logged {
                    warn!(beacon = %client.beacon(), "cannot register yet: {e}");
                    logged = true;
                }
            }
        }
        tokio::select! {
            _ = node.stopped() => return false,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// Follows the beacon's pushes until the beacon goes down (`true`) or the node stops (`false`).
async fn follow(
    node: &Node,
    client: &BeaconClient,
    role: &Role,
    mesh: Mesh,
    phase: &watch::Sender<Phase>,
) -> bool {
    let mut events = node.monitor_nodes();
    let mut inbox = node.spawn_mailbox();
    if let Err(e) = client.subscribe(&inbox).await {
        warn!("cannot subscribe to the beacon: {e}");
        return true;
    }
    if mesh == Mesh::Full {
        connect_all(node, client).await;
    }
    let mut gate_managers: BTreeSet<String> = BTreeSet::new();
    evaluate(node, client, role, phase, &mut gate_managers).await;
    loop {
        tokio::select! {
            _ = node.stopped() => return false,
            msg = inbox.recv() => {
                let Some(msg) = msg else { return false };
                if mesh == Mesh::Full {
                    if let Some(Event::Registered(joined)) = wire::parse_event(&msg) {
                        if joined.node != node.name().as_str() {
                            if let Ok(name) = NodeName::parse(&joined.node) {
                                let _ = node.connect(&name).await;
                            }
                        }
                    }
                }
                evaluate(node, client, role, phase, &mut gate_managers).await;
            }
            ev = events.recv() => match ev {
                Ok(NodeEvent::Down { node: n, reason, .. }) => {
                    if &n == client.beacon() {
                        return true;
                    }
                    if let Phase::Ready(providers) = &*phase.borrow() {
                        if providers.iter().any(|p| p.node == n.as_str()) {
                            warn!(provider = %n, %reason, "a provider went down");
                        }
                    }
                }
                Ok(NodeEvent::Up { .. }) => {}
                Err(RecvError::Lagged(_)) => evaluate(node, client, role, phase, &mut gate_managers).await,
                Err(RecvError::Closed) => return false,
            },
        }
    }
}

async fn connect_all(node: &Node, client: &BeaconClient) {
    let Ok(nodes) = client.nodes().await else {
        return;
    };
    for n in nodes.iter().filter(|n| n.status == "online") {
        if n.node == node.name().as_str() {
            continue;
        }
        if let Ok(name) = NodeName::parse(&n.node) {
            if let Err(e) = node.connect(&name).await {
                warn!(peer = %name, "mesh: cannot connect: {e}");
            }
        }
    }
}

/// Asks for the offer, updates the phase, connects to providers, and lets a gate register with
/// any new gate_manager.
async fn evaluate(
    node: &Node,
    client: &BeaconClient,
    role: &Role,
    phase: &watch::Sender<Phase>,
    gate_managers: &mut BTreeSet<String>,
) {
    let offer = match client.offer(node.name().as_str()).await {
        Ok(o) => o,
        Err(e) => {
            warn!("cannot get requirements: {e}");
            return;
        }
    };
    let missing: Vec<String> = role
        .requirements
        .iter()
        .filter(|r| !offer.iter().any(|p| &p.name == *r))
        .cloned()
        .collect();
    for p in &offer {
        if let Ok(name) = NodeName::parse(&p.node) {
            if let Err(e) = node.connect(&name).await {
                warn!(provider = %name, "cannot connect: {e}");
            }
        }
    }
    if role.name == "gate" {
        let current: BTreeSet<String> = offer
            .iter()
            .filter(|p| p.name == "gate_manager")
            .map(|p| p.node.clone())
            .collect();
        for gm in current.difference(gate_managers) {
            if let Ok(gm) = NodeName::parse(gm) {
                gates::register_gate(node, &gm).await;
            }
        }
        *gate_managers = current;
    }
    let next = if missing.is_empty() {
        Phase::Ready(offer)
    } else {
        Phase::Waiting(missing)
    };
    if *phase.borrow() != next {
        info!("{next}");
        phase.send_replace(next);
    }
}
