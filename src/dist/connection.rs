//! One established distribution connection: a writer task that batches outgoing frames and
//! ticks when idle, and a reader task that decodes incoming frames and hands them to the node.
//! Neither interprets what a message means; that is the node's job (through [`Dispatch`]).
//!
//! Ticks follow Erlang's `net_ticktime` T with intensity 4: every T/4 the writer sends a tick
//! if it wrote nothing in that period, and the reader declares the peer down
//! (`net_tick_timeout`) after four consecutive T/4 periods with nothing read.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use eetf::Term;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::codec::{decode_data, Control, Frame, FrameCodec};
use super::handshake::PeerInfo;

/// Outgoing frames queued per connection before senders wait.
pub const OUTBOX_CAPACITY: usize = 4096;
/// The writer flushes once this many bytes are batched.
const WRITE_BATCH: usize = 256 * 1024;
/// Erlang's tick intensity: ticks per `net_ticktime`.
const TICK_INTENSITY: u32 = 4;

/// Why a connection went down; printed as the atom Erlang uses where there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// Nothing was read for a whole `net_ticktime`.
    TickTimeout,
    /// The peer closed the socket.
    Closed,
    /// We disconnected on purpose.
    Disconnect,
    /// Our node is shutting down.
    Shutdown,
    /// A frame above the size limit, or a socket error.
    Error(String),
}

impl std::fmt::Display for DownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DownReason::TickTimeout => f.write_str("net_tick_timeout"),
            DownReason::Closed => f.write_str("connection_closed"),
            DownReason::Disconnect => f.write_str("disconnect"),
            DownReason::Shutdown => f.write_str("shutdown"),
            DownReason::Error(e) => write!(f, "{e}"),
        }
    }
}

/// Where a connection delivers what it reads.
pub trait Dispatch: Send + Sync + 'static {
    /// A decoded message from `peer`.
    fn dispatch(
        &self,
        peer: &PeerInfo,
        control: Control,
        payload: Option<Term>,
    ) -> impl Future<Output = ()> + Send;
    /// The connection `id` to `peer` is gone.
    fn closed(&self, peer: &PeerInfo, id: u64, reason: DownReason);
}

/// Settings of a connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnParams {
    /// `net_ticktime`.
    pub ticktime: Duration,
    /// Largest frame accepted.
    pub max_frame: usize,
}

/// The handle the node keeps for a live connection.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// Distinguishes this connection from a later one to the same peer.
    pub id: u64,
    /// Who is on the other side.
    pub peer: PeerInfo,
    /// Whole encoded frames to write.
    pub tx: mpsc::Sender<Bytes>,
    /// Cancelling closes the connection.
    pub cancel: CancellationToken,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Starts the reader and writer tasks for an established connection.
pub fn spawn<D: Dispatch>(
    stream: TcpStream,
    peer: PeerInfo,
    params: ConnParams,
    dispatch: Arc<D>,
    tracker: &tokio_util::task::TaskTracker,
) -> ConnHandle {
    let _ = stream.set_nodelay(true);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel(OUTBOX_CAPACITY);
    let cancel = CancellationToken::new();
    let quarter = params.ticktime / TICK_INTENSITY;

    let mut writer = tracker.spawn(write_loop(wr, rx, quarter, cancel.clone()));
    let mut reader = tracker.spawn(read_loop(
        rd,
        peer.clone(),
        params.max_frame,
        quarter,
        dispatch.clone(),
        cancel.clone(),
    ));
    let handle = ConnHandle {
        id,
        peer: peer.clone(),
        tx,
        cancel: cancel.clone(),
    };
    tracker.spawn(async move {
        let reason = tokio::select! {
            r = &mut reader => { cancel.cancel(); let _ = writer.await; r }
            w = &mut writer => { cancel.cancel(); let _ = reader.await; w }
        };
        let reason = reason.unwrap_or_else(|e| DownReason::Error(format!("task failed: {e}")));
        dispatch.closed(&peer, id, reason);
    });
    handle
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Bytes>,
    quarter: Duration,
    cancel: CancellationToken,
) -> DownReason {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + quarter, quarter);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut wrote = false;
    let mut batch = BytesMut::with_capacity(64 * 1024);
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                let _ = wr.shutdown().await;
                return DownReason::Disconnect;
            }
            frame = rx.recv() => {
                let Some(frame) = frame else { return DownReason::Disconnect };
                batch.extend_from_slice(&frame);
                while batch.len() < WRITE_BATCH {
                    match rx.try_recv() {
                        Ok(more) => batch.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                if let Err(e) = wr.write_all(&batch).await {
                    return DownReason::Error(format!("write failed: {e}"));
                }
                batch.clear();
                wrote = true;
            }
            _ = ticker.tick() => {
                if !wrote {
                    if let Err(e) = wr.write_all(&[0, 0, 0, 0]).await {
                        return DownReason::Error(format!("write failed: {e}"));
                    }
                }
                wrote = false;
            }
        }
    }
}

async fn read_loop<D: Dispatch>(
    rd: OwnedReadHalf,
    peer: PeerInfo,
    max_frame: usize,
    quarter: Duration,
    dispatch: Arc<D>,
    cancel: CancellationToken,
) -> DownReason {
    let mut framed = FramedRead::with_capacity(rd, FrameCodec::new(max_frame), 64 * 1024);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + quarter, quarter);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = false;
    let mut silent_periods = 0u32;
    loop {
        let frame = tokio::select! {
            biased;
            _ = cancel.cancelled() => return DownReason::Disconnect,
            frame = framed.next() => frame,
            _ = ticker.tick() => {
                if heard {
                    silent_periods = 0;
                } else {
                    silent_periods += 1;
                    if silent_periods >= TICK_INTENSITY {
                        return DownReason::TickTimeout;
                    }
                }
                heard = false;
                continue;
            }
        };
        heard = true;
        match frame {
            None => return DownReason::Closed,
            Some(Err(e)) => {
                warn!(peer = %peer.name, "closing connection: {e}");
                return DownReason::Error(e.to_string());
            }
            Some(Ok(Frame::Tick)) => {}
            Some(Ok(Frame::Data(data))) => match decode_data(&data) {
                Ok((control, payload)) => dispatch.dispatch(&peer, control, payload).await,
                // The framing is intact, so only this message is lost; the link stays up.
                Err(e) => warn!(peer = %peer.name, "dropping malformed message: {e}"),
            },
        }
    }
}
