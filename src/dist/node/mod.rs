//! The node runtime: a [`Node`] handle over the table of connection slots ([`peers`]), the
//! table of local processes ([`procs`]) and the routing between them ([`router`]), with
//! dialling ([`dial`]), accepting ([`listen`]) and port-mapper publication ([`publish`]).
//!
//! The rule that shapes it: **nothing shared ever waits on one peer.**
//! - A send never waits for a connection: a message to a node we are not connected to is
//!   queued on the slot while a dial runs in the background (auto-connect), as erts does.
//! - A send never waits for a slow peer unless the sender asks to ([`Mailbox::send_wait`]);
//!   otherwise a peer far behind refuses the message ([`SendError::Busy`]).
//! - Reading never waits for a process: mailboxes are unbounded (see [`mailbox`]).
//! - Every dial and handshake has a deadline, and failure detection is the connection's
//!   supervisor reading the clock, not a writer finishing.
//!
//! Locks are plain mutexes held for table updates only, never across an `.await`, and never
//! the peer table and the process table at once.

mod dial;
mod events;
mod listen;
mod mailbox;
mod peers;
mod procs;
mod publish;
mod router;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::connection::ConnHandle;
use super::outbox::PushError;
use super::proto::frame::DEFAULT_MAX_MESSAGE;
use super::proto::term::{atom, tuple, Atom, Pid, Ref, Term};
use super::proto::{Control, ProcRef};
use super::setup::DEFAULT_SETUP_TIME;
use super::{Cookie, NodeName};
use crate::net::tcp::TcpTransport;
use crate::net::warn::{WarnLimiter, DEFAULT_WINDOW};
use crate::net::{DialError, ListenError, PublishError, Transport};

pub use super::connection::{ConnId, DownReason, Traffic};
pub use super::outbox::{DEFAULT_BUSY_LIMIT, DEFAULT_HARD_LIMIT};
pub use events::{NodeEvent, NodeEvents};
pub use mailbox::{HighWater, HIGH_WATER_START};

use mailbox::Queue;
use peers::{Peers, Route};
use procs::{ProcTable, SignalKind};

/// Erlang's default `net_ticktime`.
pub const DEFAULT_TICKTIME: Duration = Duration::from_secs(60);
/// Default deadline for an incoming connection's first handshake message.
pub const DEFAULT_HELLO_TIMEOUT: Duration = Duration::from_secs(3);
/// Default node-wide budget for large frames being received.
pub const DEFAULT_RECEIVE_BUDGET: usize = 512 << 20;
/// Default cap on dials in progress at once.
pub const DEFAULT_MAX_DIALS: usize = 256;
/// How long shutdown waits for the node's tasks.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The node's own "system" process id: the sender of [`Node::send`]. It has no mailbox, so
/// anything sent to it is dropped, as to a dead process.
const SYSTEM_ID: u32 = 1;

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
    /// How peers are found and reached (TCP with EPMD by default).
    pub transport: Arc<dyn Transport>,
    /// Listen for and accept incoming connections (and publish). CLI tools only dial out.
    pub listen: bool,
    /// Listen address; default: the address of our name's host.
    pub listen_addr: Option<IpAddr>,
    /// Distribution port range, like `inet_dist_listen_min/max`; `(0, 0)` picks any.
    pub port_range: (u16, u16),
    /// `net_ticktime`.
    pub ticktime: Duration,
    /// `net_setuptime`: the limit for each handshake step.
    pub setup_time: Duration,
    /// Deadline for an incoming connection's first message (unauthenticated peers).
    pub hello_timeout: Duration,
    /// Largest message accepted from a peer; a larger one is refused on its own (its
    /// `gen_call` caller gets `{error, {message_too_large, Size, Max}}`) and the connection
    /// stays up.
    pub max_message: usize,
    /// Connect on first send, like `dist_auto_connect`.
    pub auto_connect: bool,
    /// Bytes queued to one peer above which waiting senders wait (erl's `+zdbbl`).
    pub busy_limit: usize,
    /// Bytes queued to one peer above which other senders are refused.
    pub hard_limit: usize,
    /// Node-wide bytes of large frames and fragmented messages being received at once (at
    /// least `max_message`, so that one message always fits).
    pub receive_budget: usize,
    /// Incoming handshakes in progress at once.
    pub max_handshakes: usize,
    /// Incoming handshakes in progress from one source host.
    pub max_handshakes_per_source: usize,
    /// Outgoing dials in progress at once.
    pub max_dials: usize,
    /// Run OTP's `global` protocol with visible peers (transitive connections, global names).
    /// Off is like erl's `-connect_all false`.
    pub global: bool,
}

