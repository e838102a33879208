//! Accepting connections. Every incoming connection passes the [`Gate`] (which evicts the
//! oldest silent connection rather than refusing a newcomer, and caps each source host), must
//! say who it is within the short hello deadline, and finishes the handshake within the setup
//! time per step. Floods and failures are logged through the rate limiter, so an attack costs
//! a few summary lines, not one line per connection.

use tracing::{debug, warn};

use super::super::proto::handshake::{Acceptor, HandshakeError, Hello, Status};
use super::super::setup::{self, AcceptLimits, SetupError};
use super::super::NodeName;
use super::peers;
use super::{ConnectError, Inner, Node};
use crate::net::gate::{Gate, Ticket};
use crate::net::warn::Verdict;
use crate::net::{BoxStream, Listener, PeerAddr};

impl Inner {
    /// The answer to a peer's hello, and the attempt it starts.
    fn decide(&self, hello: &Hello) -> (Status, Option<u64>) {
        let ours = &self.cfg.name;
        if hello.name.kind() != ours.kind() || hello.name == *ours {
            return (Status::NotAllowed, None);
        }
        let verdict = super::lock(&self.peers).hello(&hello.name, *ours > hello.name);
        match verdict {
            peers::Hello::Accept { attempt, status } => (status, Some(attempt)),
            peers::Hello::Alive { attempt } => (Status::Alive, Some(attempt)),
            peers::Hello::Refuse(s) => (s, None),
        }
    }

    fn warn_limited(&self, key: String, line: impl FnOnce()) {
        if self.warn.check(&key) == Verdict::Log {
            line();
        }
    }
}

pub(super) async fn accept_loop(node: Node, mut listener: Box<dyn Listener>) {
    let cfg = &node.inner.cfg;
    let gate = Gate::new(cfg.max_handshakes, cfg.max_handshakes_per_source);
    loop {
        let accepted = tokio::select! {
            _ = node.stopped() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, addr)) => {
                let source = addr.source();
                let admission = gate.admit(source);
                if admission.evicted > 0 {
                    node.inner.warn_limited(format!("handshake flood from {source}"), || {
                        warn!(
                            %source,
                            pending = gate.pending(),
                            "too many connections that have not authenticated; closing the oldest idle ones"
                        )
                    });
                }
                node.inner
                    .tracker
                    .spawn(accept_one(node.clone(), stream, addr, admission.ticket));
            }
            Err(e) => {
                // Typically out of descriptors: back off instead of spinning.
                node.inner
                    .warn_limited("accept failed".into(), || warn!("accept failed: {e}"));
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn accept_one(node: Node, mut stream: BoxStream, addr: PeerAddr, ticket: Ticket) {
    let inner = node.inner.clone();
    let cfg = &inner.cfg;
    let hs = Acceptor::new(inner.local_info(), cfg.cookie.clone(), rand::random());
    let limits = AcceptLimits {
        hello: cfg.hello_timeout.min(cfg.setup_time),
        step: cfg.setup_time,
        prefix: cfg.transport.handshake_prefix(),
    };
    let mut attempt: Option<(NodeName, u64)> = None;
    let result = {
        let decide = |hello: &Hello| {
            ticket.spoke();
            let (status, a) = inner.decide(hello);
            attempt = a.map(|a| (hello.name.clone(), a));
            status
        };
        tokio::select! {
            _ = ticket.cancel.cancelled() => Err(None),
            _ = node.stopped() => Err(None),
            r = setup::accept(&mut stream, hs, limits, decide) => r.map_err(Some),
        }
    };
    drop(ticket);
    match (result, attempt) {
        (Ok(info), Some((peer, a))) => inner.install(&peer, a, stream, info),
        (Ok(_), None) => {}
        (Err(e), attempt) => {
            let who = attempt.as_ref().map(|(p, _)| p.to_string());
            if let Some((peer, a)) = &attempt {
                let error = match &e {
                    Some(SetupError::Handshake(HandshakeError::BadCookie)) => {
                        ConnectError::BadCookie
                    }
                    Some(SetupError::Timeout(_)) => ConnectError::Timeout,
                    Some(e) => ConnectError::Handshake(e.to_string()),
                    None => ConnectError::ShuttingDown,
                };
                inner.attempt_failed(peer, *a, error);
            }
            report(&inner, e, who, addr);
        }
    }
}

fn report(inner: &Inner, e: Option<SetupError>, who: Option<String>, addr: PeerAddr) {
    let Some(e) = e else {
        debug!(%addr, "handshake evicted or abandoned");
        return;
    };
    let peer = who.clone().unwrap_or_else(|| "unknown node".into());
    match e {
        // One line per claimed name per window; a flood with a new name each time is held to
        // the limiter's line budget.
        SetupError::Handshake(HandshakeError::BadCookie) => {
            if inner
                .cookie_warn
                .check(&format!("cookie mismatch from {peer}"))
                == Verdict::Log
            {
                warn!(%peer, %addr, "connection attempt rejected: cookie mismatch (at most one line per peer a minute)");
            }
        }
        SetupError::Handshake(HandshakeError::Refused(_)) => {
            debug!(%peer, %addr, "connection attempt refused: {e}")
        }
        SetupError::Timeout("send_name") | SetupError::Closed("send_name") => {
            // Someone opened a socket and said nothing: a scan, a health check, or a flood.
            debug!(%addr, "connection closed before it said who it is: {e}")
        }
        e => {
            let source = addr.source();
            inner.warn_limited(
                format!("failed handshakes from {source}"),
                || warn!(%peer, %addr, "connection attempt failed: {e}"),
            )
        }
    }
}
