//! One established distribution connection: three tasks over any byte stream.
//! - The **reader** decodes frames, puts fragmented messages back together, and hands each
//!   message to the node ([`Dispatch`]), which never blocks (mailboxes are unbounded), so
//!   reading never stalls behind a slow process. Frames above [`LARGE_FRAME`] (a step at a
//!   time, as their bytes arrive) and the payloads of fragmented messages being put together
//!   take their size from the node-wide receive budget: over budget, the reader pauses instead
//!   of memory growing, but never for more than a quarter of the tick time, so that the
//!   peer's ticks are read in time; a message that still finds no room is refused. A message
//!   over the maximum size is refused too. Refused messages are skipped on their own, their
//!   `gen_call` callers (if any) are told, and the connection goes on.
//! - The **writer** drains the [`Outbox`]; every write is a cancellable await, so a peer that
//!   stops reading cannot pin it.
//! - The **supervisor** runs the [`Ticker`] every `net_ticktime / 4`: it queues ticks, and it
//!   ends the connection when nothing was read for a whole tick time (`net_tick_timeout`) or
//!   nothing could be written (`send_timeout`). Failure detection therefore never waits on
//!   the writer. When the connection ends, the supervisor stops both tasks, waits for the
//!   reader to finish its last message (so every message of a connection is delivered before
//!   its nodedown), and reports the end once.
//!
//! This module moves bytes and decodes frames; what a message means is the node's business.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::outbox::{Outbox, PushError, Sender};
use super::proto::frame::{
    decode_frame, encode_message, frame_len, sniff_frame_call, Framing, Inbound, Outgoing,
    FRAGMENT_SIZE,
};
use super::proto::handshake::PeerInfo;
use super::proto::reassembly::{Reassembly, Refusal, Refused, Step, DEFAULT_MAX_OPEN};
use super::proto::{Control, Message, Term};
use super::tick::{Period, TickAction, Ticker, INTENSITY};
use crate::net::BoxStream;

/// Frames at least this large take their size from the node's receive budget first (OTP's
/// fragments, 64 KiB, stay under it).
pub const LARGE_FRAME: usize = 256 * 1024;
/// How much of a refused frame is read to find the `gen_call` it carries.
const SNIFF_PREFIX: usize = 4096;
/// A large frame takes its budget in steps of this size as its body arrives.
const BUDGET_STEP: usize = 1 << 20;

/// Takes `want` bytes of the receive budget, waiting at most a quarter of the tick time (so
/// that the peer's ticks are read in time); `None` when the budget stayed spent.
async fn take_budget(params: &ConnParams, want: usize) -> Option<OwnedSemaphorePermit> {
    let n = want.min(params.budget_bytes).clamp(1, u32::MAX as usize) as u32;
    if let Ok(p) = params.budget.clone().try_acquire_many_owned(n) {
        return Some(p);
    }
    let wait = (params.ticktime / INTENSITY).max(Duration::from_millis(1));
    tokio::time::timeout(wait, params.budget.clone().acquire_many_owned(n))
        .await
        .ok()
        .and_then(Result::ok)
}
/// The reader's buffer.
const READ_BUFFER: usize = 64 * 1024;
/// The writer coalesces small frames into writes of about this size.
const WRITE_BATCH: usize = 256 * 1024;
/// Pieces at least this large are written from where they are instead of being copied into
/// the batch (fragments' payloads, large frames).
const DIRECT_WRITE: usize = 16 * 1024;
/// The reader yields to other tasks after this many messages in a row.
const YIELD_EVERY: u64 = 64;

/// Identifies one connection; later connections to the same peer get larger ids.
pub type ConnId = u64;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Why a connection went down; printed as the atom Erlang uses where there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// Nothing was read for a whole `net_ticktime`.
    TickTimeout,
    /// Nothing could be written for a whole `net_ticktime`.
    SendTimeout,
    /// The peer closed the socket.
    Closed,
    /// We disconnected on purpose.
    Disconnect,
    /// A newer connection to the same peer replaced this one.
    Replaced,
    /// Our node is shutting down.
    Shutdown,
    /// A frame above the size limit, or a socket error.
    Error(String),
}

