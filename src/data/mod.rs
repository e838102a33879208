//! The data tier: what `data_contact` and `data_service` nodes do.
//!
//! - [`store`]: the redb file on each data node (entries, buckets, change log, digest);
//! - [`change`] and [`wire`]: the change records and the bulk channel's frames (sans-IO);
//! - [`commit`]: the writer's group-commit thread;
//! - [`bulk`]: the bulk channel's sockets (seed 003: snapshots and the change stream never
//!   travel on the distribution connection);
//! - [`replica`]: a replica's status and apply thread;
//! - [`routing`]: which data_contact owns which buckets (seed 001);
//! - [`server`]: the `data` process, the gen_server contract Elixir calls;
//! - [`line`]: the Elixir guide's `kv_server` line protocol.
//!
//! A data_contact owns the writable store and streams it to replicas. A data_service keeps a
//! replica: a snapshot at version N, then the change stream from N+1; it persists the version
//! it has applied and resumes from it after a restart; it checks every change against the
//! writer's digest, and its whole store against its own digest when it starts, and takes a
//! fresh snapshot by itself when either disagrees.
//!
//! # Design notes
//!
//! **Why redb.** The store must be embedded, crash-safe and transactional, with consistent
//! read snapshots (a snapshot streams for seconds while writes go on) and a file format that
//! will still open next year. redb is all of that in pure Rust: ACID with copy-on-write
//! B-trees, MVCC readers that never block the writer, a stable format since 1.0, and no C++
//! toolchain (RocksDB), no fixed map size (LMDB), no beta status (sled). Its one trap for us:
//! `begin_read` waits while a commit holds the file header, and a commit can wait on the
//! kernel's writeback; so reads use a read transaction published by the committing thread
//! ([`store::Store`]), never one of their own.
//!
//! **One writer per bucket range.** A data_contact is the only writer of its buckets; replicas
//! never write, so they can never diverge from a partition the way mnesia's replicas do
//! (`inconsistent_database`): a replica cut off serves what it has, marked stale, and refuses
//! writes; when it is back it resumes or takes a snapshot. Availability of writes is traded
//! for that: with the data_contact down, its buckets take no writes.
//!
//! **Versions and the digest.** Every write gets the next version of its store; an entry keeps
//! the version it was written at, which is what compare-and-set compares. The digest is the
//! wrapping sum of a 128-bit hash (xxh3) of every entry and bucket: O(1) to keep up to date,
//! independent of the order things arrived in, recomputable from the tables at any time. The
//! writer logs each change with its digest after it; a replica applying the change must reach
//! the same digest, so any divergence is found at the first change that shows it.
//!
//! **Durability.** The writer acknowledges a write only after its transaction committed with
//! fsync; [`commit`] groups the writes that arrive meanwhile into one transaction. A replica
//! commits lazily and makes its state durable once a second and whenever it is idle: a crash
//! loses at most that tail, which it fetches again from the version it finds on disk.
//!
//! **The log's retention** (`--log-retention` versions) bounds the writer's disk use; a
//! replica further behind than that takes a snapshot instead of resuming.

pub mod bulk;
pub mod change;
pub mod commit;
pub mod line;
pub mod replica;
pub mod routing;
pub mod server;
pub mod store;
pub mod wire;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::dist::term::{atom, binary, tuple, Term};
use crate::dist::{Dest, Node, NodeName};
use crate::roles::Phase as RolePhase;
use replica::{Applier, Phase, Status};
use routing::Routes;
use server::{DataServer, Mode};
use store::{Kind, Store, StoreError};

/// Default log retention, in versions.
pub const DEFAULT_RETENTION: u64 = 1_000_000;
/// Default largest value, in bytes of ETF.
pub const DEFAULT_MAX_VALUE: usize = 64 * 1024 * 1024;
/// Writes queued for the commit thread at most.
const COMMIT_QUEUE: usize = 65_536;
/// Line-protocol connections served at once.
const MAX_KV_CLIENTS: usize = 1024;
/// Time allowed for a line-protocol command.
const KV_TIMEOUT: Duration = Duration::from_secs(5);
/// A line-protocol client that sends nothing for this long is closed (its slot is freed).
const KV_IDLE: Duration = Duration::from_secs(300);
/// A line, once begun, must end within this.
const KV_LINE: Duration = Duration::from_secs(30);
/// A line-protocol client that does not read its replies for this long is closed.
const KV_WRITE: Duration = Duration::from_secs(10);

