//! A client for any EPMD-speaking port mapper: ours or OTP's `epmd`. The CLI tools use it to
//! list and look up nodes, and nodes use it to register.
//!
//! Every call opens its own connection, as `erl_epmd` does: the port mapper answers one request
//! per connection and closes it, except a registration, which lives as long as its connection.
//! Every call is bounded by a timeout, so a port mapper that accepts and then hangs cannot hang
//! a tool.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::proto::{
    decode_dump_reply, decode_names_reply, decode_nodes_reply, decode_port2_reply, validate_name,
    Alive2Reply, ControlReply, DumpReply, NamesReply, NodeEntry, ProtoError, Request,
    MAX_SYMBOL_BYTES,
};

/// Default time allowed for one request and its reply.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest reply a client accepts (a NAMES reply for tens of thousands of nodes).
const MAX_REPLY_BYTES: u64 = 4 << 20;

/// What can go wrong talking to a port mapper.
#[derive(Debug, Error)]
pub enum ClientError {
    /// Nothing accepted the connection.
    #[error("no port mapper at {target}: {}", describe_io(.error))]
    Connect {
        /// `host:port` as the user gave it.
        target: String,
        /// The OS error (already described in the message, so not a chained source).
        error: std::io::Error,
    },
    /// The host name did not resolve.
    #[error("cannot resolve port mapper host {target}: {}", describe_io(.error))]
    Resolve {
        /// `host:port` as the user gave it.
        target: String,
        /// The resolver error.
        error: std::io::Error,
    },
    /// Connected, but the exchange failed.
    #[error("port mapper at {target}: {}", describe_io(.error))]
    Io {
        /// `host:port`.
        target: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// No complete reply within the timeout.
    #[error("port mapper at {target} did not answer within {timeout:?}")]
    Timeout {
        /// `host:port`.
        target: String,
        /// The time allowed.
        timeout: Duration,
    },
    /// The reply was not valid EPMD protocol.
    #[error("port mapper at {target} sent a malformed reply: {source}")]
    Protocol {
        /// `host:port`.
        target: String,
        /// What was wrong.
        #[source]
        source: ProtoError,
    },
    /// The port mapper closed the connection without replying (it refused the request).
    #[error("port mapper at {target} refused the request: {what}")]
    Refused {
        /// `host:port`.
        target: String,
        /// Which request, and the likely reason.
        what: String,
    },
    /// Not sent: no port mapper accepts this name or Extra.
    #[error("cannot register {name:?}: {source}")]
    BadEntry {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        #[source]
        source: ProtoError,
    },
    /// ALIVE2 was answered with a non-zero result (the entry itself is valid, so the name is
    /// taken).
    #[error("port mapper at {target} refused to register {name:?}: the name is already in use")]
    NameTaken {
        /// `host:port`.
        target: String,
        /// The name part before `@`.
        name: String,
    },
}

/// A short, lower-case reason for common socket errors ("connection refused").
pub fn describe_io(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset => "connection reset".into(),
        TimedOut => "timed out".into(),
        UnexpectedEof => "connection closed early".into(),
        AddrNotAvailable => "address not available".into(),
        _ => {
            let text = e.to_string();
            // Drop the "(os error N)" suffix; the text before it says it all.
            match text.find(" (os error") {
                Some(i) => text[..i].to_lowercase(),
                None => text,
            }
        }
    }
}

/// A node's registration; dropping it (closing the connection) unregisters the node.
#[derive(Debug)]
pub struct Registration {
    stream: TcpStream,
    /// The creation the port mapper handed out.
    pub creation: u32,
}

impl Registration {
    /// Resolves when the port mapper closes the registration (it stopped or restarted), so the
    /// node can register again.
    pub async fn closed(&mut self) {
        let mut byte = [0u8; 1];
        // The port mapper never sends after the reply; whatever happens means it is gone.
        let _ = self.stream.read(&mut byte).await;
    }
}

/// Talks to the port mapper at one `host:port`.
#[derive(Debug, Clone)]
pub struct EpmdClient {
    host: String,
    port: u16,
    timeout: Duration,
}

