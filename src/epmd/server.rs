//! The port-mapper daemon: accepts connections, reads one request from each with the codec in
//! [`super::proto`], and applies it to the [`Registry`]. It behaves like OTP's `epmd` (see
//! `DESIGN.md`, "Port mapper"), so real `erl` nodes and `epmd -names` use it unchanged:
//! - it listens where epmd listens: every IPv4 and every IPv6 interface by default; with
//!   explicit addresses, those plus the IPv4 and IPv6 loopback. A host without IPv6 only
//!   loses the IPv6 sockets, never the daemon;
//! - a registration lives exactly as long as its TCP connection, and any byte sent on that
//!   connection after the reply also ends it;
//! - ALIVE2, DUMP, KILL and STOP are accepted only from loopback (`127.0.0.0/8`, `::1`, or
//!   either mapped into the other family) or the host's own address; NAMES and PORT_PLEASE2
//!   are answered for anyone;
//! - an ALIVE2 it refuses (a name taken, too long or not UTF-8) gets result 1 and creation 99
//!   in the layout asked for (`y` or `v`), and its connection then stays open until the
//!   client closes it or sends a byte, as a registration's would;
//! - the packet timeout is for inactivity: each byte received restarts it, so a client that
//!   writes its request a byte at a time is still answered;
//! - KILL is refused while nodes are registered, and STOP is ignored, unless the daemon runs
//!   with relaxed command checking.
//!
//! Unlike epmd it never trusts a client to be quick or well-formed: a connection must send
//! its whole request within an overall deadline however steadily it trickles (so no slowloris
//! holds a connection for ever), a declared length beyond the largest legal request is refused
//! before anything is buffered, and the number of open connections is capped. None of that
//! touches existing registrations.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::proto::{
    encode_names_line, encode_nodes_reply, encode_port2_reply, Alive2Reply, ControlReply, DumpLine,
    NodeEntry, ProtoError, Request, REFUSED_CREATION,
};
use super::registry::{ConnId, Registry};
use crate::net::gate::{Gate, Ticket};
use crate::net::warn::{Verdict, WarnLimiter};
use crate::net::PeerSource;

/// epmd's own default packet timeout: a connection that sends nothing for this long while its
/// request is incomplete is closed.
pub const DEFAULT_PACKET_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time a connection has to send its whole request, however steadily it trickles.
/// The largest legal request is about 3 KB: a real client sends it in one write, and even a
/// client pausing for a whole default packet timeout before its last byte gets an answer.
pub const DEFAULT_REQUEST_DEADLINE: Duration = Duration::from_secs(60);
/// Default cap on simultaneously open connections (registered nodes included).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// How long shutdown waits for connection tasks to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How the daemon is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Port to listen on; 0 picks a free one (tests).
    pub port: u16,
    /// Addresses to listen on. Empty means every interface, IPv4 and IPv6, as epmd. When
    /// given, the IPv4 and IPv6 loopback addresses are always added, as epmd adds them.
    pub addresses: Vec<IpAddr>,
    /// Allow KILL with live nodes and STOP, like `epmd -relaxed_command_check`.
    pub relaxed_command_check: bool,
    /// Longest silence while a connection's request is incomplete; every byte received starts
    /// it anew, as epmd's `-packet_timeout` does.
    pub packet_timeout: Duration,
    /// Longest time a connection may take to send its whole request, counted from its
    /// accept. This is what stops a client that keeps a connection alive by trickling bytes
    /// just inside the packet timeout. Whichever of the two runs out first closes the
    /// connection.
    pub request_deadline: Duration,
    /// Most connections waiting for their request at once; at the cap the oldest waiting one
    /// is closed to admit a newcomer (one host may hold at most half), so a crowd of idle
    /// connections evicts itself instead of locking real clients out. Registrations, which
    /// hold their connection while the node lives, have a cap of the same size of their own.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            port: 4369,
            addresses: Vec::new(),
            relaxed_command_check: false,
            packet_timeout: DEFAULT_PACKET_TIMEOUT,
            request_deadline: DEFAULT_REQUEST_DEADLINE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Errors that stop the daemon from starting or running.
