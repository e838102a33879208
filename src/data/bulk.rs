//! The bulk channel's sockets: the writer's listener that streams snapshots and changes to
//! each replica, and the replica's side that receives and applies them.
//!
//! Why a channel of its own: seed 003. A gigabyte snapshot on the distribution connection
//! would sit in front of ticks and calls for as long as it takes to send; here it has its own
//! TCP connection, its own tasks, and store work on threads of its own, so the distribution
//! connection never waits for it.
//!
//! Every wait has a bound, and each side detects the other's failure by what it *reads*:
//! - setup (connect, the cookie challenge both ways) is bounded by the node's setup time;
//! - the writer sends a head frame every tick interval when it has nothing else to send, and
//!   the replica acknowledges what it has applied at least as often; either side that reads
//!   nothing for a tick time closes the channel;
//! - flow control: the writer keeps at most [`WINDOW`] bytes beyond what the replica has
//!   acknowledged as applied (one larger frame may go alone), so a slow replica slows only its
//!   own stream, and memory on both sides stays bounded; a replica that stops reading makes
//!   the writer's wait for credit run out after a tick time.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::Framed;
use tracing::{debug, info, warn};

use super::change::Change;
use super::commit::{now_ms, Head};
use super::replica::{Applier, Status};
use super::store::{Store, StoreError};
use super::wire::{Codec, Frame, WireError, HANDSHAKE_FRAME};
use crate::dist::proto::handshake::digest;
use crate::dist::Cookie;

/// Bytes a writer may send beyond what the replica has applied.
pub const WINDOW: u64 = 64 * 1024 * 1024;
/// Bytes per snapshot or change batch, about.
pub const BATCH_BYTES: usize = 1024 * 1024;
/// Replica connections a writer serves at once.
pub const MAX_REPLICAS: usize = 64;

/// Why a bulk channel ended.
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    /// Framing or socket.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The peer did not prove the cookie.
    #[error("the peer's cookie does not match ours")]
    Cookie,
    /// The peer broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// Nothing came within the bound.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The peer closed.
    #[error("the peer closed the channel")]
    Closed,
    /// Our side could not apply what came (a gap, a digest that disagrees).
    #[error("applying the stream failed: {0}")]
    Apply(String),
    /// The peer said why it gave up.
    #[error("the peer says: {0}")]
    Peer(String),
}

/// What the writer's side needs.
#[derive(Clone)]
pub struct WriterSide {
    /// The store.
    pub store: Arc<Store>,
    /// The committed head.
    pub head: watch::Receiver<Head>,
    /// The cookie.
    pub cookie: Cookie,
    /// Our node name.
    pub node: String,
    /// Tick time: the silence after which a replica is dropped.
    pub ticktime: Duration,
    /// Setup bound.
    pub setup: Duration,
    /// The largest frame.
    pub max_frame: usize,
}

/// Binds the writer's bulk listener on `ip` (port 0) and serves replicas until `stop` fires.
pub async fn listen(ip: IpAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(ip, 0)).await
}

/// Serves replicas on `listener`.
pub async fn serve(listener: TcpListener, side: WriterSide) {
    let busy = Arc::new(AtomicUsize::new(0));
    let pending: Arc<Mutex<std::collections::VecDeque<(u64, tokio::task::AbortHandle)>>> =
        Arc::default();
    let mut next_id = 0u64;
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!("bulk channel accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if busy.load(Ordering::Relaxed) >= MAX_REPLICAS {
            debug!(%peer, "bulk channel refused: too many replicas");
            continue;
        }
        // Connections that have not proved the cookie have a small cap of their own; at the
        // cap the oldest is dropped, so a flood of them cannot keep a real replica (whose
        // handshake takes a millisecond) out.
        {
            let mut p = pending.lock().expect("lock");
            if p.len() >= MAX_PENDING {
                if let Some((_, oldest)) = p.pop_front() {
                    oldest.abort();
                }
            }
        }
        let _ = sock.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let side = side.clone();
        let (busy2, pending2) = (busy.clone(), pending.clone());
        let task = tokio::spawn(async move {
            let mut guard = Slot {
                id,
                busy: busy2,
                pending: pending2,
                authed: false,
            };
            match stream_to(sock, &side, || guard.authenticated()).await {
                Ok(()) => {}
                Err(e) => info!(%peer, "bulk channel to a replica ended: {e}"),
            }
        });
        pending
            .lock()
            .expect("lock")
            .push_back((id, task.abort_handle()));
    }
}

