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
//! larger than the limit still gets through an empty queue.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use thiserror::Error;
use tokio::sync::Notify;

/// Default busy limit, as erl's `+zdbbl` default (1 MiB).
pub const DEFAULT_BUSY_LIMIT: usize = 1 << 20;
/// Default hard limit for senders that do not wait.
pub const DEFAULT_HARD_LIMIT: usize = 16 << 20;

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
    frames: VecDeque<Bytes>,
    bytes: usize,
    closed: bool,
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

    fn enqueue(&self, st: &mut State, frame: Bytes) {
        st.bytes += frame.len();
        st.frames.push_back(frame);
        self.ready.notify_one();
    }

    /// Queues `frame` unless the connection is closed or more than the hard limit is queued.
    pub fn push(&self, frame: Bytes) -> Result<(), PushError> {
        let mut st = self.lock();
        if st.closed {
            return Err(PushError::Closed);
        }
        if st.bytes >= self.hard_limit {
            return Err(PushError::Busy);
        }
        self.enqueue(&mut st, frame);
        Ok(())
    }

    /// Queues a tick, whatever the queue holds.
    pub fn push_tick(&self) {
        let mut st = self.lock();
        if !st.closed {
            self.enqueue(
                &mut st,
                Bytes::from_static(&crate::dist::proto::frame::TICK),
            );
        }
    }

    /// Queues `frame`, first waiting while more than the busy limit is queued.
    pub async fn push_wait(&self, frame: Bytes) -> Result<(), PushError> {
        loop {
            let room = self.room.notified();
            {
                let mut st = self.lock();
                if st.closed {
                    return Err(PushError::Closed);
                }
                if st.bytes < self.busy_limit {
                    self.enqueue(&mut st, frame);
                    return Ok(());
                }
            }
            room.await;
        }
    }

    /// Whether senders that wait would wait now.
    pub fn is_busy(&self) -> bool {
        self.lock().bytes >= self.busy_limit
    }

    /// Bytes queued.
    pub fn queued(&self) -> usize {
        self.lock().bytes
    }

    /// Takes queued frames, up to about `max` bytes (at least one frame), for the writer.
    pub fn take(&self, max: usize, into: &mut Vec<Bytes>) {
        let mut st = self.lock();
        let mut taken = 0;
        while let Some(f) = st.frames.front() {
            if taken > 0 && taken + f.len() > max {
                break;
            }
            taken += f.len();
            if let Some(f) = st.frames.pop_front() {
                into.push(f);
            }
        }
        // The bytes still count as queued until written; see `written`.
    }

    /// The writer sent `n` bytes of what it took.
    pub fn written(&self, n: usize) {
        let mut st = self.lock();
        let before = st.bytes;
        st.bytes = st.bytes.saturating_sub(n);
        self.wrote.store(true, Ordering::Relaxed);
        if before >= self.busy_limit && st.bytes < self.busy_limit {
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
        !self.lock().frames.is_empty()
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
        st.frames.clear();
        st.bytes = 0;
        drop(st);
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

    fn frame(n: usize) -> Bytes {
        Bytes::from(vec![0u8; n])
    }

    #[test]
    fn push_refuses_past_the_hard_limit_but_admits_one_big_frame() {
        let o = Outbox::new(10, 100);
        o.push(frame(500)).unwrap();
        assert_eq!(o.push(frame(1)), Err(PushError::Busy));
        o.push_tick();
        assert_eq!(o.queued(), 504);
        let mut got = Vec::new();
        o.take(1 << 20, &mut got);
        assert_eq!(got.len(), 2);
        o.written(504);
        o.push(frame(1)).unwrap();
        o.close();
        assert_eq!(o.push(frame(1)), Err(PushError::Closed));
    }

    #[tokio::test]
    async fn push_wait_waits_for_room() {
        let o = std::sync::Arc::new(Outbox::new(10, 100));
        o.push(frame(20)).unwrap();
        let o2 = o.clone();
        let waiter = tokio::spawn(async move { o2.push_wait(frame(1)).await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let mut got = Vec::new();
        o.take(1 << 20, &mut got);
        o.written(20);
        waiter.await.unwrap().unwrap();
        assert_eq!(o.queued(), 1);
        // Closing wakes waiters with an error.
        o.push(frame(20)).unwrap();
        let o2 = o.clone();
        let waiter = tokio::spawn(async move { o2.push_wait(frame(1)).await });
        tokio::task::yield_now().await;
        o.close();
        assert_eq!(waiter.await.unwrap(), Err(PushError::Closed));
    }

    #[test]
    fn take_batches_up_to_the_limit() {
        let o = Outbox::new(1 << 20, 1 << 20);
        for _ in 0..10 {
            o.push(frame(100)).unwrap();
        }
        let mut got = Vec::new();
        o.take(350, &mut got);
        assert_eq!(got.len(), 3);
        got.clear();
        o.take(10, &mut got);
        assert_eq!(got.len(), 1, "at least one frame");
        assert!(o.has_frames());
    }
}