impl EpmdClient {
    /// A client for `host:port` with the default timeout.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        EpmdClient {
            host: host.into(),
            port,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets the time allowed for each request.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `host:port`, for messages.
    pub fn target(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    async fn connect(&self) -> Result<TcpStream, ClientError> {
        let target = self.target();
        let work = async {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .map_err(|error| ClientError::Resolve {
                    target: target.clone(),
                    error,
                })?
                .collect();
            let mut last = None;
            for addr in addrs {
                match TcpStream::connect(addr).await {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        crate::net::spin::watch(std::os::fd::AsFd::as_fd(&stream));
                        return Ok(stream);
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(ClientError::Connect {
                target: target.clone(),
                error: last.unwrap_or_else(|| std::io::ErrorKind::NotFound.into()),
            })
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| ClientError::Connect {
                target: self.target(),
                error: std::io::ErrorKind::TimedOut.into(),
            })?
    }

    /// Sends one request and reads everything until the server closes. A port mapper closes
    /// without a word when it refuses a request (wrong origin, strict mode, connection limit),
    /// so an empty reply becomes `Refused` with the caller's explanation.
    async fn exchange(&self, request: &Request, refusal: &str) -> Result<Vec<u8>, ClientError> {
        let mut stream = self.connect().await?;
        let target = self.target();
        let io_err = |error| ClientError::Io {
            target: target.clone(),
            error,
        };
        let work = async {
            stream
                .write_all(&request.to_bytes())
                .await
                .map_err(io_err)?;
            let mut reply = Vec::new();
            (&mut stream)
                .take(MAX_REPLY_BYTES)
                .read_to_end(&mut reply)
                .await
                .map_err(io_err)?;
            Ok(reply)
        };
        let reply: Vec<u8> = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| ClientError::Timeout {
                target: self.target(),
                timeout: self.timeout,
            })??;
        if reply.is_empty() {
            return Err(self.refused(refusal));
        }
        Ok(reply)
    }

    fn protocol(&self, source: ProtoError) -> ClientError {
        ClientError::Protocol {
            target: self.target(),
            source,
        }
    }

    /// NAMES_REQ: the registered names and ports.
    pub async fn names(&self) -> Result<NamesReply, ClientError> {
        let reply = self
            .exchange(&Request::Names, "NAMES_REQ (closed without a reply; busy?)")
            .await?;
        decode_names_reply(&reply).map_err(|e| self.protocol(e))
    }

    /// NODES (an extension of `cluster epmd`): every registration in one reply. `None` when
    /// the port mapper does not know the request (OTP's epmd closes without answering); then
    /// [`EpmdClient::names`] and [`EpmdClient::port_please`] per name give the same.
    pub async fn nodes(&self) -> Result<Option<Vec<NodeEntry>>, ClientError> {
        match self.exchange(&Request::Nodes, "NODES_REQ").await {
            Ok(reply) => decode_nodes_reply(&reply)
                .map(Some)
                .map_err(|e| self.protocol(e)),
            Err(ClientError::Refused { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// PORT_PLEASE2_REQ: a node's registration, or `None` when the name is not registered.
    pub async fn port_please(&self, name: &str) -> Result<Option<NodeEntry>, ClientError> {
        let reply = self
            .exchange(
                &Request::PortPlease2 { name: name.into() },
                "PORT_PLEASE2_REQ (closed without a reply; busy or invalid name?)",
            )
            .await?;
        decode_port2_reply(&reply).map_err(|e| self.protocol(e))
    }

    /// DUMP_REQ: epmd's debugging listing, as sent (the text keeps epmd's NULs, so that
    /// `cluster epmd --dump` prints what `epmd -dump` prints).
    pub async fn dump(&self) -> Result<DumpReply, ClientError> {
        let reply = self
            .exchange(&Request::Dump, "DUMP_REQ (allowed only from this host)")
            .await?;
        decode_dump_reply(&reply).map_err(|e| self.protocol(e))
    }

    /// KILL_REQ: asks the port mapper to exit. `No` means nodes are still registered.
    pub async fn kill(&self) -> Result<ControlReply, ClientError> {
        let reply = self
            .exchange(&Request::Kill, "KILL_REQ (allowed only from this host)")
            .await?;
        ControlReply::decode(&reply).map_err(|e| self.protocol(e))
    }

    /// STOP_REQ: forcibly unregisters `name`.
    pub async fn stop(&self, name: &str) -> Result<ControlReply, ClientError> {
        let reply = self
            .exchange(
                &Request::Stop { name: name.into() },
                "STOP_REQ (the port mapper must run with relaxed command checking, and the \
                 request must come from this host)",
            )
            .await?;
        ControlReply::decode(&reply).map_err(|e| self.protocol(e))
    }

    fn refused(&self, what: &str) -> ClientError {
        ClientError::Refused {
            target: self.target(),
            what: what.into(),
        }
    }

    /// ALIVE2_REQ: registers a node. The registration lasts until the returned value is
    /// dropped or the port mapper goes away.
    pub async fn register(&self, entry: NodeEntry) -> Result<Registration, ClientError> {
        // A port mapper refuses these with the same result as a taken name; say what is wrong
        // instead.
        let invalid = validate_name(entry.name.as_bytes()).err().or_else(|| {
            (entry.extra.len() > MAX_SYMBOL_BYTES)
                .then_some(ProtoError::ExtraTooLong(entry.extra.len()))
        });
        if let Some(source) = invalid {
            return Err(ClientError::BadEntry {
                name: entry.name,
                source,
            });
        }
        let mut stream = self.connect().await?;
        let target = self.target();
        let name = entry.name.clone();
        let work = async {
            stream
                .write_all(&Request::Alive2(entry).to_bytes())
                .await
                .map_err(|error| ClientError::Io {
                    target: target.clone(),
                    error,
                })?;
            let mut buf = BytesMut::with_capacity(8);
            loop {
                match Alive2Reply::decode(&buf) {
                    Ok(reply) => return Ok(reply),
                    Err(ProtoError::Incomplete) => {}
                    Err(e) => return Err(self.protocol(e)),
                }
                let n = stream
                    .read_buf(&mut buf)
                    .await
                    .map_err(|error| ClientError::Io {
                        target: target.clone(),
                        error,
                    })?;
                if n == 0 {
                    // Older `cluster epmd` daemons answered an invalid name with a bare `y, 1`
                    // and closed.
                    if buf.len() >= 2 && buf[1] != 0 {
                        return Err(self.refused(
                            "ALIVE2_REQ: the name was refused (empty, too long or not UTF-8)",
                        ));
                    }
                    return Err(self.refused(
                        "ALIVE2_REQ closed without an answer: the port mapper takes \
                         registrations only from its own host, or it is full",
                    ));
                }
            }
        };
        let reply = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| ClientError::Timeout {
                target: self.target(),
                timeout: self.timeout,
            })??;
        if reply.result != 0 {
            return Err(ClientError::NameTaken { target, name });
        }
        Ok(Registration {
            stream,
            creation: reply.creation,
        })
    }
}