/// Connections not yet authenticated, at most.
pub const MAX_PENDING: usize = 16;

/// A connection's place in the writer's counts; freed however its task ends (aborted too).
struct Slot {
    id: u64,
    busy: Arc<AtomicUsize>,
    pending: Arc<Mutex<std::collections::VecDeque<(u64, tokio::task::AbortHandle)>>>,
    authed: bool,
}

impl Slot {
    fn authenticated(&mut self) {
        let id = self.id;
        self.pending.lock().expect("lock").retain(|(i, _)| *i != id);
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.authed = true;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.authed {
            self.busy.fetch_sub(1, Ordering::Relaxed);
        } else {
            let id = self.id;
            if let Ok(mut p) = self.pending.lock() {
                p.retain(|(i, _)| *i != id);
            }
        }
    }
}

async fn next_frame(
    framed: &mut Framed<TcpStream, Codec>,
    bound: Duration,
) -> Result<(Frame, usize), BulkError> {
    match tokio::time::timeout(bound, framed.next()).await {
        Err(_) => Err(BulkError::Timeout(bound)),
        Ok(None) => Err(BulkError::Closed),
        Ok(Some(Err(e))) => Err(e.into()),
        Ok(Some(Ok((Frame::Error(why), _)))) => Err(BulkError::Peer(why)),
        Ok(Some(Ok(f))) => Ok(f),
    }
}

async fn send(
    framed: &mut Framed<TcpStream, Codec>,
    frame: Frame,
    bound: Duration,
) -> Result<(), BulkError> {
    match tokio::time::timeout(bound, framed.send(frame)).await {
        Err(_) => Err(BulkError::Timeout(bound)),
        Ok(r) => r.map_err(Into::into),
    }
}