impl std::fmt::Display for DownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DownReason::TickTimeout => f.write_str("net_tick_timeout"),
            DownReason::SendTimeout => f.write_str("send_timeout"),
            DownReason::Closed => f.write_str("connection_closed"),
            DownReason::Disconnect => f.write_str("disconnect"),
            DownReason::Replaced => f.write_str("replaced"),
            DownReason::Shutdown => f.write_str("shutdown"),
            DownReason::Error(e) => write!(f, "{e}"),
        }
    }
}

/// Where a connection delivers what it reads. The methods must return quickly and never wait
/// on anything: they run on the reader and supervisor tasks.
pub trait Dispatch: Send + Sync + 'static {
    /// A decoded message; `size` is its frame's length.
    fn dispatch(&self, conn: &Arc<ConnHandle>, msg: Message, size: usize);
    /// A message that will not be delivered (too large, or undecodable); the connection goes
    /// on. Its `gen_call` caller, when one was found, deserves an answer.
    fn refused(&self, conn: &Arc<ConnHandle>, refused: Refused);
    /// The connection is gone; called once, after the last `dispatch`.
    fn closed(&self, conn: &Arc<ConnHandle>, reason: DownReason);
}

/// Settings of a connection.
#[derive(Debug, Clone)]
pub struct ConnParams {
    /// `net_ticktime`.
    pub ticktime: Duration,
    /// Largest message accepted; larger ones are refused alone.
    pub max_message: usize,
    /// Outbox bytes above which waiting senders wait.
    pub busy_limit: usize,
    /// Outbox bytes above which non-waiting senders are refused.
    pub hard_limit: usize,
    /// The node-wide budget, in bytes, for large frames being received.
    pub budget: Arc<Semaphore>,
    /// The budget's size.
    pub budget_bytes: usize,
}

/// Traffic on one connection since it was set up, for operators (`cluster top`): messages and
/// their wire bytes in each direction. Ticks are not counted. The counters are relaxed atomics,
/// bumped once per message by the task that already handles it, so counting costs a few
/// uncontended increments per message and never a lock.
#[derive(Debug, Default)]
pub struct Counters {
    inbound: Direction,
    outbound: Direction,
}

/// One direction's counts, on a cache line of its own: the reader task bumps one, senders on
/// any thread the other, and neither should make the other's line bounce.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Direction {
    msgs: AtomicU64,
    bytes: AtomicU64,
}

/// A reading of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Messages received (a fragmented message counts once, when it is complete).
    pub msgs_in: u64,
    /// Bytes of message frames received (length prefixes included).
    pub bytes_in: u64,
    /// Messages queued to be sent.
    pub msgs_out: u64,
    /// Their bytes on the wire.
    pub bytes_out: u64,
}

impl Counters {
    fn received_frame(&self, bytes: usize) {
        self.inbound
            .bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn received_message(&self) {
        self.inbound.msgs.fetch_add(1, Ordering::Relaxed);
    }

    fn sent(&self, bytes: usize) {
        self.outbound.msgs.fetch_add(1, Ordering::Relaxed);
        self.outbound
            .bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn read(&self) -> Traffic {
        Traffic {
            msgs_in: self.inbound.msgs.load(Ordering::Relaxed),
            bytes_in: self.inbound.bytes.load(Ordering::Relaxed),
            msgs_out: self.outbound.msgs.load(Ordering::Relaxed),
            bytes_out: self.outbound.bytes.load(Ordering::Relaxed),
        }
    }
}

/// A live connection, shared by the node's tables and the connection's tasks.
pub struct ConnHandle {
    /// Distinguishes this connection from earlier and later ones to the same peer.
    pub id: ConnId,
    /// Who is on the other side.
    pub peer: PeerInfo,
    /// Frames to write.
    pub outbox: Outbox,
    /// The frame layout agreed with the peer.
    pub framing: Framing,
    /// Its traffic so far.
    pub counters: Counters,
    cancel: CancellationToken,
    done: CancellationToken,
    reason: Mutex<Option<DownReason>>,
    heard: AtomicBool,
}

impl std::fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnHandle")
            .field("id", &self.id)
            .field("peer", &self.peer.name)
            .finish_non_exhaustive()
    }
}

/// The ordering key of a message: its sending process, which also serves as the sequence id
/// of its fragments (one sender's fragmented messages go out one after another).
fn sender_of(control: &Control) -> Sender {
    control.sender().map_or(Sender::NONE, |p| {
        Sender(u64::from(p.serial) << 32 | u64::from(p.id))
    })
}

