//! What `cluster top` knows about the cluster, and what the operator has picked: a pure state
//! machine, fed [`Update`]s by the sources and [`Key`]s by the terminal, with the time passed
//! in. It never does I/O and never reads a clock, so the tests drive it step by step and the
//! view renders it as it is.
//!
//! Rows come from two places: the beacon's table (role, status, requirements, since when) and
//! the nodes themselves (their connections, traffic and queues, polled one task per node). A
//! node the beacon does not know, but the watched node is connected to, still gets a row: that
//! is all a plain Erlang cluster offers.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use cluster::beacon::NodeInfo;
use cluster::dist::builtin::cluster_events::{NodeStats, ProcessQueue};

/// Event lines kept for the event pane; older ones scroll away.
pub const EVENT_CAPACITY: usize = 500;
/// A polled queue peak at or above this is reported as a mailbox high-water event (the
/// threshold at which our nodes start to warn about a mailbox).
pub const HIGH_WATER_EVENT: u64 = cluster::dist::node::HIGH_WATER_START as u64;

/// The moment an update or a frame belongs to: wall time for what people read, a monotonic
/// clock for rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// Milliseconds since the Unix epoch.
    pub wall_ms: u64,
    /// Milliseconds since `cluster top` started.
    pub mono_ms: u64,
}

/// What the watched node turned out to be, as a beacon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeaconState {
    /// Not asked yet, or no answer yet.
    Connecting,
    /// It answers as a beacon; its table is live.
    Live,
    /// It is not a beacon (a plain node, or a plain Erlang node).
    NotBeacon(String),
    /// It was a beacon and stopped answering; the table shown is the last one seen.
    Lost(String),
}

/// One answer (or the lack of one) from polling a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// A `cluster` node's `cluster_events` answered `stats`.
    Stats(NodeStats),
    /// A plain Erlang node answered through `rex`: `erlang:nodes()` and, when it answered,
    /// `erlang:statistics(io)` (bytes in, bytes out, since it started).
    Erlang {
        /// Its visible connections.
        nodes: Vec<String>,
        /// Its I/O byte totals.
        io: Option<(u64, u64)>,
    },
    /// No answer within the call timeout (stopped, overloaded, or a network stall).
    NoAnswer,
    /// Not reachable: the connection failed or went down.
    Unreachable(String),
}

/// Everything the sources tell the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// The beacon's whole table (first, and again after a resync).
    Table(Vec<NodeInfo>),
    /// A node registered or came online.
    Registered(NodeInfo),
    /// A node went offline.
    Offline {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// What the watched node is, as a beacon.
    Beacon(BeaconState),
    /// The watched node's visible connections (a snapshot).
    Members(Vec<String>),
    /// The watched node saw `node` connect.
    NodeUp(String),
    /// The watched node saw `node` disconnect.
    NodeDown {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// A poll of `node` ended.
    Polled {
        /// The node.
        node: String,
        /// What it said.
        probe: Probe,
    },
}

/// How the rows are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// By name.
    Name,
    /// By role, then name.
    Role,
    /// Trouble first: offline, no answer, not ready, then the healthy.
    Status,
    /// Most connections first.
    Connections,
    /// Busiest first (messages per second, in plus out).
    Rate,
}

impl SortKey {
    /// The next key in the cycle `s` walks.
    pub fn next(self) -> SortKey {
        match self {
            SortKey::Name => SortKey::Role,
            SortKey::Role => SortKey::Status,
            SortKey::Status => SortKey::Connections,
            SortKey::Connections => SortKey::Rate,
            SortKey::Rate => SortKey::Name,
        }
    }

    /// Its name in the header.
    pub fn label(self) -> &'static str {
        match self {
            SortKey::Name => "name",
            SortKey::Role => "role",
            SortKey::Status => "status",
            SortKey::Connections => "connections",
            SortKey::Rate => "rate",
        }
    }
}

/// Which rows are shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Every row.
    All,
    /// Rows of one role (`r` cycles through the roles present).
    Role(String),
    /// Rows whose name or role contains the text (`/`).
    Text(String),
}

/// A key, as the model understands it (the terminal's keys are mapped onto these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A printable character.
    Char(char),
    /// Up arrow.
    Up,
    /// Down arrow.
    Down,
    /// Enter.
    Enter,
    /// Escape.
    Esc,
    /// Backspace.
    Backspace,
    /// Ctrl-C.
    Interrupt,
}

/// What a key asks of the run loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing visible changed.
    None,
    /// Draw again.
    Redraw,
    /// Leave.
    Quit,
}

/// The beacon's view of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Registered and online.
    Online,
    /// Registered, now offline (with the reason, when the beacon gave one).
    Offline(Option<String>),
    /// The beacon does not list it (it is only seen connected), or there is no beacon.
    Unregistered,
}

