//! Running a role: what `cluster start --role R` does after the node is up (seed 000).
//!
//! A role node registers `{Node, Module, Resource, [Requirement]}` with the beacon, then waits
//! until every requirement has an online provider and connects to those providers. It does not
//! poll: the beacon pushes every registration and status change. A burst of pushes (thousands
//! of re-registrations in a second) is **coalesced**: the runner drains whatever is queued,
//! then asks for its requirements once, with at most one request in flight; a failed request is
//! retried after a pause, never once per event. When the beacon goes down (its node, or just
//! its process) and comes back, the node registers again on its own. With `mesh = "full"` it
//! also connects to every online node the beacon knows, in the background, so the cluster is
//! one full mesh as in Erlang; with `mesh = "requirements"` it keeps to the beacon and its
//! providers.
//!
//! Built-in behaviours: `gate_manager` keeps the table of gates and `gate` registers itself
//! with its gate_managers ([`gates`]).

pub mod gates;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::beacon::{BeaconClient, Event, Provider, Registration, SubscriptionEvent};
use crate::config::{Mesh, Role};
use crate::dist::{ConnectError, Node, NodeEvent, NodeName};

/// Pause between attempts to reach an absent beacon, or to ask again after a failed request.
const RETRY: Duration = Duration::from_millis(500);
/// The longest pause between attempts to list the beacon's nodes for the full mesh.
const MESH_RETRY_MAX: Duration = Duration::from_secs(5);

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
    /// The beacon rejects our cookie; still trying, until [`RunOptions::cookie_reject_limit`].
    CookieRejected,
    /// Gave up: the node cannot take part (its cookie was rejected for too long). The node
    /// should exit with this reason.
    Failed(String),
}

/// How a role runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How long the beacon may go on rejecting our cookie before the role gives up. A wrong
    /// cookie does not fix itself; a node retrying it for ever only fills the beacon's log.
    pub cookie_reject_limit: Duration,
}

/// Default [`RunOptions::cookie_reject_limit`].
pub const DEFAULT_COOKIE_REJECT_LIMIT: Duration = Duration::from_secs(30);

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            cookie_reject_limit: DEFAULT_COOKIE_REJECT_LIMIT,
        }
    }
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
            Phase::CookieRejected => f.write_str("the beacon rejects our cookie; retrying"),
            Phase::Failed(why) => f.write_str(why),
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
    run_with(node, role, mesh, beacon, phase, RunOptions::default()).await
}

/// [`run`] with options. Returns early, with the phase [`Phase::Failed`], when the role
/// cannot take part.
pub async fn run_with(
    node: Node,
    role: Role,
    mesh: Mesh,
    beacon: NodeName,
    phase: watch::Sender<Phase>,
    options: RunOptions,
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
    let mut runner = Runner {
        node,
        client,
        role,
        mesh,
        phase,
        gate_managers: Arc::default(),
        options,
    };
    loop {
        runner.phase.send_replace(Phase::Connecting);
        if !runner.reach_and_register(&registration).await {
            return;
        }
        runner.phase.send_replace(Phase::Registered);
        info!(%beacon, "registered with the beacon");
        // Returns when the beacon goes away; then register again.
        if !runner.follow().await {
            return;
        }
        warn!(%beacon, "beacon went down; will register again when it is back");
    }
}

struct Runner {
    node: Node,
    client: BeaconClient,
    role: Role,
    mesh: Mesh,
    phase: watch::Sender<Phase>,
    /// The gate_managers on offer (a gate registers with each, retrying while it stays).
    gate_managers: Arc<Mutex<BTreeSet<String>>>,
    options: RunOptions,
}

/// Why an attempt to reach and register with the beacon failed.
enum AttemptError {
    Connect(ConnectError),
    Register(String),
}

impl std::fmt::Display for AttemptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttemptError::Connect(e) => e.fmt(f),
            AttemptError::Register(e) => f.write_str(e),
        }
    }
}

/// What following the beacon's pushes decided.
enum Next {
    /// Keep going; whether the requirements must be asked again.
    Continue(bool),
    /// The beacon is gone.
    BeaconDown,
}