impl ConnHandle {
    fn encode(&self, control: &Control, message: Option<&Term>) -> (Sender, Outgoing) {
        let sender = sender_of(control);
        let msg = encode_message(control, message, self.peer.flags, sender.0, FRAGMENT_SIZE);
        (sender, msg)
    }

    /// Queues a message without waiting (refused when the peer is far behind).
    pub fn send(&self, control: &Control, message: Option<&Term>) -> Result<(), PushError> {
        if self.outbox.is_closed() {
            return Err(PushError::Closed);
        }
        let (sender, msg) = self.encode(control, message);
        let len = msg.wire_len();
        self.outbox.push(sender, msg)?;
        self.counters.sent(len);
        Ok(())
    }

    /// Queues a message, waiting while the peer is busy.
    pub async fn send_wait(
        &self,
        control: &Control,
        message: Option<&Term>,
    ) -> Result<(), PushError> {
        let (sender, msg) = self.encode(control, message);
        let len = msg.wire_len();
        self.outbox.push_wait(sender, msg).await?;
        self.counters.sent(len);
        Ok(())
    }

    /// Ends the connection with `reason` (the first reason given wins).
    pub fn close(&self, reason: DownReason) {
        {
            let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
            if r.is_none() {
                *r = Some(reason);
            }
        }
        self.cancel.cancel();
    }

    /// Resolves once the connection is gone and its end has been reported.
    #[cfg(test)]
    pub async fn closed(&self) {
        self.done.cancelled().await
    }
}

/// A connection whose tasks have not started yet: the node installs the handle first, so
/// nothing is read before the node knows the connection exists.
pub struct Pending {
    handle: Arc<ConnHandle>,
    stream: BoxStream,
    params: ConnParams,
}

impl Pending {
    /// Wraps an authenticated stream.
    pub fn new(stream: BoxStream, peer: PeerInfo, params: ConnParams) -> Pending {
        let handle = Arc::new(ConnHandle {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            framing: Framing::for_peer(peer.flags),
            peer,
            outbox: Outbox::new(params.busy_limit, params.hard_limit),
            counters: Counters::default(),
            cancel: CancellationToken::new(),
            done: CancellationToken::new(),
            reason: Mutex::new(None),
            heard: AtomicBool::new(true),
        });
        Pending {
            handle,
            stream,
            params,
        }
    }

    /// The handle, for the node's tables.
    pub fn handle(&self) -> &Arc<ConnHandle> {
        &self.handle
    }

    /// Starts reading, writing and ticking.
    pub fn start<D: Dispatch>(self, dispatch: Arc<D>, tracker: &TaskTracker) {
        let Pending {
            handle,
            stream,
            params,
        } = self;
        let (rd, wr) = tokio::io::split(stream);
        let reader = tracker.spawn(read_loop(
            rd,
            handle.clone(),
            params.clone(),
            dispatch.clone(),
        ));
        let writer = tracker.spawn(write_loop(wr, handle.clone()));
        tracker.spawn(supervise(handle, params, dispatch, reader, writer));
    }
}

async fn supervise<D: Dispatch>(
    conn: Arc<ConnHandle>,
    params: ConnParams,
    dispatch: Arc<D>,
    mut reader: tokio::task::JoinHandle<DownReason>,
    mut writer: tokio::task::JoinHandle<DownReason>,
) {
    let quarter = (params.ticktime / INTENSITY).max(Duration::from_millis(1));
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + quarter, quarter);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticker = Ticker::new();
    let (mut reader_done, mut writer_done) = (false, false);
    let ended = loop {
        tokio::select! {
            r = &mut reader => {
                reader_done = true;
                break Some(r.unwrap_or_else(|e| DownReason::Error(format!("reader failed: {e}"))));
            }
            w = &mut writer => {
                writer_done = true;
                break Some(w.unwrap_or_else(|e| DownReason::Error(format!("writer failed: {e}"))));
            }
            _ = conn.cancel.cancelled() => break None,
            _ = timer.tick() => {
                let period = Period {
                    read: conn.heard.swap(false, Ordering::Relaxed),
                    wrote: conn.outbox.take_wrote(),
                    backlog: conn.outbox.has_backlog(),
                };
                match ticker.period(period) {
                    TickAction::Idle => {}
                    TickAction::SendTick => conn.outbox.push_tick(),
                    TickAction::Timeout => break Some(DownReason::TickTimeout),
                    TickAction::SendTimeout => break Some(DownReason::SendTimeout),
                }
            }
        }
    };
    if let Some(r) = ended {
        conn.close(r);
    }
    writer.abort();
    reader.abort();
    // The reader stops at its next await; dispatching never waits, so this is prompt. Every
    // message it delivered now precedes the nodedown below.
    if !reader_done {
        let _ = reader.await;
    }
    if !writer_done {
        let _ = writer.await;
    }
    conn.outbox.close();
    let reason = conn
        .reason
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or(DownReason::Disconnect);
    dispatch.closed(&conn, reason);
    conn.done.cancel();
}