/// How the last polls of a node went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Not polled yet.
    Waiting,
    /// Answered the last poll.
    Answering,
    /// Has not answered since this wall time (ms).
    NoAnswer(u64),
    /// Could not be reached.
    Unreachable(String),
}

/// What kind of node answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Not known yet.
    Unknown,
    /// A `cluster` node (it has `cluster_events`).
    Cluster,
    /// A plain Erlang node (polled through `rex`).
    Erlang,
}

/// Per-second rates over the last poll interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Messages in per second (`None` where only bytes are known: plain Erlang).
    pub msgs_in: Option<f64>,
    /// Messages out per second.
    pub msgs_out: Option<f64>,
    /// Bytes in per second.
    pub bytes_in: f64,
    /// Bytes out per second.
    pub bytes_out: f64,
}

impl Rates {
    /// Messages per second, in plus out (0 where unknown), for sorting.
    pub fn msgs_total(&self) -> f64 {
        self.msgs_in.unwrap_or(0.0) + self.msgs_out.unwrap_or(0.0)
    }
}

/// One connection of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerRow {
    /// The node at the other end.
    pub node: String,
    /// Whether it is a visible (not hidden) connection.
    pub visible: bool,
    /// Its rates, once two polls have been seen.
    pub rates: Option<Rates>,
    /// Messages in and out since it connected (`None` for plain Erlang).
    pub totals: Option<(u64, u64)>,
}

/// One node's row.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    /// Its full name.
    pub name: String,
    /// Its resource (role), when the beacon knows it.
    pub role: Option<String>,
    /// The resources it requires.
    pub requirements: Vec<String>,
    /// The beacon's view.
    pub status: Status,
    /// Since when (wall ms) it has had that status.
    pub since_ms: Option<u64>,
    /// How polling it goes.
    pub reach: Reach,
    /// What kind of node it is.
    pub kind: Kind,
    /// Its connections (without `cluster top`'s own), when known.
    pub peers: Option<Vec<PeerRow>>,
    /// Its traffic rates, once two polls have been seen.
    pub rates: Option<Rates>,
    /// Its processes with the highest queue peaks.
    pub queues: Vec<ProcessQueue>,
    last: Option<Sample>,
}

/// What the previous poll said, to turn totals into rates.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    at_ms: u64,
    /// Per peer: (msgs in, bytes in, msgs out, bytes out).
    peers: HashMap<String, [u64; 4]>,
    /// Plain Erlang: I/O byte totals.
    io: Option<(u64, u64)>,
}

impl NodeRow {
    fn new(name: &str) -> NodeRow {
        NodeRow {
            name: name.to_owned(),
            role: None,
            requirements: Vec::new(),
            status: Status::Unregistered,
            since_ms: None,
            reach: Reach::Waiting,
            kind: Kind::Unknown,
            peers: None,
            rates: None,
            queues: Vec::new(),
            last: None,
        }
    }

    /// How many visible connections it has (`None` until polled); hidden ones are tools.
    pub fn connections(&self) -> Option<usize> {
        self.peers
            .as_ref()
            .map(|p| p.iter().filter(|p| p.visible).count())
    }

    /// The highest queue peak among its processes.
    pub fn queue_peak(&self) -> Option<&ProcessQueue> {
        self.queues.iter().max_by_key(|q| q.peak)
    }

    /// An offline node is no longer polled: what was measured of it is history, not news.
    fn went_offline(&mut self) {
        self.rates = None;
        self.last = None;
        for p in self.peers.iter_mut().flatten() {
            p.rates = None;
        }
    }

    fn is_online(&self) -> bool {
        self.status == Status::Online
    }
}

/// Whether a node's requirements are met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// No beacon entry: nothing to judge by.
    Unknown,
    /// It requires nothing.
    NothingRequired,
    /// Every requirement has an online provider.
    Ready,
    /// These requirements have no online provider.
    Missing(Vec<String>),
}

/// What the event pane shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLine {
    /// When (wall ms).
    pub at_ms: u64,
    /// What happened, short (`nodeup`, `offline`, `mailbox`…).
    pub what: &'static str,
    /// The node it is about.
    pub node: String,
    /// The rest.
    pub detail: String,
}

/// The whole state of the screen.
#[derive(Debug, Clone)]
pub struct Model {
    target: String,
    me: String,
    beacon: BeaconState,
    nodes: BTreeMap<String, NodeRow>,
    /// The watched node's visible connections.
    members: BTreeSet<String>,
    /// Whether the members task has reported at least once.
    members_known: bool,
    events: VecDeque<EventLine>,
    sort: SortKey,
    filter: Filter,
    /// Text being typed after `/`.
    input: Option<String>,
    selected: Option<String>,
    details: bool,
}

