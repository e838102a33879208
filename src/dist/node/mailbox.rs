//! Mailboxes. As in Erlang they are unbounded: a connection's reader must never wait for a
//! slow process, or one process that stops reading would stall every message on that
//! connection, other processes included, and the ticks behind them. Nothing is dropped
//! silently either. What keeps this honest is visibility: each queue counts its messages and
//! their bytes, and crossing a high-water mark (10,000 messages, then every doubling) is
//! reported once, in the log and to `cluster_events` subscribers (`cluster monitor`).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use super::super::proto::Term;

/// The first queue length that is reported.
pub const HIGH_WATER_START: usize = 10_000;

/// A queue length crossed a reporting threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HighWater {
    /// Messages queued.
    pub len: usize,
    /// Their approximate size in bytes.
    pub bytes: usize,
}

struct State {
    items: VecDeque<(Term, usize)>,
    bytes: usize,
    ended: bool,
    next_report: usize,
    peak: usize,
}

/// One process's queue of messages.
pub struct Queue {
    state: Mutex<State>,
    notify: Notify,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (len, bytes, _) = self.stats();
        f.debug_struct("Queue")
            .field("len", &len)
            .field("bytes", &bytes)
            .finish()
    }
}

impl Default for Queue {
    fn default() -> Self {
        Queue::new()
    }
}

impl Queue {
    /// An empty queue.
    pub fn new() -> Queue {
        Queue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                bytes: 0,
                ended: false,
                next_report: HIGH_WATER_START,
                peak: 0,
            }),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a message of about `size` bytes. Returns a report when the length crosses a
    /// threshold; a message to an ended process is dropped (as Erlang drops messages to dead
    /// processes).
    pub fn push(&self, msg: Term, size: usize) -> Option<HighWater> {
        let mut st = self.lock();
        if st.ended {
            return None;
        }
        st.items.push_back((msg, size));
        st.bytes += size;
        let len = st.items.len();
        st.peak = st.peak.max(len);
        let report = (len >= st.next_report).then(|| {
            st.next_report = len * 2;
            HighWater {
                len,
                bytes: st.bytes,
            }
        });
        drop(st);
        self.notify.notify_one();
        report
    }

    /// The next message, if one is queued.
    pub fn pop(&self) -> Option<Term> {
        let mut st = self.lock();
        if st.ended {
            return None;
        }
        let (msg, size) = st.items.pop_front()?;
        st.bytes -= size;
        if st.items.is_empty() {
            st.next_report = HIGH_WATER_START;
        }
        Some(msg)
    }

    /// The next message, waiting for one; `None` once the process has ended.
    pub async fn recv(&self) -> Option<Term> {
        loop {
            {
                let st = self.lock();
                if st.ended {
                    return None;
                }
            }
            if let Some(m) = self.pop() {
                return Some(m);
            }
            // A push between `pop` and here leaves a permit, so this cannot miss it.
            self.notify.notified().await;
        }
    }

    /// The first queued message that `pick` accepts, removed from the queue (a selective
    /// receive; the others keep their order).
    pub fn take_first(&self, mut pick: impl FnMut(&Term) -> bool) -> Option<Term> {
        let mut st = self.lock();
        if st.ended {
            return None;
        }
        let at = st.items.iter().position(|(m, _)| pick(m))?;
        let (msg, size) = st.items.remove(at)?;
        st.bytes -= size;
        Some(msg)
    }

    /// Waits until something new arrives (or the process ends).
    pub async fn changed(&self) {
        self.notify.notified().await
    }

    /// Ends the queue: what is queued is dropped and receivers see the end.
    pub fn end(&self) {
        let mut st = self.lock();
        st.ended = true;
        st.items.clear();
        st.bytes = 0;
        drop(st);
        self.notify.notify_one();
    }

    /// Whether the process has ended.
    pub fn is_ended(&self) -> bool {
        self.lock().ended
    }

    /// Messages queued, their bytes, and the longest the queue has been.
    pub fn stats(&self) -> (usize, usize, usize) {
        let st = self.lock();
        (st.items.len(), st.bytes, st.peak)
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::proto::term::int;
    use super::*;

    #[test]
    fn high_water_is_reported_at_thresholds_then_doublings() {
        let q = Queue::new();
        let mut reports = Vec::new();
        for i in 0..50_000 {
            if let Some(h) = q.push(int(i), 10) {
                reports.push(h.len);
            }
        }
        assert_eq!(reports, [10_000, 20_000, 40_000]);
        assert_eq!(q.stats(), (50_000, 500_000, 50_000));
        while q.pop().is_some() {}
        assert_eq!(q.push(int(0), 1), None);
    }

    #[test]
    fn selective_take_keeps_the_rest_in_order() {
        let q = Queue::new();
        for i in 0..5 {
            q.push(int(i), 1);
        }
        assert_eq!(q.take_first(|m| *m == int(3)), Some(int(3)));
        let rest: Vec<Term> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(rest, [int(0), int(1), int(2), int(4)]);
    }

    #[tokio::test]
    async fn ending_wakes_the_receiver_and_drops_later_messages() {
        let q = std::sync::Arc::new(Queue::new());
        let q2 = q.clone();
        let rx = tokio::spawn(async move { q2.recv().await });
        tokio::task::yield_now().await;
        q.end();
        assert_eq!(rx.await.unwrap(), None);
        assert_eq!(q.push(int(1), 1), None);
        assert_eq!(q.pop(), None);
    }
}
