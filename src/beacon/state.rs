//! The beacon's registry as a pure state machine (seed 000's `%{nodes, requirements,
//! resources}`), with none of the seed's bugs and one promise: **a node is online exactly while
//! it is connected.**
//!
//! - Every entry remembers the connection it is online through ([`ConnId`]). A nodedown
//!   carries the id of the connection it ends, and one for an older connection than the
//!   entry's never takes a newer registration offline, whatever order the two arrive in.
//! - A registration for a node that is not connected (another node registering on its
//!   behalf, as seed clients may) is held as `offline (connecting)` until the node connects.
//! - An entry also remembers the incarnation (the node's creation) it was online with. When a
//!   node that went offline connects again as the same incarnation (a dropped connection, not
//!   a restart) it is online again; a restarted node stays offline until it registers again,
//!   as its old registration may not describe it.
//! - [`BeaconState::reconcile`] compares the table with the live connections and corrects it,
//!   so no lost or reordered event can leave it wrong for long.
//! - Providers are indexed by resource, so an offer costs what it returns, not the size of the
//!   registry.
//!
//! Methods only change the state and say what changed; the server turns changes into replies
//! and pushes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Identifies one connection; later connections have larger ids.
pub type ConnId = u64;

/// A live connection to a node: its id, and the node's creation (its incarnation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// The connection.
    pub id: ConnId,
    /// The node's creation, from the handshake.
    pub creation: u32,
}

/// The reason shown while the beacon connects to a node registered on its behalf.
pub const CONNECTING: &str = "connecting";
/// The offline reason of a node that said it was stopping (`{leave, Node}`), as opposed to one
/// whose connection failed.
pub const STOPPED: &str = "stopped";
/// Most nodes the registry holds; a registration for a new node beyond this is refused.
pub const MAX_NODES: usize = 65_536;
/// An entry whose node was never online is forgotten this long after it went offline (a
/// registration on behalf of a node that does not exist, or never came up).
pub const NEVER_ONLINE_TTL_MS: u64 = 60_000;
/// An entry whose node was online once is forgotten this long after it went offline.
pub const OFFLINE_TTL_MS: u64 = 3_600_000;

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
    /// Registered, not connected.
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
    /// Why it is offline.
    pub reason: Option<String>,
    /// The connection it is online through (`None` for the beacon itself, and while offline).
    pub connection: Option<ConnId>,
    /// The incarnation it was last online as (kept while offline).
    pub creation: Option<u32>,
    /// What the node last reported about itself while online (`{report, Node, Map}`: a
    /// replica's lag, say), as sorted key/value text; cleared when it goes offline or
    /// registers again.
    pub report: Vec<(String, String)>,
}

/// A provider offered for a requirement: seed 000's `%{module, name, node}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
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
    /// A node registered (or registered again, or came online).
    Registered(Entry),
    /// A registered node went offline.
    Offline {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// An online node reported something new about itself.
    Report {
        /// The node.
        node: String,
        /// What it reported.
        report: Vec<(String, String)>,
    },
}

/// The registry.
#[derive(Debug, Default, Clone)]
pub struct BeaconState {
    nodes: BTreeMap<String, Entry>,
    /// Online nodes by the resource they provide.
    online: HashMap<String, BTreeSet<String>>,
    /// The beacon's own node: always online, never reconciled.
    me: Option<String>,
}

impl BeaconState {
    /// An empty registry (a restarted beacon starts empty; nodes register again).
    pub fn new() -> Self {
        Self::default()
    }

    fn index_remove(&mut self, node: &str) {
        if let Some(e) = self.nodes.get(node) {
            if e.status == Status::Online {
                let r = e.registration.resource.clone();
                if let Some(set) = self.online.get_mut(&r) {
                    set.remove(node);
                    if set.is_empty() {
                        self.online.remove(&r);
                    }
                }
            }
        }
    }

    fn index_add(&mut self, node: &str) {
        if let Some(e) = self.nodes.get(node) {
            if e.status == Status::Online {
                self.online
                    .entry(e.registration.resource.clone())
                    .or_default()
                    .insert(node.to_owned());
            }
        }
    }