impl NodeConfig {
    /// A visible, listening node with Erlang's defaults, over TCP with the port mapper on its
    /// default port.
    pub fn new(name: NodeName, cookie: Cookie) -> NodeConfig {
        NodeConfig {
            name,
            cookie,
            visible: true,
            role: None,
            transport: Arc::new(TcpTransport::new(crate::epmd::DEFAULT_PORT)),
            listen: true,
            listen_addr: None,
            port_range: (0, 0),
            ticktime: DEFAULT_TICKTIME,
            setup_time: DEFAULT_SETUP_TIME,
            hello_timeout: DEFAULT_HELLO_TIMEOUT,
            max_message: DEFAULT_MAX_MESSAGE,
            auto_connect: true,
            busy_limit: DEFAULT_BUSY_LIMIT,
            hard_limit: DEFAULT_HARD_LIMIT,
            receive_budget: DEFAULT_RECEIVE_BUDGET,
            max_handshakes: crate::net::gate::DEFAULT_CAP,
            max_handshakes_per_source: crate::net::gate::DEFAULT_PER_SOURCE,
            max_dials: DEFAULT_MAX_DIALS,
            global: true,
        }
    }

    /// The receive budget in force: never less than one message of the largest size.
    pub(crate) fn budget_bytes(&self) -> usize {
        self.receive_budget
            .max(self.max_message)
            .clamp(1, Semaphore::MAX_PERMITS)
    }

    /// A hidden node that only dials out, for CLI tools.
    pub fn hidden_client(name: NodeName, cookie: Cookie) -> NodeConfig {
        NodeConfig {
            visible: false,
            listen: false,
            ..NodeConfig::new(name, cookie)
        }
    }

    /// Uses TCP with the port mapper on `port`.
    pub fn with_epmd_port(mut self, port: u16) -> NodeConfig {
        self.transport = Arc::new(TcpTransport::new(port));
        self
    }
}

impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConfig")
            .field("name", &self.name)
            .field("cookie", &self.cookie)
            .field("visible", &self.visible)
            .field("role", &self.role)
            .field("listen", &self.listen)
            .field("ticktime", &self.ticktime)
            .finish_non_exhaustive()
    }
}

/// Errors starting a node.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The listener could not be set up.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// Publishing to the port mapper failed.
    #[error("cannot register with the port mapper: {0}")]
    Publish(#[from] PublishError),
}

/// Errors connecting to a peer. The display strings are what `cluster ping` prints.
#[derive(Debug, Clone, Error)]
pub enum ConnectError {
    /// The peer could not be found or reached.
    #[error(transparent)]
    Dial(Arc<DialError>),
    /// Nothing answered in time.
    #[error("timed out")]
    Timeout,
    /// The cookies differ.
    #[error("cookie rejected")]
    BadCookie,
    /// The peer refused us (`not_allowed`: a name clash or a long/short name mix).
    #[error("refused by the peer ({0})")]
    Refused(String),
    /// Another handshake failure.
    #[error("handshake failed: {0}")]
    Handshake(String),
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
    /// Too many dials are in progress.
    #[error("too many connection attempts in progress")]
    TooManyDials,
    /// The peer connected to us while we were dialling it; its connection is the one kept.
    #[error("superseded by the peer's own connection")]
    Superseded,
    /// Our node is shutting down.
    #[error("node is shutting down")]
    ShuttingDown,
}

/// Errors sending a message.
#[derive(Debug, Clone, Error)]
pub enum SendError {
    /// No connection to the target's node.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The peer is far behind and the sender did not want to wait.
    #[error("{0} is not keeping up (send queue full)")]
    Busy(String),
    /// The connection closed while sending.
    #[error("connection to {0} closed")]
    Closed(String),
    /// The destination names a node that cannot exist.
    #[error("bad destination: {0}")]
    BadDest(String),
}

/// Errors of a gen_call.
#[derive(Debug, Clone, Error)]
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

