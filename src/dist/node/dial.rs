//! Setting connections up: dials run in the background (a send never waits for one), each
//! bounded by the setup time per step, with a node-wide cap on dials in progress. Dialled and
//! accepted connections alike are installed here, once the slot table agrees the attempt still
//! owns the slot.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info};

use super::super::connection::{ConnParams, DownReason, Pending};
use super::super::proto::flags;
use super::super::proto::handshake::{HandshakeError, Initiator, LocalInfo, PeerInfo};
use super::super::setup::{self, SetupError};
use super::super::NodeName;
use super::events::NodeEvent;
use super::peers::Claim;
use super::{lock, ConnectError, Inner, Node};
use crate::net::BoxStream;

/// Failures remembered per peer, for `connect` callers; beyond this the table is cleared.
const MAX_FAILURES: usize = 10_000;
/// How long a connect waits on incoming handshakes from the peer (which may be a stranger
/// using its name) before dialling beside them. An honest handshake finishes well within it.
const ACCEPT_GRACE: Duration = Duration::from_secs(1);

impl Inner {
    pub(super) fn local_info(&self) -> LocalInfo {
        LocalInfo {
            name: self.cfg.name.clone(),
            flags: flags::advertised(self.cfg.visible),
            creation: self.creation.load(Ordering::Relaxed),
        }
    }

    fn conn_params(&self) -> ConnParams {
        ConnParams {
            ticktime: self.cfg.ticktime,
            max_message: self.cfg.max_message,
            busy_limit: self.cfg.busy_limit,
            hard_limit: self.cfg.hard_limit,
            budget: self.budget.clone(),
            budget_bytes: self.cfg.budget_bytes(),
        }
    }

    /// Attempt `attempt` to `peer` succeeded: install the connection (unless a newer attempt
    /// took the slot), flush what was queued meanwhile, report nodeup and start it.
    pub(super) fn install(
        self: &Arc<Self>,
        peer: &NodeName,
        attempt: u64,
        stream: BoxStream,
        info: PeerInfo,
    ) {
        let pending = Pending::new(stream, info, self.conn_params());
        let handle = pending.handle().clone();
        let established = lock(&self.peers).established(peer, attempt, handle.clone());
        let (queue, replaced) = match established {
            Ok(r) => r,
            Err(_) => {
                debug!(%peer, "connection superseded by a newer attempt; closing it");
                return;
            }
        };
        let mut dropped = 0usize;
        for q in queue {
            if handle.send(&q.control, q.message.as_ref()).is_err() {
                dropped += 1;
            }
        }
        if dropped > 0 {
            debug!(%peer, dropped, "messages queued during connection set-up were dropped");
        }
        if let Some(old) = replaced {
            old.close(DownReason::Replaced);
            self.lost(peer);
            info!(%peer, "nodedown (replaced by a new connection)");
            self.node_event(NodeEvent::Down {
                node: peer.clone(),
                visible: self.cfg.visible && old.peer.is_visible(),
                connection: old.id,
                reason: DownReason::Replaced.to_string(),
            });
        }
        lock(&self.failures).remove(peer);
        self.changed.send_modify(|v| *v += 1);
        let visible = self.cfg.visible && handle.peer.is_visible();
        info!(%peer, visible, connection = handle.id, "nodeup");
        self.node_event(NodeEvent::Up {
            node: peer.clone(),
            visible,
            connection: handle.id,
        });
        pending.start(self.clone(), &self.tracker);
    }

    /// Attempt `attempt` to `peer` failed. If it still owned the slot, what it had queued is
    /// dropped and every monitor and link made meanwhile ends with `noconnection`.
    pub(super) fn attempt_failed(&self, peer: &NodeName, attempt: u64, error: ConnectError) {
        let Some(queue) = lock(&self.peers).failed(peer, attempt) else {
            return;
        };
        let seq = self.failure_seq.fetch_add(1, Ordering::Relaxed) + 1;
        {
            let mut f = lock(&self.failures);
            if f.len() >= MAX_FAILURES {
                f.clear();
            }
            f.insert(peer.clone(), (seq, error.clone()));
        }
        self.changed.send_modify(|v| *v += 1);
        self.lost(peer);
        debug!(%peer, dropped = queue.len(), "cannot connect: {error}");
    }
}

fn setup_error(e: SetupError) -> ConnectError {
    match e {
        SetupError::Handshake(HandshakeError::BadCookie) => ConnectError::BadCookie,
        SetupError::Handshake(HandshakeError::Refused(r)) => ConnectError::Refused(r.to_owned()),
        SetupError::Timeout(_) => ConnectError::Timeout,
        other => ConnectError::Handshake(other.to_string()),
    }
}