async fn write_loop(mut wr: WriteHalf<BoxStream>, conn: Arc<ConnHandle>) -> DownReason {
    let mut frames: Vec<Bytes> = Vec::new();
    let mut batch = BytesMut::with_capacity(WRITE_BATCH);
    loop {
        conn.outbox.take(WRITE_BATCH, &mut frames);
        if frames.is_empty() {
            if conn.outbox.is_closed() {
                return DownReason::Disconnect;
            }
            conn.outbox.ready().await;
            continue;
        }
        for f in frames.drain(..) {
            if f.len() >= DIRECT_WRITE {
                if let Err(e) = write_counted(&mut wr, &batch, &conn).await {
                    return e;
                }
                batch.clear();
                if let Err(e) = write_counted(&mut wr, &f, &conn).await {
                    return e;
                }
            } else {
                batch.extend_from_slice(&f);
            }
        }
        if let Err(e) = write_counted(&mut wr, &batch, &conn).await {
            return e;
        }
        batch.clear();
        if batch.capacity() > 4 * WRITE_BATCH {
            batch = BytesMut::with_capacity(WRITE_BATCH);
        }
    }
}

/// Writes all of `buf`, crediting the outbox as bytes go out (so progress on a huge frame
/// counts for the send timeout).
async fn write_counted(
    wr: &mut WriteHalf<BoxStream>,
    buf: &[u8],
    conn: &ConnHandle,
) -> Result<(), DownReason> {
    let mut off = 0;
    while off < buf.len() {
        match wr.write(&buf[off..]).await {
            Ok(0) => return Err(DownReason::Closed),
            Ok(n) => {
                off += n;
                conn.outbox.written(n);
            }
            Err(e) => return Err(DownReason::Error(format!("write failed: {e}"))),
        }
    }
    if !buf.is_empty() {
        if let Err(e) = wr.flush().await {
            return Err(DownReason::Error(format!("write failed: {e}")));
        }
    }
    Ok(())
}

/// What the reader keeps between frames.
struct ReadState<'a, D> {
    conn: &'a Arc<ConnHandle>,
    params: &'a ConnParams,
    dispatch: &'a D,
    reassembly: Reassembly,
    /// Budget held for the payloads of fragmented messages being put together.
    held: Option<OwnedSemaphorePermit>,
    malformed: u64,
}