    /// Registers the beacon itself, online for good.
    pub fn register_self(&mut self, registration: Registration, now_ms: u64) -> Change {
        self.me = Some(registration.node.clone());
        self.register(registration, None, now_ms)
    }

    /// Records a registration, replacing the node's earlier one. With the connection it came
    /// over (or the node's live connection) it is online; without one it waits, offline, for
    /// the node to connect.
    pub fn register(
        &mut self,
        registration: Registration,
        link: Option<Link>,
        now_ms: u64,
    ) -> Change {
        let connection = link.map(|l| l.id);
        let node = registration.node.clone();
        self.index_remove(&node);
        let is_me = self.me.as_deref() == Some(node.as_str());
        let online = connection.is_some() || is_me;
        let entry = Entry {
            registration,
            status: if online {
                Status::Online
            } else {
                Status::Offline
            },
            since_ms: now_ms,
            reason: (!online).then(|| CONNECTING.to_owned()),
            connection,
            creation: link.map(|l| l.creation),
            report: Vec::new(),
        };
        self.nodes.insert(node.clone(), entry.clone());
        self.index_add(&node);
        Change::Registered(entry)
    }

    /// `node` connected over `link`: a registration waiting for it comes online, so does an
    /// offline entry when the same incarnation connects again, and an online entry follows a
    /// replacement connection.
    pub fn node_up(&mut self, node: &str, link: Link, now_ms: u64) -> Option<Change> {
        let connection = link.id;
        let e = self.nodes.get_mut(node)?;
        match e.status {
            Status::Offline
                if e.reason.as_deref() == Some(CONNECTING) || e.creation == Some(link.creation) =>
            {
                e.status = Status::Online;
                e.since_ms = now_ms;
                e.reason = None;
                e.connection = Some(connection);
                e.creation = Some(link.creation);
                let e = e.clone();
                self.index_add(node);
                Some(Change::Registered(e))
            }
            Status::Online if e.connection.is_some_and(|c| c < connection) => {
                e.connection = Some(connection);
                None
            }
            _ => None,
        }
    }

    /// The connection `connection` to `node` ended. It takes the node offline only if the node
    /// is online through that connection or an older one.
    pub fn node_down(
        &mut self,
        node: &str,
        connection: ConnId,
        reason: &str,
        now_ms: u64,
    ) -> Option<Change> {
        let e = self.nodes.get(node)?;
        if e.status != Status::Online || e.connection.is_none_or(|c| c > connection) {
            return None;
        }
        self.take_offline(node, reason, now_ms)
    }

    /// A registration waiting for its node's connection gave up (the node is unreachable).
    pub fn connect_failed(&mut self, node: &str, reason: &str, now_ms: u64) -> Option<Change> {
        let e = self.nodes.get_mut(node)?;
        if e.status != Status::Offline || e.reason.as_deref() != Some(CONNECTING) {
            return None;
        }
        e.reason = Some(reason.to_owned());
        e.since_ms = now_ms;
        Some(Change::Offline {
            node: node.to_owned(),
            reason: reason.to_owned(),
        })
    }

    fn take_offline(&mut self, node: &str, reason: &str, now_ms: u64) -> Option<Change> {
        self.index_remove(node);
        let e = self.nodes.get_mut(node)?;
        e.status = Status::Offline;
        e.since_ms = now_ms;
        e.reason = Some(reason.to_owned());
        e.connection = None;
        e.report.clear();
        Some(Change::Offline {
            node: node.to_owned(),
            reason: reason.to_owned(),
        })
    }

