//! The transport seam: how a node finds, reaches and publishes itself to its peers.
//!
//! A distribution connection is just a byte stream, so the node runtime takes any
//! `AsyncRead + AsyncWrite` ([`BoxStream`]) and leaves finding and dialling peers to a
//! [`Transport`]:
//! - [`tcp::TcpTransport`] is the real one: peers are found through the port mapper (EPMD) on
//!   their host, and the node publishes its own port there;
//! - [`memory::MemoryTransport`] connects nodes inside one process through in-memory pipes, so
//!   the node runtime is tested with no sockets, no port mapper and a paused clock.
//!
//! TLS distribution slots in here as a transport that wraps TCP streams (and uses a 4-byte
//! handshake length, as OTP's `inet_tls_dist` does).
//!
//! [`ports`] remembers each host's port-mapper listing for a moment, so a burst of dials asks
//! once per host.
//!
//! [`spin`] lets runtime threads busy-wait briefly on the node's sockets before sleeping.
//!
//! [`gate`] is the shared guard in front of every listener: a cap on handshakes in progress
//! that evicts the oldest idle one rather than refusing a newcomer, a per-source limit, and
//! log lines that summarise floods instead of repeating them.

pub mod gate;
pub mod memory;
pub mod ports;
pub mod spin;
pub mod tcp;
pub mod warn;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::dist::NodeName;
use crate::epmd::ClientError;

/// A byte stream to a peer.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A boxed [`Stream`].
pub type BoxStream = Box<dyn Stream>;

/// Where an incoming connection came from, for per-source limits and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerAddr {
    /// A network peer.
    Ip(IpAddr, u16),
    /// An in-memory peer (tests).
    Memory(u64),
}

impl PeerAddr {
    /// The part that identifies the source host, for per-source limits.
    pub fn source(&self) -> PeerSource {
        match self {
            PeerAddr::Ip(ip, _) => PeerSource::Ip(ip.to_canonical()),
            PeerAddr::Memory(_) => PeerSource::Memory,
        }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Ip(ip, port) => write!(f, "{}", std::net::SocketAddr::new(*ip, *port)),
            PeerAddr::Memory(n) => write!(f, "memory:{n}"),
        }
    }
}

/// The source host of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerSource {
    /// A network host.
    Ip(IpAddr),
    /// The in-memory transport.
    Memory,
}

impl fmt::Display for PeerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerSource::Ip(ip) => write!(f, "{ip}"),
            PeerSource::Memory => f.write_str("memory"),
        }
    }
}

/// A bound listener.
pub trait Listener: Send + 'static {
    /// The next incoming connection.
    fn accept(&mut self) -> BoxFuture<'_, std::io::Result<(BoxStream, PeerAddr)>>;
    /// The port peers reach us on (0 where ports mean nothing).
    fn port(&self) -> u16;
    /// The address listened on, for messages.
    fn address(&self) -> String;
}

/// A node's entry in its host's directory (the port mapper); dropping it unpublishes.
pub trait Publication: Send + 'static {
    /// The creation the directory handed out.
    fn creation(&self) -> u32;
    /// Resolves when the directory drops the entry (the port mapper stopped or restarted).
    fn closed(&mut self) -> BoxFuture<'_, ()>;
}

/// What a node publishes about itself.
#[derive(Debug, Clone)]
pub struct PublishInfo {
    /// The port it listens on.
    pub port: u16,
    /// Visible or hidden.
    pub visible: bool,
    /// Free text for the port mapper's Extra field (the role).
    pub extra: Vec<u8>,
}

/// Where to listen.
#[derive(Debug, Clone)]
pub struct ListenSpec {
    /// The address; `None` means the address of the node name's host.
    pub addr: Option<IpAddr>,
    /// The port range, like `inet_dist_listen_min/max`; `(0, 0)` picks any.
    pub ports: (u16, u16),
}

/// Why a listener could not be set up.
#[derive(Debug, Error)]
pub enum ListenError {
    /// The name's host does not resolve.
    #[error("cannot resolve the listen address for host {host}: {reason}")]
    Resolve {
        /// The host.
        host: String,
        /// Why.
        reason: String,
    },
    /// No port in the range could be bound.
    #[error("cannot listen on {addr} ({}): {}", describe_ports(*.min, *.max), crate::epmd::client::describe_io(.error))]
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
    /// The in-memory transport already has that name.
    #[error("name {0} is already listening")]
    Taken(String),
}

fn describe_ports(min: u16, max: u16) -> String {
    match (min, max) {
        (0, 0) => "any port".into(),
        (a, b) if a == b => format!("port {a}"),
        (a, b) => format!("ports {a}-{b}"),
    }
}

/// Why a node could not publish itself.
#[derive(Debug, Error)]
pub enum PublishError {
    /// The port mapper failed or refused.
    #[error(transparent)]
    PortMapper(#[from] ClientError),
    /// Starting a port mapper failed.
    #[error("cannot start a port mapper on port {port}: {error}")]
    Start {
        /// Its port.
        port: u16,
        /// Why.
        error: std::io::Error,
    },
}

/// Why a peer could not be reached (before any handshake).
#[derive(Debug, Error)]
pub enum DialError {
    /// The peer's host name does not resolve.
    #[error("cannot resolve host {host}: {reason}")]
    Resolve {
        /// The host.
        host: String,
        /// Why.
        reason: String,
    },
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
    #[error("name {alive} not registered on {host}{}", hint_text(.hint))]
    NotRegistered {
        /// Name part.
        alive: String,
        /// Host.
        host: String,
        /// Names that are registered there, when few.
        hint: Vec<String>,
    },
    /// TCP connect failed.
    #[error("connection refused by {addr}")]
    Refused {
        /// Where.
        addr: String,
    },
    /// Nothing answered in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

fn hint_text(hint: &[String]) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!(" (registered there: {})", hint.join(", "))
    }
}

/// Finds and reaches peers, and publishes the node.
pub trait Transport: Send + Sync + 'static {
    /// Binds the distribution listener for `name`.
    fn listen<'a>(
        &'a self,
        name: &'a NodeName,
        spec: &'a ListenSpec,
    ) -> BoxFuture<'a, Result<Box<dyn Listener>, ListenError>>;

    /// Finds `peer` and opens a stream to it, within `limit`.
    fn dial<'a>(
        &'a self,
        peer: &'a NodeName,
        limit: Duration,
    ) -> BoxFuture<'a, Result<BoxStream, DialError>>;

    /// Publishes `name` (the port mapper's ALIVE2 for TCP).
    fn publish<'a>(
        &'a self,
        name: &'a NodeName,
        info: &'a PublishInfo,
    ) -> BoxFuture<'a, Result<Box<dyn Publication>, PublishError>>;

    /// Bytes of length before each handshake message: 2 on plain TCP, 4 inside TLS.
    fn handshake_prefix(&self) -> usize {
        2
    }

    /// A stream [`Transport::dial`] opened to `peer` did not lead to a connection (the
    /// handshake failed: perhaps another node now listens where `peer` did). Whatever the
    /// transport remembers about where `peer` is should be asked again.
    fn dial_failed(&self, _peer: &NodeName) {}
}