impl Model {
    /// A model watching `target`, from our own node `me` (which is never shown).
    pub fn new(target: &str, me: &str) -> Model {
        let mut nodes = BTreeMap::new();
        nodes.insert(target.to_owned(), NodeRow::new(target));
        Model {
            target: target.to_owned(),
            me: me.to_owned(),
            beacon: BeaconState::Connecting,
            nodes,
            members: BTreeSet::new(),
            members_known: false,
            events: VecDeque::new(),
            sort: SortKey::Role,
            filter: Filter::All,
            input: None,
            selected: None,
            details: false,
        }
    }

    /// The watched node.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// What the watched node is, as a beacon.
    pub fn beacon(&self) -> &BeaconState {
        &self.beacon
    }

    /// The sort order.
    pub fn sort(&self) -> SortKey {
        self.sort
    }

    /// The filter.
    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// The `/` text being typed, if any.
    pub fn input(&self) -> Option<&str> {
        self.input.as_deref()
    }

    /// Whether the details pane is open.
    pub fn details_open(&self) -> bool {
        self.details
    }

    /// The events, oldest first.
    pub fn events(&self) -> &VecDeque<EventLine> {
        &self.events
    }

    /// Every node, by name.
    pub fn all_nodes(&self) -> impl Iterator<Item = &NodeRow> {
        self.nodes.values()
    }

    /// A node's row.
    pub fn node(&self, name: &str) -> Option<&NodeRow> {
        self.nodes.get(name)
    }

    /// The nodes worth polling: the watched node, every node the beacon has online, and every
    /// node the watched node is connected to.
    pub fn watched(&self) -> Vec<String> {
        self.nodes
            .values()
            .filter(|r| {
                r.name == self.target
                    || r.is_online()
                    || (r.status == Status::Unregistered && self.members.contains(&r.name))
            })
            .map(|r| r.name.clone())
            .collect()
    }

    /// Whether every watched node has been polled at least once and the beacon question is
    /// settled (what `--once` waits for).
    pub fn settled(&self) -> bool {
        self.beacon != BeaconState::Connecting
            && self.members_known
            && self
                .watched()
                .iter()
                .all(|n| self.nodes.get(n).is_some_and(|r| r.reach != Reach::Waiting))
    }

    /// The online nodes that provide `resource`, and the offline ones.
    pub fn providers(&self, resource: &str) -> (Vec<&NodeRow>, Vec<&NodeRow>) {
        self.nodes
            .values()
            .filter(|r| r.role.as_deref() == Some(resource))
            .partition(|r| r.is_online())
    }

    /// Whether `row`'s requirements are met.
    pub fn readiness(&self, row: &NodeRow) -> Readiness {
        if row.role.is_none() {
            return Readiness::Unknown;
        }
        if row.requirements.is_empty() {
            return Readiness::NothingRequired;
        }
        let missing: Vec<String> = row
            .requirements
            .iter()
            .filter(|req| self.providers(req).0.is_empty())
            .cloned()
            .collect();
        if missing.is_empty() {
            Readiness::Ready
        } else {
            Readiness::Missing(missing)
        }
    }

    /// The rows shown, filtered and sorted.
    pub fn rows(&self) -> Vec<&NodeRow> {
        let mut rows: Vec<&NodeRow> = self
            .nodes
            .values()
            .filter(|r| match &self.filter {
                Filter::All => true,
                Filter::Role(role) => r.role.as_deref() == Some(role.as_str()),
                Filter::Text(t) => {
                    let t = t.to_lowercase();
                    r.name.to_lowercase().contains(&t)
                        || r.role
                            .as_deref()
                            .is_some_and(|x| x.to_lowercase().contains(&t))
                }
            })
            .collect();
        match self.sort {
            SortKey::Name => {}
            SortKey::Role => rows.sort_by(|a, b| {
                (a.role.is_none(), &a.role, &a.name).cmp(&(b.role.is_none(), &b.role, &b.name))
            }),
            SortKey::Status => {
                rows.sort_by_key(|r| (self.trouble_rank(r), r.name.clone()));
            }
            SortKey::Connections => rows.sort_by(|a, b| {
                b.connections()
                    .cmp(&a.connections())
                    .then_with(|| a.name.cmp(&b.name))
            }),
            SortKey::Rate => rows.sort_by(|a, b| {
                let ra = a.rates.map_or(-1.0, |r| r.msgs_total());
                let rb = b.rates.map_or(-1.0, |r| r.msgs_total());
                rb.total_cmp(&ra).then_with(|| a.name.cmp(&b.name))
            }),
        }
        rows
    }

    /// Lower is worse: offline, unreachable or silent, not ready, healthy.
    fn trouble_rank(&self, r: &NodeRow) -> u8 {
        match (&r.status, &r.reach) {
            (Status::Offline(_), _) => 0,
            (_, Reach::NoAnswer(_) | Reach::Unreachable(_)) => 1,
            _ if matches!(self.readiness(r), Readiness::Missing(_)) => 2,
            _ => 3,
        }
    }

