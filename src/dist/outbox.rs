//! The send queue of one connection, limited in bytes like erl's `+zdbbl` dist buffer.
//!
//! Senders choose how to behave when the peer is slow:
//! - [`Outbox::push_wait`] waits while more than the busy limit is queued (backpressure, as an
//!   Erlang process sending to a busy port is suspended);
//! - [`Outbox::push`] never waits: it queues while less than the hard limit is queued and
//!   otherwise reports [`PushError::Busy`], so a shared service (the beacon, `net_kernel`) is
//!   never held up by one peer;
//! - [`Outbox::push_tick`] always queues: ticks must go out whatever the queue holds.
//!
//! A message is admitted whole if the queue was under the limit before it, so one message
//! larger than the limit still gets through an empty queue. While a fragmented message waits
//! for its turn, its untaken fragments count against the limits of other fragmented messages
//! only: as in OTP, where the sender of a large message is suspended between fragments, a
//! 200 MB message does not make the connection look busy to the senders of small ones.
//!
//! Fragmented messages go out one fragment at a time, with whole frames written between their
//! fragments, so a 200 MB message does not hold up a small call or a tick. Order still holds
//! for each sender, as Erlang promises between two processes: whatever a sender queues after
//! one of its fragmented messages waits in that sender's chain until the message's last
//! fragment is out.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use thiserror::Error;
use tokio::sync::Notify;

use super::proto::frame::{Fragments, Outgoing};

/// Default busy limit, as erl's `+zdbbl` default (1 MiB).
pub const DEFAULT_BUSY_LIMIT: usize = 1 << 20;
/// Default hard limit for senders that do not wait.
pub const DEFAULT_HARD_LIMIT: usize = 16 << 20;

/// Who queued a message, for ordering: frames of one sender never overtake its fragmented
/// messages. Messages with no sending process share [`Sender::NONE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sender(pub u64);

impl Sender {
    /// Messages that no process sent (ticks aside, which are never held back).
    pub const NONE: Sender = Sender(u64::MAX);
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PushError {
    /// The connection is gone.
    #[error("connection closed")]
    Closed,
    /// More than the hard limit is queued: the peer is not keeping up.
    #[error("peer is not keeping up (send queue full)")]
    Busy,
}

#[derive(Default)]
struct State {
    /// Frames free to go, in order.
    ready: VecDeque<Bytes>,
    /// Fragmented messages being sent (one per sender at most), taken from in turn.
    large: VecDeque<(Sender, Fragments)>,
    /// For each sender with a message in `large`: what it queued after that message.
    chains: HashMap<Sender, VecDeque<Outgoing>>,
    /// Everything queued and not yet written.
    bytes: usize,
    /// The part of `bytes` in fragments not yet taken by the writer.
    large_bytes: usize,
    closed: bool,
}

impl State {
    /// The bytes that count against the limits for `msg`.
    fn load(&self, msg: &Outgoing) -> usize {
        match msg {
            Outgoing::Frame(_) => self.bytes - self.large_bytes,
            Outgoing::Fragments(_) => self.bytes,
        }
    }

    fn queue(&mut self, sender: Sender, msg: Outgoing) {
        self.bytes += msg.wire_len();
        if let Outgoing::Fragments(f) = &msg {
            self.large_bytes += f.wire_len();
        }
        if let Some(chain) = self.chains.get_mut(&sender) {
            chain.push_back(msg);
            return;
        }
        match msg {
            Outgoing::Frame(f) => self.ready.push_back(f),
            Outgoing::Fragments(f) => {
                self.large.push_back((sender, f));
                self.chains.insert(sender, VecDeque::new());
            }
        }
    }