/// One replica: handshake, then a snapshot or a resume, then the change stream.
async fn stream_to(
    sock: TcpStream,
    side: &WriterSide,
    authenticated: impl FnOnce(),
) -> Result<(), BulkError> {
    // Small frames only until the replica has proved the cookie.
    let mut framed = Framed::new(sock, Codec::new(HANDSHAKE_FRAME));
    let challenge: u32 = rand::random();
    send(
        &mut framed,
        Frame::Hello {
            challenge,
            node: side.node.clone(),
        },
        side.setup,
    )
    .await?;
    let claim = next_frame(&mut framed, side.setup).await?.0;
    let Frame::Claim {
        digest: theirs,
        challenge: their_challenge,
        node,
        lineage,
        version,
        digest_at,
    } = claim
    else {
        return Err(BulkError::Protocol("expected the replica's claim".into()));
    };
    if theirs != digest(&side.cookie, challenge) {
        let _ = send(
            &mut framed,
            Frame::Error("cookie rejected".into()),
            side.setup,
        )
        .await;
        return Err(BulkError::Cookie);
    }
    authenticated();
    send(
        &mut framed,
        Frame::Ack {
            digest: digest(&side.cookie, their_challenge),
        },
        side.setup,
    )
    .await?;
    framed.codec_mut().set_max(side.max_frame);
    // Inline, like the log reads below: both use the published read transaction.
    let meta = side.store.meta()?;
    // Version 0 (a new replica, or one that found its copy damaged) always takes a snapshot,
    // even of an empty store: the replica accepts a resume only from where its copy is.
    let resumable = if lineage != meta.lineage || version > meta.version || version == 0 {
        false
    } else if version == meta.version {
        digest_at == meta.digest
    } else {
        // The log must still hold the change after the replica's version, and the replica's
        // digest must be ours at its version.
        side.store
            .logged(version)?
            .is_some_and(|c| c.digest == digest_at)
    };
    let mut acks = Acks {
        consumed: 0,
        heard: Instant::now(),
    };
    let mut sent: u64 = 0;
    let mut cursor;
    if resumable {
        info!(replica = %node, version, "replica resumes");
        send(
            &mut framed,
            Frame::Resume {
                lineage: meta.lineage,
                version,
            },
            side.ticktime,
        )
        .await?;
        cursor = version + 1;
    } else {
        info!(replica = %node, from = version, "replica takes a snapshot");
        let (tx, mut rx) = mpsc::channel::<Result<Frame, StoreError>>(4);
        let store = side.store.clone();
        let snap_meta = Arc::new(Mutex::new(None));
        let sm = snap_meta.clone();
        let spawned = std::thread::Builder::new()
            .name("cluster-snapshot".into())
            .spawn(move || {
                super::background_priority();
                let mut snap = match store.snapshot() {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                };
                let m = snap.meta();
                *sm.lock().expect("lock") = Some(m);
                if tx
                    .blocking_send(Ok(Frame::SnapshotBegin {
                        lineage: m.lineage,
                        version: m.version,
                    }))
                    .is_err()
                {
                    return;
                }
                loop {
                    match snap.next_batch(BATCH_BYTES) {
                        Ok(Some(b)) => {
                            if tx
                                .blocking_send(Ok(Frame::SnapshotBatch {
                                    buckets: b.buckets,
                                    entries: b.entries,
                                }))
                                .is_err()
                            {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let _ = tx.blocking_send(Err(e));
                            return;
                        }
                    }
                }
                let _ = tx.blocking_send(Ok(Frame::SnapshotEnd {
                    version: m.version,
                    digest: m.digest,
                }));
            });
        if let Err(e) = spawned {
            return Err(BulkError::Protocol(format!(
                "cannot start a snapshot thread: {e}"
            )));
        }
        // While the snapshot streams, read the replica's acknowledgements on the side.
        let mut end = None;
        loop {
            // Credit: do not run more than a window ahead of what the replica applied.
            wait_credit(&mut framed, &mut acks, sent, side.ticktime).await?;
            let frame = match tokio::time::timeout(side.ticktime, rx.recv()).await {
                Err(_) => continue,
                Ok(None) => break,
                Ok(Some(f)) => f?,
            };
            if let Frame::SnapshotEnd { version, .. } = &frame {
                end = Some(*version);
            }
            sent += frame.wire_len() as u64;
            send(&mut framed, frame, side.ticktime).await?;
        }
        let Some(v) = end else {
            return Err(BulkError::Protocol("the snapshot ended early".into()));
        };
        cursor = v + 1;
    }
    // Follow the log.
    let mut head = side.head.clone();
    let idle = side.ticktime / 4;
    loop {
        wait_credit(&mut framed, &mut acks, sent, side.ticktime).await?;
        // Inline: the read uses the read transaction the commit thread published, so it waits
        // for nobody, and a thread hop per change would cost more than the read (replica lag).
        let batch = side.store.log_from(cursor, BATCH_BYTES)?;
        if let Some(first) = batch.first() {
            if Change::peek_version(first) != Some(cursor) {
                let _ = send(
                    &mut framed,
                    Frame::Error(format!(
                        "version {cursor} is no longer in the writer's log; take a snapshot"
                    )),
                    side.setup,
                )
                .await;
                return Err(BulkError::Protocol(format!(
                    "the replica fell behind the log's retention (it needs version {cursor})"
                )));
            }
            cursor = batch
                .last()
                .and_then(|c| Change::peek_version(c))
                .unwrap_or(cursor)
                + 1;
            let frame = Frame::Changes(batch);
            sent += frame.wire_len() as u64;
            send(&mut framed, frame, side.ticktime).await?;
            continue;
        }
        // Nothing new: wait for a commit, or send our head as a tick, while reading acks.
        let deadline = tokio::time::Instant::now() + idle;
        loop {
            tokio::select! {
                changed = head.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    if head.borrow().version >= cursor {
                        break;
                    }
                }
                got = framed.next() => {
                    acks.note(got)?;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    if acks.heard.elapsed() > side.ticktime {
                        return Err(BulkError::Timeout(side.ticktime));
                    }
                    let h = *head.borrow();
                    send(&mut framed, Frame::Head { version: h.version, digest: h.digest, time_ms: h.time_ms }, side.ticktime).await?;
                    break;
                }
            }
        }
    }
}

