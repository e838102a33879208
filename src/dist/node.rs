//! The node runtime: the table of connections, the table of local processes (mailboxes) and
//! registered names, and the routing between them. A connection's reader calls
//! [`Dispatch::dispatch`] here; processes call [`Node::send`] and friends.
//!
//! Behaviour follows `net_kernel` and `dist_util` where the wire makes it visible:
//! - a connection to a peer is set up on first use (auto-connect) unless switched off;
//! - when two nodes dial each other at once, the one whose name compares greater keeps its
//!   own attempt (`nok` to the other), the lesser accepts (`ok_simultaneous`);
//! - a monitor on an unknown registered name is answered at once with `noproc`;
//! - gen_call tags are returned exactly as received, including `[alias|Ref]`.
//!
//! Locks are plain `std::sync::Mutex`es held only for table lookups, never across `.await`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use eetf::{Atom, Pid, Reference, Term};
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::codec::{encode_data, Control, ProcRef, DEFAULT_MAX_FRAME};
use super::connection::{self, ConnHandle, ConnParams, Dispatch, DownReason};
use super::handshake::{Acceptor, HandshakeError, Hello, Initiator, LocalInfo, PeerInfo, Status};
use super::setup::{self, SetupError, DEFAULT_SETUP_TIME};
use super::term::{self, atom, tuple};
use super::{flags, Cookie, NodeName};
use crate::epmd::{ClientError, EpmdClient, NodeEntry, NodeType, Registration};

/// Messages a mailbox holds before senders wait.
pub const MAILBOX_CAPACITY: usize = 4096;
/// Node events buffered per `monitor_nodes` subscriber before it lags.
pub const EVENT_CAPACITY: usize = 256;
/// Erlang's default `net_ticktime`.
pub const DEFAULT_TICKTIME: Duration = Duration::from_secs(60);
/// Handshakes in progress at once on the listener; further connections are closed at once, so
/// a flood of half-open connections cannot exhaust descriptors or tasks.
pub const MAX_PENDING_HANDSHAKES: usize = 256;
/// How long shutdown waits for connection tasks.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Starts a port mapper on the given port when none answers (`cluster epmd --daemon`).
pub type EpmdStarter = Arc<dyn Fn(u16) -> std::io::Result<()> + Send + Sync>;

/// How a node is set up.
#[derive(Clone)]
pub struct NodeConfig {
    /// Our name.
    pub name: NodeName,
    /// The shared secret.
    pub cookie: Cookie,
    /// Visible (a role node) or hidden (a CLI tool).
    pub visible: bool,
    /// Put in the port mapper's Extra field, so `cluster names` can show it.
    pub role: Option<String>,
    /// The port mapper's port on every host.
    pub epmd_port: u16,
    /// Listen for and register incoming connections. CLI tools only dial out.
    pub listen: bool,
    /// Listen address; default: the address of our name's host.
    pub listen_addr: Option<IpAddr>,
    /// Distribution port range, like `inet_dist_listen_min/max`; `(0, 0)` picks any.
    pub port_range: (u16, u16),
    /// Called when no port mapper answers at start-up.
    pub epmd_starter: Option<EpmdStarter>,
    /// `net_ticktime`.
    pub ticktime: Duration,
    /// `net_setuptime`: the limit for each handshake step.
    pub setup_time: Duration,
    /// Largest frame accepted from a peer.
    pub max_frame: usize,
    /// Connect on first send, like `dist_auto_connect`.
    pub auto_connect: bool,
}

impl NodeConfig {
    /// A visible, listening node with Erlang's defaults.
    pub fn new(name: NodeName, cookie: Cookie) -> NodeConfig {
        NodeConfig {
            name,
            cookie,
            visible: true,
            role: None,
            epmd_port: crate::epmd::DEFAULT_PORT,
            listen: true,
            listen_addr: None,
            port_range: (0, 0),
            epmd_starter: None,
            ticktime: DEFAULT_TICKTIME,
            setup_time: DEFAULT_SETUP_TIME,
            max_frame: DEFAULT_MAX_FRAME,
            auto_connect: true,
        }
    }

    /// A hidden node that only dials out, for CLI tools.
    pub fn hidden_client(name: NodeName, cookie: Cookie) -> NodeConfig {
        NodeConfig {
            visible: false,
            listen: false,
            ..NodeConfig::new(name, cookie)
        }
    }
}

impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConfig")
            .field("name", &self.name)
            .field("cookie", &self.cookie)
            .field("visible", &self.visible)
            .field("role", &self.role)
            .field("epmd_port", &self.epmd_port)
            .field("listen", &self.listen)
            .field("ticktime", &self.ticktime)
            .finish_non_exhaustive()
    }
}

/// A change in the set of connected nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A connection came up.
    Up {
        /// The peer.
        node: NodeName,
        /// Whether it is a visible node.
        visible: bool,
    },
    /// A connection went down.
    Down {
        /// The peer.
        node: NodeName,
        /// Whether it was a visible node.
        visible: bool,
        /// Why (`net_tick_timeout`, `connection_closed`, …).
        reason: String,
    },
}