impl Node {
    /// Connects to `peer` unless already connected, waiting for the outcome (at most a few
    /// setup times).
    pub async fn connect(&self, peer: &NodeName) -> Result<(), ConnectError> {
        if peer == self.name() {
            return Ok(());
        }
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
        let since = self.inner.failure_seq.load(Ordering::Relaxed);
        let mut changes = self.inner.changed.subscribe();
        let started = tokio::time::Instant::now();
        let deadline = started + self.inner.cfg.setup_time * 5;
        let grace = started + ACCEPT_GRACE.min(self.inner.cfg.setup_time);
        let mut claimed = false;
        let mut accepting = false;
        loop {
            if !claimed {
                claimed = true;
                let claim = lock(&self.inner.peers).claim_dial(peer);
                accepting = false;
                match claim {
                    Claim::Up(_) => return Ok(()),
                    Claim::Dial(attempt) => self.start_dial(peer.clone(), attempt),
                    Claim::InProgress => {}
                    Claim::Accepting => accepting = true,
                }
            }
            if accepting && tokio::time::Instant::now() >= grace {
                // Only incoming handshakes are running, and none has finished: they may be a
                // stranger's. Dial beside them; the first to authenticate wins.
                accepting = false;
                let alongside = lock(&self.inner.peers).dial_alongside(peer);
                if let Some(attempt) = alongside {
                    self.start_dial(peer.clone(), attempt);
                }
            }
            {
                let peers = lock(&self.inner.peers);
                if peers.up(peer).is_some() {
                    return Ok(());
                }
                if !peers.is_connecting(peer) {
                    drop(peers);
                    if let Some((seq, e)) = lock(&self.inner.failures).get(peer) {
                        if *seq > since {
                            return Err(e.clone());
                        }
                    }
                    // Came up and went again, or failed before we looked: try once more.
                    claimed = false;
                    continue;
                }
            }
            let wake = if accepting {
                grace.min(deadline)
            } else {
                deadline
            };
            if tokio::time::timeout_at(wake, changes.changed())
                .await
                .is_err()
                && wake == deadline
            {
                return Err(ConnectError::Timeout);
            }
        }
    }

    /// After the grace, dials `peer` beside incoming handshakes that have not finished (a send
    /// queued on them must not depend on a stranger's handshake).
    pub(super) fn dial_alongside_soon(&self, peer: NodeName) {
        let node = self.clone();
        let grace = ACCEPT_GRACE.min(self.inner.cfg.setup_time);
        self.inner.tracker.spawn(async move {
            tokio::select! {
                _ = node.stopped() => {}
                _ = tokio::time::sleep(grace) => {
                    let alongside = lock(&node.inner.peers).dial_alongside(&peer);
                    if let Some(attempt) = alongside {
                        node.start_dial(peer, attempt);
                    }
                }
            }
        });
    }

    /// Starts connecting to `peer` in the background, unless connected or connecting.
    pub fn connect_background(&self, peer: &NodeName) {
        if peer == self.name() || peer.kind() != self.name().kind() || self.is_stopping() {
            return;
        }
        let claim = lock(&self.inner.peers).claim_dial(peer);
        if let Claim::Dial(attempt) = claim {
            self.start_dial(peer.clone(), attempt);
        }
    }

    pub(super) fn start_dial(&self, peer: NodeName, attempt: u64) {
        self.inner
            .tracker
            .spawn(dial_task(self.clone(), peer, attempt));
    }
}

async fn dial_task(node: Node, peer: NodeName, attempt: u64) {
    let inner = node.inner.clone();
    let cfg = &inner.cfg;
    // At the cap, wait (one setup time at most) for a dial to finish rather than fail at once:
    // a burst of dials to slow peers must not make every other connect fail.
    let permit = match inner.dials.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            if inner.warn.check("dial cap") == crate::net::warn::Verdict::Log {
                tracing::warn!(
                    cap = cfg.max_dials,
                    "too many connection attempts in progress; new ones wait"
                );
            }
            let wait = tokio::time::timeout(cfg.setup_time, inner.dials.clone().acquire_owned());
            let acquired = tokio::select! {
                r = wait => r.ok().and_then(Result::ok),
                _ = node.stopped() => None,
            };
            match acquired {
                Some(p) if lock(&inner.peers).owns(&peer, attempt) => p,
                Some(_) => return inner.attempt_failed(&peer, attempt, ConnectError::Superseded),
                None => return inner.attempt_failed(&peer, attempt, ConnectError::TooManyDials),
            }
        }
    };
    let limit = cfg.setup_time;
    let work = async {
        let mut stream = cfg
            .transport
            .dial(&peer, limit)
            .await
            .map_err(|e| ConnectError::Dial(Arc::new(e)))?;
        // The peer may have connected to us meanwhile (we accepted it as a simultaneous
        // connect): then this attempt is superseded and must not go on.
        if !lock(&inner.peers).owns(&peer, attempt) {
            return Err(ConnectError::Superseded);
        }
        let hs = Initiator::new(
            inner.local_info(),
            peer.clone(),
            cfg.cookie.clone(),
            rand::random(),
        );
        // Asked `alive` (the peer has a connection to us): we want ours only if we still own
        // the slot with no handshake of the peer's in progress, which would be that very
        // connection about to complete on our side.
        let still_wanted = || lock(&inner.peers).dial_wanted(&peer, attempt);
        let info = setup::initiate(
            &mut stream,
            hs,
            limit,
            cfg.transport.handshake_prefix(),
            still_wanted,
        )
        .await
        .map_err(setup_error)?;
        Ok::<_, ConnectError>((stream, info))
    };
    let result = tokio::select! {
        r = work => r,
        _ = node.stopped() => Err(ConnectError::ShuttingDown),
    };
    drop(permit);
    match result {
        Ok((stream, info)) => inner.install(&peer, attempt, stream, info),
        // We lost a simultaneous connect: the peer's own attempt is on its way. Wait for it
        // (bounded) rather than failing what was queued.
        Err(ConnectError::Refused(r)) if r.starts_with("nok") => {
            if lock(&inner.peers).await_peer(&peer, attempt) {
                let wait = cfg.setup_time * 2;
                tokio::select! {
                    _ = node.stopped() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                inner.attempt_failed(&peer, attempt, ConnectError::Refused(r.clone()));
            }
        }
        Err(e) => {
            if matches!(e, ConnectError::Handshake(_)) {
                cfg.transport.dial_failed(&peer);
            }
            inner.attempt_failed(&peer, attempt, e)
        }
    }
}