/// What the writer has read from a replica: the bytes it has applied, and when it last spoke.
struct Acks {
    consumed: u64,
    heard: Instant,
}

impl Acks {
    /// Takes one frame read from the replica: only acknowledgements are expected.
    fn note(&mut self, got: Option<Result<(Frame, usize), WireError>>) -> Result<(), BulkError> {
        match got {
            None => Err(BulkError::Closed),
            Some(Err(e)) => Err(e.into()),
            Some(Ok((Frame::Applied { consumed, .. }, _))) => {
                self.consumed = self.consumed.max(consumed);
                self.heard = Instant::now();
                Ok(())
            }
            Some(Ok((Frame::Error(why), _))) => Err(BulkError::Peer(why)),
            Some(Ok((f, _))) => Err(BulkError::Protocol(format!(
                "unexpected frame from a replica: {}",
                f.name()
            ))),
        }
    }
}

/// Waits until `sent` is within a window of what the replica acknowledged, reading its acks;
/// fails when it neither acknowledges nor says anything for a tick time.
async fn wait_credit(
    framed: &mut Framed<TcpStream, Codec>,
    acks: &mut Acks,
    sent: u64,
    ticktime: Duration,
) -> Result<(), BulkError> {
    loop {
        if sent.saturating_sub(acks.consumed) <= WINDOW {
            // Within the window: take whatever acks are already here, without waiting.
            match futures_util::FutureExt::now_or_never(framed.next()) {
                Some(got) => {
                    acks.note(got)?;
                    continue;
                }
                None => return Ok(()),
            }
        }
        let since = acks.heard.elapsed();
        let left = ticktime.saturating_sub(since);
        if left.is_zero() {
            return Err(BulkError::Timeout(ticktime));
        }
        match tokio::time::timeout(left, framed.next()).await {
            Err(_) => return Err(BulkError::Timeout(ticktime)),
            Ok(got) => acks.note(got)?,
        }
    }
}

/// Where a channel is, as the replica reads it: what the writer may send next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Just after the handshake: a snapshot begins, or the writer resumes from our version.
    Start,
    /// Inside a snapshot: batches, then its end.
    Snapshot,
    /// Following the change stream.
    Stream,
}

/// What the replica's side needs.
#[derive(Clone)]
pub struct ReplicaSide {
    /// The store.
    pub store: Arc<Store>,
    /// The cookie.
    pub cookie: Cookie,
    /// Our node name.
    pub node: String,
    /// Tick time.
    pub ticktime: Duration,
    /// Setup bound.
    pub setup: Duration,
    /// The largest frame.
    pub max_frame: usize,
    /// What the data process and reports read.
    pub status: Arc<Mutex<Status>>,
}