    /// The selected row's name (the first shown row when nothing was picked yet).
    pub fn selected(&self) -> Option<String> {
        let rows = self.rows();
        match &self.selected {
            Some(s) if rows.iter().any(|r| &r.name == s) => Some(s.clone()),
            _ => rows.first().map(|r| r.name.clone()),
        }
    }

    /// The selected row's index among the shown rows.
    pub fn selected_index(&self) -> Option<usize> {
        let sel = self.selected()?;
        self.rows().iter().position(|r| r.name == sel)
    }

    fn push_event(&mut self, now: Clock, what: &'static str, node: &str, detail: String) {
        if node == self.me {
            return;
        }
        if self.events.len() == EVENT_CAPACITY {
            self.events.pop_front();
        }
        self.events.push_back(EventLine {
            at_ms: now.wall_ms,
            what,
            node: node.to_owned(),
            detail,
        });
    }

    fn row(&mut self, name: &str) -> &mut NodeRow {
        self.nodes
            .entry(name.to_owned())
            .or_insert_with(|| NodeRow::new(name))
    }

    fn set_info(&mut self, info: &NodeInfo) {
        let row = self.row(&info.node);
        row.role = Some(info.resource.clone());
        row.requirements = info.requirements.clone();
        row.status = if info.status == "online" {
            Status::Online
        } else {
            Status::Offline(info.reason.clone())
        };
        row.since_ms = Some(info.since_ms);
        if row.status != Status::Online {
            row.went_offline();
        }
    }

    /// Drops rows nothing vouches for any more: not in the beacon's table, not connected to
    /// the watched node, and not the watched node.
    fn prune(&mut self) {
        let target = self.target.clone();
        let members = &self.members;
        self.nodes.retain(|name, r| {
            *name == target || r.status != Status::Unregistered || members.contains(name)
        });
    }

    /// Applies an update; returns whether anything shown may have changed.
    pub fn apply(&mut self, update: Update, now: Clock) -> bool {
        match update {
            Update::Table(infos) => {
                for r in self.nodes.values_mut() {
                    r.role = None;
                    r.requirements.clear();
                    r.status = Status::Unregistered;
                    r.since_ms = None;
                }
                for info in &infos {
                    if info.node != self.me {
                        self.set_info(info);
                    }
                }
                self.prune();
            }
            Update::Registered(info) => {
                if info.node == self.me {
                    return false;
                }
                self.set_info(&info);
                self.push_event(
                    now,
                    "registered",
                    &info.node,
                    format!("role {}", info.resource),
                );
            }
            Update::Offline { node, reason } => {
                if let Some(r) = self.nodes.get_mut(&node) {
                    r.status = Status::Offline(Some(reason.clone()));
                    r.since_ms = Some(now.wall_ms);
                    r.went_offline();
                }
                self.push_event(now, "offline", &node, reason);
            }
            Update::Beacon(state) => {
                if self.beacon == state {
                    return false;
                }
                match &state {
                    BeaconState::Lost(why) => {
                        self.push_event(now, "beacon", &self.target.clone(), format!("lost: {why}"))
                    }
                    BeaconState::Live if matches!(self.beacon, BeaconState::Lost(_)) => {
                        self.push_event(now, "beacon", &self.target.clone(), "back".into())
                    }
                    _ => {}
                }
                self.beacon = state;
            }
            Update::Members(list) => {
                self.members = list.into_iter().filter(|n| *n != self.me).collect();
                self.members_known = true;
                for m in self.members.clone() {
                    self.row(&m);
                }
                self.prune();
            }
            Update::NodeUp(node) => {
                if node == self.me {
                    return false;
                }
                self.members.insert(node.clone());
                self.row(&node);
                self.push_event(now, "nodeup", &node, String::new());
            }
            Update::NodeDown { node, reason } => {
                if node == self.me {
                    return false;
                }
                self.members.remove(&node);
                self.push_event(now, "nodedown", &node, reason);
                self.prune();
            }
            Update::Polled { node, probe } => self.polled(&node, probe, now),
        }
        true
    }