impl Runner {
    /// Connects to the beacon and registers, retrying until it works or the node stops
    /// (`false`). A beacon that rejects our cookie for longer than the options allow ends the
    /// role with [`Phase::Failed`].
    async fn reach_and_register(&self, reg: &Registration) -> bool {
        let mut logged = false;
        let mut rejected_since: Option<tokio::time::Instant> = None;
        loop {
            let attempt = async {
                self.node
                    .connect(self.client.beacon())
                    .await
                    .map_err(AttemptError::Connect)?;
                self.client
                    .register(reg.clone())
                    .await
                    .map_err(|e| AttemptError::Register(e.to_string()))
            };
            let result = tokio::select! {
                _ = self.node.stopped() => return false,
                r = attempt => r,
            };
            match result {
                Ok(()) => return true,
                Err(AttemptError::Connect(ConnectError::BadCookie)) => {
                    let since = *rejected_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= self.options.cookie_reject_limit {
                        let why = format!(
                            "the beacon {} rejected our cookie for {}s; giving up",
                            self.client.beacon(),
                            self.options.cookie_reject_limit.as_secs()
                        );
                        self.phase.send_replace(Phase::Failed(why));
                        return false;
                    }
                    if self.phase.send_replace(Phase::CookieRejected) != Phase::CookieRejected {
                        warn!(beacon = %self.client.beacon(), "the beacon rejects our cookie");
                    }
                }
                Err(e) => {
                    rejected_since = None;
                    if self.phase.borrow().clone() == Phase::CookieRejected {
                        self.phase.send_replace(Phase::Connecting);
                    }
                    if !logged {
                        warn!(beacon = %self.client.beacon(), "cannot register yet: {e}");
                        logged = true;
                    } else {
                        debug!(beacon = %self.client.beacon(), "cannot register yet: {e}");
                    }
                }
            }
            tokio::select! {
                _ = self.node.stopped() => return false,
                _ = tokio::time::sleep(RETRY) => {}
            }
        }
    }