/// How a data node runs.
#[derive(Debug, Clone)]
pub struct DataOptions {
    /// The node's data directory (the store file lives in it).
    pub dir: PathBuf,
    /// Routing by bucket.
    pub routes: Routes,
    /// Versions of change log the writer keeps for replicas to resume from.
    pub retention: u64,
    /// The largest value accepted.
    pub max_value: usize,
    /// The `kv_server` line protocol's port (None: off; Some(0): any free port).
    pub kv_port: Option<u16>,
    /// The data_contact a replica follows (None: the first the beacon offers).
    pub follow: Option<NodeName>,
    /// The address to bind the bulk channel and line protocol to (None: the node's host).
    pub bind: Option<IpAddr>,
    /// The beacon a replica reports its lag to (None: no reports).
    pub beacon: Option<NodeName>,
}

/// Why a data role could not start.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A listener.
    #[error("cannot listen for the {what} on {addr}: {source}")]
    Listen {
        /// Which listener.
        what: &'static str,
        /// Where.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The `data` name is taken.
    #[error("the name `data` is already registered on this node")]
    NameTaken,
    /// A thread could not start.
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
}

/// What a started data role exposes.
#[derive(Debug, Clone)]
pub struct DataHandle {
    /// The line protocol's port, when on.
    pub kv_port: Option<u16>,
    /// The bulk channel's port (writers).
    pub bulk_port: Option<u16>,
    /// The store file.
    pub store: PathBuf,
}

/// Lowers the calling thread's CPU priority (nice 10): a snapshot's bulk work yields the CPU
/// to the node's runtime thread, so ticks and calls are not delayed behind it (seed 003). On
/// Linux the nice value is per thread.
pub(crate) fn background_priority() {
    let tid = nix::unistd::gettid().as_raw();
    // SAFETY: setpriority has no memory-safety preconditions; a failure only leaves the
    // thread at normal priority.
    unsafe {
        nix::libc::setpriority(nix::libc::PRIO_PROCESS, tid as nix::libc::id_t, 10);
    }
}

/// The default data directory of `node`: one folder per node name under the user's data dir.
pub fn default_dir(node: &NodeName) -> PathBuf {
    let base = directories::ProjectDirs::from("", "", "cluster")
        .map(|p| p.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".cluster-data"));
    base.join("nodes").join(node.as_str())
}

async fn bind_ip(node: &Node, bind: Option<IpAddr>) -> IpAddr {
    if let Some(ip) = bind.or(node.config().listen_addr) {
        return ip;
    }
    resolve(node.name().host())
        .await
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

async fn resolve(host: &str) -> Option<IpAddr> {
    crate::net::tcp::host_addr(host).await.ok().flatten()
}

/// Starts a data_contact: the store, the commit thread, the bulk listener, the `data`
/// process and (when asked) the line protocol.
pub async fn start_writer(node: &Node, opts: DataOptions) -> Result<DataHandle, DataError> {
    let dir = opts.dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&dir, Kind::Writer))
        .await
        .map_err(|e| DataError::Thread(std::io::Error::other(e.to_string())))??;
    let store = Arc::new(store);
    let committer = commit::Committer::start(store.clone(), opts.retention, COMMIT_QUEUE)?;
    let ip = bind_ip(node, opts.bind).await;
    let listener = bulk::listen(ip).await.map_err(|source| DataError::Listen {
        what: "bulk channel",
        addr: ip.to_string(),
        source,
    })?;
    let bulk_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let cfg = node.config();
    let side = bulk::WriterSide {
        store: store.clone(),
        head: committer.watch(),
        cookie: cfg.cookie.clone(),
        node: node.name().to_string(),
        ticktime: cfg.ticktime,
        setup: cfg.setup_time,
        max_frame: opts.max_value + 2 * bulk::BATCH_BYTES,
    };
    let mode = Mode::Writer {
        committer,
        bulk_port,
    };
    let path = store.path().to_path_buf();
    let meta = store.meta()?;
    let kv_store = store.clone();
    server::start(
        node,
        DataServer::new(
            store,
            mode,
            opts.routes.clone(),
            node.name().clone(),
            opts.max_value,
        ),
    )
    .map_err(|_| DataError::NameTaken)?;
    let n = node.clone();
    node.spawn_task(async move {
        tokio::select! {
            _ = n.stopped() => {}
            _ = bulk::serve(listener, side) => {}
        }
    });
    let kv_port = start_kv(node, kv_store, ip, opts.kv_port).await?;
    info!(store = %path.display(), version = meta.version, bulk_port, "data_contact ready");
    Ok(DataHandle {
        kv_port,
        bulk_port: Some(bulk_port),
        store: path,
    })
}