#[derive(Debug, Error)]
pub enum ServerError {
    /// Another process already listens there.
    #[error("address {addr} is already in use")]
    AddrInUse {
        /// Where the bind failed.
        addr: SocketAddr,
    },
    /// Binding failed for another reason.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Where the bind failed.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

struct Shared {
    registry: Mutex<Registry>,
    /// Cancels a registered connection, for STOP_REQ.
    registered: Mutex<HashMap<ConnId, CancellationToken>>,
    next_conn: AtomicU64,
    config: ServerConfig,
    port: u16,
    /// Cancelled by KILL_REQ as well as by the owner.
    shutdown: CancellationToken,
    /// Rate-limits warnings per source.
    warn: WarnLimiter,
}

impl Shared {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the registry half-updated (every
        // method completes its change before returning), so a poisoned lock is still usable.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn registered(&self) -> MutexGuard<'_, HashMap<ConnId, CancellationToken>> {
        self.registered.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A bound, not yet running, port mapper.
pub struct Server {
    listeners: Vec<TcpListener>,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds every configured address on the configured port (with port 0, the first bind
    /// picks the port and the others reuse it). The IPv6 addresses added on the user's
    /// behalf are optional: a host without IPv6 serves on IPv4 alone.
    pub async fn bind(config: ServerConfig) -> Result<Server, ServerError> {
        let mut port = config.port;
        let mut listeners = Vec::new();
        for ListenAddr { ip, required } in listen_addresses(&config.addresses) {
            let addr = SocketAddr::new(ip, port);
            let listener = match listen(addr) {
                Ok(listener) => listener,
                Err(source) if !required => {
                    if no_ipv6(&source) {
                        debug!("port mapper: not listening on {addr}: {source} (no IPv6 here)");
                    } else {
                        warn!("port mapper: not listening on {addr}: {source}");
                    }
                    continue;
                }
                Err(source) if source.kind() == std::io::ErrorKind::AddrInUse => {
                    return Err(ServerError::AddrInUse { addr })
                }
                Err(source) => return Err(ServerError::Bind { addr, source }),
            };
            if port == 0 {
                port = listener
                    .local_addr()
                    .map_err(|source| ServerError::Bind { addr, source })?
                    .port();
            }
            listeners.push(listener);
        }
        Ok(Server {
            listeners,
            shared: Arc::new(Shared {
                registry: Mutex::new(Registry::new()),
                registered: Mutex::new(HashMap::new()),
                next_conn: AtomicU64::new(1),
                config,
                port,
                shutdown: CancellationToken::new(),
                warn: WarnLimiter::new(crate::net::warn::DEFAULT_WINDOW),
            }),
        })
    }

    /// The port actually listened on.
    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// The addresses actually listened on.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` is cancelled or a KILL_REQ is accepted, then closes every
    /// connection (which unregisters every node) and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let shared = self.shared;
        let tracker = TaskTracker::new();
        let max = shared.config.max_connections.max(2);
        let limits = Limits {
            waiting: Gate::new(max, max / 2),
            registrations: Arc::new(Semaphore::new(max)),
        };
        let stop = shared.shutdown.clone();
        let forward = {
            let stop = stop.clone();
            tokio::spawn(async move {
                shutdown.cancelled().await;
                stop.cancel();
            })
        };
        let mut accepts = Vec::new();
        for listener in self.listeners {
            accepts.push(tokio::spawn(accept_loop(
                listener,
                shared.clone(),
                limits.clone(),
                tracker.clone(),
            )));
        }
        let summaries = tokio::spawn(warn_summaries(shared.clone()));
        stop.cancelled().await;
        for task in accepts {
            let _ = task.await;
        }
        forward.abort();
        summaries.abort();
        tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
            .await
            .is_err()
        {
            warn!("port mapper: connections still open after {SHUTDOWN_GRACE:?}; exiting anyway");
        }
    }
}

/// The accept queue the daemon asks for (the kernel caps it at `net.core.somaxconn`). Every
/// node on a host asks the port mapper at start, and a node that dials many peers asks too;
/// on a loaded host the daemon may not get the CPU for a moment, and a short queue then drops
/// SYNs, which clients only retry a second later.
const BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        // IPv6 only, as epmd's: `[::]` then sits beside `0.0.0.0` on the same port instead of
        // colliding with it, whatever the host's `bindv6only` default.
        socket.set_only_v6(true)?;
    }
    // As std's bind does: a restarted daemon can take its port while old connections linger.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG as i32)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// Whether a bind failed because the host has no IPv6 (no `::1`, or no IPv6 stack at all).
fn no_ipv6(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EADDRNOTAVAIL | nix::libc::EAFNOSUPPORT | nix::libc::EPROTONOSUPPORT)
    )
}