/// Errors starting a node.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The listen address could not be worked out.
    #[error("cannot resolve the listen address for host {host}: {reason}")]
    Resolve {
        /// Our name's host.
        host: String,
        /// Why.
        reason: String,
    },
    /// No port in the range could be bound.
    #[error("cannot listen on {addr} (ports {min}-{max}): {error}")]
    Bind {
        /// The address.
        addr: IpAddr,
        /// Range start.
        min: u16,
        /// Range end.
        max: u16,
        /// The last OS error.
        error: std::io::Error,
    },
    /// Registration with the port mapper failed.
    #[error("cannot register with the port mapper: {0}")]
    Epmd(#[from] ClientError),
}

/// Errors connecting to a peer. The display strings are what `cluster ping` prints.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// The peer's host has no port mapper.
    #[error("no port mapper at {host}:{port}")]
    NoPortMapper {
        /// Host.
        host: String,
        /// Port.
        port: u16,
    },
    /// The port mapper failed to answer properly.
    #[error("{0}")]
    PortMapper(ClientError),
    /// The port mapper does not know the name.
    #[error("name {alive} not registered on {host}")]
    NotRegistered {
        /// Name part.
        alive: String,
        /// Host.
        host: String,
    },
    /// TCP connect failed.
    #[error("connection refused by {addr}")]
    Refused {
        /// Where.
        addr: String,
    },
    /// Nothing answered in time.
    #[error("timeout")]
    Timeout,
    /// The cookies differ.
    #[error("cookie rejected")]
    BadCookie,
    /// Another handshake failure.
    #[error("handshake failed: {0}")]
    Handshake(SetupError),
    /// Long and short names cannot be mixed.
    #[error("cannot connect a {ours}-name node to {peer} (a {theirs}-name node)")]
    NameKind {
        /// Our kind.
        ours: super::NameKind,
        /// The peer.
        peer: String,
        /// Its kind.
        theirs: super::NameKind,
    },
    /// Auto-connect is off and no connection exists.
    #[error("not connected to {0} and auto-connect is off")]
    NotConnected(String),
    /// Our node is shutting down.
    #[error("node is shutting down")]
    ShuttingDown,
}

/// Errors sending a message.
#[derive(Debug, Error)]
pub enum SendError {
    /// No connection to the target's node.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The connection closed while sending.
    #[error("connection to {0} closed")]
    Closed(String),
}

/// Errors of a gen_call.
#[derive(Debug, Error)]
pub enum CallError {
    /// The request could not be sent.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The target does not exist.
    #[error("noproc")]
    NoProc,
    /// The target exited before replying.
    #[error("target exited: {0}")]
    Exit(String),
    /// The target's node went down.
    #[error("noconnection")]
    NodeDown,
    /// No reply in time.
    #[error("timeout")]
    Timeout,
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Dest {
    /// A process.
    Pid(Pid),
    /// A registered name on a node.
    Name {
        /// The registered name.
        name: String,
        /// The node.
        node: NodeName,
    },
}

impl Dest {
    /// `{name, node}`.
    pub fn name(name: &str, node: &NodeName) -> Dest {
        Dest::Name {
            name: name.to_owned(),
            node: node.clone(),
        }
    }
}

/// The `From` of a gen_call: the caller's pid and the tag to send back.
#[derive(Debug, Clone, PartialEq)]
pub struct From {
    /// The caller.
    pub pid: Pid,
    /// The tag, returned exactly as received (a reference or `[alias|Ref]`).
    pub tag: Term,
}

/// Splits `{'$gen_call', {Pid, Tag}, Request}`.
pub fn parse_gen_call(msg: &Term) -> Option<(From, &Term)> {
    let els = term::as_tuple(msg)?;
    if els.len() != 3 || term::as_atom(&els[0]) != Some("$gen_call") {
        return None;
    }
    let from = term::as_tuple(&els[1])?;
    match from {
        [Term::Pid(pid), tag] => Some((
            From {
                pid: pid.clone(),
                tag: tag.clone(),
            },
            &els[2],
        )),
        _ => None,
    }
}

struct Process {
    tx: mpsc::Sender<Term>,
    names: Vec<String>,
    /// Remote processes monitoring this one: (their node, their pid, target as they named it,
    /// reference).
    monitored_by: Vec<(NodeName, Pid, ProcRef, Reference)>,
}

enum Slot {
    Connecting,
    Accepting,
    Up(Arc<ConnHandle>),
}

pub(crate) struct Inner {
    cfg: NodeConfig,
    creation: u32,
    listen_port: u16,
    next_id: AtomicU32,
    next_ref: AtomicU32,
    procs: Mutex<HashMap<u32, Process>>,
    names: Mutex<HashMap<String, u32>>,
    conns: Mutex<HashMap<NodeName, Slot>>,
    changed: watch::Sender<u64>,
    events: broadcast::Sender<NodeEvent>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    system_pid: Pid,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section completes its update before it can panic, so a poisoned lock
    // still guards consistent data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running node. Cheap to clone; all clones are the same node.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

/// A process: a pid, optionally a registered name, and a queue of received messages.
/// Dropping it ends the process; remote monitors are told `normal`.
pub struct Mailbox {
    node: Node,
    id: u32,
    pid: Pid,
    rx: mpsc::Receiver<Term>,
}

impl Mailbox {
    /// This process's pid.
    pub fn pid(&self) -> &Pid {
        &self.pid
    }