    /// Follows the beacon's pushes until the beacon goes down (`true`) or the node stops
    /// (`false`).
    async fn follow(&mut self) -> bool {
        // A full-mesh node hears of every node (it connects to all of them); otherwise only
        // of the providers of its requirements.
        let subscribed = match self.mesh {
            Mesh::Full => self.client.subscribe().await,
            _ => self.client.subscribe_to(&self.role.requirements).await,
        };
        let mut sub = match subscribed {
            Ok(s) => s,
            Err(e) => {
                warn!("cannot subscribe to the beacon: {e}");
                return true;
            }
        };
        let mesher = (self.mesh == Mesh::Full).then(|| Mesher::start(&self.node, &self.client));
        if let Some(m) = &mesher {
            m.again();
        }
        let mut dirty = true;
        let mut failing = false;
        let mut retry_at: Option<tokio::time::Instant> = None;
        loop {
            if dirty && retry_at.is_none() {
                match self.client.offer(self.node.name().as_str()).await {
                    Ok(offer) => {
                        dirty = false;
                        if failing {
                            info!("the beacon answers again");
                            failing = false;
                        }
                        self.apply(offer);
                    }
                    Err(e) => {
                        if !failing {
                            warn!("cannot get requirements: {e}; asking again shortly");
                            failing = true;
                        } else {
                            debug!("cannot get requirements: {e}");
                        }
                        retry_at = Some(tokio::time::Instant::now() + RETRY);
                    }
                }
            }
            let retry = async {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let first = tokio::select! {
                _ = self.node.stopped() => return false,
                ev = sub.next() => match ev { Some(ev) => Some(ev), None => return false },
                _ = retry => { retry_at = None; None }
            };
            // Drain the burst, then ask once.
            let mut pending = first;
            while let Some(ev) = pending.take().or_else(|| sub.try_next()) {
                match self.on_event(ev, mesher.as_ref()) {
                    Next::Continue(d) => dirty |= d,
                    Next::BeaconDown => return true,
                }
            }
        }
    }

    fn on_event(&mut self, ev: SubscriptionEvent, mesher: Option<&Mesher>) -> Next {
        match ev {
            SubscriptionEvent::Beacon(Event::Registered(info)) => {
                if self.mesh == Mesh::Full
                    && info.status == "online"
                    && info.node != self.node.name().as_str()
                {
                    if let Ok(n) = NodeName::parse(&info.node) {
                        self.node.connect_background(&n);
                    }
                }
                Next::Continue(true)
            }
            SubscriptionEvent::Beacon(Event::Offline { .. }) => Next::Continue(true),
            // A report changes no one's providers.
            SubscriptionEvent::Beacon(Event::Report { .. }) => Next::Continue(false),
            SubscriptionEvent::Beacon(Event::Resync) => {
                if let Some(m) = mesher {
                    m.again();
                }
                Next::Continue(true)
            }
            SubscriptionEvent::BeaconDown { reason } => {
                debug!(%reason, "the beacon is gone");
                Next::BeaconDown
            }
            SubscriptionEvent::Node(NodeEvent::Down { node, reason, .. }) => {
                if let Phase::Ready(providers) = &*self.phase.borrow() {
                    if providers.iter().any(|p| p.node == node.as_str()) {
                        warn!(provider = %node, %reason, "a provider went down");
                    }
                }
                Next::Continue(false)
            }
            SubscriptionEvent::Node(NodeEvent::Up { .. }) => Next::Continue(false),
        }
    }

    /// Updates the phase from an offer, connects to the providers (in the background), and
    /// lets a gate register with any new gate_manager.
    fn apply(&mut self, offer: Vec<Provider>) {
        let missing: Vec<String> = self
            .role
            .requirements
            .iter()
            .filter(|r| !offer.iter().any(|p| &p.name == *r))
            .cloned()
            .collect();
        for p in &offer {
            if let Ok(name) = NodeName::parse(&p.node) {
                self.node.connect_background(&name);
            }
        }
        if self.role.name == "gate" {
            let current: BTreeSet<String> = offer
                .iter()
                .filter(|p| p.name == "gate_manager")
                .map(|p| p.node.clone())
                .collect();
            let mut known = lock(&self.gate_managers);
            for gm in current.difference(&known) {
                if let Ok(gm) = NodeName::parse(gm) {
                    let client = gates::GateManagerClient::new(self.node.clone(), gm.clone());
                    let wanted = self.gate_managers.clone();
                    self.node.spawn_task(register_with_manager(
                        self.node.clone(),
                        client,
                        gm,
                        wanted,
                    ));
                }
            }
            *known = current;
        }
        let next = if missing.is_empty() {
            Phase::Ready(offer)
        } else {
            Phase::Waiting(missing)
        };
        if *self.phase.borrow() != next {
            info!("{next}");
            self.phase.send_replace(next);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A gate registers with a gate_manager, asking again after a growing pause while the
/// gate_manager stays on offer: one failed call (a timeout while a hundred nodes start, a
/// handshake that reached whoever took the manager's old port) must not leave the gate out of
/// the manager's table for good.
async fn register_with_manager(
    node: Node,
    client: gates::GateManagerClient,
    gm: NodeName,
    wanted: Arc<Mutex<BTreeSet<String>>>,
) {
    let mut pause = RETRY;
    let mut failures = 0u32;
    loop {
        if !lock(&wanted).contains(gm.as_str()) {
            return;
        }
        let attempt = tokio::select! {
            _ = node.stopped() => return,
            r = client.register_gate() => r,
        };
        match attempt {
            Ok(()) => {
                info!(manager = %gm, "registered with gate_manager");
                return;
            }
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    warn!(manager = %gm, "cannot register with gate_manager: {e}; trying again");
                } else {
                    debug!(manager = %gm, "cannot register with gate_manager: {e}");
                }
            }
        }
        tokio::select! {
            _ = node.stopped() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MESH_RETRY_MAX);
    }
}

/// Keeps a full-mesh node connected to every online node the beacon lists: one task per
/// subscription, asked again after a resync. Requests coalesce (one listing in flight, one
/// more queued at most), and a listing that fails (the beacon busy, a timeout under load) is
/// asked again after a growing pause instead of being dropped: a node that missed it would
/// stay outside the mesh for good. The task ends with the subscription.
struct Mesher {
    wanted: std::sync::Arc<tokio::sync::Notify>,
    task: tokio::task::AbortHandle,
}

impl Mesher {
    fn start(node: &Node, client: &BeaconClient) -> Mesher {
        let wanted = std::sync::Arc::new(tokio::sync::Notify::new());
        let (node, client, w) = (node.clone(), client.clone(), wanted.clone());
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = node.stopped() => return,
                    _ = w.notified() => {}
                }
                let mut pause = RETRY;
                let mut failures = 0u32;
                loop {
                    let listing = tokio::select! {
                        _ = node.stopped() => return,
                        r = client.nodes() => r,
                    };
                    match listing {
                        Ok(nodes) => {
                            for n in nodes.iter().filter(|n| n.status == "online") {
                                if let Ok(name) = NodeName::parse(&n.node) {
                                    node.connect_background(&name);
                                }
                            }
                            break;
                        }
                        Err(e) => {
                            failures += 1;
                            if failures == 3 {
                                warn!("cannot list the beacon's nodes to mesh with: {e}; still trying");
                            } else {
                                debug!("cannot list the beacon's nodes to mesh with: {e}");
                            }
                        }
                    }
                    tokio::select! {
                        _ = node.stopped() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(MESH_RETRY_MAX);
                }
            }
        })
        .abort_handle();
        Mesher { wanted, task }
    }

    /// Asks for one more listing (coalesced with any already queued).
    fn again(&self) {
        self.wanted.notify_one();
    }
}

impl Drop for Mesher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