/// Starts a data_service: the replica store (checked against its digest), the apply thread,
/// the `data` process, the follower and (when asked) the line protocol. `role` is the role
/// runner's phase, which names the data_contacts on offer.
pub async fn start_replica(
    node: &Node,
    opts: DataOptions,
    role: watch::Receiver<RolePhase>,
) -> Result<DataHandle, DataError> {
    let dir = opts.dir.clone();
    let (store, verdict) = tokio::task::spawn_blocking(move || {
        let store = Store::open(&dir, Kind::Replica)?;
        let verdict = store.verify()?;
        Ok::<_, StoreError>((store, verdict))
    })
    .await
    .map_err(|e| DataError::Thread(std::io::Error::other(e.to_string())))??;
    let store = Arc::new(store);
    let meta = store.meta()?;
    let (computed, recorded) = verdict;
    let diverged = computed != recorded;
    let mut status = Status::new(if diverged { 0 } else { meta.version });
    if diverged {
        warn!(
            store = %store.path().display(),
            "the replica's store does not add up to its own digest (edited or damaged); taking a fresh snapshot"
        );
        status.resyncs += 1;
    } else if meta.version > 0 {
        info!(
            version = meta.version,
            "replica store checked; it holds version {}", meta.version
        );
    }
    let status = Arc::new(Mutex::new(status));
    let poster_node = node.clone();
    let applier = Applier::start(
        store.clone(),
        status.clone(),
        Box::new(move |v| {
            let _ = poster_node.send(
                &Dest::name(server::NAME, poster_node.name()),
                tuple(vec![atom("$applied"), crate::dist::term::int(v as i64)]),
            );
        }),
    )
    .map_err(DataError::Thread)?;
    let cfg = node.config();
    let mode = Mode::Replica {
        status: status.clone(),
        ticktime: cfg.ticktime,
    };
    let path = store.path().to_path_buf();
    let kv_store = store.clone();
    server::start(
        node,
        DataServer::new(
            store.clone(),
            mode,
            opts.routes.clone(),
            node.name().clone(),
            opts.max_value,
        ),
    )
    .map_err(|_| DataError::NameTaken)?;
    let side = bulk::ReplicaSide {
        store,
        cookie: cfg.cookie.clone(),
        node: node.name().to_string(),
        ticktime: cfg.ticktime,
        setup: cfg.setup_time,
        max_frame: opts.max_value + 2 * bulk::BATCH_BYTES,
        status,
    };
    if let Some(beacon) = opts.beacon.clone() {
        let (n, status) = (node.clone(), side.status.clone());
        node.spawn_task(async move { report_loop(n, beacon, status).await });
    }
    let n = node.clone();
    let follow = opts.follow.clone();
    node.spawn_task(async move { follow_loop(n, side, applier, role, follow, diverged).await });
    let ip = bind_ip(node, opts.bind).await;
    let kv_port = start_kv(node, kv_store, ip, opts.kv_port).await?;
    Ok(DataHandle {
        kv_port,
        bulk_port: None,
        store: path,
    })
}

/// The data_contact to follow: the fixed one, else the first on offer.
fn choose(fixed: &Option<NodeName>, role: &watch::Receiver<RolePhase>) -> Option<NodeName> {
    if let Some(f) = fixed {
        return Some(f.clone());
    }
    match &*role.borrow() {
        RolePhase::Ready(providers) => {
            let mut nodes: Vec<&str> = providers
                .iter()
                .filter(|p| p.name == "data_contact")
                .map(|p| p.node.as_str())
                .collect();
            nodes.sort_unstable();
            nodes.first().and_then(|n| NodeName::parse(n).ok())
        }
        _ => None,
    }
}