impl<D: Dispatch> ReadState<'_, D> {
    /// Handles one whole frame's bytes. `permit` is the budget taken for a large frame; a
    /// fragment's payload keeps its share. Waits only for the receive budget, and only when
    /// this connection holds none of it (so two readers never wait on each other).
    async fn frame(
        &mut self,
        frame: Bytes,
        len: usize,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<(), DownReason> {
        let (seq, step) = match decode_frame(&frame, self.conn.framing) {
            Ok(Inbound::Whole(msg)) => {
                self.conn.counters.received_message();
                self.dispatch.dispatch(self.conn, msg, len);
                return Ok(());
            }
            Ok(Inbound::Start {
                seq,
                count,
                control,
                payload,
            }) => (seq, self.reassembly.start(seq, count, control, payload)),
            Ok(Inbound::Cont {
                seq,
                index,
                payload,
            }) => (seq, self.reassembly.cont(seq, index, payload)),
            // The framing is intact, so only this message is lost; the link stays up.
            Err(e) => {
                let call = sniff_frame_call(&frame, self.conn.framing);
                self.refuse(Refused {
                    why: Refusal::Malformed(e),
                    call,
                });
                return Ok(());
            }
        };
        drop(frame);
        let step = self.settle(seq, step, permit).await?;
        match step {
            Step::Pending => {}
            Step::Complete(msg, size) => {
                self.conn.counters.received_message();
                self.dispatch.dispatch(self.conn, msg, size)
            }
            Step::Refused(r) => self.refuse(r),
        }
        Ok(())
    }

    /// Makes the budget held match what the reassembly holds: gives back what completed or
    /// refused messages freed, and takes what `seq` grew by.
    async fn settle(
        &mut self,
        seq: u64,
        step: Step,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<Step, DownReason> {
        let want = self.reassembly.held();
        let have = self.held.as_ref().map_or(0, |h| h.num_permits());
        if want <= have {
            self.trim(want);
            return Ok(step);
        }
        let mut need = want - have;
        if let Some(mut p) = permit {
            if let Some(share) = p.split(need.min(p.num_permits())) {
                need -= share.num_permits();
                self.keep(share);
            }
        }
        if need == 0 {
            return Ok(step);
        }
        let n = need.min(u32::MAX as usize) as u32;
        if let Ok(p) = self.params.budget.clone().try_acquire_many_owned(n) {
            self.keep(p);
            return Ok(step);
        }
        if have == 0 {
            if let Some(p) = take_budget(self.params, n as usize).await {
                self.keep(p);
                return Ok(step);
            }
        }
        // Waiting while holding budget could wait on ourselves, and waiting long would leave
        // the peer's ticks unread: refuse this message instead.
        let refused = self
            .reassembly
            .abandon(seq, Refusal::Budget(self.params.budget_bytes));
        self.trim(self.reassembly.held());
        Ok(refused.map_or(Step::Pending, Step::Refused))
    }

    fn keep(&mut self, more: OwnedSemaphorePermit) {
        match &mut self.held {
            Some(h) => h.merge(more),
            None => self.held = Some(more),
        }
    }

    /// Gives back budget above `keep` bytes.
    fn trim(&mut self, keep: usize) {
        if keep == 0 {
            self.held = None;
        } else if let Some(h) = &mut self.held {
            let have = h.num_permits();
            if have > keep {
                drop(h.split(have - keep));
            }
        }
    }

    fn refuse(&mut self, r: Refused) {
        self.malformed += 1;
        if self.malformed == 1 || self.malformed.is_power_of_two() {
            warn!(peer = %self.conn.peer.name, count = self.malformed, "message not delivered: {}", r.why);
        } else {
            debug!(peer = %self.conn.peer.name, "message not delivered: {}", r.why);
        }
        self.dispatch.refused(self.conn, r);
    }
}

async fn read_loop<D: Dispatch>(
    mut rd: ReadHalf<BoxStream>,
    conn: Arc<ConnHandle>,
    params: ConnParams,
    dispatch: Arc<D>,
) -> DownReason {
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    let mut permit: Option<OwnedSemaphorePermit> = None;
    let mut st = ReadState {
        conn: &conn,
        params: &params,
        dispatch: &*dispatch,
        reassembly: Reassembly::new(conn.framing, params.max_message, DEFAULT_MAX_OPEN),
        held: None,
        malformed: 0,
    };
    // Bytes of a refused frame still to be skipped.
    let mut skip = 0usize;
    // How much the next read may take (a large frame reads no further than its budget).
    let mut read_limit: Option<usize> = None;
    let mut dispatched = 0u64;
    loop {
        loop {
            if skip > 0 {
                let n = skip.min(buf.len());
                buf.advance(n);
                skip -= n;
                if skip > 0 {
                    break;
                }
            }
            let len = match frame_len(&buf) {
                None => break,
                Some(0) => {
                    buf.advance(4);
                    continue;
                }
                Some(len) => len,
            };
            if len > params.max_message {
                // Refused unread: only its start is looked at, for a caller to answer.
                let want = len.min(SNIFF_PREFIX);
                if buf.len() < 4 + want {
                    buf.reserve(4 + want - buf.len());
                    break;
                }
                buf.advance(4);
                let prefix = buf.split_to(want).freeze();
                let call = sniff_frame_call(&prefix, conn.framing);
                st.refuse(Refused {
                    why: Refusal::TooLarge {
                        size: len,
                        max: params.max_message,
                    },
                    call,
                });
                skip = len - want;
                continue;
            }
            if buf.len() < 4 + len {
                if len >= LARGE_FRAME {
                    // The budget covers what is buffered, taken a step at a time as the body
                    // arrives, so a peer that announces a huge frame and trickles it holds
                    // only what it sent. When the budget is spent, wait a little (not reading
                    // meanwhile is the point), but never so long that the peer's ticks go
                    // unread: then the frame is refused and skipped, and the link stays up.
                    let have = permit.as_ref().map_or(0, |p| p.num_permits());
                    if buf.len() >= have {
                        let want = (4 + len - have).min(BUDGET_STEP);
                        match take_budget(&params, want).await {
                            Some(p) => match &mut permit {
                                Some(held) => held.merge(p),
                                None => permit = Some(p),
                            },
                            None => {
                                let got = buf.split().freeze();
                                let call = sniff_frame_call(&got.slice(4..), conn.framing);
                                st.refuse(Refused {
                                    why: Refusal::Budget(params.budget_bytes),
                                    call,
                                });
                                skip = 4 + len - got.len();
                                permit = None;
                                buf = BytesMut::with_capacity(READ_BUFFER);
                                continue;
                            }
                        }
                    }
                    let have = permit.as_ref().map_or(0, |p| p.num_permits());
                    read_limit = Some(have.saturating_sub(buf.len()).max(1));
                }
                buf.reserve(4 + len - buf.len());
                break;
            }
            buf.advance(4);
            conn.counters.received_frame(4 + len);
            let frame = buf.split_to(len).freeze();
            let large = permit.take();
            let was_large = large.is_some();
            if let Err(reason) = st.frame(frame, len, large).await {
                return reason;
            }
            if was_large {
                // Move what follows into a fresh small buffer: `buf` still points into the
                // large frame's allocation and would keep it alive (BytesMut reclaims it rather
                // than freeing it) for the rest of the connection.
                let rest = buf.split();
                buf = BytesMut::with_capacity(READ_BUFFER.max(rest.len()));
                buf.extend_from_slice(&rest);
            }
            dispatched += 1;
            if dispatched.is_multiple_of(YIELD_EVERY) {
                // A flood on one connection must not hold a worker thread: let others run.
                tokio::task::yield_now().await;
            }
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(READ_BUFFER);
        }
        let read = match read_limit.take() {
            Some(n) => rd.read_buf(&mut (&mut buf).limit(n)).await,
            None => rd.read_buf(&mut buf).await,
        };
        match read {
            Ok(0) => return DownReason::Closed,
            Ok(_) => conn.heard.store(true, Ordering::Relaxed),
            Err(e) => return DownReason::Error(format!("read failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::proto::flags;
    use crate::dist::proto::frame::data_frame;
    use crate::dist::proto::term::{atom, binary, tuple, Pid, Ref};
    use crate::dist::NodeName;

    #[derive(Default)]
    struct Collect {
        got: Mutex<Vec<Message>>,
        refused: Mutex<Vec<Refused>>,
        closed: Mutex<Option<DownReason>>,
    }

    impl Dispatch for Collect {
        fn dispatch(&self, _: &Arc<ConnHandle>, msg: Message, _: usize) {
            self.got.lock().unwrap().push(msg);
        }
        fn refused(&self, _: &Arc<ConnHandle>, r: Refused) {
            self.refused.lock().unwrap().push(r);
        }
        fn closed(&self, _: &Arc<ConnHandle>, reason: DownReason) {
            *self.closed.lock().unwrap() = Some(reason);
        }
    }

    fn params(tick: Duration) -> ConnParams {
        ConnParams {
            ticktime: tick,
            max_message: 1 << 20,
            busy_limit: 1 << 16,
            hard_limit: 1 << 18,
            budget: Arc::new(Semaphore::new(1 << 20)),
            budget_bytes: 1 << 20,
        }
    }

    fn peer() -> PeerInfo {
        PeerInfo {
            name: NodeName::parse("peer@127.0.0.1").unwrap(),
            flags: flags::advertised(true),
            creation: 1,
        }
    }

    fn send_to(id: u32) -> Control {
        Control::Send {
            from: None,
            to: Pid::new("me@127.0.0.1", id, 0, 1),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_down_after_the_tick_time_even_with_a_stuck_writer() {
        // The far end never reads or writes: our writes fill the pipe and block.
        let (ours, _theirs) = tokio::io::duplex(1024);
        let sink = Arc::new(Collect::default());
        let tracker = TaskTracker::new();
        let pending = Pending::new(Box::new(ours), peer(), params(Duration::from_secs(8)));
        let conn = pending.handle().clone();
        pending.start(sink.clone(), &tracker);
        for i in 0..100 {
            let _ = conn.send(&send_to(i), Some(&atom(&"x".repeat(100))));
        }
        let started = tokio::time::Instant::now();
        conn.closed().await;
        let took = started.elapsed();
        assert_eq!(*sink.closed.lock().unwrap(), Some(DownReason::TickTimeout));
        assert!(
            took >= Duration::from_secs(8) && took <= Duration::from_secs(10),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn frames_are_dispatched_in_order_before_the_close_is_reported() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let sink = Arc::new(Collect::default());
        let tracker = TaskTracker::new();
        let pending = Pending::new(Box::new(ours), peer(), params(Duration::from_secs(60)));
        let conn = pending.handle().clone();
        pending.start(sink.clone(), &tracker);
        let mut bytes = Vec::new();
        for i in 0..50 {
            bytes.extend_from_slice(&data_frame(&send_to(i), Some(&atom("m")), flags::OURS));
            bytes.extend_from_slice(&[0, 0, 0, 0]);
        }
        // One malformed frame in the middle is dropped alone.
        bytes.extend_from_slice(&[0, 0, 0, 2, 112, 1]);
        bytes.extend_from_slice(&data_frame(&send_to(50), Some(&atom("m")), flags::OURS));
        theirs.write_all(&bytes).await.unwrap();
        drop(theirs);
        conn.closed().await;
        let got = sink.got.lock().unwrap();
        assert_eq!(got.len(), 51);
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m.control, send_to(i as u32));
        }
        assert_eq!(*sink.closed.lock().unwrap(), Some(DownReason::Closed));
    }

    fn call(bytes: usize) -> (Control, Term, Pid, Term) {
        let caller = Pid::new("peer@127.0.0.1", 9, 0, 1);
        let tag = Term::Ref(Ref::new("peer@127.0.0.1", 1, &[1, 2, 3]));
        let msg = tuple(vec![
            atom("$gen_call"),
            tuple(vec![Term::Pid(caller.clone()), tag.clone()]),
            binary(vec![1u8; bytes]),
        ]);
        let ctl = Control::RegSend {
            from: caller.clone(),
            to: "svc".into(),
        };
        (ctl, msg, caller, tag)
    }

    /// The wire bytes of a message as fragments of `size`, one vector per frame.
    fn fragment_frames(ctl: &Control, msg: &Term, seq: u64, size: usize) -> Vec<Vec<u8>> {
        let Outgoing::Fragments(mut f) = encode_message(ctl, Some(msg), flags::OURS, seq, size)
        else {
            panic!("not fragmented");
        };
        let mut out = Vec::new();
        while let Some((head, chunk)) = f.next_frame() {
            let mut frame = head.to_vec();
            frame.extend_from_slice(&chunk);
            out.push(frame);
        }
        out
    }

    fn fragmented(ctl: &Control, msg: &Term, seq: u64, size: usize) -> Vec<u8> {
        fragment_frames(ctl, msg, seq, size).concat()
    }

    #[tokio::test]
    async fn oversized_messages_are_refused_alone_and_their_callers_named() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let sink = Arc::new(Collect::default());
        let tracker = TaskTracker::new();
        let pending = Pending::new(Box::new(ours), peer(), params(Duration::from_secs(60)));
        let conn = pending.handle().clone();
        pending.start(sink.clone(), &tracker);
        // Over the 1 MiB limit: once as one frame, once as fragments; then a small message.
        let (ctl, big, caller, tag) = call(2 << 20);
        let mut bytes = data_frame(&ctl, Some(&big), flags::OURS).to_vec();
        bytes.extend_from_slice(&fragmented(&ctl, &big, 1, 64 * 1024));
        let (_, ok, _, _) = call(300_000);
        bytes.extend_from_slice(&fragmented(&ctl, &ok, 2, 64 * 1024));
        bytes.extend_from_slice(&data_frame(&send_to(1), Some(&atom("after")), flags::OURS));
        let writer = tokio::spawn(async move {
            theirs.write_all(&bytes).await.unwrap();
            theirs
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while sink.got.lock().unwrap().len() < 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "messages not delivered: {:?} {:?}",
                sink.got.lock().unwrap().len(),
                sink.refused.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _theirs = writer.await.unwrap();
        let got = sink.got.lock().unwrap().clone();
        assert_eq!(got[0].payload, Some(ok));
        assert_eq!(got[1].payload, Some(atom("after")));
        let refused = sink.refused.lock().unwrap().clone();
        assert_eq!(refused.len(), 2, "{refused:?}");
        for r in &refused {
            assert!(matches!(r.why, Refusal::TooLarge { max, .. } if max == 1 << 20));
            assert_eq!(r.call, Some((caller.clone(), tag.clone())));
        }
        assert!(
            sink.closed.lock().unwrap().is_none(),
            "the connection stays up"
        );
        assert_eq!(
            conn.outbox.queued(),
            0,
            "nothing was written to the peer by the connection itself"
        );
        conn.close(DownReason::Disconnect);
        conn.closed().await;
    }

    #[tokio::test]
    async fn reassembly_holds_the_receive_budget_only_while_a_message_is_open() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let sink = Arc::new(Collect::default());
        let tracker = TaskTracker::new();
        let p = params(Duration::from_secs(60));
        let budget = p.budget.clone();
        let pending = Pending::new(Box::new(ours), peer(), p);
        let conn = pending.handle().clone();
        pending.start(sink.clone(), &tracker);
        let (ctl, msg, _, _) = call(200_000);
        let mut frames = fragment_frames(&ctl, &msg, 7, 64 * 1024);
        assert_eq!(frames.len(), 4);
        let last = frames.pop().unwrap();
        // All but the last fragment: the budget is in use.
        theirs.write_all(&frames.concat()).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while budget.available_permits() > (1 << 20) - 3 * 64 * 1024 {
            assert!(tokio::time::Instant::now() < deadline, "budget never taken");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        theirs.write_all(&last).await.unwrap();
        while sink.got.lock().unwrap().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "not delivered");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(sink.got.lock().unwrap()[0].payload, Some(msg));
        assert_eq!(budget.available_permits(), 1 << 20);
        conn.close(DownReason::Disconnect);
        conn.closed().await;
    }

    #[tokio::test]
    async fn traffic_is_counted_per_message_and_ticks_are_not() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let sink = Arc::new(Collect::default());
        let tracker = TaskTracker::new();
        let pending = Pending::new(Box::new(ours), peer(), params(Duration::from_secs(60)));
        let conn = pending.handle().clone();
        pending.start(sink.clone(), &tracker);
        let mut bytes = Vec::new();
        for i in 0..10 {
            bytes.extend_from_slice(&data_frame(&send_to(i), Some(&atom("m")), flags::OURS));
            bytes.extend_from_slice(&[0, 0, 0, 0]);
        }
        let inbound = bytes.len() as u64 - 10 * 4;
        theirs.write_all(&bytes).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while sink.got.lock().unwrap().len() < 10 {
            assert!(tokio::time::Instant::now() < deadline, "not delivered");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let big = binary(vec![7u8; 3 * FRAGMENT_SIZE]);
        conn.send(&send_to(1), Some(&atom("x"))).unwrap();
        conn.send_wait(&send_to(2), Some(&big)).await.unwrap();
        let t = conn.counters.read();
        assert_eq!(t.msgs_in, 10);
        assert_eq!(t.bytes_in, inbound);
        assert_eq!(t.msgs_out, 2);
        assert!(t.bytes_out > 3 * FRAGMENT_SIZE as u64, "{t:?}");
        conn.close(DownReason::Disconnect);
        conn.closed().await;
    }

    #[tokio::test]
    async fn close_reports_the_first_reason() {
        let (ours, _theirs) = tokio::io::duplex(1024);
        let sink = Arc::new(Collect::default());
        let tracker = TaskTracker::new();
        let pending = Pending::new(Box::new(ours), peer(), params(Duration::from_secs(60)));
        let conn = pending.handle().clone();
        pending.start(sink.clone(), &tracker);
        conn.close(DownReason::Replaced);
        conn.close(DownReason::Shutdown);
        conn.closed().await;
        assert_eq!(*sink.closed.lock().unwrap(), Some(DownReason::Replaced));
        assert_eq!(
            conn.send(&send_to(1), Some(&atom("x"))),
            Err(PushError::Closed)
        );
    }
}