impl CallError {
    /// The connection error that made the call fail, if that is why it failed.
    pub fn connect_error(&self) -> Option<&ConnectError> {
        match self {
            CallError::Send(SendError::Connect(e)) => Some(e),
            _ => None,
        }
    }
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Dest {
    /// A process.
    Pid(Pid),
    /// A registered name on a node.
    Name {
        /// The registered name.
        name: Atom,
        /// The node.
        node: NodeName,
    },
}

impl Dest {
    /// `{name, node}`.
    pub fn name(name: &str, node: &NodeName) -> Dest {
        Dest::Name {
            name: Atom::from(name),
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
    let [kind, from, request] = msg.as_tuple()? else {
        return None;
    };
    if !kind.is_atom("$gen_call") {
        return None;
    }
    match from.as_tuple()? {
        [Term::Pid(pid), tag] => Some((
            From {
                pid: pid.clone(),
                tag: tag.clone(),
            },
            request,
        )),
        _ => None,
    }
}

/// A queued message for a connection still being set up.
pub(crate) struct Queued {
    control: Control,
    message: Option<Term>,
}

/// What a process looks like from outside, for monitoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Its pid.
    pub pid: Pid,
    /// Its registered names.
    pub names: Vec<String>,
    /// Messages queued.
    pub queue_len: usize,
    /// Their approximate bytes.
    pub queue_bytes: usize,
    /// The longest its queue has been.
    pub queue_peak: usize,
}

pub(crate) struct Inner {
    cfg: NodeConfig,
    /// Our name as an atom, for minting pids without a lock.
    atom: Atom,
    creation: AtomicU32,
    listen_port: u16,
    procs: Mutex<ProcTable>,
    peers: Mutex<Peers<Arc<ConnHandle>, Queued>>,
    /// Bumped whenever a slot changes, for connect waiters.
    changed: watch::Sender<u64>,
    /// Why recent connection attempts failed: peer → (failure number, error).
    failures: Mutex<std::collections::HashMap<NodeName, (u64, ConnectError)>>,
    failure_seq: AtomicU64,
    next_ref: AtomicU64,
    budget: Arc<Semaphore>,
    dials: Arc<Semaphore>,
    warn: WarnLimiter,
    /// Rejected cookies, per claimed peer name: a node retrying with the wrong cookie twice a
    /// second costs one line a minute, then a count.
    cookie_warn: WarnLimiter,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// State that a built-in service shares with its handles (a `pg` scope's member table),
    /// by key; see [`Node::with_shared`].
    shared: Mutex<SharedTable>,
}

/// State a built-in service shares with its handles, by key (see [`Node::with_shared`]).
pub(crate) type SharedTable =
    std::collections::HashMap<String, Arc<dyn std::any::Any + Send + Sync>>;

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

/// A process: a pid, optionally registered names, and a queue of received messages.
/// Dropping it ends the process with reason `normal` (links and monitors are told).
pub struct Mailbox {
    node: Node,
    id: u32,
    queue: Arc<Queue>,
    exit_reason: Option<Term>,
}

impl Mailbox {
    /// This process's pid (carrying the node's current creation).
    pub fn pid(&self) -> Pid {
        self.node.inner.pid(self.id)
    }

    /// The next message; `None` once the process has been ended (killed, or the node stopped).
    pub async fn recv(&mut self) -> Option<Term> {
        self.queue.recv().await
    }

    /// The next message if one is queued.
    pub fn try_recv(&mut self) -> Option<Term> {
        self.queue.pop()
    }

    /// The next message within `limit`; `None` on timeout or end.
    pub async fn recv_timeout(&mut self, limit: Duration) -> Option<Term> {
        tokio::time::timeout(limit, self.queue.recv())
            .await
            .ok()
            .flatten()
    }

    /// The first message `pick` accepts, waiting up to `limit`; other messages stay queued in
    /// order (Erlang's selective receive).
    pub async fn recv_matching(
        &mut self,
        limit: Duration,
        mut pick: impl FnMut(&Term) -> bool,
    ) -> Option<Term> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.queue.changed();
            if let Some(m) = self.queue.take_first(&mut pick) {
                return Some(m);
            }
            if self.queue.is_ended() {
                return None;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return None;
            }
        }
    }

    /// A gen_call from this process: `{'$gen_call', {Self, Ref}, Request}` to `to`, then waits
    /// (selectively; other messages stay queued) for the reply or the target's end. Use it
    /// when the callee must see this process as the caller (lock owners, registrars).
    pub async fn call(
        &mut self,
        to: &Dest,
        request: Term,
        timeout: Duration,
    ) -> Result<Term, CallError> {
        self.call_as("$gen_call", to, request, timeout).await
    }

    /// A `sys` call from this process: `{system, {Self, Ref}, Request}` (`get_state`,
    /// `get_status`, `suspend`…), as OTP's `sys` module sends it.
    pub async fn system_call(
        &mut self,
        to: &Dest,
        request: Term,
        timeout: Duration,
    ) -> Result<Term, CallError> {
        self.call_as("system", to, request, timeout).await
    }

