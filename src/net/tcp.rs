//! The TCP transport: peers are found through the port mapper on their host (PORT_PLEASE2,
//! or one listing of the host for a burst of dials: [`super::ports`]), reached over TCP with
//! Nagle off, and the node publishes its listen port with ALIVE2, as `erl_epmd` and
//! `inet_tcp_dist` do.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::net::{TcpListener, TcpStream};
use tracing::info;

use super::ports::PortCache;
use super::{
    BoxStream, DialError, ListenError, ListenSpec, Listener, PeerAddr, Publication, PublishError,
    PublishInfo, Transport,
};
use crate::dist::NodeName;
use crate::epmd::{ClientError, EpmdClient, NodeEntry, NodeType, Registration};

/// Starts a port mapper on the given port when none answers (`cluster epmd --daemon`).
pub type EpmdStarter = Arc<dyn Fn(u16) -> std::io::Result<()> + Send + Sync>;

/// How long a name held by a previous incarnation may take to be released.
const NAME_RELEASE_WAIT: Duration = Duration::from_secs(2);
/// At most this many registered names are listed in a "not registered" hint.
const HINT_NAMES: usize = 5;

/// Plain TCP with EPMD.
#[derive(Clone)]
pub struct TcpTransport {
    /// The port mapper's port on every host.
    pub epmd_port: u16,
    /// Called when no port mapper answers at publish time.
    pub epmd_starter: Option<EpmdStarter>,
    /// Recent listings of the hosts dialled (shared by clones).
    ports: Arc<PortCache>,
}

impl TcpTransport {
    /// A transport using the port mapper on `epmd_port`.
    pub fn new(epmd_port: u16) -> TcpTransport {
        TcpTransport {
            epmd_port,
            epmd_starter: None,
            ports: Arc::default(),
        }
    }
}

struct TcpListen {
    listener: TcpListener,
    port: u16,
    addr: SocketAddr,
}

impl Listener for TcpListen {
    fn accept(&mut self) -> BoxFuture<'_, std::io::Result<(BoxStream, PeerAddr)>> {
        async move {
            let (stream, addr) = self.listener.accept().await?;
            let _ = stream.set_nodelay(true);
            super::spin::watch(std::os::fd::AsFd::as_fd(&stream));
            Ok((
                Box::new(stream) as BoxStream,
                PeerAddr::Ip(addr.ip(), addr.port()),
            ))
        }
        .boxed()
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn address(&self) -> String {
        self.addr.to_string()
    }
}

struct TcpPublication(Registration);

impl Publication for TcpPublication {
    fn creation(&self) -> u32 {
        self.0.creation
    }

    fn closed(&mut self) -> BoxFuture<'_, ()> {
        self.0.closed().boxed()
    }
}

/// The address a node's host name stands for: IPv4 first, as erl prefers (`None` when the
/// name resolves to nothing).
pub async fn host_addr(host: &str) -> std::io::Result<Option<IpAddr>> {
    Ok(tokio::net::lookup_host((host, 0))
        .await?
        .map(|a| a.ip())
        .min_by_key(|ip| ip.is_ipv6()))
}

async fn listen_addr(name: &NodeName, spec: &ListenSpec) -> Result<IpAddr, ListenError> {
    if let Some(ip) = spec.addr {
        return Ok(ip);
    }
    let host = name.host().to_owned();
    let resolved = host_addr(&host).await.map_err(|e| ListenError::Resolve {
        host: host.clone(),
        reason: crate::epmd::client::describe_io(&e),
    })?;
    resolved.ok_or_else(|| ListenError::Resolve {
        host,
        reason: "no addresses".into(),
    })
}

fn entry(name: &NodeName, info: &PublishInfo) -> NodeEntry {
    let mut e = NodeEntry::new(name.alive(), info.port);
    e.node_type = if info.visible {
        NodeType::Normal
    } else {
        NodeType::Hidden
    };
    e.extra = info.extra.clone();
    e
}