async fn follow_loop(
    node: Node,
    side: bulk::ReplicaSide,
    applier: Applier,
    mut role: watch::Receiver<RolePhase>,
    fixed: Option<NodeName>,
    mut force_snapshot: bool,
) {
    let mut pause = Duration::from_millis(200);
    let mut current: Option<NodeName> = None;
    loop {
        if node.is_stopping() {
            return;
        }
        let chosen = match (&current, choose(&fixed, &role)) {
            // Keep following the one we have while nothing better is known.
            (Some(c), None) => Some(c.clone()),
            (_, c) => c,
        };
        let Some(contact) = chosen else {
            side.status.lock().expect("lock").phase = Phase::Waiting;
            tokio::select! {
                _ = node.stopped() => return,
                _ = role.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        };
        if current.as_ref() != Some(&contact) {
            info!(contact = %contact, "following data_contact {contact}");
        }
        current = Some(contact.clone());
        {
            let mut s = side.status.lock().expect("lock");
            s.contact = Some(contact.to_string());
            if s.phase == Phase::Waiting {
                s.phase = Phase::Connecting;
            }
        }
        let result = async {
            let reply = node
                .call(
                    &Dest::name(server::NAME, &contact),
                    atom("bulk_endpoint"),
                    side.setup,
                )
                .await
                .map_err(|e| format!("{contact} does not answer: {e}"))?;
            let port = match reply.as_tuple() {
                Some([ok, p]) if ok.is_atom("ok") => p.as_int().unwrap_or(0) as u16,
                _ => return Err(format!("{contact} is not a data_contact ({reply})")),
            };
            let ip = resolve(contact.host())
                .await
                .ok_or_else(|| format!("cannot resolve {}", contact.host()))?;
            applier.reset();
            let r = bulk::follow(SocketAddr::new(ip, port), &side, &applier, force_snapshot).await;
            match r {
                Ok(()) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        };
        let result = tokio::select! {
            _ = node.stopped() => return,
            r = result => r,
        };
        let why = match result {
            Ok(()) => "the channel closed".to_owned(),
            Err(why) => why,
        };
        // A broken stream (a gap, a digest that disagrees, a snapshot that does not add up)
        // means our copy cannot be trusted: start over from a snapshot.
        if let Some(failure) = applier.failure() {
            warn!(contact = %contact, "replica store diverged ({failure}); taking a fresh snapshot");
            force_snapshot = true;
            side.status.lock().expect("lock").resyncs += 1;
        } else if side.status.lock().expect("lock").phase == Phase::Following {
            force_snapshot = false;
            pause = Duration::from_millis(200);
        }
        info!(contact = %contact, "bulk channel down: {why}");
        side.status.lock().expect("lock").cut_off(why);
        tokio::select! {
            _ = node.stopped() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// How often a replica looks at its lag to report it.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Reports the replica's lag to the beacon (`{report, Node, Map}`) whenever what it would say
/// changes, at most once a second: `names --cluster` and `monitor` show it. The milliseconds
/// are rounded to tenths of a second, so a replica keeping up does not report every second.
async fn report_loop(node: Node, beacon: NodeName, status: Arc<Mutex<Status>>) {
    let client =
        crate::beacon::BeaconClient::new(node.clone(), beacon).with_timeout(Duration::from_secs(2));
    let ticktime = node.config().ticktime;
    let me = node.name().to_string();
    let mut last: Vec<(String, String)> = Vec::new();
    loop {
        tokio::select! {
            _ = node.stopped() => return,
            _ = tokio::time::sleep(REPORT_EVERY) => {}
        }
        let report = {
            let s = status.lock().expect("lock");
            let lag = s.lag(ticktime);
            let mut r = vec![
                ("lag_ms".to_owned(), (lag.ms / 100 * 100).to_string()),
                ("lag_versions".to_owned(), lag.versions.to_string()),
                ("phase".to_owned(), s.phase.as_str().to_owned()),
                ("stale".to_owned(), lag.stale.to_string()),
            ];
            r.sort();
            r
        };
        if report == last {
            continue;
        }
        match client.report(&me, report.clone()).await {
            Ok(()) => last = report,
            // Not registered yet, or the beacon is away: try again next time.
            Err(e) => tracing::debug!("lag report not taken: {e}"),
        }
    }
}

/// Starts the line protocol on `ip:port` when asked.
async fn start_kv(
    node: &Node,
    store: Arc<Store>,
    ip: IpAddr,
    port: Option<u16>,
) -> Result<Option<u16>, DataError> {
    let Some(port) = port else {
        return Ok(None);
    };
    let listener = TcpListener::bind(SocketAddr::new(ip, port))
        .await
        .map_err(|source| DataError::Listen {
            what: "kv line protocol",
            addr: format!("{ip}:{port}"),
            source,
        })?;
    let bound = listener.local_addr().map(|a| a.port()).unwrap_or(port);
    info!(port = bound, "kv line protocol listening on {ip}:{bound}");
    let n = node.clone();
    node.spawn_task(async move { serve_kv(n, store, listener).await });
    Ok(Some(bound))
}

async fn serve_kv(node: Node, store: Arc<Store>, listener: TcpListener) {
    let clients = Arc::new(tokio::sync::Semaphore::new(MAX_KV_CLIENTS));
    loop {
        let accepted = tokio::select! {
            _ = node.stopped() => return,
            a = listener.accept() => a,
        };
        let Ok((sock, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = clients.clone().try_acquire_owned() else {
            // Say why before closing, without waiting on a client we do not serve.
            let _ = sock.try_write(line::error("busy: too many clients").as_bytes());
            continue;
        };
        let (n, store) = (node.clone(), store.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let _ = kv_client(n, store, sock).await;
        });
    }
}

async fn kv_client(
    node: Node,
    store: Arc<Store>,
    mut sock: tokio::net::TcpStream,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut discarding = false;
    let mut chunk = vec![0u8; 16 * 1024];
    let mut line_started: Option<std::time::Instant> = None;
    loop {
        // Between commands a client may idle; once a line has begun it must end in time (a
        // client sending a byte a second holds no slot for long).
        let limit = match line_started {
            Some(t) => KV_LINE.saturating_sub(t.elapsed()),
            None => KV_IDLE,
        };
        let n = tokio::select! {
            _ = node.stopped() => return Ok(()),
            n = tokio::time::timeout(limit, sock.read(&mut chunk)) => match n {
                Ok(n) => n?,
                Err(_) => {
                    if line_started.is_some() {
                        let _ = tokio::time::timeout(
                            KV_WRITE,
                            sock.write_all(line::error("line not finished in time").as_bytes()),
                        )
                        .await;
                    }
                    return Ok(());
                }
            },
        };
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let lines = line::split_lines(&mut buf, &mut discarding);
        let ended_one = !lines.is_empty();
        for line in lines {
            let reply = match line {
                Err(()) => line::error(&format!("line longer than {} bytes", line::MAX_LINE)),
                Ok(l) => kv_command(&node, &store, &l).await,
            };
            match tokio::time::timeout(KV_WRITE, sock.write_all(reply.as_bytes())).await {
                Ok(r) => r?,
                Err(_) => return Ok(()),
            }
        }
        // The clock runs for the line now pending, from when it began (or from now, when a
        // line just ended and another has begun).
        line_started = if buf.is_empty() && !discarding {
            None
        } else if ended_one || line_started.is_none() {
            Some(std::time::Instant::now())
        } else {
            line_started
        };
    }
}

async fn kv_command(node: &Node, store: &Store, l: &[u8]) -> String {
    let cmd = match line::parse(l) {
        Ok(c) => c,
        Err(line::LineError::Unknown) => return line::UNKNOWN.into(),
        Err(line::LineError::NotText) => return line::error("the line is not UTF-8"),
    };
    let b = |s: &str| binary(s.to_owned());
    let data = Dest::name(server::NAME, node.name());
    let call = |req: Term| {
        let data = data.clone();
        async move { node.call(&data, req, KV_TIMEOUT).await }
    };
    // Every command but CREATE needs the bucket to exist, as in the guide.
    let bucket = match &cmd {
        line::Command::Create(b) => b,
        line::Command::Put(b, ..) | line::Command::Get(b, _) | line::Command::Delete(b, _) => b,
    };
    // A lookup in this node's store, as `buckets` would answer, without listing them all.
    if !matches!(cmd, line::Command::Create(_)) {
        match store.has_bucket(bucket) {
            Ok(true) => {}
            Ok(false) => return line::NOT_FOUND.into(),
            Err(e) => return line::error(&e.to_string()),
        }
    }
    let req = match &cmd {
        line::Command::Create(bk) => tuple(vec![atom("create"), b(bk)]),
        line::Command::Put(bk, k, v) => tuple(vec![atom("put"), b(bk), b(k), b(v)]),
        line::Command::Get(bk, k) => tuple(vec![atom("get"), b(bk), b(k)]),
        line::Command::Delete(bk, k) => tuple(vec![atom("delete"), b(bk), b(k)]),
    };
    let reply = match call(req).await {
        Ok(r) => r,
        Err(e) => return line::error(&e.to_string()),
    };
    let reply = unwrap_stale(&reply);
    match (&cmd, reply.as_tuple()) {
        (line::Command::Get(..), Some([ok, v, _])) if ok.is_atom("ok") => match v {
            Term::Binary(bytes) => line::value(&String::from_utf8_lossy(bytes)),
            other => line::value(&other.to_string()),
        },
        (line::Command::Get(..), _) if reply.is_atom("not_found") => line::value(""),
        (_, Some([err, why])) if err.is_atom("error") => line::error(&why.to_string()),
        _ if reply.is_atom("ok") => line::OK.into(),
        (line::Command::Put(..), Some([ok, _])) if ok.is_atom("ok") => line::OK.into(),
        _ => line::error(&reply.to_string()),
    }
}

/// A stale reply's inner reply.
pub fn unwrap_stale(reply: &Term) -> Term {
    match reply.as_tuple() {
        Some([tag, _, inner]) if tag.is_atom("stale") => inner.clone(),
        _ => reply.clone(),
    }
}