    async fn call_as(
        &mut self,
        kind: &str,
        to: &Dest,
        request: Term,
        timeout: Duration,
    ) -> Result<Term, CallError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let target_node = match to {
            Dest::Pid(p) => peer_of(p)?,
            Dest::Name { node, .. } => node.clone(),
        };
        if &target_node != self.node.name() {
            match tokio::time::timeout_at(deadline, self.node.connect(&target_node)).await {
                Err(_) => return Err(CallError::Timeout),
                Ok(r) => r.map_err(SendError::from)?,
            }
        }
        let mref = self.monitor(to)?;
        let req = tuple(vec![
            atom(kind),
            tuple(vec![Term::Pid(self.pid()), Term::Ref(mref.clone())]),
            request,
        ]);
        self.send(to, req)?;
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let answer = self
            .recv_matching(remaining, |m| match m.as_tuple() {
                Some([Term::Ref(r), _]) => *r == mref,
                Some([down, Term::Ref(r), _, _, _]) => down.is_atom("DOWN") && *r == mref,
                _ => false,
            })
            .await;
        self.demonitor(&mref);
        // A DOWN may already be queued behind the reply; drop it.
        self.queue.take_first(|m| {
            matches!(m.as_tuple(), Some([down, Term::Ref(r), _, _, _]) if down.is_atom("DOWN") && *r == mref)
        });
        let Some(answer) = answer else {
            return Err(if self.is_ended() {
                CallError::Send(SendError::Connect(ConnectError::ShuttingDown))
            } else {
                CallError::Timeout
            });
        };
        match answer.as_tuple() {
            Some([_, reply]) => Ok(reply.clone()),
            Some([_, _, _, _, reason]) => Err(match reason.as_atom() {
                Some("noproc") => CallError::NoProc,
                Some("noconnection") => CallError::NodeDown,
                _ => CallError::Exit(reason.to_string()),
            }),
            _ => Err(CallError::Timeout),
        }
    }

    /// Sends without connecting: a message to a node we are not connected to is dropped, as
    /// Erlang's `send(Dest, Msg, [noconnect])`.
    pub fn send_noconnect(&self, to: &Dest, msg: Term) -> Result<(), SendError> {
        self.node.send_noconnect(self.id, to, msg)
    }

    /// Whether the process has been ended from outside (killed by an exit signal).
    pub fn is_ended(&self) -> bool {
        self.queue.is_ended()
    }

    /// The node this process lives on.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Sends `msg` to `to` with this process as the sender, without waiting.
    pub fn send(&self, to: &Dest, msg: Term) -> Result<(), SendError> {
        self.node.send_from(self.id, to, msg)
    }

    /// Sends `msg` to `to`, waiting while the peer is busy (backpressure).
    pub async fn send_wait(&self, to: &Dest, msg: Term) -> Result<(), SendError> {
        self.node.send_from_wait(self.id, to, msg).await
    }

    /// Turns exit signals into `{'EXIT', From, Reason}` messages (or back).
    pub fn trap_exit(&self, on: bool) {
        if let Some(e) = lock(&self.node.inner.procs).get_mut(self.id) {
            e.trap_exit = on;
        }
    }

    /// Links this process with `other`. A remote `other` that does not exist answers with an
    /// exit signal (`noproc`); a local one that does not exist sends it at once.
    pub fn link(&self, other: &Pid) -> Result<(), SendError> {
        self.node.link(self.id, other)
    }

    /// Removes a link.
    pub fn unlink(&self, other: &Pid) -> Result<(), SendError> {
        self.node.unlink(self.id, other)
    }

    /// Monitors `target`: `{'DOWN', Ref, process, Target, Reason}` arrives when it ends (at
    /// once with `noproc` if it does not exist).
    pub fn monitor(&self, target: &Dest) -> Result<Ref, SendError> {
        self.node.monitor(self.id, target)
    }

    /// Removes a monitor; a `DOWN` already queued stays queued.
    pub fn demonitor(&self, reference: &Ref) {
        self.node.demonitor(self.id, reference)
    }

    /// Receive node events (`{nodeup, …}`, `{nodedown, …}`, see [`NodeEvent`]) as messages.
    pub fn monitor_nodes(&self, on: bool) {
        if let Some(e) = lock(&self.node.inner.procs).get_mut(self.id) {
            e.node_events = on;
        }
    }

    /// Registers one more name for this process; false if the name is taken.
    pub fn register(&self, name: &str) -> bool {
        lock(&self.node.inner.procs).register(self.id, name)
    }

    /// Ends the process with `reason` (links get it, monitors fire with it).
    pub fn exit(mut self, reason: Term) {
        self.exit_reason = Some(reason);
    }

    /// Queue length, bytes and peak, for monitoring.
    pub fn queue_stats(&self) -> (usize, usize, usize) {
        self.queue.stats()
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let reason = self.exit_reason.take().unwrap_or_else(|| atom("normal"));
        self.node.inner.end_process(self.id, reason);
    }
}

