//! The beacon's registry as a pure state machine (seed 000's `%{nodes, requirements,
//! resources}`), with none of the seed's bugs: a node that registers again replaces its own
//! entries, only online providers are offered, and a nodedown for a node that never
//! registered is ignored instead of crashing.
//!
//! Every method just changes the state and says what changed; the server turns changes into
//! replies and pushes.

use std::collections::BTreeMap;

/// What a node tells the beacon: `{Node, Module, Resource, [Requirement]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The node's full name.
    pub node: String,
    /// The module it reports (the seed's `Module.Interface`).
    pub module: String,
    /// The resource it provides.
    pub resource: String,
    /// The resources it needs.
    pub requirements: Vec<String>,
}

/// Whether a registered node is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Registered and connected.
    Online,
    /// Registered, then went down.
    Offline,
}

impl Status {
    /// `online` or `offline`, as atoms on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Offline => "offline",
        }
    }
}

/// One node in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What it registered.
    pub registration: Registration,
    /// Online or offline.
    pub status: Status,
    /// When it entered that status (milliseconds since the Unix epoch).
    pub since_ms: u64,
    /// Why it went offline.
    pub reason: Option<String>,
}

/// A provider offered for a requirement: seed 000's `%{module, name, node}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// The provider's module.
    pub module: String,
    /// The resource it provides.
    pub name: String,
    /// The provider's node.
    pub node: String,
}

/// What a state change was, for subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A node registered (or registered again).
    Registered(Entry),
    /// A registered node went offline.
    Offline {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
}

/// The registry.
#[derive(Debug, Default, Clone)]
pub struct BeaconState {
    nodes: BTreeMap<String, Entry>,
}

impl BeaconState {
    /// An empty registry (a restarted beacon starts empty; nodes register again).
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a registration, replacing the node's earlier one, and marks it online.
    pub fn register(&mut self, registration: Registration, now_ms: u64) -> Change {
        let entry = Entry {
            registration,
            status: Status::Online,
            since_ms: now_ms,
            reason: None,
        };
        self.nodes
            .insert(entry.registration.node.clone(), entry.clone());
        Change::Registered(entry)
    }

    /// Marks a registered node offline. Unknown or already offline nodes change nothing.
    pub fn node_down(&mut self, node: &str, reason: &str, now_ms: u64) -> Option<Change> {
        let entry = self.nodes.get_mut(node)?;
        if entry.status == Status::Offline {
            return None;
        }
        entry.status = Status::Offline;
        entry.since_ms = now_ms;
        entry.reason = Some(reason.to_owned());
        Some(Change::Offline {
            node: node.to_owned(),
            reason: reason.to_owned(),
        })
    }

    /// The online providers of `node`'s requirements; `None` if `node` never registered.
    pub fn offer(&self, node: &str) -> Option<Vec<Provider>> {
        let wanted = &self.nodes.get(node)?.registration.requirements;
        Some(
            self.nodes
                .values()
                .filter(|e| e.status == Status::Online)
                .filter(|e| wanted.contains(&e.registration.resource))
                .map(|e| Provider {
                    module: e.registration.module.clone(),
                    name: e.registration.resource.clone(),
                    node: e.registration.node.clone(),
                })
                .collect(),
        )
    }

    /// Every node, in name order.
    pub fn nodes(&self) -> impl Iterator<Item = &Entry> {
        self.nodes.values()
    }

    /// One node's entry.
    pub fn get(&self, node: &str) -> Option<&Entry> {
        self.nodes.get(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(node: &str, resource: &str, reqs: &[&str]) -> Registration {
        Registration {
            node: node.into(),
            module: format!("Elixir.{resource}"),
            resource: resource.into(),
            requirements: reqs.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn register_and_offer_online_providers_only() {
        let mut s = BeaconState::new();
        s.register(reg("gate1@h", "gate", &["gate_manager"]), 1);
        assert_eq!(s.offer("gate1@h"), Some(vec![]));
        s.register(reg("gm1@h", "gate_manager", &[]), 2);
        s.register(reg("gm2@h", "gate_manager", &[]), 3);
        s.register(reg("data1@h", "data_contact", &[]), 4);
        let offer = s.offer("gate1@h").unwrap();
        let nodes: Vec<_> = offer.iter().map(|p| p.node.as_str()).collect();
        assert_eq!(nodes, ["gm1@h", "gm2@h"]);
        assert_eq!(offer[0].name, "gate_manager");
        assert_eq!(offer[0].module, "Elixir.gate_manager");

        s.node_down("gm1@h", "net_tick_timeout", 5);
        let nodes: Vec<_> = s
            .offer("gate1@h")
            .unwrap()
            .into_iter()
            .map(|p| p.node)
            .collect();
        assert_eq!(nodes, ["gm2@h"]);
    }

    #[test]
    fn unknown_nodes_get_no_offer() {
        let s = BeaconState::new();
        assert_eq!(s.offer("nobody@h"), None);
    }

    #[test]
    fn reregistering_replaces_and_brings_back_online() {
        let mut s = BeaconState::new();
        s.register(reg("n@h", "gate", &["a"]), 1);
        s.node_down("n@h", "connection_closed", 2);
        assert_eq!(s.get("n@h").unwrap().status, Status::Offline);
        s.register(reg("n@h", "gate_manager", &[]), 3);
        assert_eq!(s.nodes().count(), 1);
        let e = s.get("n@h").unwrap();
        assert_eq!(
            (e.status, e.since_ms, e.reason.clone()),
            (Status::Online, 3, None)
        );
        assert_eq!(e.registration.resource, "gate_manager");
    }

    #[test]
    fn nodedown_of_unknown_or_offline_nodes_changes_nothing() {
        let mut s = BeaconState::new();
        assert_eq!(s.node_down("ghost@h", "x", 1), None);
        s.register(reg("n@h", "gate", &[]), 1);
        assert_eq!(
            s.node_down("n@h", "noconnection", 2),
            Some(Change::Offline {
                node: "n@h".into(),
                reason: "noconnection".into()
            })
        );
        assert_eq!(s.node_down("n@h", "again", 3), None);
        assert_eq!(s.get("n@h").unwrap().since_ms, 2);
        assert_eq!(
            s.get("n@h").unwrap().reason.as_deref(),
            Some("noconnection")
        );
    }

    #[test]
    fn get_nodes_lists_everyone_with_status() {
        let mut s = BeaconState::new();
        s.register(reg("b@h", "gate", &["gate_manager"]), 1);
        s.register(reg("a@h", "gate_manager", &[]), 2);
        s.node_down("a@h", "killed", 3);
        let listed: Vec<_> = s
            .nodes()
            .map(|e| (e.registration.node.as_str(), e.status))
            .collect();
        assert_eq!(listed, [("a@h", Status::Offline), ("b@h", Status::Online)]);
    }
}