    /// Corrects the table against the live connections: an online node that is not connected
    /// goes offline (`noconnection`); one connected through a newer connection follows it; a
    /// registration waiting for a node that is now connected comes online, and so does an
    /// offline node connected again as the same incarnation.
    pub fn reconcile(&mut self, live: &HashMap<String, Link>, now_ms: u64) -> Vec<Change> {
        let mut changes = Vec::new();
        let names: Vec<String> = self.nodes.keys().cloned().collect();
        for n in names {
            if self.me.as_deref() == Some(n.as_str()) {
                continue;
            }
            let Some(e) = self.nodes.get(&n) else {
                continue;
            };
            match (e.status, live.get(&n)) {
                (Status::Online, None) => {
                    changes.extend(self.take_offline(&n, "noconnection", now_ms));
                }
                (Status::Online, Some(&c)) => {
                    if e.connection.is_some_and(|old| old < c.id) {
                        if let Some(e) = self.nodes.get_mut(&n) {
                            e.connection = Some(c.id);
                        }
                    }
                }
                (Status::Offline, Some(&c)) => {
                    changes.extend(self.node_up(&n, c, now_ms));
                }
                (Status::Offline, _) => {}
            }
        }
        changes
    }

    /// Forgets offline entries past their time ([`NEVER_ONLINE_TTL_MS`], [`OFFLINE_TTL_MS`]),
    /// so that registrations for nodes that never come cannot grow the table for ever.
    /// Returns the nodes forgotten.
    pub fn expire(&mut self, now_ms: u64) -> Vec<String> {
        let due: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, e)| {
                let ttl = if e.creation.is_some() {
                    OFFLINE_TTL_MS
                } else {
                    NEVER_ONLINE_TTL_MS
                };
                e.status == Status::Offline
                    && e.reason.as_deref() != Some(CONNECTING)
                    && now_ms.saturating_sub(e.since_ms) >= ttl
            })
            .map(|(n, _)| n.clone())
            .collect();
        for n in &due {
            self.nodes.remove(n);
        }
        due
    }

    /// Whether a registration for `node` would be refused because the table is full.
    pub fn is_full_for(&self, node: &str) -> bool {
        self.nodes.len() >= MAX_NODES && !self.nodes.contains_key(node)
    }

    /// `node` says it is stopping cleanly: it goes offline with the reason [`STOPPED`] now,
    /// and its connection closing later changes nothing. Its incarnation is dropped, so the
    /// still-open connection cannot bring it back online; a restarted node registers again.
    pub fn leave(&mut self, node: &str, now_ms: u64) -> Option<Change> {
        let e = self.nodes.get(node)?;
        if e.status != Status::Online || self.me.as_deref() == Some(node) {
            return None;
        }
        let change = self.take_offline(node, STOPPED, now_ms);
        if let Some(e) = self.nodes.get_mut(node) {
            e.creation = None;
        }
        change
    }

    /// An online node's report about itself; a change only when it differs from the last.
    pub fn report(&mut self, node: &str, report: Vec<(String, String)>) -> Option<Change> {
        let e = self.nodes.get_mut(node)?;
        if e.status != Status::Online || e.report == report {
            return None;
        }
        e.report = report.clone();
        Some(Change::Report {
            node: node.to_owned(),
            report,
        })
    }

    /// Removes an offline node's entry; false if it is online or unknown.
    pub fn forget(&mut self, node: &str) -> bool {
        match self.nodes.get(node) {
            Some(e) if e.status == Status::Offline => {
                self.nodes.remove(node);
                true
            }
            _ => false,
        }
    }

    /// The online providers of `node`'s requirements, sorted by resource then node; `None` if
    /// `node` never registered. Costs what it returns.
    pub fn offer(&self, node: &str) -> Option<Vec<Provider>> {
        let wanted = &self.nodes.get(node)?.registration.requirements;
        let mut out = Vec::new();
        for resource in wanted {
            let Some(set) = self.online.get(resource) else {
                continue;
            };
            for n in set {
                if let Some(e) = self.nodes.get(n) {
                    out.push(Provider {
                        module: e.registration.module.clone(),
                        name: e.registration.resource.clone(),
                        node: n.clone(),
                    });
                }
            }
        }
        Some(out)
    }

    /// Every node, in name order.
    pub fn nodes(&self) -> impl Iterator<Item = &Entry> {
        self.nodes.values()
    }

    /// One node's entry.
    pub fn get(&self, node: &str) -> Option<&Entry> {
        self.nodes.get(node)
    }

    /// How many nodes are registered.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(id: ConnId) -> Link {
        Link { id, creation: 1 }
    }

    fn reg(node: &str, resource: &str, reqs: &[&str]) -> Registration {
        Registration {
            node: node.into(),
            module: format!("Elixir.{resource}"),
            resource: resource.into(),
            requirements: reqs.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn online(s: &BeaconState) -> Vec<&str> {
        s.nodes()
            .filter(|e| e.status == Status::Online)
            .map(|e| e.registration.node.as_str())
            .collect()
    }

    #[test]
    fn offers_only_online_providers_of_the_requirements() {
        let mut s = BeaconState::new();
        s.register(reg("g@h", "gate", &["gate_manager"]), Some(l(1)), 1);
        s.register(reg("gm1@h", "gate_manager", &[]), Some(l(2)), 1);
        s.register(reg("gm2@h", "gate_manager", &[]), Some(l(3)), 1);
        s.register(reg("d@h", "data", &[]), Some(l(4)), 1);
        let offer = s.offer("g@h").unwrap();
        assert_eq!(
            offer.iter().map(|p| p.node.as_str()).collect::<Vec<_>>(),
            ["gm1@h", "gm2@h"]
        );
        s.node_down("gm1@h", 2, "killed", 2);
        assert_eq!(s.offer("g@h").unwrap().len(), 1);
        assert_eq!(s.offer("nobody@h"), None);
    }

    #[test]
    fn a_stale_nodedown_never_takes_a_newer_registration_offline() {
        let mut s = BeaconState::new();
        s.register(reg("n@h", "gate", &[]), Some(l(5)), 1);
        // The node reconnected (connection 9) and registered again before the nodedown of
        // connection 5 was handled.
        s.register(reg("n@h", "gate", &[]), Some(l(9)), 2);
        assert_eq!(s.node_down("n@h", 5, "connection_closed", 3), None);
        assert_eq!(s.get("n@h").unwrap().status, Status::Online);
        // The real end of connection 9 does.
        assert!(s.node_down("n@h", 9, "net_tick_timeout", 4).is_some());
        assert_eq!(s.get("n@h").unwrap().status, Status::Offline);
    }

    #[test]
    fn a_registration_without_a_connection_waits_for_nodeup() {
        let mut s = BeaconState::new();
        let Change::Registered(e) = s.register(reg("n@h", "gate", &[]), None, 1) else {
            panic!()
        };
        assert_eq!(
            (e.status, e.reason.as_deref()),
            (Status::Offline, Some(CONNECTING))
        );
        assert!(s.offer("n@h").is_some());
        assert!(
            matches!(s.node_up("n@h", l(3), 2), Some(Change::Registered(e)) if e.status == Status::Online)
        );
        // Or the connection fails.
        s.register(reg("m@h", "gate", &[]), None, 1);
        assert!(s.connect_failed("m@h", "unreachable", 2).is_some());
        assert_eq!(
            s.node_up("m@h", l(4), 3),
            None,
            "only a pending registration comes up"
        );
    }

    #[test]
    fn reconcile_makes_the_table_match_the_connections() {
        let mut s = BeaconState::new();
        s.register_self(reg("b@h", "beacon", &[]), 0);
        s.register(reg("a@h", "gate", &[]), Some(l(1)), 1);
        s.register(reg("c@h", "gate", &[]), Some(l(2)), 1);
        s.register(reg("p@h", "gate", &[]), None, 1);
        let live: HashMap<String, Link> = [("c@h".to_owned(), l(7)), ("p@h".to_owned(), l(8))]
            .into_iter()
            .collect();
        let changes = s.reconcile(&live, 5);
        assert_eq!(changes.len(), 2);
        assert_eq!(online(&s), ["b@h", "c@h", "p@h"]);
        assert_eq!(s.get("c@h").unwrap().connection, Some(7));
        // A nodedown of connection 2 (older than 7) is now stale.
        assert_eq!(s.node_down("c@h", 2, "x", 6), None);
        assert!(s.reconcile(&live, 7).is_empty(), "idempotent");
    }

    #[test]
    fn reregistering_with_another_resource_moves_the_index() {
        let mut s = BeaconState::new();
        s.register(reg("w@h", "want", &["gate", "gate_manager"]), Some(l(1)), 1);
        s.register(reg("n@h", "gate", &[]), Some(l(2)), 1);
        assert_eq!(s.offer("w@h").unwrap()[0].name, "gate");
        s.register(reg("n@h", "gate_manager", &[]), Some(l(2)), 2);
        let offer = s.offer("w@h").unwrap();
        assert_eq!((offer.len(), offer[0].name.as_str()), (1, "gate_manager"));
        s.node_down("n@h", 2, "x", 3);
        assert!(s.offer("w@h").unwrap().is_empty());
        s.register(reg("n@h", "gate_manager", &[]), Some(l(3)), 4);
        assert_eq!(s.offer("w@h").unwrap().len(), 1, "online again");
    }

    #[test]
    fn forget_removes_offline_nodes_only() {
        let mut s = BeaconState::new();
        s.register(reg("a@h", "gate", &[]), Some(l(1)), 1);
        assert!(!s.forget("a@h"));
        s.node_down("a@h", 1, "x", 2);
        assert!(s.forget("a@h"));
        assert!(s.is_empty());
    }

    #[test]
    fn nodedown_of_unknown_or_offline_nodes_changes_nothing() {
        let mut s = BeaconState::new();
        assert_eq!(s.node_down("ghost@h", 1, "x", 1), None);
        s.register(reg("n@h", "gate", &[]), Some(l(1)), 1);
        assert!(s.node_down("n@h", 1, "noconnection", 2).is_some());
        assert_eq!(s.node_down("n@h", 1, "again", 3), None);
        assert_eq!(
            s.get("n@h").unwrap().reason.as_deref(),
            Some("noconnection")
        );
    }

    #[test]
    fn offers_stay_cheap_with_ten_thousand_registrations() {
        let mut s = BeaconState::new();
        for i in 0..10_000 {
            s.register(reg(&format!("n{i}@h"), "gate", &[]), Some(l(i)), 1);
        }
        s.register(reg("gm@h", "gate_manager", &[]), Some(l(20_000)), 1);
        s.register(reg("w@h", "want", &["gate_manager"]), Some(l(20_001)), 1);
        assert_eq!(s.offer("w@h").unwrap().len(), 1);
    }

    #[test]
    fn the_index_follows_registrations_and_connections() {
        let mut s = BeaconState::new();
        s.register(reg("w@h", "want", &["gate", "gate_manager"]), Some(l(1)), 1);
        let offered = |s: &BeaconState| -> Vec<(String, String)> {
            s.offer("w@h")
                .unwrap()
                .into_iter()
                .map(|p| (p.name, p.node))
                .collect()
        };
        // Register.
        s.register(reg("n@h", "gate", &[]), Some(l(2)), 1);
        assert_eq!(offered(&s), [("gate".into(), "n@h".into())]);
        // Re-register with another resource: the index moves.
        s.register(reg("n@h", "gate_manager", &[]), Some(l(2)), 2);
        assert_eq!(offered(&s), [("gate_manager".into(), "n@h".into())]);
        // Offline: out of every offer.
        s.node_down("n@h", 2, "noconnection", 3);
        assert!(offered(&s).is_empty());
        // Online again, as the same incarnation (its connection dropped and came back).
        assert!(matches!(
            s.node_up("n@h", Link { id: 3, creation: 1 }, 4),
            Some(Change::Registered(e)) if e.status == Status::Online
        ));
        assert_eq!(offered(&s), [("gate_manager".into(), "n@h".into())]);
        // A restart (new creation) stays offline until it registers again.
        s.node_down("n@h", 3, "noconnection", 5);
        assert_eq!(s.node_up("n@h", Link { id: 4, creation: 2 }, 6), None);
        assert!(offered(&s).is_empty());
        let live: HashMap<String, Link> = [
            ("n@h".to_owned(), Link { id: 4, creation: 2 }),
            ("w@h".to_owned(), l(1)),
        ]
        .into_iter()
        .collect();
        assert!(s.reconcile(&live, 7).is_empty(), "reconcile agrees");
        s.register(
            reg("n@h", "gate", &[]),
            Some(Link { id: 4, creation: 2 }),
            8,
        );
        assert_eq!(offered(&s), [("gate".into(), "n@h".into())]);
    }

    #[test]
    fn offline_entries_expire_and_a_full_table_refuses_new_nodes() {
        let mut s = BeaconState::new();
        // Registered on behalf of a node that never came: forgotten a minute after it failed.
        s.register(reg("ghost@h", "gate", &[]), None, 0);
        assert!(
            s.expire(NEVER_ONLINE_TTL_MS * 2).is_empty(),
            "still connecting"
        );
        s.connect_failed("ghost@h", "unreachable", 1_000);
        assert!(s.expire(1_000 + NEVER_ONLINE_TTL_MS - 1).is_empty());
        assert_eq!(
            s.expire(1_000 + NEVER_ONLINE_TTL_MS),
            vec!["ghost@h".to_owned()]
        );
        // Online once, then offline: kept for an hour.
        s.register(reg("n@h", "gate", &[]), Some(l(1)), 0);
        s.node_down("n@h", 1, "noconnection", 10);
        assert!(s.expire(10 + NEVER_ONLINE_TTL_MS).is_empty());
        assert_eq!(s.expire(10 + OFFLINE_TTL_MS), vec!["n@h".to_owned()]);
        assert!(!s.is_full_for("x@h"));
    }

    #[test]
    fn reports_are_kept_while_online_and_pushed_only_when_they_change() {
        let mut s = BeaconState::new();
        let r = |v: &str| vec![("lag_versions".to_owned(), v.to_owned())];
        assert_eq!(s.report("ds@h", r("0")), None, "unknown node");
        s.register(reg("ds@h", "data_service", &[]), Some(l(1)), 0);
        assert_eq!(
            s.report("ds@h", r("0")),
            Some(Change::Report {
                node: "ds@h".into(),
                report: r("0")
            })
        );
        assert_eq!(s.report("ds@h", r("0")), None, "unchanged");
        assert!(s.report("ds@h", r("5")).is_some());
        assert_eq!(s.get("ds@h").unwrap().report, r("5"));
        s.node_down("ds@h", 1, "noconnection", 10);
        assert!(s.get("ds@h").unwrap().report.is_empty(), "cleared offline");
        assert_eq!(
            s.report("ds@h", r("1")),
            None,
            "offline nodes do not report"
        );
    }

    #[test]
    fn a_node_that_leaves_is_stopped_and_its_closing_connection_changes_nothing() {
        let mut s = BeaconState::new();
        s.register(reg("g@h", "gate", &[]), Some(l(5)), 0);
        assert_eq!(
            s.leave("g@h", 7),
            Some(Change::Offline {
                node: "g@h".into(),
                reason: STOPPED.into()
            })
        );
        // The connection closes afterwards, or is still up at a reconcile: still stopped.
        assert_eq!(s.node_down("g@h", 5, "connection_closed", 8), None);
        let mut live = HashMap::new();
        live.insert("g@h".to_owned(), l(5));
        assert!(s.reconcile(&live, 9).is_empty());
        assert_eq!(s.node_up("g@h", l(5), 9), None);
        let e = s.get("g@h").unwrap();
        assert_eq!(
            (e.status, e.reason.as_deref()),
            (Status::Offline, Some(STOPPED))
        );
        // Unknown or already offline: nothing.
        assert_eq!(s.leave("g@h", 10), None);
        assert_eq!(s.leave("x@h", 10), None);
        // A restarted node registers again and is online.
        s.register(
            reg("g@h", "gate", &[]),
            Some(Link { id: 9, creation: 2 }),
            11,
        );
        assert_eq!(online(&s), ["g@h"]);
    }
}