impl TcpTransport {
    async fn register(
        &self,
        name: &NodeName,
        info: &PublishInfo,
    ) -> Result<Registration, PublishError> {
        let client = EpmdClient::new("127.0.0.1", self.epmd_port);
        let mut result = client.register(entry(name, info)).await;
        // A node restarted at once (by a supervisor, or after kill -9) can reach the port mapper
        // before it has seen the old incarnation's connection close. Give that a moment rather
        // than failing as erl does.
        let deadline = tokio::time::Instant::now() + NAME_RELEASE_WAIT;
        while matches!(result, Err(ClientError::NameTaken { .. }))
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
            result = client.register(entry(name, info)).await;
        }
        match result {
            Ok(r) => Ok(r),
            Err(ClientError::Connect { .. }) if self.epmd_starter.is_some() => {
                let Some(start) = self.epmd_starter.clone() else {
                    unreachable!("checked above")
                };
                let port = self.epmd_port;
                info!("no port mapper on port {port}; starting one");
                tokio::task::spawn_blocking(move || start(port))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))
                    .and_then(|r| r)
                    .map_err(|error| PublishError::Start { port, error })?;
                Ok(client.register(entry(name, info)).await?)
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl TcpTransport {
    fn lookup_error(&self, peer: &NodeName, e: ClientError, limit: Duration) -> DialError {
        match e {
            ClientError::Resolve { error, .. } => DialError::Resolve {
                host: peer.host().into(),
                reason: crate::epmd::client::describe_io(&error),
            },
            ClientError::Connect { .. } => DialError::NoPortMapper {
                host: peer.host().into(),
                port: self.epmd_port,
            },
            ClientError::Timeout { .. } => DialError::Timeout(limit),
            e => DialError::PortMapper(e),
        }
    }

    /// The registration found, or why there is none (with the names registered there as a
    /// hint when there are few).
    async fn registered(
        &self,
        epmd: &EpmdClient,
        peer: &NodeName,
        found: Option<NodeEntry>,
    ) -> Result<NodeEntry, DialError> {
        if let Some(found) = found {
            return Ok(found);
        }
        let hint = match epmd.names().await {
            Ok(reply) if reply.names.len() <= HINT_NAMES => {
                reply.names.into_iter().map(|n| n.name).collect()
            }
            _ => Vec::new(),
        };
        Err(DialError::NotRegistered {
            alive: peer.alive().into(),
            host: peer.host().into(),
            hint,
        })
    }
}

impl Transport for TcpTransport {
    fn listen<'a>(
        &'a self,
        name: &'a NodeName,
        spec: &'a ListenSpec,
    ) -> BoxFuture<'a, Result<Box<dyn Listener>, ListenError>> {
        async move {
            let ip = listen_addr(name, spec).await?;
            let (min, max) = spec.ports;
            let mut last = None;
            for port in min..=max.max(min) {
                match TcpListener::bind(SocketAddr::new(ip, port)).await {
                    Ok(listener) => {
                        let addr = listener.local_addr().map_err(|error| ListenError::Bind {
                            addr: ip,
                            min,
                            max,
                            error,
                        })?;
                        return Ok(Box::new(TcpListen {
                            listener,
                            port: addr.port(),
                            addr,
                        }) as Box<dyn Listener>);
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(ListenError::Bind {
                addr: ip,
                min,
                max,
                error: last.unwrap_or_else(|| std::io::ErrorKind::AddrInUse.into()),
            })
        }
        .boxed()
    }

    fn dial<'a>(
        &'a self,
        peer: &'a NodeName,
        limit: Duration,
    ) -> BoxFuture<'a, Result<BoxStream, DialError>> {
        async move {
            let epmd = EpmdClient::new(peer.host(), self.epmd_port).with_timeout(limit);
            let (found, listed) = self
                .ports
                .lookup(&epmd, peer.host(), peer.alive())
                .await
                .map_err(|e| self.lookup_error(peer, e, limit))?;
            let found = self.registered(&epmd, peer, found).await?;
            let connect = |port: u16| async move {
                match tokio::time::timeout(limit, TcpStream::connect((peer.host(), port))).await {
                    Err(_) => Err(DialError::Timeout(limit)),
                    Ok(Err(_)) => Err(DialError::Refused {
                        addr: format!("{}:{port}", peer.host()),
                    }),
                    Ok(Ok(s)) => Ok(s),
                }
            };
            let stream = match connect(found.port).await {
                Ok(s) => s,
                // The port came from the host's listing, and the peer has since left it
                // (restarted elsewhere): ask the port mapper by name, once.
                Err(DialError::Refused { .. }) if listed => {
                    self.ports.forget(peer.host());
                    let again = epmd
                        .port_please(peer.alive())
                        .await
                        .map_err(|e| self.lookup_error(peer, e, limit))?;
                    let found = self.registered(&epmd, peer, again).await?;
                    connect(found.port).await?
                }
                Err(e) => return Err(e),
            };
            let _ = stream.set_nodelay(true);
            super::spin::watch(std::os::fd::AsFd::as_fd(&stream));
            Ok(Box::new(stream) as BoxStream)
        }
        .boxed()
    }

    fn publish<'a>(
        &'a self,
        name: &'a NodeName,
        info: &'a PublishInfo,
    ) -> BoxFuture<'a, Result<Box<dyn Publication>, PublishError>> {
        async move {
            let reg = self.register(name, info).await?;
            Ok(Box::new(TcpPublication(reg)) as Box<dyn Publication>)
        }
        .boxed()
    }

    fn dial_failed(&self, peer: &NodeName) {
        self.ports.forget(peer.host());
    }
}