    /// The next message; `None` once the node has shut down.
    pub async fn recv(&mut self) -> Option<Term> {
        self.rx.recv().await
    }

    /// The node this process lives on.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Sends `msg` to `to` with this process as the sender.
    pub async fn send(&self, to: &Dest, msg: Term) -> Result<(), SendError> {
        self.node.send_from(&self.pid, to, msg).await
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        self.node
            .inner
            .exit_process(self.id, &self.pid, atom("normal"));
    }
}

impl Node {
    /// Starts a node: binds its listener, registers with the port mapper (starting one if
    /// allowed and needed), and starts the built-in processes.
    pub async fn start(cfg: NodeConfig) -> Result<Node, NodeError> {
        let listener = if cfg.listen {
            Some(bind(&cfg).await?)
        } else {
            None
        };
        let listen_port = listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map_or(0, |a| a.port());

        let registration = if cfg.listen {
            Some(register(&cfg, listen_port).await?)
        } else {
            None
        };
        let creation = registration
            .as_ref()
            .map_or_else(|| rand::random::<u32>().max(4), |r| r.creation);

        let system_pid = Pid::new(cfg.name.as_str(), 1, 0, creation);
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let inner = Arc::new(Inner {
            creation,
            listen_port,
            next_id: AtomicU32::new(2),
            next_ref: AtomicU32::new(1),
            procs: Mutex::new(HashMap::new()),
            names: Mutex::new(HashMap::new()),
            conns: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
            events,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            system_pid,
            cfg,
        });
        let node = Node { inner };
        if let Some(listener) = listener {
            node.inner
                .tracker
                .spawn(accept_loop(node.clone(), listener));
        }
        if let Some(reg) = registration {
            node.inner.tracker.spawn(keep_registered(node.clone(), reg));
        }
        super::builtin::start(&node);
        info!(
            node = %node.name(),
            port = listen_port,
            creation,
            "node started"
        );
        Ok(node)
    }

    /// Our name.
    pub fn name(&self) -> &NodeName {
        &self.inner.cfg.name
    }

    /// Our creation.
    pub fn creation(&self) -> u32 {
        self.inner.creation
    }

    /// The distribution listen port (0 for a node that does not listen).
    pub fn listen_port(&self) -> u16 {
        self.inner.listen_port
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.cfg
    }

    /// A new anonymous process.
    pub fn spawn_mailbox(&self) -> Mailbox {
        let (id, pid, rx) = self.inner.new_process(None);
        Mailbox {
            node: self.clone(),
            id,
            pid,
            rx,
        }
    }

    /// A new process registered under `name`; `None` if the name is taken.
    pub fn register(&self, name: &str) -> Option<Mailbox> {
        let (id, pid, rx) = self.inner.new_named(name)?;
        Some(Mailbox {
            node: self.clone(),
            id,
            pid,
            rx,
        })
    }

    /// Registers one more name for an existing process (the beacon answers to two names);
    /// `false` if the name is taken.
    pub fn register_alias(&self, mailbox: &Mailbox, name: &str) -> bool {
        let mut names = lock(&self.inner.names);
        if names.contains_key(name) {
            return false;
        }
        let mut procs = lock(&self.inner.procs);
        let Some(process) = procs.get_mut(&mailbox.id) else {
            return false;
        };
        process.names.push(name.to_owned());
        names.insert(name.to_owned(), mailbox.id);
        true
    }

    /// Whether `name` is registered here.
    pub fn is_registered(&self, name: &str) -> bool {
        lock(&self.inner.names).contains_key(name)
    }

    /// A fresh reference.
    pub fn make_ref(&self) -> Reference {
        let n = self.inner.next_ref.fetch_add(1, Ordering::Relaxed);
        Reference {
            node: Atom::from(self.name().as_str()),
            id: vec![n & 0x3ffff, n >> 18, rand::random()],
            creation: self.inner.creation,
        }
    }

    /// Sends `msg` to `to` with the node's system process as the sender.
    pub async fn send(&self, to: &Dest, msg: Term) -> Result<(), SendError> {
        let from = self.inner.system_pid.clone();
        self.send_from(&from, to, msg).await
    }

    async fn send_from(&self, from: &Pid, to: &Dest, msg: Term) -> Result<(), SendError> {
        match to {
            Dest::Pid(pid) if self.inner.is_local(pid) => {
                self.inner.deliver_pid(pid, msg).await;
                Ok(())
            }
            Dest::Name { name, node } if node == self.name() => {
                self.inner.deliver_name(name, msg).await;
                Ok(())
            }
            Dest::Pid(pid) => {
                let peer = peer_of(pid)?;
                self.send_control(&peer, &Control::Send { to: pid.clone() }, Some(&msg))
                    .await
            }
            Dest::Name { name, node } => {
                let ctl = Control::RegSend {
                    from: from.clone(),
                    to: name.clone(),
                };
                self.send_control(node, &ctl, Some(&msg)).await
            }
        }
    }

    async fn send_control(
        &self,
        peer: &NodeName,
        ctl: &Control,
        payload: Option<&Term>,
    ) -> Result<(), SendError> {
        let conn = self.connection(peer).await?;
        send_on(&conn, ctl, payload).await
    }