    /// `sender`'s fragmented message is out: what it queued after it is free to go, up to its
    /// next fragmented message.
    fn release(&mut self, sender: Sender) {
        let Some(mut chain) = self.chains.remove(&sender) else {
            return;
        };
        while let Some(msg) = chain.pop_front() {
            match msg {
                Outgoing::Frame(f) => self.ready.push_back(f),
                Outgoing::Fragments(f) => {
                    self.large.push_back((sender, f));
                    self.chains.insert(sender, chain);
                    return;
                }
            }
        }
    }
}

/// One connection's queue of encoded frames.
pub struct Outbox {
    state: Mutex<State>,
    /// Wakes the writer.
    ready: Notify,
    /// Wakes senders waiting for room.
    room: Notify,
    /// Set whenever bytes go out (read and cleared by the tick supervisor).
    wrote: AtomicBool,
    busy_limit: usize,
    hard_limit: usize,
}

impl Outbox {
    /// An empty queue with the given limits (the hard limit is at least the busy one).
    pub fn new(busy_limit: usize, hard_limit: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            room: Notify::new(),
            wrote: AtomicBool::new(false),
            busy_limit: busy_limit.max(1),
            hard_limit: hard_limit.max(busy_limit).max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a message unless the connection is closed or more than the hard limit is queued.
    pub fn push(&self, sender: Sender, msg: Outgoing) -> Result<(), PushError> {
        let mut st = self.lock();
        if st.closed {
            return Err(PushError::Closed);
        }
        if st.load(&msg) >= self.hard_limit {
            return Err(PushError::Busy);
        }
        st.queue(sender, msg);
        drop(st);
        self.ready.notify_one();
        Ok(())
    }

    /// Queues a tick, whatever the queue holds.
    pub fn push_tick(&self) {
        let mut st = self.lock();
        if !st.closed {
            st.bytes += 4;
            st.ready
                .push_back(Bytes::from_static(&crate::dist::proto::frame::TICK));
            drop(st);
            self.ready.notify_one();
        }
    }

    /// Queues a message, first waiting while more than the busy limit is queued.
    pub async fn push_wait(&self, sender: Sender, msg: Outgoing) -> Result<(), PushError> {
        loop {
            let room = self.room.notified();
            {
                let mut st = self.lock();
                if st.closed {
                    return Err(PushError::Closed);
                }
                if st.load(&msg) < self.busy_limit {
                    st.queue(sender, msg);
                    drop(st);
                    self.ready.notify_one();
                    return Ok(());
                }
            }
            room.await;
        }
    }

    /// Whether senders of small messages that wait would wait now.
    pub fn is_busy(&self) -> bool {
        let st = self.lock();
        st.bytes - st.large_bytes >= self.busy_limit
    }

    /// Bytes queued.
    pub fn queued(&self) -> usize {
        self.lock().bytes
    }

    /// Takes what to write next, up to about `max` bytes (at least one frame), for the writer:
    /// whole frames first, then one fragment of each fragmented message in turn. A fragment
    /// is two pieces, its header and its slice of the payload.
    pub fn take(&self, max: usize, into: &mut Vec<Bytes>) {
        let mut guard = self.lock();
        let st = &mut *guard;
        let mut taken = 0;
        loop {
            while let Some(f) = st.ready.front() {
                if taken > 0 && taken + f.len() > max {
                    return;
                }
                taken += f.len();
                if let Some(f) = st.ready.pop_front() {
                    into.push(f);
                }
            }
            if taken >= max {
                return;
            }
            let Some((sender, frags)) = st.large.front_mut() else {
                return;
            };
            let sender = *sender;
            if let Some((head, chunk)) = frags.next_frame() {
                let n = head.len() + chunk.len();
                taken += n;
                into.push(head);
                into.push(chunk);
                st.large_bytes -= n;
            }
            if frags.is_done() {
                st.large.pop_front();
                st.release(sender);
            } else {
                st.large.rotate_left(1);
            }
        }
        // The bytes still count as queued until written; see `written`.
    }

    /// The writer sent `n` bytes of what it took.
    pub fn written(&self, n: usize) {
        let mut st = self.lock();
        let before = (st.bytes, st.bytes - st.large_bytes);
        st.bytes = st.bytes.saturating_sub(n).max(st.large_bytes);
        let after = (st.bytes, st.bytes - st.large_bytes);
        self.wrote.store(true, Ordering::Relaxed);
        let crossed = |(b, a): (usize, usize)| b >= self.busy_limit && a < self.busy_limit;
        if crossed((before.0, after.0)) || crossed((before.1, after.1)) {
            self.room.notify_waiters();
        }
    }

    /// Waits until there is something to write (or the queue was closed).
    pub async fn ready(&self) {
        self.ready.notified().await
    }

    /// Whether frames are waiting to be taken.
    #[cfg(test)]
    pub fn has_frames(&self) -> bool {
        let st = self.lock();
        !st.ready.is_empty() || !st.large.is_empty()
    }

    /// Whether bytes are queued but not yet written.
    pub fn has_backlog(&self) -> bool {
        self.lock().bytes > 0
    }

    /// Reads and clears the "bytes went out" flag.
    pub fn take_wrote(&self) -> bool {
        self.wrote.swap(false, Ordering::Relaxed)
    }

    /// Refuses further frames and drops what is queued; wakes everyone waiting.
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        let old = std::mem::take(&mut *st);
        st.closed = true;
        drop(st);
        // Large payloads are freed here, outside the lock.
        drop(old);
        self.room.notify_waiters();
        self.ready.notify_one();
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Outgoing {
        Outgoing::Frame(Bytes::from(vec![0u8; n]))
    }

    const S: Sender = Sender::NONE;

    #[test]
    fn push_refuses_past_the_hard_limit_but_admits_one_big_frame() {
        let o = Outbox::new(10, 100);
        o.push(S, frame(500)).unwrap();
        assert_eq!(o.push(S, frame(1)), Err(PushError::Busy));
        o.push_tick();
        assert_eq!(o.queued(), 504);
        let mut got = Vec::new();
        o.take(1 << 20, &mut got);
        assert_eq!(got.len(), 2);
        o.written(504);
        o.push(S, frame(1)).unwrap();
        o.close();
        assert_eq!(o.push(S, frame(1)), Err(PushError::Closed));
    }

    #[tokio::test]
    async fn push_wait_waits_for_room() {
        let o = std::sync::Arc::new(Outbox::new(10, 100));
        o.push(S, frame(20)).unwrap();
        let o2 = o.clone();
        let waiter = tokio::spawn(async move { o2.push_wait(S, frame(1)).await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let mut got = Vec::new();
        o.take(1 << 20, &mut got);
        o.written(20);
        waiter.await.unwrap().unwrap();
        assert_eq!(o.queued(), 1);
        // Closing wakes waiters with an error.
        o.push(S, frame(20)).unwrap();
        let o2 = o.clone();
        let waiter = tokio::spawn(async move { o2.push_wait(S, frame(1)).await });
        tokio::task::yield_now().await;
        o.close();
        assert_eq!(waiter.await.unwrap(), Err(PushError::Closed));
    }

    #[test]
    fn take_batches_up_to_the_limit() {
        let o = Outbox::new(1 << 20, 1 << 20);
        for _ in 0..10 {
            o.push(S, frame(100)).unwrap();
        }
        let mut got = Vec::new();
        o.take(350, &mut got);
        assert_eq!(got.len(), 3);
        got.clear();
        o.take(10, &mut got);
        assert_eq!(got.len(), 1, "at least one frame");
        assert!(o.has_frames());
    }

    /// A fragmented message of `n` payload bytes from `from`, in fragments of 100 bytes.
    fn large(from: u32, n: usize) -> Outgoing {
        use crate::dist::proto::frame::encode_message;
        use crate::dist::proto::term::{binary, Pid};
        use crate::dist::proto::{flags, Control};
        let ctl = Control::Send {
            from: Some(Pid::new("a@h", from, 0, 1)),
            to: Pid::new("b@h", 1, 0, 1),
        };
        encode_message(
            &ctl,
            Some(&binary(vec![from as u8; n])),
            flags::OURS,
            u64::from(from),
            100,
        )
    }

    fn small(tag: u8) -> Outgoing {
        Outgoing::Frame(Bytes::from(vec![tag; 3]))
    }

    /// What the writer would write, piece by piece, in takes of `max` bytes.
    fn drain(o: &Outbox, max: usize) -> Vec<Bytes> {
        let mut all = Vec::new();
        loop {
            let mut got = Vec::new();
            o.take(max, &mut got);
            if got.is_empty() {
                return all;
            }
            o.written(got.iter().map(Bytes::len).sum());
            all.extend(got);
        }
    }

    #[test]
    fn fragments_interleave_with_frames_but_never_reorder_a_sender() {
        let o = Outbox::new(1 << 20, 1 << 20);
        let (a, b) = (Sender(1), Sender(2));
        o.push(a, large(1, 1000)).unwrap();
        // b's frame may overtake a's large message; a's own may not.
        o.push(a, small(0xa1)).unwrap();
        o.push(b, small(0xb1)).unwrap();
        o.push(a, large(3, 300)).unwrap();
        o.push(a, small(0xa2)).unwrap();
        o.push_tick();
        let wire = drain(&o, 150);
        assert_eq!(o.queued(), 0);
        let pos = |tag: u8| {
            wire.iter()
                .position(|p| p.len() == 3 && p[0] == tag)
                .unwrap_or_else(|| panic!("{tag:x} not written"))
        };
        // The last fragment of a message: a header whose fragment id is 1.
        let last_fragment = |seq: u8| {
            wire.iter()
                .rposition(|p| p.len() > 12 && p[4] == 131 && p[13] == seq)
                .expect("fragments written")
        };
        let tick = wire.iter().position(|p| p[..] == [0, 0, 0, 0]).unwrap();
        assert!(
            pos(0xb1) < last_fragment(1),
            "b overtakes a's large message"
        );
        assert!(tick < last_fragment(1), "ticks go between fragments");
        assert!(
            pos(0xa1) > last_fragment(1),
            "a's frame waits for its large message"
        );
        assert!(last_fragment(3) > pos(0xa1));
        assert!(pos(0xa2) > last_fragment(3));
        // Every fragment of both messages went out: 11 and 4 of them (1005 and 305 bytes).
        let pieces = wire.iter().filter(|p| p.len() > 12 && p[4] == 131).count();
        assert_eq!(pieces, 15);
    }

    #[test]
    fn a_queued_large_message_does_not_make_small_senders_busy() {
        let o = Outbox::new(1000, 4000);
        o.push(Sender(1), large(1, 100_000)).unwrap();
        assert!(!o.is_busy());
        // Small frames from others still go in, up to the limits of their own.
        for _ in 0..100 {
            o.push(Sender(2), small(1)).unwrap();
        }
        // Another large message is refused while the first is far from written.
        assert_eq!(o.push(Sender(3), large(3, 1000)), Err(PushError::Busy));
        let wire = drain(&o, 1 << 20);
        assert!(!wire.is_empty());
        assert_eq!(o.queued(), 0);
        o.push(Sender(3), large(3, 1000)).unwrap();
    }
}