    fn polled(&mut self, node: &str, probe: Probe, now: Clock) {
        let me = self.me.clone();
        let Some(row) = self.nodes.get_mut(node) else {
            return; // pruned meanwhile
        };
        let was = row.reach.clone();
        let mut events: Vec<(&'static str, String)> = Vec::new();
        match probe {
            Probe::Stats(stats) => {
                row.kind = Kind::Cluster;
                row.reach = Reach::Answering;
                let sample = Sample {
                    at_ms: now.mono_ms,
                    peers: stats
                        .peers
                        .iter()
                        .map(|p| {
                            (
                                p.node.clone(),
                                [p.msgs_in, p.bytes_in, p.msgs_out, p.bytes_out],
                            )
                        })
                        .collect(),
                    io: None,
                };
                let mut total: Option<Rates> = None;
                let peers: Vec<PeerRow> = stats
                    .peers
                    .iter()
                    .filter(|p| p.node != me)
                    .map(|p| {
                        let now_c = [p.msgs_in, p.bytes_in, p.msgs_out, p.bytes_out];
                        let rates = row.last.as_ref().and_then(|last| {
                            let dt = now.mono_ms.checked_sub(last.at_ms)?;
                            // A counter that went back belongs to a newer connection.
                            let before = last.peers.get(&p.node).copied().unwrap_or_default();
                            let delta =
                                |i: usize| now_c[i].checked_sub(before[i]).unwrap_or(now_c[i]);
                            per_second(dt, [delta(0), delta(1), delta(2), delta(3)])
                        });
                        if let Some(r) = rates {
                            let t = total.get_or_insert(Rates {
                                msgs_in: Some(0.0),
                                msgs_out: Some(0.0),
                                ..Rates::default()
                            });
                            t.msgs_in = Some(t.msgs_in.unwrap_or(0.0) + r.msgs_in.unwrap_or(0.0));
                            t.msgs_out =
                                Some(t.msgs_out.unwrap_or(0.0) + r.msgs_out.unwrap_or(0.0));
                            t.bytes_in += r.bytes_in;
                            t.bytes_out += r.bytes_out;
                        }
                        PeerRow {
                            node: p.node.clone(),
                            visible: p.kind == "visible",
                            rates,
                            totals: Some((p.msgs_in, p.msgs_out)),
                        }
                    })
                    .collect();
                if row.last.is_some() {
                    // Two polls and no peers is a rate of zero, not an unknown one.
                    row.rates = Some(total.unwrap_or(Rates {
                        msgs_in: Some(0.0),
                        msgs_out: Some(0.0),
                        ..Rates::default()
                    }));
                }
                row.peers = Some(peers);
                let before: HashMap<String, u64> = row
                    .queues
                    .iter()
                    .map(|q| (q.process.clone(), q.peak))
                    .collect();
                for q in &stats.processes {
                    let old = before.get(&q.process).copied().unwrap_or(0);
                    if q.peak >= HIGH_WATER_EVENT && q.peak > old {
                        events.push((
                            "mailbox",
                            format!("{} queue peaked at {} (now {})", q.process, q.peak, q.len),
                        ));
                    }
                }
                row.queues = stats.processes;
                row.last = Some(sample);
            }
            Probe::Erlang { nodes, io } => {
                row.kind = Kind::Erlang;
                row.reach = Reach::Answering;
                if let (Some((i, o)), Some(last)) = (io, row.last.as_ref()) {
                    if let (Some((li, lo)), Some(dt)) =
                        (last.io, now.mono_ms.checked_sub(last.at_ms))
                    {
                        row.rates =
                            per_second(dt, [0, i.saturating_sub(li), 0, o.saturating_sub(lo)]).map(
                                |r| Rates {
                                    msgs_in: None,
                                    msgs_out: None,
                                    ..r
                                },
                            );
                    }
                }
                row.peers = Some(
                    nodes
                        .into_iter()
                        .filter(|n| *n != me)
                        .map(|node| PeerRow {
                            node,
                            visible: true,
                            rates: None,
                            totals: None,
                        })
                        .collect(),
                );
                row.last = Some(Sample {
                    at_ms: now.mono_ms,
                    peers: HashMap::new(),
                    io,
                });
            }
            Probe::NoAnswer => {
                if !matches!(row.reach, Reach::NoAnswer(_)) {
                    row.reach = Reach::NoAnswer(now.wall_ms);
                    events.push(("no answer", "stopped or overloaded?".into()));
                }
            }
            Probe::Unreachable(why) => {
                if !matches!(&row.reach, Reach::Unreachable(w) if *w == why) {
                    events.push(("unreachable", why.clone()));
                }
                row.reach = Reach::Unreachable(why);
                row.rates = None;
                row.last = None;
            }
        }
        if matches!(was, Reach::NoAnswer(_) | Reach::Unreachable(_))
            && row.reach == Reach::Answering
        {
            events.push(("answering", "again".into()));
        }
        for (what, detail) in events {
            self.push_event(now, what, node, detail);
        }
    }

    /// Applies a key; returns what the run loop should do.
    pub fn key(&mut self, key: Key) -> Action {
        if key == Key::Interrupt {
            return Action::Quit;
        }
        if let Some(text) = &mut self.input {
            match key {
                Key::Char(c) => text.push(c),
                Key::Backspace => {
                    text.pop();
                }
                Key::Enter => {
                    self.filter = if text.is_empty() {
                        Filter::All
                    } else {
                        Filter::Text(text.clone())
                    };
                    self.input = None;
                }
                Key::Esc => self.input = None,
                _ => return Action::None,
            }
            return Action::Redraw;
        }
        match key {
            Key::Char('q') => return Action::Quit,
            Key::Esc if self.details => self.details = false,
            Key::Esc => return Action::Quit,
            Key::Char('s') => self.sort = self.sort.next(),
            Key::Char('r') => self.filter = self.next_role_filter(),
            Key::Char('/') => self.input = Some(String::new()),
            Key::Up | Key::Char('k') => self.step(-1),
            Key::Down | Key::Char('j') => self.step(1),
            Key::Enter => self.details = self.selected().is_some(),
            _ => return Action::None,
        }
        Action::Redraw
    }

    fn next_role_filter(&self) -> Filter {
        let roles: BTreeSet<&str> = self
            .nodes
            .values()
            .filter_map(|r| r.role.as_deref())
            .collect();
        let next = match &self.filter {
            Filter::Role(current) => roles
                .range::<str, _>((
                    std::ops::Bound::Excluded(current.as_str()),
                    std::ops::Bound::Unbounded,
                ))
                .next()
                .copied(),
            _ => roles.iter().next().copied(),
        };
        next.map_or(Filter::All, |r| Filter::Role(r.to_owned()))
    }

    fn step(&mut self, by: isize) {
        let rows = self.rows();
        if rows.is_empty() {
            return;
        }
        let at = self.selected_index().unwrap_or(0) as isize;
        let to = (at + by).clamp(0, rows.len() as isize - 1) as usize;
        self.selected = Some(rows[to].name.clone());
    }
}

/// Rates from counter deltas `[msgs in, bytes in, msgs out, bytes out]` over `dt_ms`.
fn per_second(dt_ms: u64, delta: [u64; 4]) -> Option<Rates> {
    if dt_ms == 0 {
        return None;
    }
    let s = dt_ms as f64 / 1000.0;
    Some(Rates {
        msgs_in: Some(delta[0] as f64 / s),
        bytes_in: delta[1] as f64 / s,
        msgs_out: Some(delta[2] as f64 / s),
        bytes_out: delta[3] as f64 / s,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use cluster::dist::builtin::cluster_events::PeerTraffic;

    pub(crate) const ME: &str = "cluster-cli-1@127.0.0.1";

    pub(crate) fn at(s: u64) -> Clock {
        Clock {
            wall_ms: 1_700_000_000_000 + s * 1000,
            mono_ms: s * 1000,
        }
    }

    pub(crate) fn info(node: &str, role: &str, reqs: &[&str], online: bool) -> NodeInfo {
        NodeInfo {
            node: node.into(),
            status: if online { "online" } else { "offline" }.into(),
            resource: role.into(),
            requirements: reqs.iter().map(|s| s.to_string()).collect(),
            module: role.into(),
            since_ms: 1_700_000_000_000,
            reason: (!online).then(|| "net_tick_timeout".into()),
            report: Vec::new(),
        }
    }

    pub(crate) fn traffic(node: &str, msgs: u64) -> PeerTraffic {
        PeerTraffic {
            node: node.into(),
            kind: "visible".into(),
            msgs_in: msgs,
            bytes_in: msgs * 100,
            msgs_out: msgs,
            bytes_out: msgs * 100,
        }
    }

    /// A beacon, a gate_manager that is offline, a gate that misses it, a data pair.
    pub(crate) fn cluster() -> Model {
        let mut m = Model::new("beacon1@h", ME);
        m.apply(
            Update::Table(vec![
                info("beacon1@h", "beacon", &[], true),
                info("gm1@h", "gate_manager", &[], false),
                info("gate1@h", "gate", &["gate_manager"], true),
                info("dc1@h", "data_contact", &[], true),
                info("ds1@h", "data_service", &["data_contact"], true),
                info(ME, "cli", &[], true),
            ]),
            at(0),
        );
        m.apply(Update::Beacon(BeaconState::Live), at(0));
        m
    }

    fn names(m: &Model) -> Vec<&str> {
        m.rows().iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn readiness_names_what_has_no_online_provider() {
        let m = cluster();
        let row = |n: &str| m.node(n).unwrap();
        assert_eq!(
            m.readiness(row("gate1@h")),
            Readiness::Missing(vec!["gate_manager".into()])
        );
        assert_eq!(m.readiness(row("ds1@h")), Readiness::Ready);
        assert_eq!(m.readiness(row("dc1@h")), Readiness::NothingRequired);
        assert!(m.node(ME).is_none(), "our own node is never a row");
    }

    #[test]
    fn a_registration_makes_a_node_ready_and_is_an_event() {
        let mut m = cluster();
        m.apply(
            Update::Registered(info("gm1@h", "gate_manager", &[], true)),
            at(5),
        );
        assert_eq!(m.readiness(m.node("gate1@h").unwrap()), Readiness::Ready);
        let last = m.events().back().unwrap();
        assert_eq!((last.what, last.node.as_str()), ("registered", "gm1@h"));
        for (s, n) in [(1, 0), (3, 10)] {
            m.apply(
                Update::Polled {
                    node: "dc1@h".into(),
                    probe: Probe::Stats(NodeStats {
                        peers: vec![traffic("ds1@h", n)],
                        processes: vec![],
                    }),
                },
                at(s),
            );
        }
        assert!(m.node("dc1@h").unwrap().rates.is_some());
        m.apply(
            Update::Offline {
                node: "dc1@h".into(),
                reason: "connection_closed".into(),
            },
            at(6),
        );
        // It is no longer polled: its last rates are not shown as current.
        assert_eq!(m.node("dc1@h").unwrap().rates, None);
        assert!(!m.watched().contains(&"dc1@h".to_owned()));
        assert_eq!(
            m.readiness(m.node("ds1@h").unwrap()),
            Readiness::Missing(vec!["data_contact".into()])
        );
    }

    #[test]
    fn sort_keys_cycle_and_order_rows() {
        let mut m = cluster();
        assert_eq!(m.sort(), SortKey::Role);
        assert_eq!(
            names(&m),
            ["beacon1@h", "dc1@h", "ds1@h", "gate1@h", "gm1@h"]
        );
        m.key(Key::Char('s'));
        // Status: the offline one, then the one that is not ready, then the rest by name.
        assert_eq!(m.sort(), SortKey::Status);
        assert_eq!(
            names(&m),
            ["gm1@h", "gate1@h", "beacon1@h", "dc1@h", "ds1@h"]
        );
        m.key(Key::Char('s'));
        assert_eq!(m.sort(), SortKey::Connections);
        m.apply(
            Update::Polled {
                node: "ds1@h".into(),
                probe: Probe::Stats(NodeStats {
                    peers: vec![traffic("beacon1@h", 1), traffic("dc1@h", 1), traffic(ME, 9)],
                    processes: vec![],
                }),
            },
            at(1),
        );
        assert_eq!(names(&m)[0], "ds1@h");
        assert_eq!(
            m.node("ds1@h").unwrap().connections(),
            Some(2),
            "ours is not counted"
        );
        m.key(Key::Char('s'));
        assert_eq!(m.sort(), SortKey::Rate);
        m.key(Key::Char('s'));
        assert_eq!(m.sort(), SortKey::Name);
        assert_eq!(
            names(&m),
            ["beacon1@h", "dc1@h", "ds1@h", "gate1@h", "gm1@h"]
        );
    }

    #[test]
    fn rates_come_from_two_polls_without_our_own_traffic() {
        let mut m = cluster();
        let poll = |m: &mut Model, s: u64, n: u64| {
            m.apply(
                Update::Polled {
                    node: "gate1@h".into(),
                    probe: Probe::Stats(NodeStats {
                        peers: vec![traffic("beacon1@h", n), traffic(ME, 1000 * n)],
                        processes: vec![],
                    }),
                },
                at(s),
            );
        };
        poll(&mut m, 0, 10);
        assert_eq!(m.node("gate1@h").unwrap().rates, None);
        poll(&mut m, 2, 30);
        let r = m.node("gate1@h").unwrap().rates.unwrap();
        assert_eq!(r.msgs_in, Some(10.0));
        assert_eq!(r.bytes_out, 1000.0);
        // The rate sort puts it first.
        for _ in 0..3 {
            m.key(Key::Char('s'));
        }
        assert_eq!(m.sort(), SortKey::Rate);
        assert_eq!(names(&m)[0], "gate1@h");
    }

    #[test]
    fn role_filter_cycles_through_roles_and_text_filters() {
        let mut m = cluster();
        m.key(Key::Char('r'));
        assert_eq!(m.filter(), &Filter::Role("beacon".into()));
        assert_eq!(names(&m), ["beacon1@h"]);
        m.key(Key::Char('r'));
        assert_eq!(names(&m), ["dc1@h"]);
        for _ in 0..3 {
            m.key(Key::Char('r'));
        }
        assert_eq!(names(&m), ["gm1@h"]);
        m.key(Key::Char('r'));
        assert_eq!(m.filter(), &Filter::All);
        assert_eq!(names(&m).len(), 5);

        m.key(Key::Char('/'));
        for c in "gat".chars() {
            m.key(Key::Char(c));
        }
        assert_eq!(m.input(), Some("gat"));
        // Typing does not quit or sort.
        assert_eq!(m.key(Key::Char('q')), Action::Redraw);
        m.key(Key::Backspace);
        m.key(Key::Enter);
        assert_eq!(m.filter(), &Filter::Text("gat".into()));
        assert_eq!(names(&m), ["gate1@h", "gm1@h"]);
    }

    #[test]
    fn selection_moves_within_the_shown_rows_and_enter_opens_details() {
        let mut m = cluster();
        assert_eq!(m.selected().as_deref(), Some("beacon1@h"));
        m.key(Key::Up);
        assert_eq!(m.selected().as_deref(), Some("beacon1@h"));
        m.key(Key::Down);
        m.key(Key::Char('j'));
        assert_eq!(m.selected().as_deref(), Some("ds1@h"));
        m.key(Key::Char('k'));
        assert_eq!(m.selected().as_deref(), Some("dc1@h"));
        // The selection follows the node when the order changes.
        m.key(Key::Char('s'));
        assert_eq!(m.selected().as_deref(), Some("dc1@h"));
        assert_eq!(m.key(Key::Enter), Action::Redraw);
        assert!(m.details_open());
        assert_eq!(m.key(Key::Esc), Action::Redraw);
        assert!(!m.details_open());
        assert_eq!(m.key(Key::Esc), Action::Quit);
        assert_eq!(m.key(Key::Char('q')), Action::Quit);
        assert_eq!(m.key(Key::Interrupt), Action::Quit);
    }

    #[test]
    fn a_silent_node_is_reported_once_and_again_when_it_answers() {
        let mut m = cluster();
        let poll = |m: &mut Model, s: u64, probe: Probe| {
            m.apply(
                Update::Polled {
                    node: "dc1@h".into(),
                    probe,
                },
                at(s),
            )
        };
        poll(&mut m, 1, Probe::NoAnswer);
        poll(&mut m, 3, Probe::NoAnswer);
        assert_eq!(
            m.node("dc1@h").unwrap().reach,
            Reach::NoAnswer(at(1).wall_ms)
        );
        let silent: Vec<_> = m
            .events()
            .iter()
            .filter(|e| e.what == "no answer")
            .collect();
        assert_eq!(silent.len(), 1);
        poll(&mut m, 5, Probe::Stats(NodeStats::default()));
        assert_eq!(m.events().back().unwrap().what, "answering");
    }

    #[test]
    fn high_queue_peaks_are_events_once_per_new_peak() {
        let mut m = cluster();
        let q = |peak| ProcessQueue {
            process: "beacon".into(),
            len: 3,
            bytes: 30,
            peak,
        };
        for (s, peak) in [
            (1, 10),
            (2, HIGH_WATER_EVENT),
            (3, HIGH_WATER_EVENT),
            (4, HIGH_WATER_EVENT * 2),
        ] {
            m.apply(
                Update::Polled {
                    node: "beacon1@h".into(),
                    probe: Probe::Stats(NodeStats {
                        peers: vec![],
                        processes: vec![q(peak)],
                    }),
                },
                at(s),
            );
        }
        let marks: Vec<_> = m.events().iter().filter(|e| e.what == "mailbox").collect();
        assert_eq!(marks.len(), 2, "{marks:?}");
        assert!(marks[1].detail.contains("20000"), "{marks:?}");
    }

    #[test]
    fn without_a_beacon_the_watched_nodes_connections_are_the_rows() {
        let mut m = Model::new("erl1@h", ME);
        m.apply(
            Update::Beacon(BeaconState::NotBeacon("noproc".into())),
            at(0),
        );
        m.apply(
            Update::Members(vec!["erl2@h".into(), "erl3@h".into(), ME.into()]),
            at(0),
        );
        assert_eq!(m.watched(), ["erl1@h", "erl2@h", "erl3@h"]);
        assert!(!m.settled());
        for n in ["erl1@h", "erl2@h", "erl3@h"] {
            m.apply(
                Update::Polled {
                    node: n.into(),
                    probe: Probe::Erlang {
                        nodes: vec!["x@h".into(), ME.into()],
                        io: Some((1000, 2000)),
                    },
                },
                at(1),
            );
        }
        assert!(m.settled());
        assert_eq!(m.node("erl2@h").unwrap().connections(), Some(1));
        assert_eq!(m.readiness(m.node("erl2@h").unwrap()), Readiness::Unknown);
        m.apply(
            Update::NodeDown {
                node: "erl3@h".into(),
                reason: "connection_closed".into(),
            },
            at(2),
        );
        assert!(
            m.node("erl3@h").is_none(),
            "a node nothing vouches for goes"
        );
        assert_eq!(m.events().back().unwrap().what, "nodedown");
    }

    #[test]
    fn the_event_pane_keeps_the_newest_events() {
        let mut m = cluster();
        for i in 0..EVENT_CAPACITY + 10 {
            m.apply(Update::NodeUp(format!("n{i}@h")), at(1));
        }
        assert_eq!(m.events().len(), EVENT_CAPACITY);
        assert_eq!(m.events().front().unwrap().node, "n10@h");
    }
}