    /// Replies to a gen_call, sending `{Tag, Reply}` back with the tag exactly as received.
    /// An `[alias|Ref]` tag is answered through the alias when the peer supports aliases.
    pub async fn reply(&self, from: &From, reply: Term) -> Result<(), SendError> {
        let msg = tuple(vec![from.tag.clone(), reply]);
        if let Term::ImproperList(l) = &from.tag {
            let is_alias = l.elements.len() == 1 && term::as_atom(&l.elements[0]) == Some("alias");
            if let (true, Term::Reference(alias)) = (is_alias, &*l.last) {
                if !self.inner.is_local(&from.pid) {
                    let peer = peer_of(&from.pid)?;
                    let conn = self.connection(&peer).await?;
                    if conn.peer.flags & flags::ALIAS != 0 {
                        let ctl = Control::AliasSend {
                            from: self.inner.system_pid.clone(),
                            alias: (**alias).clone(),
                        };
                        return send_on(&conn, &ctl, Some(&msg)).await;
                    }
                }
            }
        }
        self.send(&Dest::Pid(from.pid.clone()), msg).await
    }

    /// The gen_call client: sends `{'$gen_call', {Self, Ref}, Request}` and waits for the
    /// reply, failing fast with `noproc` when the target does not exist and with
    /// `noconnection` when its node goes down.
    pub async fn call(
        &self,
        to: &Dest,
        request: Term,
        timeout: Duration,
    ) -> Result<Term, CallError> {
        let mut me = self.spawn_mailbox();
        let mref = self.make_ref();
        let mut node_events = self.monitor_nodes();
        let (target_node, target) = match to {
            Dest::Pid(p) => (
                peer_of(p).map_err(SendError::from)?,
                ProcRef::Pid(p.clone()),
            ),
            Dest::Name { name, node } => (node.clone(), ProcRef::Name(name.clone())),
        };
        let remote = &target_node != self.name();
        let work = async {
            if remote {
                let ctl = Control::Monitor {
                    from: me.pid.clone(),
                    to: target.clone(),
                    reference: mref.clone(),
                };
                self.send_control(&target_node, &ctl, None).await?;
            } else if !self.inner.local_exists(&target) {
                return Err(CallError::NoProc);
            }
            let req = tuple(vec![
                atom("$gen_call"),
                tuple(vec![term::pid(&me.pid), term::reference(&mref)]),
                request,
            ]);
            me.send(to, req).await?;
            loop {
                tokio::select! {
                    msg = me.recv() => {
                        let Some(msg) = msg else { return Err(CallError::Send(SendError::Connect(ConnectError::ShuttingDown))) };
                        let Some(els) = term::as_tuple(&msg) else { continue };
                        match els {
                            [Term::Reference(r), reply] if **r == mref => return Ok(reply.clone()),
                            [down, Term::Reference(r), _, _, reason]
                                if term::as_atom(down) == Some("DOWN") && **r == mref =>
                            {
                                return Err(match term::as_atom(reason) {
                                    Some("noproc") => CallError::NoProc,
                                    Some("noconnection") => CallError::NodeDown,
                                    _ => CallError::Exit(reason.to_string()),
                                });
                            }
                            _ => continue,
                        }
                    }
                    ev = node_events.recv() => {
                        if let Ok(NodeEvent::Down { node, .. }) = ev {
                            if node == target_node {
                                return Err(CallError::NodeDown);
                            }
                        }
                    }
                }
            }
        };
        let result = match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout),
        };
        // Only a monitor that reached the peer needs removing; re-dialling a node we could not
        // reach just to demonitor would repeat the failed connection attempt.
        if remote && matches!(result, Ok(_) | Err(CallError::Timeout | CallError::Exit(_))) {
            let ctl = Control::Demonitor {
                from: me.pid.clone(),
                to: target,
                reference: mref,
            };
            let _ = self.send_control(&target_node, &ctl, None).await;
        }
        result
    }

    /// Monitors `target` on behalf of `watcher`: when it exits (or does not exist) the watcher
    /// receives `{'DOWN', Ref, process, Target, Reason}`. Local targets are only checked for
    /// existence (a missing one gives `noproc` at once).
    pub async fn monitor(&self, watcher: &Mailbox, target: &Dest) -> Result<Reference, SendError> {
        let reference = self.make_ref();
        let (node, proc_ref) = match target {
            Dest::Pid(p) => (peer_of(p)?, ProcRef::Pid(p.clone())),
            Dest::Name { name, node } => (node.clone(), ProcRef::Name(name.clone())),
        };
        if &node == self.name() {
            if !self.inner.local_exists(&proc_ref) {
                let down = tuple(vec![
                    atom("DOWN"),
                    term::reference(&reference),
                    atom("process"),
                    atom("noproc"),
                    atom("noproc"),
                ]);
                self.inner.deliver_pid(&watcher.pid, down).await;
            }
            return Ok(reference);
        }
        let ctl = Control::Monitor {
            from: watcher.pid.clone(),
            to: proc_ref,
            reference: reference.clone(),
        };
        self.send_control(&node, &ctl, None).await?;
        Ok(reference)
    }

    /// Connects to `peer` unless already connected.
    pub async fn connect(&self, peer: &NodeName) -> Result<(), ConnectError> {
        self.connect_inner(peer).await.map(|_| ())
    }