/// An address to listen on, and whether failing to bind it stops the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ListenAddr {
    ip: IpAddr,
    required: bool,
}

/// Where epmd 25 listens (checked with `ss -ltn` here): with no address, on `0.0.0.0` and
/// `[::]`; with addresses, on `127.0.0.1`, `[::1]` and those. The IPv6 wildcard and loopback
/// are optional unless asked for by name, so a host without IPv6 still gets a port mapper.
fn listen_addresses(requested: &[IpAddr]) -> Vec<ListenAddr> {
    let wanted = |ip: IpAddr| ListenAddr { ip, required: true };
    let optional = |ip: IpAddr| ListenAddr {
        ip,
        required: requested.contains(&ip),
    };
    if requested.is_empty() || requested.iter().any(|ip| ip.is_unspecified()) {
        // A wildcard covers loopback already; binding both would collide.
        return vec![
            wanted(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            optional(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        ];
    }
    let mut addrs = vec![
        wanted(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        optional(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ];
    for &ip in requested {
        if !addrs.iter().any(|a| a.ip == ip) {
            addrs.push(wanted(ip));
        }
    }
    addrs
}

#[derive(Clone)]
struct Limits {
    /// Connections that have not sent their request yet.
    waiting: Gate,
    /// Registrations (connections held by live nodes).
    registrations: Arc<Semaphore>,
}

async fn warn_summaries(shared: Arc<Shared>) {
    let window = shared.warn.window();
    loop {
        tokio::time::sleep(window).await;
        for (key, n) in shared.warn.due() {
            warn!(
                "port mapper: {key}: {n} more in the last {}s",
                window.as_secs()
            );
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    limits: Limits,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let local = is_local_peer(&stream, peer);
                let admission = limits
                    .waiting
                    .admit(PeerSource::Ip(peer.ip().to_canonical()));
                if admission.evicted > 0 {
                    let key = format!("idle connections closed ({})", peer.ip());
                    if shared.warn.check(&key) == Verdict::Log {
                        warn!(
                            %peer,
                            "port mapper: {} connections are waiting without a request; closing the oldest",
                            limits.waiting.pending()
                        );
                    }
                }
                tracker.spawn(serve_connection(
                    stream,
                    peer,
                    local,
                    admission.ticket,
                    limits.registrations.clone(),
                    shared.clone(),
                ));
            }
            Err(e) => {
                // Typically EMFILE: back off instead of spinning, the listener stays usable.
                if shared.warn.check("accept failed") == Verdict::Log {
                    warn!("port mapper: accept failed: {e}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn is_local_peer(stream: &TcpStream, peer: SocketAddr) -> bool {
    stream
        .local_addr()
        .is_ok_and(|local| is_local(peer.ip(), local.ip()))
}

/// Whether a peer is on this host, as epmd decides it: a loopback address of either family
/// (an IPv4 address mapped into IPv6 counts as itself), or the very address it connected to.
fn is_local(peer: IpAddr, local: IpAddr) -> bool {
    let peer = peer.to_canonical();
    peer.is_loopback() || peer == local.to_canonical()
}

async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    local: bool,
    ticket: Ticket,
    registrations: Arc<Semaphore>,
    shared: Arc<Shared>,
) {
    let request = tokio::select! {
        _ = shared.shutdown.cancelled() => return,
        _ = ticket.cancel.cancelled() => {
            debug!(%peer, "port mapper: closing an idle connection to admit a newer one");
            return;
        }
        read = tokio::time::timeout(
            shared.config.request_deadline,
            read_request(&mut stream, shared.config.packet_timeout),
        ) => read,
    };
    // It has spoken: no longer among the connections waiting for a request.
    drop(ticket);
    let request = match request {
        Err(_) => {
            debug!(%peer, "port mapper: no whole request within the request deadline; closing");
            return;
        }
        Ok(Err(ReadError::Idle)) => {
            debug!(%peer, "port mapper: silent for the packet timeout; closing");
            return;
        }
        Ok(Err(ReadError::Closed)) => return,
        Ok(Err(ReadError::Io(e))) => {
            debug!(%peer, "port mapper: read failed: {e}");
            return;
        }
        Ok(Err(ReadError::Proto(e))) => {
            if shared
                .warn
                .check(&format!("bad requests from {}", peer.ip()))
                == Verdict::Log
            {
                warn!(%peer, "port mapper: bad request: {e}");
            }
            // An ALIVE2 that epmd reads and refuses gets its refusal, and from this host only,
            // as epmd looks at the origin before the name; anything else is closed unanswered.
            if let Some(reply) = e.alive2_refusal().filter(|_| local) {
                if let Ok(permit) = registrations.try_acquire_owned() {
                    serve_refusal(stream, peer, reply, permit, shared).await;
                } else {
                    // No room to hold it open: answer, then close.
                    let _ = write_reply(&mut stream, &reply).await;
                }
            }
            return;
        }
        Ok(Ok(request)) => request,
    };
    let result = match request {
        Request::Alive2(entry) if local => {
            let Ok(permit) = registrations.try_acquire_owned() else {
                // Closed unanswered, as epmd does when it is full (a `y` with result 1 would
                // read as "name in use").
                if shared.warn.check("registrations full") == Verdict::Log {
                    warn!(%peer, name = %entry.name, "port mapper: too many registrations; refusing");
                }
                return;
            };
            return serve_registration(stream, peer, entry, permit, shared).await;
        }
        Request::PortPlease2 { name } => {
            let mut out = BytesMut::new();
            encode_port2_reply(shared.registry().lookup(&name).map(|r| &r.entry), &mut out);
            stream.write_all(&out).await
        }
        Request::Nodes => {
            let mut out = BytesMut::new();
            encode_nodes_reply(shared.registry().live().map(|r| &r.entry), &mut out);
            stream.write_all(&out).await
        }
        Request::Names => {
            let mut out = BytesMut::new();
            out.put_u32(u32::from(shared.port));
            for line in shared.registry().names() {
                encode_names_line(&line, &mut out);
            }
            stream.write_all(&out).await
        }
        Request::Dump if local => {
            let out = dump(&shared);
            stream.write_all(&out).await
        }
        Request::Kill if local => {
            let allowed = shared.config.relaxed_command_check || shared.registry().is_empty();
            let reply = if allowed {
                ControlReply::Ok
            } else {
                ControlReply::No
            };
            let written = stream.write_all(reply.as_bytes()).await;
            if allowed {
                info!(%peer, "port mapper: stopped by KILL request");
                shared.shutdown.cancel();
            }
            written
        }
        Request::Stop { name } if local => {
            if !shared.config.relaxed_command_check {
                warn!(%peer, "port mapper: STOP refused (needs --relaxed-command-check)");
                return;
            }
            let gone = shared.registry().unregister_name(&name);
            let reply = match gone {
                Some(reg) => {
                    if let Some(token) = shared.registered().remove(&reg.conn) {
                        token.cancel();
                    }
                    info!(name = %name, "port mapper: unregistered by STOP request");
                    ControlReply::Stopped
                }
                None => ControlReply::NoExist,
            };
            stream.write_all(reply.as_bytes()).await
        }
        other => {
            warn!(%peer, "port mapper: refused {} from a non-local address", request_kind(&other));
            return;
        }
    };
    if let Err(e) = result {
        debug!(%peer, "port mapper: writing reply failed: {e}");
    }
}

fn request_kind(req: &Request) -> &'static str {
    match req {
        Request::Alive2(_) => "ALIVE2_REQ",
        Request::PortPlease2 { .. } => "PORT_PLEASE2_REQ",
        Request::Names => "NAMES_REQ",
        Request::Dump => "DUMP_REQ",
        Request::Nodes => "NODES_REQ",
        Request::Kill => "KILL_REQ",
        Request::Stop { .. } => "STOP_REQ",
    }
}

/// The DUMP reply, as epmd 25 sends it: the port, the live names newest first, then the
/// remembered ones in the order they unregistered, each line in epmd's layout with our
/// connection number where epmd has its file descriptor.
fn dump(shared: &Shared) -> BytesMut {
    let mut out = BytesMut::new();
    out.put_u32(u32::from(shared.port));
    let registry = shared.registry();
    for reg in registry.live() {
        DumpLine {
            active: true,
            name: reg.entry.name.clone(),
            port: reg.entry.port,
            fd: reg.conn,
        }
        .encode(&mut out);
    }
    for (name, old) in registry.remembered() {
        DumpLine {
            active: false,
            name: name.to_owned(),
            port: old.port,
            fd: old.conn,
        }
        .encode(&mut out);
    }
    out
}

async fn write_reply<S: AsyncWrite + Unpin>(
    stream: &mut S,
    reply: &Alive2Reply,
) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    reply.encode(&mut out);
    stream.write_all(&out).await
}

/// Waits until the client closes the connection or sends anything (either ends a
/// registration, as in epmd), the registration is stopped, or the daemon shuts down.
async fn hold<S: AsyncRead + Unpin>(stream: &mut S, stopped: &CancellationToken, shared: &Shared) {
    let mut byte = [0u8; 1];
    tokio::select! {
        _ = stream.read(&mut byte) => {}
        _ = stopped.cancelled() => {}
        _ = shared.shutdown.cancelled() => {}
    }
}

/// Answers an ALIVE2 that was refused and keeps its connection open until the client lets
/// go, as epmd does: a client reading its reply late (OTP's own test waits a second) still
/// finds it, and a refused connection counts against the registrations' cap while it lasts.
async fn serve_refusal(
    mut stream: TcpStream,
    peer: SocketAddr,
    reply: Alive2Reply,
    _permit: OwnedSemaphorePermit,
    shared: Arc<Shared>,
) {
    if let Err(e) = write_reply(&mut stream, &reply).await {
        debug!(%peer, "port mapper: writing reply failed: {e}");
        return;
    }
    hold(&mut stream, &CancellationToken::new(), &shared).await;
}

async fn serve_registration(
    mut stream: TcpStream,
    peer: SocketAddr,
    entry: NodeEntry,
    permit: OwnedSemaphorePermit,
    shared: Arc<Shared>,
) {
    let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let name = entry.name.clone();
    let port = entry.port;
    let extended = entry.highest >= 6;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let token = CancellationToken::new();
    let registered = shared.registry().register(entry, conn, now);
    let reply = match &registered {
        Ok(creation) => {
            shared.registered().insert(conn, token.clone());
            Alive2Reply {
                result: 0,
                creation: *creation,
                extended,
            }
        }
        Err(e) => {
            // Rate-limited: a client retrying a taken name must not flood the log.
            if shared
                .warn
                .check(&format!("registrations refused from {}", peer.ip()))
                == Verdict::Log
            {
                warn!(%peer, "port mapper: registration refused: {e}");
            }
            let reply = Alive2Reply {
                result: 1,
                creation: REFUSED_CREATION,
                extended,
            };
            return serve_refusal(stream, peer, reply, permit, shared).await;
        }
    };
    let written = write_reply(&mut stream, &reply).await;
    let Ok(creation) = registered else { return };
    if written.is_ok() {
        info!(name = %name, port, creation, "port mapper: registered");
        hold(&mut stream, &token, &shared).await;
    }
    drop(permit);
    shared.registered().remove(&conn);
    if shared.registry().unregister_conn(conn).is_some() {
        info!(name = %name, "port mapper: unregistered");
    }
}

enum ReadError {
    Closed,
    /// Nothing arrived for a whole packet timeout.
    Idle,
    Io(std::io::Error),
    /// A malformed request.
    Proto(ProtoError),
}

/// Reads exactly one request; never buffers more than the largest legal request. `idle` is
/// the packet timeout: it bounds each wait for more bytes, not the whole request, so a slow
/// but live client is served as epmd serves it (the caller bounds the whole).
async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    idle: Duration,
) -> Result<Request, ReadError> {
    let mut buf = BytesMut::with_capacity(64);
    loop {
        match Request::check(&buf) {
            // Reads are capped at the declared length, so `total` is all there is.
            Ok(total) => return Request::decode(&buf[2..total]).map_err(ReadError::Proto),
            Err(ProtoError::Incomplete) => {
                let want = match buf.len() {
                    0 | 1 => 2 - buf.len(),
                    _ => 2 + u16::from_be_bytes([buf[0], buf[1]]) as usize - buf.len(),
                };
                buf.reserve(want);
                let mut limited = (&mut *stream).take(want as u64);
                match tokio::time::timeout(idle, limited.read_buf(&mut buf)).await {
                    Err(_) => return Err(ReadError::Idle),
                    Ok(Ok(0)) if buf.is_empty() => return Err(ReadError::Closed),
                    Ok(Ok(0)) => {
                        return Err(ReadError::Io(std::io::ErrorKind::UnexpectedEof.into()))
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(ReadError::Io(e)),
                }
            }
            Err(e) => return Err(ReadError::Proto(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(requested: &[&str]) -> Vec<(String, bool)> {
        let requested: Vec<IpAddr> = requested.iter().map(|a| a.parse().unwrap()).collect();
        listen_addresses(&requested)
            .into_iter()
            .map(|a| (a.ip.to_string(), a.required))
            .collect()
    }

    fn owned(list: &[(&str, bool)]) -> Vec<(String, bool)> {
        list.iter().map(|(a, r)| (a.to_string(), *r)).collect()
    }

    #[test]
    fn listen_addresses_follow_epmd() {
        // Every interface of both families; IPv6 only if the host has it.
        assert_eq!(addrs(&[]), owned(&[("0.0.0.0", true), ("::", false)]));
        assert_eq!(
            addrs(&["10.1.2.3", "0.0.0.0"]),
            owned(&[("0.0.0.0", true), ("::", false)])
        );
        // Both loopbacks are always added to explicit addresses.
        assert_eq!(
            addrs(&["10.1.2.3"]),
            owned(&[("127.0.0.1", true), ("::1", false), ("10.1.2.3", true)])
        );
        // An IPv6 address asked for by name must bind.
        assert_eq!(
            addrs(&["fe80::1", "127.0.0.1", "::1"]),
            owned(&[("127.0.0.1", true), ("::1", true), ("fe80::1", true)])
        );
    }

    #[test]
    fn locality_covers_both_loopbacks_and_the_own_address() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let wild = ip("0.0.0.0");
        for peer in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(is_local(ip(peer), wild), "{peer}");
        }
        // The host's own address, in either spelling, on either side.
        assert!(is_local(ip("10.0.0.5"), ip("10.0.0.5")));
        assert!(is_local(ip("::ffff:10.0.0.5"), ip("10.0.0.5")));
        assert!(is_local(ip("10.0.0.5"), ip("::ffff:10.0.0.5")));
        assert!(is_local(ip("fd00::2"), ip("fd00::2")));
        for peer in ["10.0.0.6", "::ffff:10.0.0.6", "fd00::3", "::2"] {
            assert!(!is_local(ip(peer), ip("10.0.0.5")), "{peer}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_packet_timeout_restarts_with_every_byte() {
        let request = Request::Names.to_bytes();
        let (mut client, mut server) = tokio::io::duplex(64);
        let reader =
            tokio::spawn(async move { read_request(&mut server, Duration::from_secs(1)).await });
        // Three bytes, 900 ms apart: 2.7 s in all, never a whole second of silence.
        for byte in request.iter() {
            tokio::time::sleep(Duration::from_millis(900)).await;
            client.write_all(&[*byte]).await.unwrap();
        }
        assert!(matches!(reader.await.unwrap(), Ok(Request::Names)));

        let (mut client, mut server) = tokio::io::duplex(64);
        let reader =
            tokio::spawn(async move { read_request(&mut server, Duration::from_secs(1)).await });
        client.write_all(&request[..1]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(matches!(reader.await.unwrap(), Err(ReadError::Idle)));
    }
}