impl Node {
    /// Starts a node: binds its listener, publishes it (registers with the port mapper,
    /// starting one if allowed and needed), and starts the built-in processes.
    pub async fn start(cfg: NodeConfig) -> Result<Node, NodeError> {
        let spec = crate::net::ListenSpec {
            addr: cfg.listen_addr,
            ports: cfg.port_range,
        };
        let listener = if cfg.listen {
            Some(cfg.transport.listen(&cfg.name, &spec).await?)
        } else {
            None
        };
        let listen_port = listener.as_ref().map_or(0, |l| l.port());
        let publication = match &listener {
            Some(_) => {
                let info = crate::net::PublishInfo {
                    port: listen_port,
                    visible: cfg.visible,
                    extra: cfg.role.clone().unwrap_or_default().into_bytes(),
                };
                Some(cfg.transport.publish(&cfg.name, &info).await?)
            }
            None => None,
        };
        let creation = publication
            .as_ref()
            .map_or_else(|| rand::random::<u32>().max(4), |p| p.creation());
        let inner = Arc::new(Inner {
            atom: Atom::from(cfg.name.as_str()),
            creation: AtomicU32::new(creation),
            listen_port,
            procs: Mutex::new(ProcTable::new(cfg.name.as_str(), creation, SYSTEM_ID + 1)),
            peers: Mutex::new(Peers::default()),
            changed: watch::channel(0).0,
            failures: Mutex::new(std::collections::HashMap::new()),
            failure_seq: AtomicU64::new(0),
            next_ref: AtomicU64::new(1),
            budget: Arc::new(Semaphore::new(cfg.budget_bytes())),
            dials: Arc::new(Semaphore::new(cfg.max_dials.max(1))),
            warn: WarnLimiter::new(DEFAULT_WINDOW),
            cookie_warn: WarnLimiter::new(COOKIE_WARN_WINDOW),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            shared: Mutex::new(SharedTable::new()),
            cfg,
        });
        let node = Node { inner };
        if let Some(listener) = listener {
            node.inner
                .tracker
                .spawn(listen::accept_loop(node.clone(), listener));
        }
        if let Some(p) = publication {
            node.inner
                .tracker
                .spawn(publish::keep_published(node.clone(), p));
        }
        node.inner.tracker.spawn(warn_summaries(node.clone()));
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

    /// Our creation (it changes when the port mapper restarts and hands out a new one).
    pub fn creation(&self) -> u32 {
        self.inner.creation.load(Ordering::Relaxed)
    }

    /// The distribution listen port (0 for a node that does not listen).
    pub fn listen_port(&self) -> u16 {
        self.inner.listen_port
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.cfg
    }

    /// The pid of the node's system process (the sender of [`Node::send`]).
    pub fn system_pid(&self) -> Pid {
        self.inner.pid(SYSTEM_ID)
    }

    /// A new anonymous process.
    pub fn spawn_mailbox(&self) -> Mailbox {
        let queue = Arc::new(Queue::new());
        let id = lock(&self.inner.procs).spawn(queue.clone());
        Mailbox {
            node: self.clone(),
            id,
            queue,
            exit_reason: None,
        }
    }

    /// A new process registered under `name`; `None` if the name is taken.
    pub fn register(&self, name: &str) -> Option<Mailbox> {
        let queue = Arc::new(Queue::new());
        let id = {
            let mut procs = lock(&self.inner.procs);
            if procs.whereis(name).is_some() {
                return None;
            }
            let id = procs.spawn(queue.clone());
            procs.register(id, name);
            id
        };
        Some(Mailbox {
            node: self.clone(),
            id,
            queue,
            exit_reason: None,
        })
    }

    /// Removes a registered name; true if it was registered.
    pub fn unregister(&self, name: &str) -> bool {
        lock(&self.inner.procs).unregister(name)
    }

    /// The pid registered as `name` here.
    pub fn whereis(&self, name: &str) -> Option<Pid> {
        let procs = lock(&self.inner.procs);
        procs.whereis(name).map(|id| procs.pid(id))
    }

    /// Whether `name` is registered here.
    pub fn is_registered(&self, name: &str) -> bool {
        lock(&self.inner.procs).whereis(name).is_some()
    }

    /// Registered names with their pids, sorted by name.
    pub fn registered(&self) -> Vec<(String, Pid)> {
        let procs = lock(&self.inner.procs);
        procs
            .registered()
            .into_iter()
            .map(|(n, id)| (n.as_str().to_owned(), procs.pid(id)))
            .collect()
    }

    /// Every process with its queue statistics.
    pub fn processes(&self) -> Vec<ProcessInfo> {
        let procs = lock(&self.inner.procs);
        let mut v: Vec<ProcessInfo> = procs
            .iter()
            .map(|(id, e)| {
                let (queue_len, queue_bytes, queue_peak) = e.queue.stats();
                ProcessInfo {
                    pid: procs.pid(id),
                    names: e.names.iter().map(|n| n.as_str().to_owned()).collect(),
                    queue_len,
                    queue_bytes,
                    queue_peak,
                }
            })
            .collect();
        v.sort_by_key(|p| p.pid.id);
        v
    }

    /// A fresh reference.
    pub fn make_ref(&self) -> Ref {
        let n = self.inner.next_ref.fetch_add(1, Ordering::Relaxed);
        Ref::new(
            self.name().as_str(),
            self.creation(),
            &[(n & 0x3ffff) as u32, (n >> 18) as u32, rand::random()],
        )
    }

    /// Sends `msg` to `to` from the node's system process, without waiting.
    pub fn send(&self, to: &Dest, msg: Term) -> Result<(), SendError> {
        self.send_from(SYSTEM_ID, to, msg)
    }

    /// Sends an exit signal (`exit(Pid, Reason)`) to `to` from the system process.
    pub fn exit(&self, to: &Pid, reason: Term) -> Result<(), SendError> {
        let from = self.system_pid();
        if self.inner.is_local(to) {
            let fx = lock(&self.inner.procs).exit_signal(to.id, &from, reason, SignalKind::Exit2);
            self.inner.execute(fx);
            return Ok(());
        }
        if self.inner.is_our_node(to) {
            // A previous run's process: dead already.
            return Ok(());
        }
        self.route(
            &peer_of(to)?,
            Control::Exit2 {
                from,
                to: to.clone(),
                reason,
            },
            None,
        )
    }

    /// Replies to a gen_call, sending `{Tag, Reply}` back with the tag exactly as received.
    /// An `[alias|Ref]` tag is answered through the alias when the peer supports aliases.
    /// Never waits, and never dials: a reply to a node we are not connected to is dropped.
    pub fn reply(&self, from: &From, reply: Term) -> Result<(), SendError> {
        let msg = tuple(vec![from.tag.clone(), reply]);
        if !self.inner.is_our_node(&from.pid) {
            // A reply never dials. The caller's node reached us, so it is connected unless the
            // connection has failed since (and the caller then sees `noconnection` anyway); a
            // `From` naming some other node must not make a service dial on anyone's behalf.
            let peer = peer_of(&from.pid)?;
            let reachable = {
                let peers = lock(&self.inner.peers);
                peers.up(&peer).is_some() || peers.is_connecting(&peer)
            };
            if !reachable {
                debug!(%peer, "reply to a node we are not connected to dropped");
                return Ok(());
            }
        }
        if let Term::Improper(l) = &from.tag {
            if let [head, Term::Ref(alias)] = &l[..] {
                if head.is_atom("alias") && !self.inner.is_local(&from.pid) {
                    let peer = peer_of(&from.pid)?;
                    let aliases = lock(&self.inner.peers)
                        .up(&peer)
                        .is_some_and(|c| c.peer.flags & super::proto::flags::ALIAS != 0);
                    if aliases {
                        let ctl = Control::AliasSend {
                            from: self.system_pid(),
                            alias: alias.clone(),
                        };
                        return self.route(&peer, ctl, Some(msg));
                    }
                }
            }
        }
        self.send(&Dest::Pid(from.pid.clone()), msg)
    }

    /// The gen_call client: sends `{'$gen_call', {Self, Ref}, Request}` from a fresh process
    /// and waits for the reply, failing fast with `noproc` when the target does not exist and
    /// with `noconnection` when its node goes down.
    pub async fn call(
        &self,
        to: &Dest,
        request: Term,
        timeout: Duration,
    ) -> Result<Term, CallError> {
        self.spawn_mailbox().call(to, request, timeout).await
    }

    /// `sys:get_state/1` on any process that speaks OTP's `sys` protocol (ours and Erlang's).
    pub async fn get_state(&self, of: &Dest, timeout: Duration) -> Result<Term, CallError> {
        self.spawn_mailbox()
            .system_call(of, atom("get_state"), timeout)
            .await
    }

    /// Closes the connection to `peer`, if any. Both sides see nodedown.
    pub fn disconnect(&self, peer: &NodeName) -> bool {
        match lock(&self.inner.peers).up(peer) {
            Some(h) => {
                h.close(DownReason::Disconnect);
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
        let mut v: Vec<(NodeName, bool)> = lock(&self.inner.peers)
            .connected()
            .map(|(n, c)| (n.clone(), self.inner.cfg.visible && c.peer.is_visible()))
            .collect();
        v.sort();
        v
    }

    /// Every connected node with whether it is visible and the traffic of its connection so
    /// far, sorted by name.
    pub fn traffic(&self) -> Vec<(NodeName, bool, Traffic)> {
        let mut v: Vec<(NodeName, bool, Traffic)> = lock(&self.inner.peers)
            .connected()
            .map(|(n, c)| {
                let visible = self.inner.cfg.visible && c.peer.is_visible();
                (n.clone(), visible, c.counters.read())
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The id of the live connection to `peer`: later connections have larger ids, so a
    /// nodedown can be told apart from a newer nodeup.
    pub fn connection_id(&self, peer: &NodeName) -> Option<ConnId> {
        lock(&self.inner.peers).up(peer).map(|c| c.id)
    }

    /// The connection to `peer`: its id and the peer's creation (its incarnation).
    pub fn connection(&self, peer: &NodeName) -> Option<(ConnId, u32)> {
        lock(&self.inner.peers)
            .up(peer)
            .map(|c| (c.id, c.peer.creation))
    }

    /// Every live connection: peer, id and the peer's creation.
    pub fn connections(&self) -> Vec<(NodeName, ConnId, u32)> {
        lock(&self.inner.peers)
            .connected()
            .map(|(n, c)| (n.clone(), c.id, c.peer.creation))
            .collect()
    }

    /// Every live connection's peer and id.
    pub fn connection_ids(&self) -> Vec<(NodeName, ConnId)> {
        lock(&self.inner.peers)
            .connected()
            .map(|(n, c)| (n.clone(), c.id))
            .collect()
    }

    /// Bytes queued to `peer`, if connected.
    pub fn queued_to(&self, peer: &NodeName) -> Option<usize> {
        lock(&self.inner.peers).up(peer).map(|c| c.outbox.queued())
    }

    /// Whether `peer` is connected and more than the busy limit is queued to it.
    pub fn is_busy(&self, peer: &NodeName) -> bool {
        lock(&self.inner.peers)
            .up(peer)
            .is_some_and(|c| c.outbox.is_busy())
    }

    /// A stream of nodeup/nodedown events from now on. It never lags: events queue like
    /// messages.
    pub fn monitor_nodes(&self) -> NodeEvents {
        let mb = self.spawn_mailbox();
        mb.monitor_nodes(true);
        NodeEvents::new(mb)
    }

    /// Closes every connection and the port-mapper registration, ends every process, and
    /// waits (bounded) for the node's tasks to finish.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let conns: Vec<Arc<ConnHandle>> = lock(&self.inner.peers)
            .connected()
            .map(|(_, c)| c.clone())
            .collect();
        for c in conns {
            c.close(DownReason::Shutdown);
        }
        let queues: Vec<Arc<Queue>> = lock(&self.inner.procs)
            .iter()
            .map(|(_, e)| e.queue.clone())
            .collect();
        for q in queues {
            q.end();
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

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    /// Runs `task` on the node's task tracker, so shutdown waits for it (bounded).
    pub fn spawn_task<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.inner.tracker.spawn(task)
    }

    /// Runs `f` on the table of shared state with it locked, for a check-then-insert that
    /// must be atomic (two handles starting the same service at once). Never call back into
    /// this table from `f`.
    pub(crate) fn with_shared<R>(&self, f: impl FnOnce(&mut SharedTable) -> R) -> R {
        f(&mut lock(&self.inner.shared))
    }

    /// The state shared under `key`, if there is one of type `T`.
    pub(crate) fn shared<T: Send + Sync + 'static>(&self, key: &str) -> Option<Arc<T>> {
        lock(&self.inner.shared)
            .get(key)
            .cloned()
            .and_then(|v| v.downcast::<T>().ok())
    }

    // ---- internals shared by the files of this module ----

    fn send_from(&self, from: u32, to: &Dest, msg: Term) -> Result<(), SendError> {
        match to {
            Dest::Pid(pid) if self.inner.is_local(pid) => {
                self.inner.deliver(pid.id, msg, 0);
                Ok(())
            }
            // A previous run's process: a message to a dead process is dropped.
            Dest::Pid(pid) if self.inner.is_our_node(pid) => Ok(()),
            Dest::Name { name, node } if node == self.name() => {
                self.inner.deliver_name(name, msg, 0);
                Ok(())
            }
            Dest::Pid(pid) => {
                let from = self.inner.pid(from);
                self.route(
                    &peer_of(pid)?,
                    Control::Send {
                        from: Some(from),
                        to: pid.clone(),
                    },
                    Some(msg),
                )
            }
            Dest::Name { name, node } => {
                let from = self.inner.pid(from);
                self.route(
                    node,
                    Control::RegSend {
                        from,
                        to: name.clone(),
                    },
                    Some(msg),
                )
            }
        }
    }

    fn send_noconnect(&self, from: u32, to: &Dest, msg: Term) -> Result<(), SendError> {
        let (peer, control) = match to {
            Dest::Pid(pid) if !self.inner.is_our_node(pid) => (
                peer_of(pid)?,
                Control::Send {
                    from: Some(self.inner.pid(from)),
                    to: pid.clone(),
                },
            ),
            Dest::Name { name, node } if node != self.name() => (
                node.clone(),
                Control::RegSend {
                    from: self.inner.pid(from),
                    to: name.clone(),
                },
            ),
            _ => return self.send_from(from, to, msg),
        };
        let conn = lock(&self.inner.peers).up(&peer).cloned();
        match conn {
            Some(c) => c
                .send(&control, Some(&msg))
                .map_err(|e| push_error(&peer, e)),
            None => Ok(()),
        }
    }

    async fn send_from_wait(&self, from: u32, to: &Dest, msg: Term) -> Result<(), SendError> {
        let (peer, control) = match to {
            Dest::Pid(pid) if !self.inner.is_our_node(pid) => (
                peer_of(pid)?,
                Control::Send {
                    from: Some(self.inner.pid(from)),
                    to: pid.clone(),
                },
            ),
            Dest::Name { name, node } if node != self.name() => (
                node.clone(),
                Control::RegSend {
                    from: self.inner.pid(from),
                    to: name.clone(),
                },
            ),
            _ => return self.send_from(from, to, msg),
        };
        let conn = lock(&self.inner.peers).up(&peer).cloned();
        match conn {
            Some(c) => c
                .send_wait(&control, Some(&msg))
                .await
                .map_err(|e| push_error(&peer, e)),
            None => self.route(&peer, control, Some(msg)),
        }
    }

    /// Sends a control message to `peer`: on the connection, or queued on a dial.
    fn route(
        &self,
        peer: &NodeName,
        control: Control,
        message: Option<Term>,
    ) -> Result<(), SendError> {
        if peer.kind() != self.name().kind() {
            return Err(ConnectError::NameKind {
                ours: self.name().kind(),
                peer: peer.to_string(),
                theirs: peer.kind(),
            }
            .into());
        }
        let item = Queued { control, message };
        let auto = self.inner.cfg.auto_connect && !self.inner.shutdown.is_cancelled();
        let routed = lock(&self.inner.peers).route(peer, item, auto);
        match routed {
            Route::Up(conn, item) => conn
                .send(&item.control, item.message.as_ref())
                .map_err(|e| push_error(peer, e)),
            Route::Queued => Ok(()),
            Route::QueuedDialSoon => {
                self.dial_alongside_soon(peer.clone());
                Ok(())
            }
            Route::Dial(attempt) => {
                self.start_dial(peer.clone(), attempt);
                Ok(())
            }
            Route::NotConnected(_) if self.inner.shutdown.is_cancelled() => {
                Err(ConnectError::ShuttingDown.into())
            }
            Route::NotConnected(_) => Err(ConnectError::NotConnected(peer.to_string()).into()),
        }
    }

    fn link(&self, id: u32, other: &Pid) -> Result<(), SendError> {
        let me = self.inner.pid(id);
        if self.inner.is_our_node(other) {
            let linked = {
                let mut procs = lock(&self.inner.procs);
                procs.is_local(other) && procs.get(other.id).is_some() && procs.link(id, other)
            };
            if !linked {
                let fx = lock(&self.inner.procs).exit_signal(
                    id,
                    other,
                    atom("noproc"),
                    SignalKind::Exit2,
                );
                self.inner.execute(fx);
            }
            return Ok(());
        }
        lock(&self.inner.procs).link(id, other);
        self.route(
            &peer_of(other)?,
            Control::Link {
                from: me,
                to: other.clone(),
            },
            None,
        )
    }

    fn unlink(&self, id: u32, other: &Pid) -> Result<(), SendError> {
        let had = lock(&self.inner.procs).unlink(id, other);
        if !had || self.inner.is_our_node(other) {
            return Ok(());
        }
        let me = self.inner.pid(id);
        let unlink_id = self.inner.next_ref.fetch_add(1, Ordering::Relaxed);
        self.route(
            &peer_of(other)?,
            Control::UnlinkId {
                id: unlink_id,
                from: me,
                to: other.clone(),
            },
            None,
        )
    }

    fn monitor(&self, id: u32, target: &Dest) -> Result<Ref, SendError> {
        let reference = self.make_ref();
        let (node, proc_ref) = match target {
            Dest::Pid(p) => (peer_of(p)?, ProcRef::Pid(p.clone())),
            Dest::Name { name, node } => (node.clone(), ProcRef::Name(name.clone())),
        };
        if &node == self.name() {
            let me = self.inner.pid(id);
            let fx = lock(&self.inner.procs).monitor_local(me, proc_ref, reference.clone());
            self.inner.execute(fx);
            return Ok(reference);
        }
        let me = {
            let mut procs = lock(&self.inner.procs);
            procs.watch_remote(
                id,
                Atom::from(node.as_str()),
                proc_ref.clone(),
                reference.clone(),
            );
            procs.pid(id)
        };
        let sent = self.route(
            &node,
            Control::Monitor {
                from: me,
                to: proc_ref,
                reference: reference.clone(),
            },
            None,
        );
        if let Err(e) = sent {
            // Nothing will ever answer this monitor; fire it now.
            let fx = lock(&self.inner.procs).remote_down(
                &reference,
                match target {
                    Dest::Pid(p) => ProcRef::Pid(p.clone()),
                    Dest::Name { name, .. } => ProcRef::Name(name.clone()),
                },
                atom("noconnection"),
                &Atom::from(node.as_str()),
            );
            self.inner.execute(fx);
            if matches!(e, SendError::Connect(_)) {
                return Ok(reference);
            }
            return Err(e);
        }
        Ok(reference)
    }

    fn demonitor(&self, id: u32, reference: &Ref) {
        let fx = lock(&self.inner.procs).demonitor(id, reference);
        if let Some(procs::Effect::Remote { node, control }) = fx {
            if let Ok(peer) = NodeName::parse(node.as_str()) {
                let conn = lock(&self.inner.peers).up(&peer).cloned();
                if let Some(c) = conn {
                    let _ = c.send(&control, None);
                }
            }
        }
    }
}

fn push_error(peer: &NodeName, e: PushError) -> SendError {
    match e {
        PushError::Busy => SendError::Busy(peer.to_string()),
        PushError::Closed => SendError::Closed(peer.to_string()),
    }
}

fn peer_of(pid: &Pid) -> Result<NodeName, SendError> {
    NodeName::parse(pid.node.as_str())
        .map_err(|_| SendError::BadDest(format!("pid of node {:?}", pid.node.as_str())))
}

/// The window of the per-peer cookie-mismatch warning: at most one line per peer per window,
/// plus one count of the rest.
pub const COOKIE_WARN_WINDOW: Duration = Duration::from_secs(60);

/// Logs the summaries of rate-limited warnings once their window is over.
async fn warn_summaries(node: Node) {
    let window = node.inner.warn.window();
    loop {
        tokio::select! {
            _ = node.stopped() => return,
            _ = tokio::time::sleep(window) => {}
        }
        for (key, n) in node.inner.warn.due() {
            warn!("{key}: {n} more in the last {}s", window.as_secs());
        }
        for (key, n) in node.inner.cookie_warn.due() {
            warn!(
                "{key}: {n} more in the last {}s",
                COOKIE_WARN_WINDOW.as_secs()
            );
        }
    }
}

#[cfg(test)]
mod tests;