    /// Closes the connection to `peer`, if any. Both sides see nodedown.
    pub fn disconnect(&self, peer: &NodeName) -> bool {
        match self.inner.up(peer) {
            Some(h) => {
                h.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Connected visible nodes, like `erlang:nodes()`.
    pub fn nodes(&self) -> Vec<NodeName> {
        self.connected(false)
    }

    /// Connected nodes; with `hidden`, hidden ones too (`nodes(connected)`).
    pub fn connected(&self, hidden: bool) -> Vec<NodeName> {
        self.peers()
            .into_iter()
            .filter(|(_, visible)| hidden || *visible)
            .map(|(n, _)| n)
            .collect()
    }

    /// Every connected node with whether it is visible, sorted by name.
    pub fn peers(&self) -> Vec<(NodeName, bool)> {
        let mut v: Vec<(NodeName, bool)> = lock(&self.inner.conns)
            .iter()
            .filter_map(|(n, s)| match s {
                Slot::Up(h) => Some((n.clone(), h.peer.is_visible())),
                _ => None,
            })
            .collect();
        v.sort();
        v
    }

    /// A stream of nodeup/nodedown events from now on.
    pub fn monitor_nodes(&self) -> broadcast::Receiver<NodeEvent> {
        self.inner.events.subscribe()
    }

    /// Closes every connection and the port-mapper registration, and waits (bounded) for
    /// the node's tasks to finish.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let handles: Vec<Arc<ConnHandle>> = lock(&self.inner.conns)
            .values()
            .filter_map(|s| match s {
                Slot::Up(h) => Some(h.clone()),
                _ => None,
            })
            .collect();
        for h in handles {
            h.cancel.cancel();
        }
        self.inner.tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.inner.tracker.wait())
            .await
            .is_err()
        {
            warn!("node tasks still running after {SHUTDOWN_GRACE:?}");
        }
    }

    /// Resolves once shutdown has begun.
    pub async fn stopped(&self) {
        self.inner.shutdown.cancelled().await
    }

    async fn connection(&self, peer: &NodeName) -> Result<Arc<ConnHandle>, ConnectError> {
        if let Some(h) = self.inner.up(peer) {
            return Ok(h);
        }
        if !self.inner.cfg.auto_connect {
            return Err(ConnectError::NotConnected(peer.to_string()));
        }
        self.connect_inner(peer).await
    }

    async fn connect_inner(&self, peer: &NodeName) -> Result<Arc<ConnHandle>, ConnectError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(ConnectError::ShuttingDown);
        }
        let ours = self.name().kind();
        if peer.kind() != ours {
            return Err(ConnectError::NameKind {
                ours,
                peer: peer.to_string(),
                theirs: peer.kind(),
            });
        }
        let limit = self.inner.cfg.setup_time * 2;
        // Claim the slot, or wait for whoever holds it.
        loop {
            let mut changes = self.inner.changed.subscribe();
            {
                let mut conns = lock(&self.inner.conns);
                match conns.get(peer) {
                    Some(Slot::Up(h)) => return Ok(h.clone()),
                    Some(_) => {}
                    None => {
                        conns.insert(peer.clone(), Slot::Connecting);
                        break;
                    }
                }
            }
            if tokio::time::timeout(limit, changes.changed())
                .await
                .is_err()
            {
                return Err(ConnectError::Timeout);
            }
        }
        let mut changes = self.inner.changed.subscribe();
        match self.dial(peer).await {
            Ok((stream, info)) => Ok(self.inner.install(self, stream, info)),
            Err(e) => {
                {
                    let mut conns = lock(&self.inner.conns);
                    if matches!(conns.get(peer), Some(Slot::Connecting)) {
                        conns.remove(peer);
                    }
                }
                self.inner.changed.send_modify(|v| *v += 1);
                // Lost a simultaneous connect: the peer's own attempt is being accepted.
                if matches!(&e, ConnectError::Handshake(SetupError::Handshake(HandshakeError::Refused(r))) if r.starts_with("nok"))
                {
                    let deadline = tokio::time::Instant::now() + limit;
                    loop {
                        if let Some(Slot::Up(h)) = lock(&self.inner.conns).get(peer) {
                            return Ok(h.clone());
                        }
                        if tokio::time::timeout_at(deadline, changes.changed())
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
                Err(e)
            }
        }
    }

    async fn dial(&self, peer: &NodeName) -> Result<(TcpStream, PeerInfo), ConnectError> {
        let cfg = &self.inner.cfg;
        let epmd = EpmdClient::new(peer.host(), cfg.epmd_port).with_timeout(cfg.setup_time);
        let entry = match epmd.port_please(peer.alive()).await {
            Ok(Some(entry)) => entry,
            Ok(None) => {
                return Err(ConnectError::NotRegistered {
                    alive: peer.alive().into(),
                    host: peer.host().into(),
                })
            }
            Err(ClientError::Connect { .. } | ClientError::Resolve { .. }) => {
                return Err(ConnectError::NoPortMapper {
                    host: peer.host().into(),
                    port: cfg.epmd_port,
                })
            }
            Err(ClientError::Timeout { .. }) => return Err(ConnectError::Timeout),
            Err(e) => return Err(ConnectError::PortMapper(e)),
        };
        let addr = format!("{}:{}", peer.host(), entry.port);
        let mut stream = match tokio::time::timeout(
            cfg.setup_time,
            TcpStream::connect((peer.host(), entry.port)),
        )
        .await
        {
            Err(_) => return Err(ConnectError::Timeout),
            Ok(Err(_)) => return Err(ConnectError::Refused { addr }),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        let hs = Initiator::new(
            self.inner.local_info(),
            peer.clone(),
            cfg.cookie.clone(),
            rand::random(),
        );
        match setup::initiate(&mut stream, hs, cfg.setup_time).await {
            Ok(info) => Ok((stream, info)),
            Err(SetupError::Handshake(HandshakeError::BadCookie)) => Err(ConnectError::BadCookie),
            Err(SetupError::Timeout(_)) => Err(ConnectError::Timeout),
            Err(e) => Err(ConnectError::Handshake(e)),
        }
    }
}

/// One whole data frame, ready to queue on a connection.
fn control_frame(ctl: &Control, payload: Option<&Term>) -> bytes::Bytes {
    let mut frame = BytesMut::new();
    encode_data(ctl, payload, &mut frame);
    frame.freeze()
}

/// Queues a frame on a connection, waiting for room in its outbox.
async fn send_on(
    conn: &ConnHandle,
    ctl: &Control,
    payload: Option<&Term>,
) -> Result<(), SendError> {
    conn.tx
        .send(control_frame(ctl, payload))
        .await
        .map_err(|_| SendError::Closed(conn.peer.name.to_string()))
}

fn peer_of(pid: &Pid) -> Result<NodeName, ConnectError> {
    NodeName::parse(&pid.node.name).map_err(|_| ConnectError::NotConnected(pid.node.name.clone()))
}

impl Inner {
    /// The live connection to `peer`, if any.
    fn up(&self, peer: &NodeName) -> Option<Arc<ConnHandle>> {
        match lock(&self.conns).get(peer) {
            Some(Slot::Up(h)) => Some(h.clone()),
            _ => None,
        }
    }

    fn local_info(&self) -> LocalInfo {
        LocalInfo {
            name: self.cfg.name.clone(),
            flags: flags::advertised(self.cfg.visible),
            creation: self.creation,
        }
    }

    fn is_local(&self, pid: &Pid) -> bool {
        pid.node.name == self.cfg.name.as_str()
    }

    fn local_exists(&self, target: &ProcRef) -> bool {
        match target {
            ProcRef::Name(n) => lock(&self.names).contains_key(n),
            ProcRef::Pid(p) => self.is_local(p) && lock(&self.procs).contains_key(&p.id),
        }
    }

    fn new_named(&self, name: &str) -> Option<(u32, Pid, mpsc::Receiver<Term>)> {
        let mut names = lock(&self.names);
        if names.contains_key(name) {
            return None;
        }
        let created = self.new_process(Some(name));
        names.insert(name.to_owned(), created.0);
        Some(created)
    }

    fn new_process(&self, name: Option<&str>) -> (u32, Pid, mpsc::Receiver<Term>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let pid = Pid::new(self.cfg.name.as_str(), id, 0, self.creation);
        let (tx, rx) = mpsc::channel(MAILBOX_CAPACITY);
        lock(&self.procs).insert(
            id,
            Process {
                tx,
                names: name.map(str::to_owned).into_iter().collect(),
                monitored_by: Vec::new(),
            },
        );
        (id, pid, rx)
    }

    fn exit_process(&self, id: u32, pid: &Pid, reason: Term) {
        let Some(process) = lock(&self.procs).remove(&id) else {
            return;
        };
        let mut names = lock(&self.names);
        for name in &process.names {
            names.remove(name);
        }
        drop(names);
        for (node, watcher, target, reference) in process.monitored_by {
            let Some(conn) = self.up(&node) else { continue };
            let from = match target {
                ProcRef::Name(n) => ProcRef::Name(n),
                ProcRef::Pid(_) => ProcRef::Pid(pid.clone()),
            };
            let exit = Control::MonitorExit {
                from,
                to: watcher,
                reference,
                reason: reason.clone(),
            };
            // Drop cannot wait; a full outbox means the peer is far behind anyway.
            if conn.tx.try_send(control_frame(&exit, None)).is_err() {
                debug!(%node, "could not notify a monitor: outbox full");
            }
        }
    }

    async fn deliver_pid(&self, pid: &Pid, msg: Term) {
        let tx = lock(&self.procs).get(&pid.id).map(|p| p.tx.clone());
        if let Some(tx) = tx {
            let _ = tx.send(msg).await;
        }
    }

    async fn deliver_name(&self, name: &str, msg: Term) {
        let tx = {
            let names = lock(&self.names);
            names
                .get(name)
                .and_then(|id| lock(&self.procs).get(id).map(|p| p.tx.clone()))
        };
        match tx {
            Some(tx) => {
                let _ = tx.send(msg).await;
            }
            None => debug!(name, "message to unregistered name dropped"),
        }
    }

    fn decide(&self, hello: &Hello) -> Status {
        if hello.name.kind() != self.cfg.name.kind() || hello.name == self.cfg.name {
            return Status::NotAllowed;
        }
        let mut conns = lock(&self.conns);
        match conns.get(&hello.name) {
            Some(Slot::Up(_)) => Status::Alive,
            Some(Slot::Accepting) => Status::Nok,
            Some(Slot::Connecting) => {
                if self.cfg.name > hello.name {
                    Status::Nok
                } else {
                    conns.insert(hello.name.clone(), Slot::Accepting);
                    Status::OkSimultaneous
                }
            }
            None => {
                conns.insert(hello.name.clone(), Slot::Accepting);
                Status::Ok
            }
        }
    }

    fn install(
        self: &Arc<Self>,
        node: &Node,
        stream: TcpStream,
        info: PeerInfo,
    ) -> Arc<ConnHandle> {
        let params = ConnParams {
            ticktime: self.cfg.ticktime,
            max_frame: self.cfg.max_frame,
        };
        let handle = Arc::new(connection::spawn(
            stream,
            info.clone(),
            params,
            node.inner.clone(),
            &self.tracker,
        ));
        let replaced = lock(&self.conns).insert(info.name.clone(), Slot::Up(handle.clone()));
        if let Some(Slot::Up(old)) = replaced {
            old.cancel.cancel();
            let _ = self.events.send(NodeEvent::Down {
                node: info.name.clone(),
                visible: old.peer.is_visible(),
                reason: "replaced".into(),
            });
        }
        self.changed.send_modify(|v| *v += 1);
        info!(peer = %info.name, visible = info.is_visible(), "nodeup");
        let _ = self.events.send(NodeEvent::Up {
            node: info.name.clone(),
            visible: info.is_visible(),
        });
        handle
    }
}

impl Dispatch for Inner {
    async fn dispatch(&self, peer: &PeerInfo, control: Control, payload: Option<Term>) {
        match control {
            Control::Send { to } | Control::SendSender { to, .. } => {
                if let Some(msg) = payload {
                    self.deliver_pid(&to, msg).await;
                }
            }
            Control::RegSend { to, .. } => {
                if let Some(msg) = payload {
                    self.deliver_name(&to, msg).await;
                }
            }
            Control::Monitor {
                from,
                to,
                reference,
            } => {
                let id = match &to {
                    ProcRef::Name(n) => lock(&self.names).get(n).copied(),
                    ProcRef::Pid(p) if self.is_local(p) => Some(p.id),
                    ProcRef::Pid(_) => None,
                };
                let recorded = id.is_some_and(|id| {
                    lock(&self.procs).get_mut(&id).is_some_and(|p| {
                        p.monitored_by.push((
                            peer.name.clone(),
                            from.clone(),
                            to.clone(),
                            reference.clone(),
                        ));
                        true
                    })
                });
                if !recorded {
                    if let Some(conn) = self.up(&peer.name) {
                        let exit = Control::MonitorExit {
                            from: to,
                            to: from,
                            reference,
                            reason: atom("noproc"),
                        };
                        let _ = send_on(&conn, &exit, None).await;
                    }
                }
            }
            Control::Demonitor { reference, .. } => {
                for p in lock(&self.procs).values_mut() {
                    p.monitored_by.retain(|(_, _, _, r)| *r != reference);
                }
            }
            Control::MonitorExit {
                from,
                to,
                reference,
                reason,
            } => {
                let from = match from {
                    ProcRef::Pid(p) => term::pid(&p),
                    ProcRef::Name(n) => tuple(vec![atom(&n), atom(peer.name.as_str())]),
                };
                let down = tuple(vec![
                    atom("DOWN"),
                    term::reference(&reference),
                    atom("process"),
                    from,
                    reason,
                ]);
                self.deliver_pid(&to, down).await;
            }
            Control::SpawnRequest { req_id, from } => {
                // We advertise SPAWN (part of the flag set verified against OTP 25), but run no
                // Erlang code: answer at once instead of leaving the caller to time out.
                if let Some(conn) = self.up(&peer.name) {
                    let reply = Control::SpawnReply {
                        req_id,
                        to: from,
                        result: atom("notsup"),
                    };
                    let _ = send_on(&conn, &reply, None).await;
                }
            }
            Control::SpawnReply { .. } => {
                debug!(peer = %peer.name, "ignoring a spawn reply: we send no spawn requests");
            }
            Control::AliasSend { .. } => {
                debug!(peer = %peer.name, "message to an alias dropped: no aliases are active");
            }
            Control::Other { op } => {
                debug!(peer = %peer.name, op, "ignoring unsupported control message");
            }
        }
    }

    fn closed(&self, peer: &PeerInfo, id: u64, reason: DownReason) {
        let removed = {
            let mut conns = lock(&self.conns);
            match conns.get(&peer.name) {
                Some(Slot::Up(h)) if h.id == id => {
                    conns.remove(&peer.name);
                    true
                }
                _ => false,
            }
        };
        if !removed {
            return;
        }
        for p in lock(&self.procs).values_mut() {
            p.monitored_by.retain(|(n, _, _, _)| *n != peer.name);
        }
        self.changed.send_modify(|v| *v += 1);
        info!(peer = %peer.name, %reason, "nodedown");
        let _ = self.events.send(NodeEvent::Down {
            node: peer.name.clone(),
            visible: peer.is_visible(),
            reason: reason.to_string(),
        });
    }
}

async fn bind(cfg: &NodeConfig) -> Result<TcpListener, NodeError> {
    let ip = match cfg.listen_addr {
        Some(ip) => ip,
        None => {
            let host = cfg.name.host().to_owned();
            let resolved = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| NodeError::Resolve {
                    host: host.clone(),
                    reason: e.to_string(),
                })?
                .map(|a| a.ip())
                .min_by_key(|ip| ip.is_ipv6());
            resolved.ok_or_else(|| NodeError::Resolve {
                host,
                reason: "no addresses".into(),
            })?
        }
    };
    let (min, max) = cfg.port_range;
    let mut last = None;
    for port in min..=max.max(min) {
        match TcpListener::bind(SocketAddr::new(ip, port)).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(NodeError::Bind {
        addr: ip,
        min,
        max,
        error: last.unwrap_or_else(|| std::io::ErrorKind::AddrInUse.into()),
    })
}

fn epmd_entry(cfg: &NodeConfig, port: u16) -> NodeEntry {
    let mut entry = NodeEntry::new(cfg.name.alive(), port);
    entry.node_type = if cfg.visible {
        NodeType::Normal
    } else {
        NodeType::Hidden
    };
    entry.extra = cfg.role.clone().unwrap_or_default().into_bytes();
    entry
}

/// How long a name held by a previous incarnation may take to be released.
const NAME_RELEASE_WAIT: Duration = Duration::from_secs(2);

async fn register(cfg: &NodeConfig, port: u16) -> Result<Registration, NodeError> {
    let client = EpmdClient::new("127.0.0.1", cfg.epmd_port);
    let mut result = client.register(epmd_entry(cfg, port)).await;
    // A node restarted at once (by a supervisor, or after kill -9) can reach the port mapper
    // before it has seen the old incarnation's connection close. Give that a moment rather
    // than failing as erl does.
    let deadline = tokio::time::Instant::now() + NAME_RELEASE_WAIT;
    while matches!(result, Err(ClientError::NameTaken { .. }))
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        result = client.register(epmd_entry(cfg, port)).await;
    }
    match result {
        Ok(r) => Ok(r),
        Err(ClientError::Connect { .. }) if cfg.epmd_starter.is_some() => {
            let start = cfg.epmd_starter.clone().expect("checked");
            let epmd_port = cfg.epmd_port;
            info!("no port mapper on port {epmd_port}; starting one");
            tokio::task::spawn_blocking(move || start(epmd_port))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|r| r)
                .map_err(|error| {
                    NodeError::Epmd(ClientError::Connect {
                        target: format!("127.0.0.1:{epmd_port}"),
                        error,
                    })
                })?;
            Ok(client.register(epmd_entry(cfg, port)).await?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Registers again whenever the port mapper goes away and comes back. Real `erl` does not,
/// so a restarted epmd leaves it unreachable; we do better.
async fn keep_registered(node: Node, mut reg: Registration) {
    let cfg = node.config().clone();
    let client = EpmdClient::new("127.0.0.1", cfg.epmd_port);
    loop {
        tokio::select! {
            _ = node.stopped() => return,
            _ = reg.closed() => {}
        }
        warn!("port mapper connection lost; registering again");
        loop {
            tokio::select! {
                _ = node.stopped() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            match client.register(epmd_entry(&cfg, node.listen_port())).await {
                Ok(r) => {
                    info!(
                        creation = r.creation,
                        "registered with the port mapper again"
                    );
                    reg = r;
                    break;
                }
                Err(e) => debug!("re-registration failed: {e}"),
            }
        }
    }
}

async fn accept_loop(node: Node, listener: TcpListener) {
    let pending = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let accepted = tokio::select! {
            _ = node.stopped() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, addr)) => {
                let Ok(permit) = pending.clone().try_acquire_owned() else {
                    warn!(%addr, "too many handshakes in progress ({MAX_PENDING_HANDSHAKES}); closing");
                    continue;
                };
                let node2 = node.clone();
                node.inner.tracker.spawn(async move {
                    node2.accept_one(stream, addr).await;
                    drop(permit);
                });
            }
            Err(e) => {
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

impl Node {
    async fn accept_one(&self, mut stream: TcpStream, addr: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let cfg = &self.inner.cfg;
        let hs = Acceptor::new(self.inner.local_info(), cfg.cookie.clone(), rand::random());
        let mut who: Option<NodeName> = None;
        let result = setup::accept(&mut stream, hs, cfg.setup_time, |hello| {
            who = Some(hello.name.clone());
            self.inner.decide(hello)
        })
        .await;
        match result {
            Ok(info) => {
                self.inner.install(self, stream, info);
            }
            Err(e) => {
                if let Some(name) = &who {
                    let mut conns = lock(&self.inner.conns);
                    if matches!(conns.get(name), Some(Slot::Accepting)) {
                        conns.remove(name);
                    }
                    drop(conns);
                    self.inner.changed.send_modify(|v| *v += 1);
                }
                let peer = who
                    .as_ref()
                    .map_or("unknown node".to_owned(), |n| n.to_string());
                match e {
                    SetupError::Handshake(HandshakeError::BadCookie) => {
                        warn!(%peer, %addr, "connection attempt rejected: cookie mismatch")
                    }
                    SetupError::Handshake(HandshakeError::Refused(_)) => {
                        debug!(%peer, %addr, "connection attempt refused: {e}")
                    }
                    e => warn!(%peer, %addr, "connection attempt failed: {e}"),
                }
            }
        }
    }
}