/// Connects to a writer's bulk channel at `addr` and follows it until the channel fails.
/// Returns why it ended. `force_snapshot` claims version 0 (after a divergence).
pub async fn follow(
    addr: SocketAddr,
    side: &ReplicaSide,
    applier: &Applier,
    force_snapshot: bool,
) -> Result<(), BulkError> {
    let sock = match tokio::time::timeout(side.setup, TcpStream::connect(addr)).await {
        Err(_) => return Err(BulkError::Timeout(side.setup)),
        Ok(r) => r.map_err(WireError::from)?,
    };
    let _ = sock.set_nodelay(true);
    // Small frames only until the writer has proved the cookie.
    let mut framed = Framed::new(sock, Codec::new(HANDSHAKE_FRAME));
    let Frame::Hello { challenge, node } = next_frame(&mut framed, side.setup).await?.0 else {
        return Err(BulkError::Protocol("expected the writer's hello".into()));
    };
    let meta = side.store.meta()?;
    let (lineage, version, digest_at) = if force_snapshot || meta.version == 0 {
        (meta.lineage, 0, 0)
    } else {
        (meta.lineage, meta.version, meta.digest)
    };
    let ours: u32 = rand::random();
    send(
        &mut framed,
        Frame::Claim {
            digest: digest(&side.cookie, challenge),
            challenge: ours,
            node: side.node.clone(),
            lineage,
            version,
            digest_at,
        },
        side.setup,
    )
    .await?;
    match next_frame(&mut framed, side.setup).await?.0 {
        Frame::Ack { digest: d } if d == digest(&side.cookie, ours) => {
            framed.codec_mut().set_max(side.max_frame);
        }
        Frame::Ack { .. } => return Err(BulkError::Cookie),
        f => {
            return Err(BulkError::Protocol(format!(
                "expected the writer's ack, got a {} frame",
                f.name()
            )))
        }
    }
    debug!(writer = %node, "bulk channel up");
    let claimed = (lineage, version);
    let mut stage = Stage::Start;
    let mut consumed: u64 = 0;
    let mut acked_at = Instant::now();
    let mut last_ack_sent = (u64::MAX, u64::MAX);
    let mut last_frame = Instant::now();
    let idle = side.ticktime / 4;
    loop {
        // Report progress (and that we are alive) when it moved, or every tick interval.
        let (applied, done_bytes) = applier.progress();
        if let Some(why) = applier.failure() {
            return Err(BulkError::Apply(why));
        }
        if (applied, done_bytes) != last_ack_sent || acked_at.elapsed() >= idle {
            send(
                &mut framed,
                Frame::Applied {
                    version: applied,
                    consumed: done_bytes,
                },
                side.ticktime,
            )
            .await?;
            last_ack_sent = (applied, done_bytes);
            acked_at = Instant::now();
        }
        // Failure detection is by what we read: a writer silent for a tick time is gone.
        let silent_until = tokio::time::Instant::from_std(last_frame + side.ticktime);
        let got = tokio::select! {
            got = framed.next() => got,
            _ = applier.progressed() => continue,
            _ = tokio::time::sleep(idle) => continue,
            _ = tokio::time::sleep_until(silent_until) => return Err(BulkError::Timeout(side.ticktime)),
        };
        let (frame, size) = match got {
            None => return Err(BulkError::Closed),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(f)) => f,
        };
        last_frame = Instant::now();
        consumed += size as u64;
        side.status.lock().expect("lock").heard(now_ms());
        // A snapshot or a resume first, then the stream; anything else is refused before it
        // touches the store or the status.
        let next = match (&frame, stage) {
            (Frame::SnapshotBegin { .. }, Stage::Start) => Stage::Snapshot,
            (Frame::SnapshotBatch { .. }, Stage::Snapshot) => Stage::Snapshot,
            (Frame::SnapshotEnd { .. }, Stage::Snapshot) => Stage::Stream,
            (Frame::Resume { lineage, version }, Stage::Start)
                if (*lineage, *version) == claimed && *version > 0 =>
            {
                Stage::Stream
            }
            (Frame::Resume { lineage, version }, Stage::Start) => {
                return Err(BulkError::Protocol(format!(
                    "the writer resumes lineage {lineage:x} at version {version}, but we claimed \
                     lineage {:x} at version {}",
                    claimed.0, claimed.1
                )))
            }
            (Frame::Changes(_), Stage::Stream) => Stage::Stream,
            (Frame::Head { .. }, s) => s,
            (Frame::Error(why), _) => return Err(BulkError::Peer(why.clone())),
            (f, s) => {
                return Err(BulkError::Protocol(format!(
                    "unexpected frame from the writer ({s:?}): {}",
                    f.name()
                )))
            }
        };
        stage = next;
        match frame {
            Frame::SnapshotBegin { lineage, version } => {
                info!(writer = %node, version, "taking a snapshot");
                side.status.lock().expect("lock").snapshot_begins(version);
                applier.submit_begin(lineage, consumed).await;
            }
            Frame::SnapshotBatch { buckets, entries } => {
                applier.submit_batch(buckets, entries, consumed).await;
            }
            Frame::SnapshotEnd { version, digest } => {
                applier.submit_end(version, digest, consumed).await;
            }
            Frame::Resume { version, .. } => {
                info!(writer = %node, version, "resuming from version {version}, no snapshot");
                side.status.lock().expect("lock").resumed(version);
            }
            Frame::Changes(raw) => {
                let mut changes = Vec::with_capacity(raw.len());
                for r in &raw {
                    changes.push(Change::decode(r).map_err(StoreError::from)?);
                }
                if let Some(last) = changes.last() {
                    side.status.lock().expect("lock").saw_head(last.version);
                }
                applier.submit_changes(changes, consumed).await;
            }
            Frame::Head { version, .. } => {
                side.status.lock().expect("lock").saw_head(version);
                applier.note_consumed(consumed);
            }
            // Refused by the stage check above.
            f => {
                return Err(BulkError::Protocol(format!(
                    "unexpected frame from the writer: {}",
                    f.name()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::store::{bucket_hash, entry_hash, Entry, Kind};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const BOUND: Duration = Duration::from_secs(5);

    fn replica(dir: &std::path::Path) -> (ReplicaSide, Applier) {
        let store = Arc::new(Store::open(dir, Kind::Replica).unwrap());
        let status = Arc::new(Mutex::new(Status::new(store.meta().unwrap().version)));
        let applier = Applier::start(store.clone(), status.clone(), Box::new(|_| {})).unwrap();
        let side = ReplicaSide {
            store,
            cookie: Cookie::new("c"),
            node: "r@h".into(),
            ticktime: BOUND,
            setup: BOUND,
            max_frame: 1 << 20,
            status,
        };
        (side, applier)
    }

    /// A writer that knows the cookie and sends `script` after the handshake, then hangs up.
    async fn fake_writer(listener: &TcpListener, script: Vec<Frame>) {
        let (sock, _) = listener.accept().await.unwrap();
        let mut framed = Framed::new(sock, Codec::new(1 << 20));
        framed
            .send(Frame::Hello {
                challenge: 1,
                node: "w@h".into(),
            })
            .await
            .unwrap();
        let Some(Ok((Frame::Claim { challenge, .. }, _))) = framed.next().await else {
            panic!("no claim")
        };
        let cookie = Cookie::new("c");
        framed
            .send(Frame::Ack {
                digest: digest(&cookie, challenge),
            })
            .await
            .unwrap();
        for f in script {
            if framed.send(f).await.is_err() {
                return;
            }
        }
        // Read acknowledgements until the replica hangs up, or give up after a while.
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while let Some(Ok(_)) = framed.next().await {}
        })
        .await;
    }

    async fn follow_script(
        side: &ReplicaSide,
        applier: &Applier,
        script: Vec<Frame>,
    ) -> Result<(), BulkError> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        applier.reset();
        let writer = fake_writer(&listener, script);
        let (r, ()) = tokio::join!(
            tokio::time::timeout(Duration::from_secs(20), follow(addr, side, applier, false)),
            writer
        );
        r.expect("follow returned within its bounds")
    }

    async fn applied(side: &ReplicaSide, version: u64) {
        for _ in 0..200 {
            if side.store.meta().unwrap().version == version {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the replica never reached version {version}");
    }

    #[tokio::test]
    async fn a_replica_refuses_frames_out_of_order_and_resumes_it_did_not_ask_for() {
        let dir = tempfile::tempdir().unwrap();
        let (side, applier) = replica(dir.path());
        let value = vec![131, 97, 1];
        let digest_at_1 = bucket_hash("b").wrapping_add(entry_hash("b", b"k", 1, &value));
        // A proper snapshot at version 1 of lineage 7.
        let r = follow_script(
            &side,
            &applier,
            vec![
                Frame::SnapshotBegin {
                    lineage: 7,
                    version: 1,
                },
                Frame::SnapshotBatch {
                    buckets: vec!["b".into()],
                    entries: vec![Entry {
                        bucket: "b".into(),
                        key: b"k".to_vec(),
                        version: 1,
                        value: value.clone(),
                    }],
                },
                Frame::SnapshotEnd {
                    version: 1,
                    digest: digest_at_1,
                },
            ],
        )
        .await;
        assert!(matches!(r, Err(BulkError::Closed)), "{r:?}");
        applied(&side, 1).await;
        let evil = || Frame::SnapshotBatch {
            buckets: vec![],
            entries: vec![Entry {
                bucket: "b".into(),
                key: b"evil".to_vec(),
                version: 1,
                value: value.clone(),
            }],
        };
        let resume = |version| Frame::Resume {
            lineage: 7,
            version,
        };
        // A snapshot batch on a resumed stream, a snapshot end without a beginning, a resume
        // from a version we did not claim, changes before any snapshot: each is refused, and
        // nothing reaches the store or the status.
        let cases: Vec<(&str, Vec<Frame>)> = vec![
            ("batch after a resume", vec![resume(1), evil()]),
            ("batch without a beginning", vec![evil()]),
            (
                "end without a beginning",
                vec![
                    resume(1),
                    Frame::SnapshotEnd {
                        version: 1_000_000,
                        digest: digest_at_1,
                    },
                ],
            ),
            ("resume from elsewhere", vec![resume(1_000_000)]),
            (
                "resume of another lineage",
                vec![Frame::Resume {
                    lineage: 8,
                    version: 1,
                }],
            ),
            ("changes first", vec![Frame::Changes(vec![vec![0; 64]])]),
            ("a second resume", vec![resume(1), resume(1)]),
        ];
        for (what, script) in cases {
            let r = follow_script(&side, &applier, script).await;
            assert!(
                matches!(r, Err(BulkError::Protocol(_))),
                "{what}: {r:?} (expected a protocol error)"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(side.store.get("b", b"evil").unwrap(), None, "{what}");
            let meta = side.store.meta().unwrap();
            assert_eq!((meta.version, meta.digest), (1, digest_at_1), "{what}");
            assert!(side.status.lock().unwrap().applied <= 1, "{what}");
        }
        // The resume it asked for is still taken.
        let before = side.status.lock().unwrap().resumes;
        let r = follow_script(&side, &applier, vec![resume(1)]).await;
        assert!(matches!(r, Err(BulkError::Closed)), "{r:?}");
        assert_eq!(side.status.lock().unwrap().resumes, before + 1);
    }

    #[tokio::test]
    async fn a_peer_that_has_not_proved_the_cookie_cannot_send_a_large_frame() {
        // The writer: a frame header claiming a megabyte before the claim is refused at once,
        // not buffered while the peer takes its time.
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), Kind::Writer).unwrap());
        let committer = super::super::commit::Committer::start(store.clone(), 100, 16).unwrap();
        let side = WriterSide {
            store,
            head: committer.watch(),
            cookie: Cookie::new("c"),
            node: "w@h".into(),
            ticktime: Duration::from_secs(30),
            setup: Duration::from_secs(30),
            max_frame: 1 << 30,
        };
        let listener = listen(IpAddr::from([127, 0, 0, 1])).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, side));
        let mut sock = TcpStream::connect(addr).await.unwrap();
        let len = sock.read_u32().await.unwrap();
        let mut hello = vec![0; len as usize];
        sock.read_exact(&mut hello).await.unwrap();
        assert_eq!(hello[0], b'H');
        sock.write_all(&[0, 0x10, 0, 0, b'C']).await.unwrap();
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(2), sock.read_to_end(&mut rest)).await;
        assert!(
            closed.is_ok(),
            "the writer waits for a megabyte from a stranger"
        );

        // The replica: a writer's hello claiming a megabyte is refused at once.
        let rdir = tempfile::tempdir().unwrap();
        let (mut rside, applier) = replica(rdir.path());
        rside.setup = Duration::from_secs(30);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stranger = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            sock.write_all(&[0, 0x10, 0, 0, b'H']).await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        let r = tokio::time::timeout(
            Duration::from_secs(2),
            follow(addr, &rside, &applier, false),
        )
        .await
        .expect("the replica waits for a megabyte from a stranger");
        assert!(
            matches!(r, Err(BulkError::Wire(WireError::TooLarge(..)))),
            "{r:?}"
        );
        stranger.abort();
    }
}
